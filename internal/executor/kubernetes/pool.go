package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/runhost/runhost/internal/executor"
)

// LabelPool marks warm pool pods.
const LabelPool = "runhost.pool"

// poolMaxIdle is how long a pooled pod may wait before it is replaced.
const poolMaxIdle = 10 * time.Minute

// poolPodLifetime bounds a pooled pod: its idle wait and then one run
// (activeDeadlineSeconds and the sweep deadline derive from it).
const poolPodLifetime = poolMaxIdle + time.Hour

// poolKey says which jobs a pooled pod can serve: everything fixed when
// the pod is created. Timeout and output cap are not.
type poolKey struct {
	image  string
	limits executor.Limits
}

func keyOf(image string, l executor.Limits) poolKey {
	l.Timeout, l.OutputBytes = 0, 0
	return poolKey{image: image, limits: l}
}

// pooledPod is a running pod whose init waits for its frame, already
// attached: a run costs the frame's round trip, not a pod start.
type pooledPod struct {
	name     string
	att      *attachment
	pooledAt time.Time
}

// pool keeps started pods, each used for exactly one run and then deleted,
// so no state crosses runs. A job no pooled pod fits (other limits, an
// install, a workspace) takes the cold path. Pooled pods hold their CPU and
// memory requests while they wait: the budget bounds their memory.
type pool struct {
	budget int64

	mu      sync.Mutex
	targets map[poolKey]executor.PoolTarget
	idle    map[poolKey][]*pooledPod
	filling map[poolKey]int
	used    int64
	kick    chan struct{}
	closed  bool
	hits    int64
	misses  int64
}

func newPool(targets []executor.PoolTarget, budget int64) *pool {
	p := &pool{budget: budget, targets: map[poolKey]executor.PoolTarget{}, idle: map[poolKey][]*pooledPod{}, filling: map[poolKey]int{}, kick: make(chan struct{}, 1)}
	for _, t := range targets {
		if t.Size > 0 {
			p.targets[keyOf(t.Image, t.Limits)] = t
		}
	}
	return p
}

// SetPool sets what the warm pool keeps ready; call before StartPool.
// OCI runtimes are the cluster's business (RUNHOST_K8S_RUNTIME_CLASS).
func (e *Executor) SetPool(targets []executor.PoolTarget, budget int64) {
	e.pool = newPool(targets, budget)
}

// StartPool starts filling the warm pool in the background; Close stops it.
func (e *Executor) StartPool() {
	if e.pool == nil || len(e.pool.targets) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.stopPool = cancel
	e.poolDone.Add(1)
	go func() {
		defer e.poolDone.Done()
		e.fillLoop(ctx)
	}()
}

