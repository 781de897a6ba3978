package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runhost/runhost/internal/testenv"
)

// TestPluginsChangeWhileServing adds, replaces and removes plugins in a
// watched plugin directory while runs keep coming: no run may fail.
func TestPluginsChangeWhileServing(t *testing.T) {
	bins := testenv.Build(t)
	dir := t.TempDir()
	for _, name := range []string{"runhost-plugin-shell", "runhost-plugin-python"} {
		b, err := os.ReadFile(filepath.Join(bins.PluginDir, name))
		if err != nil {
			t.Fatal(err)
		}
		install(t, dir, name, b)
	}
	h := startHost(t, "RUNHOST_PLUGIN_DIR="+dir, "RUNHOST_POOL=shell=2")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := h.App.Registry.Watch(ctx); err != nil {
		t.Fatal(err)
	}

	var ok, failed atomic.Int64
	var failures sync.Map
	stop := make(chan struct{})
	var traffic sync.WaitGroup
	for range 2 {
		traffic.Add(1)
		go func() {
			defer traffic.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				status, body := h.post("/runtimes/shell/run", map[string]any{"code": "echo up"})
				if status == 200 && strings.Contains(string(body), `"stdout":"up\n"`) {
					ok.Add(1)
				} else {
					failed.Add(1)
					failures.Store(string(body), status)
				}
			}
		}()
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, what, cond)
	}
	listed := func(name string) bool {
		status, _ := h.get("/runtimes/" + name)
		return status == 200
	}

	// Added.
	probe, err := os.ReadFile(filepath.Join(pluginDirWith(t, "hostile"), "runhost-plugin-hostile"))
	if err != nil {
		t.Fatal(err)
	}
	install(t, dir, "runhost-plugin-hostile", probe)
	waitFor("the new plugin to appear", func() bool { return listed("hostile") })
	if res := h.run("hostile", map[string]any{"code": "fine"}); res.ExitCode != 0 {
		t.Errorf("the new plugin's run: %+v", res)
	}

	// Replaced: the same plugin, a different binary (a byte more at the end).
	before := h.App.Registry.Reports()
	shell, _ := os.ReadFile(filepath.Join(dir, "runhost-plugin-shell"))
	install(t, dir, "runhost-plugin-shell", append(shell, 0))
	waitFor("the shell plugin to be restarted from its new binary", func() bool {
		for _, r := range h.App.Registry.Reports() {
			if r.Runtime == "shell" {
				for _, b := range before {
					if b.Runtime == "shell" && b.Checksum != r.Checksum && r.State == "healthy" {
						return true
					}
				}
			}
		}
		return false
	})

	// Removed.
	if err := os.Remove(filepath.Join(dir, "runhost-plugin-hostile")); err != nil {
		t.Fatal(err)
	}
	waitFor("the removed plugin to disappear", func() bool { return !listed("hostile") })
	time.Sleep(time.Second)
	close(stop)
	traffic.Wait()
	if failed.Load() > 0 {
		failures.Range(func(k, v any) bool { t.Errorf("failed run: %v %v", v, k); return true })
	}
	if ok.Load() < 5 {
		t.Errorf("only %d runs went through while plugins changed", ok.Load())
	}
	t.Logf("%d runs, %d failed, while a plugin was added, replaced and removed", ok.Load()+failed.Load(), failed.Load())

	// The same through the admin endpoint and the listing's details.
	status, body := h.do(context.Background(), http.MethodPost, "/admin/plugins/reload", nil)
	if status != 200 || !strings.Contains(string(body), `"sha256"`) || !strings.Contains(string(body), `"protocol":2`) {
		t.Errorf("POST /admin/plugins/reload: %d %s", status, body)
	}
	_, body = h.get("/runtimes/shell")
	if !strings.Contains(string(body), `"plugin":{"path":"`+dir+`/runhost-plugin-shell"`) || !strings.Contains(string(body), `"state":"healthy"`) {
		t.Errorf("GET /runtimes/shell lacks the plugin's path, checksum and state: %s", body)
	}
}

func install(t *testing.T, dir, name string, bin []byte) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".new")
	if err := os.WriteFile(tmp, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}
