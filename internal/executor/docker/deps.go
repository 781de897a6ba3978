package docker

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"

	"github.com/runhost/runhost/internal/executor"
)

// Labels on dependency cache volumes.
const (
	LabelDeps = "runhost.deps" // the install's content key
)

// readyFile marks a cache volume whose install finished successfully.
const readyFile = ".runhost-ready"

// depsCache keeps installed dependencies in named volumes, one per install
// key, bounded in count and bytes and evicted least recently used first.
// Concurrent requests for the same key share one install.
type depsCache struct {
	maxEntries int
	maxBytes   int64

	mu       sync.Mutex
	loaded   bool
	entries  map[string]*depsEntry
	installs map[string]*installCall
}

type depsEntry struct {
	key      string
	volume   string
	size     int64
	lastUsed time.Time
	users    int  // runs using the volume now; never evicted while > 0
	verified bool // its install is known to have finished (else checked on use)
}

type installCall struct {
	done   chan struct{}
	failed *executor.Result
	err    error
}

// acquired is a cache entry held for one run.
type acquired struct {
	entry *depsEntry
	info  executor.StepInfo
}

func newDepsCache(maxEntries int, maxBytes int64) *depsCache {
	if maxEntries <= 0 {
		maxEntries = 100
	}
	if maxBytes <= 0 {
		maxBytes = 4 << 30
	}
	return &depsCache{maxEntries: maxEntries, maxBytes: maxBytes, entries: map[string]*depsEntry{}, installs: map[string]*installCall{}}
}

// acquire returns the cache volume for job's install, installing it first if
// needed. A failed install is returned as a result for the caller, not an
// error. The entry must be released after the run.
func (d *depsCache) acquire(ctx context.Context, e *Executor, job executor.Job) (acquired, *executor.Result, error) {
	key := job.Install.Key
	if err := d.load(ctx, e); err != nil {
		return acquired{}, nil, err
	}
	for {
		d.mu.Lock()
		if ent, ok := d.entries[key]; ok {
			ent.users++
			ent.lastUsed = time.Now()
			d.mu.Unlock()
			return acquired{entry: ent, info: executor.StepInfo{Cached: true}}, nil, nil
		}
		call, running := d.installs[key]
		if !running {
			call = &installCall{done: make(chan struct{})}
			d.installs[key] = call
		}
		d.mu.Unlock()

		if running {
			// Another request is installing the same thing: wait for it.
			select {
			case <-call.done:
			case <-ctx.Done():
				return acquired{}, nil, ctx.Err()
			}
			if call.failed != nil {
				failed := *call.failed
				return acquired{}, &failed, nil
			}
			if call.err != nil {
				return acquired{}, nil, call.err
			}
			continue
		}

		start := time.Now()
		ent, failed, err := e.install(ctx, job)
		d.mu.Lock()
		delete(d.installs, key)
		if ent != nil {
			ent.users = 1
			d.entries[key] = ent
		}
		call.failed, call.err = failed, err
		d.mu.Unlock()
		close(call.done)
		if ent == nil {
			return acquired{}, failed, err
		}
		go d.evict(context.WithoutCancel(ctx), e)
		return acquired{entry: ent, info: executor.StepInfo{Duration: time.Since(start)}}, nil, nil
	}
}

func (d *depsCache) release(ent *depsEntry) {
	d.mu.Lock()
	ent.users--
	ent.lastUsed = time.Now()
	d.mu.Unlock()
}

func (d *depsCache) markVerified(key string) {
	d.mu.Lock()
	if ent, ok := d.entries[key]; ok {
		ent.verified = true
	}
	d.mu.Unlock()
}

// discard drops an entry whose volume turned out unusable.
func (d *depsCache) discard(ctx context.Context, eng engine, key string) {
	d.mu.Lock()
	ent, ok := d.entries[key]
	if ok {
		delete(d.entries, key)
	}
	d.mu.Unlock()
	if ok {
		_ = eng.VolumeRemove(context.WithoutCancel(ctx), ent.volume, true)
	}
}

// load adopts the cache volumes earlier hosts left, once. They are used only
// after their ready mark is seen.
func (d *depsCache) load(ctx context.Context, e *Executor) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.loaded {
		return nil
	}
	list, err := e.engine.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelDeps))})
	if err != nil {
		return engineError("list cache volumes", err)
	}
	for _, v := range list.Volumes {
		key := v.Labels[LabelDeps]
		if key == "" {
			continue
		}
		created, _ := time.Parse(time.RFC3339, v.CreatedAt)
		d.entries[key] = &depsEntry{key: key, volume: v.Name, lastUsed: created}
	}
	d.loaded = true
	return nil
}

