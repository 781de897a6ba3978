// Package app wires the host together from its configuration: executor,
// plugins, policy, runner and HTTP API. cmd/host and the end-to-end tests
// both build the host through it, so the tests run exactly what ships.
package app

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	corev1 "k8s.io/api/core/v1"

	"github.com/runhost/runhost/internal/admission"
	"github.com/runhost/runhost/internal/api"
	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/config"
	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/docker"
	"github.com/runhost/runhost/internal/executor/helperimage"
	"github.com/runhost/runhost/internal/executor/kubernetes"
	"github.com/runhost/runhost/internal/metrics"
	"github.com/runhost/runhost/internal/policy"
	"github.com/runhost/runhost/internal/registry"
	"github.com/runhost/runhost/internal/runner"
	"github.com/runhost/runhost/internal/sessions"
	"github.com/runhost/runhost/internal/workspace"
	"github.com/runhost/runhost/internal/workspace/sessionfs"
)

// App is a wired host.
type App struct {
	Instance  string           // id on every container this host creates
	Executor  engine           // the executor the host runs jobs on
	Docker    *docker.Executor // the same, when it is Docker (nil on Kubernetes)
	Registry  *registry.Registry
	Runner    *runner.Runner
	API       *api.Server
	Admission *admission.Controller
	Metrics   *metrics.Metrics
	Sessions  *sessions.Manager

	sessionFS *sessionfs.FS // nil: workspace sessions are not bounded filesystems
	cfg       config.Config
	log       hclog.Logger
}

// engine is an executor the host can also sweep and close.
type engine interface {
	executor.Executor
	Sweep(ctx context.Context) (int, error)
	Close() error
}

// New builds the host and starts its plugins.
func New(ctx context.Context, cfg config.Config, log hclog.Logger) (*App, error) {
	return newApp(ctx, cfg, log, nil, nil)
}

// NewWithExecutor builds the host around exec instead of the engine the
// configuration names (RUNHOST_EXECUTOR and the init and egress binaries
// are not used): tests wire a fake executor (internal/executor/fakeexec)
// to the real plugins, policy, runner, sessions and API. The host closes
// exec when it has a Close method.
func NewWithExecutor(ctx context.Context, cfg config.Config, log hclog.Logger, exec executor.Executor) (*App, error) {
	e, ok := exec.(engine)
	if !ok {
		e = bareEngine{exec}
	}
	return newApp(ctx, cfg, log, nil, e)
}

// bareEngine is an executor without a sweep or a client to close.
type bareEngine struct{ executor.Executor }

func (bareEngine) Sweep(context.Context) (int, error) { return 0, nil }
func (bareEngine) Close() error                       { return nil }

