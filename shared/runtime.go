package shared

import (
	"context"
	"maps"
	"time"

	"github.com/runhost/runhost/shared/kernel"
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
type Capability string

const (
	CapStdin       Capability = "stdin"        // the program reads the request's stdin
	CapArgs        Capability = "args"         // command-line arguments reach the program
	CapEnv         Capability = "env"          // environment variables reach the program
	CapFiles       Capability = "files"        // multi-file programs with an entry file
	CapPackages    Capability = "packages"     // dependencies installed before the run (pip, npm)
	CapCustomImage Capability = "custom-image" // the request names its own image and command
	CapDockerfile  Capability = "dockerfile"   // the request brings a Dockerfile to build and run
	// CapInterpreter: the runtime serves interpreter sessions; Plan with
	// RunRequest.Interpreter answers a Spec whose Kernel starts the driver.
	CapInterpreter Capability = "interpreter"
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
// checked sizes and paths, and resolved Version to one the plugin described.
type RunRequest struct {
	Version      string // exactly one of the described versions
	VersionImage string // that version's Image, as described
	Code         string // shorthand for the runtime's main file; empty when Files is used
	Files        []File
	Entry        string // the file to run, one of Files; empty means the first
	Args         []string
	Env          map[string]string

	// Packages are dependencies to install before the run, as the caller
	// wrote them (pip requirement lines, npm package specs). CapPackages.
	Packages []string
	// Image and Command replace the runtime's own image and command.
	// CapCustomImage; the host checks the image against its allow-list.
	Image   string
	Command Command
	// Dockerfile and BuildArgs describe an image to build; Files are its
	// build context. CapDockerfile.
	Dockerfile string
	BuildArgs  map[string]string

	// Interpreter asks for the driver of an interpreter session
	// (CapInterpreter) instead of a run: the answer's Kernel says how to
	// start it, with the spec's Image, Env and WorkDir. Code, Files and the
	// fields above are empty then.
	Interpreter bool
}

// Command is a command given by the caller: an argv, or a line for a shell.
// At most one is set.
type Command struct {
	Argv  []string
	Shell string
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
	Image   string            // the request's VersionImage (or an allowed custom image)
	Files   []File            // placed in the run directory before Command starts
	Command []string          // argv; relative paths resolve in the run directory
	Env     map[string]string // environment of the program
	WorkDir string            // relative to the run directory; empty means the run directory
	Limits  Limits            // the runtime's own defaults; the request and host maxima win

	// Install, when set, runs first in its own container and its output
	// directory is mounted read-only into the run. The host caches it by
	// content: the same install is done once.
	Install *Install
	// Build, when set, is built into an image first and the run uses that
	// image; Image must then be empty. Command, when set, replaces the
	// image's whole argv (ENTRYPOINT and CMD); empty, the run is what
	// docker run does: the image's ENTRYPOINT, Build.Cmd or else the
	// image's CMD, then Build.Args.
	Build *Build

	// Kernel is the answer to a RunRequest with Interpreter: the session's
	// resident driver. Command and Files are then unused.
	Kernel *Kernel
}

// KernelProtocol is the driver protocol the host speaks with a Kernel
// (docs/kernels.md).
const KernelProtocol = kernel.Protocol

// KernelDir is where the host places a Kernel's Driver in the session's
// container, outside the run directory and any workspace.
const KernelDir = "/tmp/.runhost-kernel"

// Kernel is an interpreter session's driver: a program that speaks
// Protocol, started once per session and kept running, which runs each
// cell of code in the same global state and reports its rich results.
type Kernel struct {
	Protocol string // KernelProtocol
	// Driver is the driver's source, placed at KernelDir/Driver.Path
	// (one plain file name).
	Driver File
	// Command starts the driver: an argv naming KernelDir/Driver.Path.
	Command []string
}

// InterpreterSpec is the usual answer to a RunRequest with Interpreter:
// the version's image, env (the request's Env on top), and a Kernel whose
// driver is file with source, started by command(the driver's path).
func InterpreterSpec(req RunRequest, env map[string]string, file string, source []byte, command func(path string) []string) Spec {
	all := make(map[string]string, len(env)+len(req.Env))
	maps.Copy(all, env)
	maps.Copy(all, req.Env)
	return Spec{
		Image: req.VersionImage,
		Env:   all,
		Kernel: &Kernel{
			Protocol: KernelProtocol,
			Driver:   File{Path: file, Content: source},
			Command:  command(KernelDir + "/" + file),
		},
	}
}

// Install is a dependency installation step.
type Install struct {
	Command []string          // run in the spec's image, in a run directory holding Files
	Files   []File            // e.g. requirements.txt, package.json
	Env     map[string]string // e.g. PIP_* settings
	// OutputDir is where the installed dependencies go: an absolute,
	// one-level path such as "/deps". It is a fresh cache volume, writable
	// during the install and mounted read-only at the same path for the run.
	OutputDir string
	// Network asks for network access during the install (to reach the
	// package index). The host grants it only if its policy allows.
	Network bool
}

// Build is an image build from a Dockerfile.
type Build struct {
	Dockerfile string
	Context    []File // the build context; paths relative to its root
	BuildArgs  map[string]string
	// Cmd replaces the image's CMD for the run (docker run IMAGE CMD...);
	// the image's ENTRYPOINT stays. Empty: the image's CMD.
	Cmd []string
	// Args are appended to the run's argv, after the CMD.
	Args []string
}

// Limits are resource limits. Zero means "no opinion".
type Limits struct {
	Timeout     time.Duration
	MemoryBytes int64
	CPUs        float64
}
