// Package executor defines what the host asks of an execution engine: run one
// job in a fresh, locked-down container and report what happened. The policy
// package builds jobs; implementations (docker/) carry them out exactly and
// decide nothing about what a run may do.
package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// RunDir is where a run's files are placed inside its container, on a
// size-capped tmpfs. Commands run there unless a job names a sub-directory.
const RunDir = "/code"

// Executor runs jobs on an engine.
type Executor interface {
	// Run executes job and returns its result. A program that fails, times out
	// or runs out of memory is a Result, not an error; errors mean the engine
	// could not run the job at all.
	Run(ctx context.Context, job Job) (Result, error)
	// Ping reports whether the engine answers.
	Ping(ctx context.Context) error
	// ImageExists reports whether image is present on the engine.
	ImageExists(ctx context.Context, image string) (bool, error)
	// ResolveImage finds the image ref names exactly (the tag or digest it
	// names, never an ID prefix) and says what to use to get exactly it.
	// An image that is not there is ErrImageMissing.
	ResolveImage(ctx context.Context, ref string) (ImageInfo, error)
	// Build builds an image from a Dockerfile, or finds it already built.
	// A Dockerfile that fails to build is a BuiltImage with Failed set.
	Build(ctx context.Context, b Build) (BuiltImage, error)
	// StartSession starts a container that serves runs one after another,
	// with job's image, limits and workspace.
	StartSession(ctx context.Context, job Job) (Session, error)
}

// Session is a long-lived container for consecutive runs.
type Session interface {
	// Run runs job's command with its files, env, stdin, timeout and
	// output cap; the container's limits are the session's.
	Run(ctx context.Context, job Job) (Result, error)
	// Close ends the session and removes its container.
	Close() error
	// Done is closed when the session has ended (closed or died).
	Done() <-chan struct{}
}

// PoolTarget is a kind of container an executor's warm pool keeps ready:
// an image with a set of limits (what a default request for a runtime
// version gets), Size of them. Only jobs with exactly those limits (timeout
// and output cap aside) and no install or workspace take a pooled one.
type PoolTarget struct {
	Image      string
	Limits     Limits
	OCIRuntime string
	Size       int
}

// Job is one fully decided run: every field is what the container gets.
type Job struct {
	ID      string // run id, also in the container's labels
	Image   string
	Command []string
	Env     []string // KEY=VALUE, the program's whole environment on top of the image's
	WorkDir string   // absolute path inside the container, where Command starts
	Files   []File   // placed under FilesDir before Command starts
	// FilesDir is where Files go: RunDir, or the root of the workspace
	// mount. Empty means RunDir.
	FilesDir string
	// RunFiles are placed under RunDir when FilesDir is elsewhere (a
	// workspace): the program as the plugin planned it, so that what the
	// plugin made (the file made from code) never lands in the workspace.
	RunFiles []File
	// Workspace, when set, bind-mounts a session directory of the shared
	// workspace read-write.
	Workspace *Mount
	// OCIRuntime is the engine's runtime for the container (e.g. runsc);
	// empty means the engine's default.
	OCIRuntime string
	// Output, when set, receives the program's output as it is produced:
	// the bytes the capped result will hold, in order, per stream.
	Output func(stream Stream, p []byte)
	Stdin  []byte
	User   string // numeric uid:gid
	Labels map[string]string
	Limits Limits
	// Install, when set, runs first; its output is mounted read-only at
	// Install.OutputDir for the run.
	Install *Install
	// StdinStream, when set, is copied to the program's stdin after Stdin,
	// as it arrives, until it ends (interactive runs). The executor may still
	// be reading it when Run returns: the caller closes it then. Executors
	// that cannot stream ignore it.
	StdinStream io.Reader
	// Network, when set, lets the run reach its hosts through the egress
	// proxy; the container still gets no network interface of its own.
	Network *Network

	// Kernel, in a session, starts the session's resident interpreter:
	// Command (with Files, Env, WorkDir) is a driver speaking
	// Kernel.Protocol, kept running for the session's life.
	Kernel *Kernel
	// Cell, in an interpreter session, sends Stdin to the resident
	// interpreter as one cell of code instead of starting Command.
	Cell bool
	// Results, when set, receives each rich result of a cell as it comes.
	Results func(RichResult)
}

