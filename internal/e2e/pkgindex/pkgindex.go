// Package pkgindex is the content of the package index the install tests
// use instead of the internet: a pip "simple" index with one wheel
// (runhost-greet 1.0) and one hostile source distribution (runhost-evil
// 1.0, whose build backend attacks the machinery installs share), and an
// npm registry with one package (runhost-greet-js 1.0.0), all built here. Each suite serves it its own
// way: a container on a Docker network, or a server on the Kubernetes test
// cluster's bridge.
package pkgindex

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Files returns the index's files by path, for an index served at base
// (scheme://host:port, no trailing slash). The pip index is base+"/simple",
// the npm registry base+"/".
func Files(base string) (map[string][]byte, error) {
	files := map[string][]byte{}
	wheelName, wheel, err := wheel()
	if err != nil {
		return nil, err
	}
	addProject(files, "runhost-greet", wheelName, wheel)
	evilName, evil, err := evilSdist()
	if err != nil {
		return nil, err
	}
	addProject(files, "runhost-evil", evilName, evil)
	tgz, err := npmTarball()
	if err != nil {
		return nil, err
	}
	sha1sum := sha1.Sum(tgz)
	sha512sum := sha512.Sum512(tgz)
	meta, err := json.Marshal(map[string]any{
		"name":      "runhost-greet-js",
		"dist-tags": map[string]string{"latest": "1.0.0"},
		"versions": map[string]any{"1.0.0": map[string]any{
			"name": "runhost-greet-js", "version": "1.0.0", "main": "index.js",
			"dist": map[string]string{
				"tarball":   base + "/tarballs/runhost-greet-js-1.0.0.tgz",
				"shasum":    hex.EncodeToString(sha1sum[:]),
				"integrity": "sha512-" + base64.StdEncoding.EncodeToString(sha512sum[:]),
			},
		}},
	})
	if err != nil {
		return nil, err
	}
	files["runhost-greet-js"] = meta
	files["tarballs/runhost-greet-js-1.0.0.tgz"] = tgz
	return files, nil
}

// addProject puts a project with one file (a wheel, a source
// distribution) into the pip index: the file, and the project's page
// linking it with its sha256.
func addProject(files map[string][]byte, project, name string, content []byte) {
	sum := sha256.Sum256(content)
	files["files/"+name] = content
	files["simple/"+project+"/index.html"] = fmt.Appendf(nil,
		`<html><body><a href="/files/%s#sha256=%x">%s</a></body></html>`, name, sum, name)
}

// wheel makes a pure-Python wheel of runhost-greet 1.0.
func wheel() (string, []byte, error) {
	const dist = "runhost_greet-1.0.dist-info"
	b, err := makeWheel(dist, []wheelFile{
		{"runhost_greet/__init__.py", []byte("def greet(name):\n    return f'hello {name} from a wheel'\n")},
		{dist + "/METADATA", []byte("Metadata-Version: 2.1\nName: runhost-greet\nVersion: 1.0\n")},
		{dist + "/WHEEL", []byte(wheelMeta("runhost-test"))},
	})
	return "runhost_greet-1.0-py3-none-any.whl", b, err
}

// wheelFile is a file of a wheel: its path in the archive and content.
type wheelFile struct {
	name    string
	content []byte
}

// wheelMeta is the WHEEL file of a pure-Python wheel.
func wheelMeta(generator string) string {
	return "Wheel-Version: 1.0\nGenerator: " + generator + "\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
}

// makeWheel zips files, in their order, with distInfo's RECORD (each
// file's sha256 and size) last. The archive is the same for the same
// files: its entries have a fixed time. They are stored, not deflated: the
// index is local, and deflating the Debian wheels takes seconds under the
// race detector (0.4 s stored).
func makeWheel(distInfo string, files []wheelFile) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	var record strings.Builder
	add := func(name string, content []byte) error {
		h := &zip.FileHeader{Name: name, Method: zip.Store, Modified: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}
		h.SetMode(0o644)
		w, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		_, err = w.Write(content)
		return err
	}
	for _, f := range files {
		if err := add(f.name, f.content); err != nil {
			return nil, err
		}
		sum := sha256.Sum256(f.content)
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f.name, base64.RawURLEncoding.EncodeToString(sum[:]), len(f.content))
	}
	record.WriteString(distInfo + "/RECORD,,\n")
	if err := add(distInfo+"/RECORD", []byte(record.String())); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// EvilMark starts the line of JSON runhost-evil's build backend writes to
