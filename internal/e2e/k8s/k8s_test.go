//go:build k8s

// Package k8s runs the end-to-end suite with the Kubernetes executor
// against a real cluster: scripts/e2e-k8s.sh (make e2e-k8s) starts one
// (scripts/k8s-cluster.sh), loads the images and runs `go test -tags k8s`
// here with RUNHOST_K8S_KUBECONFIG, RUNHOST_K8S_INIT_IMAGE and
// RUNHOST_K8S_EGRESS_IMAGE set.
// TestMain applies deploy/kubernetes first, so every run pod of the suite
// goes through the manifests' namespace, quota, limit range and the
// restricted pod security level.
package k8s

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/runhost/runhost/internal/app"
	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/config"
	"github.com/runhost/runhost/internal/e2e/k8s/manifests"
	k8sexec "github.com/runhost/runhost/internal/executor/kubernetes"
	"github.com/runhost/runhost/internal/testenv"
)

// deploy/kubernetes/namespace.yaml
const (
	runsNamespace   = "runhost-runs"
	buildsNamespace = "runhost-builds"
)

// apiKey is the key the deployed host accepts (its hash replaces the
// manifests' placeholder Secret).
var apiKey = auth.NewKey()

func TestMain(m *testing.M) {
	os.Exit(func() int {
		kubeconfig := os.Getenv("RUNHOST_K8S_KUBECONFIG")
		if kubeconfig == "" {
			fmt.Fprintln(os.Stderr, "run through scripts/e2e-k8s.sh (make e2e-k8s): RUNHOST_K8S_KUBECONFIG is not set")
			return 1
		}
		rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		objs, err := manifests.Load(filepath.Join(testenv.RepoRoot(), "deploy", "kubernetes"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for _, o := range objs {
			if o.GetKind() == "Secret" && o.GetName() == "runhost-api-keys" {
				o.Object["stringData"] = map[string]any{"keys": "e2e " + auth.Hash(apiKey) + "\n"}
			}
		}
		mc, err := manifests.New(rc)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		ctx := context.Background()
		if err := mc.Apply(ctx, objs); err != nil {
			fmt.Fprintln(os.Stderr, "apply deploy/kubernetes:", err)
			return 1
		}
		defer func() {
			if err := mc.Delete(ctx, objs); err != nil {
				fmt.Fprintln(os.Stderr, "delete deploy/kubernetes:", err)
			}
		}()
		return m.Run()
	}())
}

func restConfig(t testing.TB) *rest.Config {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", os.Getenv("RUNHOST_K8S_KUBECONFIG"))
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func clientset(t testing.TB) kubernetes.Interface {
	t.Helper()
	return kubernetes.NewForConfigOrDie(restConfig(t))
}

type host struct {
	t   testing.TB
	url string
	app *app.App
	cs  kubernetes.Interface
	ns  string
}

// startHost runs a host with the Kubernetes executor, from outside the
// cluster, and checks at cleanup that none of its pods is left.
func startHost(t testing.TB, env ...string) *host {
	t.Helper()
	bins := testenv.Build(t)
	cfg, err := config.FromEnv(append([]string{
		"RUNHOST_EXECUTOR=kubernetes",
		"RUNHOST_K8S_KUBECONFIG=" + os.Getenv("RUNHOST_K8S_KUBECONFIG"),
		"RUNHOST_K8S_INIT_IMAGE=" + os.Getenv("RUNHOST_K8S_INIT_IMAGE"),
		"RUNHOST_K8S_EGRESS_IMAGE=" + os.Getenv("RUNHOST_K8S_EGRESS_IMAGE"),
		"RUNHOST_K8S_NAMESPACE=" + runsNamespace,
		"RUNHOST_K8S_PULL_POLICY=Never",
		"RUNHOST_PLUGIN_DIR=" + bins.PluginDir,
		"RUNHOST_INIT_PATH=" + bins.Init,
		"RUNHOST_EGRESS_PATH=" + bins.Egress,
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
	cs := clientset(t)
	h := &host{t: t, url: srv.URL, app: a, cs: cs, ns: cfg.Kubernetes.Namespace}
	t.Cleanup(func() {
		srv.Close()
		a.Close()
		testenv.Eventually(t, 60*time.Second, "the run pods to be deleted", func() bool {
			return len(h.pods()) == 0
		})
	})
	return h
}

// pods lists this host's run pods.
func (h *host) pods() []corev1.Pod {
	pods, err := h.cs.CoreV1().Pods(h.ns).List(context.Background(), metav1.ListOptions{LabelSelector: k8sexec.LabelInstance + "=" + h.app.Instance})
	if err != nil {
		h.t.Fatalf("list pods: %v", err)
	}
	return pods.Items
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
	return post(h.t, h.url+path, "", v)
}

func post(t testing.TB, url, key string, v any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(v)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
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
	if err := json.Unmarshal(body, &r); err != nil {
		h.t.Fatalf("%v: %s", err, body)
	}
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
		{"python 3.11 hello", "python", map[string]any{"version": "3.11", "code": "import sys; print('Hello from', sys.version_info[:2])"}, func(r result) bool { return r.Stdout == "Hello from (3, 11)\n" && r.ExitCode == 0 }},
		{"python 3.13 hello", "python", map[string]any{"version": "3.13", "code": "import sys; print('Hello from', sys.version_info[:2])"}, func(r result) bool { return r.Stdout == "Hello from (3, 13)\n" }},
		{"node 18 hello", "node", map[string]any{"version": "18", "code": "console.log('Hello from', process.versions.node.split('.')[0])"}, func(r result) bool { return r.Stdout == "Hello from 18\n" }},
		{"node 20 hello", "node", map[string]any{"version": "20", "code": "console.log('Hello from', process.versions.node.split('.')[0])"}, func(r result) bool { return r.Stdout == "Hello from 20\n" }},
		{"shell hello", "shell", map[string]any{"code": "echo Hello from $BASH_VERSION | cut -c1-12"}, func(r result) bool { return r.Stdout == "Hello from 5\n" }},
		{"shell stdin and args", "shell", map[string]any{"code": "echo $1; cat", "args": []string{"hi"}, "stdin": "from stdin"}, func(r result) bool { return r.Stdout == "hi\nfrom stdin" }},
		{"python stdin and args", "python", map[string]any{"code": "import sys; print(sys.argv[1:], sys.stdin.read())", "args": []string{"a", "b c"}, "stdin": "in"}, func(r result) bool { return r.Stdout == "['a', 'b c'] in\n" }},
		{"stderr apart from stdout", "python", map[string]any{"code": "import sys; print('out'); print('err', file=sys.stderr)"}, func(r result) bool { return r.Stdout == "out\n" && r.Stderr == "err\n" }},
		{"multi-file with entry", "python", map[string]any{"files": []map[string]string{{"path": "lib/m.py", "content": "X = 7"}, {"path": "app.py", "content": "from lib.m import X\nprint(X)"}}, "entry": "app.py"}, func(r result) bool { return r.Stdout == "7\n" }},
		{"base64 file", "python", map[string]any{"code": "print(open('d.bin','rb').read())", "files": []map[string]string{{"path": "d.bin", "content": base64.StdEncoding.EncodeToString([]byte{0, 255}), "encoding": "base64"}}}, func(r result) bool { return r.Stdout == "b'\\x00\\xff'\n" }},
		{"non-zero exit", "python", map[string]any{"code": "import sys; sys.exit(3)"}, func(r result) bool { return r.ExitCode == 3 && !r.TimedOut && !r.OOMKilled }},
		{"timeout", "python", map[string]any{"code": "print('started', flush=True)\nwhile True: pass", "timeout_ms": 1500}, func(r result) bool { return r.TimedOut && r.Stdout == "started\n" }},
		{"memory limit", "python", map[string]any{"code": "a = []\nwhile True:\n    a.append(b'x' * (8 << 20))", "memory_mb": 64}, func(r result) bool { return r.OOMKilled && !r.TimedOut }},
		{"output cap", "shell", map[string]any{"code": "yes | head -c 10000000"}, func(r result) bool { return r.StdoutTruncated && len(r.Stdout) == 65536 }},
		{"read-only root, non-root, no capabilities", "shell", map[string]any{"code": "touch /usr/x 2>/dev/null || echo ro; id -u; grep CapEff /proc/self/status"}, func(r result) bool {
			return strings.HasPrefix(r.Stdout, "ro\n1000\nCapEff:\t0000000000000000")
		}},
		// Kubernetes always injects KUBERNETES_SERVICE_HOST/PORT (the API
		// server's address, no secret); service links for other Services
		// are off, and there is no token to use the address with.
		{"no service account token, no service links", "shell", map[string]any{"code": "ls /var/run/secrets/kubernetes.io 2>&1 | head -1; env | grep _SERVICE_HOST= | grep -vc ^KUBERNETES_ || true"}, func(r result) bool {
			return strings.Contains(r.Stdout, "No such file") && strings.HasSuffix(r.Stdout, "\n0\n")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := *h
			h.t = t
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
		status, body = h.post("/runtimes/python/run", map[string]any{"code": "1", "requirements": []string{"six"}})
		if status != 501 || !strings.Contains(string(body), "RUNHOST_K8S_CACHE_CLAIM") {
			t.Fatalf("an install without a cache claim: %d %s", status, body)
		}
	})
}

func TestClientDisconnectDeletesThePod(t *testing.T) {
	h := startHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b, _ := json.Marshal(map[string]any{"code": "import time; print('up', flush=True); time.sleep(60)", "timeout_ms": 60000})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url+"/runtimes/python/run", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	testenv.Eventually(t, 60*time.Second, "the run's pod to run", func() bool {
		for _, p := range h.pods() {
			for _, s := range p.Status.ContainerStatuses {
				if s.Name == "run" && s.State.Running != nil {
					return true
				}
			}
		}
		return false
	})
	cancel()
	<-done
	testenv.Eventually(t, 60*time.Second, "the pod to be deleted", func() bool { return len(h.pods()) == 0 })
}

// TestSweepDeletesLabelledPodsPastTheirDeadline: pods a crashed host left
// behind carry the managed label and a deadline; the sweep deletes those
// past it, whoever made them, and leaves the others.
func TestSweepDeletesLabelledPodsPastTheirDeadline(t *testing.T) {
	h := startHost(t)
	ctx := context.Background()
	pods := h.cs.CoreV1().Pods(h.ns)
	mk := func(name string, deadline time.Time) {
		yes, no, uid := true, false, int64(1000)
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Labels:      map[string]string{k8sexec.LabelManaged: "true", k8sexec.LabelInstance: "crashed-host"},
				Annotations: map[string]string{k8sexec.AnnoDeadline: fmt.Sprint(deadline.Unix())},
			},
			Spec: corev1.PodSpec{
				RestartPolicy:                corev1.RestartPolicyNever,
				AutomountServiceAccountToken: &no,
				Containers: []corev1.Container{{
					Name: "left", Image: "runhost/shell:bookworm", ImagePullPolicy: corev1.PullNever,
					Command: []string{"sleep", "600"},
					SecurityContext: &corev1.SecurityContext{
						RunAsNonRoot: &yes, RunAsUser: &uid, AllowPrivilegeEscalation: &no,
						Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
				}},
			},
		}
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			zero := int64(0)
			_ = pods.Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		})
	}
	mk("e2e-sweep-past", time.Now().Add(-time.Minute))
	mk("e2e-sweep-future", time.Now().Add(time.Hour))
	n, err := h.app.Executor.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("swept %d pods, want 1", n)
	}
	testenv.Eventually(t, 60*time.Second, "the pod past its deadline to be deleted", func() bool {
		_, err := pods.Get(ctx, "e2e-sweep-past", metav1.GetOptions{})
		return err != nil
	})
	if _, err := pods.Get(ctx, "e2e-sweep-future", metav1.GetOptions{}); err != nil {
		t.Fatalf("the pod within its deadline is gone: %v", err)
	}
}

// TestRefusedRunsAreNot500: a used-up quota is a 429 (try later), a pod the
// namespace's limits refuse or no node can hold is a 503; no pod is left.
func TestRefusedRunsAreNot500(t *testing.T) {
	cs := clientset(t)
	ctx := context.Background()
	ns := "runhost-e2e-quota"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	zero := corev1.ResourceList{corev1.ResourcePods: *resourceQuantity(0)}
	if _, err := cs.CoreV1().ResourceQuotas(ns).Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "none"}, Spec: corev1.ResourceQuotaSpec{Hard: zero}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The quota controller must have counted the namespace before it refuses.
	testenv.Eventually(t, 60*time.Second, "the quota to be counted", func() bool {
		q, err := cs.CoreV1().ResourceQuotas(ns).Get(ctx, "none", metav1.GetOptions{})
		return err == nil && q.Status.Hard != nil
	})

	t.Run("quota used up is 429", func(t *testing.T) {
		h := startHost(t, "RUNHOST_K8S_NAMESPACE="+ns)
		status, body := h.post("/runtimes/python/run", map[string]any{"code": "print(1)"})
		if status != http.StatusTooManyRequests || !strings.Contains(string(body), "engine_busy") {
			t.Fatalf("%d %s", status, body)
		}
	})
	t.Run("above the namespace's limit range is 503", func(t *testing.T) {
		h := startHost(t, "RUNHOST_MAX_MEMORY_MB=8192")
		status, body := h.post("/runtimes/python/run", map[string]any{"code": "print(1)", "memory_mb": 5000})
		if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "no_capacity") {
			t.Fatalf("%d %s", status, body)
		}
	})
	t.Run("more CPU than any node has is 503", func(t *testing.T) {
		h := startHost(t, "RUNHOST_MAX_CPUS=4")
		status, body := h.post("/runtimes/python/run", map[string]any{"code": "print(1)", "cpus": 4})
		if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "no_capacity") {
			t.Fatalf("%d %s", status, body)
		}
	})
}

