//go:build k8s

// Package k8s runs the end-to-end suite's core cases with the Kubernetes
// executor against a real cluster: scripts/e2e-k8s.sh (make e2e-k8s)
// assembles one, loads the images and runs `go test -tags k8s` here with
// RUNHOST_K8S_KUBECONFIG set.
package k8s

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/runhost/runhost/internal/app"
	"github.com/runhost/runhost/internal/config"
	"github.com/runhost/runhost/internal/testenv"
)

type host struct {
	t   *testing.T
	url string
	app *app.App
	cs  kubernetes.Interface
	ns  string
}

func startHost(t *testing.T, env ...string) *host {
	t.Helper()
	kubeconfig := os.Getenv("RUNHOST_K8S_KUBECONFIG")
	if kubeconfig == "" {
		t.Fatal("run through scripts/e2e-k8s.sh: RUNHOST_K8S_KUBECONFIG is not set")
	}
	bins := testenv.Build(t)
	cfg, err := config.FromEnv(append([]string{
		"RUNHOST_EXECUTOR=kubernetes",
		"RUNHOST_K8S_KUBECONFIG=" + kubeconfig,
		"RUNHOST_K8S_NAMESPACE=" + os.Getenv("RUNHOST_K8S_NAMESPACE"),
		"RUNHOST_K8S_PULL_POLICY=Never",
		"RUNHOST_PLUGIN_DIR=" + bins.PluginDir,
		"RUNHOST_INIT_PATH=" + bins.Init,
		"RUNHOST_SELFTEST_ON_START=false",
		"RUNHOST_POOL=off",
	}, env...))
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr}))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(rc)
	h := &host{t: t, url: srv.URL, app: a, cs: cs, ns: cfg.K8sNamespace}
	t.Cleanup(func() {
		srv.Close()
		a.Close()
		testenv.Eventually(t, 60*time.Second, "the run pods to be deleted", func() bool {
			pods, err := cs.CoreV1().Pods(h.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "runhost.instance=" + a.Instance})
			return err == nil && len(pods.Items) == 0
		})
	})
	return h
}

type result struct {
	ExitCode        int    `json:"exit_code"`
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	StdoutTruncated bool   `json:"stdout_truncated"`
	TimedOut        bool   `json:"timed_out"`
	OOMKilled       bool   `json:"oom_killed"`
	DurationMS      int64  `json:"duration_ms"`
}

