package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	cerrdefs "github.com/containerd/errdefs"

	"github.com/runhost/runhost/internal/auth"
)

// Piston's v2 API under /api/v2, against a real host, real plugins and a
// real engine.

// pistonEnv configures the hosts of these tests: maxima the validation
// messages name, and an output cap small enough to hit.
var pistonEnv = []string{"RUNHOST_MAX_TIMEOUT_MS=20000", "RUNHOST_MAX_MEMORY_MB=1024", "RUNHOST_OUTPUT_LIMIT_BYTES=65536"}

type pistonRun struct {
	Stdout   string  `json:"stdout"`
	Stderr   string  `json:"stderr"`
	Output   string  `json:"output"`
	Code     *int    `json:"code"`
	Signal   *string `json:"signal"`
	Message  *string `json:"message"`
	Status   *string `json:"status"`
	WallTime *int64  `json:"wall_time"`
}

type pistonResult struct {
	Language string          `json:"language"`
	Version  string          `json:"version"`
	Run      pistonRun       `json:"run"`
	Compile  json.RawMessage `json:"compile"`
	Message  string          `json:"message"` // errors
}

// pistonPost sends body to POST /api/v2/execute with the given
// Content-Type ("" sends none).
func pistonPost(t *testing.T, h *host, contentType, body string) (int, pistonResult, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.URL+"/api/v2/execute", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	var res pistonResult
	if err := json.Unmarshal(buf.Bytes(), &res); err != nil {
		t.Fatalf("execute answered %d with %q: %v", resp.StatusCode, buf.String(), err)
	}
	return resp.StatusCode, res, buf.String()
}

// pistonExecute sends v as JSON and wants a 200.
func pistonExecute(t *testing.T, h *host, v any) pistonResult {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	status, res, raw := pistonPost(t, h, "application/json", string(b))
	if status != http.StatusOK {
		t.Fatalf("execute %s: %d %s", b, status, raw)
	}
	return res
}

func files(contents ...string) []map[string]string {
	var out []map[string]string
	for _, c := range contents {
		out = append(out, map[string]string{"content": c})
	}
	return out
}

func TestPistonRuntimes(t *testing.T) {
	h := startHost(t, pistonEnv...)
	status, body := h.do(context.Background(), http.MethodGet, "/api/v2/runtimes", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /api/v2/runtimes: %d %s", status, body)
	}
	var rts []struct {
		Language string   `json:"language"`
		Version  string   `json:"version"`
		Aliases  []string `json:"aliases"`
		Runtime  *string  `json:"runtime"`
	}
	if err := json.Unmarshal(body, &rts); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		language, version, runtime string
		aliases                    []string
	}{
		{"python", "3.11.0", "", []string{"py", "py3", "python3"}},
		{"python", "3.13.0", "", []string{"py", "py3", "python3"}},
		{"javascript", "18.0.0", "node", []string{"node-javascript", "node-js", "javascript", "js"}},
		{"javascript", "20.0.0", "node", []string{"node-javascript", "node-js", "javascript", "js"}},
		{"bash", "5.2.0", "", []string{"sh"}},
	}
	for _, w := range want {
		i := slices.IndexFunc(rts, func(r struct {
			Language string   `json:"language"`
			Version  string   `json:"version"`
			Aliases  []string `json:"aliases"`
			Runtime  *string  `json:"runtime"`
		}) bool {
			return r.Language == w.language && r.Version == w.version
		})
		if i < 0 {
			t.Errorf("no %s %s in %s", w.language, w.version, body)
			continue
		}
		r := rts[i]
		for _, a := range w.aliases {
			if !slices.Contains(r.Aliases, a) {
				t.Errorf("%s %s: aliases %v lack %q", r.Language, r.Version, r.Aliases, a)
			}
		}
		switch {
		case w.runtime == "" && r.Runtime != nil:
			t.Errorf("%s %s: runtime %q, want none", r.Language, r.Version, *r.Runtime)
		case w.runtime != "" && (r.Runtime == nil || *r.Runtime != w.runtime):
			t.Errorf("%s %s: runtime %v, want %q", r.Language, r.Version, r.Runtime, w.runtime)
		}
	}
	for _, r := range rts {
		if r.Language == "dockerfile" {
			t.Errorf("dockerfile has no Piston counterpart but is listed: %s", body)
		}
	}
}

