// Package docker runs jobs on a Docker engine. It is the only package that
// imports the Docker client: every engine call the host makes is here.
//
// One run is create → attach → wait → start → send frame and stdin → read
// output → exit or kill → inspect → remove. The create+start half lives in
// start(), so a warm pool can replace it without touching the rest.
package docker

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"sort"
	"strconv"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-units"
	"github.com/hashicorp/go-hclog"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/runhost/runhost/internal/egress"
	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/depcache"
	"github.com/runhost/runhost/internal/executor/frames"
	"github.com/runhost/runhost/internal/executor/output"
	"github.com/runhost/runhost/internal/executor/warmpool"
	"github.com/runhost/runhost/internal/initproc"
)

// Labels runhost puts on everything it creates on the engine.
const (
	LabelManaged  = "runhost.managed"  // "true" on every runhost object
	LabelInstance = "runhost.instance" // the host process that created it
	LabelDeadline = "runhost.deadline" // unix seconds after which a sweep may remove it
)

// initDir is where the init volume is mounted in every run container.
const initDir = "/.runhost"

// engine is the part of the Docker client the executor uses.
type engine interface {
	Ping(ctx context.Context) (types.Ping, error)
	ContainerCreate(ctx context.Context, config *container.Config, hostConfig *container.HostConfig, networkingConfig *network.NetworkingConfig, platform *ocispec.Platform, containerName string) (container.CreateResponse, error)
	ContainerAttach(ctx context.Context, id string, options container.AttachOptions) (types.HijackedResponse, error)
	ContainerWait(ctx context.Context, id string, condition container.WaitCondition) (<-chan container.WaitResponse, <-chan error)
	ContainerStart(ctx context.Context, id string, options container.StartOptions) error
	ContainerKill(ctx context.Context, id, signal string) error
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
	ContainerRemove(ctx context.Context, id string, options container.RemoveOptions) error
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	ContainerStatPath(ctx context.Context, id, path string) (container.PathStat, error)
	CopyToContainer(ctx context.Context, id, dstPath string, content io.Reader, options container.CopyToContainerOptions) error
	ImageInspect(ctx context.Context, imageID string, inspectOpts ...client.ImageInspectOption) (image.InspectResponse, error)
	ImageImport(ctx context.Context, source image.ImportSource, ref string, options image.ImportOptions) (io.ReadCloser, error)
	VolumeCreate(ctx context.Context, options volume.CreateOptions) (volume.Volume, error)
	VolumeList(ctx context.Context, options volume.ListOptions) (volume.ListResponse, error)
	VolumeRemove(ctx context.Context, volumeID string, force bool) error
	DiskUsage(ctx context.Context, options types.DiskUsageOptions) (types.DiskUsage, error)
	ImageList(ctx context.Context, options image.ListOptions) ([]image.Summary, error)
	ImageRemove(ctx context.Context, imageID string, options image.RemoveOptions) ([]image.DeleteResponse, error)
	ImageSave(ctx context.Context, imageIDs []string, saveOpts ...client.ImageSaveOption) (io.ReadCloser, error)
	ImageLoad(ctx context.Context, input io.Reader, loadOpts ...client.ImageLoadOption) (image.LoadResponse, error)
	CopyFromContainer(ctx context.Context, containerID, srcPath string) (io.ReadCloser, container.PathStat, error)
	Info(ctx context.Context) (system.Info, error)
	Close() error
}

// Config configures an Executor.
type Config struct {
	Instance   string // this host process's id, put on every container
	InitBinary []byte // the static runhost-init program
	Logger     hclog.Logger

	User   string       // uid:gid of warm pool containers (runs bring their own)
	Egress EgressConfig // the proxy install steps reach the network through

	DepsCacheEntries  int   // installed dependency sets kept
	DepsCacheBytes    int64 // and their bytes
	BuildCacheEntries int   // built images kept
	BuildCacheBytes   int64 // and their bytes

	BuilderImage    string // the rootless BuildKit image builds run in
	BasesCacheBytes int64  // base images kept exported for builds
}

