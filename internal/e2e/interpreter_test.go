package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/e2e/scenario"
	"github.com/runhost/runhost/internal/testenv"
)

// cellResult is the result of a cell of an interpreter session.
type cellResult = scenario.Cell

// startInterpreter starts an interpreter session and ends it with the test.
func startInterpreter(t *testing.T, h *host, runtime, version string) string {
	t.Helper()
	id := scenario.StartInterpreter(t, h.post, runtime, version)
	t.Cleanup(func() { h.do(context.Background(), http.MethodDelete, "/sessions/"+id, nil) })
	return id
}

// cell runs code in session id and returns its result (the request must
// be answered 200).
func (h *host) cell(id, code string, extra ...any) cellResult {
	h.t.Helper()
	return scenario.RunCell(h.t, h.post, id, code, extra...)
}

// waitBusy waits until session id is running a cell (or not).
func (h *host) waitBusy(id string, busy bool) {
	h.t.Helper()
	want := `"busy":false`
	if busy {
		want = `"busy":true`
	}
	testenv.Eventually(h.t, 30*time.Second, "session busy="+want, func() bool {
		status, body := h.do(context.Background(), http.MethodGet, "/sessions/"+id, nil)
		return status == http.StatusOK && strings.Contains(string(body), want)
	})
}

// TestInterpreterPython: a Python interpreter session on the plain image
// passes the scenario every executor passes (state, values, errors, a
// timeout's interrupt, a restart); here also a client's hang-up interrupts
// the cell and keeps the state, a second cell while one runs is refused,
// and another key cannot see the session.
func TestInterpreterPython(t *testing.T) {
	alice, bob := auth.NewKey(), auth.NewKey()
	file := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(file, []byte("alice "+auth.Hash(alice)+"\nbob "+auth.Hash(bob)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startHost(t, "RUNHOST_API_KEYS_FILE="+file, "RUNHOST_INTERPRETER_GRACE_MS=2000")
	h.Key = alice
	id := startInterpreter(t, h, "python", "3.11")
	scenario.InterpreterPython(t, h.post, id)
	h.cell(id, "x = 7")

	// A second cell while one runs is 409; hanging up interrupts the
	// first, and the session and its state stay.
	ctx, hangUp := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		body := strings.NewReader(`{"code":"import time\nwhile True:\n    time.sleep(0.05)"}`)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.URL+"/sessions/"+id+"/run", body)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+alice)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	h.waitBusy(id, true)
	if status, body := h.post("/sessions/"+id+"/run", map[string]any{"code": "1"}); status != http.StatusConflict || errorCode(body) != "session_busy" {
		t.Errorf("a second cell while one runs: %d %s", status, body)
	}
	hangUp()
	<-done
	h.waitBusy(id, false)
	if res := h.cell(id, "x * 6"); res.Text(0) != "42" || res.Restarted {
		t.Fatalf("after a hang-up: %s restarted %v", res.Results, res.Restarted)
	}

	// Another key's cell is a 404, as a session that does not exist.
	other := *h
	other.Key = bob
	if status, body := other.post("/sessions/"+id+"/run", map[string]any{"code": "x"}); status != http.StatusNotFound || errorCode(body) != "session_not_found" {
		t.Errorf("bob's cell in alice's session: %d %s", status, body)
	}

	// An unknown mode is refused.
	if status, body := h.post("/sessions", map[string]any{"runtime": "python", "mode": "notebook"}); status != http.StatusBadRequest || errorCode(body) != "invalid_mode" {
		t.Errorf("an unknown mode: %d %s", status, body)
	}
}

func errorCode(body []byte) string {
	var e apiError
	_ = json.Unmarshal(body, &e)
	return e.Error.Code
}

