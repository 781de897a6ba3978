package docker

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/hashicorp/go-hclog"

	"github.com/runhost/runhost/deploy/kubernetes/seccomp"
	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/imagearchive"
)

// Dockerfile builds run in a builder container: the builder image's
// rootless BuildKit (the one build pods run on Kubernetes), in a sandbox
// like a run's — no network unless granted (and then only the egress
// proxy), memory, CPU, pids, a wall-clock timeout, a capped log, its
// working storage on a size-capped tmpfs — with RUN steps in a process
// sandbox of their own. Every image the Dockerfile names comes in as a
// named context from a read-only volume holding exactly the image the
// host checked (bases.go); the built image streams out on the builder's
// stdout and into the engine only if the build succeeded within its caps
// (imagearchive.Loadable). The engine itself never builds or fetches.

// Where things are in the builder container.
const (
	basesDir         = "/.runhost-bases"                   // a base volume per image, read-only
	buildkitStateDir = "/home/build/.local/share/buildkit" // BuildKit's state: the size-capped tmpfs
	buildContextDir  = executor.RunDir + "/context"        // the context and the Dockerfile
	builderEntry     = "/usr/local/bin/runhost-build"
	// builderUser is the builder image's user, whose subordinate ids
	// rootless BuildKit maps.
	builderUser = "1000:1000"
	// buildCAFile is a granted build's CA bundle in the run directory,
	// beside the context (never in it).
	buildCAFile = "runhost-ca.pem"
)

// LabelBuilder on the builder image is the version of its entry script's
// interface; builderProtocol is the one this host speaks (2:
// RUNHOST_BUILD_PROCESS_SANDBOX; 3: RUNHOST_BUILD_CA, which runhost-runc
// gives RUN steps). scripts/builder-image.sh sets it.
const (
	LabelBuilder    = "runhost.builder"
	builderProtocol = "3"
)

// builderExitNoStart is runhost-build's exit code when buildkitd did not
// start: the builder's failure, not the Dockerfile's.
const builderExitNoStart = 125

// builder is what Dockerfile builds need of the executor.
type builder struct {
	image string
	bases *bases

	mu    sync.Mutex
	facts *engineFacts // asked once
}

// engineFacts are what builds need to know of the engine.
type engineFacts struct {
	apparmor bool // it confines containers with AppArmor
	// layerStore: images are kept as layers by diff ID (the graph-driver
	// store), so an image load may leave out layers the engine has; the
	// containerd image store wants every blob.
	layerStore bool
}

func newBuilder(eng engine, image string, basesBytes int64, log hclog.Logger) *builder {
	if image == "" {
		image = "runhost/builder:latest"
	}
	return &builder{image: image, bases: newBases(eng, basesBytes, log)}
}

// builderSandbox is what a builder container gets beyond a run's hardening
// (containerConfig). Each relaxation is what rootless BuildKit with a
// process sandbox needs, and docs/security.md says why it is safe:
//   - SETUID and SETGID, for newuidmap/newgidmap (file capabilities, not
//     setuid root) to map the subordinate ids of uid 1000;
//   - no no-new-privileges: file capabilities do not work under it;
//   - the builder seccomp profile: the default plus the namespace and
//     mount calls rootlesskit and runc make (deploy/kubernetes/seccomp);
//   - systempaths=unconfined: an unmasked /proc, without which the kernel
//     refuses the fresh /proc of a RUN step's PID namespace;
//   - AppArmor unconfined where the engine has AppArmor (its default
//     profile forbids mount);
//   - BuildKit's state on a tmpfs of the build's disk size, exec allowed
//     (RUN steps run binaries from their snapshots).
type builderSandbox struct {
	stateBytes int64
	apparmor   bool
}

