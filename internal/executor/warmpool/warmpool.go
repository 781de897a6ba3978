// Package warmpool keeps started containers (or pods) ready for default
// requests, whatever the engine. Each one serves exactly one run and is then
// removed by its executor, so no state crosses runs. A job that no ready
// one fits (other limits, an install, a workspace) takes the executor's cold
// path. The pool refills in the background, never holds more than its
// memory budget (the memory limits of what it holds and is starting), and
// replaces what waited longer than MaxIdle.
package warmpool

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/runhost/runhost/internal/executor"
)

// Engine starts and removes the pool's items: *T is a started container
// or pod whose init waits for its frame.
type Engine[T any] interface {
	// Start starts one item for target. On error it leaves nothing behind.
	Start(ctx context.Context, target executor.PoolTarget) (T, error)
	// Discard removes an item the pool no longer holds (off the caller's path).
	Discard(item T)
	// Dead reports whether item ended while it waited.
	Dead(item T) bool
}

// Key says which jobs an item can serve: everything fixed when it is
// started. Timeout and output cap are not.
type Key struct {
	Image      string
	OCIRuntime string
	Limits     executor.Limits
}

// KeyOf is the key of a job (or target) with this image, runtime and limits.
func KeyOf(image, oci string, l executor.Limits) Key {
	l.Timeout, l.OutputBytes = 0, 0
	return Key{Image: image, OCIRuntime: oci, Limits: l}
}

// Options tune a pool.
type Options struct {
	Fillers int           // items started at once (default 1)
	MaxIdle time.Duration // an item waiting longer is replaced (default 30 min)
	Logger  hclog.Logger
}

// Stats count how the pool served runs.
type Stats struct {
	Hits, Misses int64
	Idle         int
}

// Pool holds ready items per target. A nil *Pool holds nothing.
type Pool[T any] struct {
	eng    Engine[T]
	budget int64
	opts   Options

	mu      sync.Mutex
	targets map[Key]executor.PoolTarget
	idle    map[Key][]waiting[T]
	filling map[Key]int
	used    int64
	kick    chan struct{}
	closed  bool
	stats   Stats

	stop context.CancelFunc
	done sync.WaitGroup
}

type waiting[T any] struct {
	item  T
	since time.Time
}

// New makes a pool of targets (keyed by KeyOf their image, OCI runtime and
// limits) bounded by budget bytes of memory limits. Start fills it.
func New[T any](eng Engine[T], targets []executor.PoolTarget, budget int64, opts Options) *Pool[T] {
	if opts.Fillers <= 0 {
		opts.Fillers = 1
	}
	if opts.MaxIdle <= 0 {
		opts.MaxIdle = 30 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	p := &Pool[T]{eng: eng, budget: budget, opts: opts, targets: map[Key]executor.PoolTarget{},
		idle: map[Key][]waiting[T]{}, filling: map[Key]int{}, kick: make(chan struct{}, 1)}
	for _, t := range targets {
		if t.Size > 0 {
			p.targets[KeyOf(t.Image, t.OCIRuntime, t.Limits)] = t
		}
	}
	return p
}

// Empty reports whether the pool has no targets at all.
func (p *Pool[T]) Empty() bool { return p == nil || len(p.targets) == 0 }

// Start fills the pool in the background until Close.
func (p *Pool[T]) Start() {
	if p.Empty() {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.stop = cancel
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		p.fillLoop(ctx)
	}()
}

// Take returns a ready item for key, or false. The caller owns it from then
// on and removes it after its run.
func (p *Pool[T]) Take(key Key) (T, bool) {
	var zero T
	if p.Empty() {
		return zero, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.targets[key]; !ok {
		return zero, false
	}
	defer p.signal()
	for len(p.idle[key]) > 0 {
		w := p.idle[key][0]
		p.idle[key] = p.idle[key][1:]
		p.used -= key.Limits.MemoryBytes
		if p.eng.Dead(w.item) {
			go p.eng.Discard(w.item)
			continue
		}
		p.stats.Hits++
		return w.item, true
	}
	p.stats.Misses++
	return zero, false
}

// Stats reports hits, misses and idle items.
func (p *Pool[T]) Stats() Stats {
	if p == nil {
		return Stats{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	for _, ws := range p.idle {
		s.Idle += len(ws)
	}
	return s
}

// Close stops filling and discards every idle item.
func (p *Pool[T]) Close() {
	if p == nil {
		return
	}
	if p.stop != nil {
		p.stop()
	}
	p.done.Wait()
	p.mu.Lock()
	p.closed = true
	var all []waiting[T]
	for k, ws := range p.idle {
		all = append(all, ws...)
		delete(p.idle, k)
	}
	p.used = 0
	p.mu.Unlock()
	for _, w := range all {
		p.eng.Discard(w.item)
	}
}

func (p *Pool[T]) signal() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// fillLoop keeps every target topped up until ctx ends, and replaces items
// that waited too long.
func (p *Pool[T]) fillLoop(ctx context.Context) {
	ticker := time.NewTicker(time.Minute)
	defer ticker.Stop()
	for {
		// Several start at once: an engine's create and start are mostly
		// waiting, and a pool refilled one by one falls behind.
		var fillers sync.WaitGroup
		for range p.opts.Fillers {
			fillers.Go(func() { p.fill(ctx) })
		}
		fillers.Wait()
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-ticker.C:
			p.recycle()
		}
	}
}

// fill starts items until each target has its size or the budget is used up.
func (p *Pool[T]) fill(ctx context.Context) {
	for {
		p.mu.Lock()
		var want executor.PoolTarget
		var key Key
		found := false
		for k, t := range p.targets {
			if len(p.idle[k])+p.filling[k] < t.Size && p.used+k.Limits.MemoryBytes <= p.budget {
				want, key, found = t, k, true
				break
			}
		}
		if !found || p.closed {
			p.mu.Unlock()
			return
		}
		p.filling[key]++
		p.used += key.Limits.MemoryBytes
		p.mu.Unlock()

		item, err := p.eng.Start(ctx, want)

		p.mu.Lock()
		p.filling[key]--
		if err != nil || p.closed {
			p.used -= key.Limits.MemoryBytes
			p.mu.Unlock()
			if err == nil {
				p.eng.Discard(item)
			} else if ctx.Err() == nil {
				p.opts.Logger.Warn("warm pool: cannot start one", "image", want.Image, "error", err)
				select { // back off; the next kick or tick tries again
				case <-ctx.Done():
				case <-time.After(5 * time.Second):
				}
			}
			return
		}
		p.idle[key] = append(p.idle[key], waiting[T]{item: item, since: time.Now()})
		p.mu.Unlock()
	}
}

// recycle replaces items that have waited longer than MaxIdle.
func (p *Pool[T]) recycle() {
	p.mu.Lock()
	var old []T
	for k, ws := range p.idle {
		keep := ws[:0]
		for _, w := range ws {
			if time.Since(w.since) > p.opts.MaxIdle {
				old = append(old, w.item)
				p.used -= k.Limits.MemoryBytes
				continue
			}
			keep = append(keep, w)
		}
		p.idle[k] = keep
	}
	p.mu.Unlock()
	for _, item := range old {
		p.eng.Discard(item)
	}
}