// TestInterpreterStreams: with Accept: text/event-stream a cell's output
// and rich results arrive in the order the cell made them, then the result.
func TestInterpreterStreams(t *testing.T) {
	h := startHost(t)
	id := startInterpreter(t, h, "python", "3.11")
	code := "print('a')\ndisplay(1)\nimport sys\nprint('b', file=sys.stderr)\n2"
	resp := h.stream("/sessions/"+id+"/run", `{"code":`+mustJSON(t, code)+`}`)
	defer resp.Body.Close()
	var events []string
	var last cellResult
	event := ""
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "event: "); ok {
			event = name
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		if event == "result" {
			if err := json.Unmarshal([]byte(data), &last); err != nil {
				t.Fatal(err)
			}
			events = append(events, "result")
			continue
		}
		// A stream's consecutive chunks are one event here: how the
		// program's writes were cut is not the point.
		if n := len(events); n > 0 && (event == "stdout" || event == "stderr") && strings.HasPrefix(events[n-1], event+" ") {
			var prev, next struct{ Text string }
			_ = json.Unmarshal([]byte(strings.TrimPrefix(events[n-1], event+" ")), &prev)
			_ = json.Unmarshal([]byte(data), &next)
			events[n-1] = event + " " + mustJSON(t, map[string]string{"text": prev.Text + next.Text})
			continue
		}
		events = append(events, event+" "+data)
	}
	// Each stream's events and the rich results arrive in the order the
	// cell made them, and the final result comes last. Output and rich
	// results travel different paths from init to the client, so how they
	// interleave with each other is not promised.
	var output, rich []string
	for _, e := range events[:max(0, len(events)-1)] {
		if strings.HasPrefix(e, "rich_result ") {
			rich = append(rich, e)
		} else {
			output = append(output, e)
		}
	}
	wantOutput := []string{`stdout {"text":"a\n"}`, `stderr {"text":"b\n"}`}
	wantRich := []string{`rich_result {"text/plain":"1"}`, `rich_result {"text/plain":"2"}`}
	if len(events) == 0 || events[len(events)-1] != "result" || !slices.Equal(output, wantOutput) || !slices.Equal(rich, wantRich) {
		t.Errorf("events: %q; want the output %q and the rich results %q, in order, then result", events, wantOutput, wantRich)
	}
	if last.Text(0) != "1" || last.Text(1) != "2" {
		t.Errorf("the final result's results: %s", last.Results)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestInterpreterDataImage: on the data image a matplotlib figure left
// open comes back as image/png and a pandas DataFrame as text/html, with
// nothing special called.
func TestInterpreterDataImage(t *testing.T) {
	h := startHost(t)
	testenv.RequireImages(t, h.Docker, "runhost/python:3.11-data")
	id := startInterpreter(t, h, "python", "3.11-data")

	// The first imports of matplotlib and pandas take seconds of CPU on a
	// loaded machine: the cells get a minute.
	res := h.cell(id, "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])", "timeout_ms", 60000)
	var png []byte
	for _, r := range res.Results {
		var s string
		if json.Unmarshal(r["image/png"], &s) == nil {
			png, _ = base64.StdEncoding.DecodeString(s)
		}
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("a figure: no PNG in %d results: %+v", len(res.Results), res)
	}
	t.Logf("the figure's cell took %d ms", res.DurationMS)

	res = h.cell(id, "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})\ndf", "timeout_ms", 60000)
	var html string
	if len(res.Results) == 1 {
		_ = json.Unmarshal(res.Results[0]["text/html"], &html)
	}
	if !strings.Contains(html, "<table") || !strings.Contains(res.Text(0), "a  b") {
		t.Errorf("a DataFrame: %s (stderr %q)", res.Results, res.Stderr)
	}
}

// TestInterpreterNode: a Node interpreter session keeps let and const
// between cells, awaits at the top level and reports errors with their
// stack.
func TestInterpreterNode(t *testing.T) {
	h := startHost(t)
	scenario.InterpreterNode(t, h.post, startInterpreter(t, h, "node", "20"))
}
