// Package policy is the only place that decides what a run may do. It takes a
// plugin's spec, the caller's requested limits and the host's configuration,
// and returns a job the executor carries out as is — or refuses. A plugin can
// ask; only the policy grants.
package policy

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/pathguard"
	"github.com/runhost/runhost/shared"
)

// Config is the host's policy: defaults and maxima for every limit.
type Config struct {
	DefaultTimeout time.Duration
	MaxTimeout     time.Duration
	DefaultMemory  int64 // bytes
	MaxMemory      int64
	MinMemory      int64
	DefaultCPUs    float64
	MaxCPUs        float64

	Pids          int64
	NoFile        int64
	FileSizeBytes int64
	TmpBytes      int64
	RunDirBytes   int64
	OutputBytes   int64

	User string // numeric uid:gid of every run
}

// Requested are the limits a caller asked for; zero means "the default".
type Requested struct {
	Timeout     time.Duration
	MemoryBytes int64
	CPUs        float64
}

// Input is everything the policy looks at for one run.
type Input struct {
	RunID     string
	Runtime   string         // the plugin's runtime name
	Version   shared.Version // the version the request resolved to
	Spec      shared.Spec    // what the plugin planned
	Requested Requested
	Stdin     []byte
}

// Limits on a spec's shape; a request is held to tighter ones at the API edge.
const (
	maxFiles        = 1000
	maxCommandBytes = 1 << 20 // well under the kernel's ARG_MAX
	maxEnvEntries   = 256
	maxEnvBytes     = 256 << 10
)

var (
	// ErrLimitExceeded marks a request that asked for more than the host allows (400).
	ErrLimitExceeded = errors.New("limit exceeded")
	// ErrSpecRefused marks a plugin spec that breaks the host's policy (502).
	ErrSpecRefused = errors.New("spec refused by host policy")
)

// LimitError is a requested limit outside the host's range.
type LimitError struct {
	Field string // the request field, e.g. "timeout_ms"
	Msg   string
}

func (e *LimitError) Error() string        { return e.Field + ": " + e.Msg }
func (e *LimitError) Is(target error) bool { return target == ErrLimitExceeded }

// SpecError is a plugin's spec that the policy refuses.
type SpecError struct {
	Runtime string
	Field   string
	Msg     string
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("plugin %q planned a spec the host refuses: %s: %s", e.Runtime, e.Field, e.Msg)
}
func (e *SpecError) Is(target error) bool { return target == ErrSpecRefused }

// Policy turns specs into jobs.
type Policy struct {
	cfg Config
}

// New returns a policy for cfg.
func New(cfg Config) *Policy { return &Policy{cfg: cfg} }

// CheckRequested refuses requested limits outside the host's range. Callers
// use it before asking a plugin anything.
func (p *Policy) CheckRequested(r Requested) error {
	c := p.cfg
	switch {
	case r.Timeout < 0:
		return &LimitError{"timeout_ms", "must not be negative"}
	case r.Timeout > c.MaxTimeout:
		return &LimitError{"timeout_ms", fmt.Sprintf("%d is above the host's maximum of %d", r.Timeout.Milliseconds(), c.MaxTimeout.Milliseconds())}
	case r.MemoryBytes < 0:
		return &LimitError{"memory_mb", "must not be negative"}
	case r.MemoryBytes > c.MaxMemory:
		return &LimitError{"memory_mb", fmt.Sprintf("%d is above the host's maximum of %d", r.MemoryBytes>>20, c.MaxMemory>>20)}
	case r.MemoryBytes > 0 && r.MemoryBytes < c.MinMemory:
		return &LimitError{"memory_mb", fmt.Sprintf("%d is below the minimum of %d", r.MemoryBytes>>20, c.MinMemory>>20)}
	case r.CPUs < 0:
		return &LimitError{"cpus", "must not be negative"}
	case r.CPUs > c.MaxCPUs:
		return &LimitError{"cpus", fmt.Sprintf("%g is above the host's maximum of %g", r.CPUs, c.MaxCPUs)}
	case r.CPUs > 0 && r.CPUs < 0.01:
		return &LimitError{"cpus", "must be at least 0.01"}
	}
	return nil
}