func TestPistonExecute(t *testing.T) {
	h := startHost(t, pistonEnv...)
	cases := []struct {
		name, language, version, code string
		wantLanguage, wantVersion     string
		wantStdout                    string
	}{
		{"python", "python", "3.11", "import sys; print('py', sys.version_info[:2])", "python", "3.11.0", "py (3, 11)\n"},
		{"python newest of 3.x", "py", "3.x", "import sys; print('py', sys.version_info[:2])", "python", "3.13.0", "py (3, 13)\n"},
		{"python star", "python3", "*", "print('star')", "python", "3.13.0", "star\n"},
		{"python exact patch", "python", "3.11.0", "print('exact')", "python", "3.11.0", "exact\n"},
		{"python range", "python", ">=3.12 <4", "print('range')", "python", "3.13.0", "range\n"},
		{"javascript", "javascript", "18", "console.log('js', process.versions.node.split('.')[0])", "javascript", "18.0.0", "js 18\n"},
		{"js alias newest", "js", "*", "console.log('js', process.versions.node.split('.')[0])", "javascript", "20.0.0", "js 20\n"},
		{"node-js alias", "node-js", "^20", "console.log('ok')", "javascript", "20.0.0", "ok\n"},
		{"bash", "bash", "5.x", "echo \"bash ${BASH_VERSINFO[0]}\"", "bash", "5.2.0", "bash 5\n"},
		{"sh alias", "sh", "*", "echo sh", "bash", "5.2.0", "sh\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := pistonExecute(t, h, map[string]any{"language": tc.language, "version": tc.version, "files": files(tc.code)})
			if res.Language != tc.wantLanguage || res.Version != tc.wantVersion {
				t.Errorf("ran %s %s, want %s %s", res.Language, res.Version, tc.wantLanguage, tc.wantVersion)
			}
			r := res.Run
			if r.Stdout != tc.wantStdout || r.Output != tc.wantStdout || r.Stderr != "" {
				t.Errorf("stdout %q output %q stderr %q, want stdout and output %q", r.Stdout, r.Output, r.Stderr, tc.wantStdout)
			}
			if r.Code == nil || *r.Code != 0 || r.Signal != nil || r.Status != nil || r.Message != nil {
				t.Errorf("code %v signal %v status %v message %v, want 0 and nulls", r.Code, r.Signal, r.Status, r.Message)
			}
			if r.WallTime == nil {
				t.Error("wall_time is null")
			}
			if res.Compile != nil {
				t.Errorf("compile %s given for an interpreted runtime", res.Compile)
			}
		})
	}
	// Piston runs are audited and counted like native ones.
	status, body := h.get("/metrics")
	for _, runtime := range []string{"python", "node", "shell"} {
		if status != http.StatusOK || !strings.Contains(string(body), `runhost_runs_total{outcome="ok",runtime="`+runtime+`"}`) {
			t.Errorf("no %s runs counted after Piston runs: %d\n%s", runtime, status, body)
		}
	}
	if logs := h.Logs(); strings.Count(logs, `"audit"`) < len(cases) {
		t.Errorf("%d audit lines for %d Piston runs", strings.Count(logs, `"audit"`), len(cases))
	}
}