// Executor runs jobs on one Docker engine.
type Executor struct {
	engine   engine
	instance string
	owner    string
	log      hclog.Logger
	init     *initVolume
	deps     *depcache.Cache
	builds   *buildCache
	builder  *builder
	egress   *egressProxy
	user     string

	retryMu    sync.Mutex
	retrying   map[string]bool // containers whose removal failed, being retried
	retries    sync.WaitGroup  // their goroutines
	retryCtx   context.Context // ends them (stopRetry, in Close); nil before the first
	stopRetry  context.CancelFunc
	closed     bool          // no new retries: the sweep removes what is left
	retryDelay time.Duration // before the first retry; 0: retryFirstDelay

	pool     *warmpool.Pool[*started] // nil until SetPool: no warm pool
	removals sync.WaitGroup           // containers being removed in the background
}

var _ executor.Executor = (*Executor)(nil)

// New connects to the engine named by the environment (DOCKER_HOST and
// friends, or the local socket), negotiating the API version. It does not
// fail when the engine is down: runs fail until it answers.
func New(cfg Config) (*Executor, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return newExecutor(cli, cfg), nil
}

func newExecutor(eng engine, cfg Config) *Executor {
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	e := &Executor{
		engine:   eng,
		instance: cfg.Instance,
		owner:    processOwner(),
		log:      log,
		init:     newInitVolume(cfg.InitBinary),
		deps:     depcache.New(volumeStore{eng}, cfg.DepsCacheEntries, cfg.DepsCacheBytes, log),
		builds:   newBuildCache(cfg.BuildCacheEntries, cfg.BuildCacheBytes),
		builder:  newBuilder(eng, cfg.BuilderImage, cfg.BasesCacheBytes, log),
		egress:   &egressProxy{cfg: cfg.Egress, secret: egress.NewSecret()},
		user:     cmp.Or(cfg.User, "1000:1000"),
	}
	return e
}

// Close empties the pool, waits for removals, stops the removals being
// retried (the sweep removes what they leave, their containers' deadlines
// being past) and waits for them, stops the egress proxy and releases the
// client's connections. A retry in an engine call is cancelled, so Close
// waits for none longer than the call takes to return.
func (e *Executor) Close() error {
	e.pool.Close()
	e.removals.Wait()
	e.retryMu.Lock()
	e.closed = true
	if e.stopRetry != nil {
		e.stopRetry()
	}
	e.retryMu.Unlock()
	e.retries.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), engineCallTimeout)
	defer cancel()
	e.stopEgress(ctx)
	return e.engine.Close()
}

// Ping reports whether the engine answers.
func (e *Executor) Ping(ctx context.Context) error {
	if _, err := e.engine.Ping(ctx); err != nil {
		return engineError("ping", err)
	}
	return nil
}

// ImageExists reports whether img is present on the engine.
func (e *Executor) ImageExists(ctx context.Context, img string) (bool, error) {
	_, err := e.engine.ImageInspect(ctx, img)
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err):
		return false, nil
	default:
		return false, engineError("inspect image", err)
	}
}

