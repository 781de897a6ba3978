package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/docker/docker/client"
	"github.com/hashicorp/go-hclog"

	"github.com/runhost/runhost/internal/app"
	"github.com/runhost/runhost/internal/config"
	"github.com/runhost/runhost/internal/openapi/openapitest"
	"github.com/runhost/runhost/internal/testenv"
)

var runtimeImages = []string{"runhost/python:3.11", "runhost/python:3.13", "runhost/node:18", "runhost/node:20", "runhost/shell:bookworm"}

// host is a running runhost for one test.
type host struct {
	t      testing.TB
	URL    string
	App    *app.App
	Docker *client.Client
	Key    string        // sent as a Bearer key when set
	logs   *bytes.Buffer // everything the host logged
	logsMu *sync.Mutex
}

// Logs returns what the host has logged so far.
func (h *host) Logs() string {
	h.logsMu.Lock()
	defer h.logsMu.Unlock()
	return h.logs.String()
}

// startHost builds a host from the default configuration plus env
// ("KEY=value" entries), serves it over HTTP and tears it down at the end of
// the test, failing it if a container was left behind.
func startHost(t testing.TB, env ...string) *host {
	t.Helper()
	return startHostWith(t, testenv.RequireDocker(t), env...)
}

// startHostWith is startHost with the test's own engine client, for tests
// that point the host somewhere else (DOCKER_HOST) than where they look.
func startHostWith(t testing.TB, cli *client.Client, env ...string) *host {
	t.Helper()
	testenv.RequireImages(t, cli, runtimeImages...)
	bins := testenv.Build(t)
	cfg, err := config.FromEnv(append([]string{
		"RUNHOST_PLUGIN_DIR=" + bins.PluginDir,
		"RUNHOST_INIT_PATH=" + bins.Init,
		"RUNHOST_EGRESS_PATH=" + bins.Egress,
		"RUNHOST_SELFTEST_ON_START=false",
		"RUNHOST_POOL=off",
		"RUNHOST_BUILDER_IMAGE=" + testenv.BuilderImage(),
	}, env...))
	if err != nil {
		t.Fatal(err)
	}
	logger, w := testLogger(t)
	a, err := app.New(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	// Every exchange with the native API is checked against openapi.json.
	srv := httptest.NewServer(openapitest.Check(t, a.Handler()))
	t.Cleanup(func() {
		srv.Close()
		a.Close()
		testenv.NoLeftovers(t, cli, a.Instance)
	})
	return &host{t: t, URL: srv.URL, App: a, Docker: cli, logs: &w.all, logsMu: &w.mu}
}

// testLogger sends the host's log to the test's output while the test
// runs, and keeps all of it for tests that inspect the log.
func testLogger(t testing.TB) (hclog.Logger, *testWriter) {
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	return hclog.New(&hclog.LoggerOptions{Name: "runhost", Output: w, Level: hclog.Debug, JSONFormat: true}), w
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
	all  bytes.Buffer
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(p)
	if !w.done && testing.Verbose() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() { w.mu.Lock(); w.done = true; w.mu.Unlock() }

// do sends a request and returns the status and body.
// stream posts a JSON body to path asking for Server-Sent Events and
// returns the open response; the caller reads and closes it.
func (h *host) stream(path, body string) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	if h.Key != "" {
		req.Header.Set("Authorization", "Bearer "+h.Key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("POST %s: %v", path, err)
	}
	return resp
}

func (h *host) do(ctx context.Context, method, path string, body io.Reader) (int, []byte) {
	h.t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, h.URL+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentTypeFor(method, path))
	}
	if h.Key != "" {
		req.Header.Set("Authorization", "Bearer "+h.Key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// contentTypeFor is what a client sends with a body: application/json, or
// application/octet-stream for an upload to the files API. The host refuses
// other types and bodies without one (the browser guard).
func contentTypeFor(method, path string) string {
	if method == http.MethodPut && strings.Contains(path, "/files/") {
		return "application/octet-stream"
	}
	return "application/json"
}

// post sends v as JSON.
func (h *host) post(path string, v any) (int, []byte) {
	h.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.do(context.Background(), http.MethodPost, path, bytes.NewReader(b))
}

// runResult is the response of a run.
type runResult struct {
	RunID           string `json:"run_id"`
	Stage           string `json:"stage"`
	Runtime         string `json:"runtime"`
	Version         string `json:"version"`
	Image           string `json:"image"`
	ExitCode        int    `json:"exit_code"`
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	StdoutEncoding  string `json:"stdout_encoding"`
	StderrEncoding  string `json:"stderr_encoding"`
	StdoutTruncated bool   `json:"stdout_truncated"`
	StderrTruncated bool   `json:"stderr_truncated"`
	TimedOut        bool   `json:"timed_out"`
	OOMKilled       bool   `json:"oom_killed"`
	DurationMS      int64  `json:"duration_ms"`

	OutputLimitExceeded bool `json:"output_limit_exceeded"`
	Install             *struct {
		Cached     bool  `json:"cached"`
		DurationMS int64 `json:"duration_ms"`
	} `json:"install"`
	Build *struct {
		Image  string `json:"image"`
		Cached bool   `json:"cached"`
		Log    string `json:"log"`
	} `json:"build"`
}

// dockerClient is the test's engine client (failing in CI without one).
func dockerClient(t testing.TB) *client.Client {
	t.Helper()
	return testenv.RequireDocker(t)
}

// run posts a run request that must succeed with 200.
func (h *host) run(runtime string, req map[string]any) runResult {
	h.t.Helper()
	status, body := h.post("/runtimes/"+runtime+"/run", req)
	if status != http.StatusOK {
		h.t.Fatalf("run %s: status %d: %s", runtime, status, body)
	}
	var res runResult
	if err := json.Unmarshal(body, &res); err != nil {
		h.t.Fatalf("decode %s: %v", body, err)
	}
	return res
}

// apiError is the JSON error shape.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func decodeError(t *testing.T, body []byte) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" {
		t.Fatalf("body is not the error shape {\"error\":{\"code\",\"message\"}}: %s", body)
	}
	return e
}
