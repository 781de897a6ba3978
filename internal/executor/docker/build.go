package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/runhost/runhost/internal/dockerfile"
	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/output"
)

// LabelBuild marks images runhost built, with their content key.
const LabelBuild = "runhost.build"

// buildRepo is the repository built images are tagged in, by content key.
const buildRepo = "runhost/build"

// dockerfileName is the Dockerfile's name inside the build context: not
// Dockerfile (a context may have its own), and refused as a context file.
const dockerfileName = executor.BuildDockerfile

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
	res, err := e.build(ctx, b, ref)
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

// build runs the engine's builder. A Dockerfile that does not build is a
// result with Failed set and the log; errors mean the engine failed.
func (e *Executor) build(ctx context.Context, b executor.Build, ref string) (executor.BuiltImage, error) {
	pinned, err := pinBases(b)
	if err != nil {
		if errors.Is(err, dockerfile.ErrRefused) {
			return executor.BuiltImage{Ref: ref, Failed: true, Error: err.Error()}, nil
		}
		return executor.BuiltImage{}, err
	}
	b.Dockerfile = pinned
	buildCtx, err := contextTar(b)
	if err != nil {
		return executor.BuiltImage{}, err
	}
	bctx, cancel := context.WithTimeout(ctx, b.Timeout)
	defer cancel()

	args := make(map[string]*string, len(b.BuildArgs))
	for k, v := range b.BuildArgs {
		args[k] = &v
	}
	network := "none"
	if b.Network {
		network = "default"
	}
	labels := map[string]string{LabelManaged: "true", LabelBuild: b.Key}
	for k, v := range b.Labels {
		labels[k] = v
	}
	resp, err := e.engine.ImageBuild(bctx, buildCtx, build.ImageBuildOptions{
		Tags:        []string{ref},
		Dockerfile:  dockerfileName,
		Remove:      true,
		ForceRemove: true,
		// The engine's layer cache is keyed by instruction and parent, not
		// by owner: another key's identical steps would answer "Using cache"
		// (an oracle of what it built) and hand over its layers. Whole
		// images are reused per owner and content (the tag), never layers.
		NoCache:     true,
		NetworkMode: network,
		Memory:      b.MemoryBytes,
		MemorySwap:  b.MemoryBytes,
		CPUPeriod:   100000,
		CPUQuota:    b.NanoCPUs / 10000,
		BuildArgs:   args,
		Labels:      labels,
		Version:     build.BuilderV1,
	})
	if err != nil {
		if ctx.Err() != nil {
			return executor.BuiltImage{}, ctx.Err()
		}
		return executor.BuiltImage{}, engineError("build", err)
	}
	defer resp.Body.Close()

	log := output.NewCapped(b.LogBytes)
	buildErr := readBuildLog(resp.Body, log)
	res := executor.BuiltImage{Ref: ref, Log: log.Bytes(), LogTruncated: log.Truncated()}
	switch {
	case ctx.Err() != nil:
		return res, ctx.Err()
	case bctx.Err() != nil:
		res.Failed, res.Error = true, fmt.Sprintf("the build did not finish within %s", b.Timeout)
	case buildErr != nil:
		res.Failed, res.Error = true, e.explainBuildError(ctx, b.Dockerfile, buildErr.Error())
	}
	return res, nil
}

// pinBases rewrites b's Dockerfile so that the classic builder, which
// looks image names up itself, gets exactly the images the host checked:
// each base's name becomes its ID (b.Bases).
func pinBases(b executor.Build) ([]byte, error) {
	pins := make(map[string]string, len(b.Bases))
	for _, base := range b.Bases {
		pins[base.Name] = base.Ref
	}
	return dockerfile.PinClassic(b.Dockerfile, b.BuildArgs, pins)
}

// readBuildLog copies the builder's progress stream into log and returns the
// build's error, if it reported one.
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
			return fmt.Errorf("reading the build's output: %w", err)
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

var (
	fromLine  = regexp.MustCompile(`(?im)^\s*FROM\s+(?:--\S+\s+)*(\S+)`)
	fromStage = regexp.MustCompile(`(?im)^\s*FROM\s+.*\s+AS\s+(\S+)`)
)

// explainBuildError names the base images that are missing and could not be
// pulled, the most common reason a build fails on a machine without a registry.
func (e *Executor) explainBuildError(ctx context.Context, dockerfile []byte, msg string) string {
	pullish := strings.Contains(msg, "pull access denied") || strings.Contains(msg, "registry") ||
		strings.Contains(msg, "no such host") || strings.Contains(msg, "manifest unknown") || strings.Contains(msg, "not found")
	if !pullish {
		return msg
	}
	stages := map[string]bool{}
	for _, m := range fromStage.FindAllStringSubmatch(string(dockerfile), -1) {
		stages[strings.ToLower(m[1])] = true
	}
	var missing []string
	for _, m := range fromLine.FindAllStringSubmatch(string(dockerfile), -1) {
		img := m[1]
		if stages[strings.ToLower(img)] || strings.EqualFold(img, "scratch") {
			continue
		}
		if _, err := e.engine.ImageInspect(ctx, img); cerrdefs.IsNotFound(err) {
			missing = append(missing, img)
		}
	}
	if len(missing) == 0 {
		return msg
	}
	return fmt.Sprintf("base image %s is not on the engine and could not be pulled (%s); use an image the engine has, e.g. one of GET /runtimes", strings.Join(missing, ", "), msg)
}

// contextTar packs the Dockerfile and the context files.
func contextTar(b executor.Build) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, content []byte) error {
		return errors.Join(
			tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}),
			func() error { _, err := tw.Write(content); return err }(),
		)
	}
	if err := add(dockerfileName, b.Dockerfile); err != nil {
		return nil, err
	}
	for _, f := range b.Context {
		if err := add(f.Path, f.Content); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
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