// Run executes job in a fresh container and always removes it. An install
// step, if any, comes first (or from the cache).
func (e *Executor) Run(ctx context.Context, job executor.Job) (executor.Result, error) {
	if err := e.init.ensure(ctx, e.engine, e.labels(job.Labels, time.Hour)); err != nil {
		return executor.Result{}, err
	}
	run := step{Job: job}
	var info *executor.StepInfo
	if job.Install != nil {
		deps, failed, err := e.deps.Acquire(ctx, job.Install.Key, func(ctx context.Context) (string, *executor.Result, error) {
			return e.install(ctx, job)
		})
		if err != nil {
			return executor.Result{}, err
		}
		if failed != nil {
			return *failed, nil
		}
		defer e.deps.Release(deps)
		info = &deps.Info
		run.mounts = append(run.mounts, mount.Mount{
			Type: mount.TypeVolume, Source: deps.Name, Target: job.Install.OutputDir,
			ReadOnly: true, VolumeOptions: &mount.VolumeOptions{NoCopy: true},
		})
		if !deps.Verified {
			run.mustExist = []string{job.Install.OutputDir + "/" + depcache.ReadyFile}
		}
	}
	if c := e.takePooled(job); c != nil {
		frame, err := encodeFrame(run)
		if err != nil {
			e.removeAsync(c.id)
			return executor.Result{}, err
		}
		res, err := e.finish(ctx, c, job, frame, nil)
		e.removeAsync(c.id)
		if err != nil {
			return executor.Result{}, err
		}
		res.Stage = executor.StageRun
		return res, nil
	}
	if ws := job.Workspace; ws != nil {
		run.mounts = append(run.mounts, bindMount(*ws))
	}
	if job.Network != nil {
		if err := e.withNetwork(ctx, &run); err != nil {
			return executor.Result{}, err
		}
	}
	res, err := e.runStep(ctx, run)
	if errors.Is(err, errNotReady) {
		// A cache volume from an earlier host whose install never finished.
		e.deps.Discard(ctx, job.Install.Key)
		return e.Run(ctx, job)
	}
	if err != nil {
		return executor.Result{}, err
	}
	if job.Install != nil {
		e.deps.MarkVerified(job.Install.Key)
	}
	res.Stage, res.Install = executor.StageRun, info
	return withNetworkLog(job, res), nil
}

// withNetworkLog gives a granted run's result a network log even when
// init could not report one (it died): the run had a grant.
func withNetworkLog(job executor.Job, res executor.Result) executor.Result {
	if job.Network != nil && res.Network == nil {
		res.Network = &executor.NetworkLog{Contacted: []string{}, Refused: []string{}}
	}
	return res
}

// bindMount mounts a workspace session directory read-write.
func bindMount(m executor.Mount) mount.Mount {
	return mount.Mount{
		Type: mount.TypeBind, Source: m.Source, Target: m.Target,
		BindOptions: &mount.BindOptions{Propagation: mount.PropagationRPrivate},
	}
}

// step is one container: a run, or an install before it.
type step struct {
	executor.Job
	network   string        // Docker network; empty means none
	mounts    []mount.Mount // besides the tmpfs and the init volume
	readyFile string        // init creates it when the command succeeds
	mustExist []string      // checked after create; a notReady error when one is missing
	// forward, when set, makes init forward proxyListen to the proxy.
	forward *initproc.Forward
	// syncRemove removes the container before runStep returns (an install
	// step's volume is removed right after it).
	syncRemove bool
	// session frames a run for a session container.
	session bool
	// hold keeps the container after a command that succeeded (runHeld's
	// caller removes it); capped is a size-capped directory init watches.
	hold   bool
	capped string
	// stdout, when set, takes the program's stdout whole (a builder's
	// image archive) instead of the result.
	stdout io.Writer
	// builder, when set, makes the container a builder's sandbox: the
	// run's hardening with the relaxations rootless BuildKit needs.
	builder *builderSandbox
}

// errNotReady means a step's mustExist path was missing.
var errNotReady = errors.New("cache volume not ready")

// notReady is errNotReady for one path.
type notReady struct{ path string }

func (e *notReady) Error() string        { return errNotReady.Error() + ": " + e.path + " is missing" }
func (e *notReady) Is(target error) bool { return target == errNotReady }

// runStep runs one container from create to remove.
func (e *Executor) runStep(ctx context.Context, s step) (executor.Result, error) {
	res, id, err := e.runHeld(ctx, s)
	if id != "" {
		// A failed start is removed at once: a retry reuses the name.
		if s.syncRemove || err != nil {
			e.remove(ctx, id)
		} else {
			// The caller has its answer; the container goes in the background.
			e.removeAsync(id)
		}
	}
	return res, err
}

