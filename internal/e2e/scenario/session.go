// Package scenario holds end-to-end scenarios that every executor must pass
// the same way, so the Docker suite (internal/e2e) and the Kubernetes suite
// (internal/e2e/k8s) run one definition instead of two copies.
package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Post sends a JSON body to a running host and returns the status and body.
type Post func(path string, body any) (int, []byte)

// Result is the part of a run's response the scenarios check.
type Result struct {
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	TimedOut bool   `json:"timed_out"`
	Stage    string `json:"stage"`
	// DurationMS is the run's duration, for a test's log.
	DurationMS int64 `json:"duration_ms"`
	Install    *struct {
		Cached bool `json:"cached"`
	} `json:"install"`
}

// SessionRun runs req in session id and fails the test unless it is a 200.
func SessionRun(t *testing.T, post Post, id string, req map[string]any) Result {
	t.Helper()
	return run(t, post, "/sessions/"+id+"/run", req)
}

// run posts req to path and fails the test unless it is a 200.
func run(t *testing.T, post Post, path string, req map[string]any) Result {
	t.Helper()
	status, body := post(path, req)
	if status != http.StatusOK {
		t.Fatalf("%s: %d %s", path, status, body)
	}
	var r Result
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return r
}

// PythonSession checks what a python session promises: files and /tmp
// persist between runs, stdin and stderr per run, a timeout kills the run's
// processes but not the session, and a second concurrent run is a 409.
func PythonSession(t *testing.T, post Post, id string) {
	t.Helper()
	run := func(req map[string]any) Result { t.Helper(); return SessionRun(t, post, id, req) }
	run(map[string]any{"code": "open('/tmp/state', 'w').write('kept'); open('here.txt', 'w').write('file')"})
	if r := run(map[string]any{"code": "print(open('/tmp/state').read(), open('here.txt').read())"}); r.Stdout != "kept file\n" {
		t.Fatalf("state did not persist: %+v", r)
	}
	if r := run(map[string]any{"code": "import sys; print(sys.stdin.read().upper()); print('e', file=sys.stderr)", "stdin": "abc"}); r.Stdout != "ABC\n" || r.Stderr != "e\n" {
		t.Fatalf("stdin and stderr: %+v", r)
	}
	t.Run("a timeout kills the run, not the session", func(t *testing.T) {
		r := SessionRun(t, post, id, map[string]any{"code": "import subprocess\nsubprocess.Popen(['sleep', '1000'], start_new_session=True)\nwhile True: pass", "timeout_ms": 1000})
		if !r.TimedOut {
			t.Fatalf("%+v", r)
		}
		r = SessionRun(t, post, id, map[string]any{"code": "import os\nprint(sorted(p for p in os.listdir('/proc') if p.isdigit() and p != str(os.getpid())))"})
		if r.Stdout != "['1']\n" {
			t.Errorf("processes of the timed-out run survive in the session: %q", r.Stdout)
		}
		if r := SessionRun(t, post, id, map[string]any{"code": "print(open('/tmp/state').read())"}); r.Stdout != "kept\n" {
			t.Errorf("the session did not survive the timeout: %+v", r)
		}
	})
	t.Run("one run at a time", func(t *testing.T) {
		var wg sync.WaitGroup
		statuses := make([]int, 2)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				statuses[i], _ = post("/sessions/"+id+"/run", map[string]any{"code": "import time; time.sleep(1.5)"})
			}()
			time.Sleep(300 * time.Millisecond)
		}
		wg.Wait()
		if statuses[0] != http.StatusOK || statuses[1] != http.StatusConflict {
			t.Errorf("statuses %v, want 200 then 409", statuses)
		}
	})
}

// SessionSurvivesHangUp checks that a client hanging up mid-run cancels
// that run — its processes, as a timeout would — and nothing else: the
// session, its files and its /tmp stay. base is the host's URL; key, when
// set, is sent as a Bearer key.
func SessionSurvivesHangUp(t *testing.T, post Post, base, key, id string) {
	t.Helper()
	SessionRun(t, post, id, map[string]any{"code": "open('/tmp/hangup', 'w').write('kept')"})
	body, _ := json.Marshal(map[string]any{"code": "import subprocess, time\nsubprocess.Popen(['sleep', '1000'], start_new_session=True)\nprint('started', flush=True)\ntime.sleep(20)", "timeout_ms": 30000})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/sessions/"+id+"/run", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the run answered %d before the client hung up", resp.StatusCode)
	}
	// The next call may find the cancelled run still being stopped: a 409
	// then, never a 404.
	var r Result
	for i := 0; ; i++ {
		status, b := post("/sessions/"+id+"/run", map[string]any{"code": "import os\nprint(open('/tmp/hangup').read(), sorted(p for p in os.listdir('/proc') if p.isdigit() and p != str(os.getpid())))"})
		if status == http.StatusConflict && i < 100 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if status != http.StatusOK {
			t.Fatalf("after a hang-up the session answers %d: %s", status, b)
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		break
	}
	if r.Stdout != "kept ['1']\n" {
		t.Errorf("after a hang-up: %q (want the session's file and no process of the cancelled run)", r.Stdout)
	}
}
