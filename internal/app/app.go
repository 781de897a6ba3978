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
	"os"
	"strconv"
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
	return newApp(ctx, cfg, log, nil)
}

// newApp builds the host; files, when set, are the only plugins it serves.
func newApp(ctx context.Context, cfg config.Config, log hclog.Logger, files []string) (*App, error) {
	initBinary, err := os.ReadFile(cfg.InitPath)
	if err != nil {
		return nil, fmt.Errorf("read the init binary (build it with `make build`, or set RUNHOST_INIT_PATH): %w", err)
	}
	egressBinary, err := os.ReadFile(cfg.EgressPath)
	if err != nil {
		log.Warn("no egress proxy binary: installs that need the network will fail (build it with `make build`, or set RUNHOST_EGRESS_PATH)", "error", err)
	}
	instance := newInstanceID()
	var exec engine
	var dock *docker.Executor
	switch cfg.Executor {
	case "kubernetes":
		initImage := cmp.Or(cfg.K8sInitImage, docker.InitImage(initBinary))
		var buildkitConfig []byte
		if cfg.K8sBuildkitConfig != "" {
			if buildkitConfig, err = os.ReadFile(cfg.K8sBuildkitConfig); err != nil {
				return nil, fmt.Errorf("RUNHOST_K8S_BUILDKIT_CONFIG: %w", err)
			}
		}
		egressImage := cfg.K8sEgressImage
		if egressImage == "" && len(egressBinary) > 0 {
			egressImage = docker.EgressImage(egressBinary)
		}
		exec, err = kubernetes.New(kubernetes.Config{
			Kubeconfig:   cfg.K8sKubeconfig,
			Namespace:    cfg.K8sNamespace,
			InitImage:    initImage,
			RuntimeClass: cfg.K8sRuntimeClass,
			PullPolicy:   corev1.PullPolicy(cfg.K8sPullPolicy),
			Workspace:    kubernetes.WorkspaceVolume{Claim: cfg.K8sWorkspaceClaim, Root: cfg.WorkspaceDaemonDir},
			Cache: kubernetes.CacheVolume{
				Claim:      cfg.K8sCacheClaim,
				Root:       cfg.K8sCacheRoot,
				MaxEntries: int(cfg.DepsCacheEntries),
				MaxBytes:   cfg.DepsCacheMB << 20,
			},
			Egress: kubernetes.EgressConfig{Image: egressImage, Allow: cfg.EgressAllow, CIDRs: cfg.EgressCIDRs},
			Build: kubernetes.BuildConfig{
				Repository:     cfg.K8sBuildRepo,
				Insecure:       cfg.K8sBuildInsecure,
				Namespace:      cfg.K8sBuildNamespace,
				Image:          cmp.Or(cfg.K8sBuilderImage, cfg.BuilderImage),
				Seccomp:        cfg.K8sBuilderSeccomp,
				BuildkitConfig: buildkitConfig,
			},
			User:     cfg.RunUser,
			Instance: instance,
			Logger:   log.Named("kubernetes"),
		})
	default:
		dock, err = docker.New(docker.Config{
			Instance:   instance,
			InitBinary: initBinary,
			Logger:     log.Named("docker"),
			User:       cfg.RunUser,
			Egress: docker.EgressConfig{
				Binary:  egressBinary,
				Network: cfg.InstallNetwork,
				Allow:   cfg.EgressAllow,
				CIDRs:   cfg.EgressCIDRs,
			},
			DepsCacheEntries:  int(cfg.DepsCacheEntries),
			DepsCacheBytes:    cfg.DepsCacheMB << 20,
			BuildCacheEntries: int(cfg.BuildCacheEntries),
			BuildCacheBytes:   cfg.BuildCacheMB << 20,
			BuilderImage:      cfg.BuilderImage,
			BasesCacheBytes:   cfg.BuildBasesCacheMB << 20,
		})
		exec = dock
	}
	if err != nil {
		return nil, err
	}
	var checksums map[string]string
	if cfg.PluginChecksums != "" {
		if checksums, err = registry.LoadChecksums(cfg.PluginChecksums); err != nil {
			_ = exec.Close()
			return nil, fmt.Errorf("RUNHOST_PLUGIN_CHECKSUMS: %w", err)
		}
	}
	reg, err := registry.Discover(ctx, registry.Config{
		Files:        files,
		Checksums:    checksums,
		Dir:          cfg.PluginDir,
		StartTimeout: cfg.PluginStartTimeout,
		CallTimeout:  cfg.PluginCallTimeout,
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
		pooled.SetPool(poolTargets(cfg, reg, pol, log), cfg.PoolMemoryMB<<20)
	}
	uid, gid := runUser(cfg.RunUser)
	sfs, err := sessionFS(ctx, cfg, uid, gid, log.Named("workspace"))
	if err != nil {
		reg.Close()
		_ = exec.Close()
		return nil, err
	}
	wsCfg := workspace.Config{
		Root:         cfg.WorkspaceRoot,
		DaemonDir:    cfg.WorkspaceDaemonDir,
		QuotaBytes:   cfg.WorkspaceQuotaMB << 20,
		MaxFileBytes: cfg.WorkspaceFileBytes,
		UID:          uid,
		GID:          gid,
	}
	if sfs != nil {
		wsCfg.FS = sfs
	}
	ws := workspace.NewStore(wsCfg)
	run := runner.New(runner.Config{MaxContextBytes: cfg.MaxContextBytes}, reg, pol, exec, ws, log.Named("runner"))
	var keys *auth.Keys
	if cfg.APIKeysFile != "" {
		if keys, err = auth.Load(cfg.APIKeysFile); err != nil {
			reg.Close()
			_ = exec.Close()
			return nil, fmt.Errorf("RUNHOST_API_KEYS_FILE: %w", err)
		}
		log.Info("API keys loaded", "keys", keys.Len())
		if names := keys.EgressKeys(); len(names) > 0 && cfg.Executor == "kubernetes" {
			reg.Close()
			_ = exec.Close()
			return nil, fmt.Errorf("RUNHOST_API_KEYS_FILE: keys %s are granted egress=, but network for runs is not available on Kubernetes (only dependency installs reach the egress proxy)", strings.Join(names, ", "))
		}
	}
	anonymous := auth.Anonymous()
	anonymous.Egress, anonymous.EgressDefault, anonymous.BuildEgress = cfg.RunEgressAllow, cfg.RunEgressDefault, cfg.BuildNetwork
	adm := admission.New(admission.Config{
		MaxInFlight: int(cfg.MaxRuns),
		MaxQueue:    int(cfg.QueueLength),
		MaxWait:     cfg.QueueWait,
		KeyInFlight: int(cfg.KeyMaxRuns),
		KeyRate:     cfg.KeyRate,
		KeyBurst:    int(cfg.KeyBurst),
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
		IdleTTL:     cfg.SessionIdleTTL,
		MaxLifetime: cfg.SessionMaxLifetime,
		MaxPerKey:   int(cfg.SessionsPerKey),
		MaxTotal:    int(cfg.MaxSessions),
	}, run, log.Named("sessions"))
	srv := api.New(api.Config{
		MaxBodyBytes: cfg.MaxBodyBytes, Keys: keys, Admission: adm, Metrics: met, Anonymous: anonymous,
		Guard: api.GuardConfig{
			ListenAddr: cfg.Addr, HasKeys: keys != nil,
			AllowedOrigins: cfg.AllowedOrigins, AllowedHosts: cfg.AllowedHosts,
			PistonAllowTextPlain: cfg.PistonAllowTextPlain,
		},
		WriteTimeout:         cfg.WriteTimeout,
		MaxStreamBufferBytes: int(cfg.MaxStreamBufferBytes),
		MaxStdinBytes:        cfg.MaxStdinBytes,
		MaxWSMessageBytes:    cfg.MaxWSMessageBytes,
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
	mode := cfg.WorkspaceQuotaMode
	if cfg.WorkspaceRoot == "" || mode == "off" {
		return nil, nil
	}
	unbounded := func(reason string) (*sessionfs.FS, error) {
		log.Warn("workspace runs are NOT bounded by RUNHOST_WORKSPACE_QUOTA_MB: a run can fill the disk behind RUNHOST_WORKSPACE_ROOT (only files API uploads are checked); "+
			"set RUNHOST_WORKSPACE_QUOTA_MODE=fs where the host can mount, or off to silence this", "reason", reason)
		return nil, nil
	}
	if mode == "auto" {
		switch {
		case cfg.Executor != "docker":
			return unbounded("the " + cfg.Executor + " executor's runs do not see this host's mounts")
		case cfg.WorkspaceDaemonDir != cfg.WorkspaceRoot:
			return unbounded("the engine sees the workspace at DIND_WORKSPACE_PATH=" + cfg.WorkspaceDaemonDir + ", not at this host's path, so it may not see this host's mounts")
		}
	}
	fs := sessionfs.New(sessionfs.Config{
		Root:      cfg.WorkspaceRoot,
		SizeBytes: cfg.WorkspaceQuotaMB << 20,
		UID:       uid,
		GID:       gid,
		Exec:      cfg.WorkspaceExec,
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
	log.Info("workspace sessions are filesystems of their own", "quota_mb", cfg.WorkspaceQuotaMB, "exec", cfg.WorkspaceExec)
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

// poolTargets turns RUNHOST_POOL ("python=2", "python:3.13=1") into what
// the executor keeps ready: the version's image with the limits a default
// request for that runtime gets.
func poolTargets(cfg config.Config, reg *registry.Registry, pol *policy.Policy, log hclog.Logger) []executor.PoolTarget {
	var out []executor.PoolTarget
	for _, t := range cfg.Pool {
		spec, n, _ := strings.Cut(t, "=")
		count, _ := strconv.Atoi(n)
		name, version, _ := strings.Cut(spec, ":")
		p, err := reg.Lookup(name)
		if err != nil {
			log.Warn("RUNHOST_POOL names a runtime that is not served", "target", t, "error", err)
			continue
		}
		v, err := runner.ResolveVersion(p.Description(), version)
		if err != nil || v.Image == "" {
			log.Warn("RUNHOST_POOL names a version that is not served", "target", t, "error", err)
			continue
		}
		limits, oci := pol.DefaultLimits(p.Description().Name)
		out = append(out, executor.PoolTarget{Image: v.Image, Limits: limits, OCIRuntime: oci, Size: count})
	}
	return out
}

// PolicyConfig maps the host's settings onto the policy.
func PolicyConfig(cfg config.Config) (policy.Config, error) {
	var ca []byte
	if cfg.CABundle != "" {
		var err error
		if ca, err = os.ReadFile(cfg.CABundle); err != nil {
			return policy.Config{}, fmt.Errorf("RUNHOST_CA_BUNDLE: %w", err)
		}
	}
	oci := map[string]string{}
	for _, kv := range cfg.OCIRuntimes {
		name, rt, _ := strings.Cut(kv, "=")
		oci[name] = rt
	}
	pc := policy.Config{
		OCIRuntime:     cfg.OCIRuntime,
		OCIRuntimes:    oci,
		DefaultTimeout: cfg.DefaultTimeout,
		MaxTimeout:     cfg.MaxTimeout,
		DefaultMemory:  cfg.DefaultMemoryMB << 20,
		MaxMemory:      cfg.MaxMemoryMB << 20,
		MinMemory:      config.MinMemoryMB << 20,
		DefaultCPUs:    cfg.DefaultCPUs,
		MaxCPUs:        cfg.MaxCPUs,
		Pids:           cfg.PidsLimit,
		NoFile:         cfg.NoFileLimit,
		FileSizeBytes:  cfg.FileSizeMB << 20,
		TmpBytes:       cfg.TmpMB << 20,
		RunDirBytes:    cfg.RunDirMB << 20,
		OutputBytes:    cfg.OutputBytes,
		User:           cfg.RunUser,

		AllowedImages:       cfg.AllowedImages,
		InternalImages:      internalImages(cfg),
		AllowInstallNetwork: cfg.AllowInstallNetwork,
		InstallTimeout:      cfg.InstallTimeout,
		InstallMemory:       cfg.InstallMemoryMB << 20,
		InstallDisk:         cfg.InstallDiskMB << 20,
		PipIndexURL:         cfg.PipIndexURL,
		NpmRegistry:         cfg.NpmRegistry,
		CABundle:            ca,

		BuildTimeout:    cfg.BuildTimeout,
		BuildMemory:     cfg.BuildMemoryMB << 20,
		MaxContextBytes: cfg.MaxContextBytes,
		BuildLogBytes:   cfg.BuildLogBytes,
		BuildPids:       cfg.BuildPids,
		BuildDisk:       cfg.BuildDiskMB << 20,
		BuildImageBytes: cfg.BuildImageMB << 20,
	}
	if cfg.PolicyFile != "" {
		grants, err := policy.LoadGrants(cfg.PolicyFile, pc)
		if err != nil {
			return policy.Config{}, fmt.Errorf("RUNHOST_POLICY: %w", err)
		}
		pc.Grants = grants
	}
	return pc, nil
}

// internalImages are the configured images of runhost's own machinery,
// beyond the policy's built-in list: no request may name them.
func internalImages(cfg config.Config) []string {
	var out []string
	for _, img := range []string{cfg.K8sInitImage, cfg.K8sEgressImage, cfg.K8sBuilderImage, cfg.K8sBuildRepo} {
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
	t := time.NewTicker(a.cfg.SweepInterval)
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

// runUser splits the configured "uid:gid" (already validated).
func runUser(s string) (int, int) {
	u, g, _ := strings.Cut(s, ":")
	uid, _ := strconv.Atoi(u)
	gid, _ := strconv.Atoi(g)
	return uid, gid
}

func newInstanceID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
