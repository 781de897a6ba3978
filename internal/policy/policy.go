// Package policy is the only place that decides what a run may do. It takes a
// plugin's spec, the caller's requested limits and the host's configuration,
// and returns a job the executor carries out as is — or refuses. A plugin can
// ask; only the policy grants.
package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/runhost/runhost/internal/dockerfile"
	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/imageref"
	"github.com/runhost/runhost/internal/pathguard"
	"github.com/runhost/runhost/internal/workspace"
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

	// Images a custom-image request or a Dockerfile may name (patterns, *
	// matches any run of characters). Empty: the images the runtimes
	// declare.
	AllowedImages []string
	// ImageAliases map image names requests use to the images this host
	// runs for them (RUNHOST_IMAGE_ALIASES): resolved before the
	// allow-list, which then judges the target.
	ImageAliases map[string]string
	// InternalImages are more of runhost's own images (the configured
	// helper images and build repositories), refused like
	// internalRepositories.
	InternalImages []string

	AllowInstallNetwork bool
	InstallTimeout      time.Duration
	InstallMemory       int64
	InstallDisk         int64 // bytes of the filesystem an install's output is written to
	PipIndexURL         string
	NpmRegistry         string
	CABundle            []byte // PEM given to install steps, granted runs and granted builds; nil for none

	// Grants narrow what named plugins may ask for (RUNHOST_POLICY).
	Grants map[string]Grant

	// OCIRuntime is the engine runtime of run and install containers;
	// OCIRuntimes overrides it per runtime name. Requests cannot choose.
	OCIRuntime  string
	OCIRuntimes map[string]string

	BuildTimeout    time.Duration
	BuildMemory     int64
	MaxContextBytes int64
	BuildLogBytes   int64
	BuildPids       int64
	BuildDisk       int64
	BuildImageBytes int64
}

// Requested are the limits a caller asked for; zero means "the default".
type Requested struct {
	Timeout     time.Duration
	MemoryBytes int64
	CPUs        float64
}

// Input is everything the policy looks at for one run.
type Input struct {
	RunID        string
	Runtime      string              // the plugin's runtime name
	Capabilities []shared.Capability // what the runtime declared
	Version      shared.Version      // the version the request resolved to
	Spec         shared.Spec         // what the plugin planned
	Requested    Requested
	Stdin        []byte
	// DeclaredImages are every runtime's images: the default allow-list.
	DeclaredImages []string
	// Built is the image the spec's Build produced; set by the caller after
	// building, before asking for the run job.
	Built *executor.BuiltImage
	// Workspace is the session directory the run works in, and
	// WorkspaceSource where the engine sees that session (the bind source).
	Workspace       *workspace.Ref
	WorkspaceSource string
	// Sent are the paths of the files the caller sent: in a workspace run
	// only they are written to the workspace; what the plugin made (the
	// file made from code) stays in the private run directory.
	Sent []string
	// Owner is the caller's key name: what the run caches (installed
	// dependencies, built images) is keyed by it, so one key never finds
	// another key's entry (no cross-tenant oracle, no poisoning).
	Owner string
	// Resolve pins the images a request names (a custom image, a
	// Dockerfile's bases) to what the engine has under that name.
	Resolve Resolver
	// Network are the hosts the run may reach through the egress proxy
	// (RunNetwork decided them); none: no network.
	Network []string
	// BuildEgress: the caller's key may give its builds' RUN steps the
	// install hosts (build-egress; RUNHOST_BUILD_NETWORK without keys).
	BuildEgress bool
}

// Limits on a spec's shape; a request is held to tighter ones at the API edge.
const (
	maxFiles        = 1000
	maxCommandBytes = 1 << 20 // well under the kernel's ARG_MAX
	maxEnvEntries   = 256
	maxEnvBytes     = 256 << 10
)

