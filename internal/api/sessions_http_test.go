package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/runhost/runhost/internal/app/apptest"
	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/fakeexec"
	"github.com/runhost/runhost/internal/testenv"
)

// createSession makes a python session for key and returns its id.
func createSession(t *testing.T, h *apptest.Host, key string) string {
	t.Helper()
	status, body := h.Do(context.Background(), key, http.MethodPost, "/sessions", `{"runtime":"python"}`)
	if status != http.StatusCreated {
		t.Fatalf("create a session: %d %s", status, body)
	}
	var info struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &info); err != nil || info.ID == "" {
		t.Fatalf("create a session: %s %v", body, err)
	}
	return info.ID
}

// TestSessionRoutes: a session's life over HTTP on the fake executor:
// create, run, busy, hang-up, another key, delete.
func TestSessionRoutes(t *testing.T) {
	h := apptest.Start(t, "RUNHOST_SESSIONS_PER_KEY=2", "RUNHOST_MAX_SESSIONS=3")
	ctx := context.Background()
	id := createSession(t, h, apptest.Alice)
	run := "/sessions/" + id + "/run"

	h.Exec.OnRun(fakeexec.Exit(0, "hello\n", ""))
	status, body := h.Post(run, `{"code":"print('hello')"}`)
	if status != http.StatusOK || !strings.Contains(string(body), `"stdout":"hello\n"`) {
		t.Fatalf("run: %d %s", status, body)
	}

	// A second run while one goes is a 409; hanging up ends the run, not
	// the session.
	started := make(chan executor.Job, 1)
	h.Exec.OnRun(fakeexec.Hang(started))
	runCtx, hangUp := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Do(runCtx, apptest.Alice, http.MethodPost, run, `{"code":"while True: pass"}`)
	}()
	<-started
	if status, body := h.Post(run, `{"code":"1"}`); status != http.StatusConflict || apptest.Code(body) != "session_busy" {
		t.Errorf("a run in a busy session: %d %s", status, body)
	}
	hangUp()
	<-done
	testenv.Eventually(t, 10*time.Second, "the hung-up run ends", func() bool {
		status, body := h.Do(ctx, apptest.Alice, http.MethodGet, "/sessions/"+id, "")
		return status == http.StatusOK && strings.Contains(string(body), `"busy":false`)
	})
	if h.Exec.Sessions()[0].Ended() {
		t.Fatal("hanging up ended the session")
	}
	h.Exec.OnRun(fakeexec.Exit(0, "again\n", ""))
	if status, body := h.Post(run, `{"code":"1"}`); status != http.StatusOK {
		t.Errorf("a run after the hang-up: %d %s", status, body)
	}

	// Bob sees alice's session exactly as one that does not exist.
	missing := "s_000000000000000000000000"
	for _, r := range []struct{ method, path, body string }{
		{http.MethodGet, "/sessions/%s", ""},
		{http.MethodPost, "/sessions/%s/run", `{"code":"1"}`},
		{http.MethodDelete, "/sessions/%s", ""},
	} {
		s1, b1 := h.Do(ctx, apptest.Bob, r.method, strings.Replace(r.path, "%s", id, 1), r.body)
		s2, b2 := h.Do(ctx, apptest.Bob, r.method, strings.Replace(r.path, "%s", missing, 1), r.body)
		if s1 != http.StatusNotFound || apptest.Code(b1) != "session_not_found" || s1 != s2 ||
			strings.ReplaceAll(string(b1), id, "ID") != strings.ReplaceAll(string(b2), missing, "ID") {
			t.Errorf("bob %s %s: %d %s; a missing id: %d %s", r.method, r.path, s1, b1, s2, b2)
		}
	}
	if status, body := h.Do(ctx, apptest.Bob, http.MethodGet, "/sessions", ""); status != http.StatusOK || string(body) != `{"sessions":[]}`+"\n" {
		t.Errorf("bob's list: %d %s", status, body)
	}

	// Caps: two per key, three in all.
	createSession(t, h, apptest.Alice)
	if status, body := h.Post("/sessions", `{"runtime":"python"}`); status != http.StatusTooManyRequests || apptest.Code(body) != "too_many_sessions" {
		t.Errorf("alice's third session: %d %s", status, body)
	}
	createSession(t, h, apptest.Bob)
	if status, body := h.Do(ctx, apptest.Bob, http.MethodPost, "/sessions", `{"runtime":"python"}`); status != http.StatusTooManyRequests || apptest.Code(body) != "too_many_sessions" {
		t.Errorf("a fourth session: %d %s", status, body)
	}

	if status, body := h.Do(ctx, apptest.Alice, http.MethodDelete, "/sessions/"+id, ""); status != http.StatusNoContent {
		t.Errorf("delete: %d %s", status, body)
	}
	if !h.Exec.Sessions()[0].Closed() {
		t.Error("delete left the container")
	}
	if status, body := h.Post(run, `{"code":"1"}`); status != http.StatusNotFound || apptest.Code(body) != "session_not_found" {
		t.Errorf("a run in a deleted session: %d %s", status, body)
	}
}