// Network is what a granted run may reach: the egress proxy, for the
// hosts in Allow (egress.CheckPattern's forms), until the run's timeout
// and a margin; and the CA bundle it trusts, which the executor places at
// NetworkCAFile (the policy points the run's environment there).
type Network struct {
	Allow []string
	CA    []byte
}

// NetworkCAFile is where a granted run finds the host's CA bundle.
const NetworkCAFile = "/tmp/.runhost-ca.pem"

// CAEnv are the variables that point a granted run's (or a granted build's
// RUN steps') programs at the host's CA bundle: OpenSSL and Python's ssl,
// requests, curl, Node, pip, npm, git.
var CAEnv = []string{"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "PIP_CERT", "NPM_CONFIG_CAFILE", "GIT_SSL_CAINFO"}

// NetworkLog is what a granted run asked the egress proxy for, as
// host:port: reached, refused by the proxy, or not reachable.
type NetworkLog struct {
	Contacted []string
	Refused   []string
	Failed    []string
}

// Kernel says how a session's resident interpreter is driven.
type Kernel struct {
	Protocol string // the driver protocol, e.g. "runhost-kernel/1"
	// InterruptGrace is how long an interrupted cell may take to stop
	// before the interpreter is restarted (its state lost).
	InterruptGrace time.Duration
	// ResultBytes bounds the rich results of one cell.
	ResultBytes int64
}

// RichResult is one rich output of a cell: a MIME bundle as Jupyter's,
// {"text/plain": "...", "image/png": "<base64>", ...}, with its metadata.
type RichResult struct {
	Data     map[string]json.RawMessage `json:"data"`
	Metadata map[string]json.RawMessage `json:"metadata,omitempty"`
}

// CellError is the exception a cell raised.
type CellError struct {
	Name      string   `json:"name"`
	Value     string   `json:"value"`
	Traceback []string `json:"traceback,omitempty"`
}

// Install is a dependency installation step, cached by Key.
type Install struct {
	Key       string // content hash: equal keys install the same thing
	Image     string
	Command   []string
	Env       []string
	Files     []File
	OutputDir string // absolute; the step writes its output here
	// DiskBytes is the size of the filesystem the step writes OutputDir
	// to (a tmpfs, counted against Limits.MemoryBytes): the cap holds while
	// the step writes, and its output is copied into the cache only when
	// it succeeded.
	DiskBytes int64
	// Egress lets the step reach allowed hosts through the egress proxy;
	// it never gets a network interface of its own.
	Egress     bool
	Limits     Limits
	OCIRuntime string
}

// Build is an image build, cached by Key.
type Build struct {
	Key        string // content hash of Dockerfile, context and build args
	Dockerfile []byte
	Context    []File
	BuildArgs  map[string]string
	// Bases are the images the Dockerfile names (FROM, COPY --from,
	// RUN --mount from), each pinned to the exact image the host checked.
	// The executor builds so that a name resolves to its Ref and nothing
	// else is reachable.
	Bases   []BaseImage
	Network bool // RUN steps reach the network, through the egress proxy
	// CA is the host's CA bundle, which a granted build's RUN steps trust
	// (at the builder's path, with CAEnv pointing there); nil for none.
	// Only with Network; never in the built image.
	CA          []byte
	Timeout     time.Duration
	MemoryBytes int64
	NanoCPUs    int64
	Pids        int64 // processes and threads of the whole build, builder included
	DiskBytes   int64 // the builder's working storage (layers, snapshots)
	ImageBytes  int64 // the built image, as it is handed to the engine
	LogBytes    int64
	Labels      map[string]string
}

// BaseImage is an image a Dockerfile names, pinned.
type BaseImage struct {
	Name string // as the Dockerfile names it, after ARG expansion
	Ref  string // exactly what the build uses for Name (ImageInfo.Ref)
}

// ImageInfo is an image as the executor found it.
type ImageInfo struct {
	// Ref is what names exactly the image that was checked: the image ID
	// (sha256:<64 hex>) where the executor can see the engine's images
	// (Docker); the checked name, normalised, where it cannot (Kubernetes
	// nodes pull by name).
	Ref string
	// Inspected says whether the fields below were read from the image;
	// false where the executor cannot see images (Kubernetes).
	Inspected  bool
	Entrypoint []string
	Cmd        []string
	WorkingDir string
	OnBuild    []string // ONBUILD triggers the image would run in a build
}

// BuildDockerfile is the Dockerfile's name inside a build context handed to
// a builder; a context file of that name is refused, so it cannot stand in
// for the Dockerfile the host checked.
const BuildDockerfile = ".runhost.Dockerfile"

// BuiltImage is the outcome of a Build.
type BuiltImage struct {
	Ref          string // the image to run
	Cached       bool   // built earlier; nothing was built now
	Failed       bool   // the Dockerfile did not build; Error says why
	Error        string
	Log          []byte
	LogTruncated bool
	Duration     time.Duration
	Entrypoint   []string // the image's own, for runs that give no command
	Cmd          []string
	WorkingDir   string
}

// Stream names an output stream.
type Stream int

const (
	Stdout Stream = iota + 1
	Stderr
)

// Mount is a directory of the engine's filesystem mounted into a run.
type Mount struct {
	Source string // as the engine sees it
	Target string // inside the container
}

// File is a file placed under FilesDir. Path is relative and already checked.
type File struct {
	Path    string
	Content []byte
}

// Limits are the resources a job may use. All are set; none is zero.
type Limits struct {
	Timeout       time.Duration // wall clock, from start to exit
	MemoryBytes   int64         // also the memory+swap limit: no swap
	NanoCPUs      int64
	Pids          int64
	NoFile        int64
	FileSizeBytes int64
	TmpBytes      int64 // /tmp tmpfs
	RunDirBytes   int64 // RunDir tmpfs
	OutputBytes   int64 // per stream; the rest is discarded
	// StopAtOutputLimit stops the program once a stream passes OutputBytes
	// (a run), instead of only discarding the rest (an install step, whose
	// log may be long).
	StopAtOutputLimit bool
}

// Stages a result can come from.
const (
	StageInstall = "install"
	StageBuild   = "build"
	StageRun     = "run"
)

// Result is what a finished job produced. When a step before the run
// failed, Stage names it and the fields describe that step; the run did
// not start.
type Result struct {
	Stage           string
	Install         *StepInfo // set when the job had an install step
	ExitCode        int
	Stdout          []byte
	Stderr          []byte
	StdoutTruncated bool
	StderrTruncated bool
	TimedOut        bool
	OOMKilled       bool
	// OutputLimited: the program was stopped because a stream passed the
	// output limit (Limits.StopAtOutputLimit).
	OutputLimited bool
	Duration      time.Duration // from start to exit
	// CappedFull: an install step's output filesystem filled up.
	CappedFull bool
	// Network is what a run with a Network asked the proxy for; nil
	// for runs without one.
	Network *NetworkLog

	// A cell of an interpreter session also has its rich results, the
	// exception it raised, and whether its interpreter had to be started
	// again (state lost).
	Results   []RichResult
	CellError *CellError
	Restarted bool
}

// StepInfo says how a step before the run went.
type StepInfo struct {
	Cached   bool // done earlier; reused
	Duration time.Duration
}

// ErrEngineUnavailable means the engine could not be reached; the caller
// answers 503 and may retry.
var ErrEngineUnavailable = errors.New("container engine unavailable")

// ErrImageMissing means the job's image is not on the engine.
var ErrImageMissing = errors.New("image not installed")

// ErrUnsupported means this executor cannot run that kind of job.
var ErrUnsupported = errors.New("not supported by this executor")

// ErrBusy means the engine refused the run for now (a quota is used up);
// the caller answers 429 and may retry.
var ErrBusy = errors.New("engine busy")

// ErrNoCapacity means the engine cannot place the run (no node fits, an
// admission rule refuses it); the caller answers 503.
var ErrNoCapacity = errors.New("no capacity for the run")

// ErrSessionGone means a session's container is no longer there.
var ErrSessionGone = errors.New("session ended")

// InstallStep is job's install step as a job of its own: the install's
// image, command, environment, files and limits, with the run's user and
// labels, marked runhost.step=install.
func InstallStep(job Job) Job {
	inst := job.Install
	labels := map[string]string{"runhost.step": StageInstall}
	for k, v := range job.Labels {
		labels[k] = v
	}
	return Job{
		ID:         job.ID + "-install",
		Image:      inst.Image,
		Command:    inst.Command,
		Env:        inst.Env,
		WorkDir:    RunDir,
		Files:      inst.Files,
		User:       job.User,
		Labels:     labels,
		Limits:     inst.Limits,
		OCIRuntime: inst.OCIRuntime,
	}
}

// InstallSource is where the copy step of an install sees the install's
// output (read-only).
const InstallSource = "/.runhost-install"

// InstallCopyStep is the job that copies an install's output from
// InstallSource into the cache at the output directory once the install
// succeeded: runhost-init's own copy (init is the path of runhost-init in
// the container), as the run user, with the install's limits, never
// writing more than the install's DiskBytes.
func InstallCopyStep(job Job, init string) Job {
	inst := job.Install
	labels := map[string]string{"runhost.step": StageInstall + "-copy"}
	for k, v := range job.Labels {
		labels[k] = v
	}
	return Job{
		ID:         job.ID + "-copy",
		Image:      inst.Image,
		Command:    []string{init, "--copy-tree", InstallSource, inst.OutputDir, strconv.FormatInt(inst.DiskBytes, 10)},
		WorkDir:    RunDir,
		User:       job.User,
		Labels:     labels,
		Limits:     inst.Limits,
		OCIRuntime: inst.OCIRuntime,
	}
}

// InstallFailure returns res as the install stage's result if the step
// failed (exit code, timeout, OOM), or nil if it succeeded. When the
// step's output filled its filesystem, stderr says so, with the cap and
// the setting that makes it.
func InstallFailure(res Result, inst *Install) *Result {
	if res.ExitCode == 0 && !res.TimedOut && !res.OOMKilled {
		return nil
	}
	res.Stage = StageInstall
	res.Install = &StepInfo{Duration: res.Duration}
	res.Network = nil // the install's own proxy use; a result has one only with a run's grant
	if res.CappedFull && inst != nil {
		res.Stderr = append(res.Stderr, fmt.Sprintf("\nrunhost: the install's output directory %s filled its %d MB filesystem (RUNHOST_INSTALL_DISK_MB); nothing was cached\n",
			inst.OutputDir, inst.DiskBytes>>20)...)
	}
	if certificateFailure(res.Stdout) || certificateFailure(res.Stderr) {
		res.Stderr = append(res.Stderr, "\nrunhost: the install did not trust a server's TLS certificate; where a proxy re-signs TLS, "+
			"point RUNHOST_CA_BUNDLE at a PEM bundle holding its CA (by default the host gives installs the machine's own bundle; RUNHOST_CA_BUNDLE=none gives none)\n"...)
	}
	return &res
}

// certificateFailures are how pip (OpenSSL, Python's ssl) and npm (Node's
// TLS) report a certificate they do not trust.
var certificateFailures = []string{
	"CERTIFICATE_VERIFY_FAILED",
	"certificate verify failed",
	"self-signed certificate",
	"self signed certificate",
	"SELF_SIGNED_CERT_IN_CHAIN",
	"DEPTH_ZERO_SELF_SIGNED_CERT",
	"UNABLE_TO_GET_ISSUER_CERT",
	"unable to get local issuer certificate",
	"UNABLE_TO_VERIFY_LEAF_SIGNATURE",
}

func certificateFailure(out []byte) bool {
	for _, s := range certificateFailures {
		if bytes.Contains(out, []byte(s)) {
			return true
		}
	}
	return false
}

// ProxyEnv is what an install step needs to reach the network through the
// egress proxy at addr (host:port).
func ProxyEnv(addr string) []string {
	u := "http://" + addr
	return []string{
		"HTTP_PROXY=" + u, "HTTPS_PROXY=" + u, "http_proxy=" + u, "https_proxy=" + u,
		"NPM_CONFIG_PROXY=" + u, "NPM_CONFIG_HTTPS_PROXY=" + u,
		"NO_PROXY=", "no_proxy=",
	}
}

// MergeEnv returns base with overrides applied by name.
func MergeEnv(base, overrides []string) []string {
	out := make([]string, 0, len(base)+len(overrides))
	set := map[string]bool{}
	for _, kv := range overrides {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	for _, kv := range base {
		if k, _, _ := strings.Cut(kv, "="); !set[k] {
			out = append(out, kv)
		}
	}
	return append(out, overrides...)
}
