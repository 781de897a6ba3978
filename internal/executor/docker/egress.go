package docker

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"

	"github.com/runhost/runhost/internal/egress"
	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/helperimage"
	"github.com/runhost/runhost/internal/initproc"
)

// LabelEgress marks the egress proxy's container and volume.
const LabelEgress = "runhost.egress"

// proxyUser is the proxy container's uid:gid: one no run or install step
// has, so the socket's directory (owned by it, mode 0755) and the socket in
// it are the proxy's alone; install steps may only connect.
var proxyUser = fmt.Sprintf("%d:%d", egress.UID, egress.GID)

// The proxy's health check: the engine runs `runhost-egress -check` in the
// proxy's container; a proxy that fails it proxyRetries times in a row is
// unhealthy, and the next install replaces it.
const (
	proxyCheckInterval = 3 * time.Second
	proxyCheckTimeout  = 3 * time.Second
	proxyRetries       = 2
)

// Where the egress socket is: in the proxy container, and in an install
// container (where init forwards proxyListen to it).
const (
	egressDirProxy   = "/run/egress"
	egressDirInstall = "/.runhost-egress"
	egressSocket     = "proxy.sock"
	proxyListen      = "127.0.0.1:3128"
)

// EgressConfig configures the allow-list proxy install steps, granted
// builds and granted runs go through.
type EgressConfig struct {
	Binary  []byte   // the static runhost-egress program
	Network string   // the Docker network the proxy joins to reach the outside
	Allow   []string // hosts install steps and granted builds may reach
	CIDRs   []string // private ranges that may be reached
}

// egressProxy is one proxy container per host process, started on first
// use. It knows no hosts of its own: every connection carries a token
// (egress.Sign) naming what its container may reach, signed with the
// secret this host made at start and gave only to the proxy.
type egressProxy struct {
	cfg    EgressConfig
	secret []byte

	mu        sync.Mutex
	volume    string
	container string
}

// tokenMargin is how long a token outlives its container's timeout: the
// backstop's grace, an install's copy, a slow start.
const tokenMargin = 2 * time.Minute

// proxyEnv is what a container needs to use the proxy.
var proxyEnv = executor.ProxyEnv(proxyListen)

// runProxyEnv is proxyEnv for a granted run: Node reads the proxy
// variables too when NODE_USE_ENV_PROXY is set (Node 22.21 and 24 on;
// older versions ignore it and need an agent).
var runProxyEnv = append(slices.Clone(proxyEnv), "NODE_USE_ENV_PROXY=1")

// withEgress wires an install step to the proxy for the install hosts
// (RUNHOST_EGRESS_ALLOW), with the proxy variables set.
func (e *Executor) withEgress(ctx context.Context, s *step) error {
	if err := e.viaEgress(ctx, s, e.egress.cfg.Allow); err != nil {
		return err
	}
	s.Env = executor.MergeEnv(s.Env, proxyEnv)
	return nil
}

// viaEgress wires a step to the proxy for hosts: no network of its own,
// the proxy's socket directory mounted read-only (connecting to a socket
// needs no write access to its filesystem; renaming, removing or binding
// beside it does), and init forwarding loopback to it with a token for
// hosts that expires with the step. A builder passes the proxy variables
// to its RUN steps alone, so BuildKit itself never uses the proxy.
func (e *Executor) viaEgress(ctx context.Context, s *step, hosts []string) error {
	vol, err := e.ensureEgress(ctx)
	if err != nil {
		return err
	}
	s.network = ""
	s.mounts = append(s.mounts, mount.Mount{Type: mount.TypeVolume, Source: vol, Target: egressDirInstall, ReadOnly: true, VolumeOptions: &mount.VolumeOptions{NoCopy: true}})
	s.forward = &initproc.Forward{
		Listen: proxyListen,
		Socket: egressDirInstall + "/" + egressSocket,
		Token:  e.egressToken(s.ID, hosts, s.Limits.Timeout),
	}
	return nil
}

// withNetwork wires a granted run (or session) to the proxy for its
// hosts, with the host's CA bundle and the proxy variables.
func (e *Executor) withNetwork(ctx context.Context, s *step) error {
	n := s.Network
	if err := e.viaEgress(ctx, s, n.Allow); err != nil {
		return err
	}
	if len(n.CA) > 0 {
		s.forward.CA, s.forward.CAFile = string(n.CA), executor.NetworkCAFile
	}
	s.Env = executor.MergeEnv(s.Env, runProxyEnv)
	return nil
}

// egressToken is the token for a container that may reach hosts for
// timeout (and a margin).
func (e *Executor) egressToken(id string, hosts []string, timeout time.Duration) string {
	return egress.Sign(e.egress.secret, egress.Claims{Run: id, Hosts: hosts, Expires: time.Now().Add(timeout + tokenMargin).Unix()})
}

