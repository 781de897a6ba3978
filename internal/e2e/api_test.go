package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/runhost/runhost/internal/testenv"
)

func TestBadInputGetsAClearError(t *testing.T) {
	h := startHost(t, "RUNHOST_MAX_BODY_BYTES=65536")
	tests := []struct {
		name    string
		path    string
		body    string
		status  int
		code    string
		message string // a part of the message
	}{
		{"malformed JSON", "/runtimes/python/run", `{"code": `, 400, "malformed_json", "not valid JSON"},
		{"not an object", "/runtimes/python/run", `[1,2]`, 400, "malformed_json", "want"},
		{"two values", "/runtimes/python/run", `{"code":"1"} {"code":"2"}`, 400, "malformed_json", "more than one"},
		{"empty body", "/runtimes/python/run", ``, 400, "malformed_json", "empty"},
		{"unknown field", "/runtimes/python/run", `{"code":"1","tiemout_ms":5}`, 400, "unknown_field", "tiemout_ms"},
		{"wrong type", "/runtimes/python/run", `{"code":1}`, 400, "malformed_json", "code"},
		{"no code", "/runtimes/python/run", `{"stdin":"x"}`, 400, "no_code", "code or files"},
		{"bad encoding", "/runtimes/python/run", `{"files":[{"path":"a.py","content":"%%%","encoding":"base64"}]}`, 400, "bad_encoding", "base64"},
		{"unknown encoding", "/runtimes/python/run", `{"files":[{"path":"a.py","content":"x","encoding":"rot13"}]}`, 400, "bad_encoding", "rot13"},
		{"path escapes with ..", "/runtimes/python/run", `{"files":[{"path":"../evil.py","content":"x"}]}`, 400, "unsafe_path", `".."`},
		{"absolute path", "/runtimes/python/run", `{"files":[{"path":"/etc/passwd","content":"x"}]}`, 400, "unsafe_path", "absolute"},
		{"NUL in path", "/runtimes/python/run", `{"files":[{"path":"a\u0000b","content":"x"}]}`, 400, "unsafe_path", "NUL"},
		{"entry escapes", "/runtimes/python/run", `{"files":[{"path":"a.py","content":"x"}],"entry":"../a.py"}`, 400, "unsafe_path", `".."`},
		{"entry not a file", "/runtimes/python/run", `{"files":[{"path":"a.py","content":"x"}],"entry":"b.py"}`, 400, "invalid_request", "b.py"},
		{"duplicate file", "/runtimes/python/run", `{"files":[{"path":"a.py","content":"x"},{"path":"a.py","content":"y"}]}`, 400, "duplicate_file", "twice"},
		{"timeout above max", "/runtimes/python/run", `{"code":"1","timeout_ms":600000}`, 400, "limit_exceeded", "maximum"},
		{"memory above max", "/runtimes/python/run", `{"code":"1","memory_mb":1000000}`, 400, "limit_exceeded", "memory_mb"},
		{"memory below min", "/runtimes/python/run", `{"code":"1","memory_mb":1}`, 400, "limit_exceeded", "minimum"},
		{"cpus above max", "/runtimes/python/run", `{"code":"1","cpus":1000}`, 400, "limit_exceeded", "cpus"},
		{"negative timeout", "/runtimes/python/run", `{"code":"1","timeout_ms":-1}`, 400, "limit_exceeded", "timeout_ms"},
		{"overflowing memory", "/runtimes/python/run", `{"code":"1","memory_mb":9007199254740991}`, 400, "limit_exceeded", "memory_mb"},
		{"bad env name", "/runtimes/python/run", `{"code":"1","env":{"A=B":"c"}}`, 400, "invalid_env", "A=B"},
		{"NUL in arg", "/runtimes/python/run", `{"code":"1","args":["a\u0000"]}`, 400, "invalid_arg", "NUL"},
		{"unknown runtime", "/runtimes/cobol/run", `{"code":"1"}`, 404, "unknown_runtime", "python, shell"},
		{"unknown version", "/runtimes/python/run", `{"code":"1","version":"2.7"}`, 404, "unknown_version", "3.11"},
		{"body too large", "/runtimes/python/run", `{"code":"` + strings.Repeat("x", 70000) + `"}`, 413, "body_too_large", "65536"},
		{"no such route", "/nope", ``, 404, "not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := http.MethodPost
			if tt.path == "/nope" {
				method = http.MethodGet
			}
			status, body := h.do(context.Background(), method, tt.path, strings.NewReader(tt.body))
			if status != tt.status {
				t.Fatalf("status = %d, want %d: %s", status, tt.status, body)
			}
			e := decodeError(t, body)
			if e.Error.Code != tt.code {
				t.Errorf("code = %q, want %q (message %q)", e.Error.Code, tt.code, e.Error.Message)
			}
			if !strings.Contains(e.Error.Message, tt.message) {
				t.Errorf("message %q does not mention %q", e.Error.Message, tt.message)
			}
		})
	}
}

