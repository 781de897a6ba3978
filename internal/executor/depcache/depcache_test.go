package depcache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runhost/runhost/internal/executor"
)

// memStore is a store in memory: the cache's logic is what is tested here;
// the Docker and Kubernetes stores are tested on their engines.
type memStore struct {
	mu      sync.Mutex
	stored  []Stored
	sizes   map[string]int64
	removed []string
}

func (m *memStore) List(context.Context) ([]Stored, error) { return m.stored, nil }

func (m *memStore) Sizes(context.Context) (map[string]int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int64{}
	for k, v := range m.sizes {
		out[k] = v
	}
	return out, nil
}

func (m *memStore) Remove(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.removed = append(m.removed, name)
	return nil
}

func installs(name string, n *atomic.Int32, gate <-chan struct{}) InstallFunc {
	return func(context.Context) (string, *executor.Result, error) {
		n.Add(1)
		if gate != nil {
			<-gate
		}
		return name, nil, nil
	}
}

func TestConcurrentRequestsShareOneInstall(t *testing.T) {
	c := New(&memStore{}, 10, 1<<30, nil)
	var n atomic.Int32
	gate := make(chan struct{})
	var wg sync.WaitGroup
	helds := make([]*Held, 5)
	for i := range helds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, failed, err := c.Acquire(context.Background(), "k", installs("vol-k", &n, gate))
			if err != nil || failed != nil {
				t.Errorf("acquire: %v %v", failed, err)
				return
			}
			helds[i] = h
		}()
	}
	time.Sleep(50 * time.Millisecond) // let the others queue behind the first
	close(gate)
	wg.Wait()
	if n.Load() != 1 {
		t.Fatalf("installs: %d, want 1", n.Load())
	}
	cached := 0
	for _, h := range helds {
		if h.Name != "vol-k" || !h.Verified {
			t.Fatalf("held %+v", h)
		}
		if h.Info.Cached {
			cached++
		}
	}
	if cached != 4 {
		t.Fatalf("%d of 5 were cached, want 4", cached)
	}
}

func TestFailedInstallLeavesNoEntry(t *testing.T) {
	c := New(&memStore{}, 10, 1<<30, nil)
	fail := func(context.Context) (string, *executor.Result, error) {
		return "", &executor.Result{ExitCode: 1, Stage: executor.StageInstall}, nil
	}
	_, failed, err := c.Acquire(context.Background(), "k", fail)
	if err != nil || failed == nil || failed.ExitCode != 1 {
		t.Fatalf("failed install: %+v %v", failed, err)
	}
	broken := errors.New("engine down")
	_, _, err = c.Acquire(context.Background(), "k", func(context.Context) (string, *executor.Result, error) { return "", nil, broken })
	if !errors.Is(err, broken) {
		t.Fatalf("error: %v", err)
	}
	if c.Len() != 0 {
		t.Fatalf("entries after failures: %d", c.Len())
	}
}

func TestEvictionDropsLeastRecentlyUsedUnheld(t *testing.T) {
	store := &memStore{sizes: map[string]int64{"a": 40, "b": 40, "c": 40}}
	c := New(store, 10, 100, nil)
	var n atomic.Int32
	ctx := context.Background()
	a, _, _ := c.Acquire(ctx, "a", installs("a", &n, nil))
	b, _, _ := c.Acquire(ctx, "b", installs("b", &n, nil))
	c.Release(b)
	time.Sleep(time.Millisecond)
	cc, _, _ := c.Acquire(ctx, "c", installs("c", &n, nil))
	c.Release(cc)
	c.evict(ctx) // 120 bytes > 100: the oldest unheld entry goes; a is held
	store.mu.Lock()
	removed := append([]string(nil), store.removed...)
	store.mu.Unlock()
	if len(removed) != 1 || removed[0] != "b" {
		t.Fatalf("removed %v, want [b]", removed)
	}
	c.Release(a)
}

func TestAdoptedEntriesKeepTheirVerification(t *testing.T) {
	store := &memStore{stored: []Stored{{Key: "old", Name: "vol-old"}, {Key: "", Name: "stray"}, {Key: "ok", Name: "vol-ok", Verified: true}}}
	c := New(store, 10, 1<<30, nil)
	never := func(context.Context) (string, *executor.Result, error) {
		t.Fatal("an adopted entry was installed again")
		return "", nil, nil
	}
	h, _, err := c.Acquire(context.Background(), "old", never)
	if err != nil || h.Verified || !h.Info.Cached {
		t.Fatalf("adopted unverified: %+v %v", h, err)
	}
	c.Release(h)
	c.MarkVerified("old")
	if h, _, _ = c.Acquire(context.Background(), "old", never); !h.Verified {
		t.Fatal("MarkVerified did not stick")
	}
	c.Discard(context.Background(), "old")
	if c.Len() != 1 || len(store.removed) != 1 || store.removed[0] != "vol-old" {
		t.Fatalf("after discard: %d entries, removed %v", c.Len(), store.removed)
	}
}