// TestNetworkPolicyApplied: the run namespace denies all ingress and
// egress. The test cluster's bridge CNI does not enforce NetworkPolicy, so
// this checks the object the cluster holds, not its enforcement.
func TestNetworkPolicyApplied(t *testing.T) {
	np, err := clientset(t).NetworkingV1().NetworkPolicies(runsNamespace).Get(context.Background(), "runs-deny-all", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	types := fmt.Sprint(np.Spec.PolicyTypes)
	if len(np.Spec.PodSelector.MatchLabels)+len(np.Spec.PodSelector.MatchExpressions) != 0 || types != "[Ingress Egress]" ||
		len(np.Spec.Ingress) != 0 || len(np.Spec.Egress) != 0 {
		t.Fatalf("runs-deny-all does not deny everything to every pod: %+v", np.Spec)
	}

	// The install path's two exceptions select the labels the executor
	// puts on install pods and on its egress proxy pod.
	install := map[string]string{"runhost.step": "install"}
	proxy := map[string]string{k8sexec.LabelEgress: "true"}
	np, err = clientset(t).NetworkingV1().NetworkPolicies(runsNamespace).Get(context.Background(), "installs-to-egress-proxy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(np.Spec.PodSelector.MatchLabels, install) || len(np.Spec.Egress) != 1 || len(np.Spec.Egress[0].To) != 1 ||
		!maps.Equal(np.Spec.Egress[0].To[0].PodSelector.MatchLabels, proxy) || np.Spec.Egress[0].Ports[0].Port.IntValue() != 3128 {
		t.Fatalf("installs-to-egress-proxy: %+v", np.Spec)
	}
	np, err = clientset(t).NetworkingV1().NetworkPolicies(runsNamespace).Get(context.Background(), "egress-proxy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(np.Spec.PodSelector.MatchLabels, proxy) || len(np.Spec.Ingress) != 1 || !maps.Equal(np.Spec.Ingress[0].From[0].PodSelector.MatchLabels, install) {
		t.Fatalf("egress-proxy: %+v", np.Spec)
	}
}
