package scenario

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Cell is the part of an interpreter session cell's result the scenarios
// check.
type Cell struct {
	Result
	Results []map[string]json.RawMessage `json:"results"`
	Error   *struct {
		Name      string   `json:"name"`
		Value     string   `json:"value"`
		Traceback []string `json:"traceback"`
	} `json:"error"`
	Restarted bool `json:"restarted"`
}

// Text is the text/plain of result i ("" when there is none).
func (c Cell) Text(i int) string {
	if i >= len(c.Results) {
		return ""
	}
	var s string
	_ = json.Unmarshal(c.Results[i]["text/plain"], &s)
	return s
}

// StartInterpreter starts an interpreter session of runtime and version
// and returns its id; the caller ends it.
func StartInterpreter(t testing.TB, post Post, runtime, version string) string {
	t.Helper()
	status, body := post("/sessions", map[string]any{"runtime": runtime, "version": version, "mode": "interpreter"})
	if status != http.StatusCreated {
		t.Fatalf("start an interpreter session of %s %s: %d %s", runtime, version, status, body)
	}
	var info struct {
		ID   string `json:"id"`
		Mode string `json:"mode"`
	}
	if err := json.Unmarshal(body, &info); err != nil || info.Mode != "interpreter" || info.ID == "" {
		t.Fatalf("session %s: %v", body, err)
	}
	return info.ID
}

// RunCell runs code as a cell of interpreter session id; extra are
// further request fields, name then value. The answer must be a 200.
func RunCell(t testing.TB, post Post, id, code string, extra ...any) Cell {
	t.Helper()
	req := map[string]any{"code": code}
	for i := 0; i+1 < len(extra); i += 2 {
		req[extra[i].(string)] = extra[i+1]
	}
	status, body := post("/sessions/"+id+"/run", req)
	if status != http.StatusOK {
		t.Fatalf("cell %q: %d %s", code, status, body)
	}
	var c Cell
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatalf("cell %q: %s: %v", code, body, err)
	}
	return c
}

// InterpreterPython checks what a Python interpreter session promises:
// state kept between cells, the last expression's value, an exception as
// the cell's error, a timeout that interrupts the cell and keeps the
// state, and a restart (state lost, the session goes on) after a cell
// ends its interpreter.
func InterpreterPython(t *testing.T, post Post, id string) {
	t.Helper()
	cell := func(code string, extra ...any) Cell { t.Helper(); return RunCell(t, post, id, code, extra...) }
	if c := cell("x = 41"); len(c.Results) != 0 || c.Error != nil || c.ExitCode != 0 {
		t.Fatalf("x = 41: %+v", c)
	}
	if c := cell("print('hi')\nx + 1"); c.Text(0) != "42" || c.Stdout != "hi\n" {
		t.Fatalf("x + 1: results %s stdout %q", c.Results, c.Stdout)
	}

	c := cell("def f():\n    return 1 / 0\nf()")
	if c.Error == nil || c.Error.Name != "ZeroDivisionError" || c.ExitCode != 1 ||
		!strings.Contains(strings.Join(c.Error.Traceback, "\n"), "<cell-") || c.Restarted {
		t.Fatalf("an exception: %+v", c.Error)
	}
	if c := cell("x"); c.Text(0) != "41" {
		t.Fatalf("after an exception: %s", c.Results)
	}

	c = cell("import time\nx = 7\nwhile True:\n    time.sleep(0.05)", "timeout_ms", 1000)
	if !c.TimedOut || c.Error == nil || c.Error.Name != "KeyboardInterrupt" || c.Restarted {
		t.Fatalf("a timed-out cell: timed_out %v restarted %v error %+v", c.TimedOut, c.Restarted, c.Error)
	}
	if c := cell("x"); c.Text(0) != "7" {
		t.Fatalf("after a timeout: %s", c.Results)
	}

	c = cell("import os\nos._exit(3)")
	if !c.Restarted || c.Error == nil {
		t.Fatalf("a cell that ends its interpreter: %+v", c)
	}
	if c := cell("1 + 1"); c.Text(0) != "2" || c.Restarted {
		t.Fatalf("after a restart: %s", c.Results)
	}
	if c := cell("x"); c.Error == nil || c.Error.Name != "NameError" {
		t.Fatalf("the state after a restart: %+v", c.Error)
	}
}

// InterpreterNode checks what a Node interpreter session promises: let and
// const kept between cells, top-level await, errors with their stack.
func InterpreterNode(t *testing.T, post Post, id string) {
	t.Helper()
	cell := func(code string) Cell { t.Helper(); return RunCell(t, post, id, code) }
	if c := cell("let a = 40\nconst b = await Promise.resolve(2)"); c.Error != nil {
		t.Fatalf("declarations: %+v", c.Error)
	}
	if c := cell("a + b"); c.Text(0) != "42" {
		t.Fatalf("a + b: %s", c.Results)
	}
	c := cell("function f() { return null.x }\nf()")
	if c.Error == nil || c.Error.Name != "TypeError" || !strings.Contains(strings.Join(c.Error.Traceback, "\n"), "at f") {
		t.Fatalf("an error: %+v", c.Error)
	}
	if c := cell("a"); c.Text(0) != "40" {
		t.Fatalf("after an error: %s", c.Results)
	}
}
