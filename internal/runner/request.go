package runner

import (
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/pathguard"
	"github.com/runhost/runhost/internal/policy"
	"github.com/runhost/runhost/shared"
)

// Request is a run request as the host sees it: the one request model every
// front end (the native API, Piston, MCP) decodes its own wire format into.
// What the plugin plans from is the embedded shared.RunRequest, handed over
// as is (with Version resolved); the rest is for the host.
type Request struct {
	shared.RunRequest

	// Caller is who asks: workspace names resolve in its namespaces, and
	// what the run caches (installs, builds) is its own.
	Caller auth.Identity

	Runtime string // name or alias; empty for a run in a session
	Stdin   []byte
	Limits  policy.Requested

	Workspace   string // "name/sub/dir": run there, with the session mounted
	ContextPath string // "name/sub/dir": the build context, from the workspace
	// Network is what the run asks to reach through the egress proxy; nil:
	// it did not ask (it gets its key's grant only if that is the default).
	Network *policy.NetworkRequest

	// Output, when set, receives the run's output as it is produced.
	Output func(executor.Stream, []byte)
	// StdinStream, when set, feeds the program's stdin after Stdin as data
	// arrives (see executor.Job.StdinStream); the caller closes it after Run.
	StdinStream io.Reader
}

// Bounds on a request's shape, whichever front end it came through: the one
// table Validate checks. Bytes of code, files and stdin are bounded by the
// body cap every front end decodes under (RUNHOST_MAX_BODY_BYTES), then by
// the run directory and build context caps the policy holds them to.
const (
	MaxFiles         = 256       // files of a request
	MaxArgs          = 1024      // args, and entries of an argv command
	MaxArgBytes      = 256 << 10 // args together; an argv or shell command together
	MaxEnv           = 256       // env entries, and build_args entries
	MaxEnvValueBytes = 64 << 10  // one env or build_args value

	// The requested limits, in the units the policy's maxima are set in:
	// far above any maximum, low enough that no conversion overflows.
	MaxTimeoutMS = 1 << 30
	MaxMemoryMB  = 1 << 30
	MaxCPUs      = 1 << 30
)

// InvalidError is a request refused for its shape: Code is the error code
// every front end answers with (a 400), Message says which field and rule.
// It matches shared.ErrInvalidRequest.
type InvalidError struct {
	Code    string
	Message string
}

func (e *InvalidError) Error() string { return e.Message }

// Is reports whether target is shared.ErrInvalidRequest.
func (e *InvalidError) Is(target error) bool { return target == shared.ErrInvalidRequest }

// FileError is a refused path of the request's i-th file. Front ends name
// the field in their own words (Piston's files have a name, not a path).
type FileError struct {
	Index int
	Err   error
}

func (e *FileError) Error() string { return fmt.Sprintf("files[%d]: %v", e.Index, e.Err) }
func (e *FileError) Unwrap() error { return e.Err }

