// Package registry finds runtime plugins, starts them, and keeps them
// running. A plugin that fails to start is never fatal: it is reported with
// its reason and the others are served.
package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/runhost/runhost/shared"
)

// FilePattern is what a plugin binary must be called.
var FilePattern = regexp.MustCompile(`^runhost-plugin-[a-z0-9][a-z0-9_-]*$`)

// State of a discovered plugin file.
type State string

const (
	StateHealthy State = "healthy" // started and described itself
	StateCrashed State = "crashed" // was running and exited; restarted on next use
	StateRefused State = "refused" // not served; Reason says why
	StateIgnored State = "ignored" // not a plugin (name does not match)
)

// Config configures discovery.
type Config struct {
	Dir          string
	StartTimeout time.Duration // launch + handshake + describe
	CallTimeout  time.Duration // one Plan call
	Logger       hclog.Logger
	// Files, when set, are the plugin binaries to serve instead of the
	// contents of Dir (the conformance kit checks one this way).
	Files []string
	// Checksums, when not nil, is the allow-list of plugin binaries: file
	// name to SHA-256. A plugin not listed, or whose binary differs, is
	// refused (RUNHOST_PLUGIN_CHECKSUMS).
	Checksums map[string]string
}

// Errors the API maps to status codes.
var (
	ErrUnknownRuntime    = errors.New("unknown runtime")
	ErrPluginUnavailable = errors.New("plugin unavailable")
)

// UnknownRuntimeError names the runtime asked for and those that exist.
type UnknownRuntimeError struct {
	Name  string
	Known []string
}

func (e *UnknownRuntimeError) Error() string {
	if len(e.Known) == 0 {
		return fmt.Sprintf("unknown runtime %q: no runtimes are installed", e.Name)
	}
	return fmt.Sprintf("unknown runtime %q; known runtimes: %s", e.Name, strings.Join(e.Known, ", "))
}
func (e *UnknownRuntimeError) Is(target error) bool { return target == ErrUnknownRuntime }

// FileReport is what discovery concluded about one file in the plugin
// directory, with the state of the plugin it serves.
type FileReport struct {
	Path     string `json:"path"`
	Runtime  string `json:"runtime,omitempty"`
	Checksum string `json:"sha256,omitempty"`
	Protocol int    `json:"protocol,omitempty"`
	State    State  `json:"state"`
	Reason   string `json:"reason,omitempty"`
}

// Registry holds the running plugins by runtime name and alias. Reload
// brings it in line with the plugin directory while it serves.
type Registry struct {
	cfg       Config
	log       hclog.Logger
	onRestart func(plugin string)

	reloading sync.Mutex // one reload at a time

	mu      sync.RWMutex
	byName  map[string]*Plugin
	byPath  map[string]*Plugin
	plugins []*Plugin // sorted by name
	reports []FileReport
}

