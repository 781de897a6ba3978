package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"

	"github.com/runhost/runhost/internal/e2e/pkgindex"
	"github.com/runhost/runhost/internal/testenv"
)

// Install steps, runs and images against the machinery and the disk they
// share with every other tenant: the egress proxy's socket, the dependency
// cache, the workspace volume, the engine's disk.

// greet installs runhost-greet (requirement line req: each distinct line
// is an install of its own) and runs it.
func greet(t *testing.T, h *host, req string) runResult {
	t.Helper()
	res := h.run("python", map[string]any{"code": "from runhost_greet import greet\nprint(greet('tenant'))", "requirements": []string{req}})
	if res.Stage != "run" || res.Stdout != "hello tenant from a wheel\n" {
		t.Fatalf("install of %q and run: %+v", req, res)
	}
	return res
}

// TestInstallStepCannotTakeTheProxySocket: a source distribution whose
// build backend (run by pip during the install, as the install step's
// user) tries to take the egress proxy's socket away from everyone: rename
// it, remove it, bind its own listener in its place or beside it, open up
// the directory (pkgindex's runhost-evil). Every attempt fails, the step
// still reaches the index through the proxy (connecting to a socket on a
// read-only mount works), and the next install, another request's, goes
// through the real proxy.
func TestInstallStepCannotTakeTheProxySocket(t *testing.T) {
	cli := dockerClient(t)
	idx := startPackageIndex(t, cli)
	h := startHostWith(t, cli, idx.env()...)

	res := h.run("python", map[string]any{"code": "print('ran')", "requirements": []string{"runhost-evil"}})
	if res.Stage != "install" {
		t.Fatalf("runhost-evil's build fails on purpose: %+v", res)
	}
	_, report, ok := strings.Cut(res.Stderr, pkgindex.EvilMark)
	report, _, _ = strings.Cut(report, "\n")
	var got map[string]any
	if err := json.Unmarshal([]byte(report), &got); !ok || err != nil {
		t.Fatalf("no report from the build backend in stderr %q: %v", res.Stderr, err)
	}
	t.Logf("the build backend's attempts: %v", got)
	if got["sockets"] != float64(1) {
		t.Fatalf("the install step sees %v proxy sockets, want 1", got["sockets"])
	}
	for _, what := range []string{"rename", "unlink", "create", "chmod", "bind"} {
		if got[what] == "DONE" {
			t.Errorf("the install step could %s in the proxy's socket directory", what)
		}
	}
	if got["proxy"] != "ok" {
		t.Errorf("the install step could not reach the index through the proxy: %v", got["proxy"])
	}
	// Another request's install goes through the real proxy.
	greet(t, h, "runhost-greet==1.0")
}

// proxyContainer is the host's running egress proxy container.
func proxyContainer(t *testing.T, h *host) container.Summary {
	t.Helper()
	var running []container.Summary
	for _, c := range testenv.Containers(t, h.Docker, "runhost.instance="+h.App.Instance) {
		if c.Labels["runhost.egress"] == "true" && c.State == "running" {
			running = append(running, c)
		}
	}
	if len(running) != 1 {
		t.Fatalf("%d running egress proxies, want 1", len(running))
	}
	return running[0]
}

// TestEgressProxyIsReplaced: a proxy that died, or that no longer answers
// (stopped, say), is noticed and replaced; the next install works.
func TestEgressProxyIsReplaced(t *testing.T) {
	cli := dockerClient(t)
	idx := startPackageIndex(t, cli)
	h := startHostWith(t, cli, idx.env()...)
	greet(t, h, "runhost-greet==1.0")
	first := proxyContainer(t, h)
	if first.Labels["runhost.egress"] != "true" {
		t.Fatal("no proxy")
	}
	ctx := context.Background()

	t.Run("a proxy that died", func(t *testing.T) {
		if err := cli.ContainerKill(ctx, first.ID, "KILL"); err != nil {
			t.Fatal(err)
		}
		greet(t, h, "runhost-greet>=1.0")
		if p := proxyContainer(t, h); p.ID == first.ID {
			t.Error("the killed proxy was not replaced")
		}
	})
	t.Run("a proxy that stops answering", func(t *testing.T) {
		p := proxyContainer(t, h)
		if err := cli.ContainerKill(ctx, p.ID, "STOP"); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 90*time.Second, "the engine's health check to find the stopped proxy unhealthy", func() bool {
			info, err := cli.ContainerInspect(ctx, p.ID)
			return err == nil && info.State != nil && info.State.Health != nil && info.State.Health.Status == container.Unhealthy
		})
		greet(t, h, "runhost-greet<2")
		if now := proxyContainer(t, h); now.ID == p.ID {
			t.Error("the proxy that does not answer was not replaced")
		}
	})
}

