package docker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/runhost/runhost/internal/executor"
)

// A warm container serves one job of its image, runtime and limits, and is
// removed after it; a job it does not fit takes the cold path and leaves it
// waiting.
func TestPoolHandOff(t *testing.T) {
	const other = "runhost/node:20"
	f := newFakeEngine(testImage, other)
	e := newTestExecutor(t, f)
	e.SetPool([]PoolTarget{{Image: testImage, Limits: testLimits(), Size: 1}}, 1<<30)
	e.StartPool()
	t.Cleanup(func() { _ = e.Close() })
	for filling := time.Now(); e.PoolStats().Idle < 1; time.Sleep(time.Millisecond) {
		if time.Since(filling) > time.Minute { // a guard against a hang, not a measure
			t.Fatal("the pool never filled")
		}
	}
	pooled := f.byName("runhost-pool-")
	if len(pooled) != 1 {
		t.Fatalf("%d pool containers, want 1", len(pooled))
	}
	warm := pooled[0]
	if warm.config.User != "1000:1000" || warm.config.Labels[LabelPool] != "true" || !warm.host.ReadonlyRootfs || warm.host.NetworkMode != "none" {
		t.Errorf("the warm container lacks the run user, the pool label or a run's hardening")
	}

	misfits := []struct {
		name string
		job  func(j *executor.Job)
	}{
		{"other image", func(j *executor.Job) { j.Image = other }},
		{"other limits", func(j *executor.Job) { j.Limits.MemoryBytes *= 2 }},
		{"other runtime", func(j *executor.Job) { j.OCIRuntime = "runsc" }},
		{"a workspace", func(j *executor.Job) { j.Workspace = &executor.Mount{Source: "/ws", Target: "/workspace"} }},
		{"another user", func(j *executor.Job) { j.User = "2000:2000" }},
	}
	for i, m := range misfits {
		t.Run(m.name, func(t *testing.T) {
			job := testJob(fmt.Sprintf("cold%d", i), "exit 0")
			m.job(&job)
			res, err := e.Run(context.Background(), job)
			if want := "ran in runhost-" + job.ID; err != nil || string(res.Stdout) != want {
				t.Errorf("run: %q (%v), want %q", res.Stdout, err, want)
			}
			f.mu.Lock()
			cmd := warm.command
			f.mu.Unlock()
			if cmd != "" || e.PoolStats().Idle != 1 || e.PoolStats().Hits != 0 {
				t.Errorf("the warm container was used (command %q, stats %+v)", cmd, e.PoolStats())
			}
		})
	}

	job := testJob("warm", "exit 0")
	job.Limits.Timeout = time.Minute // not part of the pool's key
	res, err := e.Run(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	if want := "ran in " + warm.name; string(res.Stdout) != want {
		t.Errorf("stdout %q, want %q", res.Stdout, want)
	}
	if n := len(f.byName("runhost-warm")); n != 0 {
		t.Errorf("%d containers created for a job the pool could serve", n)
	}
	if s := e.PoolStats(); s.Hits != 1 {
		t.Errorf("pool stats %+v, want one hit", s)
	}
	waitRemoved(t, warm) // removed after its one run
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	f.checkNothingLeft(t) // the refill too, at Close
}
