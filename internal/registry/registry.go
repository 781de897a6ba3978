// Package registry finds runtime plugins, starts them, and keeps them
// running. A plugin that fails to start is never fatal: it is reported with
// its reason and the others are served.
package registry

import (
	"context"
	"errors"
	"fmt"
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

// FileReport is what discovery concluded about one file in the plugin directory.
type FileReport struct {
	Path    string `json:"path"`
	Runtime string `json:"runtime,omitempty"`
	State   State  `json:"state"`
	Reason  string `json:"reason,omitempty"`
}

// Registry holds the running plugins by runtime name and alias.
type Registry struct {
	cfg     Config
	log     hclog.Logger
	byName  map[string]*Plugin
	plugins []*Plugin // sorted by name
	reports []FileReport
}

// Discover scans cfg.Dir and starts every plugin found. It returns an error
// only when the directory cannot be read at all; a missing directory is an
// empty registry, logged.
func Discover(ctx context.Context, cfg Config) (*Registry, error) {
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	r := &Registry{cfg: cfg, log: log, byName: map[string]*Plugin{}}

	entries, err := os.ReadDir(cfg.Dir)
	if errors.Is(err, os.ErrNotExist) {
		log.Warn("plugin directory does not exist; no runtimes", "dir", cfg.Dir)
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read plugin directory: %w", err)
	}

	type launch struct {
		path   string
		plugin *Plugin
		err    error
	}
	var launches []*launch
	var wg sync.WaitGroup
	for _, ent := range entries {
		path := filepath.Join(cfg.Dir, ent.Name())
		if reason := candidate(ent); reason != "" {
			state := StateRefused
			if !FilePattern.MatchString(ent.Name()) {
				state = StateIgnored
			}
			r.report(FileReport{Path: path, State: state, Reason: reason})
			continue
		}
		l := &launch{path: path}
		launches = append(launches, l)
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.plugin, l.err = start(ctx, path, cfg, log)
		}()
	}
	wg.Wait()

	// Register in file-name order, so which of two clashing plugins wins
	// does not depend on start-up timing.
	sort.Slice(launches, func(i, j int) bool { return launches[i].path < launches[j].path })
	for _, l := range launches {
		if l.err != nil {
			r.report(FileReport{Path: l.path, State: StateRefused, Reason: l.err.Error()})
			continue
		}
		if err := r.register(l.plugin); err != nil {
			l.plugin.kill()
			r.report(FileReport{Path: l.path, Runtime: l.plugin.desc.Name, State: StateRefused, Reason: err.Error()})
			continue
		}
		r.report(FileReport{Path: l.path, Runtime: l.plugin.desc.Name, State: StateHealthy})
	}
	sort.Slice(r.plugins, func(i, j int) bool { return r.plugins[i].desc.Name < r.plugins[j].desc.Name })
	return r, nil
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

func (r *Registry) report(rep FileReport) {
	r.reports = append(r.reports, rep)
	switch rep.State {
	case StateHealthy:
		r.log.Info("plugin ready", "path", rep.Path, "runtime", rep.Runtime)
	case StateIgnored:
		r.log.Debug("not a plugin", "path", rep.Path, "reason", rep.Reason)
	default:
		r.log.Error("plugin refused", "path", rep.Path, "reason", rep.Reason)
	}
}

func (r *Registry) register(p *Plugin) error {
	names := append([]string{p.desc.Name}, p.desc.Aliases...)
	for _, n := range names {
		if other, ok := r.byName[n]; ok {
			return fmt.Errorf("runtime name %q is already served by %s", n, other.path)
		}
	}
	for _, n := range names {
		r.byName[n] = p
	}
	r.plugins = append(r.plugins, p)
	return nil
}

// OnRestart sets a function called with a plugin's runtime name each time
// its process is started again (for metrics).
func (r *Registry) OnRestart(f func(plugin string)) {
	for _, p := range r.plugins {
		p.onRestart = f
	}
}

// Names lists the served runtimes' names.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.plugins))
	for _, p := range r.plugins {
		out = append(out, p.desc.Name)
	}
	return out
}

// Lookup returns the plugin serving name (a runtime name or alias).
func (r *Registry) Lookup(name string) (*Plugin, error) {
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
func (r *Registry) Plugins() []*Plugin { return slices.Clone(r.plugins) }

// Reports returns what discovery concluded about each file, with the
// current state of the served plugins.
func (r *Registry) Reports() []FileReport {
	out := slices.Clone(r.reports)
	for i := range out {
		if p, ok := r.byName[out[i].Runtime]; ok && out[i].State != StateRefused {
			out[i].State, out[i].Reason = p.State()
		}
	}
	return out
}

// Close stops every plugin process.
func (r *Registry) Close() {
	var wg sync.WaitGroup
	for _, p := range r.plugins {
		wg.Add(1)
		go func() { defer wg.Done(); p.kill() }()
	}
	wg.Wait()
}

// validName is the pattern for runtime names and aliases.
var validName = regexp.MustCompile(`^[a-z][a-z0-9_+.-]{0,31}$`)

// ValidateDescription checks what a plugin says about itself.
func ValidateDescription(d shared.Description) error {
	if !validName.MatchString(d.Name) {
		return fmt.Errorf("name %q: want lower case letters, digits and - _ + . (at most 32)", d.Name)
	}
	for _, a := range d.Aliases {
		if !validName.MatchString(a) {
			return fmt.Errorf("alias %q: want lower case letters, digits and - _ + . (at most 32)", a)
		}
		if a == d.Name {
			return fmt.Errorf("alias %q repeats the name", a)
		}
	}
	if len(d.Versions) == 0 {
		return errors.New("no versions")
	}
	defaults := 0
	seen := map[string]bool{}
	for _, v := range d.Versions {
		switch {
		case v.Version == "" || strings.ContainsAny(v.Version, " /\x00"):
			return fmt.Errorf("version %q: must be non-empty, without spaces or slashes", v.Version)
		case seen[v.Version]:
			return fmt.Errorf("version %q is listed twice", v.Version)
		case v.Image == "" && !slices.Contains(d.Capabilities, shared.CapDockerfile):
			return fmt.Errorf("version %q has no image", v.Version)
		}
		seen[v.Version] = true
		if v.Default {
			defaults++
		}
	}
	if defaults != 1 {
		return fmt.Errorf("%d versions are marked default; exactly one must be", defaults)
	}
	return nil
}
