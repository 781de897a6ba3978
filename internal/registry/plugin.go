package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/runhost/runhost/internal/pluginhost"
	"github.com/runhost/runhost/shared"
)

// Plugin is one running plugin process and what it described.
type Plugin struct {
	path     string
	checksum string // of the binary this process runs
	protocol int    // negotiated with it
	cfg      Config
	log      hclog.Logger
	desc     shared.Description // fixed at first start

	onRestart func(string)
	retired   atomic.Bool

	callsMu sync.Mutex
	calls   int        // calls being served
	idle    *sync.Cond // signalled when calls drops to 0

	mu        sync.Mutex
	client    *plugin.Client
	rt        shared.Runtime
	failures  int       // consecutive failed restarts
	retryAt   time.Time // no restart before this
	lastError string
}

// PluginError is a failure of the plugin itself (crash, timeout, bad answer).
type PluginError struct {
	Runtime string
	Err     error
}

func (e *PluginError) Error() string { return fmt.Sprintf("plugin %q: %v", e.Runtime, e.Err) }
func (e *PluginError) Unwrap() error { return e.Err }

// start launches the binary at path, completes the handshake and reads the
// plugin's description.
func start(ctx context.Context, path, checksum string, cfg Config, log hclog.Logger) (*Plugin, error) {
	p := &Plugin{path: path, checksum: checksum, cfg: cfg, log: log.Named(filepath.Base(path))}
	client, rt, err := p.launch(ctx)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	desc, err := rt.Describe(dctx)
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("describe: %w", err)
	}
	if err := ValidateDescription(desc); err != nil {
		client.Kill()
		return nil, fmt.Errorf("invalid description: %w", err)
	}
	p.desc, p.client, p.rt, p.protocol = desc, client, rt, client.NegotiatedVersion()
	p.log = log.Named(desc.Name)
	return p, nil
}

