package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// rawRequest sends exactly the given headers (and Host, when set): what a
// browser sends on a page's behalf, without the helpers' Content-Type.
func rawRequest(t *testing.T, h *host, method, path, hostHeader string, headers map[string]string, body string) (int, apiError) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if hostHeader != "" {
		req.Host = hostHeader
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e apiError
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, e
}

// TestCrossSiteRequestsRunNothing: what a web page can make a browser send
// to the default keyless loopback host (issue 14, item 10), and what a
// DNS-rebinding page sends, is refused before anything runs: no file is
// written, no run is admitted. The same request from the host's own page
// runs, so the refusals are the guard's and not a broken request.
func TestCrossSiteRequestsRunNothing(t *testing.T) {
	h, root := startWorkspaceHost(t, pistonEnv...)
	csrf := `{"workspace":"proj1","command":"echo csrf > csrf.txt"}`
	piston := `{"language":"bash","version":"*","files":[{"content":"echo csrf > /tmp/x"}]}`
	evil := map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
	with := func(base map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	tests := []struct {
		name, method, path, host string
		headers                  map[string]string
		body                     string
		status                   int
		code                     string
	}{
		// The problem statement's curl, and its variants.
		{"text/plain from another site", "POST", "/runtimes/shell/run", "", with(evil, "Content-Type", "text/plain"), csrf, 403, "cross_site_request"},
		{"typeless Blob from another site", "POST", "/runtimes/shell/run", "", evil, csrf, 403, "cross_site_request"},
		{"JSON from another site", "POST", "/runtimes/shell/run", "", with(evil, "Content-Type", "application/json"), csrf, 403, "cross_site_request"},
		{"form from another site", "POST", "/runtimes/shell/run", "", with(evil, "Content-Type", "application/x-www-form-urlencoded"), csrf, 403, "cross_site_request"},
		{"fetch metadata without Origin", "POST", "/runtimes/shell/run", "", map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}, csrf, 403, "cross_site_request"},
		{"text/plain without browser headers", "POST", "/runtimes/shell/run", "", map[string]string{"Content-Type": "text/plain"}, csrf, 415, "unsupported_media_type"},
		{"no type without browser headers", "POST", "/runtimes/shell/run", "", nil, csrf, 415, "unsupported_media_type"},
		{"Piston execute from another site", "POST", "/api/v2/execute", "", with(evil, "Content-Type", "text/plain"), piston, 403, "cross_site_request"},
		{"Piston execute as text/plain", "POST", "/api/v2/execute", "", map[string]string{"Content-Type": "text/plain"}, piston, 415, "unsupported_media_type"},
		{"plugin reload from another site", "POST", "/admin/plugins/reload", "", evil, "", 403, "cross_site_request"},
		{"session from another site", "POST", "/sessions", "", with(evil, "Content-Type", "text/plain"), `{"runtime":"shell"}`, 403, "cross_site_request"},
		{"upload from another site", "PUT", "/workspaces/proj1/files/csrf.txt", "", with(evil, "Content-Type", "text/plain"), "csrf", 403, "cross_site_request"},
		{"upload as text/plain", "PUT", "/workspaces/proj1/files/csrf.txt", "", map[string]string{"Content-Type": "text/plain"}, "csrf", 415, "unsupported_media_type"},
		{"delete from another site", "DELETE", "/workspaces/proj1", "", evil, "", 403, "cross_site_request"},
		// DNS rebinding: the page's own name, now resolving to 127.0.0.1.
		{"rebinding run", "POST", "/runtimes/shell/run", "evil.example:8080", map[string]string{"Content-Type": "application/json"}, csrf, 403, "host_not_allowed"},
		{"rebinding read", "GET", "/runtimes", "evil.example", nil, "", 403, "host_not_allowed"},
		{"rebinding Piston", "POST", "/api/v2/execute", "evil.example:8080", map[string]string{"Content-Type": "application/json"}, piston, 403, "host_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, e := rawRequest(t, h, tt.method, tt.path, tt.host, tt.headers, tt.body)
			if status != tt.status || e.Error.Code != tt.code {
				t.Errorf("%d %s (%s), want %d %s", status, e.Error.Code, e.Error.Message, tt.status, tt.code)
			}
		})
	}

	// Nothing ran: no file, no workspace directory, no run admitted.
	if _, err := os.Stat(filepath.Join(root, "proj1")); !os.IsNotExist(err) {
		t.Errorf("the workspace proj1 exists after refused requests: %v", err)
	}
	if strings.Contains(h.Logs(), `"@message":"audit"`) {
		t.Error("a refused request reached a run (an audit line was logged)")
	}
	_, metrics := h.do(context.Background(), http.MethodGet, "/metrics", nil)
	if strings.Contains(string(metrics), "runhost_runs_total{") {
		t.Errorf("refused requests were counted as runs:\n%s", grepLines(string(metrics), "runhost_runs_total"))
	}

	// The same run from the host's own page (or a client) goes through.
	own := map[string]string{"Content-Type": "application/json", "Origin": h.URL, "Sec-Fetch-Site": "same-origin"}
	if status, e := rawRequest(t, h, "POST", "/runtimes/shell/run", "", own, csrf); status != 200 {
		t.Fatalf("the host's own page: %d %+v", status, e)
	}
	if b, err := os.ReadFile(filepath.Join(root, "proj1", "csrf.txt")); err != nil || string(b) != "csrf\n" {
		t.Errorf("the same-origin run did not write its file: %q %v", b, err)
	}
}

