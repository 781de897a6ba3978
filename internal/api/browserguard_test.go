package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/runhost/runhost/internal/admission"
	"github.com/runhost/runhost/internal/metrics"
	"github.com/runhost/runhost/internal/outbox"
	"github.com/runhost/runhost/internal/runner"
)

const runRoute = "/runtimes/:name/run"
const filesRoute = "/workspaces/:session/files/*"

type guardCase struct {
	name    string
	cfg     GuardConfig
	method  string
	host    string // default 127.0.0.1:8080
	route   string // default runRoute
	headers map[string]string
	body    string // sets Content-Length
	tls     bool
	status  int    // 0: allowed
	code    string // the error code when refused
}

var loopbackHost = GuardConfig{ListenAddr: "127.0.0.1:8080"}

var laxPiston = GuardConfig{ListenAddr: "127.0.0.1:8080", PistonAllowTextPlain: true}

func TestBrowserGuardContentTypes(t *testing.T) {
	json := map[string]string{"Content-Type": "application/json"}
	tests := []guardCase{
		{name: "json", headers: json, body: "{}"},
		{name: "json with charset", headers: map[string]string{"Content-Type": "application/json; charset=utf-8"}, body: "{}"},
		{name: "json in capitals", headers: map[string]string{"Content-Type": "Application/JSON"}, body: "{}"},
		{name: "text/plain", headers: map[string]string{"Content-Type": "text/plain"}, body: "{}", status: 415, code: "unsupported_media_type"},
		{name: "text/plain with charset", headers: map[string]string{"Content-Type": "text/plain;charset=UTF-8"}, body: "{}", status: 415, code: "unsupported_media_type"},
		{name: "form", headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: "a=b", status: 415, code: "unsupported_media_type"},
		{name: "multipart", headers: map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, body: "--x--", status: 415, code: "unsupported_media_type"},
		{name: "no type with a body (a typeless Blob)", body: "{}", status: 415, code: "unsupported_media_type"},
		{name: "not a media type", headers: map[string]string{"Content-Type": "json;;="}, body: "{}", status: 415, code: "unsupported_media_type"},
		{name: "json suffix is not json", headers: map[string]string{"Content-Type": "application/json-seq"}, body: "{}", status: 415, code: "unsupported_media_type"},
		{name: "octet-stream on a run", headers: map[string]string{"Content-Type": "application/octet-stream"}, body: "{}", status: 415, code: "unsupported_media_type"},
		{name: "bodyless POST needs no type", route: "/admin/plugins/reload"},
		{name: "bodyless POST with a form type", route: "/admin/plugins/reload", headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, status: 415, code: "unsupported_media_type"},
		{name: "DELETE without a body", method: http.MethodDelete, route: "/sessions/:id"},
		{name: "upload as octet-stream", method: http.MethodPut, route: filesRoute, headers: map[string]string{"Content-Type": "application/octet-stream"}, body: "raw"},
		{name: "upload as json", method: http.MethodPut, route: filesRoute, headers: json, body: "{}"},
		{name: "upload as text/plain", method: http.MethodPut, route: filesRoute, headers: map[string]string{"Content-Type": "text/plain"}, body: "raw", status: 415, code: "unsupported_media_type"},
		{name: "upload without a type", method: http.MethodPut, route: filesRoute, body: "raw", status: 415, code: "unsupported_media_type"},
		{name: "GET needs no type", method: http.MethodGet, route: "/runtimes", headers: map[string]string{"Content-Type": "text/plain"}, body: "x"},
		{name: "PATCH is state-changing", method: http.MethodPatch, headers: map[string]string{"Content-Type": "text/plain"}, body: "x", status: 415, code: "unsupported_media_type"},
		{name: "Piston execute as text/plain", route: "/api/v2/execute", headers: map[string]string{"Content-Type": "text/plain;charset=UTF-8"}, body: "{}", status: 415, code: "unsupported_media_type"},
		{name: "lax Piston execute as text/plain", cfg: laxPiston, route: "/api/v2/execute", headers: map[string]string{"Content-Type": "text/plain;charset=UTF-8"}, body: "{}"},
		{name: "lax Piston execute without a type", cfg: laxPiston, route: "/api/v2/execute", body: "{}"},
		{name: "lax Piston execute with Node's fetch metadata", cfg: laxPiston, route: "/api/v2/execute", headers: map[string]string{"Content-Type": "text/plain", "Sec-Fetch-Mode": "cors"}, body: "{}"},
		{name: "lax Piston execute as a form", cfg: laxPiston, route: "/api/v2/execute", headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: "a=b", status: 415, code: "unsupported_media_type"},
		{name: "lax Piston execute from the host's page", cfg: laxPiston, route: "/api/v2/execute", headers: map[string]string{"Content-Type": "text/plain", "Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"}, body: "{}", status: 415, code: "unsupported_media_type"},
		{name: "lax Piston execute from another site", cfg: laxPiston, route: "/api/v2/execute", headers: map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}, body: "{}", status: 403, code: "cross_site_request"},
		{name: "lax Piston does not relax native runs", cfg: laxPiston, headers: map[string]string{"Content-Type": "text/plain"}, body: "{}", status: 415, code: "unsupported_media_type"},
	}
	runGuardCases(t, tests)
}

