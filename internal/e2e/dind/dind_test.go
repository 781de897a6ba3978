//go:build dind

// Package dind is the end-to-end test of the Docker-in-Docker deployment.
// It needs a DinD daemon reached over TLS and a shared workspace directory,
// which scripts/e2e-dind.sh (make e2e-dind) sets up and passes in through
// DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, DIND_ENABLED,
// RUNHOST_WORKSPACE_ROOT and DIND_WORKSPACE_PATH; it is built only with
// -tags dind.
package dind

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/hashicorp/go-hclog"

	"github.com/runhost/runhost/internal/app"
	"github.com/runhost/runhost/internal/config"
	"github.com/runhost/runhost/internal/testenv"
)

func TestDinD(t *testing.T) {
	if !strings.HasPrefix(os.Getenv("DOCKER_HOST"), "tcp://") || os.Getenv("DOCKER_TLS_VERIFY") == "" {
		t.Fatalf("run through scripts/e2e-dind.sh: DOCKER_HOST=%q DOCKER_TLS_VERIFY=%q", os.Getenv("DOCKER_HOST"), os.Getenv("DOCKER_TLS_VERIFY"))
	}
	inner, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()

	bins := testenv.Build(t)
	t.Setenv("RUNHOST_PLUGIN_DIR", bins.PluginDir)
	t.Setenv("RUNHOST_INIT_PATH", bins.Init)
	t.Setenv("RUNHOST_SELFTEST_ON_START", "false")
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Engine.DindEnabled || cfg.Workspace.Root == "" || cfg.Workspace.DaemonDir != "/workspaces" {
		t.Fatalf("want DIND_ENABLED, RUNHOST_WORKSPACE_ROOT and DIND_WORKSPACE_PATH=/workspaces, got %+v", cfg)
	}
	a, err := app.New(context.Background(), cfg, hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: os.Stderr}))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	defer func() {
		// Nothing of this host may be left on the inner daemon once it has
		// stopped (its warm pool and background removals included).
		srv.Close()
		a.Close()
		list, err := inner.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "runhost.managed=true"))})
		if err != nil || len(list) > 0 {
			t.Errorf("left on the inner daemon: %d containers (%v)", len(list), err)
		}
	}()

	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if body != "" {
			ct := "application/json" // what the host accepts: JSON, raw bytes for an upload
			if method == http.MethodPut {
				ct = "application/octet-stream"
			}
			req.Header.Set("Content-Type", ct)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	run := func(runtime string, req map[string]any) map[string]any {
		t.Helper()
		b, _ := json.Marshal(req)
		status, body := do(http.MethodPost, "/runtimes/"+runtime+"/run", string(b))
		if status != 200 {
			t.Fatalf("run: %d %s", status, body)
		}
		var res map[string]any
		_ = json.Unmarshal([]byte(body), &res)
		return res
	}

	t.Run("ready over TLS", func(t *testing.T) {
		if status, body := do(http.MethodGet, "/readyz", ""); status != 200 {
			t.Fatalf("readyz: %d %s", status, body)
		}
	})
	t.Run("a run in a workspace directory", func(t *testing.T) {
		res := run("python", map[string]any{"workspace": "dind-session/app", "code": "import os\nprint(os.getcwd())\nopen('made-by-run.txt', 'w').write('hello host')"})
		if res["stdout"] != "/workspaces/dind-session/app\n" {
			t.Fatalf("%v", res)
		}
		b, err := os.ReadFile(filepath.Join(cfg.Workspace.Root, "dind-session", "app", "made-by-run.txt"))
		if err != nil || string(b) != "hello host" {
			t.Fatalf("the run's file is not visible at the host's workspace root: %q %v", b, err)
		}
		if status, body := do(http.MethodGet, "/workspaces/dind-session/files/app/made-by-run.txt", ""); status != 200 || body != "hello host" {
			t.Fatalf("files API: %d %q", status, body)
		}
		if status, body := do(http.MethodPut, "/workspaces/dind-session/files/app/uploaded.txt", "from the API"); status != 200 {
			t.Fatalf("PUT: %d %s", status, body)
		}
		res = run("shell", map[string]any{"workspace": "dind-session/app", "code": "cat uploaded.txt"})
		if res["stdout"] != "from the API" {
			t.Fatalf("the next run does not see the upload: %v", res)
		}
	})
	t.Run("a container with network cannot use the daemon", func(t *testing.T) {
		// Like an install step: the inner daemon's default bridge, with egress.
		probe := `
import socket, ssl
route = [l.split() for l in open('/proc/net/route').read().splitlines()[1:]]
g = next(r[2] for r in route if r[1] == '00000000')
gw = socket.inet_ntoa(bytes.fromhex(g)[::-1])
for port in (2375, 2376):
    s = socket.socket(); s.settimeout(3)
    try:
        s.connect((gw, port))
    except OSError as e:
        print(port, 'closed', e.errno); continue
    if port == 2375:
        print(port, 'OPEN'); continue
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    try:
        t = ctx.wrap_socket(s); t.sendall(b'GET /version HTTP/1.0\r\n\r\n'); print(port, 'answered', t.recv(200))
    except (ssl.SSLError, OSError) as e:
        print(port, 'tls-refused', type(e).__name__)
`
		ctx := context.Background()
		c, err := inner.ContainerCreate(ctx, &container.Config{Image: "runhost/python:3.11", Cmd: []string{"python3", "-c", probe}, Labels: map[string]string{"runhost.managed": "true"}},
			&container.HostConfig{NetworkMode: network.NetworkBridge}, nil, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		defer inner.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
		if err := inner.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
			t.Fatal(err)
		}
		waitCh, errCh := inner.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
		select {
		case <-waitCh:
		case err := <-errCh:
			t.Fatal(err)
		case <-time.After(60 * time.Second):
			t.Fatal("probe did not finish")
		}
		rc, err := inner.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		_, _ = io.Copy(&out, rc)
		rc.Close()
		t.Logf("probe: %s", out.String())
		refused2376 := strings.Contains(out.String(), "2376 tls-refused") || strings.Contains(out.String(), "2376 closed")
		if !strings.Contains(out.String(), "2375 closed") || !refused2376 {
			t.Fatalf("the daemon is reachable from a container with network:\n%s", out.String())
		}
	})
}
