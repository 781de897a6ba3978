package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/runhost/runhost/internal/testenv"
)

// bearer adds an API key to every request of an MCP client.
type bearer struct {
	key  string
	next http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.next.RoundTrip(r)
}

// mcpConnect connects the Go SDK's client to the host's /mcp with key
// (none when empty).
func mcpConnect(t *testing.T, h *host, key string) *sdk.ClientSession {
	t.Helper()
	cs, err := mcpDial(h, key)
	if err != nil {
		t.Fatalf("connect to /mcp: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func mcpDial(h *host, key string) (*sdk.ClientSession, error) {
	httpClient := &http.Client{Transport: http.DefaultTransport}
	if key != "" {
		httpClient.Transport = bearer{key: key, next: http.DefaultTransport}
	}
	client := sdk.NewClient(&sdk.Implementation{Name: "runhost-e2e", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return client.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: h.URL + "/mcp", HTTPClient: httpClient}, nil)
}

// call calls a tool and returns its result's text (the first content)
// and the whole result. A protocol error fails the test: refusals must
// be tool errors.
func call(t *testing.T, cs *sdk.ClientSession, name string, args map[string]any) (string, *sdk.CallToolResult) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error %v", name, err)
	}
	if len(res.Content) == 0 {
		t.Fatalf("%s: no content", name)
	}
	tc, ok := res.Content[0].(*sdk.TextContent)
	if !ok {
		t.Fatalf("%s: first content is a %T, want text", name, res.Content[0])
	}
	return tc.Text, res
}

// ok calls a tool that must succeed and returns its text.
func ok(t *testing.T, cs *sdk.ClientSession, name string, args map[string]any) string {
	t.Helper()
	text, res := call(t, cs, name, args)
	if res.IsError {
		t.Fatalf("%s %v: tool error %s", name, args, text)
	}
	return text
}

// refused calls a tool that must answer with a tool error whose text
// starts with the host's error code.
func refused(t *testing.T, cs *sdk.ClientSession, name string, args map[string]any, code string) {
	t.Helper()
	text, res := call(t, cs, name, args)
	if !res.IsError || !strings.HasPrefix(text, code+": ") {
		t.Errorf("%s %v: isError %v, %q; want a tool error %s", name, args, res.IsError, text, code)
	}
}

// mcpPNG is a 1x1 PNG.
var mcpPNG, _ = base64.StdEncoding.DecodeString("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")

