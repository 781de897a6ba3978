package admission

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestCapAndQueue(t *testing.T) {
	c := New(Config{MaxInFlight: 2, MaxQueue: 1, MaxWait: time.Minute})
	r1, err := c.Acquire(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := c.Acquire(context.Background(), "a")
	got := make(chan error, 1)
	go func() {
		r, err := c.Acquire(context.Background(), "a")
		if err == nil {
			defer r()
		}
		got <- err
	}()
	waitFor(t, func() bool { return c.Stats().Queued == 1 })

	// The queue is full: the next one is refused at once, with a retry hint.
	_, err = c.Acquire(context.Background(), "b")
	var refused *RefusedError
	if !errors.As(err, &refused) || !errors.Is(err, ErrBusy) || refused.RetryAfter <= 0 {
		t.Fatalf("full queue: %v", err)
	}
	r1()
	if err := <-got; err != nil {
		t.Fatalf("queued run: %v", err)
	}
	r2()
	r1() // releasing twice frees one slot only
	if s := c.Stats(); s.InFlight != 0 || s.Queued != 0 {
		t.Fatalf("stats after all released: %+v", s)
	}
}

func TestMaxWait(t *testing.T) {
	c := New(Config{MaxInFlight: 1, MaxQueue: 5, MaxWait: 50 * time.Millisecond})
	r, _ := c.Acquire(context.Background(), "a")
	defer r()
	if _, err := c.Acquire(context.Background(), "a"); !errors.Is(err, ErrBusy) {
		t.Fatalf("waited past the maximum: %v", err)
	}
	if s := c.Stats(); s.Queued != 0 {
		t.Fatalf("a timed-out waiter stayed queued: %+v", s)
	}
}

func TestCancelledWaiterLeavesNoTrace(t *testing.T) {
	c := New(Config{MaxInFlight: 1, MaxQueue: 5, MaxWait: time.Minute})
	r, _ := c.Acquire(context.Background(), "a")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, err := c.Acquire(ctx, "b"); done <- err }()
	waitFor(t, func() bool { return c.Stats().Queued == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	r()
	if s := c.Stats(); s.InFlight != 0 || s.Queued != 0 {
		t.Fatalf("%+v", s)
	}
}

// One key floods the queue; another key's single run is still served next.
func TestFairBetweenKeys(t *testing.T) {
	c := New(Config{MaxInFlight: 1, MaxQueue: 100, MaxWait: time.Minute})
	first, _ := c.Acquire(context.Background(), "busy")
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	enqueue := func(key string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.Acquire(context.Background(), key)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, key)
			mu.Unlock()
			r()
		}()
	}
	for i := range 5 {
		enqueue("busy")
		waitFor(t, func() bool { return c.Stats().Queued == i+1 })
	}
	enqueue("quiet")
	waitFor(t, func() bool { return c.Stats().Queued == 6 })
	first()
	wg.Wait()
	pos := -1
	for i, k := range order {
		if k == "quiet" {
			pos = i
		}
	}
	if pos > 1 {
		t.Fatalf("quiet key served at position %d of %v; round-robin serves it within the first two", pos, order)
	}
}

func TestPerKeyConcurrency(t *testing.T) {
	c := New(Config{MaxInFlight: 10, MaxQueue: 10, MaxWait: 50 * time.Millisecond, KeyInFlight: 1})
	r, _ := c.Acquire(context.Background(), "a")
	defer r()
	if _, err := c.Acquire(context.Background(), "a"); !errors.Is(err, ErrBusy) {
		t.Fatalf("second run of a key at its limit: %v", err)
	}
	r2, err := c.Acquire(context.Background(), "b")
	if err != nil {
		t.Fatalf("another key: %v", err)
	}
	r2()
}

func TestRate(t *testing.T) {
	now := time.Unix(0, 0)
	c := New(Config{MaxInFlight: 10, MaxQueue: 10, MaxWait: time.Second, KeyRate: 2, KeyBurst: 2, now: func() time.Time { return now }})
	for range 2 {
		r, err := c.Acquire(context.Background(), "a")
		if err != nil {
			t.Fatal(err)
		}
		r()
	}
	_, err := c.Acquire(context.Background(), "a")
	var refused *RefusedError
	if !errors.As(err, &refused) || !errors.Is(err, ErrRateLimited) || refused.RetryAfter != 500*time.Millisecond {
		t.Fatalf("over the rate: %v", err)
	}
	if r, err := c.Acquire(context.Background(), "b"); err != nil {
		t.Fatalf("other keys have their own bucket: %v", err)
	} else {
		r()
	}
	now = now.Add(500 * time.Millisecond)
	if r, err := c.Acquire(context.Background(), "a"); err != nil {
		t.Fatalf("after refill: %v", err)
	} else {
		r()
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}