// TestRequestContentTypes: a run body must be sent as application/json
// (parameters allowed); without a type, or as a type a web page may send
// freely, it is a 415 that says what to send.
func TestRequestContentTypes(t *testing.T) {
	h := startHost(t)
	for ct, want := range map[string]int{
		"application/json":                  http.StatusOK,
		"application/json; charset=UTF-8":   http.StatusOK,
		"":                                  http.StatusUnsupportedMediaType,
		"text/plain":                        http.StatusUnsupportedMediaType,
		"application/x-www-form-urlencoded": http.StatusUnsupportedMediaType,
	} {
		req, _ := http.NewRequest(http.MethodPost, h.URL+"/runtimes/python/run", bytes.NewBufferString(`{"code":"print(2+2)"}`))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Content-Type %q: %d %s, want %d", ct, resp.StatusCode, body, want)
			continue
		}
		if want == http.StatusOK {
			var res runResult
			if err := json.Unmarshal(body, &res); err != nil || res.Stdout != "4\n" {
				t.Errorf("Content-Type %q: result %s (%v)", ct, body, err)
			}
			continue
		}
		var e apiError
		if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != "unsupported_media_type" || !strings.Contains(e.Error.Message, "application/json") {
			t.Errorf("Content-Type %q: %s, want unsupported_media_type naming application/json", ct, body)
		}
	}
}

func TestRuntimesListing(t *testing.T) {
	h := startHost(t)
	status, body := h.do(context.Background(), http.MethodGet, "/runtimes", nil)
	if status != 200 {
		t.Fatalf("GET /runtimes: %d %s", status, body)
	}
	var list []struct {
		Name         string   `json:"name"`
		Aliases      []string `json:"aliases"`
		Description  string   `json:"description"`
		Capabilities []string `json:"capabilities"`
		Versions     []struct {
			Version   string `json:"version"`
			Image     string `json:"image"`
			Default   bool   `json:"default"`
			Installed bool   `json:"installed"`
		} `json:"versions"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	byName := map[string]int{}
	for i, rt := range list {
		byName[rt.Name] = i
	}
	for _, want := range []struct{ name, alias, image string }{
		{"python", "py", "runhost/python:3.11"},
		{"shell", "sh", "runhost/shell:bookworm"},
	} {
		i, ok := byName[want.name]
		if !ok {
			t.Fatalf("%s missing from %s", want.name, body)
		}
		rt := list[i]
		if rt.Description == "" || len(rt.Capabilities) == 0 || !contains(rt.Aliases, want.alias) {
			t.Errorf("%s: incomplete entry %+v", want.name, rt)
		}
		if len(rt.Versions) == 0 || rt.Versions[0].Image != want.image || !rt.Versions[0].Installed || !rt.Versions[0].Default {
			t.Errorf("%s: versions %+v, want %s installed and default", want.name, rt.Versions, want.image)
		}
	}

	status, body = h.do(context.Background(), http.MethodGet, "/runtimes/py", nil)
	if status != 200 || !strings.Contains(string(body), `"name":"python"`) {
		t.Errorf("GET /runtimes/py (alias): %d %s", status, body)
	}
	status, body = h.do(context.Background(), http.MethodGet, "/runtimes/nope", nil)
	if status != 404 || decodeError(t, body).Error.Code != "unknown_runtime" {
		t.Errorf("GET /runtimes/nope: %d %s", status, body)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	h := startHost(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, body := h.do(context.Background(), http.MethodGet, path, nil); status != 200 {
			t.Errorf("GET %s: %d %s", path, status, body)
		}
		if status, body := h.do(context.Background(), http.MethodHead, path, nil); status != 200 || len(body) != 0 {
			t.Errorf("HEAD %s: %d %q", path, status, body)
		}
	}
}

func TestEngineUnreachable(t *testing.T) {
	cli := testenv.RequireDocker(t)
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	h := startHostWith(t, cli)
	status, body := h.do(context.Background(), http.MethodGet, "/readyz", nil)
	if status != http.StatusServiceUnavailable || decodeError(t, body).Error.Code != "not_ready" {
		t.Errorf("GET /readyz with no engine: %d %s", status, body)
	}
	status, body = h.post("/runtimes/python/run", map[string]any{"code": "print(1)"})
	if status != http.StatusServiceUnavailable || decodeError(t, body).Error.Code != "engine_unavailable" {
		t.Errorf("run with no engine: %d %s", status, body)
	}
	if status, _ := h.do(context.Background(), http.MethodGet, "/healthz", nil); status != 200 {
		t.Errorf("healthz must stay 200 while the engine is down, got %d", status)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestAcceptIsNegotiated(t *testing.T) {
	h := startHost(t)
	for _, tc := range []struct {
		accept, want string
	}{
		{"", "application/json"},
		{"text/event-stream", "text/event-stream"},
		{"TEXT/EVENT-STREAM", "text/event-stream"},
		{"application/json, text/event-stream", "application/json"},
		{"text/event-stream;q=0", "application/json"},
		{"application/json;q=0.5, text/event-stream", "text/event-stream"},
	} {
		req, _ := http.NewRequest(http.MethodPost, h.URL+"/runtimes/shell/run", strings.NewReader(`{"code":"echo hi"}`))
		req.Header.Set("Content-Type", "application/json")
		if tc.accept != "" {
			req.Header.Set("Accept", tc.accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ct, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
		if resp.StatusCode != 200 || ct != tc.want || !strings.Contains(string(body), "hi") {
			t.Errorf("Accept %q: %d %s, want %s (%.200s)", tc.accept, resp.StatusCode, ct, tc.want, body)
		}
	}
}
