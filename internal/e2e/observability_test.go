package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runhost/runhost/internal/testenv"
)

func TestHostilePluginSpecsAreRefused(t *testing.T) {
	h := startHost(t, "RUNHOST_PLUGIN_DIR="+pluginDirWith(t, "hostile"))
	tests := []struct{ code, field string }{
		{"other-image", "image"},
		{"huge-memory", "limits.memory_bytes"},
		{"huge-timeout", "limits.timeout"},
		{"escape-file", "files"},
		{"absolute-workdir", "work_dir"},
		{"install-into-etc", "install.output_dir"},
		{"env-injection", "env"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			status, body := h.post("/runtimes/hostile/run", map[string]any{"code": tt.code})
			e := decodeError(t, body)
			if status != http.StatusBadGateway || e.Error.Code != "spec_refused" {
				t.Fatalf("%d %s", status, body)
			}
			if !strings.Contains(e.Error.Message, `plugin "hostile"`) || !strings.Contains(e.Error.Message, tt.field) {
				t.Errorf("the refusal must name the plugin and the field %q: %s", tt.field, e.Error.Message)
			}
		})
	}
}

func TestLogsAuditAndMetrics(t *testing.T) {
	h := startHost(t, "RUNHOST_PLUGIN_DIR="+pluginDirWith(t, "hostile"))
	req, _ := http.NewRequest(http.MethodPost, h.URL+"/runtimes/hostile/run", strings.NewReader(`{"code":"other-image"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	rid := resp.Header.Get("X-Request-Id")
	if rid == "" {
		t.Fatal("no X-Request-Id")
	}

	var pluginLine, auditLine map[string]any
	sc := bufio.NewScanner(strings.NewReader(h.Logs()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		switch {
		case line["@message"] == "planning" && line["request_id"] == rid:
			pluginLine = line
		case line["@message"] == "audit" && line["request_id"] == rid:
			auditLine = line
		}
	}
	if pluginLine == nil {
		t.Errorf("no plugin log line carries the request id %s", rid)
	}
	if auditLine == nil {
		t.Fatalf("no audit line for request %s", rid)
	}
	for _, k := range []string{"key", "runtime", "code_sha256", "outcome", "duration_ms", "stdout_bytes"} {
		if _, ok := auditLine[k]; !ok {
			t.Errorf("the audit line lacks %s: %v", k, auditLine)
		}
	}
	if strings.Contains(h.Logs(), "other-image\"") && auditLine["code_sha256"] == "" {
		t.Error("the audit line must carry a hash, not the code")
	}

	if res := h.run("hostile", map[string]any{"code": "fine"}); res.ExitCode != 0 {
		t.Fatalf("%+v", res)
	}
	status, body := h.do(context.Background(), http.MethodGet, "/metrics", nil)
	if status != 200 {
		t.Fatalf("/metrics: %d", status)
	}
	for _, want := range []string{
		`runhost_runs_total{outcome="ok",runtime="hostile"} 1`,
		`runhost_runs_total{outcome="error",runtime="hostile"} 1`,
		`runhost_run_duration_seconds_bucket{runtime="hostile"`,
		"runhost_runs_in_flight 0",
		"runhost_queue_depth 0",
		"runhost_containers_swept_total",
		`runhost_plugin_restarts_total{plugin="hostile"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestPerPluginPolicy(t *testing.T) {
	policyFile := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policyFile, []byte(`{"plugins": {
		"hostile": {"images": ["runhost/shell:*"]},
		"python": {"max_memory_mb": 128}
	}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := pluginDirWith(t, "hostile")
	bins := testenv.Build(t)
	b, _ := os.ReadFile(filepath.Join(bins.PluginDir, "runhost-plugin-python"))
	install(t, dir, "runhost-plugin-python", b)
	h := startHost(t, "RUNHOST_PLUGIN_DIR="+dir, "RUNHOST_POLICY="+policyFile)

	status, body := h.post("/runtimes/hostile/run", map[string]any{"code": "fine"})
	e := decodeError(t, body)
	if status != http.StatusBadGateway || e.Error.Code != "spec_refused" ||
		!strings.Contains(e.Error.Message, `plugin "hostile"`) || !strings.Contains(e.Error.Message, "image") || !strings.Contains(e.Error.Message, "runhost/shell:*") {
		t.Errorf("an image outside the grant: %d %s", status, body)
	}
	status, body = h.post("/runtimes/python/run", map[string]any{"code": "print(1)", "memory_mb": 256})
	if status != 400 || !strings.Contains(string(body), "RUNHOST_POLICY") {
		t.Errorf("memory above the grant: %d %s", status, body)
	}
	if res := h.run("python", map[string]any{"code": "print(1)"}); res.Stdout != "1\n" {
		t.Errorf("a run within the grant: %+v", res)
	}
}

func TestClientDisconnectHasItsOwnOutcome(t *testing.T) {
	h := startHost(t)
	hangUp := func(accept string) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.URL+"/runtimes/python/run",
			strings.NewReader(`{"code":"import time\nprint('started', flush=True)\ntime.sleep(30)","timeout_ms":40000}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", accept)
		go func() { time.Sleep(1500 * time.Millisecond); cancel() }()
		if resp, err := http.DefaultClient.Do(req); err == nil {
			// A stream answers at once; read until the hang-up cuts it.
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	hangUp("application/json")
	hangUp("text/event-stream")

	want := `runhost_runs_total{outcome="client_disconnect",runtime="python"} 2`
	var body []byte
	for range 100 { // the handlers finish after the hang-up
		_, body = h.do(context.Background(), http.MethodGet, "/metrics", nil)
		if strings.Contains(string(body), want) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %q:\n%s", want, grepLines(string(body), "runhost_runs_total"))
	}
	if strings.Contains(string(body), `outcome="ok"`) || strings.Contains(string(body), `outcome="refused"`) {
		t.Errorf("a disconnect counted as another outcome:\n%s", grepLines(string(body), "runhost_runs_total"))
	}
	audits := 0
	sc := bufio.NewScanner(strings.NewReader(h.Logs()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["@message"] == "audit" {
			audits++
			if line["outcome"] != "client_disconnect" {
				t.Errorf("audit line: %v", line)
			}
		}
	}
	if audits != 2 {
		t.Errorf("%d audit lines, want 2", audits)
	}
}