// TestPistonFiles: every encoding, several files (the first utf8 file
// runs, the others sit beside it), stdin (ended with a newline, as Piston
// does) and args.
func TestPistonFiles(t *testing.T) {
	h := startHost(t, pistonEnv...)
	t.Run("encodings and multiple files", func(t *testing.T) {
		helper := "def greet(n):\n    return 'hi ' + n\n"
		res := pistonExecute(t, h, map[string]any{
			"language": "python", "version": "3.11",
			"files": []map[string]string{
				{"name": "data.bin", "content": hex.EncodeToString([]byte{0, 1, 2, 255}), "encoding": "hex"},
				{"name": "main.py", "content": "import helper\nprint(helper.greet('there'))\nprint(list(open('data.bin', 'rb').read()))\nprint(open('notes.txt').read())"},
				{"name": "helper.py", "content": base64.StdEncoding.EncodeToString([]byte(helper)), "encoding": "base64"},
				{"name": "notes.txt", "content": "plain", "encoding": "utf8"},
			},
		})
		if want := "hi there\n[0, 1, 2, 255]\nplain\n"; res.Run.Stdout != want {
			t.Errorf("stdout %q, want %q (stderr %q)", res.Run.Stdout, want, res.Run.Stderr)
		}
	})
	t.Run("javascript module beside the main file", func(t *testing.T) {
		res := pistonExecute(t, h, map[string]any{
			"language": "javascript", "version": "*",
			"files": []map[string]string{
				{"name": "index.js", "content": "console.log(require('./lib.js').twice(21))"},
				{"name": "lib.js", "content": "exports.twice = n => n * 2"},
			},
		})
		if res.Run.Stdout != "42\n" {
			t.Errorf("stdout %q, want 42 (stderr %q)", res.Run.Stdout, res.Run.Stderr)
		}
	})
	t.Run("stdin and args", func(t *testing.T) {
		res := pistonExecute(t, h, map[string]any{
			"language": "python", "version": "3", "stdin": "from stdin", "args": []string{"a", "b c"},
			"files": files("import sys\nprint(repr(sys.stdin.read()), sys.argv[1:])"),
		})
		if want := "'from stdin\\n' ['a', 'b c']\n"; res.Run.Stdout != want {
			t.Errorf("stdout %q, want %q (stderr %q)", res.Run.Stdout, want, res.Run.Stderr)
		}
	})
	t.Run("bash args", func(t *testing.T) {
		res := pistonExecute(t, h, map[string]any{
			"language": "bash", "version": "*", "args": []string{"x", "y"}, "stdin": "line\n",
			"files": files(`read l; echo "$# $1 $2 $l"`),
		})
		if res.Run.Stdout != "2 x y line\n" {
			t.Errorf("stdout %q (stderr %q)", res.Run.Stdout, res.Run.Stderr)
		}
	})
	t.Run("output interleaves stdout and stderr", func(t *testing.T) {
		// The pauses let init read each write before the next one, so the
		// order in output is the order of writing.
		res := pistonExecute(t, h, map[string]any{
			"language": "bash", "version": "*",
			"files": files("echo one; sleep 0.3; echo two >&2; sleep 0.3; echo three"),
		})
		r := res.Run
		if r.Stdout != "one\nthree\n" || r.Stderr != "two\n" || r.Output != "one\ntwo\nthree\n" {
			t.Errorf("stdout %q stderr %q output %q", r.Stdout, r.Stderr, r.Output)
		}
	})
}

