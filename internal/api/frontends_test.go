package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/runhost/runhost/internal/app/apptest"
)

// refusal is a request a front end must refuse before anything runs.
type refusal struct {
	name, path, body string
	status           int
	code             string
}

// checkRefusals sends each request as Alice and checks the status and the
// error code (not the wording), that no job reached the executor and that
// no admission slot stays taken.
func checkRefusals(t *testing.T, h *apptest.Host, cases []refusal) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.Exec.Jobs())
			status, body := h.Post(tc.path, tc.body)
			if status != tc.status || apptest.Code(body) != tc.code {
				t.Errorf("%d %s, want %d %s", status, body, tc.status, tc.code)
			}
			if n := len(h.Exec.Jobs()); n != before {
				t.Errorf("%d jobs reached the executor", n-before)
			}
			if st := h.Admission.Stats(); st.InFlight != 0 || st.Queued != 0 {
				t.Errorf("admission holds %+v after the refusal", st)
			}
		})
	}
}

// repeat is a JSON array of n copies of item (item is JSON, %d its index).
func repeat(n int, item string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = strings.ReplaceAll(item, "%d", fmt.Sprint(i))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// vars is a JSON object of n variables V0..Vn-1.
func vars(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"V%d":"x"`, i)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// TestNativeRefusals: every refusal branch of the native run route, from
// decoding through the shared validation to the runner and the policy.
func TestNativeRefusals(t *testing.T) {
	h := apptest.Start(t, "RUNHOST_MAX_BODY_BYTES=1048576", "RUNHOST_MAX_TIMEOUT_MS=60000", "RUNHOST_MAX_MEMORY_MB=1024", "RUNHOST_MAX_CPUS=2")
	const py, sh, df = "/runtimes/python/run", "/runtimes/shell/run", "/runtimes/dockerfile/run"
	big := strings.Repeat("x", 1024)
	checkRefusals(t, h, []refusal{
		// Decoding the wire format.
		{"empty body", py, ``, 400, "malformed_json"},
		{"not JSON", py, `{"code":`, 400, "malformed_json"},
		{"not an object", py, `[1]`, 400, "malformed_json"},
		{"two values", py, `{"code":"1"}{"code":"2"}`, 400, "malformed_json"},
		{"wrong type", py, `{"code":1}`, 400, "malformed_json"},
		{"command of the wrong type", sh, `{"command":5}`, 400, "malformed_json"},
		{"unknown field", py, `{"code":"1","tiemout_ms":5}`, 400, "unknown_field"},
		{"body too large", py, `{"code":"` + strings.Repeat("x", 1<<20) + `"}`, 413, "body_too_large"},
		{"requirements and packages", py, `{"code":"1","requirements":["a"],"packages":["b"]}`, 400, "invalid_request"},
		{"bad base64", py, `{"files":[{"path":"a.py","content":"%%%","encoding":"base64"}]}`, 400, "bad_encoding"},
		{"unknown encoding", py, `{"files":[{"path":"a.py","content":"x","encoding":"rot13"}]}`, 400, "bad_encoding"},

		// The one validation (runner.Request.Validate).
		{"negative timeout", py, `{"code":"1","timeout_ms":-1}`, 400, "limit_exceeded"},
		{"overflowing timeout", py, `{"code":"1","timeout_ms":9223372036854775807}`, 400, "limit_exceeded"},
		{"negative memory", py, `{"code":"1","memory_mb":-1}`, 400, "limit_exceeded"},
		{"overflowing memory", py, `{"code":"1","memory_mb":9007199254740991}`, 400, "limit_exceeded"},
		{"negative cpus", py, `{"code":"1","cpus":-0.5}`, 400, "limit_exceeded"},
		{"huge cpus", py, `{"code":"1","cpus":1e300}`, 400, "limit_exceeded"},
		{"no program", py, `{"stdin":"x"}`, 400, "no_code"},
		{"too many files", py, `{"files":` + repeat(257, `{"path":"f%d.py","content":""}`) + `}`, 400, "too_many_files"},
		{"absolute path", py, `{"files":[{"path":"/etc/passwd","content":"x"}]}`, 400, "unsafe_path"},
		{"path with ..", py, `{"files":[{"path":"../a.py","content":"x"}]}`, 400, "unsafe_path"},
		{"NUL in path", py, `{"files":[{"path":"a\u0000.py","content":"x"}]}`, 400, "unsafe_path"},
		{"entry escapes", py, `{"files":[{"path":"a.py","content":"x"}],"entry":"../a.py"}`, 400, "unsafe_path"},
		{"duplicate file", py, `{"files":[{"path":"a.py","content":"x"},{"path":"a.py","content":"y"}]}`, 400, "duplicate_file"},
		{"too many args", py, `{"code":"1","args":` + repeat(1025, `"a"`) + `}`, 400, "too_many_args"},
		{"args too long", py, `{"code":"1","args":` + repeat(257, `"`+big+`"`) + `}`, 400, "too_many_args"},
		{"NUL in an arg", py, `{"code":"1","args":["a\u0000"]}`, 400, "invalid_arg"},
		{"NUL in the command", sh, `{"command":["echo","a\u0000"]}`, 400, "invalid_arg"},
		{"NUL in a shell command", sh, `{"command":"echo a\u0000"}`, 400, "invalid_arg"},
		{"command too long", sh, `{"command":` + repeat(1025, `"a"`) + `}`, 400, "too_many_args"},
		{"shell command too long", sh, `{"command":"` + strings.Repeat(big, 257) + `"}`, 400, "too_many_args"},
		{"too many env entries", py, `{"code":"1","env":` + vars(257) + `}`, 400, "too_many_env"},
		{"env name with =", py, `{"code":"1","env":{"A=B":"c"}}`, 400, "invalid_env"},
		{"env name starting with a digit", py, `{"code":"1","env":{"1A":"c"}}`, 400, "invalid_env"},
		{"NUL in an env value", py, `{"code":"1","env":{"A":"\u0000"}}`, 400, "invalid_env"},
		{"env value too long", py, `{"code":"1","env":{"A":"` + strings.Repeat(big, 65) + `"}}`, 400, "invalid_env"},
		{"build_args name", df, `{"dockerfile":"FROM runhost/python:3.11","build_args":{"A-B":"c"}}`, 400, "invalid_request"},
		{"too many build_args", df, `{"dockerfile":"FROM runhost/python:3.11","build_args":` + vars(257) + `}`, 400, "invalid_request"},
		{"NUL in a build_args value", df, `{"dockerfile":"FROM runhost/python:3.11","build_args":{"A":"\u0000"}}`, 400, "invalid_request"},

		// The runner: the runtime, its version and capabilities.
		{"unknown runtime", "/runtimes/cobol/run", `{"code":"1"}`, 404, "unknown_runtime"},
		{"unknown version", py, `{"code":"1","version":"2.7"}`, 404, "unknown_version"},
		{"image for a runtime without custom images", py, `{"code":"1","image":"runhost/python:3.11"}`, 400, "invalid_request"},
		{"dockerfile for a runtime without builds", py, `{"code":"1","dockerfile":"FROM x"}`, 400, "invalid_request"},
		{"packages for a runtime without them", sh, `{"code":"1","packages":["a"]}`, 400, "invalid_request"},
		{"command for a runtime without it", py, `{"command":["python3"]}`, 400, "invalid_request"},
		{"context_path for a runtime without builds", py, `{"code":"1","context_path":"proj"}`, 400, "invalid_request"},
		{"bad workspace name", py, `{"code":"1","workspace":"../x"}`, 400, "invalid_session"},

		// The plugin's plan.
		{"entry that is no file", py, `{"files":[{"path":"a.py","content":"x"}],"entry":"b.py"}`, 400, "invalid_request"},
		{"pip option", py, `{"code":"1","requirements":["--index-url=http://x"]}`, 400, "invalid_request"},

		// The policy.
		{"timeout above the maximum", py, `{"code":"1","timeout_ms":60001}`, 400, "limit_exceeded"},
		{"memory above the maximum", py, `{"code":"1","memory_mb":1025}`, 400, "limit_exceeded"},
		{"memory below the minimum", py, `{"code":"1","memory_mb":1}`, 400, "limit_exceeded"},
		{"cpus above the maximum", py, `{"code":"1","cpus":3}`, 400, "limit_exceeded"},
		{"image outside the allow-list", sh, `{"image":"evil/image:1","command":["true"]}`, 403, "image_not_allowed"},
		{"image ID", sh, `{"image":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","command":["true"]}`, 403, "image_not_allowed"},
		{"Dockerfile that fetches", df, `{"dockerfile":"FROM runhost/python:3.11\nADD http://example.com/x /x"}`, 400, "dockerfile_refused"},
		{"Dockerfile that does not parse", df, `{"dockerfile":"FROM"}`, 400, "dockerfile_invalid"},
	})
}

// TestNativeRefusalsOutsideTheBody: refusals before the body is read.
func TestNativeRefusalsOutsideTheBody(t *testing.T) {
	h := apptest.Start(t)
	ctx := context.Background()
	cases := []struct {
		name, key, method, path, contentType string
		status                               int
		code                                 string
	}{
		{"no key", "", http.MethodPost, "/runtimes/python/run", "application/json", 401, "unauthorized"},
		{"wrong key", "nope", http.MethodPost, "/runtimes/python/run", "application/json", 401, "unauthorized"},
		{"no content type", apptest.Alice, http.MethodPost, "/runtimes/python/run", "", 415, "unsupported_media_type"},
		{"text/plain", apptest.Alice, http.MethodPost, "/runtimes/python/run", "text/plain", 415, "unsupported_media_type"},
		{"no such route", apptest.Alice, http.MethodGet, "/nope", "", 404, "not_found"},
		{"method not allowed", apptest.Alice, http.MethodGet, "/runtimes/python/run", "", 405, "method_not_allowed"},
		{"operator route", apptest.Alice, http.MethodGet, "/plugins", "", 403, "forbidden"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(ctx, tc.method, h.URL+tc.path, strings.NewReader(`{"code":"1"}`))
			if err != nil {
				t.Fatal(err)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			if tc.key != "" {
				req.Header.Set("Authorization", "Bearer "+tc.key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || apptest.Code(body) != tc.code {
				t.Errorf("%d %s, want %d %s", resp.StatusCode, body, tc.status, tc.code)
			}
		})
	}
	if n := len(h.Exec.Jobs()); n != 0 {
		t.Errorf("%d jobs reached the executor", n)
	}
}

// TestPistonRefusals: every refusal branch of Piston's execute route, in
// the one classification (status and runhost's code beside Piston's
// message).
func TestPistonRefusals(t *testing.T) {
	h := apptest.Start(t, "RUNHOST_MAX_BODY_BYTES=1048576", "RUNHOST_MAX_TIMEOUT_MS=20000", "RUNHOST_MAX_MEMORY_MB=1024")
	const ex = "/api/v2/execute"
	const py = `"language":"python","version":"3.11"`
	const code = `"files":[{"content":"print(1)"}]`
	checkRefusals(t, h, []refusal{
		// Piston's own checks, in Piston's order.
		{"empty body", ex, ``, 400, "invalid_request"},
		{"not JSON", ex, `{"language":`, 400, "malformed_json"},
		{"no language", ex, `{}`, 400, "invalid_request"},
		{"language not a string", ex, `{"language":3}`, 400, "invalid_request"},
		{"no version", ex, `{"language":"python"}`, 400, "invalid_request"},
		{"no files", ex, `{` + py + `}`, 400, "invalid_request"},
		{"files not an array", ex, `{` + py + `,"files":"x"}`, 400, "invalid_request"},
		{"file not an object", ex, `{` + py + `,"files":["x"]}`, 400, "invalid_request"},
		{"file without content", ex, `{` + py + `,"files":[{"name":"a.py"}]}`, 400, "invalid_request"},
		{"file name not a string", ex, `{` + py + `,"files":[{"name":1,"content":"x"}]}`, 400, "invalid_request"},
		{"unknown language", ex, `{"language":"cobol","version":"*",` + code + `}`, 400, "invalid_request"},
		{"unknown version", ex, `{"language":"python","version":"2.7",` + code + `}`, 400, "invalid_request"},
		{"no utf8 file", ex, `{` + py + `,"files":[{"content":"eA==","encoding":"base64"}]}`, 400, "invalid_request"},
		{"limit not a number", ex, `{` + py + `,` + code + `,"run_timeout":"5s"}`, 400, "invalid_request"},
		{"compile limit not a number", ex, `{` + py + `,` + code + `,"compile_memory_limit":true}`, 400, "invalid_request"},
		{"limit out of range", ex, `{` + py + `,` + code + `,"compile_timeout":1e300}`, 400, "limit_exceeded"},
		{"negative timeout", ex, `{` + py + `,` + code + `,"run_timeout":-5}`, 400, "limit_exceeded"},
		{"negative memory", ex, `{` + py + `,` + code + `,"run_memory_limit":-2}`, 400, "limit_exceeded"},
		{"stdin not a string", ex, `{` + py + `,` + code + `,"stdin":5}`, 400, "invalid_request"},
		{"args not strings", ex, `{` + py + `,` + code + `,"args":[1]}`, 400, "invalid_request"},
		{"bad base64", ex, `{` + py + `,"files":[{"content":"x"},{"content":"!!!","encoding":"base64"}]}`, 400, "bad_encoding"},
		{"bad hex", ex, `{` + py + `,"files":[{"content":"x"},{"content":"zz","encoding":"hex"}]}`, 400, "bad_encoding"},
		{"body too large", ex, `{"language":"` + strings.Repeat("x", 1<<20) + `"}`, 413, "body_too_large"},

		// The one validation, as for the native API.
		{"too many files", ex, `{` + py + `,"files":` + repeat(257, `{"name":"f%d.py","content":"x"}`) + `}`, 400, "too_many_files"},
		{"escaping name", ex, `{` + py + `,"files":[{"name":"../x.py","content":"x"}]}`, 400, "unsafe_path"},
		{"duplicate name", ex, `{` + py + `,"files":[{"name":"a.py","content":"x"},{"name":"a.py","content":"y"}]}`, 400, "duplicate_file"},
		{"too many args", ex, `{` + py + `,` + code + `,"args":` + repeat(1025, `"a"`) + `}`, 400, "too_many_args"},
		{"NUL in an arg", ex, `{` + py + `,` + code + `,"args":["a\u0000"]}`, 400, "invalid_arg"},
		{"huge timeout", ex, `{` + py + `,` + code + `,"run_timeout":1e12}`, 400, "limit_exceeded"},

		// The policy, in Piston's words.
		{"timeout above the maximum", ex, `{` + py + `,` + code + `,"run_timeout":20001}`, 400, "limit_exceeded"},
		{"memory above the maximum", ex, `{` + py + `,` + code + `,"run_memory_limit":2147483648}`, 400, "limit_exceeded"},
	})
}

// TestPistonAnswersInItsShape: a refusal is Piston's {"message"}, with
// runhost's code beside it, and a limit speaks Piston's fields and units.
func TestPistonAnswersInItsShape(t *testing.T) {
	h := apptest.Start(t, "RUNHOST_MAX_TIMEOUT_MS=20000")
	status, body := h.Post("/api/v2/execute", `{"language":"python","version":"3.11","files":[{"content":"1"}],"run_timeout":20001}`)
	want := `{"message":"run_timeout cannot exceed the configured limit of 20000","error":{"code":"limit_exceeded","message":"run_timeout cannot exceed the configured limit of 20000"}}`
	if status != 400 || strings.TrimSpace(string(body)) != want {
		t.Errorf("%d %s, want 400 %s", status, body, want)
	}
}