// newApp builds the host; files, when set, are the only plugins it serves;
// exec, when set, is the engine instead of the configured one.
func newApp(ctx context.Context, cfg config.Config, log hclog.Logger, files []string, exec engine) (*App, error) {
	var initBinary, egressBinary []byte
	var err error
	if exec == nil { // the configured engine runs runhost's own binaries
		if initBinary, err = os.ReadFile(cfg.Engine.InitPath); err != nil {
			return nil, fmt.Errorf("read the init binary (build it with `make build`, or set RUNHOST_INIT_PATH): %w", err)
		}
		if egressBinary, err = os.ReadFile(cfg.Egress.Path); err != nil {
			log.Warn("no egress proxy binary: installs that need the network will fail (build it with `make build`, or set RUNHOST_EGRESS_PATH)", "error", err)
		}
	}
	instance := newInstanceID()
	var dock *docker.Executor
	switch k := cfg.Kubernetes; {
	case exec != nil:
	case cfg.Engine.Executor == "kubernetes":
		egressImage := k.EgressImage
		if egressImage == "" && len(egressBinary) > 0 {
			egressImage = helperimage.Egress(egressBinary)
		}
		exec, err = kubernetes.New(kubernetes.Config{
			Kubeconfig:     k.Kubeconfig,
			Namespace:      k.Namespace,
			InitImage:      cmp.Or(k.InitImage, helperimage.Init(initBinary)),
			RuntimeClass:   k.RuntimeClass,
			RuntimeClasses: k.RuntimeClasses,
			PullPolicy:     corev1.PullPolicy(k.PullPolicy),
			Workspace:      kubernetes.WorkspaceVolume{Claim: k.WorkspaceClaim, Root: cfg.Workspace.DaemonDir},
			Cache: kubernetes.CacheVolume{
				Claim:      k.CacheClaim,
				Root:       k.CacheRoot,
				MaxEntries: cfg.Installs.CacheEntries,
				MaxBytes:   cfg.Installs.CacheBytes,
			},
			Egress: kubernetes.EgressConfig{Image: egressImage, Allow: cfg.Egress.Allow, CIDRs: cfg.Egress.CIDRStrings()},
			Build: kubernetes.BuildConfig{
				Repository:     k.BuildRepo,
				Insecure:       k.BuildInsecure,
				Namespace:      k.BuildNamespace,
				Image:          cmp.Or(k.BuilderImage, cfg.Builds.BuilderImage),
				Seccomp:        k.BuilderSeccomp,
				BuildkitConfig: k.BuildkitConfig,
			},
			User:     cfg.Policy.RunUser.String(),
			Instance: instance,
			Logger:   log.Named("kubernetes"),
		})
	default:
		dock, err = docker.New(docker.Config{
			Instance:   instance,
			InitBinary: initBinary,
			Logger:     log.Named("docker"),
			User:       cfg.Policy.RunUser.String(),
			Egress: docker.EgressConfig{
				Binary:  egressBinary,
				Network: cfg.Egress.Network,
				Allow:   cfg.Egress.Allow,
				CIDRs:   cfg.Egress.CIDRStrings(),
			},
			DepsCacheEntries:  cfg.Installs.CacheEntries,
			DepsCacheBytes:    cfg.Installs.CacheBytes,
			BuildCacheEntries: cfg.Builds.CacheEntries,
			BuildCacheBytes:   cfg.Builds.CacheBytes,
			BuilderImage:      cfg.Builds.BuilderImage,
			BasesCacheBytes:   cfg.Builds.BasesCacheBytes,
		})
		exec = dock
	}
	if err != nil {
		return nil, err
	}
	var checksums map[string]string
	if cfg.Plugins.Checksums != "" {
		if checksums, err = registry.LoadChecksums(cfg.Plugins.Checksums); err != nil {
			_ = exec.Close()
			return nil, fmt.Errorf("RUNHOST_PLUGIN_CHECKSUMS: %w", err)
		}
	}
	reg, err := registry.Discover(ctx, registry.Config{
		Files:        files,
		Checksums:    checksums,
		Dir:          cfg.Plugins.Dir,
		StartTimeout: cfg.Plugins.StartTimeout,
		CallTimeout:  cfg.Plugins.CallTimeout,
		Logger:       log.Named("plugins"),
	})
	if err != nil {
		_ = exec.Close()
		return nil, err
	}
	polCfg, err := PolicyConfig(cfg)
	if err != nil {
		reg.Close()
		_ = exec.Close()
		return nil, err
	}
	pol := policy.New(polCfg)
	pooled, hasPool := exec.(warmPool)
	if hasPool {
		pooled.SetPool(poolTargets(cfg.Pool.Targets, reg, pol, log), cfg.Pool.MemoryBytes)
	}
	if root := cfg.Workspace.Root; root != "" {
		if err := workspace.PrepareRoot(root); err != nil {
			reg.Close()
			_ = exec.Close()
			return nil, fmt.Errorf("RUNHOST_WORKSPACE_ROOT=%s is not a usable workspace root (fix it, or turn workspaces off with RUNHOST_WORKSPACE_ROOT=off): %w", root, err)
		}
	}
	uid, gid := int(cfg.Policy.RunUser.UID), int(cfg.Policy.RunUser.GID)
	sfs, err := sessionFS(ctx, cfg, uid, gid, log.Named("workspace"))
	if err != nil {
		reg.Close()
		_ = exec.Close()
		return nil, err
	}
	wsCfg := workspace.Config{
		Root:         cfg.Workspace.Root,
		DaemonDir:    cfg.Workspace.DaemonDir,
		QuotaBytes:   cfg.Workspace.QuotaBytes,
		MaxFileBytes: cfg.Workspace.FileBytes,
		UID:          uid,
		GID:          gid,
	}
	if sfs != nil {
		wsCfg.FS = sfs
	}
	ws := workspace.NewStore(wsCfg)
	run := runner.New(runner.Config{MaxContextBytes: cfg.Builds.MaxContextBytes, InterruptGrace: cfg.Sessions.InterruptGrace, ResultBytes: cfg.Sessions.ResultBytes}, reg, pol, exec, ws, log.Named("runner"))
	var keys *auth.Keys
	if cfg.Auth.KeysFile != "" {
		if keys, err = auth.Load(cfg.Auth.KeysFile); err != nil {
			reg.Close()
			_ = exec.Close()
			return nil, fmt.Errorf("RUNHOST_API_KEYS_FILE: %w", err)
		}
		log.Info("API keys loaded", "keys", keys.Len())
		if names := keys.EgressKeys(); len(names) > 0 && cfg.Engine.Executor == "kubernetes" {
			reg.Close()
			_ = exec.Close()
			return nil, fmt.Errorf("RUNHOST_API_KEYS_FILE: keys %s are granted egress=, but network for runs is not available on Kubernetes (only dependency installs reach the egress proxy)", strings.Join(names, ", "))
		}
	}
	anonymous := auth.Anonymous()
	anonymous.Egress, anonymous.EgressDefault, anonymous.BuildEgress = cfg.Egress.RunAllow, cfg.Egress.RunDefault, cfg.Builds.Network
	ac := cfg.Admission
	adm := admission.New(admission.Config{
		MaxInFlight: ac.MaxRuns,
		MaxQueue:    ac.QueueLength,
		MaxWait:     ac.QueueWait,
		KeyInFlight: ac.KeyMaxRuns,
		KeyRate:     ac.KeyRate,
		KeyBurst:    ac.KeyBurst,
	})
	met := metrics.New(metrics.Gauges{
		InFlight: func() float64 { return float64(adm.Stats().InFlight) },
		Queued:   func() float64 { return float64(adm.Stats().Queued) },
	})
	reg.OnRestart(met.PluginRestarted)
	met.Plugins(reg.Names())
	met.Runtimes(func(name string) (string, bool) {
		p, err := reg.Lookup(name)
		if err != nil {
			return "", false
		}
		return p.Description().Name, true
	})
	sess := sessions.New(sessions.Config{
		IdleTTL:     cfg.Sessions.IdleTTL,
		MaxLifetime: cfg.Sessions.MaxLifetime,
		MaxPerKey:   cfg.Sessions.PerKey,
		MaxTotal:    cfg.Sessions.Max,
	}, run, log.Named("sessions"))
	sc := cfg.Server
	srv := api.New(api.Config{
		MaxBodyBytes: sc.MaxBodyBytes, Keys: keys, Admission: adm, Metrics: met, Anonymous: anonymous,
		Guard: api.GuardConfig{
			ListenAddr: sc.Addr, HasKeys: keys != nil,
			AllowedOrigins: cfg.Auth.AllowedOrigins, AllowedHosts: cfg.Auth.AllowedHosts,
			PistonAllowTextPlain: cfg.Auth.PistonAllowTextPlain,
		},
		WriteTimeout:         sc.WriteTimeout,
		MaxStreamBufferBytes: int(sc.MaxStreamBufferBytes),
		MaxStdinBytes:        sc.MaxStdinBytes,
		MaxWSMessageBytes:    sc.MaxWSMessageBytes,
	}, run, reg, ws, sess, log.Named("api"))
	if hasPool {
		pooled.StartPool()
	}
	return &App{Instance: instance, Executor: exec, Docker: dock, Registry: reg, Runner: run, API: srv, Admission: adm, Metrics: met, Sessions: sess, sessionFS: sfs, cfg: cfg, log: log}, nil
}

