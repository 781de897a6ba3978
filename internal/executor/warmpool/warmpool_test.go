package warmpool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/runhost/runhost/internal/executor"
)

// fakeEngine stands in for Docker or Kubernetes: the pool's bookkeeping is
// pure logic (the executors' end-to-end suites run it on real engines).
type fakeEngine struct {
	mu        sync.Mutex
	started   int
	discarded []string
	fail      bool
}

type item struct {
	name string
	dead bool
}

func (f *fakeEngine) Start(_ context.Context, t executor.PoolTarget) (*item, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return nil, errors.New("engine down")
	}
	f.started++
	return &item{name: fmt.Sprintf("%s#%d", t.Image, f.started)}, nil
}

func (f *fakeEngine) Discard(it *item) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.discarded = append(f.discarded, it.name)
}

func (f *fakeEngine) Dead(it *item) bool { return it.dead }

var limits = executor.Limits{MemoryBytes: 256 << 20, NanoCPUs: 1e9, Timeout: 10 * time.Second, OutputBytes: 1 << 20}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestTakeServesOnlyWhatWasStartedFor(t *testing.T) {
	eng := &fakeEngine{}
	p := New[*item](eng, []executor.PoolTarget{{Image: "py", Limits: limits, Size: 2}}, 1<<30, Options{})
	p.Start()
	t.Cleanup(p.Close)
	eventually(t, "the pool to fill", func() bool { return p.Stats().Idle == 2 })

	other := limits
	other.Timeout, other.OutputBytes = time.Minute, 5 // these do not matter
	smaller := limits
	smaller.MemoryBytes = 128 << 20
	tests := []struct {
		name string
		key  Key
		hit  bool
	}{
		{"other image", KeyOf("node", "", limits), false},
		{"other memory", KeyOf("py", "", smaller), false},
		{"other OCI runtime", KeyOf("py", "runsc", limits), false},
		{"timeout and output cap differ", KeyOf("py", "", other), true},
	}
	for _, tt := range tests {
		_, ok := p.Take(tt.key)
		if ok != tt.hit {
			t.Errorf("%s: took %v, want %v", tt.name, ok, tt.hit)
		}
	}
	if s := p.Stats(); s.Hits != 1 || s.Misses != 0 {
		t.Errorf("stats %+v: jobs no target fits are not misses", s)
	}
	eventually(t, "the pool to refill", func() bool { return p.Stats().Idle == 2 })
}

func TestDeadItemsAreDiscardedNotServed(t *testing.T) {
	eng := &fakeEngine{}
	p := New[*item](eng, []executor.PoolTarget{{Image: "py", Limits: limits, Size: 1}}, 1<<30, Options{})
	key := KeyOf("py", "", limits)
	dead := &item{name: "dead", dead: true}
	p.idle[key] = []waiting[*item]{{item: dead, since: time.Now()}}
	p.used = limits.MemoryBytes
	if _, ok := p.Take(key); ok {
		t.Fatal("a dead item was served")
	}
	eventually(t, "the dead item to be discarded", func() bool {
		eng.mu.Lock()
		defer eng.mu.Unlock()
		return len(eng.discarded) == 1 && eng.discarded[0] == "dead"
	})
	if s := p.Stats(); s.Misses != 1 || p.used != 0 {
		t.Errorf("stats %+v, budget in use %d", s, p.used)
	}
}

func TestBudgetBoundsThePool(t *testing.T) {
	eng := &fakeEngine{}
	// Room for three of 256 MiB, though the target asks for ten.
	p := New[*item](eng, []executor.PoolTarget{{Image: "py", Limits: limits, Size: 10}}, 3*limits.MemoryBytes+1, Options{})
	p.Start()
	eventually(t, "the pool to fill to its budget", func() bool { return p.Stats().Idle == 3 })
	time.Sleep(50 * time.Millisecond)
	if n := p.Stats().Idle; n != 3 {
		t.Fatalf("%d idle, want 3 (the budget)", n)
	}
	p.Close()
	if len(eng.discarded) != 3 || p.Stats().Idle != 0 {
		t.Errorf("after Close: discarded %v, idle %d", eng.discarded, p.Stats().Idle)
	}
}

func TestRecycleReplacesItemsThatWaitedTooLong(t *testing.T) {
	eng := &fakeEngine{}
	p := New[*item](eng, []executor.PoolTarget{{Image: "py", Limits: limits, Size: 1}}, 1<<30, Options{MaxIdle: time.Minute})
	key := KeyOf("py", "", limits)
	p.idle[key] = []waiting[*item]{{item: &item{name: "old"}, since: time.Now().Add(-2 * time.Minute)}, {item: &item{name: "fresh"}, since: time.Now()}}
	p.used = 2 * limits.MemoryBytes
	p.recycle()
	if len(eng.discarded) != 1 || eng.discarded[0] != "old" || len(p.idle[key]) != 1 || p.used != limits.MemoryBytes {
		t.Errorf("discarded %v, idle %d, used %d", eng.discarded, len(p.idle[key]), p.used)
	}
}

func TestAFailingEngineIsNotAHotLoop(t *testing.T) {
	eng := &fakeEngine{fail: true}
	p := New[*item](eng, []executor.PoolTarget{{Image: "py", Limits: limits, Size: 2}}, 1<<30, Options{})
	p.Start()
	time.Sleep(100 * time.Millisecond)
	p.Close() // returns although the filler is backing off
	if s := p.Stats(); s.Idle != 0 || p.used != 0 {
		t.Errorf("stats %+v, used %d after failed starts", s, p.used)
	}
}

func TestNilPoolHoldsNothing(t *testing.T) {
	var p *Pool[*item]
	if _, ok := p.Take(KeyOf("py", "", limits)); ok || !p.Empty() || p.Stats() != (Stats{}) {
		t.Error("a nil pool served something")
	}
	p.Start()
	p.Close()
}
