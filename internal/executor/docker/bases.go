package docker

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"
	"github.com/hashicorp/go-hclog"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/depcache"
	"github.com/runhost/runhost/internal/executor/imagearchive"
)

// LabelBase marks a volume holding a base image exported for builds, as
// an OCI image layout; its value is the image ID's hex digits.
const LabelBase = "runhost.base"

// baseMount is where a helper container sees a base volume.
const baseMount = "/base"

// basesCacheEntries bounds the base volumes kept, besides their bytes.
const basesCacheEntries = 64

// baseStore keeps exported base images in named volumes, one per image ID.
type baseStore struct{ eng engine }

// List returns the base volumes earlier hosts left; each is checked for
// its layout index on first use.
func (s baseStore) List(ctx context.Context) ([]depcache.Stored, error) {
	list, err := s.eng.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelBase))})
	if err != nil {
		return nil, engineError("list base volumes", err)
	}
	var out []depcache.Stored
	for _, v := range list.Volumes {
		hex := v.Labels[LabelBase]
		if len(hex) != 64 || v.Name != baseVolume("sha256:"+hex) {
			continue
		}
		created, _ := time.Parse(time.RFC3339, v.CreatedAt)
		out = append(out, depcache.Stored{Key: "sha256:" + hex, Name: v.Name, Created: created})
	}
	return out, nil
}

// Sizes measures the volumes through the engine's disk usage.
func (s baseStore) Sizes(ctx context.Context) (map[string]int64, error) {
	usage, err := s.eng.DiskUsage(ctx, types.DiskUsageOptions{Types: []types.DiskUsageObject{types.VolumeObject}})
	if err != nil {
		return nil, err
	}
	sizes := map[string]int64{}
	for _, v := range usage.Volumes {
		if v.UsageData != nil && v.Labels[LabelBase] != "" {
			sizes[v.Name] = v.UsageData.Size
		}
	}
	return sizes, nil
}

// Remove removes a volume.
func (s baseStore) Remove(ctx context.Context, name string) error {
	return s.eng.VolumeRemove(ctx, name, true)
}

// baseVolume is the volume holding image id (sha256:<hex>).
func baseVolume(id string) string {
	return "runhost-base-" + strings.TrimPrefix(id, "sha256:")
}

// bases is the cache of exported base images: a read-only volume per
// image ID holding it as an OCI layout, made once and shared by every
// build that names the image (least recently used go first, never while
// a build uses them).
type bases struct {
	eng   engine
	cache *depcache.Cache

	mu        sync.Mutex
	manifests map[string]string // image ID → its layout's manifest digest
}

func newBases(eng engine, maxBytes int64, log hclog.Logger) *bases {
	return &bases{
		eng:       eng,
		cache:     depcache.New(baseStore{eng}, basesCacheEntries, maxBytes, log.Named("bases")),
		manifests: map[string]string{},
	}
}

// heldBase is a base volume a build holds.
type heldBase struct {
	id       string // sha256:<hex>
	volume   string
	manifest string // the layout's manifest digest
	held     *depcache.Held
}

// acquire returns the volume holding image id, exporting it first if no
// volume holds it yet. helperImage is an image the helper containers that
// reach the volumes can be created from (never started).
func (e *Executor) acquireBase(ctx context.Context, id, helperImage string) (heldBase, error) {
	b := e.builder.bases
	for attempt := 0; ; attempt++ {
		held, _, err := b.cache.Acquire(ctx, id, func(ctx context.Context) (string, *executor.Result, error) {
			name, err := e.exportBase(ctx, id, helperImage)
			return name, nil, err
		})
		if err != nil {
			return heldBase{}, fmt.Errorf("base image %s: %w", id, err)
		}
		b.mu.Lock()
		manifest, ok := b.manifests[id]
		b.mu.Unlock()
		if !ok {
			// A volume an earlier host made: its index is its ready mark.
			manifest, err = e.layoutManifest(ctx, held.Name, helperImage)
			if err != nil {
				b.cache.Release(held)
				if errors.Is(err, errNotReady) && attempt == 0 {
					b.cache.Discard(ctx, id)
					continue
				}
				return heldBase{}, fmt.Errorf("base image %s: %w", id, err)
			}
			b.mu.Lock()
			b.manifests[id] = manifest
			b.mu.Unlock()
		}
		return heldBase{id: id, volume: held.Name, manifest: manifest, held: held}, nil
	}
}

