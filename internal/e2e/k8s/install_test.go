//go:build k8s

package k8s

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/runhost/runhost/internal/e2e/pkgindex"
	"github.com/runhost/runhost/internal/e2e/scenario"
	k8sexec "github.com/runhost/runhost/internal/executor/kubernetes"
	"github.com/runhost/runhost/internal/testenv"
)

// bridgeIP is the test cluster's bridge address on this machine
// (scripts/k8s-cluster.sh): what pods reach the machine at.
const bridgeIP = "10.244.0.1"

// servePackageIndex serves pkgindex on the cluster's bridge, so the
// egress proxy pod reaches it like a pod reaches a package index.
func servePackageIndex(t *testing.T) (pipIndex, npmRegistry string) {
	t.Helper()
	// The bridge gets its address with the cluster's first pod, which may
	// come later: listen on every address, and name the bridge's.
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + net.JoinHostPort(bridgeIP, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	files, err := pkgindex.Files(base)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		b, ok := files[name]
		if !ok {
			b, ok = files[strings.TrimSuffix(name, "/")+"/index.html"]
		}
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return base + "/simple", base + "/"
}

// countPods counts the pods created with selector until the test ends:
// distinct pods seen in any event, the watch renewed if the server ends it.
func countPods(t *testing.T, h *host, namespace, selector string) *atomic.Int32 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int32
	watching := make(chan struct{})
	var once sync.Once
	go func() {
		seen := map[types.UID]bool{}
		for ctx.Err() == nil {
			w, err := h.cs.CoreV1().Pods(namespace).Watch(ctx, metav1.ListOptions{LabelSelector: selector})
			once.Do(func() { close(watching) })
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				if p, ok := ev.Object.(*corev1.Pod); ok && !seen[p.UID] {
					seen[p.UID] = true
					n.Add(1)
				}
			}
		}
	}()
	<-watching
	t.Cleanup(cancel)
	return &n
}

// Dependency installs on Kubernetes: install pods reach the package index
// only through the egress proxy pod and write a directory of the cache
// claim, which the host publishes and run pods mount read-only. The same
// scenario as on Docker, then what is particular to Kubernetes.
func TestInstallsOnKubernetes(t *testing.T) {
	cache := t.TempDir()
	claim := claimOver(t, cache)
	pip, npm := servePackageIndex(t)
	env := []string{
		"RUNHOST_K8S_CACHE_CLAIM=" + claim,
		"RUNHOST_K8S_CACHE_ROOT=" + cache,
		"RUNHOST_PIP_INDEX_URL=" + pip,
		"RUNHOST_NPM_REGISTRY=" + npm,
		"RUNHOST_EGRESS_ALLOW_CIDRS=" + bridgeIP + "/32",
		"RUNHOST_INSTALL_TIMEOUT_MS=120000",
	}
	h := startHost(t, env...)
	installs := countPods(t, h, h.ns, "runhost.step=install,"+k8sexec.LabelInstance+"="+h.app.Instance)

	scenario.Installs(t, h.post)

	t.Run("one install pod per distinct install", func(t *testing.T) {
		// pip, npm, and the failed pip install.
		testenv.Eventually(t, 10*time.Second, "3 install pods to be seen", func() bool { return installs.Load() >= 3 })
		if n := installs.Load(); n != 3 {
			t.Errorf("%d install pods, want 3", n)
		}
	})
	t.Run("the cache holds the finished installs and nothing else", func(t *testing.T) {
		des, err := os.ReadDir(filepath.Join(cache, "deps"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, de := range des {
			names = append(names, de.Name())
			if _, err := os.Stat(filepath.Join(cache, "deps", de.Name(), ".runhost-ready")); err != nil {
				t.Errorf("entry %s has no ready mark", de.Name())
			}
		}
		if len(names) != 2 {
			t.Errorf("cache entries %v, want 2 (pip and npm; no failed or unfinished ones)", names)
		}
	})
	t.Run("the egress proxy is one pod of this host", func(t *testing.T) {
		pods, err := h.cs.CoreV1().Pods(h.ns).List(context.Background(), metav1.ListOptions{LabelSelector: k8sexec.LabelEgress + "=true," + k8sexec.LabelInstance + "=" + h.app.Instance})
		if err != nil || len(pods.Items) != 1 {
			t.Fatalf("egress pods: %v %v", pods, err)
		}
		c := pods.Items[0].Spec.Containers[0]
		if sc := c.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("egress pod is not hardened: %+v", sc)
		}
	})
	t.Run("a new host adopts the cache, and reinstalls an entry that lost its mark", func(t *testing.T) {
		h2 := startHost(t, env...)
		installs2 := countPods(t, h2, h2.ns, "runhost.step=install,"+k8sexec.LabelInstance+"="+h2.app.Instance)
		r := scenario.Run(t, h2.post, "python", map[string]any{"code": "import runhost_greet; print('adopted')", "requirements": []string{"runhost-greet==1.0"}})
		if r.Stdout != "adopted\n" || r.Install == nil || !r.Install.Cached {
			t.Fatalf("adopted entry: %+v", r)
		}
		des, _ := os.ReadDir(filepath.Join(cache, "deps"))
		for _, de := range des {
			_ = os.Remove(filepath.Join(cache, "deps", de.Name(), ".runhost-ready"))
		}
		r = scenario.Run(t, h2.post, "python", map[string]any{"code": "import runhost_greet; print('again')", "requirements": []string{"runhost-greet==1.0"}})
		if r.Stdout != "again\n" || r.Install == nil || r.Install.Cached {
			t.Fatalf("after the mark was lost: %+v", r)
		}
		testenv.Eventually(t, 10*time.Second, "the install pod to be counted", func() bool { return installs2.Load() == 1 })
	})
}