// TestPistonContentTypes: a JSON body is read whatever the Content-Type
// says, as real clients send none or text/plain.
// TestPistonContentTypes: execute takes JSON (as Piston's clients send
// it); the types a web page may send without a CORS preflight, and none,
// are refused before anything runs (the host's browser guard).
func TestPistonContentTypes(t *testing.T) {
	h := startHost(t, pistonEnv...)
	body := `{"language":"python","version":"3.11","files":[{"content":"print('typed')"}]}`
	for _, ct := range []string{"application/json", "application/json; charset=utf-8"} {
		status, res, raw := pistonPost(t, h, ct, body)
		if status != http.StatusOK || res.Run.Stdout != "typed\n" {
			t.Errorf("Content-Type %q: %d %s", ct, status, raw)
		}
	}
	for _, ct := range []string{"", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded"} {
		req, _ := http.NewRequest(http.MethodPost, h.URL+"/api/v2/execute", strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(string(raw), "unsupported_media_type") {
			t.Errorf("Content-Type %q: %d %s, want 415 unsupported_media_type", ct, resp.StatusCode, raw)
		}
	}
	// RUNHOST_PISTON_ALLOW_TEXT_PLAIN: text/plain and no type from a client
	// that is no browser (the npm piston-client), never from a page.
	lax := startHost(t, append([]string{"RUNHOST_PISTON_ALLOW_TEXT_PLAIN=true"}, pistonEnv...)...)
	for _, ct := range []string{"", "text/plain;charset=UTF-8"} {
		status, res, raw := pistonPost(t, lax, ct, body)
		if status != http.StatusOK || res.Run.Stdout != "typed\n" {
			t.Errorf("RUNHOST_PISTON_ALLOW_TEXT_PLAIN, Content-Type %q: %d %s", ct, status, raw)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, lax.URL+"/api/v2/execute", strings.NewReader(body))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Origin", "http://evil.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("RUNHOST_PISTON_ALLOW_TEXT_PLAIN, text/plain from another site: %d, want 403", resp.StatusCode)
	}
}

// TestPistonValidation: every refusal is a 400 with Piston's message.
func TestPistonValidation(t *testing.T) {
	h := startHost(t, pistonEnv...)
	const py = `"language":"python","version":"3.11"`
	const code = `"files":[{"content":"print(1)"}]`
	cases := []struct {
		name, body, want string
		prefix           bool
	}{
		{"empty body", ``, "language is required as a string", false},
		{"no language", `{}`, "language is required as a string", false},
		{"language not a string", `{"language":3}`, "language is required as a string", false},
		{"empty language", `{"language":""}`, "language is required as a string", false},
		{"no version", `{"language":"python"}`, "version is required as a string", false},
		{"version not a string", `{"language":"python","version":3.11}`, "version is required as a string", false},
		{"no files", `{` + py + `}`, "files is required as an array", false},
		{"files not an array", `{` + py + `,"files":"print(1)"}`, "files is required as an array", false},
		{"file without content", `{` + py + `,"files":[{"name":"a.py"}]}`, "files[0].content is required as a string", false},
		{"second file content not a string", `{` + py + `,"files":[{"content":"x"},{"content":5}]}`, "files[1].content is required as a string", false},
		{"unknown language", `{"language":"cobol","version":"*",` + code + `}`, "cobol-* runtime is unknown", false},
		{"unknown version", `{"language":"python","version":"2.7",` + code + `}`, "python-2.7 runtime is unknown", false},
		{"version that is no range", `{"language":"python","version":"latest",` + code + `}`, "python-latest runtime is unknown", false},
		{"no utf8 file", `{` + py + `,"files":[{"content":"cHJpbnQoMSk=","encoding":"base64"}]}`, "files must include at least one utf8 encoded file", false},
		{"timeout not a number", `{` + py + `,` + code + `,"run_timeout":"5s"}`, "If specified, run_timeout must be a number", false},
		{"compile timeout not a number", `{` + py + `,` + code + `,"compile_timeout":true}`, "If specified, compile_timeout must be a number", false},
		{"memory not a number", `{` + py + `,` + code + `,"run_memory_limit":"1G"}`, "If specified, run_memory_limit must be a number", false},
		{"cpu time not a number", `{` + py + `,` + code + `,"run_cpu_time":[1]}`, "If specified, run_cpu_time must be a number", false},
		{"timeout above the maximum", `{` + py + `,` + code + `,"run_timeout":20001}`, "run_timeout cannot exceed the configured limit of 20000", false},
		{"memory above the maximum", `{` + py + `,` + code + `,"run_memory_limit":2147483648}`, "run_memory_limit cannot exceed the configured limit of 1073741824", false},
		{"negative timeout", `{` + py + `,` + code + `,"run_timeout":-5}`, "run_timeout must be non-negative", false},
		{"negative memory", `{` + py + `,` + code + `,"run_memory_limit":-2}`, "run_memory_limit must be non-negative", false},
		{"not JSON", `{"language":`, "request body is not valid JSON", true},
		{"file escaping the run directory", `{` + py + `,"files":[{"name":"../x.py","content":"print(1)"}]}`, "files[0].name: ", true},
		{"bad base64", `{` + py + `,"files":[{"content":"print(1)"},{"name":"b","content":"!!!","encoding":"base64"}]}`, "files[1].content: invalid base64", true},
		{"bad hex", `{` + py + `,"files":[{"content":"print(1)"},{"name":"b","content":"zz","encoding":"hex"}]}`, "files[1].content: invalid hex", true},
		{"args not strings", `{` + py + `,` + code + `,"args":[1]}`, "args must be an array of strings", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, res, raw := pistonPost(t, h, "application/json", tc.body)
			if status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", status, raw)
			}
			if tc.prefix && !strings.HasPrefix(res.Message, tc.want) || !tc.prefix && res.Message != tc.want {
				t.Errorf("message %q, want %q", res.Message, tc.want)
			}
		})
	}
	// Limits Piston clients send by default are accepted: -1 memory means
	// the host's default, zero means the default.
	res := pistonExecute(t, h, map[string]any{
		"language": "python", "version": "3.11", "files": files("print('ok')"),
		"run_memory_limit": -1, "compile_memory_limit": -1, "run_timeout": 3000, "compile_timeout": 10000, "run_cpu_time": 0,
	})
	if res.Run.Stdout != "ok\n" {
		t.Errorf("default limits: stdout %q", res.Run.Stdout)
	}
}

