package shared

import (
	"context"
	"time"
)

// Runtime is the contract a runtime plugin implements.
type Runtime interface {
	// Describe reports the runtime's names, versions and capabilities. The host
	// calls it once after launching the plugin.
	Describe(ctx context.Context) (Description, error)
	// Plan turns a request into a container spec. Return an error made with
	// Invalidf for requests the runtime cannot run; the caller sees it as a 400.
	Plan(ctx context.Context, req RunRequest) (Spec, error)
}

// Capability names an optional request feature a runtime supports. The host
// refuses requests that use a feature the runtime does not declare.
type Capability = string

const (
	CapStdin Capability = "stdin" // the program reads the request's stdin
	CapArgs  Capability = "args"  // command-line arguments reach the program
	CapEnv   Capability = "env"   // environment variables reach the program
	CapFiles Capability = "files" // multi-file programs with an entry file
)

// Description is what a plugin says about itself.
type Description struct {
	Name         string   // unique, lower case: "python"
	Aliases      []string // other names the runtime answers to: "py"
	Description  string   // one line for humans
	Versions     []Version
	Capabilities []Capability
}

// Version is one version of a runtime and the image it runs in.
type Version struct {
	Version  string // "3.11"
	Image    string // "runhost/python:3.11"
	Default  bool   // used when a request names no version; exactly one per runtime
	SelfTest SelfTest
}

// SelfTest is a tiny program and the exact stdout it must print. The host runs
// it against the real image to prove a version works.
type SelfTest struct {
	Code           string
	ExpectedStdout string
}

// RunRequest is a run request as a plugin sees it. The host has already
// checked sizes and paths and resolved Version to one the plugin described.
type RunRequest struct {
	Version string
	Code    string // shorthand for the runtime's main file; empty when Files is used
	Files   []File
	Entry   string // the file to run, one of Files; empty means the first
	Args    []string
	Env     map[string]string
}

// File is a file placed in the run directory. Path is relative and clean.
type File struct {
	Path    string
	Content []byte
}

// Spec is a plugin's answer: what to run and in which image. It is plain data;
// the host decides everything else (user, network, mounts, hardening) and
// refuses a spec that asks for more than its policy grants.
type Spec struct {
	Image   string            // must be the image of the planned version
	Files   []File            // placed in the run directory before Command starts
	Command []string          // argv; relative paths resolve in the run directory
	Env     map[string]string // environment of the program
	WorkDir string            // relative to the run directory; empty means the run directory
	Limits  Limits            // the runtime's own defaults; the request and host maxima win
}

// Limits are resource limits. Zero means "no opinion".
type Limits struct {
	Timeout     time.Duration
	MemoryBytes int64
	CPUs        float64
}