// TestInstallOutputIsCappedWhileWritten: an install writes its output to a
// filesystem of RUNHOST_INSTALL_DISK_MB; writing past it fails while
// writing, the result is a failed install that names the cap and the
// setting, and nothing is cached. Tricks that look small on the capped
// filesystem and grow when copied (a sparse file) fail too; hard links are
// copied once.
func TestInstallOutputIsCappedWhileWritten(t *testing.T) {
	h := startHost(t, "RUNHOST_PLUGIN_DIR="+pluginDirWith(t, "probe"), "RUNHOST_INSTALL_DISK_MB=16", "RUNHOST_ALLOW_INSTALL_NETWORK=false")
	// Installs are cached by content across hosts: a nonce makes each new.
	nonce := fmt.Sprintf("# %d\n", time.Now().UnixNano())
	probe := func(code string) runResult { return h.run("probe", map[string]any{"code": nonce + code}) }

	t.Run("writing past the cap", func(t *testing.T) {
		res := probe(`
import sys
n = 0
try:
    with open('/deps/fill', 'wb') as f:
        for i in range(64):
            f.write(b'x' * (1 << 20)); f.flush(); n += 1
    print('wrote 64 MiB')
except OSError as e:
    print('errno', e.errno, 'after', n, 'MiB')
    sys.exit(1)
`)
		if res.Stage != "install" || res.ExitCode == 0 {
			t.Fatalf("an install writing 64 MiB under a 16 MB cap: %+v", res)
		}
		var errno, n int
		if _, err := fmt.Sscanf(res.Stdout, "errno %d after %d MiB", &errno, &n); err != nil || errno != 28 || n > 16 {
			t.Errorf("the install's writes: %q, want ENOSPC (28) within 16 MiB", res.Stdout)
		}
		if !strings.Contains(res.Stderr, "16 MB") || !strings.Contains(res.Stderr, "RUNHOST_INSTALL_DISK_MB") {
			t.Errorf("stderr does not name the cap and its setting: %q", res.Stderr)
		}
		if again := probe("open('/deps/x', 'w').write('small')"); again.Stage != "run" || again.Install == nil || again.Install.Cached {
			t.Errorf("an install within the cap after a failed one: %+v", again)
		}
	})
	t.Run("a sparse file larger than the cap", func(t *testing.T) {
		res := probe("open('/deps/sparse', 'wb').truncate(60 << 20)")
		if res.Stage != "install" || res.ExitCode == 0 || !strings.Contains(res.Stderr, "more than") {
			t.Fatalf("a 60 MiB sparse file (within the file size limit) under a 16 MB cap: %+v", res)
		}
	})
	t.Run("hard links are copied once", func(t *testing.T) {
		res := probe("import os\nopen('/deps/f', 'wb').write(b'x' * (10 << 20))\nfor i in range(50):\n    os.link('/deps/f', f'/deps/l{i}')")
		if res.Stage != "run" {
			t.Fatalf("50 links to a 10 MiB file under a 16 MB cap: %+v", res)
		}
	})
	t.Run("nothing is left behind", func(t *testing.T) {
		vols, err := h.Docker.VolumeList(context.Background(), volume.ListOptions{Filters: filters.NewArgs(
			filters.Arg("label", "runhost.install-output"), filters.Arg("label", "runhost.instance="+h.App.Instance))})
		if err != nil {
			t.Fatal(err)
		}
		if len(vols.Volumes) > 0 {
			t.Errorf("install output volumes left: %d", len(vols.Volumes))
		}
	})
}

// startBoundedWorkspaceHost is startWorkspaceHost with every session a
// filesystem of its own (RUNHOST_WORKSPACE_QUOTA_MODE=fs).
func startBoundedWorkspaceHost(t *testing.T, env ...string) (*host, string) {
	t.Helper()
	return startWorkspaceHost(t, append([]string{"RUNHOST_WORKSPACE_QUOTA_MODE=fs"}, env...)...)
}

// TestWorkspaceQuotaHoldsWhileARunWrites: a run that writes past
// RUNHOST_WORKSPACE_QUOTA_MB gets ENOSPC while it writes; the workspace
// stays within the quota, the host stays healthy and other workspaces are
// unaffected.
func TestWorkspaceQuotaHoldsWhileARunWrites(t *testing.T) {
	h, root := startBoundedWorkspaceHost(t, "RUNHOST_WORKSPACE_QUOTA_MB=32")
	res := h.run("shell", map[string]any{"workspace": "full", "timeout_ms": 30000,
		"code": "for i in 1 2 3 4 5 6; do head -c 10M /dev/zero > f$i || { echo stopped at $i; break; }; done; ls -a"})
	if !strings.Contains(res.Stdout, "stopped at") || !strings.Contains(res.Stderr, "No space left on device") {
		t.Fatalf("a run writing 60 MiB into a 32 MB workspace: %+v", res)
	}
	if strings.Contains(res.Stdout, "lost+found") {
		t.Errorf("the session shows lost+found: %q", res.Stdout)
	}
	var used int64
	_ = filepath.WalkDir(filepath.Join(root, "full"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				used += info.Size()
			}
		}
		return nil
	})
	if used > 32<<20 {
		t.Errorf("the workspace holds %d bytes, over its 32 MB quota", used)
	}
	if status, _ := h.get("/healthz"); status != http.StatusOK {
		t.Fatalf("host unhealthy: %d", status)
	}
	// An upload into the full session is refused as over the quota, whether
	// the files API's count or the filesystem says so first.
	status, body := h.put("/workspaces/full/files/more.bin", strings.Repeat("x", 1<<20))
	if status != http.StatusRequestEntityTooLarge || decodeError(t, body).Error.Code != "quota_exceeded" {
		t.Errorf("upload into a full session: %d %s", status, body)
	}
	if other := h.run("shell", map[string]any{"workspace": "other", "code": "head -c 8M /dev/zero > f && echo ok; ls /workspaces"}); other.Stdout != "ok\nother\n" {
		t.Errorf("another workspace after one filled up: %+v", other)
	}
	// Deleting the workspace removes its filesystem.
	if status, body := h.do(context.Background(), http.MethodDelete, "/workspaces/full", nil); status != http.StatusNoContent && status != http.StatusOK {
		t.Fatalf("delete: %d %s", status, body)
	}
	if imgs, _ := filepath.Glob(filepath.Join(root, ".runhost", "volumes", "*.img")); len(imgs) != 1 {
		t.Errorf("%d session filesystems after deleting one of two, want 1", len(imgs))
	}
}

