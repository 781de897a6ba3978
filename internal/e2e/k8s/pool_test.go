//go:build k8s

package k8s

import (
	"slices"
	"testing"
	"time"

	k8sexec "github.com/runhost/runhost/internal/executor/kubernetes"
	"github.com/runhost/runhost/internal/testenv"
)

// The warm pool on Kubernetes: started, attached pods wait for a default
// request; each serves exactly one run and is deleted, and the pool refills.
// Timeouts, OOM and stdin behave as on the cold path.
func TestWarmPoolOnKubernetes(t *testing.T) {
	h := startHost(t, "RUNHOST_POOL=python=1", "RUNHOST_DEFAULT_CPUS=0.25")
	k := h.app.Executor.(*k8sexec.Executor)
	ready := func() string {
		t.Helper()
		var name string
		testenv.Eventually(t, 90*time.Second, "a pooled pod", func() bool {
			idle := k.PoolStats().Idle
			for _, p := range h.pods() {
				if p.Labels[k8sexec.LabelPool] == "true" {
					name = p.Name
				}
			}
			return idle == 1 && name != ""
		})
		return name
	}
	hits := func() int64 { return k.PoolStats().Hits }

	first := ready()
	if r := h.run("python", map[string]any{"code": "import sys; print('pooled', sys.stdin.read())", "stdin": "in"}); r.Stdout != "pooled in\n" || r.ExitCode != 0 {
		t.Fatalf("%+v", r)
	}
	if hits() != 1 {
		t.Fatalf("hits %d after one default run with a ready pod", hits())
	}
	testenv.Eventually(t, 60*time.Second, "the used pod to be deleted", func() bool {
		for _, p := range h.pods() {
			if p.Name == first {
				return false
			}
		}
		return true
	})
	if second := ready(); second == first {
		t.Fatal("the pool did not refill with a new pod")
	}

	cases := []struct {
		name  string
		req   map[string]any
		check func(result) bool
	}{
		{"timeout", map[string]any{"code": "print('started', flush=True)\nwhile True: pass", "timeout_ms": 1500}, func(r result) bool { return r.TimedOut && r.Stdout == "started\n" }},
		{"memory limit", map[string]any{"code": "a = []\nwhile True:\n    a.append(b'x' * (8 << 20))"}, func(r result) bool { return r.OOMKilled && !r.TimedOut }},
		{"non-zero exit and stderr", map[string]any{"code": "import sys; print('e', file=sys.stderr); sys.exit(4)"}, func(r result) bool { return r.ExitCode == 4 && r.Stderr == "e\n" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ready()
			before := hits()
			if r := h.run("python", c.req); !c.check(r) {
				t.Fatalf("%+v", r)
			}
			if hits() != before+1 {
				t.Error("the run did not take the pooled pod")
			}
		})
	}

	t.Run("other limits take the cold path", func(t *testing.T) {
		ready()
		before := hits()
		if r := h.run("python", map[string]any{"code": "print(2)", "memory_mb": 128}); r.Stdout != "2\n" {
			t.Fatalf("%+v", r)
		}
		if hits() != before {
			t.Error("a run with other limits took the pooled pod")
		}
	})

	var d []time.Duration
	for range 10 {
		ready()
		start := time.Now()
		if r := h.run("python", map[string]any{"code": "print(1)"}); r.Stdout != "1\n" {
			t.Fatalf("%+v", r)
		}
		d = append(d, time.Since(start))
	}
	slices.Sort(d)
	t.Logf("LATENCY python print(1) on kubernetes with a ready pooled pod, median of %d: %s", len(d), d[len(d)/2].Round(time.Millisecond))
}
