package openapitest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	doc, err := Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, tmpl string
		params     map[string]string
	}{
		{"/runtimes", "/runtimes", map[string]string{}},
		{"/runtimes/py", "/runtimes/{name}", map[string]string{"name": "py"}},
		{"/runtimes/py/run", "/runtimes/{name}/run", map[string]string{"name": "py"}},
		{"/workspaces/s1/files/", "/workspaces/{session}/files/", map[string]string{"session": "s1"}},
		{"/workspaces/s1/files/a/b/c.txt", "/workspaces/{session}/files/{path}", map[string]string{"session": "s1", "path": "a/b/c.txt"}},
		{"/workspaces/s1/files/a%2Fb", "/workspaces/{session}/files/{path}", map[string]string{"session": "s1", "path": "a/b"}},
		{"/workspaces/s1", "/workspaces/{session}", map[string]string{"session": "s1"}},
		{"/runtimes/", "", nil},
		{"/nope", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			tmpl, params, ok := match(doc, tt.path)
			if ok != (tt.tmpl != "") || tmpl != tt.tmpl {
				t.Fatalf("match = %q %v, want %q", tmpl, ok, tt.tmpl)
			}
			for k, v := range tt.params {
				if params[k] != v {
					t.Errorf("%s = %q, want %q", k, params[k], v)
				}
			}
		})
	}
}

// TestCheckerCatchesDrift runs fake servers through the checker: the ones
// that disagree with the document must be reported, the others not.
func TestCheckerCatchesDrift(t *testing.T) {
	doc, err := Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		method, path string
		body         string
		accept       string
		status       int
		ctype        string
		answer       string
		wantFail     string // "" when the exchange matches the document
	}{
		{"documented", "GET", "/healthz", "", "", 200, "application/json", `{"status":"ok"}`, ""},
		{"wrong value", "GET", "/healthz", "", "", 200, "application/json", `{"status":"fine"}`, "response"},
		{"extra field", "GET", "/healthz", "", "", 200, "application/json", `{"status":"ok","x":1}`, "response"},
		{"undocumented status", "GET", "/runtimes", "", "", 418, "application/json", `{"error":{"code":"internal","message":"x"}}`, "status is not supported"},
		{"undocumented code", "GET", "/runtimes/x", "", "", 404, "application/json", `{"error":{"code":"gone_fishing","message":"x"}}`, "response"},
		{"undocumented route", "GET", "/secret", "", "", 200, "application/json", `{}`, "no operation"},
		{"unknown route 404", "GET", "/secret", "", "", 404, "application/json", `{"error":{"code":"not_found","message":"x"}}`, ""},
		{"unchecked page", "GET", "/playground/app.js", "", "", 200, "text/javascript", `x`, ""},
		{"piston drift", "GET", "/api/v2/runtimes", "", "", 200, "application/json", `[1]`, "response"},
		{"piston refusal", "POST", "/api/v2/execute", `{}`, "", 400, "application/json", `{"message":"language is required as a string","error":{"code":"invalid_request","message":"x"}}`, ""},
		{"accepted unknown field", "POST", "/sessions", `{"runtime":"python","colour":"red"}`, "", 201, "application/json", session, "request"},
		{"accepted request", "POST", "/sessions", `{"runtime":"python"}`, "", 201, "application/json", session, ""},
		{"refused malformed request", "POST", "/sessions", `{"runtime":`, "", 400, "application/json", `{"error":{"code":"malformed_json","message":"x"}}`, ""},
		{"stream", "POST", "/runtimes/python/run", `{"code":"print(1)"}`, "text/event-stream", 200, "text/event-stream", "event: stdout\ndata: {\"text\":\"1\\n\"}\n\n", ""},
		{"stream unasked", "POST", "/runtimes/python/run", `{"code":"print(1)"}`, "", 200, "text/event-stream", "event: stdout\n\n", "streamed"},
		{"download", "GET", "/workspaces/s/files/a/b.bin", "", "", 200, "application/octet-stream", "\x00\x01", ""},
		{"upload", "PUT", "/workspaces/s/files/a/b.bin", "raw bytes", "", 200, "application/json", `{"path":"a/b.bin","size":9}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &checker{doc: doc, next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, err := io.ReadAll(r.Body); err != nil {
					t.Error(err)
				}
				w.Header().Set("Content-Type", tt.ctype)
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.answer))
			})}
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			if tt.body != "" { // what the host accepts (its browser guard)
				ct := "application/json"
				if tt.method == http.MethodPut {
					ct = "application/octet-stream"
				}
				req.Header.Set("Content-Type", ct)
			}
			c.ServeHTTP(httptest.NewRecorder(), req)
			got := strings.Join(c.failures, "\n")
			switch {
			case tt.wantFail == "" && got != "":
				t.Errorf("reported %s", got)
			case tt.wantFail != "" && !strings.Contains(got, tt.wantFail):
				t.Errorf("reported %q, want a failure mentioning %q", got, tt.wantFail)
			}
		})
	}
}

const session = `{"id":"a","runtime":"python","version":"3.11","image":"runhost/python:3.11","created_at":"2026-01-02T03:04:05.123Z",` +
	`"last_used":"2026-01-02T03:04:05Z","expires_at":"2026-01-02T03:09:05Z","idle_ttl_s":300,"runs":0,"busy":false}`