// TestSessionEnded: a session whose container goes away during a run
// answers 410.
func TestSessionEnded(t *testing.T) {
	h := apptest.Start(t)
	id := createSession(t, h, apptest.Alice)
	h.Exec.OnRun(func(context.Context, executor.Job) (executor.Result, error) {
		h.Exec.Sessions()[0].Die()
		return executor.Result{}, executor.ErrSessionGone
	})
	if status, body := h.Post("/sessions/"+id+"/run", `{"code":"1"}`); status != http.StatusGone || apptest.Code(body) != "session_ended" {
		t.Errorf("%d %s, want 410 session_ended", status, body)
	}
	if status, _ := h.Do(context.Background(), apptest.Alice, http.MethodGet, "/sessions/"+id, ""); status != http.StatusNotFound {
		t.Errorf("the ended session: %d, want 404", status)
	}
}

// TestSessionRefusals: every refusal of the session routes (status and
// code), before anything starts.
func TestSessionRefusals(t *testing.T) {
	h := apptest.Start(t, "RUNHOST_SESSION_MAX_LIFETIME_S=3600", "RUNHOST_MAX_MEMORY_MB=1024")
	id := createSession(t, h, apptest.Alice)
	run := "/sessions/" + id + "/run"
	checkRefusals(t, h, []refusal{
		{"no runtime", "/sessions", `{}`, 400, "invalid_request"},
		{"unknown field", "/sessions", `{"runtime":"python","ttl":5}`, 400, "unknown_field"},
		{"negative ttl", "/sessions", `{"runtime":"python","ttl_s":-1}`, 400, "limit_exceeded"},
		{"overflowing ttl", "/sessions", `{"runtime":"python","ttl_s":9223372036854775807}`, 400, "limit_exceeded"},
		{"ttl above the lifetime", "/sessions", `{"runtime":"python","ttl_s":3601}`, 400, "limit_exceeded"},
		{"negative memory", "/sessions", `{"runtime":"python","memory_mb":-1}`, 400, "limit_exceeded"},
		{"memory above the maximum", "/sessions", `{"runtime":"python","memory_mb":1025}`, 400, "limit_exceeded"},
		{"cpus out of range", "/sessions", `{"runtime":"python","cpus":1e300}`, 400, "limit_exceeded"},
		{"unknown runtime", "/sessions", `{"runtime":"cobol"}`, 404, "unknown_runtime"},
		{"unknown version", "/sessions", `{"runtime":"python","version":"2.7"}`, 404, "unknown_version"},
		{"runtime without an image", "/sessions", `{"runtime":"dockerfile"}`, 400, "invalid_request"},
		{"bad workspace", "/sessions", `{"runtime":"python","workspace":"../x"}`, 400, "invalid_session"},

		{"run: no program", run, `{}`, 400, "no_code"},
		{"run: memory", run, `{"code":"1","memory_mb":64}`, 400, "invalid_request"},
		{"run: workspace", run, `{"code":"1","workspace":"proj"}`, 400, "invalid_request"},
		{"run: requirements", run, `{"code":"1","requirements":["x"]}`, 400, "invalid_request"},
		{"run: other version", run, `{"code":"1","version":"2.7"}`, 404, "unknown_version"},
		{"run: bad env", run, `{"code":"1","env":{"A=B":"c"}}`, 400, "invalid_env"},
		{"run: timeout above the maximum", run, `{"code":"1","timeout_ms":100000000}`, 400, "limit_exceeded"},
		{"run: unknown session", "/sessions/s_nope/run", `{"code":"1"}`, 404, "session_not_found"},
	})
	if n := len(h.Exec.Sessions()); n != 1 {
		t.Errorf("%d sessions started, want only the first", n)
	}
	if n := len(h.Exec.Sessions()[0].Runs()); n != 0 {
		t.Errorf("%d refused runs reached the session", n)
	}
}