func TestBrowserGuardCrossSite(t *testing.T) {
	json := "application/json"
	allowApp := GuardConfig{ListenAddr: "127.0.0.1:8080", AllowedOrigins: []string{"https://app.example"}}
	tests := []guardCase{
		{name: "no browser headers", headers: map[string]string{"Content-Type": json}, body: "{}"},
		{name: "same origin", headers: map[string]string{"Content-Type": json, "Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"}, body: "{}"},
		{name: "same origin, other case", host: "LOCALHOST:8080", headers: map[string]string{"Content-Type": json, "Origin": "http://localhost:8080"}, body: "{}"},
		{name: "typed by the user", headers: map[string]string{"Content-Type": json, "Sec-Fetch-Site": "none"}, body: "{}"},
		{name: "cross-site origin", headers: map[string]string{"Content-Type": json, "Origin": "http://evil.example"}, body: "{}", status: 403, code: "cross_site_request"},
		{name: "the problem statement's request", headers: map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, body: "{}", status: 403, code: "cross_site_request"},
		{name: "cross-site fetch metadata alone", headers: map[string]string{"Content-Type": json, "Sec-Fetch-Site": "cross-site"}, body: "{}", status: 403, code: "cross_site_request"},
		{name: "same-site is not same-origin", headers: map[string]string{"Content-Type": json, "Sec-Fetch-Site": "same-site"}, body: "{}", status: 403, code: "cross_site_request"},
		{name: "other port is another origin", headers: map[string]string{"Content-Type": json, "Origin": "http://127.0.0.1:9999"}, body: "{}", status: 403, code: "cross_site_request"},
		{name: "other scheme is another origin", headers: map[string]string{"Content-Type": json, "Origin": "https://127.0.0.1:8080"}, body: "{}", status: 403, code: "cross_site_request"},
		{name: "https origin over TLS", tls: true, headers: map[string]string{"Content-Type": json, "Origin": "https://127.0.0.1:8080"}, body: "{}"},
		{name: "null origin", headers: map[string]string{"Content-Type": json, "Origin": "null"}, body: "{}", status: 403, code: "cross_site_request"},
		{name: "same origin but cross-site metadata", headers: map[string]string{"Content-Type": json, "Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "cross-site"}, body: "{}", status: 403, code: "cross_site_request"},
		{name: "bodyless reload cross-site", route: "/admin/plugins/reload", headers: map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, status: 403, code: "cross_site_request"},
		{name: "DELETE cross-site", method: http.MethodDelete, route: "/sessions/:id", headers: map[string]string{"Origin": "http://evil.example"}, status: 403, code: "cross_site_request"},
		{name: "cross-site before content type", headers: map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}, body: "x", status: 403, code: "cross_site_request"},
		{name: "GET cross-site is a navigation", method: http.MethodGet, route: "/", headers: map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{name: "allowed origin", cfg: allowApp, headers: map[string]string{"Content-Type": json, "Origin": "https://app.example", "Sec-Fetch-Site": "cross-site"}, body: "{}"},
		{name: "allowed origin written with its default port", cfg: allowApp, headers: map[string]string{"Content-Type": json, "Origin": "https://APP.example:443"}, body: "{}"},
		{name: "allowed origin still needs json", cfg: allowApp, headers: map[string]string{"Content-Type": "text/plain", "Origin": "https://app.example"}, body: "{}", status: 415, code: "unsupported_media_type"},
		{name: "allowed origin's other scheme", cfg: allowApp, headers: map[string]string{"Content-Type": json, "Origin": "http://app.example"}, body: "{}", status: 403, code: "cross_site_request"},
		{name: "allowed origin's subdomain", cfg: allowApp, headers: map[string]string{"Content-Type": json, "Origin": "https://evil.app.example"}, body: "{}", status: 403, code: "cross_site_request"},
		{name: "websocket from the host's page", method: http.MethodGet, route: "/api/v2/connect", headers: ws("http://127.0.0.1:8080", "same-origin")},
		{name: "websocket from a client without origin", method: http.MethodGet, route: "/api/v2/connect", headers: ws("", "")},
		{name: "websocket cross-site", method: http.MethodGet, route: "/api/v2/connect", headers: ws("http://evil.example", "cross-site"), status: 403, code: "cross_site_request"},
		{name: "websocket cross-site by metadata", method: http.MethodGet, route: "/api/v2/connect", headers: ws("", "cross-site"), status: 403, code: "cross_site_request"},
		{name: "websocket from an allowed origin", cfg: allowApp, method: http.MethodGet, route: "/api/v2/connect", headers: ws("https://app.example", "cross-site")},
	}
	runGuardCases(t, tests)
}

func ws(origin, site string) map[string]string {
	h := map[string]string{"Connection": "keep-alive, Upgrade", "Upgrade": "websocket"}
	if origin != "" {
		h["Origin"] = origin
	}
	if site != "" {
		h["Sec-Fetch-Site"] = site
	}
	return h
}

func TestBrowserGuardHost(t *testing.T) {
	json := map[string]string{"Content-Type": "application/json"}
	anyAddr := GuardConfig{ListenAddr: "0.0.0.0:8080"}
	keyed := GuardConfig{ListenAddr: "0.0.0.0:8080", HasKeys: true}
	tests := []guardCase{
		{name: "loopback address", host: "127.0.0.1:8080"},
		{name: "loopback address without port", host: "127.0.0.1"},
		{name: "other loopback address", host: "127.9.9.9:8080"},
		{name: "ipv6 loopback", host: "[::1]:8080"},
		{name: "localhost", host: "localhost:8080"},
		{name: "localhost, absolute", host: "localhost.:8080"},
		{name: "a .localhost name", host: "app.localhost:8080"},
		{name: "rebinding name", host: "evil.example:8080", status: 403, code: "host_not_allowed"},
		{name: "rebinding name on GET", method: http.MethodGet, route: "/runtimes", host: "evil.example", status: 403, code: "host_not_allowed"},
		{name: "rebinding name on the playground", method: http.MethodGet, route: "/", host: "evil.example:8080", status: 403, code: "host_not_allowed"},
		{name: "name that starts like localhost", host: "localhost.evil.example:8080", status: 403, code: "host_not_allowed"},
		{name: "name that starts like a loopback address", host: "127.0.0.1.evil.example:8080", status: 403, code: "host_not_allowed"},
		{name: "private address", host: "192.168.1.10:8080", status: 403, code: "host_not_allowed"},
		{name: "no Host", host: "", status: 403, code: "host_not_allowed"},
		{name: "listen address", cfg: GuardConfig{ListenAddr: "192.168.1.10:8080"}, host: "192.168.1.10:8080"},
		{name: "listen name", cfg: GuardConfig{ListenAddr: "runhost.internal:8080"}, host: "RUNHOST.internal:8080"},
		{name: "keyless on all addresses", cfg: anyAddr, host: "runhost:8080", status: 403, code: "host_not_allowed"},
		{name: "allowed host", cfg: GuardConfig{ListenAddr: "0.0.0.0:8080", AllowedHosts: []string{"runhost"}}, host: "runhost:8080"},
		{name: "allowed host is not a suffix", cfg: GuardConfig{ListenAddr: "0.0.0.0:8080", AllowedHosts: []string{"runhost"}}, host: "evil-runhost:8080", status: 403, code: "host_not_allowed"},
		{name: "star turns the check off", cfg: GuardConfig{ListenAddr: "0.0.0.0:8080", AllowedHosts: []string{"*"}}, host: "anything.example"},
		{name: "keys on all addresses: no check", cfg: keyed, host: "runhost.example.com"},
		{name: "keys on all addresses with a list", cfg: GuardConfig{ListenAddr: "0.0.0.0:8080", HasKeys: true, AllowedHosts: []string{"runhost.example.com"}}, host: "other.example.com", status: 403, code: "host_not_allowed"},
		{name: "keys on loopback: checked", cfg: GuardConfig{ListenAddr: "127.0.0.1:8080", HasKeys: true}, host: "evil.example:8080", status: 403, code: "host_not_allowed"},
		{name: "host before cross-site", host: "evil.example", headers: map[string]string{"Origin": "http://evil.example"}, status: 403, code: "host_not_allowed"},
	}
	for i := range tests {
		if tests[i].headers == nil {
			tests[i].headers = json
			tests[i].body = "{}"
		}
		if tests[i].host == "" && tests[i].name != "no Host" {
			t.Fatalf("%s: give a host", tests[i].name)
		}
	}
	runGuardCases(t, tests)
}

func runGuardCases(t *testing.T, tests []guardCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg.ListenAddr == "" {
				cfg = loopbackHost
			}
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			route := tt.route
			if route == "" {
				route = runRoute
			}
			r := httptest.NewRequest(method, "/x", strings.NewReader(tt.body))
			r.Host = "127.0.0.1:8080"
			if tt.host != "" || tt.name == "no Host" {
				r.Host = tt.host
			}
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			r.ContentLength = int64(len(tt.body))
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			err := newBrowserGuard(cfg).check(r, route)
			if tt.status == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			status, code := statusOf(err)
			if status != tt.status || code != tt.code {
				t.Fatalf("got %d %s (%v), want %d %s", status, code, err, tt.status, tt.code)
			}
		})
	}
}