// Discover scans cfg.Dir and starts every plugin found. It returns an error
// only when the directory exists but cannot be read; a missing directory
// is an empty registry, logged.
func Discover(ctx context.Context, cfg Config) (*Registry, error) {
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	r := &Registry{cfg: cfg, log: log, byName: map[string]*Plugin{}, byPath: map[string]*Plugin{}}
	if err := r.Reload(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// candidateFile is a file of the plugin directory and what is known of it.
type candidateFile struct {
	path     string
	checksum string
	reason   string // why it is not started; "" for a plugin to serve
	state    State
}

// scan lists the plugin directory.
func (r *Registry) scan() ([]candidateFile, error) {
	entries, dirs, err := r.entries()
	if err != nil {
		return nil, err
	}
	var out []candidateFile
	for i, ent := range entries {
		c := candidateFile{path: filepath.Join(dirs[i], ent.Name())}
		if c.reason = candidate(ent); c.reason != "" {
			c.state = StateRefused
			if !FilePattern.MatchString(ent.Name()) {
				c.state = StateIgnored
			}
			out = append(out, c)
			continue
		}
		c.checksum, err = fileChecksum(c.path)
		if err != nil {
			c.reason, c.state = err.Error(), StateRefused
		} else if r.cfg.Checksums != nil {
			want, listed := r.cfg.Checksums[ent.Name()]
			switch {
			case !listed:
				c.reason, c.state = "not listed in RUNHOST_PLUGIN_CHECKSUMS", StateRefused
			case !strings.EqualFold(want, c.checksum):
				c.reason, c.state = fmt.Sprintf("binary checksum %s does not match RUNHOST_PLUGIN_CHECKSUMS (%s): refusing a binary nobody approved", c.checksum, want), StateRefused
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out, nil
}

// entries lists the plugin directory (or the configured files), with the
// directory each entry is in.
func (r *Registry) entries() ([]os.DirEntry, []string, error) {
	if len(r.cfg.Files) > 0 {
		var ents []os.DirEntry
		var dirs []string
		for _, f := range r.cfg.Files {
			info, err := os.Lstat(f)
			if err != nil {
				return nil, nil, err
			}
			ents = append(ents, fs.FileInfoToDirEntry(info))
			dirs = append(dirs, filepath.Dir(f))
		}
		return ents, dirs, nil
	}
	entries, err := os.ReadDir(r.cfg.Dir)
	if errors.Is(err, os.ErrNotExist) {
		r.log.Warn("plugin directory does not exist; no runtimes", "dir", r.cfg.Dir)
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read plugin directory: %w", err)
	}
	dirs := make([]string, len(entries))
	for i := range dirs {
		dirs[i] = r.cfg.Dir
	}
	return entries, dirs, nil
}

// Reload brings the served plugins in line with the directory: new files
// are started, removed ones stopped, replaced binaries restarted. A plugin
// that is replaced or removed finishes the calls it is serving first.
func (r *Registry) Reload(ctx context.Context) error {
	r.reloading.Lock()
	defer r.reloading.Unlock()
	files, err := r.scan()
	if err != nil {
		return err
	}

	// Start what is new or changed, all at once.
	type launch struct {
		file   candidateFile
		plugin *Plugin
		err    error
	}
	var launches []*launch
	var wg sync.WaitGroup
	r.mu.RLock()
	for _, f := range files {
		if f.reason != "" {
			continue
		}
		if old, ok := r.byPath[f.path]; ok && old.checksum == f.checksum {
			continue
		}
		l := &launch{file: f}
		launches = append(launches, l)
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.plugin, l.err = start(ctx, f.path, f.checksum, r.cfg, r.log)
			if l.plugin != nil {
				l.plugin.onRestart = r.onRestart
			}
		}()
	}
	r.mu.RUnlock()
	wg.Wait()

	r.mu.Lock()
	var retired []*Plugin
	present := map[string]bool{}
	for _, f := range files {
		if f.reason == "" {
			present[f.path] = true
		}
	}
	// Gone or refused now: stop serving them.
	for path, p := range r.byPath {
		if !present[path] {
			retired = append(retired, r.unregister(p))
		}
	}
	var reports []FileReport
	for _, f := range files {
		if f.reason != "" {
			reports = append(reports, FileReport{Path: f.path, Checksum: f.checksum, State: f.state, Reason: f.reason})
		}
	}
	for _, l := range launches {
		rep := FileReport{Path: l.file.path, Checksum: l.file.checksum}
		if l.err != nil {
			// A replaced binary that does not start leaves the old one serving.
			rep.State, rep.Reason = StateRefused, l.err.Error()
			if old, ok := r.byPath[l.file.path]; ok {
				rep.Reason += " (the previous binary keeps serving " + old.desc.Name + ")"
			}
			reports = append(reports, rep)
			continue
		}
		old := r.byPath[l.file.path]
		if old != nil {
			r.unregister(old)
		}
		if err := r.register(l.plugin); err != nil {
			if old != nil {
				_ = r.register(old) // keep serving the previous binary
			}
			retired = append(retired, l.plugin)
			rep.Runtime, rep.State, rep.Reason = l.plugin.desc.Name, StateRefused, err.Error()
			reports = append(reports, rep)
			continue
		}
		if old != nil {
			retired = append(retired, old)
			r.log.Info("plugin replaced", "path", l.file.path, "runtime", l.plugin.desc.Name)
		}
	}
	sort.Slice(r.plugins, func(i, j int) bool { return r.plugins[i].desc.Name < r.plugins[j].desc.Name })
	r.reports = reports
	r.mu.Unlock()

	for _, rep := range reports {
		r.logReport(rep)
	}
	for _, p := range r.Plugins() {
		r.log.Debug("plugin serving", "path", p.path, "runtime", p.desc.Name)
	}
	for _, p := range retired {
		go p.retire() // after the calls it is serving
	}
	return nil
}

// candidate returns why ent is not a plugin to start, or "".
func candidate(ent os.DirEntry) string {
	switch {
	case !FilePattern.MatchString(ent.Name()):
		return "name does not match runhost-plugin-<name> (lower-case letters, digits, - and _)"
	case ent.Type()&os.ModeSymlink != 0:
		return "symbolic links are not followed; put the binary itself in the plugin directory"
	case !ent.Type().IsRegular():
		return "not a regular file"
	}
	info, err := ent.Info()
	if err != nil {
		return err.Error()
	}
	if info.Mode().Perm()&0o111 == 0 {
		return "not executable (chmod +x it)"
	}
	return ""
}

func fileChecksum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (r *Registry) logReport(rep FileReport) {
	switch rep.State {
	case StateIgnored:
		r.log.Debug("not a plugin", "path", rep.Path, "reason", rep.Reason)
	default:
		r.log.Error("plugin refused", "path", rep.Path, "reason", rep.Reason)
	}
}

// register serves p under its names; r.mu held.
func (r *Registry) register(p *Plugin) error {
	names := append([]string{p.desc.Name}, p.desc.Aliases...)
	for _, n := range names {
		if other, ok := r.byName[n]; ok && other != p {
			return fmt.Errorf("runtime name %q is already served by %s", n, other.path)
		}
	}
	for _, n := range names {
		r.byName[n] = p
	}
	r.byPath[p.path] = p
	r.plugins = append(r.plugins, p)
	r.log.Info("plugin ready", "path", p.path, "runtime", p.desc.Name, "protocol", p.protocol)
	return nil
}

// unregister stops serving p and returns it; r.mu held.
func (r *Registry) unregister(p *Plugin) *Plugin {
	for _, n := range append([]string{p.desc.Name}, p.desc.Aliases...) {
		if r.byName[n] == p {
			delete(r.byName, n)
		}
	}
	if r.byPath[p.path] == p {
		delete(r.byPath, p.path)
	}
	r.plugins = slices.DeleteFunc(r.plugins, func(x *Plugin) bool { return x == p })
	return p
}

// Lookup returns the plugin serving name (a runtime name or alias).
func (r *Registry) Lookup(name string) (*Plugin, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if p, ok := r.byName[name]; ok {
		return p, nil
	}
	known := make([]string, 0, len(r.plugins))
	for _, p := range r.plugins {
		known = append(known, p.desc.Name)
	}
	return nil, &UnknownRuntimeError{Name: name, Known: known}
}

// Plugins returns the served plugins, sorted by runtime name.
func (r *Registry) Plugins() []*Plugin {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.plugins)
}

// Reports returns every file of the plugin directory: the served plugins
// with their current state, and the files refused or ignored, with why.
func (r *Registry) Reports() []FileReport {
	r.mu.RLock()
	out := slices.Clone(r.reports)
	plugins := slices.Clone(r.plugins)
	r.mu.RUnlock()
	for _, p := range plugins {
		out = append(out, p.Report())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// OnRestart sets a function called with a plugin's runtime name each time
// its process is started again (for metrics).
func (r *Registry) OnRestart(f func(plugin string)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onRestart = f
	for _, p := range r.plugins {
		p.onRestart = f
	}
}

// Names lists the served runtimes' names.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.plugins))
	for _, p := range r.plugins {
		out = append(out, p.desc.Name)
	}
	return out
}

// Close stops every plugin process.
func (r *Registry) Close() {
	var wg sync.WaitGroup
	for _, p := range r.Plugins() {
		wg.Add(1)
		go func() { defer wg.Done(); p.kill() }()
	}
	wg.Wait()
}

// ValidateDescription checks what a plugin says about itself.
var ValidateDescription = shared.ValidateDescription