// launch starts the process the way the host always does: no shell, an empty
// environment, and killed by the kernel if the host dies.
func (p *Plugin) launch(ctx context.Context) (*plugin.Client, shared.Runtime, error) {
	cmd := exec.Command(p.path)
	cmd.Env = []string{}
	cmd.SysProcAttr = dieWithHost()
	cc := pluginhost.ClientConfig(cmd, p.log)
	cc.StartTimeout = p.cfg.StartTimeout
	if p.cfg.Checksums != nil {
		// go-plugin checks the binary again right before it runs it.
		sum, err := hex.DecodeString(p.checksum)
		if err != nil {
			return nil, nil, fmt.Errorf("checksum %q: %w", p.checksum, err)
		}
		cc.SecureConfig = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	client := plugin.NewClient(cc)

	type dialed struct {
		rt  shared.Runtime
		err error
	}
	done := make(chan dialed, 1)
	go func() {
		rpc, err := client.Client()
		if err != nil {
			done <- dialed{err: err}
			return
		}
		rt, err := pluginhost.Dispense(rpc)
		done <- dialed{rt: rt, err: err}
	}()
	select {
	case d := <-done:
		if d.err != nil {
			client.Kill()
			return nil, nil, explainStartError(d.err, p.cfg.StartTimeout)
		}
		return client, d.rt, nil
	case <-ctx.Done():
		client.Kill()
		return nil, nil, ctx.Err()
	}
}

var (
	incompatible = regexp.MustCompile(`Plugin version: (\d+), Client versions: \[([^\]]*)\]`)
	strayStdout  = regexp.MustCompile(`Unrecognized remote plugin message: ([^\n]*)`)
)

// explainStartError turns go-plugin's start-up errors into short messages
// that say what is wrong and what to do.
func explainStartError(err error, startTimeout time.Duration) error {
	msg := err.Error()
	if m := incompatible.FindStringSubmatch(msg); m != nil {
		// go-plugin lists the host's versions in map order; sort them.
		versions := strings.Fields(m[2])
		slices.Sort(versions)
		return fmt.Errorf("plugin speaks protocol version %s but this host speaks %s: rebuild the plugin against a runhost SDK of a matching protocol version", m[1], strings.Join(versions, ", "))
	}
	switch m := strayStdout.FindStringSubmatch(msg); {
	case strings.Contains(msg, "Failed to read any lines from plugin's stdout"),
		strings.Contains(msg, "plugin exited before we could connect"),
		errors.Is(err, plugin.ErrProcessNotFound):
		return errors.New("plugin exited during start-up, before the handshake; its own output is in the host log")
	case m != nil:
		return fmt.Errorf("plugin wrote %q to stdout before the handshake; stdout carries the handshake, so plugins must log to stderr only (use shared.Logger)", m[1])
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		return fmt.Errorf("plugin did not complete the handshake within %s: does its main call shared.Serve?", startTimeout)
	}
	return fmt.Errorf("start plugin: %w", err)
}

// Path is the plugin binary's path.
func (p *Plugin) Path() string { return p.path }

// Description is what the plugin described at start.
func (p *Plugin) Description() shared.Description { return p.desc }

// State reports whether the plugin process is running.
func (p *Plugin) State() (State, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil && !p.client.Exited() {
		return StateHealthy, ""
	}
	return StateCrashed, p.lastError
}

// Report is the plugin's entry in the plugin listing.
func (p *Plugin) Report() FileReport {
	state, reason := p.State()
	return FileReport{Path: p.path, Runtime: p.desc.Name, Checksum: p.checksum, Protocol: p.protocol, State: state, Reason: reason}
}

// Checksum is the SHA-256 of the binary the plugin runs.
func (p *Plugin) Checksum() string { return p.checksum }

// Protocol is the protocol version negotiated with the plugin.
func (p *Plugin) Protocol() int { return p.protocol }

// retire stops the process once the calls it is serving are done.
func (p *Plugin) retire() {
	p.retired.Store(true)
	p.callsMu.Lock()
	for p.calls > 0 {
		p.cond().Wait()
	}
	p.callsMu.Unlock()
	p.kill()
}

// cond is the calls condition; p.callsMu held.
func (p *Plugin) cond() *sync.Cond {
	if p.idle == nil {
		p.idle = sync.NewCond(&p.callsMu)
	}
	return p.idle
}

func (p *Plugin) begin() {
	p.callsMu.Lock()
	p.calls++
	p.callsMu.Unlock()
}

func (p *Plugin) end() {
	p.callsMu.Lock()
	if p.calls--; p.calls == 0 {
		p.cond().Broadcast()
	}
	p.callsMu.Unlock()
}

// Plan asks the plugin for a spec, restarting the process first if it died.
// req.Version must name one of the plugin's versions; the plugin gets that
// version's image with it.
func (p *Plugin) Plan(ctx context.Context, req shared.RunRequest) (shared.Spec, error) {
	req, err := pluginhost.CompleteRequest(p.desc, req)
	if err != nil {
		return shared.Spec{}, err
	}
	p.begin()
	defer p.end()
	rt, err := p.runtime(ctx)
	if err != nil {
		return shared.Spec{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, p.cfg.CallTimeout)
	defer cancel()
	spec, err := rt.Plan(cctx, req)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		// gRPC can report a deadline before this process's timers fire (the
		// plugin side's timer, from the propagated deadline, may go first):
		// wait for them, so that whose deadline it was is known below.
		select {
		case <-cctx.Done():
		case <-time.After(time.Second):
		}
	}
	switch {
	case err == nil:
		return spec, nil
	case errors.Is(err, shared.ErrInvalidRequest):
		return shared.Spec{}, err
	case ctx.Err() != nil:
		return shared.Spec{}, ctx.Err() // the caller's deadline or cancel
	case cctx.Err() != nil, errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// A plugin that does not answer in time is presumed stuck.
		p.restartSoon("plan call timed out")
		return shared.Spec{}, &PluginError{Runtime: p.desc.Name, Err: fmt.Errorf("%w: no answer within %s", ErrPluginUnavailable, p.cfg.CallTimeout)}
	case errors.Is(err, pluginhost.ErrConnectionLost):
		// The process died or its socket broke: replace it on the next call.
		p.restartSoon("connection lost: " + err.Error())
		return shared.Spec{}, &PluginError{Runtime: p.desc.Name, Err: fmt.Errorf("%w: the plugin process crashed or stopped answering during the call", ErrPluginUnavailable)}
	default:
		return shared.Spec{}, &PluginError{Runtime: p.desc.Name, Err: err}
	}
}

// runtime returns a live connection, starting a new process if the old one
// exited. Repeated failures back off exponentially up to a minute.
func (p *Plugin) runtime(ctx context.Context) (shared.Runtime, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil && !p.client.Exited() {
		return p.rt, nil
	}
	if p.retired.Load() {
		return nil, &PluginError{Runtime: p.desc.Name, Err: fmt.Errorf("%w: the plugin was removed or replaced", ErrPluginUnavailable)}
	}
	if p.client != nil {
		p.log.Warn("plugin process exited; restarting")
		p.lastError = "process exited"
		p.client = nil
	}
	if time.Now().Before(p.retryAt) {
		return nil, &PluginError{Runtime: p.desc.Name, Err: fmt.Errorf("%w: restarting after failures (last: %s); next attempt in %s", ErrPluginUnavailable, p.lastError, time.Until(p.retryAt).Round(time.Second))}
	}
	client, rt, err := p.launch(ctx)
	if err != nil {
		p.failures++
		p.retryAt = time.Now().Add(min(time.Minute, time.Second<<min(p.failures, 6)))
		p.lastError = err.Error()
		return nil, &PluginError{Runtime: p.desc.Name, Err: fmt.Errorf("%w: restart failed: %v", ErrPluginUnavailable, err)}
	}
	p.client, p.rt, p.failures, p.lastError = client, rt, 0, ""
	if p.onRestart != nil {
		p.onRestart(p.desc.Name)
	}
	return rt, nil
}

// restartSoon kills a stuck process; the next call starts a new one.
func (p *Plugin) restartSoon(reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log.Warn("killing plugin process", "reason", reason)
	p.lastError = reason
	if p.client != nil {
		go p.client.Kill()
	}
	p.client = nil
}

func (p *Plugin) kill() {
	p.mu.Lock()
	c := p.client
	p.client = nil
	p.mu.Unlock()
	if c != nil {
		c.Kill()
	}
}