// runHeld runs one container until its command ends and returns its id
// (when it was created), which the caller removes: a step with hold set
// keeps running until then.
func (e *Executor) runHeld(ctx context.Context, s step) (executor.Result, string, error) {
	frame, err := encodeFrame(s)
	if err != nil {
		return executor.Result{}, "", err
	}
	c, err := e.start(ctx, s)
	if err != nil {
		if c != nil {
			return executor.Result{}, c.id, err
		}
		return executor.Result{}, "", err
	}
	res, err := e.finish(ctx, c, s.Job, frame, s.stdout)
	return res, c.id, err
}

// removeAsync removes a container off the request path. Close waits for
// every removal still going.
func (e *Executor) removeAsync(id string) {
	e.removals.Add(1)
	go func() {
		defer e.removals.Done()
		e.remove(context.Background(), id)
	}()
}

// started is a container that is running init, waiting for its frame.
type started struct {
	id      string
	stream  types.HijackedResponse
	exited  <-chan container.WaitResponse
	waitErr <-chan error
	startAt time.Time
	cancel  context.CancelFunc // stops the wait when the run is over
}

// start creates the container, attaches to it and starts it. On error the
// returned container (if not nil) still needs removing.
func (e *Executor) start(ctx context.Context, s step) (*started, error) {
	job := s.Job
	volumes, err := e.imageVolumes(ctx, job.Image)
	if err != nil {
		return nil, err
	}
	cfg, hostCfg, err := e.containerConfig(s, volumes)
	if err != nil {
		return nil, err
	}
	// Create with a context the caller cannot cancel: a create cut short
	// after the engine acted would leave a container nobody knows about. The
	// name is the second safety net: it can be removed without its id.
	name := "runhost-" + job.ID
	id, err := createContainer(ctx, e.engine, cfg, hostCfg, name)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, fmt.Errorf("%w: %s (build it with `make images`)", executor.ErrImageMissing, job.Image)
		}
		return &started{id: name}, engineError("create container", err)
	}
	c := &started{id: id}
	if err := ctx.Err(); err != nil {
		return c, err
	}
	for _, p := range s.mustExist {
		if _, err := e.engine.ContainerStatPath(ctx, c.id, p); err != nil {
			if cerrdefs.IsNotFound(err) {
				return c, &notReady{p}
			}
			return c, engineError("check cache volume", err)
		}
	}

	c.stream, err = e.engine.ContainerAttach(ctx, c.id, container.AttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		return c, engineError("attach", err)
	}
	// The wait outlives the request's context: after a cancel we still kill
	// the container and want to see it stop.
	waitCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	c.exited, c.waitErr = e.engine.ContainerWait(waitCtx, c.id, container.WaitConditionNextExit)

	c.startAt = time.Now()
	if err := e.engine.ContainerStart(ctx, c.id, container.StartOptions{}); err != nil {
		c.stream.Close()
		cancel()
		if ctx.Err() == nil {
			e.init.invalidate() // a missing init volume shows up here first
		}
		return c, engineError("start container", err)
	}
	return c, nil
}