var (
	// ErrImageNotAllowed marks a request naming an image outside the allow-list (403).
	ErrImageNotAllowed = errors.New("image not allowed")
	// ErrContextTooLarge marks a build context over the host's limit (413).
	ErrContextTooLarge = errors.New("build context too large")
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

// ImageError is an image a request may not use: outside
// RUNHOST_ALLOWED_IMAGES, or refused for Reason.
type ImageError struct {
	Image   string
	Allowed []string
	Reason  string // empty: not on the allow-list
}

func (e *ImageError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("image %q is not allowed: %s", e.Image, e.Reason)
	}
	return fmt.Sprintf("image %q is not allowed: RUNHOST_ALLOWED_IMAGES permits %s", e.Image, strings.Join(e.Allowed, ", "))
}
func (e *ImageError) Is(target error) bool { return target == ErrImageNotAllowed }

// Policy turns specs into jobs.
type Policy struct {
	cfg Config
}

// New returns a policy for cfg.
func New(cfg Config) *Policy { return &Policy{cfg: cfg} }

// CheckRequested refuses requested limits outside what runtime may have
// (the host's maxima, narrowed by the runtime's grant). Callers use it
// before asking a plugin anything.
func (p *Policy) CheckRequested(runtime string, r Requested) error {
	c := p.cfg
	m := p.maxima(runtime)
	switch {
	case r.Timeout < 0:
		return &LimitError{"timeout_ms", "must not be negative"}
	case r.Timeout > m.timeout:
		return &LimitError{"timeout_ms", fmt.Sprintf("%d is above %s of %d", r.Timeout.Milliseconds(), m.source, m.timeout.Milliseconds())}
	case r.MemoryBytes < 0:
		return &LimitError{"memory_mb", "must not be negative"}
	case r.MemoryBytes > m.memory:
		return &LimitError{"memory_mb", fmt.Sprintf("%d is above %s of %d", r.MemoryBytes>>20, m.source, m.memory>>20)}
	case r.MemoryBytes > 0 && r.MemoryBytes < c.MinMemory:
		return &LimitError{"memory_mb", fmt.Sprintf("%d is below the minimum of %d", r.MemoryBytes>>20, c.MinMemory>>20)}
	case r.CPUs < 0:
		return &LimitError{"cpus", "must not be negative"}
	case r.CPUs > m.cpus:
		return &LimitError{"cpus", fmt.Sprintf("%g is above %s of %g", r.CPUs, m.source, m.cpus)}
	case r.CPUs > 0 && r.CPUs < 0.01:
		return &LimitError{"cpus", "must be at least 0.01"}
	}
	return nil
}

