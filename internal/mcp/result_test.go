package mcp

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/pathguard"
	"github.com/runhost/runhost/internal/policy"
	"github.com/runhost/runhost/internal/runner"
)

// TestRunContent: what a model reads of a run — the first line, the
// streams, a cell's rich results (images attached as image content, the
// rest named), its error — for each way a run ends.
func TestRunContent(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\nfake")
	raw := func(v any) json.RawMessage { b, _ := json.Marshal(v); return b }
	result := func(r executor.Result) runner.Result {
		r.Duration = 12 * time.Millisecond
		return runner.Result{Runtime: "python", Version: "3.11", Result: r}
	}
	for _, tt := range []struct {
		name   string
		res    runner.Result
		want   []string // in the text, in order
		images int
	}{
		{"output", result(executor.Result{Stdout: []byte("hi\n"), Stderr: []byte("warn\n")}),
			[]string{"exit code 0 · python 3.11 · 12 ms", "--- stdout ---\nhi", "--- stderr ---\nwarn"}, 0},
		{"nothing", result(executor.Result{ExitCode: 3}), []string{"exit code 3 ·", "(no output)"}, 0},
		{"timed out", result(executor.Result{ExitCode: 137, TimedOut: true}), []string{"exit code 137", "timed out"}, 0},
		{"out of memory", result(executor.Result{ExitCode: 137, OOMKilled: true}), []string{"out of memory"}, 0},
		{"install failed", result(executor.Result{ExitCode: 1, Stage: executor.StageInstall, Stderr: []byte("no such package")}),
			[]string{"the install of the requirements failed (exit code 1); the program did not run", "no such package"}, 0},
		{"truncated, binary", result(executor.Result{Stdout: []byte("a\xffb"), StdoutTruncated: true}),
			[]string{"--- stdout (truncated by the host's output limit; bytes that are not UTF-8 shown as \uFFFD) ---\na\uFFFDb"}, 0},
		{"rich results", result(executor.Result{Restarted: true, Results: []executor.RichResult{
			{Data: map[string]json.RawMessage{"text/plain": raw("42")}},
			{Data: map[string]json.RawMessage{"text/plain": raw("<Figure>"), "image/png": raw(base64.StdEncoding.EncodeToString(png)), "text/html": raw("<img>")}},
			{Data: map[string]json.RawMessage{"image/png": raw("not base64!")}},
		}}), []string{"the interpreter was restarted", "--- result 1 ---\n42", "--- result 2 ---\n[image/png image 1 attached]\n<Figure>\n(also as text/html, not shown)",
			"--- result 3 ---\n[image/png: invalid base64]"}, 1},
		{"cell error", result(executor.Result{CellError: &executor.CellError{Name: "ZeroDivisionError", Value: "division by zero", Traceback: []string{"line 1\n", "1/0"}}}),
			[]string{"--- error ---\nZeroDivisionError: division by zero\nline 1\n1/0"}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			content := runContent(tt.res)
			text := content[0].(*sdk.TextContent).Text
			at := 0
			for _, w := range tt.want {
				i := strings.Index(text[at:], w)
				if i < 0 {
					t.Fatalf("text lacks %q after byte %d:\n%s", w, at, text)
				}
				at += i + len(w)
			}
			if len(content)-1 != tt.images {
				t.Fatalf("%d images, want %d", len(content)-1, tt.images)
			}
			if tt.images > 0 {
				if img := content[1].(*sdk.ImageContent); img.MIMEType != "image/png" || string(img.Data) != string(png) {
					t.Errorf("image %s %q", img.MIMEType, img.Data)
				}
			}
		})
	}
}

// TestRunRequest: run_code's arguments map onto the one request model and
// its Validate: contents decoded, the refusals with the host's codes.
func TestRunRequest(t *testing.T) {
	for _, tt := range []struct {
		name string
		args runCodeArgs
		code string // the refusal's code (runner.InvalidError); "" when accepted
		is   error  // or the refusal's sentinel
	}{
		{"code", runCodeArgs{Runtime: "python", program: program{Code: "print(1)"}}, "", nil},
		{"files", runCodeArgs{Runtime: "python", program: program{Files: []fileArg{{Path: "a.py", Content: "AA==", Encoding: "base64"}}}}, "", nil},
		{"no program", runCodeArgs{Runtime: "python"}, "no_code", nil},
		{"bad base64", runCodeArgs{Runtime: "python", program: program{Files: []fileArg{{Path: "a.py", Content: "%", Encoding: "base64"}}}}, "bad_encoding", nil},
		{"duplicate", runCodeArgs{Runtime: "python", program: program{Files: []fileArg{{Path: "a.py"}, {Path: "a.py"}}}}, "duplicate_file", nil},
		{"unsafe path", runCodeArgs{Runtime: "python", program: program{Files: []fileArg{{Path: "../a.py"}}}}, "", pathguard.ErrUnsafePath},
		{"timeout beyond the bound", runCodeArgs{Runtime: "python", program: program{Code: "1", TimeoutMS: runner.MaxTimeoutMS + 1}}, "", policy.ErrLimitExceeded},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := auth.Identity{Name: "alice"}
			req, err := runRequest(id, tt.args)
			var ie *runner.InvalidError
			switch {
			case tt.is != nil:
				if !errors.Is(err, tt.is) {
					t.Errorf("%v, want %v", err, tt.is)
				}
			case tt.code != "":
				if !errors.As(err, &ie) || ie.Code != tt.code {
					t.Errorf("%v, want %s", err, tt.code)
				}
			case err != nil:
				t.Fatalf("refused: %v", err)
			case req.Caller.Name != id.Name || req.Runtime != "python" || len(req.Files) != len(tt.args.Files):
				t.Errorf("request %+v", req)
			}
		})
	}
}
