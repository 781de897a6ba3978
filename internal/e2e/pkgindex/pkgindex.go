// Package pkgindex is the content of the package index the install tests
// use instead of the internet: a pip "simple" index with one wheel
// (runhost-greet 1.0) and an npm registry with one package
// (runhost-greet-js 1.0.0), both built here. Each suite serves it its own
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
	sum := sha256.Sum256(wheel)
	files["files/"+wheelName] = wheel
	files["simple/runhost-greet/index.html"] = fmt.Appendf(nil,
		`<html><body><a href="/files/%s#sha256=%x">%s</a></body></html>`, wheelName, sum, wheelName)
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

// wheel makes a pure-Python wheel of runhost-greet 1.0.
func wheel() (string, []byte, error) {
	const dist = "runhost_greet-1.0.dist-info"
	files := []struct{ name, content string }{
		{"runhost_greet/__init__.py", "def greet(name):\n    return f'hello {name} from a wheel'\n"},
		{dist + "/METADATA", "Metadata-Version: 2.1\nName: runhost-greet\nVersion: 1.0\n"},
		{dist + "/WHEEL", "Wheel-Version: 1.0\nGenerator: runhost-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	var record strings.Builder
	for _, f := range files {
		w, err := zw.Create(f.name)
		if err != nil {
			return "", nil, err
		}
		_, _ = io.WriteString(w, f.content)
		sum := sha256.Sum256([]byte(f.content))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f.name, base64.RawURLEncoding.EncodeToString(sum[:]), len(f.content))
	}
	record.WriteString(dist + "/RECORD,,\n")
	w, err := zw.Create(dist + "/RECORD")
	if err != nil {
		return "", nil, err
	}
	_, _ = io.WriteString(w, record.String())
	if err := zw.Close(); err != nil {
		return "", nil, err
	}
	return "runhost_greet-1.0-py3-none-any.whl", buf.Bytes(), nil
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