// TestMCPGoClient drives /mcp with the Go SDK's client, as an agent
// would: the tools, a one-shot run, a session whose files persist, the
// workspace files, refusals as tool errors, and keys (another key's
// session and workspace are invisible).
func TestMCPGoClient(t *testing.T) {
	h, _, keys := startTenantHost(t, []string{"alice", "bob"})
	alice := mcpConnect(t, h, keys["alice"])

	if got := alice.InitializeResult().ServerInfo.Name; got != "runhost" {
		t.Errorf("server name %q", got)
	}
	tools, err := alice.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
		if tool.Description == "" || tool.InputSchema == nil {
			t.Errorf("%s: no description or input schema", tool.Name)
		}
	}
	slices.Sort(names)
	want := []string{"create_session", "end_session", "list_files", "list_runtimes", "read_file", "run_code", "run_in_session", "write_file"}
	if !slices.Equal(names, want) {
		t.Errorf("tools %v, want %v", names, want)
	}

	if text := ok(t, alice, "list_runtimes", nil); !strings.Contains(text, "python (aliases: ") || !strings.Contains(text, "3.11 (default)") {
		t.Errorf("list_runtimes:\n%s", text)
	}

	t.Run("run_code", func(t *testing.T) {
		text := ok(t, alice, "run_code", map[string]any{
			"runtime": "python", "code": "import sys\nprint(input().upper())\nprint('warn', file=sys.stderr)",
			"stdin": "hello\n",
		})
		for _, want := range []string{"exit code 0 · python 3.11", "--- stdout ---\nHELLO", "--- stderr ---\nwarn"} {
			if !strings.Contains(text, want) {
				t.Errorf("run_code: %q lacks %q", text, want)
			}
		}
		// A failing program is a result, not a tool error.
		if text := ok(t, alice, "run_code", map[string]any{"runtime": "shell", "code": "echo bye; exit 3"}); !strings.HasPrefix(text, "exit code 3") || !strings.Contains(text, "bye") {
			t.Errorf("failing program: %q", text)
		}
		// Files, and a timeout.
		text = ok(t, alice, "run_code", map[string]any{"runtime": "node", "files": []map[string]any{
			{"path": "main.js", "content": "console.log(require('./lib').x)"},
			{"path": "lib.js", "content": base64.StdEncoding.EncodeToString([]byte("exports.x = 42")), "encoding": "base64"},
		}})
		if !strings.Contains(text, "--- stdout ---\n42") {
			t.Errorf("files: %q", text)
		}
		if text := ok(t, alice, "run_code", map[string]any{"runtime": "shell", "code": "sleep 30", "timeout_ms": 500}); !strings.Contains(text, "timed out") {
			t.Errorf("timeout: %q", text)
		}
	})

	t.Run("refusals are tool errors", func(t *testing.T) {
		refused(t, alice, "run_code", map[string]any{"runtime": "cobol", "code": "x"}, "unknown_runtime")
		refused(t, alice, "run_code", map[string]any{"runtime": "python", "version": "2.7", "code": "x"}, "unknown_version")
		refused(t, alice, "run_code", map[string]any{"runtime": "python", "code": "x", "timeout_ms": 100_000_000}, "limit_exceeded")
		refused(t, alice, "run_code", map[string]any{"runtime": "python", "files": []map[string]any{{"path": "../x.py", "content": "x"}}}, "unsafe_path")
		refused(t, alice, "run_code", map[string]any{"runtime": "python"}, "no_code")
		refused(t, alice, "run_code", map[string]any{"runtime": "python", "files": []map[string]any{{"path": "a.py", "content": "x"}, {"path": "a.py", "content": "y"}}}, "duplicate_file")
		refused(t, alice, "run_code", map[string]any{"runtime": "python", "files": []map[string]any{{"path": "a.py", "content": "%%", "encoding": "base64"}}}, "bad_encoding")
		refused(t, alice, "create_session", map[string]any{"runtime": "python", "ttl_s": 1 << 30}, "limit_exceeded")
		refused(t, alice, "run_in_session", map[string]any{"session_id": "nosuchsession", "code": "x"}, "session_not_found")
		refused(t, alice, "read_file", map[string]any{"workspace": "nosuch", "path": "x"}, "not_found")
		refused(t, alice, "read_file", map[string]any{"workspace": "../etc", "path": "passwd"}, "invalid_session")
		// Arguments the schema refuses are tool errors too (the SDK's).
		for _, args := range []map[string]any{{"runtime": "python", "code": "x", "shell": true}, {"code": "x"}, {"runtime": "python", "code": "x", "timeout_ms": -1}} {
			if text, res := call(t, alice, "run_code", args); !res.IsError {
				t.Errorf("run_code %v: %q, want a tool error", args, text)
			}
		}
		if text, res := call(t, alice, "create_session", map[string]any{"runtime": "python", "mode": "repl"}); !res.IsError {
			t.Errorf("create_session with mode repl: %q, want a tool error", text)
		}
	})

	var session string
	t.Run("session", func(t *testing.T) {
		text := ok(t, alice, "create_session", map[string]any{"runtime": "python", "mode": "plain", "workspace": "proj"})
		first, _, _ := strings.Cut(text, "\n")
		session = strings.TrimPrefix(first, "session_id: ")
		if session == first || session == "" {
			t.Fatalf("create_session: %q", text)
		}
		ok(t, alice, "run_in_session", map[string]any{"session_id": session, "code": "open('/tmp/state', 'w').write('kept')\nopen('made.txt', 'w').write('in the workspace')"})
		text = ok(t, alice, "run_in_session", map[string]any{"session_id": session, "code": "import os\nprint(open('/tmp/state').read(), os.getcwd())"})
		if !strings.Contains(text, "kept /workspaces/proj") {
			t.Errorf("second run: %q", text)
		}
	})

	t.Run("files", func(t *testing.T) {
		if text := ok(t, alice, "write_file", map[string]any{"workspace": "proj", "path": "in/data.csv", "content": "a,b\n1,2\n"}); !strings.Contains(text, "wrote 8 bytes") {
			t.Errorf("write_file: %q", text)
		}
		ok(t, alice, "write_file", map[string]any{"workspace": "proj", "path": "chart.png", "content": base64.StdEncoding.EncodeToString(mcpPNG), "encoding": "base64"})
		// A run from code leaves no main.py in the workspace (the program
		// lives in the run's private directory).
		text := ok(t, alice, "run_code", map[string]any{"runtime": "python", "workspace": "proj/in", "code": "print(open('data.csv').read().splitlines()[1])"})
		if !strings.Contains(text, "--- stdout ---\n1,2") {
			t.Errorf("a run reads the written file: %q", text)
		}
		text = ok(t, alice, "list_files", map[string]any{"workspace": "proj"})
		for _, want := range []string{"chart.png\tfile\t", "in/data.csv\tfile\t8", "made.txt\tfile\t16"} {
			if !strings.Contains(text, want) {
				t.Errorf("list_files: %q lacks %q", text, want)
			}
		}
		if strings.Contains(text, "main.py") {
			t.Errorf("list_files: %q: code runs left their program in the workspace", text)
		}
		if text := ok(t, alice, "list_files", map[string]any{"workspace": "proj", "dir": "in"}); text != "in/data.csv\tfile\t8" {
			t.Errorf("list_files in/: %q", text)
		}
		if text := ok(t, alice, "list_files", nil); text != "proj" {
			t.Errorf("list_files without a workspace: %q", text)
		}
		if text := ok(t, alice, "read_file", map[string]any{"workspace": "proj", "path": "made.txt"}); text != "in the workspace" {
			t.Errorf("read_file: %q", text)
		}
		_, res := call(t, alice, "read_file", map[string]any{"workspace": "proj", "path": "chart.png"})
		if img, ok := res.Content[len(res.Content)-1].(*sdk.ImageContent); !ok || img.MIMEType != "image/png" || !bytes.Equal(img.Data, mcpPNG) {
			t.Errorf("read_file of a PNG: %+v", res.Content)
		}
	})

	t.Run("another key sees nothing", func(t *testing.T) {
		bob := mcpConnect(t, h, keys["bob"])
		refused(t, bob, "run_in_session", map[string]any{"session_id": session, "code": "print(1)"}, "session_not_found")
		refused(t, bob, "end_session", map[string]any{"session_id": session}, "session_not_found")
		refused(t, bob, "read_file", map[string]any{"workspace": "proj", "path": "made.txt"}, "not_found")
		refused(t, bob, "list_files", map[string]any{"workspace": "proj"}, "not_found")
		if text := ok(t, bob, "list_files", nil); strings.Contains(text, "proj") {
			t.Errorf("bob's workspaces: %q", text)
		}
		// bob's own "proj" is his: alice's file is not in it.
		ok(t, bob, "write_file", map[string]any{"workspace": "proj", "path": "bob.txt", "content": "bob"})
		if text := ok(t, alice, "list_files", map[string]any{"workspace": "proj"}); strings.Contains(text, "bob.txt") {
			t.Errorf("alice sees bob's file: %q", text)
		}
	})

	t.Run("end_session", func(t *testing.T) {
		ok(t, alice, "end_session", map[string]any{"session_id": session})
		refused(t, alice, "run_in_session", map[string]any{"session_id": session, "code": "print(1)"}, "session_not_found")
	})

	t.Run("no key", func(t *testing.T) {
		if _, err := mcpDial(h, ""); err == nil {
			t.Error("a client without a key connected")
		}
		if _, err := mcpDial(h, "not-a-key"); err == nil {
			t.Error("a client with a wrong key connected")
		}
		status, e := rawRequest(t, h, "POST", "/mcp", "", map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
			`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_code","arguments":{"runtime":"shell","code":"echo hi"}}}`)
		if status != http.StatusUnauthorized || e.Error.Code != "unauthorized" {
			t.Errorf("no key: %d %+v", status, e)
		}
	})

	audit := grepLines(h.Logs(), `"front_end":"mcp"`)
	if !strings.Contains(audit, `"key":"alice"`) || strings.Contains(audit, `"request_id":""`) {
		t.Errorf("audit lines of the tool calls that ran code (alice's, each with its request id):\n%s", audit)
	}
}

