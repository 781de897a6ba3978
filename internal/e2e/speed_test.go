package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/runhost/runhost/internal/e2e/scenario"
	"github.com/runhost/runhost/internal/testenv"
)

func TestWarmPoolServesRunsAndRefills(t *testing.T) {
	h := startHost(t, "RUNHOST_POOL=python=2,shell=1")
	testenv.Eventually(t, 60*time.Second, "the pool to fill", func() bool { return h.App.Docker.PoolStats().Idle >= 3 })
	for i := range 4 {
		res := h.run("python", map[string]any{"code": "import sys; print(sys.stdin.read(), end='')", "stdin": "pooled"})
		if res.Stdout != "pooled" {
			t.Fatalf("run %d: %+v", i, res)
		}
	}
	// Limits other than the default class take the cold path.
	if res := h.run("python", map[string]any{"code": "print('cold')", "memory_mb": 300}); res.Stdout != "cold\n" {
		t.Fatalf("cold path: %+v", res)
	}
	s := h.App.Docker.PoolStats()
	if s.Hits < 2 {
		t.Errorf("pool stats %+v: want runs served from the pool", s)
	}
	testenv.Eventually(t, 60*time.Second, "the pool to refill", func() bool { return h.App.Docker.PoolStats().Idle >= 3 })
}

// The foundation's and the hostile suite's cases behave the same on the
// warm pool's path.
func TestHostileSuiteOnTheWarmPool(t *testing.T) {
	h := startHost(t, "RUNHOST_POOL=python=2,shell=2", "RUNHOST_MAX_BODY_BYTES=16777216", "RUNHOST_FILE_SIZE_MB=32")
	testenv.Eventually(t, 60*time.Second, "the pool to fill", func() bool { return h.App.Docker.PoolStats().Idle >= 4 })
	runHostileSuite(t, h, false)
	if s := h.App.Docker.PoolStats(); s.Hits == 0 {
		t.Errorf("no run came from the pool: %+v", s)
	}
}

type sessionInfo struct {
	ID   string `json:"id"`
	Runs int    `json:"runs"`
	Busy bool   `json:"busy"`
}

func (h *host) createSession(t *testing.T, req map[string]any) sessionInfo {
	t.Helper()
	status, body := h.post("/sessions", req)
	if status != http.StatusCreated {
		t.Fatalf("create session: %d %s", status, body)
	}
	var info sessionInfo
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatal(err)
	}
	return info
}

func TestSessions(t *testing.T) {
	h := startHost(t, "RUNHOST_SESSIONS_PER_KEY=2")
	s := h.createSession(t, map[string]any{"runtime": "python"})
	scenario.PythonSession(t, h.post, s.ID)
	t.Run("a client hanging up cancels the run, not the session", func(t *testing.T) {
		scenario.SessionSurvivesHangUp(t, h.post, h.URL, h.Key, s.ID)
	})
	t.Run("limits are the session's", func(t *testing.T) {
		status, body := h.post("/sessions/"+s.ID+"/run", map[string]any{"code": "1", "memory_mb": 512})
		if status != 400 {
			t.Errorf("%d %s", status, body)
		}
	})
	t.Run("every field a session run does not honour is refused", func(t *testing.T) {
		for _, tc := range []struct {
			field  string
			value  any
			status int
		}{
			{"version", "3.13", 400},
			{"version", "3", 400}, // the newest 3.x, not the session's 3.11
			{"version", "9.9", 404},
			{"requirements", []string{"six"}, 400},
			{"image", "runhost/python:3.13", 400},
			{"dockerfile", "FROM scratch", 400},
			{"build_args", map[string]string{"A": "b"}, 400},
			{"workspace", "ws", 400},
			{"cpus", 0.5, 400},
		} {
			status, body := h.post("/sessions/"+s.ID+"/run", map[string]any{"code": "print(1)", tc.field: tc.value})
			if status != tc.status {
				t.Errorf("%s=%v: %d %s, want %d", tc.field, tc.value, status, body, tc.status)
			}
		}
		if r := scenario.SessionRun(t, h.post, s.ID, map[string]any{"code": "import sys; print(sys.version_info[:2])", "version": "3.11"}); r.Stdout != "(3, 11)\n" {
			t.Errorf("the session's own version: %+v", r)
		}
	})
	t.Run("caps per key", func(t *testing.T) {
		s2 := h.createSession(t, map[string]any{"runtime": "shell"})
		status, body := h.post("/sessions", map[string]any{"runtime": "shell"})
		if status != http.StatusTooManyRequests || decodeError(t, body).Error.Code != "too_many_sessions" {
			t.Errorf("third session: %d %s", status, body)
		}
		h.do(context.Background(), http.MethodDelete, "/sessions/"+s2.ID, nil)
	})
	status, body := h.get("/sessions/" + s.ID)
	if status != 200 || !strings.Contains(string(body), `"runs":`) {
		t.Errorf("GET session: %d %s", status, body)
	}
	status, body = h.get("/sessions")
	var list struct {
		Sessions []sessionInfo `json:"sessions"`
	}
	if err := json.Unmarshal(body, &list); status != 200 || err != nil || len(list.Sessions) != 1 || list.Sessions[0].ID != s.ID {
		t.Errorf("GET /sessions: %d %s", status, body)
	}
	status, body = h.post("/sessions", map[string]any{"runtime": "python", "ttl_s": 100000})
	if e := decodeError(t, body); status != 400 || e.Error.Code != "limit_exceeded" || !strings.Contains(e.Error.Message, "ttl_s") {
		t.Errorf("ttl_s above the maximum lifetime: %d %s", status, body)
	}
	if status, _ := h.do(context.Background(), http.MethodDelete, "/sessions/"+s.ID, nil); status != 204 {
		t.Errorf("DELETE: %d", status)
	}
	if status, body := h.post("/sessions/"+s.ID+"/run", map[string]any{"code": "1"}); status != 404 || decodeError(t, body).Error.Code != "session_not_found" {
		t.Errorf("run in a deleted session: %d %s", status, body)
	}
	label := "runhost.instance=" + h.App.Instance
	testenv.Eventually(t, 30*time.Second, "the session's container to go", func() bool {
		return len(testenv.Containers(t, h.Docker, label)) == 0
	})
}

