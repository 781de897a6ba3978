package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/depcache"
)

// Labels on dependency cache volumes.
const (
	LabelDeps = "runhost.deps" // the install's content key
)

// volumeStore keeps installed dependencies in named volumes, labelled with
// their install key.
type volumeStore struct{ eng engine }

// List returns the cache volumes earlier hosts left. They are used only
// after their ready mark is seen.
func (s volumeStore) List(ctx context.Context) ([]depcache.Stored, error) {
	list, err := s.eng.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelDeps))})
	if err != nil {
		return nil, engineError("list cache volumes", err)
	}
	var out []depcache.Stored
	for _, v := range list.Volumes {
		created, _ := time.Parse(time.RFC3339, v.CreatedAt)
		out = append(out, depcache.Stored{Key: v.Labels[LabelDeps], Name: v.Name, Created: created})
	}
	return out, nil
}

// Sizes measures the volumes through the engine's disk usage.
func (s volumeStore) Sizes(ctx context.Context) (map[string]int64, error) {
	usage, err := s.eng.DiskUsage(ctx, types.DiskUsageOptions{Types: []types.DiskUsageObject{types.VolumeObject}})
	if err != nil {
		return nil, err
	}
	sizes := map[string]int64{}
	for _, v := range usage.Volumes {
		if v.UsageData != nil {
			sizes[v.Name] = v.UsageData.Size
		}
	}
	return sizes, nil
}

// Remove removes a volume.
func (s volumeStore) Remove(ctx context.Context, name string) error {
	return s.eng.VolumeRemove(ctx, name, true)
}

// LabelInstallOutput marks the tmpfs volume an install writes its output to.
const LabelInstallOutput = "runhost.install-output"

// install runs job's install step and fills a fresh cache volume with its
// output. The step itself never sees the cache volume: it writes its output
// directory to a tmpfs volume of inst.DiskBytes (counted against its
// memory), so the cap holds while it writes; when it succeeded, init keeps
// its container (and so the tmpfs) alive while a second container, the copy
// step, copies the tree into the cache volume and marks it ready. On failure
// the cache volume is removed and the step's result is returned.
func (e *Executor) install(ctx context.Context, job executor.Job) (string, *executor.Result, error) {
	inst := job.Install
	if inst.DiskBytes <= 0 {
		return "", nil, errors.New("install step without a size for its output (RUNHOST_INSTALL_DISK_MB)")
	}
	name := "runhost-deps-" + inst.Key[:32]
	labels := map[string]string{LabelManaged: "true", LabelDeps: inst.Key}
	if _, err := e.engine.VolumeCreate(ctx, volume.CreateOptions{Name: name, Labels: labels}); err != nil {
		return "", nil, engineError("create cache volume", err)
	}
	drop := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), engineCallTimeout)
		defer cancel()
		_ = e.engine.VolumeRemove(rctx, name, true)
	}
	if err := e.ownVolume(ctx, name, inst.OutputDir, job.User); err != nil {
		drop()
		return "", nil, err
	}
	out, err := e.outputVolume(ctx, job)
	if err != nil {
		drop()
		return "", nil, err
	}
	var held []string // containers to remove before the output volume
	defer func() {
		for _, id := range held {
			e.remove(ctx, id)
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), engineCallTimeout)
		defer cancel()
		if err := e.engine.VolumeRemove(rctx, out, true); err != nil && !cerrdefs.IsNotFound(err) {
			e.log.Warn("remove install output volume (the sweep will retry)", "volume", out, "error", err)
		}
	}()

	s := step{
		Job:    executor.InstallStep(job),
		mounts: []mount.Mount{{Type: mount.TypeVolume, Source: out, Target: inst.OutputDir, VolumeOptions: &mount.VolumeOptions{NoCopy: true}}},
		hold:   true,
		capped: inst.OutputDir,
	}
	if inst.Egress {
		if err := e.withEgress(ctx, &s); err != nil {
			drop()
			return "", nil, err
		}
	}
	res, id, err := e.runHeld(ctx, s)
	if id != "" {
		held = append(held, id)
	}
	if err != nil {
		drop()
		return "", nil, fmt.Errorf("install step: %w", err)
	}
	if failed := executor.InstallFailure(res, inst); failed != nil {
		drop()
		return "", failed, nil
	}

	cp := step{
		Job: executor.InstallCopyStep(job, initDir+"/init"),
		mounts: []mount.Mount{
			{Type: mount.TypeVolume, Source: out, Target: executor.InstallSource, ReadOnly: true, VolumeOptions: &mount.VolumeOptions{NoCopy: true}},
			{Type: mount.TypeVolume, Source: name, Target: inst.OutputDir, VolumeOptions: &mount.VolumeOptions{NoCopy: true}},
		},
		readyFile:  inst.OutputDir + "/" + depcache.ReadyFile,
		syncRemove: true,
	}
	cres, err := e.runStep(ctx, cp)
	if err != nil {
		drop()
		return "", nil, fmt.Errorf("copy the install's output: %w", err)
	}
	if failed := executor.InstallFailure(cres, inst); failed != nil {
		drop()
		failed.Duration += res.Duration
		return "", failed, nil
	}
	return name, nil, nil
}

// outputVolume creates the tmpfs volume an install writes its output to:
// inst.DiskBytes, as many inodes as 4 KiB files would fill, owned by the
// run user, nosuid and nodev. The engine mounts it while a container uses
// it and drops its content when the last one stops.
func (e *Executor) outputVolume(ctx context.Context, job executor.Job) (string, error) {
	inst := job.Install
	uid, gid, _ := strings.Cut(job.User, ":")
	name := "runhost-out-" + job.ID
	opts := fmt.Sprintf("size=%d,nr_inodes=%d,uid=%s,gid=%s,mode=0755,nosuid,nodev", inst.DiskBytes, max(16384, inst.DiskBytes/4096), uid, gid)
	_, err := e.engine.VolumeCreate(ctx, volume.CreateOptions{
		Name:       name,
		Driver:     "local",
		DriverOpts: map[string]string{"type": "tmpfs", "device": "tmpfs", "o": opts},
		Labels:     e.labels(map[string]string{LabelInstallOutput: "true"}, inst.Limits.Timeout),
	})
	if err != nil {
		return "", engineError("create install output volume", err)
	}
	return name, nil
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