// PoolStats reports hits, misses and idle pods.
func (e *Executor) PoolStats() (hits, misses int64, idle int) {
	p := e.pool
	if p == nil {
		return 0, 0, 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ps := range p.idle {
		idle += len(ps)
	}
	return p.hits, p.misses, idle
}

// take returns a ready pod for job, or nil.
func (p *pool) take(job executor.Job) *pooledPod {
	if p == nil || job.Install != nil || job.Workspace != nil || len(p.targets) == 0 {
		return nil
	}
	key := keyOf(job.Image, job.Limits)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.targets[key]; !ok {
		return nil
	}
	defer p.signal()
	for len(p.idle[key]) > 0 {
		pp := p.idle[key][0]
		p.idle[key] = p.idle[key][1:]
		p.used -= key.limits.MemoryBytes
		select {
		case <-pp.att.done: // its stream ended while it waited: the fill loop replaces it
			continue
		default:
		}
		p.hits++
		return pp
	}
	p.misses++
	return nil
}

func (p *pool) signal() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// fillLoop keeps every target topped up until ctx ends, and replaces pods
// that waited too long.
func (e *Executor) fillLoop(ctx context.Context) {
	ticker := time.NewTicker(time.Minute)
	defer ticker.Stop()
	for {
		e.fill(ctx)
		select {
		case <-ctx.Done():
			return
		case <-e.pool.kick:
		case <-ticker.C:
			e.recycle()
		}
	}
}

// fill starts pods until each target has its size or the budget is used up.
func (e *Executor) fill(ctx context.Context) {
	p := e.pool
	for {
		p.mu.Lock()
		var want executor.PoolTarget
		var key poolKey
		found := false
		for k, t := range p.targets {
			if len(p.idle[k])+p.filling[k] < t.Size && p.used+k.limits.MemoryBytes <= p.budget {
				want, key, found = t, k, true
				break
			}
		}
		if !found || p.closed {
			p.mu.Unlock()
			return
		}
		p.filling[key]++
		p.used += key.limits.MemoryBytes
		p.mu.Unlock()

		pp, err := e.startPooled(ctx, want)

		p.mu.Lock()
		p.filling[key]--
		if err != nil || p.closed {
			p.used -= key.limits.MemoryBytes
			p.mu.Unlock()
			if pp != nil {
				pp.att.detach()
				e.delete(ctx, pp.name)
			}
			if err != nil && ctx.Err() == nil {
				e.log.Warn("warm pool: cannot start a pod", "image", want.Image, "error", err)
				select { // back off; the next kick or tick tries again
				case <-ctx.Done():
				case <-time.After(5 * time.Second):
				}
			}
			return
		}
		pp.pooledAt = time.Now()
		p.idle[key] = append(p.idle[key], pp)
		p.mu.Unlock()
	}
}

// startPooled creates a pod for target, waits until its init runs, and
// attaches to it.
func (e *Executor) startPooled(ctx context.Context, t executor.PoolTarget) (*pooledPod, error) {
	var id [6]byte
	_, _ = rand.Read(id[:])
	limits := t.Limits
	limits.Timeout = poolPodLifetime
	pod, err := e.podFor(executor.Job{
		ID:     "pool-" + hex.EncodeToString(id[:]),
		Image:  t.Image,
		User:   e.cfg.User,
		Labels: map[string]string{LabelPool: "true"},
		Limits: limits,
	})
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	created, err := e.core.createPod(cctx, pod)
	cancel()
	if err != nil {
		return nil, createError(err)
	}
	if err := e.waitRunning(ctx, created.Name); err != nil {
		e.delete(ctx, created.Name)
		return nil, err
	}
	a, err := e.attachPod(created.Name)
	if err != nil {
		e.delete(ctx, created.Name)
		return nil, err
	}
	return &pooledPod{name: created.Name, att: a}, nil
}

// recycle replaces pods that have waited longer than poolMaxIdle.
func (e *Executor) recycle() {
	p := e.pool
	p.mu.Lock()
	var old []*pooledPod
	for k, ps := range p.idle {
		keep := ps[:0]
		for _, pp := range ps {
			if time.Since(pp.pooledAt) > poolMaxIdle {
				old = append(old, pp)
				p.used -= k.limits.MemoryBytes
				continue
			}
			keep = append(keep, pp)
		}
		p.idle[k] = keep
	}
	p.mu.Unlock()
	for _, pp := range old {
		pp.att.detach()
		e.delete(context.Background(), pp.name)
	}
}

// drainPool stops the fill loop and deletes every idle pod (at shutdown).
func (e *Executor) drainPool() {
	p := e.pool
	if p == nil {
		return
	}
	if e.stopPool != nil {
		e.stopPool()
	}
	e.poolDone.Wait()
	p.mu.Lock()
	p.closed = true
	var all []*pooledPod
	for k, ps := range p.idle {
		all = append(all, ps...)
		delete(p.idle, k)
	}
	p.used = 0
	p.mu.Unlock()
	for _, pp := range all {
		pp.att.detach()
		e.delete(context.Background(), pp.name)
	}
}