// TestMCPHangUpStopsTheRun: a client that goes away mid-call stops the
// run, as on the native API: its container goes long before its timeout,
// the audit log says so, and the host serves on. Both protocol eras: the
// Go client speaks 2026-07-28 (the SDK cancels the call with its request),
// a 2025-11-25 client's call is detached by the SDK and runhost ends it.
func TestMCPHangUpStopsTheRun(t *testing.T) {
	h := startHost(t, "RUNHOST_MAX_TIMEOUT_MS=600000")
	args := map[string]any{"runtime": "shell", "code": "sleep 600", "timeout_ms": 600_000}
	cs := mcpConnect(t, h, "")
	legacy := func(ctx context.Context) error {
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": map[string]any{"name": "run_code", "arguments": args}})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.URL+"/mcp", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("MCP-Protocol-Version", "2025-11-25")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	for _, tt := range []struct {
		name string
		call func(context.Context) error
	}{
		{"Go client", func(ctx context.Context) error {
			_, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "run_code", Arguments: args})
			return err
		}},
		{"2025-11-25 client", legacy},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- tt.call(ctx) }()
			label := "runhost.instance=" + h.App.Instance
			testenv.Eventually(t, time.Minute, "the run's container starts", func() bool {
				select {
				case err := <-done:
					t.Fatalf("the call ended before the hang-up: %v", err)
				default:
				}
				return testenv.AnyRunning(t, h.Docker, label)
			})
			cancel()
			<-done
			testenv.Eventually(t, time.Minute, "the run's container goes", func() bool { return !testenv.AnyRunning(t, h.Docker, label) })
		})
	}
	testenv.Eventually(t, time.Minute, "two audit lines say client_disconnect", func() bool {
		return strings.Count(h.Logs(), `"outcome":"client_disconnect"`) == 2
	})
	if text := ok(t, cs, "run_code", map[string]any{"runtime": "shell", "code": "echo still here"}); !strings.Contains(text, "still here") {
		t.Errorf("after the hang-ups: %q", text)
	}
}

