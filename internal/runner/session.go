package runner

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/pathguard"
	"github.com/runhost/runhost/internal/policy"
	"github.com/runhost/runhost/internal/registry"
	"github.com/runhost/runhost/internal/workspace"
	"github.com/runhost/runhost/shared"
)

// SessionSpec is what a session is started with.
type SessionSpec struct {
	Caller    auth.Identity // who starts it: its workspace names resolve for it
	Runtime   string
	Version   string
	Mode      string // ModePlain (or empty) or ModeInterpreter
	Workspace string // "name/sub/dir", optional
	Limits    policy.Requested
	// Network is what the session's runs ask to reach (see Request.Network).
	Network *policy.NetworkRequest
	// Lifetime bounds how long the session's container may live (the
	// sessions manager's maximum lifetime). A sweep treats a container as
	// left behind only after it, so it must cover the whole session, not
	// one run's timeout. Zero leaves the run timeout.
	Lifetime time.Duration
}

// Session modes.
const (
	// ModePlain: every run starts a program in the session's container.
	ModePlain = "plain"
	// ModeInterpreter: the container keeps the runtime's interpreter
	// resident; every run is one cell of code in its global state.
	ModeInterpreter = "interpreter"
)

// ErrInterpreterFailed means a session's interpreter driver did not start.
var ErrInterpreterFailed = errors.New("the interpreter did not start")

// SessionBase is what a session was started with: what every run in it
// shares.
type SessionBase struct {
	Runtime   string
	Version   shared.Version
	Caps      []shared.Capability
	Workspace *workspace.Ref
	Source    string // where the engine sees the workspace session
	Limits    policy.Requested
	Network   []string     // hosts every run may reach through the egress proxy
	Job       executor.Job // the container-level part of every run's job
	Kernel    executor.Job // how the interpreter was started (interpreter mode)
	// Interpreter: the session keeps an interpreter; runs are its cells.
	Interpreter bool
}

// StartSession resolves the runtime and version, decides the container
// (image, limits, workspace) with the policy, and starts it.
func (r *Runner) StartSession(ctx context.Context, spec SessionSpec) (executor.Session, SessionBase, error) {
	if err := spec.Validate(); err != nil {
		return nil, SessionBase{}, err
	}
	p, err := r.registry.Lookup(spec.Runtime)
	if err != nil {
		return nil, SessionBase{}, err
	}
	desc := p.Description()
	version, err := ResolveVersion(desc, spec.Version)
	if err != nil {
		return nil, SessionBase{}, err
	}
	if version.Image == "" {
		return nil, SessionBase{}, shared.Invalidf("runtime %q has no image of its own to start a session in", desc.Name)
	}
	hosts, err := policy.RunNetwork(networkGrant(spec.Caller), spec.Network)
	if err != nil {
		return nil, SessionBase{}, err
	}
	base := SessionBase{Runtime: desc.Name, Version: version, Caps: desc.Capabilities, Limits: spec.Limits, Network: hosts}
	var kernel shared.Spec
	if spec.Mode == ModeInterpreter {
		if kernel, err = r.planKernel(ctx, p, desc, version); err != nil {
			return nil, SessionBase{}, err
		}
		base.Interpreter = true
	}
	if spec.Workspace != "" {
		ref, err := r.workspaces.Resolve(spec.Caller, spec.Workspace)
		if err != nil {
			return nil, SessionBase{}, fmt.Errorf("workspace: %w", err)
		}
		if err := r.workspaces.EnsureDir(ref); err != nil {
			return nil, SessionBase{}, fmt.Errorf("workspace %s: %w", ref, err)
		}
		base.Workspace, base.Source = &ref, r.workspaces.MountSource(ref)
	}
	// The container is decided like a run's, from a spec that only names
	// the version's image.
	job, err := r.policy.Job(policy.Input{
		RunID:           "session-" + newRunID(),
		Runtime:         desc.Name,
		Capabilities:    desc.Capabilities,
		Version:         version,
		Spec:            shared.Spec{Image: version.Image, Command: []string{"true"}},
		Requested:       spec.Limits,
		Workspace:       base.Workspace,
		WorkspaceSource: base.Source,
		Network:         hosts,
	})
	if err != nil {
		return nil, SessionBase{}, err
	}
	job.Labels["runhost.session"] = "true"
	if spec.Lifetime > 0 {
		// The container's own bound; every run in it brings its timeout.
		job.Limits.Timeout = spec.Lifetime
	}
	base.Job = job
	sess, err := r.executor.StartSession(ctx, job)
	if err != nil || !base.Interpreter {
		return sess, base, err
	}
	if err := r.startKernel(ctx, sess, &base, kernel); err != nil {
		_ = sess.Close()
		return nil, SessionBase{}, err
	}
	return sess, base, nil
}