func (b *builderSandbox) relax(hostCfg *container.HostConfig) {
	hostCfg.CapAdd = []string{"SETUID", "SETGID"}
	opts := []string{"seccomp=" + string(seccomp.Builder)}
	if b.apparmor {
		opts = append(opts, "apparmor=unconfined")
	}
	hostCfg.SecurityOpt = opts
	// systempaths=unconfined, as the API says it: empty, not absent, lists
	// of masked and read-only paths.
	hostCfg.MaskedPaths, hostCfg.ReadonlyPaths = []string{}, []string{}
	hostCfg.Tmpfs[buildkitStateDir] = fmt.Sprintf("rw,nosuid,nodev,size=%d,mode=0700,uid=1000,gid=1000", b.stateBytes)
}

// checkBuilder makes sure the builder image is there and speaks this
// host's protocol: a missing or older one is ErrImageMissing (503) naming
// the fix.
func (e *Executor) checkBuilder(ctx context.Context) error {
	img := e.builder.image
	info, err := e.engine.ImageInspect(ctx, img)
	if cerrdefs.IsNotFound(err) {
		return fmt.Errorf("%w: the builder image %s, which Dockerfile builds run in: run `make images` (or set RUNHOST_BUILDER_IMAGE)", executor.ErrImageMissing, img)
	}
	if err != nil {
		return engineError("inspect builder image", err)
	}
	if info.Config == nil || info.Config.Labels[LabelBuilder] != builderProtocol {
		have := ""
		if info.Config != nil {
			have = info.Config.Labels[LabelBuilder]
		}
		return fmt.Errorf("%w: the builder image %s is of another version (label %s=%q, this host needs %q): run `make images`", executor.ErrImageMissing, img, LabelBuilder, have, builderProtocol)
	}
	return nil
}

// engineFacts returns what builds need to know of the engine (asked once).
func (e *Executor) engineFacts(ctx context.Context) (engineFacts, error) {
	b := e.builder
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.facts != nil {
		return *b.facts, nil
	}
	info, err := e.engine.Info(ctx)
	if err != nil {
		return engineFacts{}, engineError("engine info", err)
	}
	f := engineFacts{layerStore: true}
	for _, opt := range info.SecurityOptions {
		if strings.Contains(opt, "name=apparmor") {
			f.apparmor = true
		}
	}
	for _, kv := range info.DriverStatus {
		if strings.Contains(kv[1], "io.containerd.snapshotter") {
			f.layerStore = false
		}
	}
	b.facts = &f
	return f, nil
}

// sealedBuild builds b in a builder container and loads the image into the
// engine as ref. A Dockerfile that does not build is a result with Failed
// set and the log; errors mean the builder or the engine failed.
func (e *Executor) sealedBuild(ctx context.Context, b executor.Build, ref string) (executor.BuiltImage, error) {
	b = bounded(b)
	out, err := e.buildOnce(ctx, b, ref)
	var nr *notReady
	if errors.As(err, &nr) {
		// A base volume went away under the cache (removed by hand, say):
		// export that base again, once.
		e.forgetBase(ctx, strings.TrimPrefix(path.Dir(nr.path), basesDir+"/"))
		out, err = e.buildOnce(ctx, b, ref)
	}
	return out, err
}

