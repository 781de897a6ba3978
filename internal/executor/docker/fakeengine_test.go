package docker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/runhost/runhost/internal/initproc"
)

// fakeEngine is an in-memory Docker engine for unit tests of the executor's
// own logic: container config, cleanup on every path, sweep, pool hand-off.
// Its containers run a scripted init instead of a program: it reads the
// frame the executor sends on the attach stream (a net.Pipe) and does what
// the job's command says:
//
//	exit N    write "ran in <container name>" on stdout, then exit N
//	timeout   report a run init timed out (exit 137, timed_out)
//	hang      nothing, until killed or removed
//
// It records every container created and every removal. An engine call it
// does not implement panics (the embedded engine is nil).
type fakeEngine struct {
	engine

	// fail makes an operation ("create", "attach", "start") fail with its
	// error.
	fail map[string]error
	// createActs: a failing create still makes the container, as an
	// engine that timed out after acting.
	createActs bool
	// failRemovals: by container name, how many removals fail (as a
	// restarting engine's do) before one works.
	failRemovals map[string]int
	// running, when set, receives a container's name once its init has
	// read its frame.
	running chan string

	mu         sync.Mutex
	seq        int
	images     map[string][]string       // image → the VOLUMEs its config declares
	containers map[string]*fakeContainer // by id, while they exist
	created    []*fakeContainer          // every container ever created, in order
	volumes    map[string]volume.Volume
	removedVol []string
}

// fakeContainer is one container of a fakeEngine.
type fakeContainer struct {
	id, name string
	config   *container.Config
	host     *container.HostConfig
	created  int64 // unix seconds

	// guarded by the engine's mu
	state     container.ContainerState
	removals  int          // successful removals: one is right
	kills     int          // kill calls
	command   string       // the command of the frame init read
	inside    net.Conn     // init's end of the attach stream
	outside   *trackedConn // the executor's end
	exit      chan container.WaitResponse
	stopOnce  sync.Once
	removedCh chan struct{} // closed at the removal
}

func newFakeEngine(images ...string) *fakeEngine {
	f := &fakeEngine{
		images:     map[string][]string{},
		containers: map[string]*fakeContainer{},
		volumes:    map[string]volume.Volume{},
	}
	for _, img := range images {
		f.images[img] = nil
	}
	return f
}

// newTestExecutor is an executor on f whose init volume can be filled.
func newTestExecutor(t *testing.T, f *fakeEngine) *Executor {
	t.Helper()
	e := newExecutor(f, Config{Instance: "test-instance", InitBinary: []byte("init")})
	e.retryDelay = time.Millisecond
	return e
}

var errEngineDown = errors.New("cannot connect to the Docker daemon")

func notFound(what string) error {
	return fmt.Errorf("%w: no such %s", cerrdefs.ErrNotFound, what)
}

// lookup finds a container by id or name; f.mu is held.
func (f *fakeEngine) lookup(ref string) (*fakeContainer, error) {
	if c, ok := f.containers[ref]; ok {
		return c, nil
	}
	for _, c := range f.containers {
		if c.name == ref {
			return c, nil
		}
	}
	return nil, notFound("container " + ref)
}

func (f *fakeEngine) Ping(context.Context) (types.Ping, error) { return types.Ping{}, nil }
func (f *fakeEngine) Close() error                             { return nil }

func (f *fakeEngine) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	vols, ok := f.images[ref]
	if !ok {
		return image.InspectResponse{}, notFound("image " + ref)
	}
	cfg := &dockerspec.DockerOCIImageConfig{}
	if len(vols) > 0 {
		cfg.Volumes = map[string]struct{}{}
		for _, v := range vols {
			cfg.Volumes[v] = struct{}{}
		}
	}
	return image.InspectResponse{ID: ref, Config: cfg}, nil
}

func (f *fakeEngine) ImageImport(_ context.Context, _ image.ImportSource, ref string, _ image.ImportOptions) (io.ReadCloser, error) {
	f.mu.Lock()
	f.images[ref] = nil
	f.mu.Unlock()
	return io.NopCloser(strings.NewReader("")), nil
}

func (f *fakeEngine) VolumeCreate(_ context.Context, o volume.CreateOptions) (volume.Volume, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := volume.Volume{Name: o.Name, Labels: o.Labels}
	f.volumes[o.Name] = v
	return v, nil
}

