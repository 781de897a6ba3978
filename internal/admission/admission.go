// Package admission decides whether a run may start now, must wait, or is
// refused. Runs in flight are capped; the rest wait in a bounded queue for
// at most a maximum time, and slots are handed out round-robin between API
// keys so one busy client cannot starve the others. Optionally each key has
// its own concurrency cap and a token-bucket rate.
package admission

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// ErrBusy means the host is full: the queue is full or the wait was too
// long. ErrRateLimited means the key used up its rate. Both are 429s.
var (
	ErrBusy        = errors.New("too many runs")
	ErrRateLimited = errors.New("rate limit exceeded")
)

// RefusedError says why and when to retry.
type RefusedError struct {
	Err        error
	Reason     string
	RetryAfter time.Duration
}

func (e *RefusedError) Error() string { return fmt.Sprintf("%v: %s", e.Err, e.Reason) }
func (e *RefusedError) Unwrap() error { return e.Err }

// Config sets the limits. Zero per-key values mean no per-key limit.
type Config struct {
	MaxInFlight int
	MaxQueue    int
	MaxWait     time.Duration
	KeyInFlight int     // per key
	KeyRate     float64 // runs per second per key
	KeyBurst    int
	now         func() time.Time // tests
}

// Controller admits runs.
type Controller struct {
	cfg Config

	mu       sync.Mutex
	inFlight int
	byKey    map[string]int
	queues   map[string][]*waiter
	ring     []string // keys with waiters, in round-robin order
	next     int
	waiting  int
	buckets  map[string]*bucket
}

type waiter struct {
	key     string
	ready   chan struct{}
	granted bool
}

// New returns a controller.
func New(cfg Config) *Controller {
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if cfg.KeyBurst <= 0 {
		cfg.KeyBurst = max(1, int(math.Ceil(cfg.KeyRate)))
	}
	return &Controller{cfg: cfg, byKey: map[string]int{}, queues: map[string][]*waiter{}, buckets: map[string]*bucket{}}
}

// Stats are the controller's current numbers.
type Stats struct {
	InFlight int
	Queued   int
}

// Stats reports runs in flight and waiting.
func (c *Controller) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{InFlight: c.inFlight, Queued: c.waiting}
}

// Acquire waits for a slot for key. The returned release must be called
// exactly once when the run is over.
func (c *Controller) Acquire(ctx context.Context, key string) (release func(), err error) {
	c.mu.Lock()
	if c.cfg.KeyRate > 0 {
		if wait := c.bucket(key).take(c.cfg.now()); wait > 0 {
			c.mu.Unlock()
			return nil, &RefusedError{Err: ErrRateLimited, Reason: fmt.Sprintf("key %s may start %g runs per second", key, c.cfg.KeyRate), RetryAfter: wait}
		}
	}
	if c.waiting == 0 && c.canStart(key) {
		c.start(key)
		c.mu.Unlock()
		return c.releaser(key), nil
	}
	if c.waiting >= c.cfg.MaxQueue {
		c.mu.Unlock()
		return nil, &RefusedError{Err: ErrBusy, Reason: fmt.Sprintf("%d runs in flight and %d waiting", c.cfg.MaxInFlight, c.cfg.MaxQueue), RetryAfter: time.Second}
	}
	w := &waiter{key: key, ready: make(chan struct{})}
	if len(c.queues[key]) == 0 {
		c.ring = append(c.ring, key)
	}
	c.queues[key] = append(c.queues[key], w)
	c.waiting++
	c.mu.Unlock()

	timer := time.NewTimer(c.cfg.MaxWait)
	defer timer.Stop()
	select {
	case <-w.ready:
		return c.releaser(key), nil
	case <-timer.C:
		err = &RefusedError{Err: ErrBusy, Reason: fmt.Sprintf("no slot within %s", c.cfg.MaxWait), RetryAfter: time.Second}
	case <-ctx.Done():
		err = ctx.Err()
	}
	c.mu.Lock()
	if w.granted { // granted while we gave up: hand the slot on
		c.mu.Unlock()
		c.releaser(key)()
		return nil, err
	}
	c.remove(w)
	c.mu.Unlock()
	return nil, err
}

func (c *Controller) canStart(key string) bool {
	return c.inFlight < c.cfg.MaxInFlight && (c.cfg.KeyInFlight <= 0 || c.byKey[key] < c.cfg.KeyInFlight)
}

func (c *Controller) start(key string) {
	c.inFlight++
	c.byKey[key]++
}

// releaser returns a function that frees the slot once, then hands free
// slots to waiters, one key at a time in turn.
func (c *Controller) releaser(key string) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.inFlight--
			if c.byKey[key]--; c.byKey[key] == 0 {
				delete(c.byKey, key)
			}
			c.dispatch()
		})
	}
}

// dispatch grants slots to waiting runs, round-robin between keys.
func (c *Controller) dispatch() {
	for c.inFlight < c.cfg.MaxInFlight && len(c.ring) > 0 {
		granted := false
		for range len(c.ring) {
			if c.next >= len(c.ring) {
				c.next = 0
			}
			key := c.ring[c.next]
			if !c.canStart(key) {
				c.next++
				continue
			}
			w := c.queues[key][0]
			c.remove(w) // may shrink the ring; c.next then points at the following key
			if len(c.queues[key]) > 0 {
				c.next++
			}
			w.granted = true
			c.start(key)
			close(w.ready)
			granted = true
			break
		}
		if !granted {
			return // every waiting key is at its own limit
		}
	}
}

// remove takes w out of its queue (and its key out of the ring when empty).
func (c *Controller) remove(w *waiter) {
	q := c.queues[w.key]
	for i, x := range q {
		if x == w {
			q = append(q[:i], q[i+1:]...)
			c.waiting--
			break
		}
	}
	if len(q) > 0 {
		c.queues[w.key] = q
		return
	}
	delete(c.queues, w.key)
	for i, k := range c.ring {
		if k == w.key {
			c.ring = append(c.ring[:i], c.ring[i+1:]...)
			if i < c.next {
				c.next--
			}
			break
		}
	}
}

func (c *Controller) bucket(key string) *bucket {
	b, ok := c.buckets[key]
	if !ok {
		b = &bucket{tokens: float64(c.cfg.KeyBurst), rate: c.cfg.KeyRate, burst: float64(c.cfg.KeyBurst), last: c.cfg.now()}
		c.buckets[key] = b
	}
	return b
}

// bucket is a token bucket: rate tokens a second, at most burst.
type bucket struct {
	tokens, rate, burst float64
	last                time.Time
}

// take uses a token, or says how long until one is there.
func (b *bucket) take(now time.Time) time.Duration {
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}