// sessionFS decides how workspace sessions are bounded
// (RUNHOST_WORKSPACE_QUOTA_MODE) and mounts the filesystems of existing
// sessions before the host serves. nil means runs are not bounded.
func sessionFS(ctx context.Context, cfg config.Config, uid, gid int, log hclog.Logger) (*sessionfs.FS, error) {
	w := cfg.Workspace
	mode := w.QuotaMode
	if w.Root == "" || mode == "off" {
		return nil, nil
	}
	unbounded := func(reason string) (*sessionfs.FS, error) {
		log.Warn("workspace runs are NOT bounded by RUNHOST_WORKSPACE_QUOTA_MB: a run can fill the disk behind RUNHOST_WORKSPACE_ROOT (only files API uploads are checked); "+
			"set RUNHOST_WORKSPACE_QUOTA_MODE=fs where the host can mount, or off to silence this", "reason", reason)
		return nil, nil
	}
	if mode == "auto" {
		switch {
		case cfg.Engine.Executor != "docker":
			return unbounded("the " + cfg.Engine.Executor + " executor's runs do not see this host's mounts")
		case w.DaemonDir != w.Root:
			return unbounded("the engine sees the workspace at DIND_WORKSPACE_PATH=" + w.DaemonDir + ", not at this host's path, so it may not see this host's mounts")
		}
	}
	fs := sessionfs.New(sessionfs.Config{
		Root:      w.Root,
		SizeBytes: w.QuotaBytes,
		UID:       uid,
		GID:       gid,
		Exec:      w.Exec,
		Logger:    log,
	})
	if err := fs.Probe(ctx); err != nil {
		if mode == "fs" {
			return nil, fmt.Errorf("RUNHOST_WORKSPACE_QUOTA_MODE=fs: %w", err)
		}
		return unbounded("this host cannot mount session filesystems: " + err.Error())
	}
	if err := fs.Restore(ctx); err != nil {
		// Some sessions are not mounted; their Ensure refuses to hide files.
		log.Error("some workspace session filesystems could not be mounted", "error", err)
	}
	log.Info("workspace sessions are filesystems of their own", "quota_mb", w.QuotaBytes>>20, "exec", w.Exec)
	return fs, nil
}