// buildOnce is sealedBuild's one attempt.
func (e *Executor) buildOnce(ctx context.Context, b executor.Build, ref string) (executor.BuiltImage, error) {
	if err := e.checkBuilder(ctx); err != nil {
		return executor.BuiltImage{}, err
	}
	if err := e.init.ensure(ctx, e.engine, e.labels(nil, time.Hour)); err != nil {
		return executor.BuiltImage{}, err
	}
	facts, err := e.engineFacts(ctx)
	if err != nil {
		return executor.BuiltImage{}, err
	}
	// The policy checked and pinned every image the Dockerfile names.
	pinned := b.Bases
	contexts, err := namedContexts(pinned)
	if err != nil {
		return executor.BuiltImage{}, err
	}
	var held []heldBase
	defer func() {
		for _, h := range held {
			e.releaseBase(h)
		}
	}()
	// One read-only layout store per image; one named context per name.
	stores := map[string]string{} // image ID → "<store>@<manifest digest>"
	var args, layouts []string
	var mounts []mount.Mount
	for _, c := range contexts {
		store, ok := stores[c.ref]
		if !ok {
			h, err := e.acquireBase(ctx, c.ref, e.builder.image)
			if err != nil {
				return executor.BuiltImage{}, err
			}
			held = append(held, h)
			name := fmt.Sprintf("base%d", len(stores))
			dir := basesDir + "/" + strings.TrimPrefix(c.ref, "sha256:")
			mounts = append(mounts, mount.Mount{
				Type: mount.TypeVolume, Source: h.volume, Target: dir, ReadOnly: true,
				VolumeOptions: &mount.VolumeOptions{NoCopy: true},
			})
			args = append(args, "--oci-layout", name+"="+dir)
			layouts = append(layouts, dir+"/"+imagearchive.LayoutIndex)
			store = name + "@" + h.manifest
			stores[c.ref] = store
		}
		args = append(args, "--opt", "context:"+c.name+"=oci-layout://"+store)
	}

	// The bases' layers: the engine has them, so the image may come back
	// without them (on a layer store the builder leaves them out), and no
	// other layer may be named without its content.
	reusable := map[string]bool{}
	for _, h := range held {
		info, err := e.engine.ImageInspect(ctx, h.id)
		if err != nil {
			return executor.BuiltImage{}, engineError("inspect base image", err)
		}
		for _, l := range info.RootFS.Layers {
			reusable[l] = true
		}
	}
	job := builderJob(b, e.builder.image, ref, args)
	if facts.layerStore && len(reusable) > 0 {
		skip := make([]string, 0, len(reusable))
		for _, l := range sortedKeys(reusable) {
			skip = append(skip, strings.TrimPrefix(l, "sha256:"))
		}
		job.Env = append(job.Env, "RUNHOST_BUILD_SKIP_BLOBS="+strings.Join(skip, " "))
	}
	s := step{
		Job:        job,
		mounts:     mounts,
		mustExist:  layouts,
		syncRemove: true,
		builder:    &builderSandbox{stateBytes: b.DiskBytes, apparmor: facts.apparmor},
	}
	if b.Network {
		// The builder has no network either way. With the grant, RUN steps
		// share its network namespace, where init forwards the proxy's
		// port, and get the proxy variables as build arguments; BuildKit
		// itself never gets them, so it fetches nothing.
		if err := e.viaEgress(ctx, &s, e.egress.cfg.Allow); err != nil {
			return executor.BuiltImage{}, err
		}
	}
	// init ends the build at its timeout; this bounds the step even if
	// the engine stops answering (the image load included).
	stepCtx, stop := context.WithTimeout(ctx, b.Timeout+time.Minute)
	defer stop()
	load := e.startLoad(stepCtx, ref, b.ImageBytes, reusable, stop)
	s.stdout = load
	res, runErr := e.runStep(stepCtx, s)
	out := executor.BuiltImage{Ref: ref, Log: withoutNoise(res.Stderr), LogTruncated: res.StderrTruncated}
	built := runErr == nil && res.ExitCode == 0 && !res.TimedOut && !res.OOMKilled
	loadErr := load.finish(built)
	refused := loadErr != nil && runErr != nil && errors.Is(runErr, context.Canceled) // the load stopped the builder
	switch {
	case ctx.Err() != nil:
		return out, ctx.Err()
	case errors.Is(loadErr, imagearchive.ErrTooLarge):
		out.Failed, out.Error = true, fmt.Sprintf("the built image is larger than RUNHOST_BUILD_IMAGE_MB (%d MB); nothing was loaded", b.ImageBytes>>20)
	case refused:
		return out, fmt.Errorf("load the built image: %w", loadErr)
	case errors.Is(runErr, context.DeadlineExceeded):
		out.Failed, out.Error = true, fmt.Sprintf("the build did not finish within %s", b.Timeout)
	case runErr != nil:
		return out, fmt.Errorf("builder container: %w", runErr)
	case res.TimedOut:
		out.Failed, out.Error = true, fmt.Sprintf("the build did not finish within %s", b.Timeout)
	case res.OOMKilled:
		out.Failed, out.Error = true, fmt.Sprintf("the build ran out of memory (RUNHOST_BUILD_MEMORY_MB %d plus RUNHOST_BUILD_DISK_MB)", b.MemoryBytes>>20)
	case res.ExitCode == builderExitNoStart:
		return out, fmt.Errorf("the builder did not start: %s", lastLine(res.Stderr))
	case res.ExitCode != 0:
		out.Failed, out.Error = true, buildError(res.Stderr, b.DiskBytes)
	case loadErr != nil:
		return out, fmt.Errorf("load the built image: %w", loadErr)
	}
	return out, nil
}

