package e2e

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/runhost/runhost/internal/testenv"
)

// packageIndex is a local pip index and npm registry on a Docker network the
// test creates, so install tests need no internet. It serves one wheel
// (runhost-greet 1.0) and one npm package (runhost-greet-js 1.0.0), both
// built by the test.
type packageIndex struct {
	Network     string // join it with RUNHOST_INSTALL_NETWORK
	Subnet      string // its address range, allowed with RUNHOST_EGRESS_ALLOW_CIDRS
	PipIndexURL string
	NpmRegistry string
}

const indexPort = "8000"

func startPackageIndex(t testing.TB, cli *client.Client) packageIndex {
	t.Helper()
	ctx := context.Background()
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	netName := "runhost-test-index-" + hex.EncodeToString(suffix[:])
	if _, err := cli.NetworkCreate(ctx, netName, network.CreateOptions{Labels: map[string]string{"runhost.test": "true"}}); err != nil {
		t.Fatalf("create network: %v", err)
	}
	netInfo, err := cli.NetworkInspect(ctx, netName, network.InspectOptions{})
	if err != nil || len(netInfo.IPAM.Config) == 0 {
		t.Fatalf("inspect network: %v", err)
	}
	t.Cleanup(func() { _ = cli.NetworkRemove(context.Background(), netName) })

	// A fresh host name per index makes its URL, and so every install's
	// cache key, new: earlier runs' caches are never reused by a test.
	alias := "index-" + hex.EncodeToString(suffix[:])
	base := "http://" + alias + ":" + indexPort
	files := map[string][]byte{}
	wheelName, wheel := buildWheel(t)
	sum := sha256.Sum256(wheel)
	files["srv/files/"+wheelName] = wheel
	files["srv/simple/runhost-greet/index.html"] = fmt.Appendf(nil,
		`<html><body><a href="/files/%s#sha256=%x">%s</a></body></html>`, wheelName, sum, wheelName)
	tgz := buildNpmTarball(t)
	sha1sum := sha1.Sum(tgz)
	sha512sum := sha512.Sum512(tgz)
	meta, _ := json.Marshal(map[string]any{
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
	files["srv/runhost-greet-js"] = meta
	files["srv/tarballs/runhost-greet-js-1.0.0.tgz"] = tgz

	created, err := cli.ContainerCreate(ctx, &container.Config{
		Image:  "runhost/python:3.11",
		Cmd:    []string{"python3", "-u", "-m", "http.server", indexPort, "--directory", "/srv"},
		Labels: map[string]string{"runhost.test": "true"},
	}, &container.HostConfig{NetworkMode: container.NetworkMode(netName)}, &network.NetworkingConfig{
		EndpointsConfig: map[string]*network.EndpointSettings{netName: {Aliases: []string{alias}}},
	}, nil, "")
	if err != nil {
		t.Fatalf("create index container: %v", err)
	}
	t.Cleanup(func() {
		_ = cli.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	})
	if err := cli.CopyToContainer(ctx, created.ID, "/", tarOf(t, files), container.CopyToContainerOptions{}); err != nil {
		t.Fatalf("copy index files: %v", err)
	}
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start index: %v", err)
	}
	testenv.Eventually(t, 20*time.Second, "the package index to serve", func() bool {
		rc, err := cli.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStderr: true, ShowStdout: true})
		if err != nil {
			return false
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return bytes.Contains(b, []byte("Serving HTTP"))
	})
	return packageIndex{Network: netName, Subnet: netInfo.IPAM.Config[0].Subnet, PipIndexURL: base + "/simple", NpmRegistry: base + "/"}
}

// env is the host configuration that points installs at the index.
func (p packageIndex) env() []string {
	return []string{
		"RUNHOST_INSTALL_NETWORK=" + p.Network,
		"RUNHOST_PIP_INDEX_URL=" + p.PipIndexURL,
		"RUNHOST_NPM_REGISTRY=" + p.NpmRegistry,
		"RUNHOST_EGRESS_ALLOW_CIDRS=" + p.Subnet,
	}
}

// buildWheel makes a pure-Python wheel of runhost-greet 1.0.
func buildWheel(t testing.TB) (string, []byte) {
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
			t.Fatal(err)
		}
		io.WriteString(w, f.content)
		sum := sha256.Sum256([]byte(f.content))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f.name, base64.RawURLEncoding.EncodeToString(sum[:]), len(f.content))
	}
	record.WriteString(dist + "/RECORD,,\n")
	w, _ := zw.Create(dist + "/RECORD")
	io.WriteString(w, record.String())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return "runhost_greet-1.0-py3-none-any.whl", buf.Bytes()
}

// buildNpmTarball makes the npm tarball of runhost-greet-js 1.0.0.
func buildNpmTarball(t testing.TB) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tr := tar.NewReader(tarOf(t, map[string][]byte{
		"package/package.json": []byte(`{"name":"runhost-greet-js","version":"1.0.0","main":"index.js"}`),
		"package/index.js":     []byte("module.exports = (name) => `hello ${name} from npm`;\n"),
	}))
	tw := tar.NewWriter(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		_ = tw.WriteHeader(h)
		_, _ = io.Copy(tw, tr)
	}
	_ = tw.Close()
	_ = gz.Close()
	return buf.Bytes()
}

// tarOf packs files (with their directories) into a tar stream.
func tarOf(t testing.TB, files map[string][]byte) io.Reader {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for name, content := range files {
		parts := strings.Split(name, "/")
		for i := 1; i < len(parts); i++ {
			d := strings.Join(parts[:i], "/") + "/"
			if !dirs[d] {
				dirs[d] = true
				_ = tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, Typeflag: tar.TypeDir, ModTime: time.Unix(0, 0)})
			}
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write(content)
	}
	_ = tw.Close()
	return &buf
}