// planKernel asks the runtime how to start its interpreter and checks the
// answer: a runtime without one is refused.
func (r *Runner) planKernel(ctx context.Context, p *registry.Plugin, desc shared.Description, version shared.Version) (shared.Spec, error) {
	if !slices.Contains(desc.Capabilities, shared.CapInterpreter) {
		return shared.Spec{}, Invalid("interpreter_unsupported", "runtime %q has no interpreter mode (its plugin does not declare the %q capability); start a plain session", desc.Name, shared.CapInterpreter)
	}
	spec, err := p.Plan(ctx, shared.RunRequest{Version: version.Version, VersionImage: version.Image, Interpreter: true})
	if err != nil {
		return shared.Spec{}, err
	}
	refuse := func(field, format string, args ...any) error {
		return &policy.SpecError{Runtime: desc.Name, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	k := spec.Kernel
	switch {
	case k == nil:
		return shared.Spec{}, Invalid("interpreter_unsupported", "runtime %q planned no interpreter for version %s; start a plain session", desc.Name, version.Version)
	case k.Protocol != shared.KernelProtocol:
		return shared.Spec{}, refuse("kernel.protocol", "%q: the host speaks %s", k.Protocol, shared.KernelProtocol)
	case k.Driver.Path == "" || strings.Contains(k.Driver.Path, "/") || pathguard.Check(k.Driver.Path) != nil:
		return shared.Spec{}, refuse("kernel.driver", "path %q: want one plain file name", k.Driver.Path)
	case len(k.Command) == 0:
		return shared.Spec{}, refuse("kernel.command", "empty")
	case spec.Install != nil || spec.Build != nil || len(spec.Files) > 0:
		return shared.Spec{}, refuse("kernel", "an interpreter's plan has no install, build or files")
	}
	if spec.Image != version.Image {
		return shared.Spec{}, refuse("image", "%q is not the version's image %q", spec.Image, version.Image)
	}
	return spec, nil
}

// startKernel starts the session's interpreter in its container: the
// driver's file, command, environment and working directory decided as a
// run's are, and the host's grace and result cap.
func (r *Runner) startKernel(ctx context.Context, sess executor.Session, base *SessionBase, spec shared.Spec) error {
	k := spec.Kernel
	job, err := r.policy.Job(policy.Input{
		RunID:           base.Job.ID + "-kernel",
		Runtime:         base.Runtime,
		Capabilities:    base.Caps,
		Version:         base.Version,
		Spec:            shared.Spec{Image: spec.Image, Command: k.Command, Env: spec.Env, WorkDir: spec.WorkDir},
		Requested:       policy.Requested{MemoryBytes: base.Limits.MemoryBytes, CPUs: base.Limits.CPUs},
		Workspace:       base.Workspace,
		WorkspaceSource: base.Source,
		Network:         base.Network, // the driver's environment reaches the proxy: every cell's does
	})
	if err != nil {
		return err
	}
	// The driver goes to shared.KernelDir, placed from its parent (/tmp,
	// which every container has): outside the run directory and any
	// workspace.
	job.FilesDir = path.Dir(shared.KernelDir)
	job.Files = []executor.File{{Path: path.Join(path.Base(shared.KernelDir), k.Driver.Path), Content: k.Driver.Content}}
	job.Kernel = &executor.Kernel{Protocol: k.Protocol, InterruptGrace: r.interrupt, ResultBytes: r.resultBytes}
	res, err := sess.Run(ctx, job)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("%w: %s %s: %s", ErrInterpreterFailed, base.Runtime, base.Version.Version, strings.TrimSpace(string(res.Stderr)))
	}
	base.Kernel = job
	return nil
}

// RunInSession plans req with the session's runtime and version and runs
// it in the session; in an interpreter session req is one cell. The
// container's limits are the session's; a request may only shorten
// nothing but its own timeout.
func (r *Runner) RunInSession(ctx context.Context, sess executor.Session, base *SessionBase, req Request) (Result, error) {
	if err := req.Validate(); err != nil {
		return Result{}, err
	}
	if req.Limits.MemoryBytes != 0 || req.Limits.CPUs != 0 {
		return Result{}, shared.Invalidf("memory_mb and cpus are set when the session starts")
	}
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"workspace", req.Workspace != ""},
		{"context_path", req.ContextPath != ""},
		{"requirements (or packages)", len(req.Packages) > 0},
		{"image", req.Image != ""},
		{"dockerfile", req.Dockerfile != ""},
		{"build_args", len(req.BuildArgs) > 0},
		{"network", req.Network != nil},
	} {
		if f.set {
			return Result{}, shared.Invalidf("%s is decided when the session starts, not per run: a session run takes code, files, entry, command, stdin, args, env, version (the session's) and timeout_ms", f.name)
		}
	}
	p, err := r.registry.Lookup(base.Runtime)
	if err != nil {
		return Result{}, err
	}
	desc := p.Description()
	if req.Version != "" {
		// Honoured when it names the session's version; nothing else can run
		// in the session's container.
		v, err := ResolveVersion(desc, req.Version)
		if err != nil {
			return Result{}, err
		}
		if v.Version != base.Version.Version {
			return Result{}, shared.Invalidf("version %q is %s %s; this session runs %s %s (start another session for it)", req.Version, desc.Name, v.Version, desc.Name, base.Version.Version)
		}
	}
	if base.Interpreter {
		return r.runCell(ctx, sess, base, req)
	}
	if err := checkCapabilities(desc, req); err != nil {
		return Result{}, err
	}
	limits := base.Limits
	limits.Timeout = req.Limits.Timeout
	if err := r.policy.CheckRequested(base.Runtime, limits); err != nil {
		return Result{}, err
	}
	plan := req.RunRequest // what a session run may set; the rest was refused above
	plan.Version = base.Version.Version
	spec, err := p.Plan(ctx, plan)
	if err != nil {
		return Result{}, err
	}
	if spec.Install != nil || spec.Build != nil {
		return Result{}, shared.Invalidf("runtime %q planned an install or a build, which a session run cannot do", desc.Name)
	}
	return r.runSessionJob(ctx, sess, base, req, spec, limits, nil)
}