// warmPool is an executor that keeps containers ready (both do).
type warmPool interface {
	SetPool(targets []executor.PoolTarget, memoryBudget int64)
	StartPool()
}

var (
	_ warmPool = (*docker.Executor)(nil)
	_ warmPool = (*kubernetes.Executor)(nil)
)

// poolTargets turns RUNHOST_POOL's targets into what the executor keeps
// ready: the version's image with the limits and OCI runtime a default
// request for that runtime gets.
func poolTargets(targets []config.PoolTarget, reg *registry.Registry, pol *policy.Policy, log hclog.Logger) []executor.PoolTarget {
	var out []executor.PoolTarget
	for _, t := range targets {
		p, err := reg.Lookup(t.Runtime)
		if err != nil {
			log.Warn("RUNHOST_POOL names a runtime that is not served", "runtime", t.Runtime, "error", err)
			continue
		}
		v, err := runner.ResolveVersion(p.Description(), t.Version)
		if err != nil || v.Image == "" {
			log.Warn("RUNHOST_POOL names a version that is not served", "runtime", t.Runtime, "version", t.Version, "error", err)
			continue
		}
		limits, oci := pol.DefaultLimits(p.Description().Name)
		out = append(out, executor.PoolTarget{Image: v.Image, Limits: limits, OCIRuntime: oci, Size: t.Count})
	}
	return out
}