// bounded gives every bound of b a value: zero would mean no limit to the
// engine (pids, tmpfs size), and the policy always sets them, so a zero
// is a caller's slip, not a grant.
func bounded(b executor.Build) executor.Build {
	def := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&b.MemoryBytes, 2<<30)
	def(&b.NanoCPUs, 1e9)
	def(&b.Pids, 512)
	def(&b.DiskBytes, 2<<30)
	def(&b.ImageBytes, 2<<30)
	def(&b.LogBytes, 64<<10)
	if b.Timeout <= 0 {
		b.Timeout = 5 * time.Minute
	}
	return b
}

// builderJob is the build as a job for the builder image's runhost-build:
// the context and Dockerfile as files, buildctl's arguments as the command.
func builderJob(b executor.Build, builderImage, ref string, contextArgs []string) executor.Job {
	files := make([]executor.File, 0, len(b.Context)+1)
	size := int64(len(b.Dockerfile))
	for _, f := range b.Context {
		files = append(files, executor.File{Path: "context/" + f.Path, Content: f.Content})
		size += int64(len(f.Content))
	}
	files = append(files, executor.File{Path: "context/" + executor.BuildDockerfile, Content: b.Dockerfile})
	args := []string{builderEntry,
		"--frontend", "dockerfile.v0",
		"--local", "context=" + buildContextDir, "--local", "dockerfile=" + buildContextDir,
		"--opt", "filename=" + executor.BuildDockerfile,
		"--output", "type=docker,name=" + ref + ",dest=-,compression=uncompressed"}
	args = append(args, contextArgs...)
	labels := map[string]string{LabelManaged: "true", LabelBuild: b.Key}
	for k, v := range b.Labels {
		labels[k] = v
	}
	for _, k := range sortedKeys(labels) {
		args = append(args, "--opt", "label:"+k+"="+labels[k])
	}
	for _, k := range sortedKeys(b.BuildArgs) {
		args = append(args, "--opt", "build-arg:"+k+"="+b.BuildArgs[k])
	}
	env := []string{"HOME=/home/build", "RUNHOST_BUILD_PROCESS_SANDBOX=true"}
	if b.Network {
		// BuildKit's predefined proxy arguments: RUN steps see them, the
		// image and its history do not.
		for _, kv := range executor.ProxyEnv(proxyListen) {
			if k, v, _ := strings.Cut(kv, "="); strings.HasSuffix(strings.ToLower(k), "_proxy") {
				args = append(args, "--opt", "build-arg:"+k+"="+v)
			}
		}
		// The CA bundle goes to the builder's runtime (runhost-runc), which
		// gives it to each RUN step's container, outside BuildKit's view:
		// no layer, config, history or cache key has it.
		if len(b.CA) > 0 {
			files = append(files, executor.File{Path: buildCAFile, Content: b.CA})
			size += int64(len(b.CA))
			env = append(env, "RUNHOST_BUILD_CA="+executor.RunDir+"/"+buildCAFile, "RUNHOST_BUILD_CA_ENV="+strings.Join(executor.CAEnv, " "))
		}
	} else {
		args = append(args, "--opt", "force-network-mode=none")
	}
	jobLabels := map[string]string{"runhost.step": executor.StageBuild}
	for k, v := range b.Labels {
		jobLabels[k] = v
	}
	return executor.Job{
		ID:      uniqueName("build-" + b.Key[:12] + "-"),
		Image:   builderImage,
		Command: args,
		Env:     env,
		WorkDir: executor.RunDir,
		Files:   files,
		User:    builderUser,
		Labels:  jobLabels,
		Limits: executor.Limits{
			Timeout: b.Timeout,
			// BuildKit's state is on a tmpfs, whose pages count as the
			// container's memory: the disk comes on top of the memory.
			MemoryBytes:   b.MemoryBytes + b.DiskBytes,
			NanoCPUs:      b.NanoCPUs,
			Pids:          b.Pids,
			NoFile:        8192, // many layers open at once; under the engine's own limit
			FileSizeBytes: b.DiskBytes,
			TmpBytes:      64 << 20,
			RunDirBytes:   size + 1<<20,
			OutputBytes:   b.LogBytes,
		},
	}
}