// TestPistonOutcomes: how a run ends, in Piston's status, signal, code and
// message.
func TestPistonOutcomes(t *testing.T) {
	h := startHost(t, pistonEnv...)
	str := func(p *string) string {
		if p == nil {
			return "<null>"
		}
		return *p
	}
	num := func(p *int) string {
		if p == nil {
			return "<null>"
		}
		return fmt.Sprint(*p)
	}
	cases := []struct {
		name                          string
		req                           map[string]any
		status, signal, code, message string
	}{
		{"timeout", map[string]any{"language": "python", "version": "3.11", "run_timeout": 1000, "files": files("import time\nprint('started', flush=True)\ntime.sleep(30)")},
			"TO", "SIGKILL", "<null>", "Time limit exceeded (wall clock)"},
		{"runtime error", map[string]any{"language": "bash", "version": "*", "files": files("echo failing >&2; exit 3")},
			"RE", "<null>", "3", "Exited with error status 3"},
		{"killed by a signal", map[string]any{"language": "bash", "version": "*", "files": files("kill -SEGV $$")},
			"SG", "SIGSEGV", "<null>", "Caught fatal signal 11"},
		{"stdout too long", map[string]any{"language": "python", "version": "3.11", "files": files("print('x' * 100000)")},
			"OL", "SIGKILL", "<null>", "stdout length exceeded"},
		{"stdout without end", map[string]any{"language": "bash", "version": "*", "run_timeout": 15000, "files": files("yes")},
			"OL", "SIGKILL", "<null>", "stdout length exceeded"},
		{"stderr too long", map[string]any{"language": "python", "version": "3.11", "files": files("import sys; sys.stderr.write('x' * 100000)")},
			"EL", "SIGKILL", "<null>", "stderr length exceeded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := pistonExecute(t, h, tc.req).Run
			if str(r.Status) != tc.status || str(r.Signal) != tc.signal || num(r.Code) != tc.code || str(r.Message) != tc.message {
				t.Errorf("status %s signal %s code %s message %q, want %s %s %s %q (stdout %.80q, stderr %.80q)",
					str(r.Status), str(r.Signal), num(r.Code), str(r.Message), tc.status, tc.signal, tc.code, tc.message, r.Stdout, r.Stderr)
			}
		})
	}
}

// wsMsg is any message of the /connect protocol.
type wsMsg struct {
	Type     string  `json:"type"`
	Language string  `json:"language,omitempty"`
	Version  string  `json:"version,omitempty"`
	Stage    string  `json:"stage,omitempty"`
	Stream   string  `json:"stream,omitempty"`
	Data     string  `json:"data,omitempty"`
	Code     *int    `json:"code,omitempty"`
	Signal   *string `json:"signal,omitempty"`
	Message  string  `json:"message,omitempty"`
}

func pistonDial(t *testing.T, h *host) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.URL, "http")+"/api/v2/connect", nil)
	if err != nil {
		t.Fatalf("dial /api/v2/connect: %v", err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	return conn
}

func wsSend(t *testing.T, conn *websocket.Conn, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := wsjson.Write(ctx, conn, v); err != nil {
		t.Fatalf("send %v: %v", v, err)
	}
}

// wsRead reads messages until the connection closes and returns them with
// the close status.
func wsRead(t *testing.T, conn *websocket.Conn, until func(wsMsg) bool) ([]wsMsg, websocket.StatusCode, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var msgs []wsMsg
	for {
		var m wsMsg
		err := wsjson.Read(ctx, conn, &m)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return msgs, ce.Code, ce.Reason
			}
			t.Fatalf("read after %v: %v", msgs, err)
		}
		msgs = append(msgs, m)
		if until != nil && until(m) {
			return msgs, -1, ""
		}
	}
}

// untilStdout is a wsRead condition: stdout so far ends with want (output
// may come in any number of chunks).
func untilStdout(want string) func(wsMsg) bool {
	var stdout string
	return func(m wsMsg) bool {
		if m.Type == "data" && m.Stream == "stdout" {
			stdout += m.Data
		}
		return strings.HasSuffix(stdout, want)
	}
}

