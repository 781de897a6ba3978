// Package runner carries one run through the host: find the runtime, resolve
// the version, let the plugin plan, let the policy decide, let the executor
// run. It is the single path every entry point (HTTP, self-tests) uses.
package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/policy"
	"github.com/runhost/runhost/internal/registry"
	"github.com/runhost/runhost/internal/workspace"
	"github.com/runhost/runhost/shared"
)

// Result is a finished run with what it ran on.
type Result struct {
	RunID   string
	Runtime string
	Version string
	Image   string
	Build   *BuildInfo      // set when the run built an image
	Limits  executor.Limits // what the run was given
	executor.Result
}

// BuildInfo is what a Dockerfile build did before the run.
type BuildInfo struct {
	Image        string
	Cached       bool
	Duration     time.Duration
	Log          []byte
	LogTruncated bool
}

// Runner wires the parts of a run together.
type Runner struct {
	registry   *registry.Registry
	policy     *policy.Policy
	executor   executor.Executor
	workspaces *workspace.Store
	log        hclog.Logger
	maxContext int64
	// An interpreter session's interrupt grace and cap on a cell's rich
	// results.
	interrupt   time.Duration
	resultBytes int64

	selfTests selfTests
}

// Config holds what the runner needs besides its collaborators.
type Config struct {
	MaxContextBytes int64 // for build contexts read from a workspace
	// InterruptGrace is how long an interrupted cell of an interpreter
	// session may take to stop before its interpreter is restarted.
	InterruptGrace time.Duration
	// ResultBytes bounds the rich results of one cell.
	ResultBytes int64
}

// New returns a Runner. ws may be a disabled store.
func New(cfg Config, reg *registry.Registry, pol *policy.Policy, exec executor.Executor, ws *workspace.Store, log hclog.Logger) *Runner {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Runner{registry: reg, policy: pol, executor: exec, workspaces: ws, log: log, maxContext: cfg.MaxContextBytes, interrupt: cfg.InterruptGrace, resultBytes: cfg.ResultBytes}
}

// Run executes req from start to finish.
func (r *Runner) Run(ctx context.Context, req Request) (Result, error) {
	if err := req.Validate(); err != nil {
		return Result{}, err
	}
	p, err := r.registry.Lookup(req.Runtime)
	if err != nil {
		return Result{}, err
	}
	desc := p.Description()
	version, err := ResolveVersion(desc, req.Version)
	if err != nil {
		return Result{}, err
	}
	if err := checkCapabilities(desc, req); err != nil {
		return Result{}, err
	}
	if err := r.policy.CheckRequested(desc.Name, req.Limits); err != nil {
		return Result{}, err
	}
	hosts, err := policy.RunNetwork(networkGrant(req.Caller), req.Network)
	if err != nil {
		return Result{}, err
	}
	var ws *workspace.Ref
	if req.Workspace != "" {
		ref, err := r.workspaces.Resolve(req.Caller, req.Workspace)
		if err != nil {
			return Result{}, fmt.Errorf("workspace: %w", err)
		}
		if err := r.workspaces.EnsureDir(ref); err != nil {
			return Result{}, fmt.Errorf("workspace %s: %w", ref, err)
		}
		ws = &ref
	}
	if req.ContextPath != "" {
		files, err := r.contextFiles(desc, req)
		if err != nil {
			return Result{}, err
		}
		req.Files = files
	}

	plan := req.RunRequest
	plan.Version = version.Version
	spec, err := p.Plan(ctx, plan)
	if err != nil {
		return Result{}, err
	}
	id := newRunID()
	in := policy.Input{
		RunID:          id,
		Runtime:        desc.Name,
		Capabilities:   desc.Capabilities,
		Version:        version,
		Spec:           spec,
		Requested:      req.Limits,
		Stdin:          req.Stdin,
		DeclaredImages: r.declaredImages(),
		Workspace:      ws,
		Sent:           sentPaths(req.Files),
		Owner:          req.Caller.Name,
		Resolve: func(ref string) (executor.ImageInfo, error) {
			return r.executor.ResolveImage(ctx, ref)
		},
		Network:     hosts,
		BuildEgress: req.Caller.BuildEgress,
	}
	if ws != nil {
		in.WorkspaceSource = r.workspaces.MountSource(*ws)
	}
	out := Result{RunID: id, Runtime: desc.Name, Version: version.Version}
	if spec.Build != nil {
		built, failed, err := r.build(ctx, in)
		var missing *policy.BaseMissingError
		if errors.As(err, &missing) {
			// An allowed base the engine lacks: the Dockerfile does not build.
			out.Build = &BuildInfo{}
			out.Result = executor.Result{Stage: executor.StageBuild, ExitCode: 1, Stderr: []byte(missing.Error() + "\n")}
			return out, nil
		}
		if err != nil {
			return Result{}, err
		}
		out.Build = &BuildInfo{Image: built.Ref, Cached: built.Cached, Duration: built.Duration, Log: built.Log, LogTruncated: built.LogTruncated}
		if failed {
			out.Result = executor.Result{Stage: executor.StageBuild, ExitCode: 1, Stderr: []byte(built.Error + "\n")}
			return out, nil
		}
		in.Built = &built
	}
	job, err := r.policy.Job(in)
	if err != nil {
		return Result{}, err
	}
	job.Output = req.Output
	job.StdinStream = req.StdinStream
	res, err := r.executor.Run(ctx, job)
	if err != nil {
		return Result{}, err
	}
	out.Image, out.Result, out.Limits = job.Image, res, job.Limits
	if spec.Build == nil && spec.Image != "" {
		out.Image = spec.Image // the name the request gave; the job runs the image it was pinned to
	}
	return out, nil
}