func (h *host) post(path string, v any) (int, []byte) {
	b, _ := json.Marshal(v)
	resp, err := http.Post(h.url+path, "application/json", bytes.NewReader(b))
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func (h *host) run(runtime string, req map[string]any) result {
	h.t.Helper()
	status, body := h.post("/runtimes/"+runtime+"/run", req)
	if status != 200 {
		h.t.Fatalf("run %s: %d %s", runtime, status, body)
	}
	var r result
	_ = json.Unmarshal(body, &r)
	return r
}

func TestKubernetesExecutor(t *testing.T) {
	h := startHost(t, "RUNHOST_OUTPUT_LIMIT_BYTES=65536")
	cases := []struct {
		name    string
		runtime string
		req     map[string]any
		check   func(result) bool
	}{
		{"python hello", "python", map[string]any{"code": "print('Hello from runhost!')"}, func(r result) bool { return r.Stdout == "Hello from runhost!\n" }},
		{"shell stdin and args", "shell", map[string]any{"code": "echo $1; cat", "args": []string{"hi"}, "stdin": "from stdin"}, func(r result) bool { return r.Stdout == "hi\nfrom stdin" }},
		{"node", "node", map[string]any{"code": "console.log(process.versions.node.split('.')[0])"}, func(r result) bool { return r.Stdout == "20\n" }},
		{"multi-file with entry", "python", map[string]any{"files": []map[string]string{{"path": "lib/m.py", "content": "X = 7"}, {"path": "app.py", "content": "from lib.m import X\nprint(X)"}}, "entry": "app.py"}, func(r result) bool { return r.Stdout == "7\n" }},
		{"base64 file", "python", map[string]any{"code": "print(open('d.bin','rb').read())", "files": []map[string]string{{"path": "d.bin", "content": base64.StdEncoding.EncodeToString([]byte{0, 255}), "encoding": "base64"}}}, func(r result) bool { return r.Stdout == "b'\\x00\\xff'\n" }},
		{"non-zero exit", "python", map[string]any{"code": "import sys; sys.exit(3)"}, func(r result) bool { return r.ExitCode == 3 }},
		{"timeout", "python", map[string]any{"code": "while True: pass", "timeout_ms": 1500}, func(r result) bool { return r.TimedOut && r.DurationMS < 2500 }},
		{"memory limit", "python", map[string]any{"code": "a = []\nwhile True:\n    a.append(b'x' * (8 << 20))", "memory_mb": 64}, func(r result) bool { return r.OOMKilled }},
		{"output cap", "shell", map[string]any{"code": "yes | head -c 10000000"}, func(r result) bool { return r.StdoutTruncated && len(r.Stdout) == 65536 }},
		{"read-only root, non-root, no capabilities", "shell", map[string]any{"code": "touch /usr/x 2>/dev/null || echo ro; id -u; grep CapEff /proc/self/status"}, func(r result) bool {
			return strings.HasPrefix(r.Stdout, "ro\n1000\nCapEff:\t0000000000000000")
		}},
		{"no service account token", "shell", map[string]any{"code": "ls /var/run/secrets/kubernetes.io 2>&1 | head -1; env | grep -c KUBERNETES_ || true"}, func(r result) bool {
			return strings.Contains(r.Stdout, "No such file") && strings.HasSuffix(r.Stdout, "0\n")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.run(c.runtime, c.req)
			if !c.check(r) {
				t.Fatalf("%+v", r)
			}
		})
	}
	t.Run("bad input is the same API", func(t *testing.T) {
		status, body := h.post("/runtimes/python/run", map[string]any{"code": "1", "memory_mb": 999999})
		if status != 400 || !strings.Contains(string(body), "limit_exceeded") {
			t.Fatalf("%d %s", status, body)
		}
	})
	t.Run("what the executor cannot do is a clear 501", func(t *testing.T) {
		status, body := h.post("/runtimes/dockerfile/run", map[string]any{"dockerfile": "FROM runhost/shell:bookworm"})
		if status != 501 || !strings.Contains(string(body), "not_supported") {
			t.Fatalf("%d %s", status, body)
		}
	})
	t.Run("a client that goes away deletes the pod", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			b, _ := json.Marshal(map[string]any{"code": "import time; time.sleep(60)", "timeout_ms": 60000})
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url+"/runtimes/python/run", bytes.NewReader(b))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		sel := metav1.ListOptions{LabelSelector: "runhost.instance=" + h.app.Instance}
		testenv.Eventually(t, 60*time.Second, "the run's pod to appear", func() bool {
			pods, err := h.cs.CoreV1().Pods(h.ns).List(context.Background(), sel)
			return err == nil && len(pods.Items) > 0
		})
		cancel()
		testenv.Eventually(t, 60*time.Second, "the pod to be deleted", func() bool {
			pods, err := h.cs.CoreV1().Pods(h.ns).List(context.Background(), sel)
			return err == nil && len(pods.Items) == 0
		})
	})
}

// TestLatencyOnBothExecutors measures a python print(1) run on each
// executor in the same run (median of 10, one at a time) and logs them;
// scripts/e2e-k8s.sh prints the lines.
func TestLatencyOnBothExecutors(t *testing.T) {
	k8s := startHost(t)
	bins := testenv.Build(t)
	cfg, err := config.FromEnv([]string{"RUNHOST_PLUGIN_DIR=" + bins.PluginDir, "RUNHOST_INIT_PATH=" + bins.Init, "RUNHOST_SELFTEST_ON_START=false", "RUNHOST_POOL=off"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	defer func() { srv.Close(); a.Close() }()
	dock := &host{t: t, url: srv.URL, app: a}

	median := func(h *host) time.Duration {
		var d []time.Duration
		for range 10 {
			start := time.Now()
			if r := h.run("python", map[string]any{"code": "print(1)"}); r.Stdout != "1\n" {
				t.Fatalf("%+v", r)
			}
			d = append(d, time.Since(start))
		}
		slices.Sort(d)
		return d[len(d)/2]
	}
	kd, dd := median(k8s), median(dock)
	t.Logf("LATENCY python print(1), median of 10: kubernetes %s, docker (cold, no pool) %s", kd.Round(time.Millisecond), dd.Round(time.Millisecond))
}