// finish feeds the running container its frame and stdin, collects output
// until it exits, is killed at the timeout, or the caller goes away.
// stdout, when not nil, takes the program's stdout whole instead of the
// result (frames.Reader.StdoutTo).
func (e *Executor) finish(ctx context.Context, c *started, job executor.Job, frame []byte, stdout io.Writer) (executor.Result, error) {
	defer c.cancel()
	defer c.stream.Close()

	go func() {
		// Errors are expected when the program exits without reading stdin.
		_, _ = c.stream.Conn.Write(frame)
		_, _ = c.stream.Conn.Write(job.Stdin)
		if job.StdinStream != nil {
			_, _ = io.Copy(c.stream.Conn, job.StdinStream)
		}
		_ = c.stream.CloseWrite()
	}()

	out := frames.NewReader(job.Limits.OutputBytes, job.Output)
	if stdout != nil {
		out.StdoutTo(stdout)
	}
	initStderr := output.NewCapped(64 << 10) // init's own words, before any frame
	framed, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, initStderr, c.stream.Reader)
		pw.CloseWithError(err)
	}()
	go out.Read(framed)

	// init enforces the timeout and reports it; this is the backstop for an
	// init that cannot (the container frozen, the engine stuck).
	backstop := time.NewTimer(job.Limits.Timeout + 5*time.Second)
	defer backstop.Stop()

	var res executor.Result
	var exited *container.WaitResponse // the engine's word, once received
	select {
	case ex := <-out.Exit():
		return out.Result(ex), nil
	case <-out.Done():
		// The stream ended without an exit frame: init itself died (killed
		// by the OOM killer, say). The engine knows how.
	case status := <-c.exited:
		// Usually the exit frame is already read; give the reader time (a
		// loaded machine can be slow to drain the attach stream). The wait
		// channel delivers once, so keep what it said.
		exited = &status
		select {
		case ex := <-out.Exit():
			return out.Result(ex), nil
		case <-out.Done():
		case <-time.After(10 * time.Second):
		}
	case err := <-c.waitErr:
		return res, engineError("wait for container", err)
	case <-backstop.C:
		res.TimedOut = true
		status, err := e.kill(ctx, c)
		if err != nil {
			return res, err
		}
		exited = &status // kill consumed the one exit notification
	case <-ctx.Done():
		_, _ = e.kill(ctx, c)
		return res, ctx.Err()
	}
	select {
	case ex := <-out.Exit():
		return out.Result(ex), nil
	default:
	}
	// No exit frame: fall back on the engine's view.
	var status container.WaitResponse
	if exited != nil {
		status = *exited
		// The container is gone, so the stream ends; close it if it does not.
		select {
		case <-out.Done():
		case <-time.After(5 * time.Second):
			c.stream.Close()
		}
	} else {
		var err error
		if status, err = e.kill(ctx, c); err != nil {
			return res, err
		}
	}
	<-out.Done()
	res = out.Result(initproc.Exit{Code: int(status.StatusCode), TimedOut: res.TimedOut})
	res.Duration = time.Since(c.startAt)
	res.Stderr = append(initStderr.Bytes(), res.Stderr...)
	oom, err := e.oomKilled(context.WithoutCancel(ctx), c.id, status.StatusCode == 137 && !res.TimedOut)
	if err != nil {
		return res, err
	}
	res.OOMKilled = oom
	return res, nil
}

// oomKilled asks the engine whether the kernel's OOM killer ended the
// container. The engine learns it from an event of its own, which can come
// after the exit (seen with gVisor, whose whole sandbox is killed): when the
// container died of SIGKILL that nobody here sent, ask again for a moment.
func (e *Executor) oomKilled(ctx context.Context, id string, likely bool) (bool, error) {
	deadline := time.Now().Add(time.Second)
	for {
		info, err := e.engine.ContainerInspect(ctx, id)
		if err != nil {
			return false, engineError("inspect container", err)
		}
		if info.State != nil && info.State.OOMKilled {
			return true, nil
		}
		if !likely || time.Now().After(deadline) {
			return false, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// createContainer creates a named container with a context the caller
// cannot cancel: a create cut short after the engine acted would leave a
// container nobody knows about. If the create fails anyway (the engine
// timed out, say), the name is removed in case the engine made it.
func createContainer(ctx context.Context, e engine, cfg *container.Config, hostCfg *container.HostConfig, name string) (string, error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), engineCallTimeout)
	defer cancel()
	created, err := e.ContainerCreate(cctx, cfg, hostCfg, nil, nil, name)
	if err != nil {
		if !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) && !cerrdefs.IsInvalidArgument(err) {
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), engineCallTimeout)
			_ = e.ContainerRemove(rctx, name, container.RemoveOptions{Force: true, RemoveVolumes: true})
			rcancel()
		}
		return "", err
	}
	return created.ID, nil
}

