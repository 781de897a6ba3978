package kubernetes

import (
	"testing"
	"time"

	"github.com/runhost/runhost/internal/executor"
)

// Which jobs a pooled pod serves: the pool's pure logic, without a cluster
// (make e2e-k8s runs the pool against a real one).
func TestPoolTake(t *testing.T) {
	limits := executor.Limits{MemoryBytes: 256 << 20, NanoCPUs: 25e7, Timeout: 10 * time.Second, OutputBytes: 1 << 20}
	p := newPool([]executor.PoolTarget{{Image: "runhost/python:3.11", Limits: limits, Size: 2}}, 1<<30)
	live := func(name string) *pooledPod {
		return &pooledPod{name: name, att: &attachment{done: make(chan struct{})}}
	}
	dead := live("dead")
	close(dead.att.done)
	key := keyOf("runhost/python:3.11", limits)
	p.idle[key] = []*pooledPod{dead, live("a")}
	p.used = 2 * limits.MemoryBytes

	job := executor.Job{Image: "runhost/python:3.11", Limits: limits}
	other := limits
	other.Timeout, other.OutputBytes = time.Minute, 5 // these do not matter
	tests := []struct {
		name string
		job  executor.Job
		want string // "" for a miss
	}{
		{"other image", executor.Job{Image: "runhost/python:3.13", Limits: limits}, ""},
		{"other memory", executor.Job{Image: job.Image, Limits: executor.Limits{MemoryBytes: 128 << 20, NanoCPUs: 25e7}}, ""},
		{"an install", executor.Job{Image: job.Image, Limits: limits, Install: &executor.Install{}}, ""},
		{"a workspace", executor.Job{Image: job.Image, Limits: limits, Workspace: &executor.Mount{}}, ""},
		{"a default job skips the dead pod", executor.Job{Image: job.Image, Limits: other}, "a"},
		{"the pool is empty now", job, ""},
	}
	for _, tt := range tests {
		got := p.take(tt.job)
		name := ""
		if got != nil {
			name = got.name
		}
		if name != tt.want {
			t.Errorf("%s: took %q, want %q", tt.name, name, tt.want)
		}
	}
	if p.hits != 1 || p.misses != 1 {
		t.Errorf("hits %d misses %d, want 1 and 1 (jobs no target fits are not misses)", p.hits, p.misses)
	}
	if p.used != 0 {
		t.Errorf("budget in use %d after both pods left, want 0", p.used)
	}
	var nilPool *pool
	if nilPool.take(job) != nil {
		t.Error("no pool served a job")
	}
}