// TestPistonConnect: the interactive protocol: init → runtime → stage →
// data ↔ stdin → exit → close 4999.
func TestPistonConnect(t *testing.T) {
	h := startHost(t, pistonEnv...)
	t.Run("stdin round trip", func(t *testing.T) {
		conn := pistonDial(t, h)
		wsSend(t, conn, map[string]any{"type": "init", "language": "python", "version": "3.11",
			"files": files("import sys\nprint('ready', flush=True)\nline = sys.stdin.readline()\nprint(line.strip().upper(), flush=True)\nsys.stderr.write('done\\n')")})
		msgs, _, _ := wsRead(t, conn, untilStdout("ready\n"))
		if len(msgs) < 3 || msgs[0].Type != "runtime" || msgs[0].Language != "python" || msgs[0].Version != "3.11.0" ||
			msgs[1].Type != "stage" || msgs[1].Stage != "run" || msgs[2].Stream != "stdout" {
			t.Fatalf("start of the conversation: %+v", msgs)
		}
		// The program is waiting for this line: stdin is interactive.
		wsSend(t, conn, map[string]any{"type": "data", "stream": "stdin", "data": "hello\n"})
		msgs, code, reason := wsRead(t, conn, nil)
		var stdout, stderr string
		var exit *wsMsg
		for i, m := range msgs {
			switch {
			case m.Type == "data" && m.Stream == "stdout":
				stdout += m.Data
			case m.Type == "data" && m.Stream == "stderr":
				stderr += m.Data
			case m.Type == "exit":
				exit = &msgs[i]
			}
		}
		if stdout != "HELLO\n" || stderr != "done\n" {
			t.Errorf("stdout %q stderr %q after stdin", stdout, stderr)
		}
		if exit == nil || exit.Stage != "run" || exit.Code == nil || *exit.Code != 0 || exit.Signal != nil {
			t.Errorf("exit %+v, want code 0 and no signal", exit)
		}
		if code != 4999 || reason != "Job Completed" {
			t.Errorf("closed %d %q, want 4999 Job Completed", code, reason)
		}
	})
	t.Run("init larger than a websocket default frame", func(t *testing.T) {
		// 64 KiB of source: over the websocket library's 32 KiB default,
		// well under the host's body limit.
		conn := pistonDial(t, h)
		code := "x = '" + strings.Repeat("a", 64<<10) + "'\nprint(len(x))"
		wsSend(t, conn, map[string]any{"type": "init", "language": "python", "version": "*", "files": files(code)})
		msgs, closeCode, _ := wsRead(t, conn, nil)
		var stdout string
		for _, m := range msgs {
			if m.Type == "data" && m.Stream == "stdout" {
				stdout += m.Data
			}
		}
		if stdout != "65536\n" || closeCode != 4999 {
			t.Errorf("stdout %q, close %d; want 65536 and 4999 (messages %+v)", stdout, closeCode, msgs)
		}
	})
	t.Run("signal kills the run", func(t *testing.T) {
		conn := pistonDial(t, h)
		wsSend(t, conn, map[string]any{"type": "init", "language": "bash", "version": "*", "run_timeout": 15000,
			"files": files("echo waiting; sleep 30")})
		wsRead(t, conn, untilStdout("waiting\n"))
		wsSend(t, conn, map[string]any{"type": "signal", "signal": "SIGKILL"})
		msgs, code, _ := wsRead(t, conn, nil)
		if len(msgs) == 0 || msgs[len(msgs)-1].Type != "exit" || msgs[len(msgs)-1].Signal == nil || *msgs[len(msgs)-1].Signal != "SIGKILL" || msgs[len(msgs)-1].Code != nil {
			t.Errorf("after a signal: %+v, want exit with signal SIGKILL and code null", msgs)
		}
		if code != 4999 {
			t.Errorf("closed %d, want 4999", code)
		}
	})
	longRun := map[string]any{"type": "init", "language": "bash", "version": "*", "files": files("echo up; sleep 30")}
	cases := []struct {
		name   string
		init   bool
		send   []any
		code   websocket.StatusCode
		reason string
		errMsg string
	}{
		{"data before init", false, []any{map[string]any{"type": "data", "stream": "stdin", "data": "x"}}, 4003, "Not yet initialized", ""},
		{"signal before init", false, []any{map[string]any{"type": "signal", "signal": "SIGKILL"}}, 4003, "Not yet initialized", ""},
		{"nothing sent", false, nil, 4001, "Initialization Timeout", ""},
		{"write to stdout", true, []any{map[string]any{"type": "data", "stream": "stdout", "data": "x"}}, 4004, "Can only write to stdin", ""},
		{"unknown signal", true, []any{map[string]any{"type": "signal", "signal": "SIGNOPE"}}, 4005, "Invalid signal", ""},
		{"init twice", true, []any{longRun}, 4000, "Already Initialized", ""},
		{"bad init", false, []any{map[string]any{"type": "init", "language": "python"}}, 4002, "Notified Error", "version is required as a string"},
		{"not JSON", false, []any{"{"}, 4002, "Notified Error", "invalid message"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := pistonDial(t, h)
			if tc.init {
				wsSend(t, conn, longRun)
				wsRead(t, conn, untilStdout("up\n"))
			}
			for _, m := range tc.send {
				if s, ok := m.(string); ok {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					if err := conn.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
						t.Fatal(err)
					}
					cancel()
					continue
				}
				wsSend(t, conn, m)
			}
			msgs, code, reason := wsRead(t, conn, nil)
			if code != tc.code || reason != tc.reason {
				t.Errorf("closed %d %q, want %d %q (messages %+v)", code, reason, tc.code, tc.reason, msgs)
			}
			if tc.errMsg != "" {
				if len(msgs) == 0 || msgs[len(msgs)-1].Type != "error" || !strings.HasPrefix(msgs[len(msgs)-1].Message, tc.errMsg) {
					t.Errorf("messages %+v, want an error %q last", msgs, tc.errMsg)
				}
			}
		})
	}
}