// forgetBase drops the cache's entry for the image whose ID's hex is hex,
// and removes its volume: it turned out incomplete or gone.
func (e *Executor) forgetBase(ctx context.Context, hex string) {
	b := e.builder.bases
	b.mu.Lock()
	delete(b.manifests, "sha256:"+hex)
	b.mu.Unlock()
	b.cache.Discard(ctx, "sha256:"+hex)
}

// releaseBase ends a build's hold on a base volume.
func (e *Executor) releaseBase(h heldBase) {
	e.builder.bases.cache.Release(h.held)
}

// exportBase saves image id from the engine into a new volume as an OCI
// layout, in one pass: ImageSave → imagearchive.ToOCILayout → the volume
// (through a helper container that is never started). The image's default
// user is cleared on the way (RUN steps run as root in the sandbox).
func (e *Executor) exportBase(ctx context.Context, id, helperImage string) (string, error) {
	name := baseVolume(id)
	labels := map[string]string{LabelManaged: "true", LabelBase: strings.TrimPrefix(id, "sha256:")}
	if _, err := e.engine.VolumeCreate(ctx, volume.CreateOptions{Name: name, Labels: labels}); err != nil {
		return "", engineError("create base volume", err)
	}
	ok := false
	defer func() {
		if !ok {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), engineCallTimeout)
			defer cancel()
			_ = e.engine.VolumeRemove(rctx, name, true)
		}
	}()
	helper, err := e.baseHelper(ctx, name, helperImage, false)
	if err != nil {
		return "", err
	}
	defer e.remove(ctx, helper)

	saved, err := e.engine.ImageSave(ctx, []string{id})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return "", fmt.Errorf("%w: %s", executor.ErrImageMissing, id)
		}
		return "", engineError("save base image", err)
	}
	defer saved.Close()
	pr, pw := io.Pipe()
	manifest := make(chan string, 1)
	converted := make(chan error, 1)
	go func() {
		d, err := imagearchive.ToOCILayout(saved, pw, id, imagearchive.RunAsRoot)
		manifest <- d
		pw.CloseWithError(err)
		converted <- err
	}()
	copyErr := e.engine.CopyToContainer(ctx, helper, baseMount, pr, container.CopyToContainerOptions{})
	pr.CloseWithError(errors.New("the engine stopped reading"))
	if err := <-converted; err != nil {
		return "", fmt.Errorf("export base image %s: %w", id, err)
	}
	if copyErr != nil {
		return "", engineError("write base volume", copyErr)
	}
	e.builder.bases.mu.Lock()
	e.builder.bases.manifests[id] = <-manifest
	e.builder.bases.mu.Unlock()
	ok = true
	return name, nil
}

// layoutManifest reads the manifest digest from the layout index in a
// base volume; errNotReady if the index is missing (an export that never
// finished).
func (e *Executor) layoutManifest(ctx context.Context, vol, helperImage string) (string, error) {
	helper, err := e.baseHelper(ctx, vol, helperImage, true)
	if err != nil {
		return "", err
	}
	defer e.remove(ctx, helper)
	rc, _, err := e.engine.CopyFromContainer(ctx, helper, baseMount+"/"+imagearchive.LayoutIndex)
	if cerrdefs.IsNotFound(err) {
		return "", errNotReady
	}
	if err != nil {
		return "", engineError("read base volume", err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	if _, err := tr.Next(); err != nil {
		return "", fmt.Errorf("read base volume index: %w", err)
	}
	index, err := io.ReadAll(io.LimitReader(tr, 1<<20))
	if err != nil {
		return "", fmt.Errorf("read base volume index: %w", err)
	}
	return imagearchive.ManifestDigest(index)
}

// baseHelper creates (never starts) a container with vol at baseMount, for
// the engine's copy API to reach the volume.
func (e *Executor) baseHelper(ctx context.Context, vol, helperImage string, readOnly bool) (string, error) {
	id, err := createContainer(ctx, e.engine, &container.Config{
		Image:  helperImage,
		Cmd:    []string{"/none"},
		User:   "1000:1000",
		Labels: e.labels(nil, time.Hour),
	}, &container.HostConfig{
		NetworkMode: "none",
		Mounts: []mount.Mount{{
			Type: mount.TypeVolume, Source: vol, Target: baseMount, ReadOnly: readOnly,
			VolumeOptions: &mount.VolumeOptions{NoCopy: true},
		}},
	}, uniqueName("runhost-base-helper-"))
	if err != nil {
		return "", engineError("create base volume helper", err)
	}
	return id, nil
}