// namedContext is a name the Dockerfile uses for an image, as BuildKit's
// named contexts key it, and the image it stands for.
type namedContext struct {
	name string // familiar form, without ":latest"
	ref  string
}

// namedContexts keys each pinned image as BuildKit's Dockerfile frontend
// looks names up (dockerui.NamedContext: the familiar name without
// ":latest"), one entry per distinct name.
func namedContexts(pinned []executor.BaseImage) ([]namedContext, error) {
	byName := map[string]string{}
	for _, p := range pinned {
		if !validImageID(p.Ref) {
			return nil, fmt.Errorf("base image %q: ref %q is not an image ID (sha256:<64 hex>)", p.Name, p.Ref)
		}
		name, err := contextName(p.Name)
		if err != nil {
			return nil, err
		}
		if have, ok := byName[name]; ok && have != p.Ref {
			return nil, fmt.Errorf("base image %q is pinned to both %s and %s", p.Name, have, p.Ref)
		}
		byName[name] = p.Ref
	}
	out := make([]namedContext, 0, len(byName))
	for _, name := range sortedKeys(byName) {
		out = append(out, namedContext{name: name, ref: byName[name]})
	}
	return out, nil
}

// contextName is name as BuildKit keys named contexts.
func contextName(name string) (string, error) {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return "", fmt.Errorf("base image %q: %w", name, err)
	}
	return strings.TrimSuffix(reference.FamiliarString(named), ":latest"), nil
}