func (f *fakeEngine) VolumeList(_ context.Context, o volume.ListOptions) (volume.ListResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out volume.ListResponse
	for _, v := range f.volumes {
		if matchLabels(o.Filters, v.Labels) {
			out.Volumes = append(out.Volumes, &v)
		}
	}
	return out, nil
}

func (f *fakeEngine) VolumeRemove(_ context.Context, name string, _ bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.volumes[name]; !ok {
		return notFound("volume " + name)
	}
	delete(f.volumes, name)
	f.removedVol = append(f.removedVol, name)
	return nil
}

func (f *fakeEngine) ContainerCreate(_ context.Context, cfg *container.Config, host *container.HostConfig, _ *network.NetworkingConfig, _ *ocispec.Platform, name string) (container.CreateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.images[cfg.Image]; !ok {
		return container.CreateResponse{}, notFound("image " + cfg.Image)
	}
	if _, err := f.lookup(name); err == nil {
		return container.CreateResponse{}, fmt.Errorf("%w: name %s in use", cerrdefs.ErrConflict, name)
	}
	err := f.fail["create"]
	if err != nil && !f.createActs {
		return container.CreateResponse{}, err
	}
	f.seq++
	c := &fakeContainer{
		id: fmt.Sprintf("c%03d", f.seq), name: name, config: cfg, host: host,
		created: time.Now().Unix(), state: "created",
		exit: make(chan container.WaitResponse, 1), removedCh: make(chan struct{}),
	}
	f.containers[c.id] = c
	f.created = append(f.created, c)
	return container.CreateResponse{ID: c.id}, err
}

// add puts a container the test made up (for a sweep) on the engine.
func (f *fakeEngine) add(name, state string, created time.Time, labels map[string]string) *fakeContainer {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	c := &fakeContainer{
		id: fmt.Sprintf("c%03d", f.seq), name: name, config: &container.Config{Labels: labels},
		created: created.Unix(), state: container.ContainerState(state),
		exit: make(chan container.WaitResponse, 1), removedCh: make(chan struct{}),
	}
	f.containers[c.id] = c
	f.created = append(f.created, c)
	return c
}

func (f *fakeEngine) ContainerRemove(_ context.Context, ref string, _ container.RemoveOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(ref)
	if err != nil {
		return err
	}
	if f.failRemovals[c.name] > 0 {
		f.failRemovals[c.name]--
		return errEngineDown
	}
	delete(f.containers, c.id)
	c.removals++
	close(c.removedCh)
	c.stop(137)
	return nil
}

func (f *fakeEngine) ContainerAttach(_ context.Context, id string, _ container.AttachOptions) (types.HijackedResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail["attach"]; err != nil {
		return types.HijackedResponse{}, err
	}
	c, err := f.lookup(id)
	if err != nil {
		return types.HijackedResponse{}, err
	}
	outside, inside := net.Pipe()
	c.inside, c.outside = inside, &trackedConn{Conn: outside}
	return types.HijackedResponse{Conn: c.outside, Reader: bufio.NewReader(c.outside)}, nil
}

// trackedConn knows whether the executor closed its end of a stream.
type trackedConn struct {
	net.Conn
	closed atomic.Bool
}

func (c *trackedConn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

func (f *fakeEngine) ContainerWait(_ context.Context, id string, _ container.WaitCondition) (<-chan container.WaitResponse, <-chan error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	errs := make(chan error, 1)
	c, err := f.lookup(id)
	if err != nil {
		errs <- err
		return nil, errs
	}
	return c.exit, errs
}

func (f *fakeEngine) ContainerStart(_ context.Context, id string, _ container.StartOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail["start"]; err != nil {
		return err
	}
	c, err := f.lookup(id)
	if err != nil {
		return err
	}
	c.state = "running"
	go f.runInit(c, c.inside)
	return nil
}

func (f *fakeEngine) ContainerKill(_ context.Context, id, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(id)
	if err != nil {
		return err
	}
	c.kills++
	if c.state != "running" {
		return fmt.Errorf("%w: container %s is not running", cerrdefs.ErrConflict, id)
	}
	c.stop(137)
	return nil
}

func (f *fakeEngine) ContainerInspect(_ context.Context, id string) (container.InspectResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.lookup(id)
	if err != nil {
		return container.InspectResponse{}, err
	}
	return container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{
		ID: c.id, Name: "/" + c.name, State: &container.State{Status: c.state},
	}}, nil
}

