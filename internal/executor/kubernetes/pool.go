package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/warmpool"
)

// LabelPool marks warm pool pods.
const LabelPool = "runhost.pool"

// poolMaxIdle is how long a pooled pod may wait before it is replaced.
const poolMaxIdle = 10 * time.Minute

// poolPodLifetime bounds a pooled pod: its idle wait and then one run
// (activeDeadlineSeconds and the sweep deadline derive from it).
const poolPodLifetime = poolMaxIdle + time.Hour

// pooledPod is a running pod whose init waits for its frame, already
// attached: a run costs the frame's round trip, not a pod start. Pooled pods
// hold their CPU and memory requests while they wait.
type pooledPod struct {
	name string
	att  *attachment
}

// SetPool sets what the warm pool keeps ready; call before StartPool. A
// target's OCI runtime is its pods' RuntimeClass (runtimeClass), so pods of
// different runtimes are told apart like on Docker.
func (e *Executor) SetPool(targets []executor.PoolTarget, budget int64) {
	e.pool = warmpool.New[*pooledPod](poolEngine{e}, targets, budget, warmpool.Options{MaxIdle: poolMaxIdle, Logger: e.log})
}

// StartPool starts filling the warm pool in the background; Close stops it.
func (e *Executor) StartPool() { e.pool.Start() }

// PoolStats reports hits, misses and idle pods.
func (e *Executor) PoolStats() warmpool.Stats { return e.pool.Stats() }

// takePooled returns a ready pod for job, or nil.
func (e *Executor) takePooled(job executor.Job) *pooledPod {
	if job.Install != nil || job.Workspace != nil {
		return nil
	}
	pp, _ := e.pool.Take(warmpool.KeyOf(job.Image, job.OCIRuntime, job.Limits))
	return pp
}

// poolEngine starts and deletes the warm pool's pods.
type poolEngine struct{ e *Executor }

// Start creates a pod for target, waits until its init runs, and attaches
// to it.
func (p poolEngine) Start(ctx context.Context, t executor.PoolTarget) (*pooledPod, error) {
	e := p.e
	var id [6]byte
	_, _ = rand.Read(id[:])
	limits := t.Limits
	limits.Timeout = poolPodLifetime
	name, a, err := e.startAttached(ctx, executor.Job{
		ID:         "pool-" + hex.EncodeToString(id[:]),
		Image:      t.Image,
		User:       e.cfg.User,
		Labels:     map[string]string{LabelPool: "true"},
		Limits:     limits,
		OCIRuntime: t.OCIRuntime,
	})
	if err != nil {
		return nil, err
	}
	return &pooledPod{name: name, att: a}, nil
}

// Discard detaches from the pod and deletes it.
func (p poolEngine) Discard(pp *pooledPod) {
	pp.att.detach()
	p.e.delete(context.Background(), pp.name)
}

// Dead reports whether the pod's attach stream ended while it waited.
func (p poolEngine) Dead(pp *pooledPod) bool {
	select {
	case <-pp.att.done:
		return true
	default:
		return false
	}
}