func TestSessionsExpireWhenIdle(t *testing.T) {
	h := startHost(t)
	s := h.createSession(t, map[string]any{"runtime": "shell", "ttl_s": 1})
	testenv.Eventually(t, 30*time.Second, "the idle session to expire", func() bool {
		status, _ := h.get("/sessions/" + s.ID)
		return status == 404
	})
}

// A sweep removes containers past their deadline. A session's container
// must carry the session's lifetime as its deadline, not one run's timeout
// (which once let a sweep end sessions two minutes after they started).
func TestSessionsSurviveTheSweep(t *testing.T) {
	h := startHost(t, "RUNHOST_SESSION_MAX_LIFETIME_S=900")
	s := h.createSession(t, map[string]any{"runtime": "shell"})
	containers := testenv.Containers(t, h.Docker, "runhost.session=true")
	var deadline int64
	for _, c := range containers {
		if c.Labels["runhost.instance"] == h.App.Instance {
			deadline, _ = strconv.ParseInt(c.Labels["runhost.deadline"], 10, 64)
		}
	}
	if min := time.Now().Add(900 * time.Second).Unix(); deadline < min {
		t.Fatalf("the session's container may be swept at %d, before its lifetime ends (%d)", deadline, min)
	}
	if _, err := h.App.Executor.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if status, body := h.post("/sessions/"+s.ID+"/run", map[string]any{"code": "echo alive"}); status != 200 || !strings.Contains(string(body), "alive") {
		t.Fatalf("the session after a sweep: %d %s", status, body)
	}
}

// A session whose container goes away (removed by an operator, killed by
// the engine) ends by itself: it no longer counts against the caps and a
// run in it is a clear 404, not a hang.
func TestSessionWhoseContainerDiesEnds(t *testing.T) {
	h := startHost(t)
	s := h.createSession(t, map[string]any{"runtime": "shell"})
	for _, c := range testenv.Containers(t, h.Docker, "runhost.session=true") {
		if c.Labels["runhost.instance"] == h.App.Instance {
			if err := h.Docker.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	testenv.Eventually(t, 30*time.Second, "the session to end with its container", func() bool {
		status, _ := h.get("/sessions/" + s.ID)
		return status == http.StatusNotFound
	})
	if status, body := h.post("/sessions/"+s.ID+"/run", map[string]any{"code": "echo hi"}); status != http.StatusNotFound {
		t.Errorf("run in the ended session: %d %s", status, body)
	}
}

func TestSessionsBelongToTheirKey(t *testing.T) {
	h := startHost(t)
	s := h.createSession(t, map[string]any{"runtime": "shell"})
	// Another key: the same host, but asking as someone else is simulated
	// through the manager directly.
	if _, err := h.App.Sessions.Get("someone-else", s.ID); err == nil {
		t.Fatal("another key sees the session")
	}
}