// testServer is the real route table and middleware with no runner
// behind it: enough for requests the guard refuses.
func testServer(t *testing.T, guard GuardConfig) http.Handler {
	t.Helper()
	return New(Config{
		MaxBodyBytes: 1 << 20,
		Admission:    admission.New(admission.Config{MaxInFlight: 1}),
		Metrics:      metrics.New(metrics.Gauges{InFlight: func() float64 { return 0 }, Queued: func() float64 { return 0 }}),
		Guard:        guard,
	}, nil, nil, nil, nil, nil).Handler()
}

// The guard runs for every route of the real server, before the handler
// (which, with no runner here, would fail with a 500 instead).
func TestBrowserGuardOnTheServer(t *testing.T) {
	srv := testServer(t, loopbackHost)
	tests := []struct {
		method, path, host string
		headers            map[string]string
		body               string
		status             int
		code               string
	}{
		{http.MethodPost, "/runtimes/shell/run", "localhost:8080", map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, `{"code":"echo csrf"}`, 403, "cross_site_request"},
		{http.MethodPost, "/runtimes/shell/run", "localhost:8080", map[string]string{"Content-Type": "text/plain"}, `{"code":"echo csrf"}`, 415, "unsupported_media_type"},
		{http.MethodPost, "/api/v2/execute", "localhost:8080", map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}, `{}`, 403, "cross_site_request"},
		{http.MethodPost, "/api/v2/execute", "localhost:8080", map[string]string{"Content-Type": "text/plain"}, `{}`, 415, "unsupported_media_type"},
		{http.MethodPost, "/admin/plugins/reload", "localhost:8080", map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, ``, 403, "cross_site_request"},
		{http.MethodPut, "/workspaces/s/files/a.txt", "localhost:8080", map[string]string{"Content-Type": "text/plain"}, `x`, 415, "unsupported_media_type"},
		{http.MethodGet, "/api/v2/connect", "localhost:8080", ws("http://evil.example", "cross-site"), ``, 403, "cross_site_request"},
		{http.MethodGet, "/healthz", "evil.example:8080", nil, ``, 403, "host_not_allowed"},
		{http.MethodPost, "/runtimes/shell/run", "evil.example:8080", map[string]string{"Content-Type": "application/json"}, `{"code":"echo x"}`, 403, "host_not_allowed"},
		{http.MethodGet, "/healthz", "localhost:8080", nil, ``, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path+" "+tt.host, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			r.Host = tt.host
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, r)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.code != "" && !strings.Contains(rec.Body.String(), `"code":"`+tt.code+`"`) {
				t.Errorf("body %s, want code %s", rec.Body, tt.code)
			}
		})
	}
}

