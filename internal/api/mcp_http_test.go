package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/runhost/runhost/internal/app/apptest"
	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/fakeexec"
)

type bearer struct{ key string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return http.DefaultTransport.RoundTrip(r)
}

// mcpClient connects the Go SDK's client to h's /mcp as key.
func mcpClient(t *testing.T, h *apptest.Host, key string) *sdk.ClientSession {
	t.Helper()
	c := sdk.NewClient(&sdk.Implementation{Name: "api-test", Version: "1"}, nil)
	cs, err := c.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: h.URL + "/mcp", HTTPClient: &http.Client{Transport: bearer{key}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// toolText calls a tool and returns whether it was a tool error and its text.
func toolText(t *testing.T, cs *sdk.ClientSession, ctx context.Context, name string, args map[string]any) (bool, string) {
	t.Helper()
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error %v", name, err)
	}
	tc, _ := res.Content[0].(*sdk.TextContent)
	if tc == nil {
		t.Fatalf("%s: first content %T", name, res.Content[0])
	}
	return res.IsError, tc.Text
}

// TestMCPOnFakeExecutor: MCP's tools take the host's paths, on the fake
// executor. run_code's arguments reach the job (stdin, files, timeout);
// engine errors and the admission limit are tool errors with the host's
// codes; a hang-up gives the admission slot back; create_session is
// POST /sessions (mode "plain" accepted, the same refusals).
func TestMCPOnFakeExecutor(t *testing.T) {
	h := apptest.Start(t, "RUNHOST_MAX_RUNS=1", "RUNHOST_QUEUE_WAIT_MS=200")
	cs := mcpClient(t, h, apptest.Alice)
	ctx := context.Background()

	h.Exec.OnRun(fakeexec.Echo())
	isErr, text := toolText(t, cs, ctx, "run_code", map[string]any{
		"runtime": "python", "stdin": "from stdin", "timeout_ms": 1500,
		"files": []map[string]any{{"path": "main.py", "content": "print(1)"}, {"path": "d/x.bin", "content": "AAE=", "encoding": "base64"}},
	})
	if isErr || !strings.Contains(text, "--- stdout ---\nfrom stdin") {
		t.Errorf("run_code: %v %q", isErr, text)
	}
	jobs := h.Exec.Jobs()
	job := jobs[len(jobs)-1]
	if job.Limits.Timeout != 1500*time.Millisecond || len(job.Files) < 2 {
		t.Errorf("job: timeout %v, files %v", job.Limits.Timeout, job.Files)
	}
	for _, f := range job.Files {
		if strings.HasSuffix(f.Path, "d/x.bin") && string(f.Content) != "\x00\x01" {
			t.Errorf("base64 file: %q", f.Content)
		}
	}

	for _, tt := range []struct {
		name   string
		script fakeexec.Script
		code   string
	}{
		{"engine down", fakeexec.Fail(executor.ErrEngineUnavailable), "engine_unavailable: "},
		{"image missing", fakeexec.Fail(executor.ErrImageMissing), "image_missing: "},
		{"engine bug", fakeexec.Fail(context.DeadlineExceeded), "timeout: "},
	} {
		h.Exec.OnRun(tt.script)
		if isErr, text := toolText(t, cs, ctx, "run_code", map[string]any{"runtime": "python", "code": "1"}); !isErr || !strings.HasPrefix(text, tt.code) {
			t.Errorf("%s: %v %q, want a tool error %s", tt.name, isErr, text, tt.code)
		}
	}

	// The one slot is taken by a run that hangs: the next call is refused
	// (a tool error), and once the first caller hangs up the slot is free.
	started := make(chan executor.Job, 1)
	h.Exec.OnRun(fakeexec.Hang(started))
	callCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = cs.CallTool(callCtx, &sdk.CallToolParams{Name: "run_code", Arguments: map[string]any{"runtime": "python", "code": "hang"}})
	}()
	<-started
	bob := mcpClient(t, h, apptest.Bob)
	if isErr, text := toolText(t, bob, ctx, "run_code", map[string]any{"runtime": "python", "code": "1"}); !isErr || !strings.HasPrefix(text, "too_many_requests: ") {
		t.Errorf("a call beyond the slots: %v %q", isErr, text)
	}
	cancel()
	<-done
	h.Exec.OnRun(fakeexec.Exit(0, "freed", ""))
	deadline := time.Now().Add(30 * time.Second)
	for {
		isErr, text := toolText(t, bob, ctx, "run_code", map[string]any{"runtime": "python", "code": "1"})
		if !isErr && strings.Contains(text, "freed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot is not given back after the hang-up: %q", text)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if isErr, text := toolText(t, cs, ctx, "create_session", map[string]any{"runtime": "python", "mode": "plain"}); isErr || !strings.HasPrefix(text, "session_id: ") {
		t.Errorf("create_session: %v %q", isErr, text)
	}
	if isErr, text := toolText(t, cs, ctx, "create_session", map[string]any{"runtime": "cobol"}); !isErr || !strings.HasPrefix(text, "unknown_runtime: ") {
		t.Errorf("create_session of an unknown runtime: %v %q", isErr, text)
	}
	if status, body := h.Do(ctx, apptest.Alice, http.MethodPost, "/sessions", `{"runtime":"python","mode":"repl"}`); status != http.StatusBadRequest || apptest.Code(body) != "invalid_request" {
		t.Errorf("POST /sessions with an unknown mode: %d %s", status, body)
	}
}
