package api_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/runhost/runhost/internal/app/apptest"
	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/fakeexec"
	"github.com/runhost/runhost/internal/testenv"
)

// TestAdmissionSlotsAreReleased: with one run slot, every way a request
// can end (an answer, a stream, a refusal after admission, an engine
// error, a panic, a client hanging up; native, session and Piston routes)
// gives the slot back: the next run gets it.
func TestAdmissionSlotsAreReleased(t *testing.T) {
	h := apptest.Start(t, "RUNHOST_MAX_RUNS=1", "RUNHOST_QUEUE_WAIT_MS=60000")
	ctx := context.Background()
	session := createSession(t, h, apptest.Alice)
	const py = "/runtimes/python/run"

	// hangUp runs a request whose program never ends, and hangs up once
	// it runs.
	hangUp := func(path, body string) {
		started := make(chan executor.Job, 1)
		h.Exec.OnRun(fakeexec.Hang(started))
		reqCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.Do(reqCtx, apptest.Alice, http.MethodPost, path, body)
		}()
		<-started
		cancel()
		<-done
	}
	stream := func(path, body, want string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Authorization", "Bearer "+apptest.Alice)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), want) {
			t.Errorf("stream: %s, want %s", b, want)
		}
	}
	paths := []struct {
		name string
		do   func()
	}{
		{"answered", func() { h.Exec.OnRun(fakeexec.Exit(0, "", "")); h.Post(py, `{"code":"1"}`) }},
		{"streamed", func() { h.Exec.OnRun(fakeexec.Exit(0, "out", "")); stream(py, `{"code":"1"}`, "event: result") }},
		{"stream failed", func() {
			h.Exec.OnRun(fakeexec.Fail(executor.ErrEngineUnavailable))
			stream(py, `{"code":"1"}`, "engine_unavailable")
		}},
		{"streamed, then failed", func() {
			h.Exec.OnRun(func(_ context.Context, job executor.Job) (executor.Result, error) {
				job.Output(executor.Stdout, []byte("partial"))
				return executor.Result{}, executor.ErrEngineUnavailable
			})
			stream(py, `{"code":"1"}`, "event: error")
		}},
		{"refused by the runner", func() { h.Post(py, `{"code":"1","version":"2.7"}`) }},
		{"refused by the policy", func() { h.Post(py, `{"code":"1","timeout_ms":100000000}`) }},
		{"engine error", func() { h.Exec.OnRun(fakeexec.Fail(executor.ErrEngineUnavailable)); h.Post(py, `{"code":"1"}`) }},
		{"engine panic", func() {
			h.Exec.OnRun(func(context.Context, executor.Job) (executor.Result, error) { panic("engine bug") })
			if status, _ := h.Post(py, `{"code":"1"}`); status != http.StatusInternalServerError {
				t.Errorf("a panic answered %d", status)
			}
		}},
		{"client hung up", func() { hangUp(py, `{"code":"while True: pass"}`) }},
		{"session created", func() { createSession(t, h, apptest.Bob) }},
		{"session start failed", func() {
			h.Exec.OnStartSession(func(context.Context, executor.Job) error { return errors.New("no") })
			h.Post("/sessions", `{"runtime":"python"}`)
			h.Exec.OnStartSession(nil)
		}},
		{"session run", func() { h.Exec.OnRun(fakeexec.Exit(0, "", "")); h.Post("/sessions/"+session+"/run", `{"code":"1"}`) }},
		{"session run hung up", func() { hangUp("/sessions/"+session+"/run", `{"code":"while True: pass"}`) }},
		{"piston run", func() {
			h.Exec.OnRun(fakeexec.Exit(0, "", ""))
			h.Post("/api/v2/execute", `{"language":"python","version":"*","files":[{"content":"1"}]}`)
		}},
		{"piston engine error", func() {
			h.Exec.OnRun(fakeexec.Fail(executor.ErrImageMissing))
			h.Post("/api/v2/execute", `{"language":"python","version":"*","files":[{"content":"1"}]}`)
		}},
		{"piston hung up", func() { hangUp("/api/v2/execute", `{"language":"python","version":"*","files":[{"content":"1"}]}`) }},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			p.do()
			testenv.Eventually(t, 10*time.Second, "the run slot is free", func() bool {
				st := h.Admission.Stats()
				return st.InFlight == 0 && st.Queued == 0
			})
			h.Exec.OnRun(fakeexec.Exit(0, "next\n", ""))
			if status, body := h.Post(py, `{"code":"1"}`); status != http.StatusOK || !strings.Contains(string(body), `"stdout":"next\n"`) {
				t.Errorf("the next run: %d %s", status, body)
			}
		})
	}
}

// TestAdmissionQueue: with the slot taken, a run waits and, past the
// queue's wait, is refused with 429 and Retry-After; refused runs never
// reach the engine.
func TestAdmissionQueue(t *testing.T) {
	h := apptest.Start(t, "RUNHOST_MAX_RUNS=1", "RUNHOST_QUEUE_WAIT_MS=100")
	ctx := context.Background()
	started := make(chan executor.Job, 1)
	h.Exec.OnRun(fakeexec.Hang(started))
	reqCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Do(reqCtx, apptest.Alice, http.MethodPost, "/runtimes/python/run", `{"code":"1"}`)
	}()
	<-started
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.URL+"/runtimes/python/run", strings.NewReader(`{"code":"1"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+apptest.Bob)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || apptest.Code(body) != "too_many_requests" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("%d %s (Retry-After %q), want 429 too_many_requests with Retry-After", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if n := len(h.Exec.Jobs()); n != 1 {
		t.Errorf("%d jobs reached the engine, want the first only", n)
	}
	cancel()
	<-done
}
