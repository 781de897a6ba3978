// Package depcache keeps installed dependency sets, one entry per install
// key, bounded in count and bytes and evicted least recently used first.
// Concurrent requests for one key share one install. Where the entries
// live is a Store's business: Docker volumes, or directories on a shared
// Kubernetes volume.
package depcache

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/runhost/runhost/internal/executor"
)

// ReadyFile marks an entry whose install finished successfully: the
// install step's init creates it in the entry when the command exits 0.
const ReadyFile = ".runhost-ready"

// Store holds the entries.
type Store interface {
	// List returns the entries already stored (by earlier hosts, say).
	List(ctx context.Context) ([]Stored, error)
	// Sizes measures the entries, in bytes by name.
	Sizes(ctx context.Context) (map[string]int64, error)
	// Remove deletes an entry.
	Remove(ctx context.Context, name string) error
}

// Stored is an entry as its store knows it.
type Stored struct {
	Key      string
	Name     string
	Created  time.Time
	Verified bool // its ready mark was seen; else the run must check it
}

// InstallFunc installs into a new entry and returns its name. A failed
// install (the command's own failure) is a result for the caller, and
// leaves no entry.
type InstallFunc func(ctx context.Context) (name string, failed *executor.Result, err error)

// Cache is the in-memory index of a store's entries.
type Cache struct {
	store      Store
	maxEntries int
	maxBytes   int64
	log        hclog.Logger

	mu       sync.Mutex
	loaded   bool
	entries  map[string]*entry
	installs map[string]*installCall
}

type entry struct {
	key      string
	name     string
	size     int64
	lastUsed time.Time
	users    int // runs using the entry now; never evicted while > 0
	verified bool
}

type installCall struct {
	done   chan struct{}
	failed *executor.Result
	err    error
}

// Held is an entry held for one run; Release it afterwards.
type Held struct {
	Name     string
	Verified bool // false: check the ready mark before relying on it
	Info     executor.StepInfo
	ent      *entry
}

// New returns a cache over store holding at most maxEntries entries and
// maxBytes bytes (defaults: 100 and 4 GiB).
func New(store Store, maxEntries int, maxBytes int64, log hclog.Logger) *Cache {
	if maxEntries <= 0 {
		maxEntries = 100
	}
	if maxBytes <= 0 {
		maxBytes = 4 << 30
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Cache{store: store, maxEntries: maxEntries, maxBytes: maxBytes, log: log,
		entries: map[string]*entry{}, installs: map[string]*installCall{}}
}

// Acquire returns the entry for key, running install first if there is
// none. While one request installs a key, others for it wait and share its
// outcome.
func (c *Cache) Acquire(ctx context.Context, key string, install InstallFunc) (*Held, *executor.Result, error) {
	if err := c.load(ctx); err != nil {
		return nil, nil, err
	}
	for {
		c.mu.Lock()
		if ent, ok := c.entries[key]; ok {
			ent.users++
			ent.lastUsed = time.Now()
			h := &Held{Name: ent.name, Verified: ent.verified, Info: executor.StepInfo{Cached: true}, ent: ent}
			c.mu.Unlock()
			return h, nil, nil
		}
		call, running := c.installs[key]
		if !running {
			call = &installCall{done: make(chan struct{})}
			c.installs[key] = call
		}
		c.mu.Unlock()

		if running {
			select {
			case <-call.done:
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
			if call.failed != nil {
				failed := *call.failed
				return nil, &failed, nil
			}
			if call.err != nil {
				return nil, nil, call.err
			}
			continue
		}

		start := time.Now()
		name, failed, err := install(ctx)
		c.mu.Lock()
		delete(c.installs, key)
		var ent *entry
		if err == nil && failed == nil {
			ent = &entry{key: key, name: name, lastUsed: time.Now(), users: 1, verified: true}
			c.entries[key] = ent
		}
		call.failed, call.err = failed, err
		c.mu.Unlock()
		close(call.done)
		if ent == nil {
			return nil, failed, err
		}
		go c.evict(context.WithoutCancel(ctx))
		return &Held{Name: name, Verified: true, Info: executor.StepInfo{Duration: time.Since(start)}, ent: ent}, nil, nil
	}
}

// Release ends a run's hold on h.
func (c *Cache) Release(h *Held) {
	c.mu.Lock()
	h.ent.users--
	h.ent.lastUsed = time.Now()
	c.mu.Unlock()
}

// MarkVerified records that key's entry was seen complete.
func (c *Cache) MarkVerified(key string) {
	c.mu.Lock()
	if ent, ok := c.entries[key]; ok {
		ent.verified = true
	}
	c.mu.Unlock()
}

// Discard drops key's entry, which turned out unusable, and removes it.
func (c *Cache) Discard(ctx context.Context, key string) {
	c.mu.Lock()
	ent, ok := c.entries[key]
	if ok {
		delete(c.entries, key)
	}
	c.mu.Unlock()
	if ok {
		if err := c.store.Remove(context.WithoutCancel(ctx), ent.name); err != nil {
			c.log.Warn("remove unusable dependency cache entry", "entry", ent.name, "error", err)
		}
	}
}

// Len reports how many entries the cache holds.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// load adopts the store's entries, once.
func (c *Cache) load(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loaded {
		return nil
	}
	list, err := c.store.List(ctx)
	if err != nil {
		return err
	}
	for _, s := range list {
		if s.Key != "" {
			c.entries[s.Key] = &entry{key: s.Key, name: s.Name, lastUsed: s.Created, verified: s.Verified}
		}
	}
	c.loaded = true
	return nil
}

// evict measures the entries and removes the least recently used unused
// ones until the cache fits its bounds.
func (c *Cache) evict(ctx context.Context) {
	sizes, err := c.store.Sizes(ctx)
	if err != nil {
		c.log.Warn("measure dependency cache", "error", err)
		return
	}
	var victims []*entry
	c.mu.Lock()
	var total int64
	all := make([]*entry, 0, len(c.entries))
	for _, ent := range c.entries {
		if s, ok := sizes[ent.name]; ok {
			ent.size = s
		}
		total += ent.size
		all = append(all, ent)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].lastUsed.Before(all[j].lastUsed) })
	count := len(all)
	for _, ent := range all {
		if count <= c.maxEntries && total <= c.maxBytes {
			break
		}
		if ent.users > 0 {
			continue
		}
		delete(c.entries, ent.key)
		victims = append(victims, ent)
		count--
		total -= ent.size
	}
	c.mu.Unlock()
	for _, ent := range victims {
		if err := c.store.Remove(ctx, ent.name); err != nil {
			c.log.Warn("evict dependency cache entry", "entry", ent.name, "error", err)
			continue
		}
		c.log.Info("evicted dependency cache entry", "entry", ent.name, "bytes", ent.size)
	}
}
