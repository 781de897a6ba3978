// Package testenv helps tests that need the real engine and the real
// binaries: it builds the plugins and runhost-init once per test process,
// insists on Docker in CI, and checks that no container is left behind.
package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
)

// RepoRoot is the module's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// InCI reports whether the tests run in CI, where missing Docker is a failure.
func InCI() bool { return os.Getenv("CI") == "true" }

// RequireDocker returns a client for the engine. Without an engine the test
// fails in CI and is skipped elsewhere (and under -short).
func RequireDocker(t testing.TB) *client.Client {
	t.Helper()
	if testing.Short() && !InCI() {
		t.Skip("needs a Docker engine; skipped under -short")
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = cli.Ping(ctx)
	}
	if err != nil {
		if InCI() {
			t.Fatalf("CI=true and no Docker engine answers: %v", err)
		}
		t.Skipf("no Docker engine: %v (run `make engine`)", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// RequireImages fails (in CI) or skips when an image is missing.
func RequireImages(t testing.TB, cli *client.Client, images ...string) {
	t.Helper()
	for _, img := range images {
		if _, err := cli.ImageInspect(context.Background(), img); err != nil {
			if InCI() {
				t.Fatalf("image %s missing in CI: %v", img, err)
			}
			t.Skipf("image %s missing (run `make images`): %v", img, err)
		}
	}
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
	buildOut  []byte

	pluginsOnce sync.Once
	pluginsDir  string
	pluginsErr  error
	pluginsOut  []byte
)

// Binaries holds paths of freshly built binaries.
type Binaries struct {
	Init      string // runhost-init
	Egress    string // runhost-egress
	PluginDir string // the shipped plugins, as runhost-plugin-<name>
}

// Build compiles runhost-init, runhost-egress and every plugin under
// plugins/ into temporary directories, once per test process.
func Build(t testing.TB) Binaries {
	t.Helper()
	plugins := BuildPlugins(t)
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "runhost-test-bin-")
		if buildErr != nil {
			return
		}
		for _, name := range []string{"runhost-init", "runhost-egress"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(buildDir, name), "./cmd/"+name)
			cmd.Dir = RepoRoot()
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if buildOut, buildErr = cmd.CombinedOutput(); buildErr != nil {
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("build test binaries: %v\n%s", buildErr, buildOut)
	}
	return Binaries{Init: filepath.Join(buildDir, "runhost-init"), Egress: filepath.Join(buildDir, "runhost-egress"), PluginDir: plugins}
}

// BuildPlugins compiles every plugin under plugins/ into a temporary
// directory, as runhost-plugin-<name>, once per test process, and returns
// the directory: all a host with a fake executor needs (no engine).
func BuildPlugins(t testing.TB) string {
	t.Helper()
	pluginsOnce.Do(func() {
		pluginsDir, pluginsErr = os.MkdirTemp("", "runhost-test-plugins-")
		if pluginsErr != nil {
			return
		}
		// One go command builds them all, in parallel.
		cmd := exec.Command("go", "build", "-o", pluginsDir+string(filepath.Separator), "./plugins/...")
		cmd.Dir = RepoRoot()
		if pluginsOut, pluginsErr = cmd.CombinedOutput(); pluginsErr != nil {
			return
		}
		entries, err := os.ReadDir(pluginsDir)
		if err != nil {
			pluginsErr = err
			return
		}
		for _, e := range entries {
			if pluginsErr = os.Rename(filepath.Join(pluginsDir, e.Name()), filepath.Join(pluginsDir, "runhost-plugin-"+e.Name())); pluginsErr != nil {
				return
			}
		}
	})
	if pluginsErr != nil {
		t.Fatalf("build the plugins: %v\n%s", pluginsErr, pluginsOut)
	}
	return pluginsDir
}

// GoBuild compiles the package at pkgDir (relative to the repository root or
// absolute) into dir/name and returns the binary's path.
func GoBuild(t testing.TB, pkgDir, dir, name string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, pkgDir)
	cmd.Dir = RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkgDir, err, b)
	}
	return out
}

// Containers lists the containers carrying label (e.g. "runhost.instance=abc").
func Containers(t testing.TB, cli *client.Client, label string) []container.Summary {
	t.Helper()
	list, err := cli.ContainerList(context.Background(), container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", label)),
	})
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	return list
}

// AnyRunning reports whether a container with the label is running: a run's
// container, as opposed to the init volume's helper, which carries the same
// labels but is never started.
func AnyRunning(t testing.TB, cli *client.Client, label string) bool {
	t.Helper()
	for _, c := range Containers(t, cli, label) {
		if c.State == "running" {
			return true
		}
	}
	return false
}

// NoLeftovers fails the test if any container or volume of the host
// instance remains.
func NoLeftovers(t testing.TB, cli *client.Client, instance string) {
	t.Helper()
	if left := Containers(t, cli, "runhost.instance="+instance); len(left) > 0 {
		for _, c := range left {
			t.Errorf("container left behind: %s %v %s", c.ID[:12], c.Names, c.State)
		}
	}
	vols, err := cli.VolumeList(context.Background(), volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "runhost.instance="+instance))})
	if err != nil {
		t.Fatalf("list volumes: %v", err)
	}
	for _, v := range vols.Volumes {
		t.Errorf("volume left behind: %s", v.Name)
	}
}

// Eventually polls cond until it holds or timeout passes. It is for waiting
// on asynchronous outcomes, never for measuring speed.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