// PolicyConfig maps the host's settings onto the policy.
func PolicyConfig(cfg config.Config) (policy.Config, error) {
	l, in, b := cfg.Limits, cfg.Installs, cfg.Builds
	pc := policy.Config{
		OCIRuntime:     cfg.Policy.OCIRuntime,
		OCIRuntimes:    cfg.Policy.OCIRuntimes,
		DefaultTimeout: l.DefaultTimeout,
		MaxTimeout:     l.MaxTimeout,
		DefaultMemory:  l.DefaultMemoryBytes,
		MaxMemory:      l.MaxMemoryBytes,
		MinMemory:      config.MinMemoryBytes,
		DefaultCPUs:    l.DefaultCPUs,
		MaxCPUs:        l.MaxCPUs,
		Pids:           l.Pids,
		NoFile:         l.NoFile,
		FileSizeBytes:  l.FileSizeBytes,
		TmpBytes:       l.TmpBytes,
		RunDirBytes:    l.RunDirBytes,
		OutputBytes:    l.OutputBytes,
		User:           cfg.Policy.RunUser.String(),

		AllowedImages:       cfg.Policy.AllowedImages,
		ImageAliases:        cfg.Policy.ImageAliases,
		InternalImages:      internalImages(cfg.Kubernetes),
		AllowInstallNetwork: in.AllowNetwork,
		InstallTimeout:      in.Timeout,
		InstallMemory:       in.MemoryBytes,
		InstallDisk:         in.DiskBytes,
		PipIndexURL:         urlString(in.PipIndexURL),
		NpmRegistry:         urlString(in.NpmRegistry),
		CABundle:            in.CABundle,

		BuildTimeout:    b.Timeout,
		BuildMemory:     b.MemoryBytes,
		MaxContextBytes: b.MaxContextBytes,
		BuildLogBytes:   b.LogBytes,
		BuildPids:       b.Pids,
		BuildDisk:       b.DiskBytes,
		BuildImageBytes: b.ImageBytes,
	}
	if cfg.Policy.File != "" {
		grants, err := policy.LoadGrants(cfg.Policy.File, pc)
		if err != nil {
			return policy.Config{}, fmt.Errorf("RUNHOST_POLICY: %w", err)
		}
		pc.Grants = grants
	}
	return pc, nil
}

func urlString(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.String()
}

// internalImages are the configured images of runhost's own machinery,
// beyond the policy's built-in list: no request may name them.
func internalImages(k config.Kubernetes) []string {
	var out []string
	for _, img := range []string{k.InitImage, k.EgressImage, k.BuilderImage, k.BuildRepo} {
		if img != "" {
			out = append(out, img)
		}
	}
	return out
}

// Handler is the HTTP API.
func (a *App) Handler() http.Handler { return a.API.Handler() }

// SweepLoop removes left-behind containers now and every interval until ctx ends.
func (a *App) SweepLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.Engine.SweepInterval)
	defer t.Stop()
	for {
		n, err := a.Executor.Sweep(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			a.log.Warn("sweep failed", "error", err)
		case n > 0:
			a.Metrics.Swept(n)
			a.log.Info("swept left-behind containers", "removed", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close ends the sessions, stops the plugins and the engine client, and
// unmounts the workspace's session filesystems (the next start mounts them
// again).
func (a *App) Close() {
	a.Sessions.Close()
	a.Registry.Close()
	_ = a.Executor.Close()
	if a.sessionFS != nil {
		if err := a.sessionFS.Close(); err != nil {
			a.log.Warn("unmount workspace session filesystems", "error", err)
		}
	}
}

func newInstanceID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