// uniqueName is a container name no other container has.
func uniqueName(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// kill stops the container now and waits until the engine reports it gone.
func (e *Executor) kill(ctx context.Context, c *started) (container.WaitResponse, error) {
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), engineCallTimeout)
	defer cancel()
	if err := e.engine.ContainerKill(kctx, c.id, "KILL"); err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
		e.log.Warn("kill container", "container", c.id, "error", err)
	}
	select {
	case status := <-c.exited:
		return status, nil
	case err := <-c.waitErr:
		return container.WaitResponse{}, engineError("wait for killed container", err)
	case <-kctx.Done():
		return container.WaitResponse{}, engineError("wait for killed container", kctx.Err())
	}
}

// remove deletes a container on every path, with its own deadline so a
// cancelled request still cleans up. If the engine cannot be reached (it
// restarts, say), the removal is retried in the background until it works.
func (e *Executor) remove(ctx context.Context, id string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), engineCallTimeout)
	defer cancel()
	err := e.engine.ContainerRemove(rctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		e.log.Warn("remove container failed; retrying in the background", "container", id, "error", err)
		e.retryRemoval(id)
	}
}

// retryFirstDelay is the wait before a failed removal is tried again; it
// doubles up to retryMaxDelay.
const (
	retryFirstDelay = time.Second
	retryMaxDelay   = 30 * time.Second
)

// retryRemoval keeps trying to remove id, ever less often, until it is gone
// or the executor closes; the sweep is the last resort (after a host crash,
// or for what a closed executor left).
func (e *Executor) retryRemoval(id string) {
	e.retryMu.Lock()
	defer e.retryMu.Unlock()
	if e.closed {
		e.log.Warn("executor closed: the container is left for the sweep", "container", id)
		return
	}
	if e.retrying == nil {
		e.retrying = map[string]bool{}
		e.retryCtx, e.stopRetry = context.WithCancel(context.Background())
	}
	if e.retrying[id] {
		return
	}
	e.retrying[id] = true
	e.retries.Add(1)
	go e.retry(e.retryCtx, id)
}