// Every route the guard treats specially is a route the server serves.
func TestRawBodyRoutesExist(t *testing.T) {
	e := testServer(t, loopbackHost).(*echo.Echo)
	served := map[string]bool{}
	for _, r := range e.Routes() {
		served[r.Method+" "+r.Path] = true
	}
	for route := range rawBodyRoutes {
		if !served[route] {
			t.Errorf("rawBodyRoutes names %s, which the server does not serve", route)
		}
	}
	if !served[pistonExecute] {
		t.Errorf("pistonExecute is %s, which the server does not serve", pistonExecute)
	}
}

// A page of an allowed origin gets CORS answers; others get none.
func TestCORSForAllowedOrigins(t *testing.T) {
	srv := testServer(t, GuardConfig{ListenAddr: "127.0.0.1:8080", AllowedOrigins: []string{"https://app.example"}})
	for origin, want := range map[string]string{"https://app.example": "https://app.example", "https://evil.example": ""} {
		r := httptest.NewRequest(http.MethodOptions, "/runtimes/python/run", nil)
		r.Host = "localhost:8080"
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", "POST")
		r.Header.Set("Access-Control-Request-Headers", "content-type, authorization")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, r)
		if got := rec.Header().Get("Access-Control-Allow-Origin"); got != want {
			t.Errorf("preflight from %s: Access-Control-Allow-Origin %q, want %q", origin, got, want)
		}
	}
	// Without allowed origins there is no CORS at all.
	srv = testServer(t, loopbackHost)
	r := httptest.NewRequest(http.MethodOptions, "/runtimes/python/run", nil)
	r.Host = "localhost:8080"
	r.Header.Set("Origin", "https://app.example")
	r.Header.Set("Access-Control-Request-Method", "POST")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, r)
	if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("no allowed origins, yet Access-Control-Allow-Origin %q", got)
	}
}

func TestOutcomeOf(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{fmt.Errorf("write the answer: %w", fmt.Errorf("%w: %w", outbox.ErrClientGone, os.ErrDeadlineExceeded)), "client_disconnect"},
		{context.Canceled, "client_disconnect"},
		{badRequest("no_code", "x"), "refused"},
		{errors.New("boom"), "error"},
	}
	for _, tt := range tests {
		if got := outcomeOf(runner.Result{}, tt.err); got != tt.want {
			t.Errorf("outcomeOf(%v) = %s, want %s", tt.err, got, tt.want)
		}
	}
}
