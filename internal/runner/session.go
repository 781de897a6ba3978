package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/policy"
	"github.com/runhost/runhost/internal/workspace"
	"github.com/runhost/runhost/shared"
)

// SessionSpec is what a session is started with.
type SessionSpec struct {
	Caller    auth.Identity // who starts it: its workspace names resolve for it
	Runtime   string
	Version   string
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
	return sess, base, err
}

// RunInSession plans req with the session's runtime and version and runs
// it in the session. The container's limits are the session's; a request
// may only shorten nothing but its own timeout.
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
	id := newRunID()
	job, err := r.policy.Job(policy.Input{
		RunID:           id,
		Runtime:         desc.Name,
		Capabilities:    desc.Capabilities,
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
		return Result{}, &policy.SpecError{Runtime: desc.Name, Field: "image", Msg: fmt.Sprintf("%q is not the session's image %q", job.Image, base.Job.Image)}
	}
	job.Output = req.Output
	res, err := sess.Run(ctx, job)
	if err != nil {
		return Result{}, err
	}
	return Result{RunID: id, Runtime: desc.Name, Version: base.Version.Version, Image: job.Image, Limits: job.Limits, Result: res}, nil
}