// runCell runs req's code as one cell of the session's interpreter, with
// req's files placed first.
func (r *Runner) runCell(ctx context.Context, sess executor.Session, base *SessionBase, req Request) (Result, error) {
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"entry", req.Entry != ""},
		{"command", len(req.Command.Argv) > 0 || req.Command.Shell != ""},
		{"stdin", len(req.Stdin) > 0 || req.StdinStream != nil},
		{"args", len(req.Args) > 0},
		{"env", len(req.Env) > 0},
	} {
		if f.set {
			return Result{}, Invalid("invalid_request", "%s: a cell of an interpreter session takes code, files and timeout_ms", f.name)
		}
	}
	limits := base.Limits
	limits.Timeout = req.Limits.Timeout
	if err := r.policy.CheckRequested(base.Runtime, limits); err != nil {
		return Result{}, err
	}
	k := base.Kernel
	spec := shared.Spec{Image: k.Image, Command: k.Command, Files: req.Files}
	return r.runSessionJob(ctx, sess, base, req, spec, limits, func(job *executor.Job) {
		job.Cell, job.Stdin, job.Results = true, []byte(req.Code), req.Results
		job.Env, job.WorkDir = k.Env, k.WorkDir
	})
}

// runSessionJob decides spec's job as a run's, with the session's
// container, and runs it in the session; cell, when set, makes it a cell.
func (r *Runner) runSessionJob(ctx context.Context, sess executor.Session, base *SessionBase, req Request, spec shared.Spec, limits policy.Requested, cell func(*executor.Job)) (Result, error) {
	id := newRunID()
	job, err := r.policy.Job(policy.Input{
		RunID:           id,
		Runtime:         base.Runtime,
		Capabilities:    base.Caps,
		Version:         base.Version,
		Spec:            spec,
		Requested:       limits,
		Stdin:           req.Stdin,
		Workspace:       base.Workspace,
		WorkspaceSource: base.Source,
		Sent:            sentPaths(req.Files),
		Network:         base.Network,
	})
	if err != nil {
		return Result{}, err
	}
	if job.Image != base.Job.Image {
		return Result{}, &policy.SpecError{Runtime: base.Runtime, Field: "image", Msg: fmt.Sprintf("%q is not the session's image %q", job.Image, base.Job.Image)}
	}
	job.Output = req.Output
	if cell != nil {
		cell(&job)
	}
	res, err := sess.Run(ctx, job)
	if err != nil {
		return Result{}, err
	}
	return Result{RunID: id, Runtime: base.Runtime, Version: base.Version.Version, Image: job.Image, Limits: job.Limits, Result: res}, nil
}