// Invalid returns an InvalidError with code and a formatted message.
func Invalid(code, format string, args ...any) error {
	return &InvalidError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// RequestedLimits turns limits in wire units (milliseconds, MiB, cores)
// into requested limits without overflowing: a value outside the bounds
// stays outside them, for Validate to refuse.
func RequestedLimits(timeoutMS, memoryMB, cpus float64) policy.Requested {
	clamp := func(v, bound float64) float64 { return max(-1, min(v, bound+1)) }
	return policy.Requested{
		Timeout:     time.Duration(clamp(timeoutMS, MaxTimeoutMS) * float64(time.Millisecond)),
		MemoryBytes: int64(clamp(memoryMB, MaxMemoryMB) * (1 << 20)),
		CPUs:        clamp(cpus, MaxCPUs),
	}
}

// Validate checks the request's shape against the bounds: the limits'
// range, that there is a program, the files' count, paths and names, the
// entry's path, args, env, command and build_args. It says nothing about
// what the runtime supports or the host allows (the runner and the policy
// decide that). Every refusal is an *InvalidError, a *policy.LimitError or
// an error wrapping pathguard.ErrUnsafePath.
func (r *Request) Validate() error {
	if err := validateLimits(r.Limits); err != nil {
		return err
	}
	hasCommand := len(r.Command.Argv) > 0 || r.Command.Shell != ""
	if r.Code == "" && len(r.Files) == 0 && !hasCommand && r.Dockerfile == "" && r.ContextPath == "" {
		return Invalid("no_code", "give the program as code or files (or a command, or a dockerfile)")
	}
	if err := r.validateFiles(); err != nil {
		return err
	}
	if err := checkArgv("args", r.Args); err != nil {
		return err
	}
	if err := checkArgv("command", r.Command.Argv); err != nil {
		return err
	}
	if strings.ContainsRune(r.Command.Shell, 0) {
		return Invalid("invalid_arg", "command contains NUL")
	}
	if len(r.Command.Shell) > MaxArgBytes {
		return Invalid("too_many_args", "command is %d bytes, at most %d", len(r.Command.Shell), MaxArgBytes)
	}
	if err := checkVars("env", r.Env); err != nil {
		return err
	}
	if err := checkVars("build_args", r.BuildArgs); err != nil {
		return Invalid("invalid_request", "%v", err) // as build_args were always refused
	}
	return validateNetwork(r.Network)
}

// Validate checks a session's start the way Request.Validate checks a run:
// a runtime named, the limits in range.
func (s *SessionSpec) Validate() error {
	if s.Runtime == "" {
		return Invalid("invalid_request", "runtime is required")
	}
	if err := validateNetwork(s.Network); err != nil {
		return err
	}
	return validateLimits(s.Limits)
}

// validateNetwork checks a network request's shape: host patterns only
// (whether the caller's key grants them is the runner's to decide).
func validateNetwork(n *policy.NetworkRequest) error {
	if _, err := policy.NetworkHosts(n); err != nil {
		return Invalid("invalid_network", "%v", err)
	}
	return nil
}

func validateLimits(l policy.Requested) error {
	switch {
	case l.Timeout < 0 || l.Timeout > MaxTimeoutMS*time.Millisecond:
		return &policy.LimitError{Field: "timeout_ms", Msg: fmt.Sprintf("out of range (0 to %d)", MaxTimeoutMS)}
	case l.MemoryBytes < 0 || l.MemoryBytes > MaxMemoryMB<<20:
		return &policy.LimitError{Field: "memory_mb", Msg: fmt.Sprintf("out of range (0 to %d)", MaxMemoryMB)}
	case l.CPUs < 0 || l.CPUs > MaxCPUs || math.IsNaN(l.CPUs):
		return &policy.LimitError{Field: "cpus", Msg: fmt.Sprintf("out of range (0 to %d)", MaxCPUs)}
	}
	return nil
}

func (r *Request) validateFiles() error {
	if len(r.Files) > MaxFiles {
		return Invalid("too_many_files", "%d files, at most %d", len(r.Files), MaxFiles)
	}
	seen := make(map[string]bool, len(r.Files))
	for i, f := range r.Files {
		if err := pathguard.Check(f.Path); err != nil {
			return &FileError{Index: i, Err: err}
		}
		if seen[f.Path] {
			return Invalid("duplicate_file", "files[%d]: %q is given twice", i, f.Path)
		}
		seen[f.Path] = true
	}
	if r.Entry != "" {
		if err := pathguard.Check(r.Entry); err != nil {
			return fmt.Errorf("entry: %w", err)
		}
	}
	return nil
}

// checkArgv bounds an argv: its entries, their bytes, no NUL.
func checkArgv(field string, argv []string) error {
	if len(argv) > MaxArgs {
		return Invalid("too_many_args", "%d %s, at most %d", len(argv), field, MaxArgs)
	}
	n := 0
	for i, a := range argv {
		if strings.ContainsRune(a, 0) {
			return Invalid("invalid_arg", "%s[%d] contains NUL", field, i)
		}
		n += len(a)
	}
	if n > MaxArgBytes {
		return Invalid("too_many_args", "%s total %d bytes, at most %d", field, n, MaxArgBytes)
	}
	return nil
}

// checkVars bounds variables (env, build_args): their count, names and
// values.
func checkVars(field string, vars map[string]string) error {
	if len(vars) > MaxEnv {
		return Invalid("too_many_env", "%d %s entries, at most %d", len(vars), field, MaxEnv)
	}
	for k, v := range vars {
		if !policy.ValidEnvName(k) {
			return Invalid("invalid_env", "%s name %q: want letters, digits and _, not starting with a digit", field, k)
		}
		if strings.ContainsRune(v, 0) || len(v) > MaxEnvValueBytes {
			return Invalid("invalid_env", "%s %s: value contains NUL or is longer than %d bytes", field, k, MaxEnvValueBytes)
		}
	}
	return nil
}

// DecodeContent is a file's bytes from its content and encoding as the
// native API and MCP carry them: "utf8" (the default, also "utf-8") or
// "base64".
func DecodeContent(content, encoding string) ([]byte, error) {
	switch encoding {
	case "", "utf8", "utf-8":
		return []byte(content), nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(content)
		if err != nil {
			return nil, fmt.Errorf("invalid base64: %w", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("unknown encoding %q (want utf8 or base64)", encoding)
}