// Job decides the whole run from in, or says why not.
func (p *Policy) Job(in Input) (executor.Job, error) {
	if err := p.CheckRequested(in.Runtime, in.Requested); err != nil {
		return executor.Job{}, err
	}
	refuse := func(field, format string, args ...any) (executor.Job, error) {
		return executor.Job{}, &SpecError{Runtime: in.Runtime, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	spec := in.Spec

	image, err := p.image(in)
	if err != nil {
		return executor.Job{}, err
	}
	command := spec.Command
	if in.Built != nil && len(command) == 0 {
		if command = builtCommand(in.Built, spec.Build); len(command) == 0 {
			return executor.Job{}, &NoCommandError{"the built image has no ENTRYPOINT or CMD and the request gives no command: add CMD to the Dockerfile, or send command"}
		}
	}
	if len(command) == 0 {
		return refuse("command", "empty")
	}
	cmdBytes := 0
	for _, a := range command {
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
	workDir, filesDir := executor.RunDir, executor.RunDir
	var mount *executor.Mount
	var runFiles []executor.File
	if ws := in.Workspace; ws != nil {
		// The session is mounted (never anything below it: a run could swap
		// a sub-directory for a symlink); the working directory is inside it.
		mount = &executor.Mount{Source: in.WorkspaceSource, Target: path.Join(workspace.MountPoint, ws.Session)}
		filesDir, workDir = mount.Target, ws.InContainer()
		files, runFiles, command = splitWorkspaceFiles(files, in.Sent, ws.Dir, command)
	}
	if in.Built != nil && in.Built.WorkingDir != "" && spec.WorkDir == "" && in.Workspace == nil {
		workDir = path.Clean(in.Built.WorkingDir) // the Dockerfile's WORKDIR
	}
	if spec.WorkDir != "" && spec.WorkDir != "." {
		if err := pathguard.Check(spec.WorkDir); err != nil {
			return refuse("work_dir", "%v", err)
		}
		workDir = path.Join(workDir, spec.WorkDir)
	}
	envMap := spec.Env
	var network *executor.Network
	if len(in.Network) > 0 {
		envMap = maps.Clone(spec.Env)
		if envMap == nil {
			envMap = map[string]string{}
		}
		network = p.network(in.Network, envMap)
	}
	env, err := environment(envMap)
	if err != nil {
		return refuse("env", "%v", err)
	}

	limits, err := p.limits(in)
	if err != nil {
		return executor.Job{}, err
	}
	var install *executor.Install
	if spec.Install != nil {
		if install, err = p.install(in, image); err != nil {
			return executor.Job{}, err
		}
	}
	return executor.Job{
		ID:       in.RunID,
		Image:    image,
		Command:  command,
		Env:      env,
		WorkDir:  workDir,
		Files:    files,
		RunFiles: runFiles,
		Stdin:    in.Stdin,
		User:     p.cfg.User,
		Labels: map[string]string{
			"runhost.run":     in.RunID,
			"runhost.runtime": in.Runtime,
			"runhost.version": in.Version.Version,
		},
		Limits:     limits,
		Install:    install,
		FilesDir:   filesDir,
		Workspace:  mount,
		OCIRuntime: p.ociRuntime(in.Runtime),
		Network:    network,
	}, nil
}

// splitWorkspaceFiles places a workspace run's files: the ones the caller
// sent go to the workspace directory dir, where asked; when the plugin made
// files of its own (the main file made from code), the whole program goes
// to the private run directory instead, so that what the plugin made never
// litters (or replaces) the user's files, and the main file finds its
// modules beside it. Arguments naming a plugin-made file by its relative
// path then name it in the run directory: the working directory stays the
// workspace directory.
func splitWorkspaceFiles(files []executor.File, sent []string, dir string, command []string) (ws, run []executor.File, cmd []string) {
	made := map[string]bool{}
	for _, f := range files {
		if slices.Contains(sent, f.Path) {
			if dir != "" {
				f.Path = dir + "/" + f.Path
			}
			ws = append(ws, f)
		} else {
			made[f.Path] = true
		}
	}
	if len(made) == 0 {
		return ws, nil, command
	}
	cmd = slices.Clone(command)
	for i, a := range cmd {
		if made[a] {
			cmd[i] = executor.RunDir + "/" + a
		}
	}
	return ws, files, cmd
}

// builtCommand is what a built image runs, as docker run does: the
// image's ENTRYPOINT, then the request's command or else the image's CMD,
// then the request's args. Empty when the image has neither ENTRYPOINT
// nor a command.
func builtCommand(built *executor.BuiltImage, b *shared.Build) []string {
	cmd := built.Cmd
	var args []string
	if b != nil {
		if len(b.Cmd) > 0 {
			cmd = b.Cmd
		}
		args = b.Args
	}
	if len(built.Entrypoint) == 0 && len(cmd) == 0 {
		return nil
	}
	return slices.Concat(built.Entrypoint, cmd, args)
}

// DefaultLimits are the limits and OCI runtime a request for runtime gets
// when neither it nor the plugin asks for any: what a warm pool prepares.
func (p *Policy) DefaultLimits(runtime string) (executor.Limits, string) {
	l, _ := p.limits(Input{Runtime: runtime})
	return l, p.ociRuntime(runtime)
}

// ociRuntime is the engine runtime for a runtime's containers.
func (p *Policy) ociRuntime(runtime string) string {
	if rt, ok := p.cfg.OCIRuntimes[runtime]; ok {
		return rt
	}
	return p.cfg.OCIRuntime
}

// image decides which image the run uses: the version's own, an image the
// spec's build produced, or — for runtimes that take custom images — one the
// request named, if the allow-list permits it.
func (p *Policy) image(in Input) (string, error) {
	spec := in.Spec
	switch {
	case spec.Build != nil:
		if spec.Image != "" {
			return "", &SpecError{in.Runtime, "image", "a spec with a build must leave the image empty"}
		}
		if in.Built == nil || in.Built.Ref == "" {
			return "", &SpecError{in.Runtime, "build", "the image has not been built"}
		}
		return in.Built.Ref, nil
	case spec.Image == in.Version.Image:
		if g, ok := p.grantOf(in.Runtime); ok && len(g.Images) > 0 && !matchAny(g.Images, spec.Image) {
			return "", &SpecError{in.Runtime, "image", fmt.Sprintf("%q is outside the images RUNHOST_POLICY grants the plugin (%s)", spec.Image, strings.Join(g.Images, ", "))}
		}
		if r, err := imageref.Parse(spec.Image); err != nil || p.isInternal(r) {
			return "", &SpecError{in.Runtime, "image", fmt.Sprintf("%q is not an image a runtime may declare (an image ID, or one of runhost's own images)", spec.Image)}
		}
		return spec.Image, nil
	case !slices.Contains(in.Capabilities, shared.CapCustomImage):
		return "", &SpecError{in.Runtime, "image", fmt.Sprintf("%q is not the image of version %s (%q)", spec.Image, in.Version.Version, in.Version.Image)}
	}
	// A custom image the request named: allowed, then pinned.
	r, err := p.CheckImage(in.Runtime, spec.Image, in.DeclaredImages)
	if err != nil {
		return "", err
	}
	info, err := p.resolve(in, r)
	if errors.Is(err, ErrImageNotFound) {
		return "", err // names the image already
	}
	if err != nil {
		return "", fmt.Errorf("image %s: %w", spec.Image, err)
	}
	return info.Ref, nil
}

func matchAny(patterns []string, image string) bool {
	for _, p := range patterns {
		if MatchImage(p, image) {
			return true
		}
	}
	return false
}

// MatchImage reports whether image matches pattern, where * matches any run
// of characters (slashes and colons included) and everything else is literal.
func MatchImage(pattern, image string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == image
	}
	if !strings.HasPrefix(image, parts[0]) {
		return false
	}
	rest := image[len(parts[0]):]
	for _, part := range parts[1 : len(parts)-1] {
		i := strings.Index(rest, part)
		if i < 0 {
			return false
		}
		rest = rest[i+len(part):]
	}
	return strings.HasSuffix(rest, parts[len(parts)-1])
}

// reservedDirs may not be an install's output directory.
var reservedDirs = map[string]bool{
	"/bin": true, "/boot": true, "/dev": true, "/etc": true, "/home": true, "/lib": true, "/lib32": true,
	"/lib64": true, "/libx32": true, "/media": true, "/mnt": true, "/opt": true, "/proc": true, "/root": true,
	"/run": true, "/sbin": true, "/srv": true, "/sys": true, "/tmp": true, "/usr": true, "/var": true,
	executor.RunDir: true, "/.runhost": true,
}

var outputDir = regexp.MustCompile(`^/[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// install decides the install step: the plugin's command and files in the
// run's image, the host's package index and CA bundle, network only when the
// host allows it, and the host's install limits.
func (p *Policy) install(in Input, image string) (*executor.Install, error) {
	c := p.cfg
	spec := in.Spec.Install
	refuse := func(field, format string, args ...any) (*executor.Install, error) {
		return nil, &SpecError{Runtime: in.Runtime, Field: "install." + field, Msg: fmt.Sprintf(format, args...)}
	}
	if !slices.Contains(in.Capabilities, shared.CapPackages) {
		return refuse("command", "the runtime does not declare the %q capability", shared.CapPackages)
	}
	if len(spec.Command) == 0 {
		return refuse("command", "empty")
	}
	if !outputDir.MatchString(spec.OutputDir) || reservedDirs[spec.OutputDir] {
		return refuse("output_dir", "%q: want a new top-level directory such as /deps", spec.OutputDir)
	}
	files, err := p.files(spec.Files)
	if err != nil {
		return refuse("files", "%v", err)
	}
	envMap := map[string]string{}
	for k, v := range spec.Env {
		envMap[k] = v
	}
	// Few, short retries: a failure that retrying does not cure (a
	// certificate the install does not trust, a host the proxy refuses)
	// fails in seconds, not after pip's and npm's minute of retries.
	for k, v := range installRetries {
		if _, set := envMap[k]; !set {
			envMap[k] = v
		}
	}
	// The host's package sources win over anything the plugin set.
	if c.PipIndexURL != "" {
		envMap["PIP_INDEX_URL"] = c.PipIndexURL
		if u, err := url.Parse(c.PipIndexURL); err == nil && u.Scheme == "http" {
			envMap["PIP_TRUSTED_HOST"] = u.Hostname()
		}
	}
	if c.NpmRegistry != "" {
		envMap["NPM_CONFIG_REGISTRY"] = c.NpmRegistry
	}
	if len(c.CABundle) > 0 {
		const ca = executor.RunDir + "/" + caFile
		files = append(files, executor.File{Path: caFile, Content: c.CABundle})
		for _, k := range []string{"PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "NPM_CONFIG_CAFILE"} {
			envMap[k] = ca
		}
	}
	env, err := environment(envMap)
	if err != nil {
		return refuse("env", "%v", err)
	}
	egress := spec.Network && c.AllowInstallNetwork
	if g, ok := p.grantOf(in.Runtime); ok && g.InstallNetwork != nil {
		if spec.Network && !*g.InstallNetwork {
			return refuse("network", "the plugin asks for network during installs; RUNHOST_POLICY grants it none (install_network: false)")
		}
		egress = spec.Network && *g.InstallNetwork
	}
	limits := executor.Limits{
		Timeout:       c.InstallTimeout,
		MemoryBytes:   c.InstallMemory,
		NanoCPUs:      int64(c.MaxCPUs * 1e9),
		Pids:          max(c.Pids, 512),
		NoFile:        max(c.NoFile, 4096),
		FileSizeBytes: c.FileSizeBytes,
		TmpBytes:      max(c.TmpBytes, 512<<20),
		RunDirBytes:   c.RunDirBytes,
		OutputBytes:   c.OutputBytes,
	}
	inst := &executor.Install{
		Image:      image,
		Command:    spec.Command,
		Env:        env,
		Files:      files,
		OutputDir:  spec.OutputDir,
		DiskBytes:  c.InstallDisk,
		Egress:     egress,
		Limits:     limits,
		OCIRuntime: p.ociRuntime(in.Runtime),
	}
	inst.Key = contentKey("install", in.Owner, in.Runtime, in.Version.Version, image, strings.Join(spec.Command, "\x00"),
		strings.Join(env, "\x00"), spec.OutputDir, fmt.Sprint(egress), filesDigest(files))
	return inst, nil
}

// installRetries are the package managers' retry settings of an install
// step, unless the plugin set its own: one retry, soon.
var installRetries = map[string]string{
	"PIP_RETRIES":                       "1",
	"PIP_TIMEOUT":                       "30",
	"NPM_CONFIG_FETCH_RETRIES":          "1",
	"NPM_CONFIG_FETCH_RETRY_MINTIMEOUT": "1000",
	"NPM_CONFIG_FETCH_RETRY_MAXTIMEOUT": "3000",
}

// caFile is where an install step finds the host's CA bundle.
const caFile = ".runhost-ca.pem"

// Build decides how a spec's Dockerfile is built: the host's build limits,
// no network unless the host allows it, a context within its size cap, and
// a Dockerfile that passes the rules (internal/dockerfile) and names only
// images the request may use, each pinned to what the engine has under
// that name (in.Resolve). A run that would have nothing to run is refused
// here, before building, where the base images' config says so.
func (p *Policy) Build(in Input) (executor.Build, error) {
	c := p.cfg
	b := in.Spec.Build
	refuse := func(field, format string, args ...any) (executor.Build, error) {
		return executor.Build{}, &SpecError{Runtime: in.Runtime, Field: "build." + field, Msg: fmt.Sprintf(format, args...)}
	}
	if b == nil {
		return refuse("dockerfile", "no build in the spec")
	}
	if !slices.Contains(in.Capabilities, shared.CapDockerfile) {
		return refuse("dockerfile", "the runtime does not declare the %q capability", shared.CapDockerfile)
	}
	if strings.TrimSpace(b.Dockerfile) == "" {
		return refuse("dockerfile", "empty")
	}
	var size int64 = int64(len(b.Dockerfile))
	for _, f := range b.Context {
		if err := pathguard.Check(f.Path); err != nil {
			return refuse("context", "%v", err)
		}
		if first, _, _ := strings.Cut(f.Path, "/"); first == executor.BuildDockerfile {
			return executor.Build{}, shared.Invalidf("the build context may not have a file called %s: the builder reads the Dockerfile under that name", executor.BuildDockerfile)
		}
		size += int64(len(f.Content))
	}
	if size > c.MaxContextBytes {
		return executor.Build{}, fmt.Errorf("%w: %d bytes with the Dockerfile, more than RUNHOST_MAX_CONTEXT_BYTES (%d)", ErrContextTooLarge, size, c.MaxContextBytes)
	}
	files := make([]executor.File, 0, len(b.Context))
	for _, f := range b.Context {
		files = append(files, executor.File{Path: f.Path, Content: f.Content})
	}
	args := make([]string, 0, len(b.BuildArgs))
	for k, v := range b.BuildArgs {
		if !ValidEnvName(k) {
			return refuse("build_args", "name %q is not a valid variable name", k)
		}
		args = append(args, k+"="+v)
	}
	sort.Strings(args)
	df, err := dockerfile.Parse([]byte(b.Dockerfile), b.BuildArgs)
	if err != nil {
		return executor.Build{}, err
	}
	bases, configs, err := p.bases(in, df)
	if err != nil {
		return executor.Build{}, err
	}
	if len(in.Spec.Command) == 0 && len(b.Cmd) == 0 {
		has, known := df.HasCommand(func(image string) ([]string, []string, bool) {
			info := configs[image]
			return info.Entrypoint, info.Cmd, info.Inspected
		})
		if known && !has {
			return executor.Build{}, &NoCommandError{"the image this Dockerfile builds has no ENTRYPOINT or CMD (nor has its base image) and the request gives no command: add CMD to the Dockerfile, or send command"}
		}
	}
	pins := make([]string, 0, len(bases))
	for _, base := range bases {
		pins = append(pins, base.Name+"="+base.Ref)
	}
	// The caller's grant; a plugin's grant can only take it away.
	network := in.BuildEgress
	if g, ok := p.grantOf(in.Runtime); ok && g.BuildNetwork != nil && !*g.BuildNetwork {
		network = false
	}
	// A granted build's RUN steps trust what installs trust.
	var ca []byte
	if network {
		ca = c.CABundle
	}
	m := p.maxima(in.Runtime)
	return executor.Build{
		Key:         contentKey("build", in.Owner, b.Dockerfile, strings.Join(args, "\x00"), filesDigest(files), fmt.Sprint(network), strings.Join(pins, "\x00")),
		Dockerfile:  []byte(b.Dockerfile),
		Context:     files,
		BuildArgs:   b.BuildArgs,
		Network:     network,
		CA:          ca,
		Timeout:     c.BuildTimeout,
		MemoryBytes: min(c.BuildMemory, m.memory),
		NanoCPUs:    int64(c.MaxCPUs * 1e9),
		Pids:        c.BuildPids,
		DiskBytes:   c.BuildDisk,
		ImageBytes:  c.BuildImageBytes,
		LogBytes:    c.BuildLogBytes,
		Labels:      map[string]string{"runhost.runtime": in.Runtime},
		Bases:       bases,
	}, nil
}

// bases checks every image the Dockerfile names and pins it: the images
// for the executor, and their configs by the Dockerfile's names. An
// allowed image the engine does not have is a *BaseMissingError.
func (p *Policy) bases(in Input, df *dockerfile.Summary) ([]executor.BaseImage, map[string]executor.ImageInfo, error) {
	out := make([]executor.BaseImage, 0, len(df.Images))
	configs := make(map[string]executor.ImageInfo, len(df.Images))
	for _, img := range df.Images {
		at := fmt.Sprintf("dockerfile line %d: %s %s", img.Line, img.Use, img.Name)
		r, err := p.CheckImage(in.Runtime, img.Name, in.DeclaredImages)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", at, err)
		}
		info, err := p.resolve(in, r)
		if errors.Is(err, executor.ErrImageMissing) {
			return nil, nil, &BaseMissingError{Line: img.Line, Use: img.Use, Image: img.Name, Allowed: p.allowedImages(in.Runtime, in.DeclaredImages), Err: err}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", at, err)
		}
		if len(info.OnBuild) > 0 {
			return nil, nil, fmt.Errorf("%s: %w", at, &ImageError{Image: img.Name, Reason: "it has ONBUILD triggers, which would run in this build unchecked"})
		}
		out = append(out, executor.BaseImage{Name: img.Name, Ref: info.Ref})
		configs[img.Name] = info
	}
	return out, configs, nil
}

// contentKey hashes its parts into a cache key.
func contentKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// filesDigest hashes files independent of their order.
func filesDigest(files []executor.File) string {
	sums := make([]string, 0, len(files))
	for _, f := range files {
		sum := sha256.Sum256(f.Content)
		sums = append(sums, f.Path+"\x00"+hex.EncodeToString(sum[:]))
	}
	sort.Strings(sums)
	return strings.Join(sums, "\x00")
}

// limits resolves each limit: the request's, else the plugin's, else the
// host's default. A plugin asking above a maximum is refused, not clamped.
func (p *Policy) limits(in Input) (executor.Limits, error) {
	c := p.cfg
	spec := in.Spec.Limits
	m := p.maxima(in.Runtime)
	refuse := func(field, format string, args ...any) (executor.Limits, error) {
		return executor.Limits{}, &SpecError{Runtime: in.Runtime, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case spec.Timeout < 0 || spec.Timeout > m.timeout:
		return refuse("limits.timeout", "%s is outside 0..%s (%s)", spec.Timeout, m.timeout, m.source)
	case spec.MemoryBytes < 0 || spec.MemoryBytes > m.memory || spec.MemoryBytes > 0 && spec.MemoryBytes < c.MinMemory:
		return refuse("limits.memory_bytes", "%d is outside %d..%d (%s)", spec.MemoryBytes, c.MinMemory, m.memory, m.source)
	case spec.CPUs < 0 || spec.CPUs > m.cpus:
		return refuse("limits.cpus", "%g is outside 0..%g (%s)", spec.CPUs, m.cpus, m.source)
	}
	// The host's defaults, within the runtime's maxima.
	return executor.Limits{
		Timeout:       first(in.Requested.Timeout, spec.Timeout, min(c.DefaultTimeout, m.timeout)),
		MemoryBytes:   first(in.Requested.MemoryBytes, spec.MemoryBytes, min(c.DefaultMemory, m.memory)),
		NanoCPUs:      int64(first(in.Requested.CPUs, spec.CPUs, min(c.DefaultCPUs, m.cpus)) * 1e9),
		Pids:          c.Pids,
		NoFile:        c.NoFile,
		FileSizeBytes: c.FileSizeBytes,
		TmpBytes:      c.TmpBytes,
		RunDirBytes:   c.RunDirBytes,
		OutputBytes:   c.OutputBytes,

		StopAtOutputLimit: true,
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

// ValidEnvName reports whether name may name an environment variable (or a
// build argument): letters, digits and _, not starting with a digit. A
// request is held to it at the edge, a spec here.
func ValidEnvName(name string) bool { return envName.MatchString(name) }

// environment returns env as sorted KEY=VALUE entries, with HOME set to /tmp
// (the only writable place besides the run directory) unless env sets it.
func environment(env map[string]string) ([]string, error) {
	if len(env) > maxEnvEntries {
		return nil, fmt.Errorf("%d entries, more than %d", len(env), maxEnvEntries)
	}
	out := make([]string, 0, len(env)+1)
	size := 0
	for k, v := range env {
		if !ValidEnvName(k) {
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