// TestWorkspaceIsNoexecAndNosuid: a file of the workspace with the exec
// bit cannot be executed by a run, and with RUNHOST_WORKSPACE_EXEC=true a
// setuid-root program there runs as the run user.
func TestWorkspaceIsNoexecAndNosuid(t *testing.T) {
	h, _ := startBoundedWorkspaceHost(t)
	res := h.run("shell", map[string]any{"workspace": "ws", "code": "grep ' /workspaces/ws ' /proc/self/mountinfo; cp /bin/echo ./e && chmod +x ./e && ./e EXECUTED; echo done"})
	if strings.Contains(res.Stdout, "EXECUTED") || !strings.Contains(res.Stdout, "done") {
		t.Errorf("a program in the workspace ran: %+v", res)
	}
	for _, opt := range []string{"noexec", "nosuid", "nodev"} {
		if !strings.Contains(res.Stdout, opt) {
			t.Errorf("the workspace mount lacks %s: %q", opt, res.Stdout)
		}
	}

	h, root := startBoundedWorkspaceHost(t, "RUNHOST_WORKSPACE_EXEC=true")
	if res := h.run("shell", map[string]any{"workspace": "ws/a", "code": "cp /usr/bin/id ./id"}); res.ExitCode != 0 {
		t.Fatalf("copy id: %+v", res)
	}
	id := filepath.Join(root, "ws", "a", "id")
	if err := os.Chown(id, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(id, 0o4755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	res = h.run("shell", map[string]any{"workspace": "ws/b", "code": "../a/id -u; grep ' /workspaces/ws ' /proc/self/mountinfo"})
	if !strings.HasPrefix(res.Stdout, "1000\n") || !strings.Contains(res.Stdout, "nosuid") || strings.Contains(res.Stdout, "noexec") {
		t.Errorf("a setuid-root program in an exec workspace: %+v", res)
	}
}

// TestImageVolumesGetABoundedTmpfs: a built image that declares VOLUMEs
// gets a tmpfs of the run's /tmp size at each (writable, bounded), and the
// engine creates no anonymous volume on its disk for the run's container.
func TestImageVolumesGetABoundedTmpfs(t *testing.T) {
	h := startHost(t)
	stop := watchEvents(t, h.Docker, filters.NewArgs(filters.Arg("type", "container"), filters.Arg("type", "volume")))
	dockerfile := fmt.Sprintf("FROM runhost/shell:bookworm\nLABEL test.nonce=%d\nVOLUME /data /cache/\n", time.Now().UnixNano())
	res := h.run("dockerfile", map[string]any{"dockerfile": dockerfile,
		"command": "stat -f -c %T /data /cache; df -k /data | awk 'NR==2 {print $2}'; head -c 40M /dev/zero > /data/a; head -c 40M /dev/zero > /data/b 2>/dev/null; echo rc=$?; touch /cache/ok && echo writable"})
	if res.Stage != "run" || res.Stdout != "tmpfs\ntmpfs\n65536\nrc=1\nwritable\n" {
		t.Fatalf("VOLUME paths: %+v", res)
	}
	// The engine's own account: no volume was mounted into the run's
	// container but the init volume.
	runContainer := ""
	var mounted []events.Message
	for _, m := range stop() {
		switch {
		case m.Type == events.ContainerEventType && m.Action == events.ActionCreate && m.Actor.Attributes["name"] == "runhost-"+res.RunID:
			runContainer = m.Actor.ID
		case m.Type == events.VolumeEventType && m.Action == events.ActionMount:
			mounted = append(mounted, m)
		}
	}
	if runContainer == "" {
		t.Fatal("the run's container was not seen created")
	}
	for _, m := range mounted {
		if m.Actor.Attributes["container"] == runContainer && m.Actor.Attributes["destination"] != "/.runhost" {
			t.Errorf("volume %s mounted at %s in the run's container", m.Actor.ID, m.Actor.Attributes["destination"])
		}
	}
}