// ensureEgress starts the proxy if it is not running, or replaces it when
// its health check fails, and returns the volume holding its socket.
func (e *Executor) ensureEgress(ctx context.Context) (string, error) {
	p := e.egress
	if len(p.cfg.Binary) == 0 {
		return "", errors.New("egress proxy binary missing: build runhost-egress (make build) or set RUNHOST_EGRESS_PATH")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.container != "" {
		info, err := e.engine.ContainerInspect(ctx, p.container)
		if err == nil && info.State != nil && info.State.Running && !unhealthy(info.State) {
			return p.volume, nil
		}
		e.log.Warn("egress proxy is not running or does not answer; starting a new one", "container", p.container, "state", proxyState(info.State, err))
		e.remove(ctx, p.container)
		p.container = ""
	}

	img := helperimage.Egress(p.cfg.Binary)
	if _, err := e.engine.ImageInspect(ctx, img); cerrdefs.IsNotFound(err) {
		if err := importImage(ctx, e.engine, img, "egress", p.cfg.Binary); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", engineError("inspect egress image", err)
	}
	labels := e.labels(map[string]string{LabelEgress: "true"}, 100*365*24*time.Hour)
	if p.volume == "" {
		name := "runhost-egress-" + e.instance
		if _, err := e.engine.VolumeCreate(ctx, volume.CreateOptions{Name: name, Labels: labels}); err != nil {
			return "", engineError("create egress volume", err)
		}
		if err := e.ownVolume(ctx, name, egressDirProxy, proxyUser); err != nil {
			return "", err
		}
		p.volume = name
	}
	pids := int64(128)
	socket := egressDirProxy + "/" + egressSocket
	id, err := createContainer(ctx, e.engine, &container.Config{
		Image: img,
		Cmd:   []string{"/egress", "-socket", socket, "-allow-cidrs", strings.Join(p.cfg.CIDRs, ",")},
		// The proxy takes the secret from its environment and drops it.
		Env:    []string{egress.SecretEnv + "=" + hex.EncodeToString(p.secret)},
		User:   proxyUser,
		Labels: labels,
		Healthcheck: &container.HealthConfig{
			Test:     []string{"CMD", "/egress", "-check", "-socket", socket},
			Interval: proxyCheckInterval,
			Timeout:  proxyCheckTimeout,
			Retries:  proxyRetries,
		},
	}, &container.HostConfig{
		NetworkMode:    container.NetworkMode(p.cfg.Network),
		ReadonlyRootfs: true,
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		LogConfig:      container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1m", "max-file": "1"}},
		Mounts:         []mount.Mount{{Type: mount.TypeVolume, Source: p.volume, Target: egressDirProxy, VolumeOptions: &mount.VolumeOptions{NoCopy: true}}},
		Resources:      container.Resources{Memory: 128 << 20, MemorySwap: 128 << 20, PidsLimit: &pids, NanoCPUs: 1e9},
	}, "runhost-egress-"+e.instance)
	if err != nil {
		return "", engineError("create egress proxy", err)
	}
	if err := e.engine.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		e.remove(ctx, id)
		return "", engineError("start egress proxy", err)
	}
	// Wait for the socket: the proxy is ready when it exists.
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := e.engine.ContainerStatPath(ctx, id, egressDirProxy+"/"+egressSocket); err == nil {
			break
		}
		if time.Now().After(deadline) {
			e.remove(ctx, id)
			return "", fmt.Errorf("egress proxy did not create its socket within 15 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.container = id
	e.log.Info("egress proxy started", "container", id[:12], "network", p.cfg.Network, "install_allow", p.cfg.Allow)
	return p.volume, nil
}

// unhealthy reports whether the engine's health check of the proxy failed.
func unhealthy(s *container.State) bool {
	return s.Health != nil && s.Health.Status == container.Unhealthy
}

// proxyState says in a log line why a proxy is replaced.
func proxyState(s *container.State, err error) string {
	switch {
	case err != nil:
		return err.Error()
	case s == nil:
		return "unknown"
	case !s.Running:
		return s.Status
	case s.Health != nil && s.Health.Status == container.Unhealthy:
		last := ""
		if n := len(s.Health.Log); n > 0 {
			last = strings.TrimSpace(s.Health.Log[n-1].Output)
		}
		return "unhealthy: " + last
	}
	return s.Status
}

// stopEgress removes the proxy and its volume.
func (e *Executor) stopEgress(ctx context.Context) {
	p := e.egress
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.container != "" {
		e.remove(ctx, p.container)
		p.container = ""
	}
	if p.volume != "" {
		_ = e.engine.VolumeRemove(ctx, p.volume, true)
		p.volume = ""
	}
}
