package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/runhost/runhost/internal/app/apptest"
	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/fakeexec"
	"github.com/runhost/runhost/shared"
)

// TestInterpreterSessionRefusals: what POST /sessions and a cell refuse,
// on the fake executor, with the status and code each gets; a refused
// session leaves no container.
func TestInterpreterSessionRefusals(t *testing.T) {
	h := apptest.Start(t)
	for _, c := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"unknown mode", `{"runtime":"python","mode":"jupyter"}`, 400, "invalid_mode"},
		{"mode of the wrong type", `{"runtime":"python","mode":1}`, 400, "malformed_json"},
		{"runtime without an interpreter", `{"runtime":"bash","mode":"interpreter"}`, 400, "interpreter_unsupported"},
		{"unknown runtime", `{"runtime":"cobol","mode":"interpreter"}`, 404, "unknown_runtime"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body := h.Post("/sessions", c.body)
			if status != c.status || apptest.Code(body) != c.code {
				t.Errorf("%s: %d %s, want %d %s", c.body, status, body, c.status, c.code)
			}
		})
	}
	if n := h.Exec.Live(); n != 0 {
		t.Errorf("%d session containers are left after refusals", n)
	}

	// An interpreter that does not start: 502, and its container goes.
	h.Exec.OnRun(func(_ context.Context, job executor.Job) (executor.Result, error) {
		if job.Kernel != nil {
			return executor.Result{ExitCode: 126, Stderr: []byte("runhost-init: no python3\n")}, nil
		}
		return executor.Result{}, nil
	})
	status, body := h.Post("/sessions", `{"runtime":"python","mode":"interpreter"}`)
	if status != http.StatusBadGateway || apptest.Code(body) != "interpreter_failed" || !strings.Contains(string(body), "no python3") {
		t.Errorf("an interpreter that does not start: %d %s", status, body)
	}
	if n := h.Exec.Live(); n != 0 {
		t.Errorf("%d session containers are left after the interpreter failed to start", n)
	}

	// A cell takes code, files and timeout_ms; the rest is refused.
	h.Exec.OnRun(fakeexec.Exit(0, "", ""))
	id := createInterpreter(t, h, `{"runtime":"python","mode":"interpreter"}`)
	for _, body := range []string{
		`{"code":"1","stdin":"x"}`,
		`{"code":"1","args":["a"]}`,
		`{"code":"1","env":{"A":"b"}}`,
		`{"code":"1","entry":"main.py","files":[{"path":"main.py","content":"1"}]}`,
		`{"command":["python3","-c","1"]}`,
	} {
		status, resp := h.Post("/sessions/"+id+"/run", body)
		if status != http.StatusBadRequest || apptest.Code(resp) != "invalid_request" {
			t.Errorf("cell %s: %d %s, want 400 invalid_request", body, status, resp)
		}
	}
	if status, resp := h.Post("/sessions/"+id+"/run", `{"code":"1","memory_mb":512}`); status != http.StatusBadRequest {
		t.Errorf("a cell with memory_mb: %d %s", status, resp)
	}
}

func createInterpreter(t *testing.T, h *apptest.Host, body string) string {
	t.Helper()
	status, resp := h.Post("/sessions", body)
	if status != http.StatusCreated {
		t.Fatalf("create an interpreter session: %d %s", status, resp)
	}
	var info struct {
		ID   string `json:"id"`
		Mode string `json:"mode"`
	}
	if err := json.Unmarshal(resp, &info); err != nil || info.Mode != "interpreter" {
		t.Fatalf("create an interpreter session: %s %v", resp, err)
	}
	return info.ID
}

