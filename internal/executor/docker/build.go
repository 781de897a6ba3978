package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/runhost/runhost/internal/executor"
)

// LabelBuild marks images runhost built, with their content key.
const LabelBuild = "runhost.build"

// buildRepo is the repository built images are tagged in, by content key.
const buildRepo = "runhost/build"

// buildCache remembers when each built image was last used and removes the
// least recently used ones beyond its bounds. Concurrent builds of the same
// key share one build.
type buildCache struct {
	maxEntries int
	maxBytes   int64

	mu       sync.Mutex
	lastUsed map[string]time.Time // by image ref
	inUse    map[string]int
	building map[string]chan struct{}
}

func newBuildCache(maxEntries int, maxBytes int64) *buildCache {
	if maxEntries <= 0 {
		maxEntries = 50
	}
	if maxBytes <= 0 {
		maxBytes = 10 << 30
	}
	return &buildCache{maxEntries: maxEntries, maxBytes: maxBytes,
		lastUsed: map[string]time.Time{}, inUse: map[string]int{}, building: map[string]chan struct{}{}}
}

// Build builds b's Dockerfile into an image tagged by its content key, or
// reuses the image an earlier identical build made.
func (e *Executor) Build(ctx context.Context, b executor.Build) (executor.BuiltImage, error) {
	ref := buildRepo + ":" + b.Key[:32]
	for {
		if built, ok, err := e.builtImage(ctx, ref); err != nil || ok {
			if ok {
				e.builds.touch(ref)
			}
			return built, err
		}
		c := e.builds
		c.mu.Lock()
		wait, running := c.building[ref]
		if !running {
			c.building[ref] = make(chan struct{})
		}
		c.mu.Unlock()
		if !running {
			break
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return executor.BuiltImage{}, ctx.Err()
		}
	}
	defer func() {
		e.builds.mu.Lock()
		close(e.builds.building[ref])
		delete(e.builds.building, ref)
		e.builds.mu.Unlock()
	}()

	start := time.Now()
	res, err := e.sealedBuild(ctx, b, ref)
	res.Duration = time.Since(start)
	if err != nil || res.Failed {
		return res, err
	}
	built, ok, err := e.builtImage(ctx, ref)
	if err != nil {
		return res, err
	}
	if !ok {
		return res, fmt.Errorf("build of %s reported success but the image is missing", ref)
	}
	built.Cached, built.Log, built.LogTruncated, built.Duration = false, res.Log, res.LogTruncated, res.Duration
	e.builds.touch(ref)
	go e.collectImages(context.WithoutCancel(ctx))
	return built, nil
}

// builtImage describes ref if it exists.
func (e *Executor) builtImage(ctx context.Context, ref string) (executor.BuiltImage, bool, error) {
	info, err := e.engine.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return executor.BuiltImage{}, false, nil
	}
	if err != nil {
		return executor.BuiltImage{}, false, engineError("inspect built image", err)
	}
	out := executor.BuiltImage{Ref: ref, Cached: true}
	if info.Config != nil {
		out.Entrypoint, out.Cmd, out.WorkingDir = info.Config.Entrypoint, info.Config.Cmd, info.Config.WorkingDir
	}
	return out, true, nil
}

// readBuildLog copies the engine's progress stream (an image load's answer)
// into log and returns the error it reported, if any.
func readBuildLog(r io.Reader, log io.Writer) error {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Stream      string `json:"stream"`
			Status      string `json:"status"`
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading the engine's output: %w", err)
		}
		switch {
		case msg.ErrorDetail != nil && msg.ErrorDetail.Message != "":
			fmt.Fprintln(log, msg.ErrorDetail.Message)
			return errors.New(msg.ErrorDetail.Message)
		case msg.Error != "":
			fmt.Fprintln(log, msg.Error)
			return errors.New(msg.Error)
		case msg.Stream != "":
			io.WriteString(log, msg.Stream)
		case msg.Status != "":
			fmt.Fprintln(log, msg.Status)
		}
	}
}

func (c *buildCache) touch(ref string) {
	c.mu.Lock()
	c.lastUsed[ref] = time.Now()
	c.mu.Unlock()
}

// collectImages removes the least recently used built images beyond the
// cache's bounds. Images a container still uses are skipped by the engine.
func (e *Executor) collectImages(ctx context.Context) {
	list, err := e.engine.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelBuild))})
	if err != nil {
		e.log.Warn("list built images", "error", err)
		return
	}
	type built struct {
		ref  string
		size int64
		used time.Time
	}
	c := e.builds
	var all []built
	var total int64
	c.mu.Lock()
	for _, img := range list {
		for _, tag := range img.RepoTags {
			if !strings.HasPrefix(tag, buildRepo+":") {
				continue
			}
			used, ok := c.lastUsed[tag]
			if !ok {
				used = time.Unix(img.Created, 0)
			}
			all = append(all, built{tag, img.Size, used})
			total += img.Size
		}
	}
	c.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i].used.Before(all[j].used) })
	count := len(all)
	for _, b := range all {
		if count <= c.maxEntries && total <= c.maxBytes {
			break
		}
		if _, err := e.engine.ImageRemove(ctx, b.ref, image.RemoveOptions{PruneChildren: true}); err != nil {
			e.log.Debug("keep built image", "image", b.ref, "error", err)
			continue
		}
		c.mu.Lock()
		delete(c.lastUsed, b.ref)
		c.mu.Unlock()
		count--
		total -= b.size
		e.log.Info("removed built image", "image", b.ref, "bytes", b.size)
	}
}
