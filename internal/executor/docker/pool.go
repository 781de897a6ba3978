package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/warmpool"
)

// LabelPool marks warm pool containers.
const LabelPool = "runhost.pool"

// PoolTarget is a kind of container to keep ready (executor.PoolTarget).
type PoolTarget = executor.PoolTarget

// PoolStats count how the pool served runs.
type PoolStats = warmpool.Stats

// poolMaxIdle is how long a pooled container may wait before it is replaced
// (its sweep deadline is far later).
const poolMaxIdle = 30 * time.Minute

// SetPool sets what the warm pool keeps ready (RUNHOST_POOL, the only way
// to configure it); call before StartPool.
func (e *Executor) SetPool(targets []PoolTarget, budget int64) {
	// Two containers start at once: the engine's create and start are
	// mostly waiting, and a pool refilled one by one falls behind.
	e.pool = warmpool.New[*started](poolEngine{e}, targets, budget, warmpool.Options{Fillers: 2, MaxIdle: poolMaxIdle, Logger: e.log})
}

// StartPool fills the warm pool in the background until Close.
func (e *Executor) StartPool() { e.pool.Start() }

// PoolStats reports hits, misses and idle containers.
func (e *Executor) PoolStats() PoolStats { return e.pool.Stats() }

// takePooled returns a started container for job, or nil.
func (e *Executor) takePooled(job executor.Job) *started {
	if job.Install != nil || job.Workspace != nil || job.Network != nil || job.User != e.user {
		return nil // the pool's containers have no mounts, no network, and the executor's user
	}
	c, ok := e.pool.Take(warmpool.KeyOf(job.Image, job.OCIRuntime, job.Limits))
	if !ok {
		return nil
	}
	c.startAt = time.Now()
	return c
}

// poolEngine starts and removes the warm pool's containers.
type poolEngine struct{ e *Executor }

// Start creates and starts a container for target; its init waits for a
// frame.
func (p poolEngine) Start(ctx context.Context, t PoolTarget) (*started, error) {
	e := p.e
	if err := e.init.ensure(ctx, e.engine, e.labels(nil, time.Hour)); err != nil {
		return nil, err
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	limits := t.Limits
	limits.Timeout = 24 * time.Hour // its sweep deadline while it waits
	c, err := e.start(ctx, step{Job: executor.Job{
		ID:         "pool-" + hex.EncodeToString(id[:]),
		Image:      t.Image,
		User:       e.user,
		Labels:     map[string]string{LabelPool: "true"},
		Limits:     limits,
		OCIRuntime: t.OCIRuntime,
	}})
	if err != nil {
		if c != nil {
			e.remove(ctx, c.id)
		}
		return nil, err
	}
	return c, nil
}

// Discard detaches from c and removes it.
func (p poolEngine) Discard(c *started) {
	c.stream.Close()
	c.cancel()
	p.e.removeAsync(c.id)
}

// Dead reports whether c exited while it waited.
func (p poolEngine) Dead(c *started) bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}