func validImageID(ref string) bool {
	hex, ok := strings.CutPrefix(ref, "sha256:")
	if !ok || len(hex) != 64 {
		return false
	}
	for _, c := range hex {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// buildError is what a failed build says: buildctl's last "error:" line,
// and the cause when the builder's disk filled up.
func buildError(stderr []byte, diskBytes int64) string {
	msg := "the Dockerfile did not build: " + lastLine(stderr)
	lines := strings.Split(strings.TrimSpace(string(stderr)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.HasPrefix(l, "error:") {
			msg = strings.TrimSpace(strings.TrimPrefix(l, "error:"))
			break
		}
	}
	if strings.Contains(strings.ToLower(string(stderr)), "no space left on device") {
		msg = fmt.Sprintf("the build ran out of disk (RUNHOST_BUILD_DISK_MB, %d MB): %s", diskBytes>>20, msg)
	}
	return msg
}

// withoutNoise drops from a build log the lines that are about the
// sandbox, not the build: buildctl warns that it cannot probe the
// read-only base layouts for fs-verity.
func withoutNoise(log []byte) []byte {
	lines := bytes.SplitAfter(log, []byte("\n"))
	out := lines[:0]
	for _, l := range lines {
		if !bytes.Contains(l, []byte(`msg="failed check for fsverity support"`)) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, nil)
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	return s[strings.LastIndexByte(s, '\n')+1:]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// imageLoad streams a builder's stdout — the image archive — into the
// engine's image load, through imagearchive.Loadable. The load starts
// with the archive's first byte (the build's export, at its very end), and
// the engine loads the image only if the build then succeeds: otherwise
// the request is cut before the archive ends, and the engine, which reads
// a whole archive before it loads anything, keeps nothing.
type imageLoad struct {
	e        *Executor
	ref      string
	max      int64
	reusable map[string]bool    // layers the image may name without carrying
	stop     context.CancelFunc // stops the builder when its archive is refused

	ctx    context.Context // the load's; done when the build's is, or the load is over
	cancel context.CancelFunc

	pw      *io.PipeWriter // the builder's stdout
	dropped bool           // the archive was refused: the rest is discarded
	done    chan struct{}  // run returned

	// Set by run, read after done.
	err    error
	seal   func() error
	lw     *io.PipeWriter // the engine's request body
	loaded chan error     // the engine's answer; nil if no load started
}

// startLoad starts taking a builder's stdout. When ctx ends, so does the
// load, and whatever still writes the stdout is let go.
func (e *Executor) startLoad(ctx context.Context, ref string, max int64, reusable map[string]bool, stop context.CancelFunc) *imageLoad {
	pr, pw := io.Pipe()
	lctx, cancel := context.WithCancel(ctx)
	l := &imageLoad{e: e, ref: ref, max: max, reusable: reusable, stop: stop, ctx: lctx, cancel: cancel, pw: pw, done: make(chan struct{})}
	context.AfterFunc(lctx, func() { pw.CloseWithError(errLoadCut) })
	go l.run(pr)
	return l
}

// Write takes the builder's stdout. It waits while the engine reads, so a
// slow engine slows the builder instead of filling memory.
func (l *imageLoad) Write(p []byte) (int, error) {
	if !l.dropped {
		if _, err := l.pw.Write(p); err != nil {
			l.dropped = true
		}
	}
	return len(p), nil
}

func (l *imageLoad) run(pr *io.PipeReader) {
	defer close(l.done)
	br := bufio.NewReaderSize(pr, 64<<10)
	if _, err := br.Peek(1); err != nil {
		pr.CloseWithError(err)
		return // no archive: the build ended before its export
	}
	lr, lw := io.Pipe()
	l.lw, l.loaded = lw, make(chan error, 1)
	go func() {
		resp, err := l.e.engine.ImageLoad(l.ctx, lr, client.ImageLoadWithQuiet(true))
		if err == nil {
			if resp.JSON {
				err = readBuildLog(resp.Body, io.Discard)
			} else {
				_, err = io.Copy(io.Discard, resp.Body)
			}
			resp.Body.Close()
		}
		if err != nil {
			err = engineError("load the built image", err)
		}
		lr.CloseWithError(cmp.Or(err, errLoadCut)) // a writer still writing stops
		l.loaded <- err
	}()
	seal, err := imagearchive.Loadable(br, lw, l.ref, l.max, l.reusable)
	if err != nil {
		l.err = err
		lw.CloseWithError(err)
		l.cancel()
		pr.CloseWithError(err)
		l.stop()
		return
	}
	l.seal = seal
	_, _ = io.Copy(io.Discard, br) // anything after the archive's end
}

// errLoadCut ends a load that must not complete.
var errLoadCut = errors.New("the build did not succeed: its image is not loaded")

// finish ends the stream: with built, the archive is sealed and the
// engine's answer awaited; without, the load is cut off so the engine
// loads nothing. It returns why the image was not loaded, if it was not.
func (l *imageLoad) finish(built bool) error {
	defer l.cancel()
	if built {
		l.pw.Close()
	} else {
		l.pw.CloseWithError(errLoadCut)
	}
	<-l.done
	if l.loaded == nil {
		if built && l.err == nil {
			return errors.New("the builder produced no image")
		}
		return l.err
	}
	if l.err == nil && built {
		l.err = l.seal()
	}
	if l.err != nil || !built {
		l.lw.CloseWithError(errLoadCut)
		l.cancel()
		if err := <-l.loaded; l.err == nil && built {
			return err
		}
		return l.err
	}
	l.lw.Close()
	return <-l.loaded
}
