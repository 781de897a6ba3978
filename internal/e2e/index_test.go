package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/runhost/runhost/internal/e2e/pkgindex"
	"github.com/runhost/runhost/internal/testenv"
)

// packageIndex is a local pip index and npm registry on a Docker network the
// test creates, so install tests need no internet. It serves pkgindex's
// wheel and npm package, and the extra files a test adds (debianWheels).
type packageIndex struct {
	Network     string // join it with RUNHOST_INSTALL_NETWORK
	Subnet      string // its address range, allowed with RUNHOST_EGRESS_ALLOW_CIDRS
	PipIndexURL string
	NpmRegistry string
}

const indexPort = "8000"

func startPackageIndex(t testing.TB, cli *client.Client, extra ...map[string][]byte) packageIndex {
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
	content, err := pkgindex.Files(base)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, m := range append([]map[string][]byte{content}, extra...) {
		for name, b := range m {
			files["srv/"+name] = b
		}
	}

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
	archive, err := pkgindex.Tar(files)
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.CopyToContainer(ctx, created.ID, "/", archive, container.CopyToContainerOptions{}); err != nil {
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

var debianWheelFiles struct {
	sync.Once
	files   map[string][]byte
	dropped []string
	took    time.Duration
	err     error
}

// debianWheels is the package index's real wheels: requests, flask and
// their dependencies, made from Debian's packages (pkgindex.DebianWheels),
// which scripts/debian-wheels.sh fetches into .cache/debian-wheels (`make
// test` runs it; here it runs again, doing nothing when the cache is
// there). Where it cannot fetch them the test fails in CI, else skips.
func debianWheels(t testing.TB) map[string][]byte {
	t.Helper()
	w := &debianWheelFiles
	w.Do(func() {
		root := testenv.RepoRoot()
		out, err := exec.Command(filepath.Join(root, "scripts", "debian-wheels.sh")).CombinedOutput()
		if err != nil {
			w.err = fmt.Errorf("scripts/debian-wheels.sh: %w\n%s", err, out)
			return
		}
		start := time.Now()
		w.files, w.dropped, w.err = pkgindex.DebianWheels(filepath.Join(root, ".cache", "debian-wheels"))
		w.took = time.Since(start)
	})
	if w.err != nil {
		if testenv.InCI() {
			t.Fatalf("CI=true and the Debian packages for the package index are missing: %v", w.err)
		}
		t.Skipf("the Debian packages for the package index are missing: %v", w.err)
	}
	t.Logf("%d wheels from Debian's packages, made in %v; left out: %s", len(w.files)/2, w.took.Round(time.Millisecond), strings.Join(w.dropped, "; "))
	return w.files
}
