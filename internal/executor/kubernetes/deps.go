package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/depcache"
	"github.com/runhost/runhost/internal/executor/frames"
	"github.com/runhost/runhost/internal/initproc"
)

// CacheVolume is where installed dependencies are kept: a
// PersistentVolumeClaim in the run namespace (ReadWriteMany where runs land
// on several nodes) that the host sees at Root. Each install key is the
// directory deps/<key>: an install pod writes a fresh deps/<key>.tmp-<id>,
// the host renames it into place once its ready mark is there, and run
// pods mount deps/<key> read-only. The host measures, evicts and cleans up
// through Root.
type CacheVolume struct {
	Claim      string // empty: no installs on Kubernetes
	Root       string
	MaxEntries int
	MaxBytes   int64
}

func (c CacheVolume) depsDir() string { return filepath.Join(c.Root, "deps") }

// depsSubPath is an entry's sub-path in the claim.
func depsSubPath(name string) string { return "deps/" + name }

// tmpMark separates a key from the install attempt in an unfinished entry.
const tmpMark = ".tmp-"

// staleTmp is how old an unfinished entry must be before it is removed as
// a crashed install's leftover.
const staleTmp = 3 * time.Hour

// dirStore is the cache's entries as directories of the cache volume.
type dirStore struct{ dir string }

// List returns the finished entries and removes stale unfinished ones.
func (s dirStore) List(context.Context) ([]depcache.Stored, error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("dependency cache: %w", err)
	}
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("dependency cache: %w", err)
	}
	var out []depcache.Stored
	for _, de := range des {
		info, err := de.Info()
		if err != nil || !de.IsDir() {
			continue
		}
		name := de.Name()
		if strings.Contains(name, tmpMark) {
			if time.Since(info.ModTime()) > staleTmp {
				_ = os.RemoveAll(filepath.Join(s.dir, name))
			}
			continue
		}
		if validKey(name) && s.ready(name) {
			out = append(out, depcache.Stored{Key: name, Name: name, Created: info.ModTime(), Verified: true})
		}
	}
	return out, nil
}

// Sizes adds up the bytes of each entry's files.
func (s dirStore) Sizes(context.Context) (map[string]int64, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	sizes := map[string]int64{}
	for _, de := range des {
		var n int64
		_ = filepath.WalkDir(filepath.Join(s.dir, de.Name()), func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if info, err := d.Info(); err == nil {
					n += info.Size()
				}
			}
			return nil
		})
		sizes[de.Name()] = n
	}
	return sizes, nil
}

// Remove deletes an entry.
func (s dirStore) Remove(_ context.Context, name string) error {
	if name == "" || strings.ContainsAny(name, "/\\") {
		return fmt.Errorf("not a cache entry: %q", name)
	}
	return os.RemoveAll(filepath.Join(s.dir, name))
}

// ready reports whether an entry's install finished.
func (s dirStore) ready(name string) bool {
	_, err := os.Stat(filepath.Join(s.dir, name, depcache.ReadyFile))
	return err == nil
}

// validKey accepts the policy's install keys (hex content hashes): they
// become directory names.
func validKey(k string) bool {
	if len(k) < 16 || len(k) > 128 {
		return false
	}
	for _, r := range k {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// acquireDeps returns the cache entry of job's install, installing it
// first if needed. An entry that lost its ready mark (removed by another
// host's eviction, say) is dropped and installed again, once.
func (e *Executor) acquireDeps(ctx context.Context, job executor.Job) (*depcache.Held, *executor.Result, error) {
	if e.deps == nil {
		return nil, nil, fmt.Errorf("%w: dependency installs (set RUNHOST_K8S_CACHE_CLAIM and RUNHOST_K8S_CACHE_ROOT)", ErrUnsupported)
	}
	key := job.Install.Key
	if !validKey(key) {
		return nil, nil, fmt.Errorf("install key %q is not a content hash", key)
	}
	install := func(ctx context.Context) (string, *executor.Result, error) { return e.install(ctx, job) }
	store := dirStore{dir: e.cfg.Cache.depsDir()}
	for attempt := 0; ; attempt++ {
		held, failed, err := e.deps.Acquire(ctx, key, install)
		if err != nil || failed != nil {
			return nil, failed, err
		}
		if store.ready(held.Name) || attempt > 0 {
			return held, nil, nil
		}
		e.deps.Release(held)
		e.deps.Discard(ctx, key)
	}
}

// install runs job's install step in a pod that writes a fresh directory
// of the cache volume, and publishes the directory under the install's key
// when the step succeeded. A failed step's result is returned; its
// directory is removed.
func (e *Executor) install(ctx context.Context, job executor.Job) (string, *executor.Result, error) {
	inst := job.Install
	store := dirStore{dir: e.cfg.Cache.depsDir()}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	tmp := inst.Key + tmpMark + hex.EncodeToString(suffix[:])
	dir := filepath.Join(store.dir, tmp)
	if err := makeWritable(dir, job.User); err != nil {
		return "", nil, fmt.Errorf("dependency cache: %w", err)
	}
	drop := func() { _ = os.RemoveAll(dir) }

	step := executor.InstallStep(job)
	if inst.Egress {
		addr, err := e.egressAddr(ctx)
		if err != nil {
			drop()
			return "", nil, err
		}
		step.Env = executor.MergeEnv(step.Env, executor.ProxyEnv(addr))
	}
	ready := inst.OutputDir + "/" + depcache.ReadyFile
	frame, err := frames.Encode(step, func(h *initproc.Header) { h.ReadyFile = ready })
	if err != nil {
		drop()
		return "", nil, err
	}
	pod, err := e.stepPodFor(step, claimMount{volume: "deps", claim: e.cfg.Cache.Claim, subPath: depsSubPath(tmp), target: inst.OutputDir})
	if err != nil {
		drop()
		return "", nil, err
	}
	res, err := e.runPod(ctx, pod, step, frame)
	if err != nil {
		drop()
		return "", nil, fmt.Errorf("install step: %w", err)
	}
	if failed := executor.InstallFailure(res); failed != nil {
		drop()
		return "", failed, nil
	}
	if !store.ready(tmp) {
		drop()
		return "", nil, errors.New("install step: it succeeded but its output has no ready mark (is the cache claim the volume at RUNHOST_K8S_CACHE_ROOT?)")
	}
	// Publish. A concurrent host may have published the same key first:
	// then its entry is as good as this one.
	if err := os.Rename(dir, filepath.Join(store.dir, inst.Key)); err != nil {
		drop()
		if !store.ready(inst.Key) {
			return "", nil, fmt.Errorf("dependency cache: publish: %w", err)
		}
	}
	return inst.Key, nil, nil
}

// makeWritable creates dir for an install step running as user (uid:gid).
// A host running as root hands it over; any other host opens it up (a pod
// mounts only its own entry, so no other run can reach it).
func makeWritable(dir, user string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	uid, gid := ids(user)
	if os.Getuid() == 0 {
		return os.Chown(dir, int(uid), int(gid))
	}
	if int64(os.Getuid()) != uid {
		return os.Chmod(dir, 0o777)
	}
	return nil
}