// TestAllowedOriginAndHost: an operator can let one other origin's pages
// call the host, and one more host name reach it.
func TestAllowedOriginAndHost(t *testing.T) {
	h := startHost(t, "RUNHOST_ALLOWED_ORIGINS=https://app.example", "RUNHOST_ALLOWED_HOSTS=runhost.internal")
	body := `{"code":"echo allowed"}`
	headers := map[string]string{"Content-Type": "application/json", "Origin": "https://app.example", "Sec-Fetch-Site": "cross-site"}
	if status, e := rawRequest(t, h, "POST", "/runtimes/shell/run", "", headers, body); status != 200 {
		t.Errorf("allowed origin: %d %+v", status, e)
	}
	headers["Origin"] = "https://other.example"
	if status, e := rawRequest(t, h, "POST", "/runtimes/shell/run", "", headers, body); status != 403 || e.Error.Code != "cross_site_request" {
		t.Errorf("another origin: %d %+v", status, e)
	}
	if status, e := rawRequest(t, h, "GET", "/runtimes", "runhost.internal:8080", nil, ""); status != 200 {
		t.Errorf("allowed host: %d %+v", status, e)
	}
	if status, e := rawRequest(t, h, "GET", "/runtimes", "other.internal:8080", nil, ""); status != 403 || e.Error.Code != "host_not_allowed" {
		t.Errorf("another host: %d %+v", status, e)
	}
}

// TestWebSocketOriginRule: /api/v2/connect follows the same Origin rule:
// a page of another site cannot open it; the host's own page and an
// allowed origin can.
func TestWebSocketOriginRule(t *testing.T) {
	h := startHost(t, append([]string{"RUNHOST_ALLOWED_ORIGINS=https://app.example"}, pistonEnv...)...)
	url := "ws" + strings.TrimPrefix(h.URL, "http") + "/api/v2/connect"
	for origin, want := range map[string]int{
		"http://evil.example":  http.StatusForbidden,
		"https://app.example":  http.StatusSwitchingProtocols,
		h.URL:                  http.StatusSwitchingProtocols,
		"https://app.example2": http.StatusForbidden,
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
		cancel()
		got := 0
		if resp != nil {
			got = resp.StatusCode
		}
		if got != want {
			t.Errorf("Origin %s: status %d (%v), want %d", origin, got, err, want)
		}
		if conn != nil {
			conn.CloseNow()
		}
	}
}

// TestBogusRuntimesAddNoMetricSeries: runs asked for under 50 runtime names
// that are not served add no series; they count as runtime="unknown"
// (issue 14, item 11).
func TestBogusRuntimesAddNoMetricSeries(t *testing.T) {
	h := startHost(t)
	series := func() int {
		_, b := h.do(context.Background(), http.MethodGet, "/metrics", nil)
		return strings.Count(string(b), "\nrunhost_runs_total{") + strings.Count(string(b), "\nrunhost_run_duration_seconds_count{")
	}
	h.post("/runtimes/nope/run", map[string]any{"code": "1"})
	before := series()
	for i := range 50 {
		status, _ := h.post(fmt.Sprintf("/runtimes/zz-qa-%d/run", i), map[string]any{"code": "1"})
		if status != http.StatusNotFound {
			t.Fatalf("bogus runtime %d: status %d", i, status)
		}
	}
	h.post("/runtimes/x%20y/run", map[string]any{"code": "1"})
	if after := series(); after != before {
		t.Errorf("%d series before 50 bogus runtimes, %d after", before, after)
	}
	_, b := h.do(context.Background(), http.MethodGet, "/metrics", nil)
	if !strings.Contains(string(b), `runhost_runs_total{outcome="refused",runtime="unknown"} 52`) || strings.Contains(string(b), "zz-qa") {
		t.Errorf("want 52 refused runs under runtime=\"unknown\" and no zz-qa label:\n%s", grepLines(string(b), "runhost_runs_total"))
	}
}

// grepLines returns the lines of text that contain s.
func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
