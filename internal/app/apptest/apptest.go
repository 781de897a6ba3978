// Package apptest starts a whole host for tests that need no engine: the
// real plugins (built once per test process; no Docker), the real policy,
// runner, sessions, admission and HTTP API, wired by app.NewWithExecutor to
// a fake executor (internal/executor/fakeexec) that records every job and
// answers with scripted results. `go test -short ./...` runs on a laptop
// without Docker through it; what a feature does on an engine is proven by
// the tests against a real one (internal/e2e).
package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/runhost/runhost/internal/app"
	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/config"
	"github.com/runhost/runhost/internal/executor/fakeexec"
	"github.com/runhost/runhost/internal/testenv"
)

// The API keys of a host Start makes: two tenants.
const (
	Alice = "apptest-key-alice"
	Bob   = "apptest-key-bob"
)

// Host is a running host on loopback with a fake executor.
type Host struct {
	*app.App
	Exec *fakeexec.Executor
	URL  string
	t    testing.TB
}

// Start starts a host configured by env on top of test defaults: the
// shipped plugins, no self-tests, no pool, a workspace in a temporary
// directory (no session filesystems) and two API keys, Alice and Bob.
// Everything stops when the test ends.
func Start(t testing.TB, env ...string) *Host {
	t.Helper()
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	lines := fmt.Sprintf("alice %s\nbob %s\n", auth.Hash(Alice), auth.Hash(Bob))
	if err := os.WriteFile(keys, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	ws := filepath.Join(dir, "workspace")
	if err := os.Mkdir(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.FromEnv(append([]string{
		"RUNHOST_PLUGIN_DIR=" + testenv.BuildPlugins(t),
		"RUNHOST_SELFTEST_ON_START=false",
		"RUNHOST_POOL=off",
		"RUNHOST_API_KEYS_FILE=" + keys,
		"RUNHOST_WORKSPACE_ROOT=" + ws,
		"RUNHOST_WORKSPACE_QUOTA_MODE=off",
	}, env...))
	if err != nil {
		t.Fatal(err)
	}
	exec := fakeexec.New()
	log := hclog.New(&hclog.LoggerOptions{Output: io.Discard})
	a, err := app.NewWithExecutor(context.Background(), cfg, log, exec)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		srv.Close()
		a.Close()
	})
	return &Host{App: a, Exec: exec, URL: srv.URL, t: t}
}

// Do sends a request with key (none when empty) and a JSON body (none
// when empty) and returns the status and the body.
func (h *Host) Do(ctx context.Context, key, method, path, body string) (int, []byte) {
	h.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.URL+path, r)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// PutFile uploads content to path in key's workspace session through the
// files API and returns the status.
func (h *Host) PutFile(key, session, path string, content []byte) int {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPut, h.URL+"/workspaces/"+session+"/files/"+path, bytes.NewReader(content))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Post sends body to path as Alice.
func (h *Host) Post(path, body string) (int, []byte) {
	h.t.Helper()
	return h.Do(context.Background(), Alice, http.MethodPost, path, body)
}

// Code is the error code of an error answer ({"error": {"code"}}), or ""
// when body is none.
func Code(body []byte) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error.Code
}