// stderr: what it tried against the egress proxy's socket, and how each
// attempt ended ("DONE" or the error), and whether the proxy still answered
// ("proxy": "ok").
const EvilMark = "RUNHOST-EVIL "

// evilBackend is runhost-evil's in-tree PEP 517 build backend: pip runs it
// while installing the source distribution, as the install step's user,
// needing nothing from the index. It does what a malicious package's
// build would do to the shared machinery: find the egress proxy's socket,
// rename and remove it, bind its own listener in its place or beside it,
// open up the directory; then it checks the proxy still answers, reports,
// and fails the build (so nothing is cached).
const evilBackend = `import glob, json, os, socket, stat, sys, urllib.request

def _attack():
    res = {}
    socks = [p for p in glob.glob('/.runhost*/*') if stat.S_ISSOCK(os.lstat(p).st_mode)]
    res['sockets'] = len(socks)
    if socks:
        sock = socks[0]
        d = os.path.dirname(sock)
        def attempt(name, f):
            try:
                f(); res[name] = 'DONE'
            except OSError as e:
                res[name] = e.strerror
        attempt('rename', lambda: os.rename(sock, sock + '.old'))
        attempt('unlink', lambda: os.unlink(sock))
        attempt('create', lambda: open(d + '/planted', 'w').close())
        attempt('chmod', lambda: os.chmod(d, 0o777))
        evil = socket.socket(socket.AF_UNIX)
        attempt('bind', lambda: (evil.bind(sock if not os.path.exists(sock) else d + '/evil.sock'), evil.listen()))
    try:
        urllib.request.urlopen(os.environ['PIP_INDEX_URL'] + '/runhost-greet/', timeout=10).read(); res['proxy'] = 'ok'
    except Exception as e:
        res['proxy'] = repr(e)
    sys.stderr.write('` + EvilMark + `' + json.dumps(res) + '\n')
    sys.stderr.flush()

def get_requires_for_build_wheel(config_settings=None):
    _attack()
    raise SystemExit('runhost-evil: the build fails on purpose')

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise SystemExit('runhost-evil: the build fails on purpose')
`

// evilSdist makes the source distribution of runhost-evil 1.0.
func evilSdist() (string, []byte, error) {
	const dir = "runhost-evil-1.0/"
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	if err := writeTar(gz, map[string][]byte{
		dir + "PKG-INFO":       []byte("Metadata-Version: 2.1\nName: runhost-evil\nVersion: 1.0\n"),
		dir + "pyproject.toml": []byte("[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\".\"]\n"),
		dir + "backend.py":     []byte(evilBackend),
	}); err != nil {
		return "", nil, err
	}
	if err := gz.Close(); err != nil {
		return "", nil, err
	}
	return "runhost-evil-1.0.tar.gz", buf.Bytes(), nil
}

// npmTarball makes the npm tarball of runhost-greet-js 1.0.0.
func npmTarball() ([]byte, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	if err := writeTar(gz, map[string][]byte{
		"package/package.json": []byte(`{"name":"runhost-greet-js","version":"1.0.0","main":"index.js"}`),
		"package/index.js":     []byte("module.exports = (name) => `hello ${name} from npm`;\n"),
	}); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Tar packs files (with their directories) into a tar stream.
func Tar(files map[string][]byte) (io.Reader, error) {
	var buf bytes.Buffer
	if err := writeTar(&buf, files); err != nil {
		return nil, err
	}
	return &buf, nil
}

func writeTar(w io.Writer, files map[string][]byte) error {
	tw := tar.NewWriter(w)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	dirs := map[string]bool{}
	for _, name := range names {
		parts := strings.Split(name, "/")
		for i := 1; i < len(parts); i++ {
			d := strings.Join(parts[:i], "/") + "/"
			if !dirs[d] {
				dirs[d] = true
				if err := tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, Typeflag: tar.TypeDir, ModTime: time.Unix(0, 0)}); err != nil {
					return err
				}
			}
		}
		content := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		if _, err := tw.Write(content); err != nil {
			return err
		}
	}
	return tw.Close()
}