// pistonClientScript uses the npm package piston-client the way its README
// shows, against the host in PISTON_URL, and prints what it got as JSON.
const pistonClientScript = `
import piston from "piston-client";
const client = piston({ server: process.env.PISTON_URL });
const runtimes = await client.runtimes();
const python = await client.execute("python", "import sys\nprint('hello from piston-client', sys.argv[1:])");
const js = await client.execute({ language: "javascript", stdin: "input", args: ["a", "b"],
  files: [{ content: "console.log(process.argv.slice(2).join('+'), require('fs').readFileSync(0, 'utf8').trim())" }] });
const bash = await client.execute("bash", "echo $# $1 $(cat)", { version: "5.2", stdin: "input" });
console.log(JSON.stringify({ runtimes, python, js, bash }));
`

// TestPistonNPMClient runs the npm package piston-client (installed from
// the registry inside runhost/node:20) against the host. It posts its JSON
// as text/plain (node-fetch's type for a string body), which the host
// takes only with RUNHOST_PISTON_ALLOW_TEXT_PLAIN.
func TestPistonNPMClient(t *testing.T) {
	h := startHost(t, append([]string{"RUNHOST_PISTON_ALLOW_TEXT_PLAIN=true"}, pistonEnv...)...)
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Fatalf("the docker CLI is needed to run the npm client: %v", err)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	name := "runhost-piston-client-" + hex.EncodeToString(rnd[:])
	removed := func() bool {
		_, err := h.Docker.ContainerInspect(context.Background(), name)
		return cerrdefs.IsNotFound(err)
	}
	t.Cleanup(func() {
		_ = exec.Command(docker, "rm", "-f", name).Run()
		if !removed() {
			t.Errorf("container %s is left behind", name)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, docker, "run", "--rm", "--name", name, "--network", "host",
		"-v", "/etc/ssl/certs:/etc/ssl/certs:ro",
		"-e", "NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt",
		"-e", "npm_config_cafile=/etc/ssl/certs/ca-certificates.crt",
		"-e", "PISTON_URL="+h.URL,
		"-e", "CLIENT_JS="+pistonClientScript,
		"runhost/node:20", "sh", "-c",
		`cd /tmp && npm install --no-audit --no-fund --loglevel=error piston-client >&2 && printf '%s' "$CLIENT_JS" > client.mjs && node client.mjs`)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("piston-client: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	if !removed() {
		t.Errorf("container %s still exists after docker run --rm", name)
	}
	var got struct {
		Runtimes []map[string]any `json:"runtimes"`
		Python   pistonResult     `json:"python"`
		JS       pistonResult     `json:"js"`
		Bash     pistonResult     `json:"bash"`
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("client output %q: %v (stderr %s)", stdout.String(), err, stderr.String())
	}
	if len(got.Runtimes) < 5 {
		t.Errorf("runtimes: %v", got.Runtimes)
	}
	// The client picks the newest version of a language itself and sends
	// args ["1","2","3"] unless told otherwise.
	if got.Python.Version != "3.13.0" || got.Python.Run.Stdout != "hello from piston-client ['1', '2', '3']\n" {
		t.Errorf("python: %+v", got.Python)
	}
	if got.JS.Language != "javascript" || got.JS.Run.Stdout != "a+b input\n" {
		t.Errorf("javascript: %+v", got.JS)
	}
	if got.Bash.Version != "5.2.0" || got.Bash.Run.Stdout != "3 1 input\n" {
		t.Errorf("bash: %+v", got.Bash)
	}
}

// TestPistonREADME runs the curl examples of the README's "Piston
// clients" section against a host and checks what they print.
func TestPistonREADME(t *testing.T) {
	curl := lookTool(t, "curl")
	var examples []string
	for _, line := range strings.Split(readmeSection(t, "### Piston clients"), "\n") {
		if strings.HasPrefix(line, "curl -s localhost:8080/api/v2/") {
			examples = append(examples, line)
		}
	}
	checks := []func(t *testing.T, out []byte){
		func(t *testing.T, out []byte) {
			var rts []map[string]any
			if err := json.Unmarshal(out, &rts); err != nil || len(rts) < 5 {
				t.Errorf("runtimes: %s (%v)", out, err)
			}
		},
		func(t *testing.T, out []byte) {
			var res pistonResult
			if err := json.Unmarshal(out, &res); err != nil || res.Run.Stdout != "hello\n" || res.Version != "3.13.0" {
				t.Errorf("python example: %s (%v)", out, err)
			}
		},
		func(t *testing.T, out []byte) {
			var res pistonResult
			if err := json.Unmarshal(out, &res); err != nil || res.Run.Stdout != "42 arg\n" {
				t.Errorf("javascript example: %s (%v)", out, err)
			}
		},
		func(t *testing.T, out []byte) {
			var res pistonResult
			if err := json.Unmarshal(out, &res); err != nil || res.Run.Status == nil || *res.Run.Status != "TO" || res.Run.Signal == nil || *res.Run.Signal != "SIGKILL" {
				t.Errorf("timeout example: %s (%v)", out, err)
			}
		},
	}
	if len(examples) != len(checks) {
		t.Fatalf("README has %d Piston curl examples, the test checks %d: %q", len(examples), len(checks), examples)
	}
	h := startHost(t, pistonEnv...)
	addr := strings.TrimPrefix(h.URL, "http://")
	for i, ex := range examples {
		cmd := strings.Replace(ex, "curl -s localhost:8080", curl+" -s "+addr, 1)
		out, err := exec.Command("sh", "-c", cmd).Output()
		if err != nil {
			t.Fatalf("%s: %v", ex, err)
		}
		checks[i](t, out)
	}
}

// BenchmarkPiston compares one python print(1) through POST
// /api/v2/execute with the same run through the native API, on one host,
// and times GET /api/v2/runtimes (which asks the engine about each image).
func BenchmarkPiston(b *testing.B) {
	h := startHost(b)
	b.Run("native", func(b *testing.B) {
		for b.Loop() {
			if res := h.run("python", map[string]any{"code": "print(1)"}); res.Stdout != "1\n" {
				b.Fatalf("stdout %q", res.Stdout)
			}
		}
	})
	b.Run("execute", func(b *testing.B) {
		req := map[string]any{"language": "python", "version": "3.11", "files": files("print(1)")}
		for b.Loop() {
			status, body := h.post("/api/v2/execute", req)
			var res pistonResult
			if err := json.Unmarshal(body, &res); status != http.StatusOK || err != nil || res.Run.Stdout != "1\n" {
				b.Fatalf("%d %s", status, body)
			}
		}
	})
	b.Run("runtimes", func(b *testing.B) {
		for b.Loop() {
			if status, body := h.do(context.Background(), http.MethodGet, "/api/v2/runtimes", nil); status != http.StatusOK {
				b.Fatalf("%d %s", status, body)
			}
		}
	})
}

// TestPistonErrorsOnAKeyedHost: what the host refuses before Piston's own
// code runs (no key, a wrong one) still answers in Piston's shape.
func TestPistonErrorsOnAKeyedHost(t *testing.T) {
	key := auth.NewKey()
	keys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keys, []byte("piston "+auth.Hash(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startHost(t, "RUNHOST_API_KEYS_FILE="+keys)
	for _, tc := range []struct{ method, path, body, key string }{
		{"GET", "/api/v2/runtimes", "", ""},
		{"POST", "/api/v2/execute", `{"language":"bash","version":"*","files":[{"content":"echo hi"}]}`, ""},
		{"POST", "/api/v2/execute", `{"language":"bash","version":"*","files":[{"content":"echo hi"}]}`, "rh_wrong"},
	} {
		req, _ := http.NewRequest(tc.method, h.URL+tc.path, strings.NewReader(tc.body))
		if tc.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if tc.key != "" {
			req.Header.Set("Authorization", "Bearer "+tc.key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Message string `json:"message"`
		}
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != 401 || err != nil || e.Message == "" {
			t.Errorf("%s %s: %d, message %q (%v)", tc.method, tc.path, resp.StatusCode, e.Message, err)
		}
	}
	h.Key = key
	if status, body := h.do(context.Background(), http.MethodGet, "/api/v2/runtimes", nil); status != 200 {
		t.Errorf("with the key: %d %s", status, body)
	}
}
