package docker

import (
	"context"
	"fmt"
	"strings"
	"time"

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

// install runs job's install step into a fresh cache volume. On failure the
// volume is removed and the step's result is returned.
func (e *Executor) install(ctx context.Context, job executor.Job) (string, *executor.Result, error) {
	inst := job.Install
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
	s := step{
		Job:        executor.InstallStep(job),
		mounts:     []mount.Mount{{Type: mount.TypeVolume, Source: name, Target: inst.OutputDir}},
		readyFile:  inst.OutputDir + "/" + depcache.ReadyFile,
		syncRemove: true,
	}
	if inst.Egress {
		if err := e.withEgress(ctx, &s); err != nil {
			drop()
			return "", nil, err
		}
	}
	res, err := e.runStep(ctx, s)
	if err != nil {
		drop()
		return "", nil, fmt.Errorf("install step: %w", err)
	}
	if failed := executor.InstallFailure(res); failed != nil {
		drop()
		return "", failed, nil
	}
	return name, nil, nil
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