func (e *Executor) retry(ctx context.Context, id string) {
	defer e.retries.Done()
	defer func() {
		e.retryMu.Lock()
		delete(e.retrying, id)
		e.retryMu.Unlock()
	}()
	delay := cmp.Or(e.retryDelay, retryFirstDelay)
	wait := time.NewTimer(delay)
	defer wait.Stop()
	for {
		select {
		case <-ctx.Done():
			e.log.Warn("executor closed while retrying a removal: the container is left for the sweep", "container", id)
			return
		case <-wait.C:
		}
		rctx, cancel := context.WithTimeout(ctx, engineCallTimeout)
		err := e.engine.ContainerRemove(rctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
		cancel()
		if err == nil || cerrdefs.IsNotFound(err) {
			e.log.Info("removed container after retrying", "container", id)
			return
		}
		delay = min(2*delay, retryMaxDelay)
		wait.Reset(delay)
	}
}

// imageVolumes returns the paths an image's config declares as VOLUMEs. The
// engine would give each an anonymous volume on its own disk, writable and
// unbounded; containerConfig puts a bounded tmpfs there instead. It asks
// the engine on every container create (about 2 ms; the warm pool's
// containers pay it before any request): a tag can move to another image.
func (e *Executor) imageVolumes(ctx context.Context, img string) ([]string, error) {
	info, err := e.engine.ImageInspect(ctx, img)
	switch {
	case cerrdefs.IsNotFound(err):
		return nil, fmt.Errorf("%w: %s (build it with `make images`)", executor.ErrImageMissing, img)
	case err != nil:
		return nil, engineError("inspect image", err)
	case info.Config == nil || len(info.Config.Volumes) == 0:
		return nil, nil
	}
	var out []string
	for p := range info.Config.Volumes {
		if !path.IsAbs(p) || path.Clean(p) == "/" {
			// The engine makes a volume for it, but nothing can be mounted
			// there instead.
			return nil, fmt.Errorf("%w: image %s declares VOLUME %q; only absolute paths below / can be given a bounded filesystem", executor.ErrUnsupported, img, p)
		}
		out = append(out, path.Clean(p))
	}
	sort.Strings(out)
	return out, nil
}

// containerConfig is the whole hardening of a run container in one place.
// volumes are the image's VOLUME paths: each gets a tmpfs of the run's /tmp
// size (noexec, nosuid, nodev, counted against its memory) unless a mount
// of the job is there already, so the engine creates no anonymous volume.
func (e *Executor) containerConfig(s step, volumes []string) (*container.Config, *container.HostConfig, error) {
	job := s.Job
	user, err := executor.ParseUser(job.User)
	if err != nil {
		return nil, nil, fmt.Errorf("job: %w", err)
	}
	uid, gid := user.UID, user.GID
	l := job.Limits
	pids := l.Pids
	cfg := &container.Config{
		Image:           job.Image,
		Entrypoint:      []string{initDir + "/init"},
		Cmd:             []string{},
		User:            user.String(),
		WorkingDir:      "/",
		Hostname:        "runhost",
		Labels:          e.labels(job.Labels, l.Timeout),
		AttachStdin:     true,
		AttachStdout:    true,
		AttachStderr:    true,
		OpenStdin:       true,
		StdinOnce:       true,
		NetworkDisabled: s.network == "",
	}
	network := container.NetworkMode("none")
	if s.network != "" {
		network = container.NetworkMode(s.network)
	}
	noInit := false
	hostCfg := &container.HostConfig{
		NetworkMode:    network,
		ReadonlyRootfs: true,
		Privileged:     false,
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		IpcMode:        "private",
		Init:           &noInit, // runhost-init is PID 1
		Runtime:        job.OCIRuntime,
		LogConfig:      container.LogConfig{Type: "none"},
		Tmpfs: map[string]string{
			"/tmp":          fmt.Sprintf("rw,noexec,nosuid,nodev,size=%d,mode=1777", l.TmpBytes),
			executor.RunDir: fmt.Sprintf("rw,noexec,nosuid,nodev,size=%d,mode=0755,uid=%d,gid=%d", l.RunDirBytes, uid, gid),
		},
		Mounts: append([]mount.Mount{{
			Type:          mount.TypeVolume,
			Source:        e.init.name,
			Target:        initDir,
			ReadOnly:      true,
			VolumeOptions: &mount.VolumeOptions{NoCopy: true},
		}}, s.mounts...),
		Resources: container.Resources{
			Memory:     l.MemoryBytes,
			MemorySwap: l.MemoryBytes, // equal to Memory: no swap
			NanoCPUs:   l.NanoCPUs,
			PidsLimit:  &pids,
			Ulimits: []*units.Ulimit{
				{Name: "nofile", Soft: l.NoFile, Hard: l.NoFile},
				{Name: "fsize", Soft: l.FileSizeBytes, Hard: l.FileSizeBytes},
				{Name: "core", Soft: 0, Hard: 0},
			},
		},
	}
	mounted := map[string]bool{}
	for _, m := range hostCfg.Mounts {
		mounted[path.Clean(m.Target)] = true
	}
	for _, v := range volumes {
		if _, ok := hostCfg.Tmpfs[v]; ok || mounted[v] {
			continue
		}
		hostCfg.Tmpfs[v] = fmt.Sprintf("rw,noexec,nosuid,nodev,size=%d,mode=0755,uid=%d,gid=%d", l.TmpBytes, uid, gid)
	}
	if s.builder != nil {
		s.builder.relax(hostCfg)
	}
	return cfg, hostCfg, nil
}

// labels marks a container as runhost's, with a deadline after which any
// runhost sweep may remove it (the run's timeout plus a margin).
func (e *Executor) labels(base map[string]string, timeout time.Duration) map[string]string {
	out := make(map[string]string, len(base)+3)
	for k, v := range base {
		out[k] = v
	}
	out[LabelManaged] = "true"
	out[LabelInstance] = e.instance
	out[LabelOwner] = e.owner
	out[LabelDeadline] = strconv.FormatInt(time.Now().Add(timeout+sweepMargin).Unix(), 10)
	return out
}

// sweepStoppedAfter is how long after its creation a stopped container may
// stay before a sweep removes it.
const sweepStoppedAfter = 5 * time.Minute

// sweepMargin is how long past its timeout a container may live before a
// sweep treats it as left behind.
const sweepMargin = 2 * time.Minute

// Sweep removes runhost containers left behind: those whose deadline has
// passed, and those of a host process on this machine that no longer runs
// (killed with -9, crashed). It returns how many it removed.
func (e *Executor) Sweep(ctx context.Context) (int, error) {
	list, err := e.engine.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", LabelManaged+"=true")),
	})
	if err != nil {
		return 0, engineError("list containers", err)
	}
	now := time.Now().Unix()
	removed := 0
	for _, c := range list {
		deadline, err := strconv.ParseInt(c.Labels[LabelDeadline], 10, 64)
		// A container that has stopped is of no use to anyone once its host
		// had time to read it (a pool container whose host went away, say).
		stopped := (c.State == "exited" || c.State == "dead") && now-c.Created > int64(sweepStoppedAfter.Seconds())
		if err == nil && deadline > now && !ownerGone(c.Labels[LabelOwner]) && !stopped {
			continue
		}
		err = e.engine.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			e.log.Warn("sweep: remove container", "container", c.ID, "error", err)
			continue
		}
		removed++
	}
	// The egress proxy's socket volume of a dead host process.
	vols, err := e.engine.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelEgress))})
	if err == nil {
		for _, v := range vols.Volumes {
			if ownerGone(v.Labels[LabelOwner]) && e.engine.VolumeRemove(ctx, v.Name, true) == nil {
				removed++
			}
		}
	}
	// An install's output volume its host left behind (one in use is not
	// removed: the engine refuses).
	vols, err = e.engine.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelInstallOutput))})
	if err == nil {
		for _, v := range vols.Volumes {
			deadline, err := strconv.ParseInt(v.Labels[LabelDeadline], 10, 64)
			if (err != nil || deadline <= now || ownerGone(v.Labels[LabelOwner])) && e.engine.VolumeRemove(ctx, v.Name, false) == nil {
				removed++
			}
		}
	}
	return removed, nil
}

// encodeFrame builds what init reads on stdin before the program's stdin.
func encodeFrame(s step) ([]byte, error) {
	return frames.Encode(s.Job, func(h *initproc.Header) {
		h.ReadyFile = s.readyFile
		h.Session = s.session
		h.Hold = s.hold
		h.Capped = s.capped
		h.Forward = s.forward
	})
}

// engineCallTimeout bounds one engine call made on a detached context.
const engineCallTimeout = 30 * time.Second

// engineError wraps err; connection failures become ErrEngineUnavailable.
// A cancelled caller stays context.Canceled: that is not the engine's fault.
func engineError(op string, err error) error {
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: %w", op, err)
	case client.IsErrConnectionFailed(err), errors.As(err, &netErr), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w: %v", op, executor.ErrEngineUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// initVolume is the named volume holding runhost-init, mounted read-only in
// every run container. Its name carries the binary's hash, so hosts of
// different versions sharing an engine never overwrite each other's init.
type initVolume struct {
	binary []byte
	name   string

	mu    sync.Mutex
	ready bool
}