// evict measures the cache volumes and removes the least recently used
// unused ones until the cache fits its bounds.
func (d *depsCache) evict(ctx context.Context, e *Executor) {
	usage, err := e.engine.DiskUsage(ctx, types.DiskUsageOptions{Types: []types.DiskUsageObject{types.VolumeObject}})
	if err != nil {
		e.log.Warn("measure dependency cache", "error", err)
		return
	}
	sizes := map[string]int64{}
	for _, v := range usage.Volumes {
		if v.UsageData != nil {
			sizes[v.Name] = v.UsageData.Size
		}
	}
	var victims []*depsEntry
	d.mu.Lock()
	var total int64
	all := make([]*depsEntry, 0, len(d.entries))
	for _, ent := range d.entries {
		if s, ok := sizes[ent.volume]; ok {
			ent.size = s
		}
		total += ent.size
		all = append(all, ent)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].lastUsed.Before(all[j].lastUsed) })
	count := len(all)
	for _, ent := range all {
		if count <= d.maxEntries && total <= d.maxBytes {
			break
		}
		if ent.users > 0 {
			continue
		}
		delete(d.entries, ent.key)
		victims = append(victims, ent)
		count--
		total -= ent.size
	}
	d.mu.Unlock()
	for _, ent := range victims {
		if err := e.engine.VolumeRemove(ctx, ent.volume, false); err != nil {
			e.log.Warn("evict dependency cache volume", "volume", ent.volume, "error", err)
			continue
		}
		e.log.Info("evicted dependency cache volume", "volume", ent.volume, "bytes", ent.size)
	}
}

// install runs job's install step into a fresh cache volume. On failure the
// volume is removed and the step's result is returned.
func (e *Executor) install(ctx context.Context, job executor.Job) (*depsEntry, *executor.Result, error) {
	inst := job.Install
	name := "runhost-deps-" + inst.Key[:32]
	labels := map[string]string{LabelManaged: "true", LabelDeps: inst.Key}
	if _, err := e.engine.VolumeCreate(ctx, volume.CreateOptions{Name: name, Labels: labels}); err != nil {
		return nil, nil, engineError("create cache volume", err)
	}
	drop := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), engineCallTimeout)
		defer cancel()
		_ = e.engine.VolumeRemove(rctx, name, true)
	}
	if err := e.ownVolume(ctx, name, inst.OutputDir, job.User); err != nil {
		drop()
		return nil, nil, err
	}
	stepLabels := map[string]string{"runhost.step": executor.StageInstall}
	for k, v := range job.Labels {
		stepLabels[k] = v
	}
	s := step{
		Job: executor.Job{
			ID:         job.ID + "-install",
			Image:      inst.Image,
			Command:    inst.Command,
			Env:        inst.Env,
			WorkDir:    executor.RunDir,
			Files:      inst.Files,
			User:       job.User,
			Labels:     stepLabels,
			Limits:     inst.Limits,
			OCIRuntime: inst.OCIRuntime,
		},
		mounts:     []mount.Mount{{Type: mount.TypeVolume, Source: name, Target: inst.OutputDir}},
		readyFile:  inst.OutputDir + "/" + readyFile,
		syncRemove: true,
	}
	if inst.Egress {
		if err := e.withEgress(ctx, &s); err != nil {
			drop()
			return nil, nil, err
		}
	}
	res, err := e.runStep(ctx, s)
	if err != nil {
		drop()
		return nil, nil, fmt.Errorf("install step: %w", err)
	}
	if res.ExitCode != 0 || res.TimedOut || res.OOMKilled {
		drop()
		res.Stage = executor.StageInstall
		res.Install = &executor.StepInfo{Duration: res.Duration}
		return nil, &res, nil
	}
	return &depsEntry{key: inst.Key, volume: name, lastUsed: time.Now(), verified: true}, nil, nil
}

// ownVolume gives a fresh volume's root directory to the run user, so an
// install running without privileges can write it. The engine copies a
// mount point's ownership from the image into an empty volume when a
// container is created; a one-directory image owned by the user does it.
func (e *Executor) ownVolume(ctx context.Context, vol, target, user string) error {
	uid, gid, _ := strings.Cut(user, ":")
	img := "runhost/owner:" + strings.NewReplacer("/", "_", ".", "_").Replace(strings.TrimPrefix(target, "/")) + "-" + uid + "-" + gid
	if _, err := e.engine.ImageInspect(ctx, img); err != nil {
		if err := importDirImage(ctx, e.engine, img, strings.TrimPrefix(target, "/"), uid, gid); err != nil {
			return err
		}
	}
	id, err := createContainer(ctx, e.engine, &container.Config{
		Image:  img,
		Cmd:    []string{"/none"},
		Labels: e.labels(nil, time.Minute),
	}, &container.HostConfig{
		NetworkMode: "none",
		Mounts:      []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: target}},
	}, uniqueName("runhost-owner-"))
	if err != nil {
		return engineError("prepare cache volume", err)
	}
	e.remove(ctx, id)
	return nil
}
