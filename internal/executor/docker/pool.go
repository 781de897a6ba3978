package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/runhost/runhost/internal/executor"
)

// LabelPool marks warm pool containers.
const LabelPool = "runhost.pool"

// PoolTarget is a kind of container to keep ready (executor.PoolTarget).
type PoolTarget = executor.PoolTarget

// poolKey says which jobs a pooled container can serve: everything fixed
// when a container is created. Timeout and output cap are not.
type poolKey struct {
	image  string
	oci    string
	limits executor.Limits
}

func keyOf(image, oci string, l executor.Limits) poolKey {
	l.Timeout, l.OutputBytes = 0, 0
	return poolKey{image: image, oci: oci, limits: l}
}

// pool keeps started containers whose init waits for its frame, each used
// for exactly one run and then removed, so no state crosses runs. A job
// that no pooled container fits (other limits, a workspace, an install
// step) takes the cold path. The pool refills in the background and never
// holds more than its memory budget (the memory limits of its containers).
type pool struct {
	budget int64

	mu      sync.Mutex
	targets map[poolKey]PoolTarget
	idle    map[poolKey][]*started
	filling map[poolKey]int
	used    int64 // memory limits of idle and filling containers
	kick    chan struct{}
	closed  bool
	stats   PoolStats
}

// PoolStats count how the pool served runs.
type PoolStats struct {
	Hits, Misses int64
	Idle         int
}

// poolMaxIdle is how long a pooled container may wait before it is replaced
// (its sweep deadline is far later).
const poolMaxIdle = 30 * time.Minute

func newPool(targets []PoolTarget, budget int64) *pool {
	p := &pool{budget: budget, targets: map[poolKey]PoolTarget{}, idle: map[poolKey][]*started{}, filling: map[poolKey]int{}, kick: make(chan struct{}, 1)}
	for _, t := range targets {
		if t.Size > 0 {
			p.targets[keyOf(t.Image, t.OCIRuntime, t.Limits)] = t
		}
	}
	return p
}

// SetPool sets what the warm pool keeps ready; call before StartPool.
func (e *Executor) SetPool(targets []PoolTarget, budget int64) {
	e.pool = newPool(targets, budget)
}

// PoolStats reports hits, misses and idle containers.
func (e *Executor) PoolStats() PoolStats {
	p := e.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	for _, cs := range p.idle {
		s.Idle += len(cs)
	}
	return s
}

// take returns a ready container for job, or nil.
func (p *pool) take(job executor.Job) *started {
	if job.Install != nil || job.Workspace != nil || len(p.targets) == 0 {
		return nil
	}
	key := keyOf(job.Image, job.OCIRuntime, job.Limits)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.targets[key]; !ok {
		return nil
	}
	for len(p.idle[key]) > 0 {
		c := p.idle[key][0]
		p.idle[key] = p.idle[key][1:]
		p.used -= key.limits.MemoryBytes
		select {
		case <-c.exited: // died while waiting; the sweep or fill removes it
			go c.discard()
			continue
		default:
		}
		p.stats.Hits++
		p.signal()
		c.startAt = time.Now()
		return c
	}
	p.stats.Misses++
	p.signal()
	return nil
}

func (p *pool) signal() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// fillLoop keeps every target topped up until ctx ends.
func (e *Executor) fillLoop(ctx context.Context) {
	p := e.pool
	ticker := time.NewTicker(time.Minute)
	defer ticker.Stop()
	for {
		// Two containers start at once: the engine's create and start are
		// mostly waiting, and a pool refilled one by one falls behind.
		var fillers sync.WaitGroup
		for range 2 {
			fillers.Go(func() { e.fill(ctx) })
		}
		fillers.Wait()
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-ticker.C:
			e.recycle(ctx)
		}
	}
}

// fill starts containers until each target has its size or the budget is
// used up.
func (e *Executor) fill(ctx context.Context) {
	p := e.pool
	for {
		p.mu.Lock()
		var want *PoolTarget
		var key poolKey
		for k, t := range p.targets {
			if len(p.idle[k])+p.filling[k] < t.Size && p.used+k.limits.MemoryBytes <= p.budget {
				want, key = &t, k
				break
			}
		}
		if want == nil || p.closed {
			p.mu.Unlock()
			return
		}
		p.filling[key]++
		p.used += key.limits.MemoryBytes
		p.mu.Unlock()

		c, err := e.startPooled(ctx, *want)

		p.mu.Lock()
		p.filling[key]--
		if err != nil || p.closed {
			p.used -= key.limits.MemoryBytes
			p.mu.Unlock()
			if c != nil {
				e.remove(ctx, c.id)
			}
			if err != nil && ctx.Err() == nil {
				e.log.Warn("warm pool: cannot start a container", "image", want.Image, "error", err)
				select { // back off; the next kick or tick tries again
				case <-ctx.Done():
				case <-time.After(5 * time.Second):
				}
			}
			return
		}
		c.pooledAt = time.Now()
		p.idle[key] = append(p.idle[key], c)
		p.mu.Unlock()
	}
}

// startPooled creates and starts a container for target; its init waits for
// a frame.
func (e *Executor) startPooled(ctx context.Context, t PoolTarget) (*started, error) {
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
	if c != nil {
		c.discard = func() { e.removeAsync(c.id) }
	}
	return c, err
}

// recycle replaces containers that have waited longer than poolMaxIdle.
func (e *Executor) recycle(ctx context.Context) {
	p := e.pool
	p.mu.Lock()
	var old []*started
	for k, cs := range p.idle {
		keep := cs[:0]
		for _, c := range cs {
			if time.Since(c.pooledAt) > poolMaxIdle {
				old = append(old, c)
				p.used -= k.limits.MemoryBytes
				continue
			}
			keep = append(keep, c)
		}
		p.idle[k] = keep
	}
	p.mu.Unlock()
	for _, c := range old {
		c.stream.Close()
		c.cancel()
		e.removeAsync(c.id)
	}
}

// drainPool removes every idle container (at shutdown).
func (e *Executor) drainPool() {
	p := e.pool
	p.mu.Lock()
	p.closed = true
	var all []*started
	for k, cs := range p.idle {
		all = append(all, cs...)
		delete(p.idle, k)
	}
	p.used = 0
	p.mu.Unlock()
	for _, c := range all {
		c.stream.Close()
		c.cancel()
		e.removeAsync(c.id)
	}
}