// ContainerStatPath finds every path: the init volume is filled already.
func (f *fakeEngine) ContainerStatPath(_ context.Context, id, p string) (container.PathStat, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.lookup(id); err != nil {
		return container.PathStat{}, err
	}
	return container.PathStat{Name: p}, nil
}

func (f *fakeEngine) ContainerList(_ context.Context, o container.ListOptions) ([]container.Summary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []container.Summary
	for _, c := range f.containers {
		if matchLabels(o.Filters, c.config.Labels) {
			out = append(out, container.Summary{ID: c.id, Names: []string{"/" + c.name}, Labels: c.config.Labels, State: c.state, Created: c.created})
		}
	}
	return out, nil
}

// matchLabels reports whether labels pass every "label" filter of args
// ("key" or "key=value"), as the engine's list filters do.
func matchLabels(args filters.Args, labels map[string]string) bool {
	for _, want := range args.Get("label") {
		k, v, hasValue := strings.Cut(want, "=")
		got, ok := labels[k]
		if !ok || hasValue && got != v {
			return false
		}
	}
	return true
}

// stop ends the container with code: init's stream closes and the wait
// reports the exit, once.
func (c *fakeContainer) stop(code int64) {
	c.stopOnce.Do(func() {
		c.state = "exited"
		if c.inside != nil {
			c.inside.Close()
		}
		c.exit <- container.WaitResponse{StatusCode: code}
	})
}

// runInit is the container's init: it reads the frame and plays the
// command.
func (f *fakeEngine) runInit(c *fakeContainer, conn net.Conn) {
	h, err := initproc.ReadHeader(conn)
	if err != nil {
		return // killed or removed before a frame came (a pool container)
	}
	go func() { _, _ = io.Copy(io.Discard, conn) }() // the files and stdin
	f.mu.Lock()
	c.command = strings.Join(h.Command, " ")
	f.mu.Unlock()
	if f.running != nil {
		f.running <- c.name
	}
	out := stdcopy.NewStdWriter(conn, stdcopy.Stdout)
	exit := func(ex initproc.Exit) {
		js, _ := json.Marshal(ex)
		_ = initproc.WriteOutputFrame(out, initproc.FrameExit, js)
		f.mu.Lock()
		c.stop(int64(ex.Code))
		f.mu.Unlock()
	}
	switch {
	case len(h.Command) == 2 && h.Command[0] == "exit":
		code, _ := strconv.Atoi(h.Command[1])
		_ = initproc.WriteOutputFrame(out, initproc.FrameStdout, []byte("ran in "+c.name))
		exit(initproc.Exit{Code: code})
	case len(h.Command) == 1 && h.Command[0] == "timeout":
		exit(initproc.Exit{Code: 137, TimedOut: true})
	case len(h.Command) == 1 && h.Command[0] == "hang":
	default:
		exit(initproc.Exit{Code: 127, Error: "fake init: unknown command " + c.command})
	}
}

// byName returns the containers ever created whose name starts with prefix.
func (f *fakeEngine) byName(prefix string) []*fakeContainer {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*fakeContainer
	for _, c := range f.created {
		if strings.HasPrefix(c.name, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// waitRemoved waits until c is removed (in the background). The limit
// guards against a hang; it measures nothing.
func waitRemoved(t *testing.T, c *fakeContainer) {
	t.Helper()
	select {
	case <-c.removedCh:
	case <-time.After(20 * time.Second):
		t.Fatalf("container %s was never removed", c.name)
	}
}

// checkNothingLeft fails t unless every container ever created was
// removed exactly once, none is left, and every attach stream was closed.
func (f *fakeEngine) checkNothingLeft(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.created {
		if c.removals != 1 {
			t.Errorf("container %s (%s) removed %d times, want once", c.name, c.id, c.removals)
		}
		if c.outside != nil && !c.outside.closed.Load() {
			t.Errorf("container %s: the executor never closed its attach stream", c.name)
		}
	}
	if len(f.containers) != 0 {
		t.Errorf("%d containers left on the engine", len(f.containers))
	}
}