// TestMCPCrossSitePageCannotDriveIt: /mcp is behind the browser guard like
// every route. On the default keyless loopback host, what a web page can
// make a browser send (a cross-site JSON POST after no preflight, a
// text/plain POST, a DNS-rebinding page's Host) is refused before a tool
// runs; the same call from the host's own origin runs, so the refusals
// are the guard's.
func TestMCPCrossSitePageCannotDriveIt(t *testing.T) {
	h := startHost(t)
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_code","arguments":{"runtime":"shell","code":"echo csrf"}}}`
	accept := "application/json, text/event-stream"
	for _, tt := range []struct {
		name, host string
		headers    map[string]string
		status     int
		code       string
	}{
		{"cross-site JSON", "", map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site", "Content-Type": "application/json", "Accept": accept}, http.StatusForbidden, "cross_site_request"},
		{"text/plain", "", map[string]string{"Content-Type": "text/plain", "Accept": accept}, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"DNS rebinding", "evil.example:80", map[string]string{"Content-Type": "application/json", "Accept": accept}, http.StatusForbidden, "host_not_allowed"},
	} {
		if status, e := rawRequest(t, h, "POST", "/mcp", tt.host, tt.headers, call); status != tt.status || e.Error.Code != tt.code {
			t.Errorf("%s: %d %+v, want %d %s", tt.name, status, e, tt.status, tt.code)
		}
	}
	if strings.Contains(h.Logs(), `"audit"`) {
		t.Errorf("a refused call ran:\n%s", grepLines(h.Logs(), `"audit"`))
	}
	status, _ := rawRequest(t, h, "POST", "/mcp", "", map[string]string{"Origin": h.URL, "Content-Type": "application/json", "Accept": accept}, call)
	if status != http.StatusOK || !strings.Contains(h.Logs(), `"audit"`) {
		t.Errorf("the host's own origin: %d, audit lines:\n%s", status, grepLines(h.Logs(), `"audit"`))
	}
}
