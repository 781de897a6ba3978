//go:build k8s

package k8s

import (
	"context"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/runhost/runhost/internal/app"
	"github.com/runhost/runhost/internal/config"
	k8sexec "github.com/runhost/runhost/internal/executor/kubernetes"
	"github.com/runhost/runhost/internal/testenv"
)

const latencyRuns = 20

// TestLatencyOnBothExecutors measures a python print(1) run, one at a time,
// on the Kubernetes executor and on the Docker executor (warm pool off, and
// on) in the same run, and where a Kubernetes run's time goes, from the
// pod's watch events as this test sees them. scripts/e2e-k8s.sh prints the
// LATENCY lines; nothing is asserted about speed.
func TestLatencyOnBothExecutors(t *testing.T) {
	k8s := startHost(t)
	phases := watchPhases(t, k8s)
	kd := medianRun(t, k8s)
	phases.report(t)

	docker := func(pool string) *host {
		cli := testenv.RequireDocker(t)
		testenv.RequireImages(t, cli, "runhost/python:3.11")
		bins := testenv.Build(t)
		cfg, err := config.FromEnv([]string{"RUNHOST_PLUGIN_DIR=" + bins.PluginDir, "RUNHOST_INIT_PATH=" + bins.Init,
			"RUNHOST_EGRESS_PATH=" + bins.Egress, "RUNHOST_SELFTEST_ON_START=false", "RUNHOST_POOL=" + pool})
		if err != nil {
			t.Fatal(err)
		}
		a, err := app.New(context.Background(), cfg, hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr}))
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(a.Handler())
		t.Cleanup(func() { srv.Close(); a.Close() })
		return &host{t: t, url: srv.URL, app: a}
	}
	dd := medianRun(t, docker("off"))
	dp := medianRun(t, docker("python=2"))
	t.Logf("LATENCY python print(1), median of %d sequential runs: kubernetes %s | docker, no pool %s | docker, warm pool %s",
		latencyRuns, kd.Round(time.Millisecond), dd.Round(time.Millisecond), dp.Round(time.Millisecond))
}

func medianRun(t *testing.T, h *host) time.Duration {
	t.Helper()
	h.run("python", map[string]any{"code": "print(1)"}) // warm-up: plugin, client connections
	var d []time.Duration
	for range latencyRuns {
		start := time.Now()
		if r := h.run("python", map[string]any{"code": "print(1)"}); r.Stdout != "1\n" {
			t.Fatalf("%+v", r)
		}
		d = append(d, time.Since(start))
	}
	slices.Sort(d)
	return d[len(d)/2]
}

// podPhases records, per run pod, when this test first saw it created,
// bound to the node, with its init container done, its run container
// running, and its run container terminated.
type podPhases struct {
	mu   sync.Mutex
	seen map[string]*[5]time.Time
}

var phaseNames = [...]string{"created", "scheduled", "init done", "running", "exited"}

func watchPhases(t *testing.T, h *host) *podPhases {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p := &podPhases{seen: map[string]*[5]time.Time{}}
	// A watch the server ends (or an error event) is opened again until the test ends.
	go func() {
		for ctx.Err() == nil {
			w, err := h.cs.CoreV1().Pods(h.ns).Watch(ctx, metav1.ListOptions{LabelSelector: k8sexec.LabelInstance + "=" + h.app.Instance})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				if pod, ok := ev.Object.(*corev1.Pod); ok && ev.Type != watch.Deleted {
					p.observe(pod, time.Now())
				}
			}
			w.Stop()
		}
	}()
	return p
}

func (p *podPhases) observe(pod *corev1.Pod, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := p.seen[pod.Name]
	if ts == nil {
		ts = new([5]time.Time)
		p.seen[pod.Name] = ts
	}
	mark := func(i int, cond bool) {
		if cond && ts[i].IsZero() {
			ts[i] = now
		}
	}
	mark(0, true)
	mark(1, pod.Spec.NodeName != "")
	for _, s := range pod.Status.InitContainerStatuses {
		mark(2, s.State.Terminated != nil)
	}
	for _, s := range pod.Status.ContainerStatuses {
		mark(3, s.State.Running != nil || s.State.Terminated != nil)
		mark(4, s.State.Terminated != nil)
	}
}

// report logs the median time between consecutive phases.
func (p *podPhases) report(t *testing.T) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t.Logf("LATENCY kubernetes: %d run pods watched", len(p.seen))
	for i := 1; i < len(phaseNames); i++ {
		var d []time.Duration
		for _, ts := range p.seen {
			if !ts[i-1].IsZero() && !ts[i].IsZero() {
				d = append(d, ts[i].Sub(ts[i-1]))
			}
		}
		if len(d) == 0 {
			continue
		}
		slices.Sort(d)
		t.Logf("LATENCY kubernetes pod %s -> %s: median %s over %d pods", phaseNames[i-1], phaseNames[i], d[len(d)/2].Round(time.Millisecond), len(d))
	}
}