// sentPaths are the paths of the files the caller sent.
func sentPaths(files []shared.File) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.Path
	}
	return out
}

// contextFiles reads a build context from the workspace.
func (r *Runner) contextFiles(d shared.Description, req Request) ([]shared.File, error) {
	if !slices.Contains(d.Capabilities, shared.CapDockerfile) {
		return nil, shared.Invalidf("runtime %q does not support context_path", d.Name)
	}
	if len(req.Files) > 0 {
		return nil, shared.Invalidf("give the build context as files or as context_path, not both")
	}
	ref, err := r.workspaces.Resolve(req.Caller, req.ContextPath)
	if err != nil {
		return nil, fmt.Errorf("context_path: %w", err)
	}
	tree, err := r.workspaces.ReadTree(ref, r.maxContext)
	if err != nil {
		return nil, fmt.Errorf("context_path %s: %w", ref, err)
	}
	files := make([]shared.File, 0, len(tree))
	for _, f := range tree {
		files = append(files, shared.File{Path: f.Path, Content: f.Content})
	}
	return files, nil
}

// build builds the spec's Dockerfile, or finds it built.
func (r *Runner) build(ctx context.Context, in policy.Input) (built executor.BuiltImage, failed bool, err error) {
	b, err := r.policy.Build(in)
	if err != nil {
		return executor.BuiltImage{}, false, err
	}
	built, err = r.executor.Build(ctx, b)
	if err != nil {
		return executor.BuiltImage{}, false, err
	}
	if built.Failed && !b.Network {
		// It may have failed for want of a network: say which grant gives one.
		built.Error += "\n" + policy.NoBuildNetwork
		built.Log = append(built.Log, "\n"+policy.NoBuildNetwork+"\n"...)
	}
	return built, built.Failed, nil
}

// networkGrant is what the caller's key grants its runs.
func networkGrant(id auth.Identity) policy.NetworkGrant {
	return policy.NetworkGrant{Hosts: id.Egress, Default: id.EgressDefault}
}

// declaredImages lists every image the served runtimes declare: the
// default allow-list for custom images.
func (r *Runner) declaredImages() []string {
	var out []string
	for _, p := range r.registry.Plugins() {
		for _, v := range p.Description().Versions {
			if v.Image != "" && !slices.Contains(out, v.Image) {
				out = append(out, v.Image)
			}
		}
	}
	return out
}