// Job decides the whole run from in, or says why not.
func (p *Policy) Job(in Input) (executor.Job, error) {
	if err := p.CheckRequested(in.Requested); err != nil {
		return executor.Job{}, err
	}
	refuse := func(field, format string, args ...any) (executor.Job, error) {
		return executor.Job{}, &SpecError{Runtime: in.Runtime, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	spec := in.Spec

	if spec.Image != in.Version.Image {
		return refuse("image", "%q is not the image of version %s (%q)", spec.Image, in.Version.Version, in.Version.Image)
	}
	if len(spec.Command) == 0 {
		return refuse("command", "empty")
	}
	cmdBytes := 0
	for _, a := range spec.Command {
		if strings.ContainsRune(a, 0) {
			return refuse("command", "an argument contains NUL")
		}
		cmdBytes += len(a) + 1
	}
	if cmdBytes > maxCommandBytes {
		return refuse("command", "%d bytes, more than %d", cmdBytes, maxCommandBytes)
	}

	files, err := p.files(spec.Files)
	if err != nil {
		return refuse("files", "%v", err)
	}
	workDir := executor.RunDir
	if spec.WorkDir != "" && spec.WorkDir != "." {
		if err := pathguard.Check(spec.WorkDir); err != nil {
			return refuse("work_dir", "%v", err)
		}
		workDir += "/" + spec.WorkDir
	}
	env, err := environment(spec.Env)
	if err != nil {
		return refuse("env", "%v", err)
	}

	limits, err := p.limits(in)
	if err != nil {
		return executor.Job{}, err
	}
	return executor.Job{
		ID:      in.RunID,
		Image:   spec.Image,
		Command: spec.Command,
		Env:     env,
		WorkDir: workDir,
		Files:   files,
		Stdin:   in.Stdin,
		User:    p.cfg.User,
		Labels: map[string]string{
			"runhost.run":     in.RunID,
			"runhost.runtime": in.Runtime,
			"runhost.version": in.Version.Version,
		},
		Limits: limits,
	}, nil
}

// limits resolves each limit: the request's, else the plugin's, else the
// host's default. A plugin asking above a maximum is refused, not clamped.
func (p *Policy) limits(in Input) (executor.Limits, error) {
	c := p.cfg
	spec := in.Spec.Limits
	refuse := func(field, format string, args ...any) (executor.Limits, error) {
		return executor.Limits{}, &SpecError{Runtime: in.Runtime, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case spec.Timeout < 0 || spec.Timeout > c.MaxTimeout:
		return refuse("limits.timeout", "%s is outside 0..%s", spec.Timeout, c.MaxTimeout)
	case spec.MemoryBytes < 0 || spec.MemoryBytes > c.MaxMemory || spec.MemoryBytes > 0 && spec.MemoryBytes < c.MinMemory:
		return refuse("limits.memory_bytes", "%d is outside %d..%d", spec.MemoryBytes, c.MinMemory, c.MaxMemory)
	case spec.CPUs < 0 || spec.CPUs > c.MaxCPUs:
		return refuse("limits.cpus", "%g is outside 0..%g", spec.CPUs, c.MaxCPUs)
	}
	return executor.Limits{
		Timeout:       first(in.Requested.Timeout, spec.Timeout, c.DefaultTimeout),
		MemoryBytes:   first(in.Requested.MemoryBytes, spec.MemoryBytes, c.DefaultMemory),
		NanoCPUs:      int64(first(in.Requested.CPUs, spec.CPUs, c.DefaultCPUs) * 1e9),
		Pids:          c.Pids,
		NoFile:        c.NoFile,
		FileSizeBytes: c.FileSizeBytes,
		TmpBytes:      c.TmpBytes,
		RunDirBytes:   c.RunDirBytes,
		OutputBytes:   c.OutputBytes,
	}, nil
}

func first[T int64 | float64 | time.Duration](vals ...T) T {
	for _, v := range vals {
		if v > 0 {
			return v
		}
	}
	return 0
}

func (p *Policy) files(in []shared.File) ([]executor.File, error) {
	if len(in) > maxFiles {
		return nil, fmt.Errorf("%d files, more than %d", len(in), maxFiles)
	}
	seen := make(map[string]bool, len(in))
	var total int64
	out := make([]executor.File, 0, len(in))
	for _, f := range in {
		if err := pathguard.Check(f.Path); err != nil {
			return nil, err
		}
		if seen[f.Path] {
			return nil, fmt.Errorf("%q appears twice", f.Path)
		}
		seen[f.Path] = true
		total += int64(len(f.Content))
		out = append(out, executor.File{Path: f.Path, Content: f.Content})
	}
	// A file and a directory of the same name cannot both exist.
	for path := range seen {
		for dir := path; ; {
			i := strings.LastIndexByte(dir, '/')
			if i < 0 {
				break
			}
			dir = dir[:i]
			if seen[dir] {
				return nil, fmt.Errorf("%q is both a file and a directory", dir)
			}
		}
	}
	if total > p.cfg.RunDirBytes {
		return nil, fmt.Errorf("%d bytes of files do not fit the run directory (%d bytes)", total, p.cfg.RunDirBytes)
	}
	return out, nil
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// environment returns env as sorted KEY=VALUE entries, with HOME set to /tmp
// (the only writable place besides the run directory) unless env sets it.
func environment(env map[string]string) ([]string, error) {
	if len(env) > maxEnvEntries {
		return nil, fmt.Errorf("%d entries, more than %d", len(env), maxEnvEntries)
	}
	out := make([]string, 0, len(env)+1)
	size := 0
	for k, v := range env {
		if !envName.MatchString(k) {
			return nil, fmt.Errorf("name %q is not a valid variable name", k)
		}
		if strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("value of %s contains NUL", k)
		}
		size += len(k) + len(v) + 2
		out = append(out, k+"="+v)
	}
	if size > maxEnvBytes {
		return nil, fmt.Errorf("%d bytes, more than %d", size, maxEnvBytes)
	}
	if _, ok := env["HOME"]; !ok {
		out = append(out, "HOME=/tmp")
	}
	sort.Strings(out)
	return out, nil
}
