package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runhost/runhost/internal/admission"
	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/metrics"
	"github.com/runhost/runhost/internal/registry"
	"github.com/runhost/runhost/internal/workspace"
)

// newTestServer is a server with an empty plugin directory and no engine:
// enough for the routes that need neither.
func newTestServer(t *testing.T, keys *auth.Keys, ws *workspace.Store) *Server {
	t.Helper()
	reg, err := registry.Discover(context.Background(), registry.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	return New(Config{
		MaxBodyBytes: 1 << 20,
		Keys:         keys,
		Admission:    admission.New(admission.Config{MaxInFlight: 1}),
		Metrics:      metrics.New(metrics.Gauges{InFlight: func() float64 { return 0 }, Queued: func() float64 { return 0 }}),
	}, nil, reg, ws, nil, nil)
}

// loadKeys writes lines ("name key options...", the key in clear) as a keys
// file of hashes and loads it.
func loadKeys(t *testing.T, lines map[string]string) *auth.Keys {
	t.Helper()
	content := ""
	for name, rest := range lines {
		key, opts, _ := strings.Cut(rest, " ")
		content += name + " " + auth.Hash(key) + " " + opts + "\n"
	}
	file := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := auth.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func call(t *testing.T, s *Server, method, path, key string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	req.Host = "127.0.0.1:8080"
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	var e Error
	_ = json.Unmarshal(rec.Body.Bytes(), &e)
	return rec.Code, e.Error.Code
}

func TestOperatorRoutes(t *testing.T) {
	const opKey, plainKey, grantedKey = "rh_operator", "rh_plain", "rh_granted"
	keyed := newTestServer(t, loadKeys(t, map[string]string{
		"ops":     opKey + " operator",
		"plain":   plainKey,
		"granted": grantedKey + " workspaces=*",
	}), nil)
	keyless := newTestServer(t, nil, nil)
	routes := []struct{ method, path string }{
		{http.MethodGet, "/metrics"},
		{http.MethodGet, "/plugins"},
		{http.MethodPost, "/admin/plugins/reload"},
	}
	tests := []struct {
		name   string
		s      *Server
		key    string
		status int
	}{
		{"operator key", keyed, opKey, http.StatusOK},
		{"ordinary key", keyed, plainKey, http.StatusForbidden},
		{"key granted every workspace, not operator", keyed, grantedKey, http.StatusForbidden},
		{"no key", keyed, "", http.StatusUnauthorized},
		{"host without keys: its one caller operates it", keyless, "", http.StatusOK},
	}
	for _, tt := range tests {
		for _, r := range routes {
			t.Run(tt.name+" "+r.path, func(t *testing.T) {
				status, code := call(t, tt.s, r.method, r.path, tt.key)
				if status != tt.status {
					t.Fatalf("%s %s = %d (%s), want %d", r.method, r.path, status, code, tt.status)
				}
				if status == http.StatusForbidden && code != "forbidden" {
					t.Errorf("code %q, want forbidden", code)
				}
			})
		}
	}
	// Ordinary routes stay open to ordinary keys.
	if status, code := call(t, keyed, http.MethodGet, "/workspaces", plainKey); status == http.StatusForbidden {
		t.Errorf("GET /workspaces with an ordinary key: %d %s", status, code)
	}
}

func TestOperatorRoutePatterns(t *testing.T) {
	for route, want := range map[string]bool{
		"/metrics":              true,
		"/plugins":              true,
		"/admin/plugins/reload": true,
		"/admin/anything/later": true,
		"/runtimes":             false,
		"/workspaces":           false,
		"/sessions/:id":         false,
		"/administration":       false,
		"":                      false,
	} {
		if got := operatorRoute(route); got != want {
			t.Errorf("operatorRoute(%q) = %v, want %v", route, got, want)
		}
	}
}

func TestListWorkspaces(t *testing.T) {
	root := t.TempDir()
	ws := workspace.NewStore(workspace.Config{Root: root, DaemonDir: root, QuotaBytes: 1 << 20, MaxFileBytes: 1 << 20})
	s := newTestServer(t, loadKeys(t, map[string]string{
		"alice": "rh_alice",
		"bob":   "rh_bob workspaces=common",
	}), ws)
	put := func(key, url string) {
		t.Helper()
		req := httptest.NewRequest(http.MethodPut, url, nil)
		req.Host = "127.0.0.1:8080"
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("PUT %s: %d %s", url, rec.Code, rec.Body)
		}
	}
	put("rh_alice", "/workspaces/proj/files/a.txt")
	put("rh_bob", "/workspaces/common/files/b.txt")
	put("rh_bob", "/workspaces/mine/files/c.txt")
	list := func(key string) string {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, "/workspaces", nil)
		req.Host = "127.0.0.1:8080"
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec.Body.String()
	}
	if got, want := list("rh_alice"), `{"workspaces":[{"name":"proj","shared":false}]}`+"\n"; got != want {
		t.Errorf("alice: %s, want %s", got, want)
	}
	if got, want := list("rh_bob"), `{"workspaces":[{"name":"common","shared":true},{"name":"mine","shared":false}]}`+"\n"; got != want {
		t.Errorf("bob: %s, want %s", got, want)
	}
	if status, code := call(t, s, http.MethodGet, "/workspaces/proj/files/a.txt", "rh_bob"); status != http.StatusNotFound || code != "not_found" {
		t.Errorf("bob reads alice's file: %d %s", status, code)
	}
}