// checkCapabilities refuses request features the runtime does not declare.
func checkCapabilities(d shared.Description, req Request) error {
	missing := func(c shared.Capability, what string) error {
		if slices.Contains(d.Capabilities, c) {
			return nil
		}
		return shared.Invalidf("runtime %q does not support %s", d.Name, what)
	}
	if len(req.Stdin) > 0 || req.StdinStream != nil {
		if err := missing(shared.CapStdin, "stdin"); err != nil {
			return err
		}
	}
	if len(req.Args) > 0 {
		if err := missing(shared.CapArgs, "args"); err != nil {
			return err
		}
	}
	if len(req.Env) > 0 {
		if err := missing(shared.CapEnv, "env"); err != nil {
			return err
		}
	}
	if len(req.Files) > 0 && !slices.Contains(d.Capabilities, shared.CapDockerfile) {
		if err := missing(shared.CapFiles, "files"); err != nil {
			return err
		}
	}
	if len(req.Packages) > 0 {
		if err := missing(shared.CapPackages, "requirements or packages"); err != nil {
			return err
		}
	}
	if req.Image != "" {
		if err := missing(shared.CapCustomImage, "image"); err != nil {
			return err
		}
	}
	hasCommand := len(req.Command.Argv) > 0 || req.Command.Shell != ""
	if hasCommand && !slices.Contains(d.Capabilities, shared.CapCustomImage) && !slices.Contains(d.Capabilities, shared.CapDockerfile) {
		return shared.Invalidf("runtime %q does not support command", d.Name)
	}
	if req.Dockerfile != "" || len(req.BuildArgs) > 0 {
		if err := missing(shared.CapDockerfile, "dockerfile or build_args"); err != nil {
			return err
		}
	}
	return nil
}

func newRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// RuntimeInfo describes a runtime for listing, with whether each version's
// image is on the engine.
type RuntimeInfo struct {
	shared.Description
	Plugin    registry.FileReport       // the process serving it
	Installed map[string]bool           // by version
	SelfTests map[string]SelfTestResult // by version; absent until checked
	// ImageAliases, for runtimes that take an image or a Dockerfile, are
	// the image names this host maps to its own images.
	ImageAliases map[string]string
}

// Runtimes lists every served runtime. Installed is false for versions whose
// image is missing or when the engine cannot be asked.
func (r *Runner) Runtimes(ctx context.Context) []RuntimeInfo {
	var out []RuntimeInfo
	for _, p := range r.registry.Plugins() {
		out = append(out, r.info(ctx, p))
	}
	return out
}

// Runtime describes the runtime served under name (or alias).
func (r *Runner) Runtime(ctx context.Context, name string) (RuntimeInfo, error) {
	p, err := r.registry.Lookup(name)
	if err != nil {
		return RuntimeInfo{}, err
	}
	return r.info(ctx, p), nil
}

func (r *Runner) info(ctx context.Context, p *registry.Plugin) RuntimeInfo {
	d := p.Description()
	info := RuntimeInfo{Description: d, Plugin: p.Report(), Installed: map[string]bool{}, SelfTests: map[string]SelfTestResult{}}
	if slices.Contains(d.Capabilities, shared.CapCustomImage) || slices.Contains(d.Capabilities, shared.CapDockerfile) {
		info.ImageAliases = r.policy.ImageAliases()
	}
	for _, v := range d.Versions {
		if st, ok := r.selfTests.get(d.Name, v.Version); ok {
			info.SelfTests[v.Version] = st
		}
		if v.Image == "" { // built per request
			info.Installed[v.Version] = true
			continue
		}
		ok, err := r.executor.ImageExists(ctx, v.Image)
		if err != nil {
			r.log.Debug("cannot check image", "image", v.Image, "error", err)
		}
		info.Installed[v.Version] = ok
	}
	return info
}

// Ready reports what keeps the host from serving runs: the engine not
// answering or no healthy plugin. Nil means ready.
func (r *Runner) Ready(ctx context.Context) error {
	if err := r.executor.Ping(ctx); err != nil {
		return err
	}
	for _, p := range r.registry.Plugins() {
		if state, _ := p.State(); state == registry.StateHealthy {
			return nil
		}
	}
	return fmt.Errorf("no healthy runtime plugin (see GET /plugins)")
}