// TestInterpreterSessionJobs: an interpreter session starts the plugin's
// driver once, as the session's first job (its file in shared.KernelDir,
// the plugin's command, the protocol and the host's grace and result cap),
// and every run is a cell whose code is the job's stdin; the cell's rich
// results, error and restart come back as the result's fields.
func TestInterpreterSessionJobs(t *testing.T) {
	h := apptest.Start(t, "RUNHOST_INTERPRETER_GRACE_MS=1500", "RUNHOST_INTERPRETER_RESULT_MB=5")
	h.Exec.OnRun(func(_ context.Context, job executor.Job) (executor.Result, error) {
		if !job.Cell {
			return executor.Result{}, nil
		}
		return executor.Result{
			ExitCode:  1,
			Results:   []executor.RichResult{{Data: map[string]json.RawMessage{"text/plain": json.RawMessage(`"42"`)}}},
			CellError: &executor.CellError{Name: "ValueError", Value: "bad", Traceback: []string{"Traceback", "ValueError: bad"}},
			Restarted: true,
		}, nil
	})
	id := createInterpreter(t, h, `{"runtime":"python","version":"3.11","mode":"interpreter"}`)
	for _, code := range []string{"x = 41", "x + 1"} {
		status, body := h.Post("/sessions/"+id+"/run", `{"code":`+jsonString(code)+`}`)
		if status != http.StatusOK {
			t.Fatalf("cell %q: %d %s", code, status, body)
		}
		var res struct {
			Results   []map[string]any    `json:"results"`
			Error     *executor.CellError `json:"error"`
			Restarted bool                `json:"restarted"`
		}
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatal(err)
		}
		if len(res.Results) != 1 || res.Results[0]["text/plain"] != "42" || res.Error == nil || res.Error.Name != "ValueError" || len(res.Error.Traceback) != 2 || !res.Restarted {
			t.Errorf("cell %q: the result lacks the cell's fields: %s", code, body)
		}
	}
	runs := h.Exec.Sessions()[0].Runs()
	if len(runs) != 3 {
		t.Fatalf("%d jobs in the session, want the driver's start and two cells", len(runs))
	}
	k := runs[0]
	if k.Kernel == nil || k.Kernel.Protocol != shared.KernelProtocol || k.Kernel.InterruptGrace.Milliseconds() != 1500 || k.Kernel.ResultBytes != 5<<20 {
		t.Errorf("the driver's start: kernel %+v", k.Kernel)
	}
	if k.FilesDir+"/"+k.Files[0].Path != shared.KernelDir+"/kernel.py" || !strings.Contains(string(k.Files[0].Content), "runhost-kernel/1") {
		t.Errorf("the driver's file: %s/%s", k.FilesDir, k.Files[0].Path)
	}
	if !slices.Equal(k.Command, []string{"python3", "-u", "-X", "utf8", shared.KernelDir + "/kernel.py"}) || k.WorkDir != executor.RunDir {
		t.Errorf("the driver's command: %q in %s", k.Command, k.WorkDir)
	}
	for i, code := range []string{"x = 41", "x + 1"} {
		c := runs[i+1]
		if !c.Cell || c.Kernel != nil || string(c.Stdin) != code {
			t.Errorf("cell %d: cell %v kernel %v stdin %q", i, c.Cell, c.Kernel, c.Stdin)
		}
	}
	// A plain session's runs stay runs, and its info says so.
	plain := createSession(t, h, apptest.Alice)
	if status, body := h.Do(context.Background(), apptest.Alice, http.MethodGet, "/sessions/"+plain, ""); status != http.StatusOK || !strings.Contains(string(body), `"mode":"plain"`) {
		t.Errorf("a plain session: %d %s", status, body)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestInterpreterCellStreams: with Accept: text/event-stream a cell's
// output and rich results arrive as events in the order the cell made
// them, then the result.
func TestInterpreterCellStreams(t *testing.T) {
	h := apptest.Start(t)
	id := createInterpreter(t, h, `{"runtime":"node","mode":"interpreter"}`)
	bundle := func(v string) executor.RichResult {
		return executor.RichResult{Data: map[string]json.RawMessage{"text/plain": json.RawMessage(jsonString(v))}}
	}
	h.Exec.OnRun(func(_ context.Context, job executor.Job) (executor.Result, error) {
		job.Output(executor.Stdout, []byte("one\n"))
		job.Results(bundle("first"))
		job.Output(executor.Stderr, []byte("two\n"))
		job.Results(bundle("second"))
		return executor.Result{Results: []executor.RichResult{bundle("first"), bundle("second")}}, nil
	})
	req, err := http.NewRequest(http.MethodPost, h.URL+"/sessions/"+id+"/run", strings.NewReader(`{"code":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+apptest.Alice)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var events []string
	sc := bufio.NewScanner(resp.Body)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "event: "); ok {
			event = name
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok && event != "result" {
			events = append(events, event+" "+data)
		} else if ok {
			events = append(events, event)
		}
	}
	want := []string{
		`stdout {"text":"one\n"}`,
		`rich_result {"text/plain":"first"}`,
		`stderr {"text":"two\n"}`,
		`rich_result {"text/plain":"second"}`,
		`result`,
	}
	if !slices.Equal(events, want) {
		t.Errorf("events:\n got %q\nwant %q", events, want)
	}
}
