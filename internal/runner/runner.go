// Package runner carries one run through the host: find the runtime, resolve
// the version, let the plugin plan, let the policy decide, let the executor
// run. It is the single path every entry point (HTTP, self-tests) uses.
package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/hashicorp/go-hclog"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/policy"
	"github.com/runhost/runhost/internal/registry"
	"github.com/runhost/runhost/shared"
)

// Request is a run request as the host sees it, already decoded and checked
// for shape at the edge.
type Request struct {
	Runtime string // name or alias
	Version string // exact, prefix or empty
	Code    string
	Files   []shared.File
	Entry   string
	Stdin   []byte
	Args    []string
	Env     map[string]string
	Limits  policy.Requested
}

// Result is a finished run with what it ran on.
type Result struct {
	RunID   string
	Runtime string
	Version string
	Image   string
	executor.Result
}

// Runner wires the parts of a run together.
type Runner struct {
	registry *registry.Registry
	policy   *policy.Policy
	executor executor.Executor
	log      hclog.Logger
}

// New returns a Runner.
func New(reg *registry.Registry, pol *policy.Policy, exec executor.Executor, log hclog.Logger) *Runner {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Runner{registry: reg, policy: pol, executor: exec, log: log}
}

// Run executes req from start to finish.
func (r *Runner) Run(ctx context.Context, req Request) (Result, error) {
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
	if err := r.policy.CheckRequested(req.Limits); err != nil {
		return Result{}, err
	}

	spec, err := p.Plan(ctx, shared.RunRequest{
		Version: version.Version,
		Code:    req.Code,
		Files:   req.Files,
		Entry:   req.Entry,
		Args:    req.Args,
		Env:     req.Env,
	})
	if err != nil {
		return Result{}, err
	}
	id := newRunID()
	job, err := r.policy.Job(policy.Input{
		RunID:     id,
		Runtime:   desc.Name,
		Version:   version,
		Spec:      spec,
		Requested: req.Limits,
		Stdin:     req.Stdin,
	})
	if err != nil {
		return Result{}, err
	}
	res, err := r.executor.Run(ctx, job)
	if err != nil {
		return Result{}, err
	}
	return Result{RunID: id, Runtime: desc.Name, Version: version.Version, Image: job.Image, Result: res}, nil
}

// checkCapabilities refuses request features the runtime does not declare.
func checkCapabilities(d shared.Description, req Request) error {
	missing := func(c shared.Capability, what string) error {
		if slices.Contains(d.Capabilities, c) {
			return nil
		}
		return shared.Invalidf("runtime %q does not support %s", d.Name, what)
	}
	if len(req.Stdin) > 0 {
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
	if len(req.Files) > 0 {
		if err := missing(shared.CapFiles, "files"); err != nil {
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
	Installed map[string]bool // by version
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
	info := RuntimeInfo{Description: d, Installed: map[string]bool{}}
	for _, v := range d.Versions {
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
