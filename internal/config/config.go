// Package config reads every host setting from the environment into one
// Config, grouped by what it configures, with defaults and validation. Each
// setting is declared once, in settings(): its name, default, documentation
// (the README's configuration table, which a test keeps in step) and the
// parser that fills its typed field. Nothing downstream parses a setting
// again.
package config

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/runhost/runhost/internal/egress"
	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/imageref"
)

// Config is the host's whole configuration, grouped by what it configures.
// Every value is parsed once, at load, into the type its users need:
// durations, byte counts, parsed pool targets, maps, URLs, address ranges.
type Config struct {
	Server     Server
	Plugins    Plugins
	Limits     Limits
	Policy     Policy
	Installs   Installs
	Egress     Egress
	Builds     Builds
	Sessions   Sessions
	Pool       Pool
	Workspace  Workspace
	Auth       Auth
	Admission  Admission
	Engine     Engine
	Kubernetes Kubernetes
}

// Server is the HTTP side: where it listens, what it logs, how large and
// how slow requests and answers may be.
type Server struct {
	Addr      string // listen address
	LogLevel  string
	LogFormat string // "json" or "text"

	MaxBodyBytes    int64 // largest request body
	ShutdownTimeout time.Duration

	// Slow clients: answers with write deadlines, bounded stream and stdin
	// buffers.
	WriteTimeout         time.Duration
	MaxStreamBufferBytes int64
	MaxStdinBytes        int64
	MaxWSMessageBytes    int64
}

// Plugins are the runtime plugins: where they are found, which binaries
// are approved, how long they may take.
type Plugins struct {
	Dir             string // where runtime plugins are discovered
	Checksums       string // sha256sum file: the approved plugin binaries
	Watch           bool   // reload plugins when their directory changes
	StartTimeout    time.Duration
	CallTimeout     time.Duration
	SelfTestOnStart bool
}

// Limits are what a run gets by default and the most it may ask for.
type Limits struct {
	DefaultTimeout     time.Duration
	MaxTimeout         time.Duration
	DefaultMemoryBytes int64
	MaxMemoryBytes     int64
	DefaultCPUs        float64
	MaxCPUs            float64

	Pids          int64 // processes and threads per run
	NoFile        int64 // open files per process
	FileSizeBytes int64 // largest file a run may write
	TmpBytes      int64 // size of the /tmp tmpfs
	RunDirBytes   int64 // size of the run directory tmpfs (where code files go)
	OutputBytes   int64 // cap on stdout and on stderr, each
}

// Policy is what the policy decides from besides the limits: who runs,
// in which sandbox, from which images.
type Policy struct {
	File string // RUNHOST_POLICY: grants per plugin

	// Images a request may name (custom-image runtimes); empty means the
	// runtimes' own images.
	AllowedImages []string
	// ImageAliases map image names requests use to local images
	// (RUNHOST_IMAGE_ALIASES).
	ImageAliases map[string]string

	RunUser executor.User // never root (executor.ParseUser)

	// The OCI runtime of run containers (e.g. gVisor's runsc), for all
	// runtimes (OCIRuntime) or per runtime name (OCIRuntimes).
	OCIRuntime  string
	OCIRuntimes map[string]string
}

// Installs are dependency installs (pip, npm): their own container, limits
// and network.
type Installs struct {
	AllowNetwork bool
	PipIndexURL  *url.URL // nil: pip's default
	NpmRegistry  *url.URL // nil: npm's default
	CABundle     []byte   // PEM given to install steps and builds; nil for none
	CABundleFile string   // where CABundle was read from: RUNHOST_CA_BUNDLE, or the machine's bundle
	Timeout      time.Duration
	MemoryBytes  int64
	DiskBytes    int64 // the install's output directory, a tmpfs
	CacheEntries int
	CacheBytes   int64
}

// Egress is the proxy install steps (and builds with a network) reach the
// network through.
type Egress struct {
	Network string         // Docker network the proxy joins
	Allow   []string       // hosts that may be reached
	CIDRs   []netip.Prefix // private ranges that may be reached
	Path    string         // the runhost-egress binary
	// A host without keys: the hosts its runs may reach (a key's egress=),
	// and whether every run gets them without asking (egress-default).
	RunAllow   []string
	RunDefault bool
}

// CIDRStrings are the allowed ranges as the proxy's command line takes them.
func (e Egress) CIDRStrings() []string {
	out := make([]string, len(e.CIDRs))
	for i, p := range e.CIDRs {
		out[i] = p.String()
	}
	return out
}

// Builds are Dockerfile builds.
type Builds struct {
	Timeout         time.Duration
	MemoryBytes     int64
	Network         bool
	MaxContextBytes int64
	LogBytes        int64
	CacheEntries    int
	CacheBytes      int64
	BuilderImage    string // the rootless BuildKit image builds run in
	Pids            int64
	DiskBytes       int64
	ImageBytes      int64
	BasesCacheBytes int64
}

// Sessions are long-lived containers for consecutive runs.
type Sessions struct {
	IdleTTL     time.Duration
	MaxLifetime time.Duration
	PerKey      int
	Max         int
	// InterruptGrace: an interrupted cell of an interpreter session may
	// take this long to stop before its interpreter is restarted.
	InterruptGrace time.Duration
	// ResultBytes bounds the rich results of one cell.
	ResultBytes int64
}

// Pool is the warm pool: started containers waiting for a run.
type Pool struct {
	Targets     []PoolTarget // RUNHOST_POOL; none when "off"
	MemoryBytes int64
}

// PoolTarget is one entry of RUNHOST_POOL: runtime[:version]=count.
type PoolTarget struct {
	Runtime string
	Version string // empty: the runtime's default version
	Count   int
}

// Workspace is the shared workspace: where this host sees it, and where the
// engine does.
type Workspace struct {
	Root       string
	DaemonDir  string // DIND_WORKSPACE_PATH
	QuotaBytes int64
	QuotaMode  string // auto, fs or off: how the quota holds while runs write
	Exec       bool   // runs may execute files of the workspace
	FileBytes  int64
}

// Auth is who may call: API keys, and what browsers may do (internal/api's
// browser guard).
type Auth struct {
	KeysFile             string
	AllowUnauthenticated bool
	AllowedOrigins       []string // normalized origins other than the host's own that may call it
	AllowedHosts         []string // Host header names besides loopback and the listen address; "*" = no check
	PistonAllowTextPlain bool     // /api/v2/execute takes text/plain from clients that are no browser
}

// Admission is how much callers may run at once.
type Admission struct {
	MaxRuns     int
	QueueLength int
	QueueWait   time.Duration
	KeyRate     float64
	KeyBurst    int
	KeyMaxRuns  int
}

// Engine is which engine runs the jobs, and how the host reaches it.
type Engine struct {
	Executor      string // docker or kubernetes
	InitPath      string // the in-container init binary (runhost-init)
	SweepInterval time.Duration

	// Docker-in-Docker must be reached over TLS.
	DindEnabled         bool
	AllowInsecureDocker bool
	DockerHost          string // DOCKER_HOST as given (the Docker client reads it itself)
	DockerTLSVerify     string // DOCKER_TLS_VERIFY as given
}

// Kubernetes configures the Kubernetes executor.
type Kubernetes struct {
	Kubeconfig   string
	Namespace    string
	InitImage    string
	RuntimeClass string
	// RuntimeClasses maps an OCI runtime the policy may choose
	// (Policy.OCIRuntime, Policy.OCIRuntimes) to the RuntimeClass its pods
	// get; with this executor, every such OCI runtime must have one.
	RuntimeClasses map[string]string
	PullPolicy     string
	WorkspaceClaim string
	CacheClaim     string
	CacheRoot      string
	EgressImage    string
	BuildRepo      string
	BuildInsecure  bool
	BuildNamespace string
	BuilderImage   string
	BuilderSeccomp string
	BuildkitConfig []byte // buildkitd.toml; nil: the builder image's
}

// Setting documents one environment variable.
type Setting struct {
	Name    string
	Default string // the value used when the variable is unset or empty
	Doc     string
	set     func(c *Config, v string) error
}

// computed documents defaults that depend on the machine; their Default is
// empty and fillComputedDefaults sets them.
var computed = map[string]string{
	"RUNHOST_EGRESS_ALLOW": "the hosts of the package indexes (PyPI's and npm's when unset)",
	"RUNHOST_EGRESS_PATH":  "`runhost-egress` next to the host binary",
	"RUNHOST_MAX_RUNS":     "4 per core, at most ¾ of memory / RUNHOST_DEFAULT_MEMORY_MB",
	"DIND_WORKSPACE_PATH":  "`/workspaces` with `DIND_ENABLED`, else `RUNHOST_WORKSPACE_ROOT`",
	"RUNHOST_MAX_CPUS":     "number of cores",
	"RUNHOST_CA_BUNDLE":    "the machine's: the first of " + "`" + strings.Join(MachineCABundles, "`, `") + "`" + " that exists",
	"RUNHOST_INIT_PATH":    "`runhost-init` next to the host binary",
	"DOCKER_HOST":          "the local engine's unix socket",
}

// ShownDefault is the default as the README shows it.
func (s Setting) ShownDefault() string {
	if d, ok := computed[s.Name]; ok {
		return d
	}
	return s.Default
}

// Settings lists every environment variable the host reads.
func Settings() []Setting { return settings() }

func settings() []Setting {
	return []Setting{
		{"RUNHOST_ADDR", "127.0.0.1:8080", "HTTP listen address", str(func(c *Config) *string { return &c.Server.Addr })},
		{"RUNHOST_PLUGIN_DIR", "./bin/plugins", "directory scanned for `runhost-plugin-*` executables", str(func(c *Config) *string { return &c.Plugins.Dir })},
		{"RUNHOST_INIT_PATH", "", "the static init binary placed in every run container", str(func(c *Config) *string { return &c.Engine.InitPath })},
		{"RUNHOST_LOG_LEVEL", "info", "trace, debug, info, warn or error", oneOf(func(c *Config) *string { return &c.Server.LogLevel }, "trace", "debug", "info", "warn", "error")},
		{"RUNHOST_LOG_FORMAT", "json", "json or text", oneOf(func(c *Config) *string { return &c.Server.LogFormat }, "json", "text")},
		{"RUNHOST_DEFAULT_TIMEOUT_MS", "10000", "wall-clock timeout of a run that asks for none", millis(func(c *Config) *time.Duration { return &c.Limits.DefaultTimeout })},
		{"RUNHOST_MAX_TIMEOUT_MS", "60000", "largest `timeout_ms` a request may ask for", millis(func(c *Config) *time.Duration { return &c.Limits.MaxTimeout })},
		{"RUNHOST_DEFAULT_MEMORY_MB", "256", "memory limit of a run that asks for none (swap is not allowed)", mebibytes(func(c *Config) *int64 { return &c.Limits.DefaultMemoryBytes })},
		{"RUNHOST_MAX_MEMORY_MB", "2048", "largest `memory_mb` a request may ask for", mebibytes(func(c *Config) *int64 { return &c.Limits.MaxMemoryBytes })},
		{"RUNHOST_DEFAULT_CPUS", "1", "CPU limit of a run that asks for none", float(func(c *Config) *float64 { return &c.Limits.DefaultCPUs })},
		{"RUNHOST_MAX_CPUS", "", "largest `cpus` a request may ask for", float(func(c *Config) *float64 { return &c.Limits.MaxCPUs })},
		{"RUNHOST_PIDS_LIMIT", "128", "processes and threads per run", integer(func(c *Config) *int64 { return &c.Limits.Pids })},
		{"RUNHOST_NOFILE_LIMIT", "1024", "open files per process in a run", integer(func(c *Config) *int64 { return &c.Limits.NoFile })},
		{"RUNHOST_FILE_SIZE_MB", "64", "largest file a run may write", mebibytes(func(c *Config) *int64 { return &c.Limits.FileSizeBytes })},
		{"RUNHOST_TMP_MB", "64", "size of the `/tmp` tmpfs in a run (counts against its memory)", mebibytes(func(c *Config) *int64 { return &c.Limits.TmpBytes })},
		{"RUNHOST_RUN_DIR_MB", "64", "size of the run directory tmpfs holding the code files", mebibytes(func(c *Config) *int64 { return &c.Limits.RunDirBytes })},
		{"RUNHOST_OUTPUT_LIMIT_BYTES", "1048576", "cap on stdout and on stderr of a run, each; the rest is discarded and flagged", integer(func(c *Config) *int64 { return &c.Limits.OutputBytes })},
		{"RUNHOST_MAX_BODY_BYTES", "10485760", "largest request body (413 above it)", integer(func(c *Config) *int64 { return &c.Server.MaxBodyBytes })},
		{"RUNHOST_RUN_USER", "1000:1000", "numeric uid:gid every run uses (never root)", runUser},
		{"RUNHOST_PLUGIN_CHECKSUMS", "", "`sha256sum` output listing the approved plugin binaries; a plugin not listed or not matching is refused", str(func(c *Config) *string { return &c.Plugins.Checksums })},
		{"RUNHOST_PLUGIN_WATCH", "true", "reload plugins when the plugin directory changes (also on SIGHUP and `POST /admin/plugins/reload`)", boolean(func(c *Config) *bool { return &c.Plugins.Watch })},
		{"RUNHOST_PLUGIN_START_TIMEOUT_MS", "10000", "how long a plugin may take to start and describe itself", millis(func(c *Config) *time.Duration { return &c.Plugins.StartTimeout })},
		{"RUNHOST_PLUGIN_CALL_TIMEOUT_MS", "5000", "deadline of one call into a plugin", millis(func(c *Config) *time.Duration { return &c.Plugins.CallTimeout })},
		{"RUNHOST_SHUTDOWN_TIMEOUT_MS", "30000", "on SIGTERM, how long in-flight runs may finish before they are killed", millis(func(c *Config) *time.Duration { return &c.Server.ShutdownTimeout })},
		{"RUNHOST_SWEEP_INTERVAL_MS", "60000", "how often containers left past their deadline are removed", millis(func(c *Config) *time.Duration { return &c.Engine.SweepInterval })},
		{"RUNHOST_ALLOW_INSTALL_NETWORK", "true", "whether dependency installs (pip, npm) get network access; runs only by a grant (a key's `egress=`, RUNHOST_RUN_EGRESS_ALLOW)", boolean(func(c *Config) *bool { return &c.Installs.AllowNetwork })},
		{"RUNHOST_INSTALL_NETWORK", "bridge", "the Docker network the egress proxy joins; install steps themselves have no network and reach only the proxy", str(func(c *Config) *string { return &c.Egress.Network })},
		{"RUNHOST_EGRESS_ALLOW", "", "comma-separated hosts install steps may reach through the egress proxy (`host`, `*.domain`, `host:port`)", list(func(c *Config) *[]string { return &c.Egress.Allow })},
		{"RUNHOST_EGRESS_ALLOW_CIDRS", "", "comma-separated private address ranges the proxy may reach (private, loopback and link-local addresses are refused otherwise)", cidrs(func(c *Config) *[]netip.Prefix { return &c.Egress.CIDRs })},
		{"RUNHOST_EGRESS_PATH", "", "the static egress proxy binary", str(func(c *Config) *string { return &c.Egress.Path })},
		{"RUNHOST_RUN_EGRESS_ALLOW", "", "host without keys: comma-separated hosts its runs may reach through the egress proxy when they ask (`network`), as a key's `egress=` option (`host`, `*.domain`, `host:port`; names only, no IP addresses, private names or wildcards over a public suffix); empty: runs have no network", listOf(func(c *Config) *[]string { return &c.Egress.RunAllow }, egress.CheckPattern)},
		{"RUNHOST_RUN_EGRESS_DEFAULT", "false", "host without keys: every run gets RUNHOST_RUN_EGRESS_ALLOW without asking (a key's `egress-default`), so clients with no `network` parameter reach those hosts", boolean(func(c *Config) *bool { return &c.Egress.RunDefault })},
		{"RUNHOST_PIP_INDEX_URL", "", "package index for pip installs (pip's default, PyPI, when empty)", httpURL(func(c *Config) **url.URL { return &c.Installs.PipIndexURL })},
		{"RUNHOST_NPM_REGISTRY", "", "registry for npm installs (npm's default when empty)", httpURL(func(c *Config) **url.URL { return &c.Installs.NpmRegistry })},
		{"RUNHOST_CA_BUNDLE", "", "PEM bundle install steps, granted runs and the RUN steps of granted builds trust (so a TLS-intercepting proxy the machine trusts works for them too; never in a built image); `none`: only the images' own CAs", caBundle},
		{"RUNHOST_INSTALL_TIMEOUT_MS", "300000", "wall-clock timeout of one dependency install", millis(func(c *Config) *time.Duration { return &c.Installs.Timeout })},
		{"RUNHOST_INSTALL_MEMORY_MB", "1024", "memory limit of a dependency install", mebibytes(func(c *Config) *int64 { return &c.Installs.MemoryBytes })},
		{"RUNHOST_INSTALL_DISK_MB", "512", "size of the filesystem a dependency install writes its output to (a tmpfs counted against RUNHOST_INSTALL_MEMORY_MB); an install that needs more fails and nothing is cached", mebibytes(func(c *Config) *int64 { return &c.Installs.DiskBytes })},
		{"RUNHOST_DEPS_CACHE_ENTRIES", "100", "installed dependency sets kept (least recently used go first)", integer(func(c *Config) *int { return &c.Installs.CacheEntries })},
		{"RUNHOST_DEPS_CACHE_MB", "4096", "bytes of installed dependencies kept", mebibytes(func(c *Config) *int64 { return &c.Installs.CacheBytes })},
		{"RUNHOST_POLICY", "", "host policy file (JSON, strict) granting each plugin its images, networks and maximum limits; see docs/writing-plugins.md", str(func(c *Config) *string { return &c.Policy.File })},
		{"RUNHOST_ALLOWED_IMAGES", "", "comma-separated image patterns (`*` matches anything) a request may name with `image` or in a Dockerfile (FROM, COPY --from, RUN --mount from=); empty means the runtimes' own images and the seed's (`python:3.11-slim`, `node:20-alpine`, `ubuntu:22.04`; `make images` pulls them where a registry answers); image IDs and runhost's own images (runhost/build, runhost/egress, ...) are refused whatever it says", list(func(c *Config) *[]string { return &c.Policy.AllowedImages })},
		{"RUNHOST_BUILD_TIMEOUT_MS", "300000", "wall-clock timeout of one Dockerfile build", millis(func(c *Config) *time.Duration { return &c.Builds.Timeout })},
		{"RUNHOST_BUILD_MEMORY_MB", "2048", "memory limit of a build: BuildKit and every RUN step together (RUNHOST_BUILD_DISK_MB comes on top)", mebibytes(func(c *Config) *int64 { return &c.Builds.MemoryBytes })},
		{"RUNHOST_BUILD_NETWORK", "false", "host without keys: whether RUN steps of a Dockerfile build reach the network, only through the egress proxy (RUNHOST_EGRESS_ALLOW); without it they have no network at all. With keys, the keys file grants it per key (`build-egress`) and this must stay false", boolean(func(c *Config) *bool { return &c.Builds.Network })},
		{"RUNHOST_BUILD_PIDS_LIMIT", "512", "processes and threads of one build, BuildKit's own included", integer(func(c *Config) *int64 { return &c.Builds.Pids })},
		{"RUNHOST_BUILD_DISK_MB", "2048", "BuildKit's working storage in a build (base layers, snapshots, the exported image): a tmpfs, so it counts as memory", mebibytes(func(c *Config) *int64 { return &c.Builds.DiskBytes })},
		{"RUNHOST_BUILD_IMAGE_MB", "2048", "largest image a build may hand the engine: the layers it adds (the bases' the engine has are not sent again; with the containerd image store they are, and count); counted as it streams, and the engine loads nothing of a larger one", mebibytes(func(c *Config) *int64 { return &c.Builds.ImageBytes })},
		{"RUNHOST_BUILD_BASES_CACHE_MB", "4096", "bytes of base images kept exported for builds (a volume per image ID; least recently used go first)", mebibytes(func(c *Config) *int64 { return &c.Builds.BasesCacheBytes })},
		{"RUNHOST_BUILDER_IMAGE", "runhost/builder:latest", "the image Dockerfile builds run in: rootless BuildKit, made by `make images` (`scripts/builder-image.sh`)", str(func(c *Config) *string { return &c.Builds.BuilderImage })},
		{"RUNHOST_MAX_CONTEXT_BYTES", "10485760", "largest build context (413 above it)", integer(func(c *Config) *int64 { return &c.Builds.MaxContextBytes })},
		{"RUNHOST_BUILD_LOG_BYTES", "65536", "cap on the build log returned with a run", integer(func(c *Config) *int64 { return &c.Builds.LogBytes })},
		{"RUNHOST_BUILD_CACHE_ENTRIES", "50", "built images kept (least recently used go first)", integer(func(c *Config) *int { return &c.Builds.CacheEntries })},
		{"RUNHOST_BUILD_CACHE_MB", "10240", "bytes of built images kept", mebibytes(func(c *Config) *int64 { return &c.Builds.CacheBytes })},
		{"RUNHOST_OCI_RUNTIME", "", "OCI runtime of every run and install container (e.g. `runsc` for gVisor, registered with the engine; on Kubernetes, the RuntimeClass RUNHOST_K8S_RUNTIME_CLASSES maps it to); empty for the engine's default", str(func(c *Config) *string { return &c.Policy.OCIRuntime })},
		{"RUNHOST_OCI_RUNTIMES", "", "per-runtime overrides of RUNHOST_OCI_RUNTIME, comma-separated `name=oci-runtime` (e.g. `python=runsc,shell=runc`)", pairs(func(c *Config) *map[string]string { return &c.Policy.OCIRuntimes }, "name=oci-runtime")},
		{"RUNHOST_SESSION_IDLE_TTL_S", "600", "a session unused this long is removed (a session may ask for less or more, up to the lifetime)", seconds(func(c *Config) *time.Duration { return &c.Sessions.IdleTTL })},
		{"RUNHOST_SESSION_MAX_LIFETIME_S", "3600", "no session lives longer", seconds(func(c *Config) *time.Duration { return &c.Sessions.MaxLifetime })},
		{"RUNHOST_SESSIONS_PER_KEY", "4", "sessions one API key may hold at once", integer(func(c *Config) *int { return &c.Sessions.PerKey })},
		{"RUNHOST_MAX_SESSIONS", "32", "sessions the host holds at once", integer(func(c *Config) *int { return &c.Sessions.Max })},
		{"RUNHOST_INTERPRETER_GRACE_MS", "3000", "a cell of an interpreter session interrupted at its timeout (or when its client hangs up) may take this long to stop before its interpreter is restarted, its state lost", millis(func(c *Config) *time.Duration { return &c.Sessions.InterruptGrace })},
		{"RUNHOST_INTERPRETER_RESULT_MB", "32", "rich results (images, HTML, values) one cell of an interpreter session may return; a result past it is replaced by a note", mebibytes(func(c *Config) *int64 { return &c.Sessions.ResultBytes })},
		{"RUNHOST_POOL", "python=2,shell=1,node=1", "warm pool: containers kept started for default requests, `runtime[:version]=count`, comma-separated; `off` turns the pool off", poolTargets},
		{"RUNHOST_POOL_MEMORY_MB", "1536", "the most memory (by limits) the warm pool holds", mebibytes(func(c *Config) *int64 { return &c.Pool.MemoryBytes })},
		{"RUNHOST_SELFTEST_ON_START", "true", "run every version's self-test when the host starts (results in `GET /runtimes`)", boolean(func(c *Config) *bool { return &c.Plugins.SelfTestOnStart })},
		{"RUNHOST_API_KEYS_FILE", "", "file of API key hashes, one line per key: `name sha256-hex [option ...]` with options `operator` (may call `/admin/*`, `/metrics`, `/plugins`) `workspaces=NAME,...` or `workspaces=*` (shared workspace names the key reaches), `egress=HOST,...` and `egress-default` (hosts its runs may reach through the egress proxy) and `build-egress` (its builds' RUN steps reach the package indexes); make one with `bin/host api-key NAME [option ...]`; callers send `Authorization: Bearer <key>`", str(func(c *Config) *string { return &c.Auth.KeysFile })},
		{"RUNHOST_ALLOW_UNAUTHENTICATED", "false", "serve without API keys on a non-loopback address (otherwise the host refuses to start); such a host has one tenant, who operates it and uses the shared workspace", boolean(func(c *Config) *bool { return &c.Auth.AllowUnauthenticated })},
		{"RUNHOST_MAX_RUNS", "", "runs in flight at once; more wait in the queue", integer(func(c *Config) *int { return &c.Admission.MaxRuns })},
		{"RUNHOST_QUEUE_LENGTH", "100", "runs that may wait for a slot; beyond it a 429 with Retry-After", integer(func(c *Config) *int { return &c.Admission.QueueLength })},
		{"RUNHOST_QUEUE_WAIT_MS", "30000", "longest a run waits for a slot before a 429", millis(func(c *Config) *time.Duration { return &c.Admission.QueueWait })},
		{"RUNHOST_KEY_RATE", "", "runs per second each API key may start (token bucket); empty for no limit", float(func(c *Config) *float64 { return &c.Admission.KeyRate })},
		{"RUNHOST_KEY_BURST", "", "bucket size of RUNHOST_KEY_RATE (default: the rate, at least 1)", integer(func(c *Config) *int { return &c.Admission.KeyBurst })},
		{"RUNHOST_KEY_MAX_RUNS", "", "runs in flight per API key; empty for no per-key cap", integer(func(c *Config) *int { return &c.Admission.KeyMaxRuns })},
		{"RUNHOST_ALLOWED_ORIGINS", "", "comma-separated origins (`https://app.example`) besides the host's own whose pages may call the API from a browser (CORS, and the Piston WebSocket); other cross-site requests are refused (403 `cross_site_request`)", origins(func(c *Config) *[]string { return &c.Auth.AllowedOrigins })},
		{"RUNHOST_ALLOWED_HOSTS", "", "comma-separated `Host` header names accepted besides loopback names and the listen address, checked when the host has no keys or listens on loopback (DNS rebinding; 403 `host_not_allowed`); `*` turns the check off", hostNames(func(c *Config) *[]string { return &c.Auth.AllowedHosts })},
		{"RUNHOST_PISTON_ALLOW_TEXT_PLAIN", "false", "accept `POST /api/v2/execute` bodies sent as `text/plain` or without a type (as the npm `piston-client` sends them) from clients that send no `Origin` and no `Sec-Fetch-Site` (no browser does that today); otherwise only `application/json`", boolean(func(c *Config) *bool { return &c.Auth.PistonAllowTextPlain })},
		{"RUNHOST_WRITE_TIMEOUT_MS", "30000", "longest one write of an answer (JSON, a server-sent event, a download chunk, a WebSocket message) may wait for a client that does not read; then the answer is abandoned and a streaming run is cancelled", millis(func(c *Config) *time.Duration { return &c.Server.WriteTimeout })},
		{"RUNHOST_MAX_STREAM_BUFFER_BYTES", "1048576", "output of one streaming run (server-sent events, the Piston WebSocket) held for a client that reads slower than the program writes; the run waits while it is full", integer(func(c *Config) *int64 { return &c.Server.MaxStreamBufferBytes })},
		{"RUNHOST_MAX_STDIN_BYTES", "1048576", "stdin bytes one `/api/v2/connect` WebSocket may have waiting for the program; more closes it with 4002", integer(func(c *Config) *int64 { return &c.Server.MaxStdinBytes })},
		{"RUNHOST_MAX_WS_MESSAGE_BYTES", "65536", "largest message on `/api/v2/connect` after init (init may be as large as RUNHOST_MAX_BODY_BYTES); a larger one closes it with 4002", integer(func(c *Config) *int64 { return &c.Server.MaxWSMessageBytes })},
		{"RUNHOST_EXECUTOR", "docker", "`docker` (the engine at DOCKER_HOST) or `kubernetes` (pods in RUNHOST_K8S_NAMESPACE)", oneOf(func(c *Config) *string { return &c.Engine.Executor }, "docker", "kubernetes")},
		{"RUNHOST_K8S_KUBECONFIG", "", "kubeconfig file of the cluster; empty means the host runs in the cluster and uses its service account", str(func(c *Config) *string { return &c.Kubernetes.Kubeconfig })},
		{"RUNHOST_K8S_NAMESPACE", "runhost-runs", "namespace of the run pods", str(func(c *Config) *string { return &c.Kubernetes.Namespace })},
		{"RUNHOST_K8S_INIT_IMAGE", "", "image holding runhost-init at /init for the pods' init container (default `runhost/init:<hash of the init binary>`)", str(func(c *Config) *string { return &c.Kubernetes.InitImage })},
		{"RUNHOST_K8S_RUNTIME_CLASS", "", "runtimeClassName of run pods for which the policy chose no OCI runtime (e.g. `gvisor`)", str(func(c *Config) *string { return &c.Kubernetes.RuntimeClass })},
		{"RUNHOST_K8S_RUNTIME_CLASSES", "", "comma-separated `oci-runtime=RuntimeClass`: the RuntimeClass of pods for which the policy chose that OCI runtime (RUNHOST_OCI_RUNTIME, RUNHOST_OCI_RUNTIMES), e.g. `runsc=gvisor`; with the kubernetes executor an OCI runtime without a class here is refused at start", pairs(func(c *Config) *map[string]string { return &c.Kubernetes.RuntimeClasses }, "oci-runtime=RuntimeClass")},
		{"RUNHOST_K8S_PULL_POLICY", "IfNotPresent", "imagePullPolicy of run pods (`Never` for images loaded onto the nodes)", oneOf(func(c *Config) *string { return &c.Kubernetes.PullPolicy }, "IfNotPresent", "Never", "Always")},
		{"RUNHOST_K8S_WORKSPACE_CLAIM", "", "PersistentVolumeClaim in the run namespace that holds the shared workspace (the volume the host sees at RUNHOST_WORKSPACE_ROOT); empty: no workspaces on Kubernetes", str(func(c *Config) *string { return &c.Kubernetes.WorkspaceClaim })},
		{"RUNHOST_K8S_CACHE_CLAIM", "", "PersistentVolumeClaim in the run namespace that keeps installed dependencies (the volume the host sees at RUNHOST_K8S_CACHE_ROOT); empty: no dependency installs on Kubernetes", str(func(c *Config) *string { return &c.Kubernetes.CacheClaim })},
		{"RUNHOST_K8S_CACHE_ROOT", "", "where the host sees the volume of RUNHOST_K8S_CACHE_CLAIM", str(func(c *Config) *string { return &c.Kubernetes.CacheRoot })},
		{"RUNHOST_K8S_EGRESS_IMAGE", "", "image holding runhost-egress at /egress for the install steps' proxy pod (default `runhost/egress:<hash of the egress binary>`)", str(func(c *Config) *string { return &c.Kubernetes.EgressImage })},
		{"RUNHOST_K8S_BUILD_REPOSITORY", "", "repository Dockerfile builds push their images to and the nodes pull them from (e.g. `registry.example.com/runhost/builds`); empty: no Dockerfile builds on Kubernetes", str(func(c *Config) *string { return &c.Kubernetes.BuildRepo })},
		{"RUNHOST_K8S_BUILD_REGISTRY_INSECURE", "false", "the build repository's registry speaks plain HTTP", boolean(func(c *Config) *bool { return &c.Kubernetes.BuildInsecure })},
		{"RUNHOST_K8S_BUILD_NAMESPACE", "runhost-builds", "namespace of the build pods (Pod Security `baseline`)", str(func(c *Config) *string { return &c.Kubernetes.BuildNamespace })},
		{"RUNHOST_K8S_BUILDER_IMAGE", "", "the builder image of build pods as the nodes pull it; empty: RUNHOST_BUILDER_IMAGE", str(func(c *Config) *string { return &c.Kubernetes.BuilderImage })},
		{"RUNHOST_K8S_BUILDER_SECCOMP", "runhost-builder.json", "seccomp profile of build pods: a Localhost profile installed on every node (`deploy/kubernetes/seccomp`), or `Unconfined`", str(func(c *Config) *string { return &c.Kubernetes.BuilderSeccomp })},
		{"RUNHOST_K8S_BUILDKIT_CONFIG", "", "buildkitd.toml file for every build (registry mirrors, plain-HTTP registries); empty: the builder image's", file(func(c *Config) *[]byte { return &c.Kubernetes.BuildkitConfig })},
		{"RUNHOST_WORKSPACE_ROOT", "off", "where this host sees the shared workspace (the seed's `/app/workspace`), created at start if missing; the host refuses to start when it cannot write there; `off` (or empty) disables workspaces. A bare `bin/host` creates no directory of its own: `make run` passes `./workspace` of the checkout, the compose files `/app/workspace` (the machine's `./workspace`)", workspaceRoot},
		{"DIND_WORKSPACE_PATH", "", "where the engine sees the same volume; bind sources use it, never a host path", str(func(c *Config) *string { return &c.Workspace.DaemonDir })},
		{"RUNHOST_WORKSPACE_QUOTA_MB", "1024", "bytes one workspace session may hold (files API uploads are refused above it; runs get ENOSPC when the quota mode is `fs`)", mebibytes(func(c *Config) *int64 { return &c.Workspace.QuotaBytes })},
		{"RUNHOST_WORKSPACE_QUOTA_MODE", "auto", "`fs`: every workspace session is a loop-mounted ext4 filesystem of RUNHOST_WORKSPACE_QUOTA_MB, so the quota holds while runs write (needs root, loop devices and an engine that sees the host's mounts); `off`: only the files API checks the quota; `auto`: `fs` when the host can mount and the engine shares its filesystem (DIND_WORKSPACE_PATH equals RUNHOST_WORKSPACE_ROOT), else `off` with a warning", oneOf(func(c *Config) *string { return &c.Workspace.QuotaMode }, "auto", "fs", "off")},
		{"RUNHOST_WORKSPACE_EXEC", "false", "runs may execute files of their workspace; otherwise a session filesystem is mounted `noexec` (always `nosuid,nodev`)", boolean(func(c *Config) *bool { return &c.Workspace.Exec })},
		{"RUNHOST_WORKSPACE_FILE_BYTES", "10485760", "largest file the files API accepts in one upload", integer(func(c *Config) *int64 { return &c.Workspace.FileBytes })},
		{"RUNHOST_IMAGE_ALIASES", "", "comma-separated `name=image`: the image this host runs for a name a request (`image`) or a Dockerfile names, e.g. `python:3.11-slim=runhost/python:3.11,node:20-alpine=runhost/node:20` where no registry answers; resolved before the allow-list, which then judges the target; listed in `GET /runtimes`", imageAliases},
		{"DIND_ENABLED", "false", "the engine is a Docker-in-Docker daemon: `DOCKER_HOST` must then use TLS (`tcp://...:2376` with `DOCKER_TLS_VERIFY=1`)", boolean(func(c *Config) *bool { return &c.Engine.DindEnabled })},
		{"RUNHOST_ALLOW_INSECURE_DOCKER", "false", "start even though `DIND_ENABLED=true` and `DOCKER_HOST` is plain TCP (anyone who reaches the port owns the daemon)", boolean(func(c *Config) *bool { return &c.Engine.AllowInsecureDocker })},
		{"DOCKER_BUILDKIT", "", "read by the Docker CLI (code-server's terminal); runhost's own builds never use the engine's builder: they run BuildKit in a builder container (RUNHOST_BUILDER_IMAGE)", nil},
		{"RUNHOST_IMAGE_SOURCE", "auto", "`make images`: `auto` tries a registry and falls back to an offline Debian build; `registry` or `offline` forces one", nil},
		{"RUNHOST_IMAGE_CACHE", ".cache/images", "`make images`: where debootstrap root filesystems and .debs are cached", nil},
		{"RUNHOST_DEBIAN_MIRROR", "http://deb.debian.org/debian", "`make images`: the Debian mirror offline builds use", nil},
		{"DOCKER_HOST", "", "Docker engine endpoint (read by the Docker client, with `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`)", nil},
	}
}

// MarkdownTable is the README's configuration table, generated from Settings.
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| variable | default | meaning |\n|---|---|---|\n")
	for _, s := range settings() {
		d := s.ShownDefault()
		if _, isComputed := computed[s.Name]; !isComputed && d != "" {
			d = "`" + d + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", s.Name, d, s.Doc)
	}
	return b.String()
}

// Load reads the configuration from the environment. Unknown RUNHOST_*
// variables are an error: a typo must not silently fall back to a default.
func Load() (Config, error) { return FromEnv(os.Environ()) }

// FromEnv reads the configuration from environ ("KEY=value" entries).
func FromEnv(environ []string) (Config, error) {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	known := map[string]bool{}
	var c Config
	var errs []error
	for _, s := range settings() {
		known[s.Name] = true
		if s.set == nil {
			continue
		}
		v, ok := env[s.Name]
		if !ok || v == "" {
			v = s.Default
		}
		if v == "" {
			continue // a computed default, filled in below
		}
		if err := s.set(&c, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", s.Name, v, err))
		}
	}
	for k := range env {
		if strings.HasPrefix(k, "RUNHOST_") && !known[k] {
			errs = append(errs, fmt.Errorf("unknown setting %s (see the configuration table in README.md)", k))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	c.Engine.DockerHost, c.Engine.DockerTLSVerify = env["DOCKER_HOST"], env["DOCKER_TLS_VERIFY"]
	c.fillComputedDefaults()
	return c, c.validate()
}

func (c *Config) fillComputedDefaults() {
	if c.Admission.MaxRuns == 0 {
		c.Admission.MaxRuns = 4 * runtime.NumCPU()
		if mem := totalMemoryMB(); mem > 0 && c.Limits.DefaultMemoryBytes > 0 {
			c.Admission.MaxRuns = int(max(1, min(int64(c.Admission.MaxRuns), mem*3/4/(c.Limits.DefaultMemoryBytes>>20))))
		}
	}
	if c.Workspace.DaemonDir == "" {
		if c.Engine.DindEnabled {
			c.Workspace.DaemonDir = "/workspaces"
		} else {
			c.Workspace.DaemonDir = c.Workspace.Root
		}
	}
	if c.Limits.MaxCPUs == 0 {
		c.Limits.MaxCPUs = float64(runtime.NumCPU())
	}
	if len(c.Egress.Allow) == 0 {
		c.Egress.Allow = indexHosts(c.Installs.PipIndexURL, "pypi.org", "files.pythonhosted.org")
		c.Egress.Allow = append(c.Egress.Allow, indexHosts(c.Installs.NpmRegistry, "registry.npmjs.org")...)
	}
	if c.Installs.CABundleFile == "" {
		for _, f := range MachineCABundles {
			if b, err := os.ReadFile(f); err == nil {
				c.Installs.CABundle, c.Installs.CABundleFile = b, f
				break
			}
		}
	}
	if c.Installs.CABundleFile == "none" {
		c.Installs.CABundleFile = ""
	}
	if c.Egress.Path == "" {
		if exe, err := os.Executable(); err == nil {
			c.Egress.Path = joinDir(exe, "runhost-egress")
		}
	}
	if c.Engine.InitPath == "" {
		if exe, err := os.Executable(); err == nil {
			c.Engine.InitPath = joinDir(exe, "runhost-init")
		}
	}
}

func joinDir(file, name string) string {
	if i := strings.LastIndexByte(file, '/'); i >= 0 {
		return file[:i+1] + name
	}
	return name
}

// validate checks what involves more than one setting, or the machine.
func (c *Config) validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	if _, _, err := net.SplitHostPort(c.Server.Addr); err != nil {
		errs = append(errs, fmt.Errorf("RUNHOST_ADDR=%q: %w", c.Server.Addr, err))
	}
	l := c.Limits
	check(l.DefaultTimeout > 0 && l.DefaultTimeout <= l.MaxTimeout, "RUNHOST_DEFAULT_TIMEOUT_MS must be positive and at most RUNHOST_MAX_TIMEOUT_MS")
	check(l.DefaultMemoryBytes >= MinMemoryBytes && l.DefaultMemoryBytes <= l.MaxMemoryBytes, "RUNHOST_DEFAULT_MEMORY_MB must be at least %d and at most RUNHOST_MAX_MEMORY_MB", MinMemoryBytes>>20)
	check(l.DefaultCPUs > 0 && l.DefaultCPUs <= l.MaxCPUs, "RUNHOST_DEFAULT_CPUS must be positive and at most RUNHOST_MAX_CPUS")
	check(l.Pids >= 8, "RUNHOST_PIDS_LIMIT must be at least 8")
	check(l.NoFile >= 16, "RUNHOST_NOFILE_LIMIT must be at least 16")
	check(l.FileSizeBytes > 0, "RUNHOST_FILE_SIZE_MB must be positive")
	check(l.TmpBytes > 0, "RUNHOST_TMP_MB must be positive")
	check(l.RunDirBytes > 0, "RUNHOST_RUN_DIR_MB must be positive")
	check(l.OutputBytes > 0, "RUNHOST_OUTPUT_LIMIT_BYTES must be positive")
	check(c.Sessions.InterruptGrace > 0 && c.Sessions.ResultBytes > 0, "RUNHOST_INTERPRETER_GRACE_MS and RUNHOST_INTERPRETER_RESULT_MB must be positive")
	check(c.Server.MaxBodyBytes >= 1024, "RUNHOST_MAX_BODY_BYTES must be at least 1024")
	check(c.Plugins.StartTimeout > 0 && c.Plugins.CallTimeout > 0, "RUNHOST_PLUGIN_START_TIMEOUT_MS and RUNHOST_PLUGIN_CALL_TIMEOUT_MS must be positive")
	check(c.Engine.SweepInterval >= time.Second, "RUNHOST_SWEEP_INTERVAL_MS must be at least 1000")
	in := c.Installs
	check(in.Timeout > 0 && in.MemoryBytes >= MinMemoryBytes, "RUNHOST_INSTALL_TIMEOUT_MS must be positive and RUNHOST_INSTALL_MEMORY_MB at least %d", MinMemoryBytes>>20)
	check(in.DiskBytes > 0 && in.DiskBytes < in.MemoryBytes, "RUNHOST_INSTALL_DISK_MB must be positive and less than RUNHOST_INSTALL_MEMORY_MB (the install's output is a tmpfs counted against its memory)")
	b := c.Builds
	check(b.Timeout > 0 && b.MemoryBytes >= MinMemoryBytes, "RUNHOST_BUILD_TIMEOUT_MS must be positive and RUNHOST_BUILD_MEMORY_MB at least %d", MinMemoryBytes>>20)
	check(in.CacheEntries > 0 && in.CacheBytes > 0, "RUNHOST_DEPS_CACHE_ENTRIES and RUNHOST_DEPS_CACHE_MB must be positive")
	check(b.CacheEntries > 0 && b.CacheBytes > 0, "RUNHOST_BUILD_CACHE_ENTRIES and RUNHOST_BUILD_CACHE_MB must be positive")
	check(b.MaxContextBytes > 0 && b.LogBytes > 0, "RUNHOST_MAX_CONTEXT_BYTES and RUNHOST_BUILD_LOG_BYTES must be positive")
	check(b.Pids >= 64, "RUNHOST_BUILD_PIDS_LIMIT must be at least 64 (BuildKit's own threads count)")
	check(b.DiskBytes >= 64<<20 && b.ImageBytes > 0 && b.BasesCacheBytes > 0, "RUNHOST_BUILD_DISK_MB must be at least 64, RUNHOST_BUILD_IMAGE_MB and RUNHOST_BUILD_BASES_CACHE_MB positive")
	check(c.Admission.MaxRuns > 0 && c.Admission.QueueWait > 0, "RUNHOST_MAX_RUNS and RUNHOST_QUEUE_WAIT_MS must be positive")
	s := c.Server
	check(s.WriteTimeout > 0, "RUNHOST_WRITE_TIMEOUT_MS must be positive")
	check(s.MaxStreamBufferBytes >= 4096 && s.MaxStdinBytes > 0 && s.MaxWSMessageBytes >= 1024, "RUNHOST_MAX_STREAM_BUFFER_BYTES must be at least 4096, RUNHOST_MAX_STDIN_BYTES positive and RUNHOST_MAX_WS_MESSAGE_BYTES at least 1024")
	if c.Auth.KeysFile == "" && !c.Auth.AllowUnauthenticated {
		if host, _, err := net.SplitHostPort(s.Addr); err == nil && !isLoopback(host) {
			errs = append(errs, fmt.Errorf("RUNHOST_ADDR=%s is not a loopback address and RUNHOST_API_KEYS_FILE is not set: anyone who reaches the port could run code; set RUNHOST_API_KEYS_FILE (bin/host api-key makes a key) or RUNHOST_ALLOW_UNAUTHENTICATED=true", s.Addr))
		}
	}
	if w := c.Workspace; w.Root != "" {
		check(filepath.IsAbs(w.Root), "RUNHOST_WORKSPACE_ROOT must be an absolute path")
		check(filepath.IsAbs(w.DaemonDir), "DIND_WORKSPACE_PATH must be an absolute path")
		check(w.QuotaBytes > 0 && w.FileBytes > 0, "RUNHOST_WORKSPACE_QUOTA_MB and RUNHOST_WORKSPACE_FILE_BYTES must be positive")
	}
	eg := c.Egress
	check(!eg.RunDefault || len(eg.RunAllow) > 0, "RUNHOST_RUN_EGRESS_DEFAULT=true needs RUNHOST_RUN_EGRESS_ALLOW: the hosts every run may reach")
	if c.Auth.KeysFile != "" {
		check(len(eg.RunAllow) == 0 && !eg.RunDefault, "RUNHOST_RUN_EGRESS_ALLOW and RUNHOST_RUN_EGRESS_DEFAULT are for a host without keys; with RUNHOST_API_KEYS_FILE grant hosts per key (egress=HOST,... and egress-default)")
		check(!b.Network, "RUNHOST_BUILD_NETWORK is for a host without keys; with RUNHOST_API_KEYS_FILE grant it per key (build-egress)")
	}
	if c.Engine.Executor == "kubernetes" {
		check(len(eg.RunAllow) == 0, "RUNHOST_RUN_EGRESS_ALLOW: network for runs is not available on Kubernetes (only dependency installs reach the egress proxy)")
	}
	if e := c.Engine; e.DindEnabled && !e.AllowInsecureDocker {
		host, tls := e.DockerHost, e.DockerTLSVerify
		switch {
		case host == "" || strings.HasPrefix(host, "unix://"):
			errs = append(errs, errors.New("DIND_ENABLED=true but DOCKER_HOST does not name the DinD daemon (want tcp://dind:2376 with DOCKER_TLS_VERIFY=1)"))
		case strings.HasPrefix(host, "tcp://") && (tls == "" || tls == "0"):
			errs = append(errs, fmt.Errorf("DIND_ENABLED=true and DOCKER_HOST=%s is plain TCP: any container that reaches it owns the daemon; set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH (or RUNHOST_ALLOW_INSECURE_DOCKER=true to accept the risk)", host))
		}
	}
	if c.Engine.Executor == "kubernetes" {
		errs = append(errs, c.unmappedOCIRuntimes()...)
	}
	return errors.Join(errs...)
}

// unmappedOCIRuntimes refuses, for the Kubernetes executor, every OCI
// runtime the policy may choose that has no RuntimeClass: pods have no OCI
// runtime of their own, and a run must never silently lose the sandbox the
// policy chose for it.
func (c *Config) unmappedOCIRuntimes() []error {
	chosen := map[string][]string{} // OCI runtime -> the settings that choose it
	if rt := c.Policy.OCIRuntime; rt != "" {
		chosen[rt] = append(chosen[rt], "RUNHOST_OCI_RUNTIME")
	}
	for name, rt := range c.Policy.OCIRuntimes {
		chosen[rt] = append(chosen[rt], "RUNHOST_OCI_RUNTIMES ("+name+")")
	}
	var errs []error
	for _, rt := range slices.Sorted(maps.Keys(chosen)) {
		if _, ok := c.Kubernetes.RuntimeClasses[rt]; !ok {
			slices.Sort(chosen[rt])
			errs = append(errs, fmt.Errorf("%s chooses the OCI runtime %q, which the kubernetes executor cannot use as such: map it to a RuntimeClass with RUNHOST_K8S_RUNTIME_CLASSES=%s=<class> (or use RUNHOST_K8S_RUNTIME_CLASS for every pod instead)", strings.Join(chosen[rt], ", "), rt, rt))
		}
	}
	return errs
}

// indexHosts is the host (with its port, if any) of index, or defaults when
// index is unset.
func indexHosts(index *url.URL, defaults ...string) []string {
	if index == nil {
		return defaults
	}
	return []string{index.Host}
}

// NormalizeOrigin checks that o is a browser origin (`scheme://host[:port]`,
// http or https, nothing else) and returns it as browsers send it: lower
// case, without the scheme's default port.
func NormalizeOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.Contains(u.Host, "*") {
		return "", fmt.Errorf("%q is not an origin: want scheme://host[:port] with http or https and nothing else", o)
	}
	host := strings.ToLower(u.Host)
	if port := u.Port(); (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		host = strings.TrimSuffix(host, ":"+port)
	}
	return u.Scheme + "://" + host, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// totalMemoryMB reads the machine's memory from /proc/meminfo, or 0.
func totalMemoryMB() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb / 1024
		}
	}
	return 0
}

// MinMemoryBytes is the smallest memory limit a run may have: below it even
// an interpreter's start-up is killed, which only confuses the caller.
const MinMemoryBytes = 16 << 20

// A setter parses one setting's value into its field.
type setter = func(c *Config, v string) error

func str(field func(*Config) *string) setter {
	return func(c *Config, v string) error { *field(c) = v; return nil }
}

func boolean(field func(*Config) *bool) setter {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("want true or false")
		}
		*field(c) = b
		return nil
	}
}

// items splits a comma-separated list, dropping empty items.
func items(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func list(field func(*Config) *[]string) setter {
	return func(c *Config, v string) error { *field(c) = items(v); return nil }
}

// listOf parses every item of a comma-separated list with parse.
func listOf[T any](field func(*Config) *[]T, parse func(string) (T, error)) setter {
	return func(c *Config, v string) error {
		var out []T
		for _, item := range items(v) {
			x, err := parse(item)
			if err != nil {
				return err
			}
			out = append(out, x)
		}
		*field(c) = out
		return nil
	}
}

func cidrs(field func(*Config) *[]netip.Prefix) setter {
	return listOf(field, netip.ParsePrefix)
}

func origins(field func(*Config) *[]string) setter {
	return listOf(field, NormalizeOrigin)
}

func hostNames(field func(*Config) *[]string) setter {
	return listOf(field, func(h string) (string, error) {
		if h != "*" && strings.ContainsAny(h, "/:@ *") {
			return "", fmt.Errorf("%q is not a host name (no scheme, port or wildcard; `*` alone turns the check off)", h)
		}
		return h, nil
	})
}

// pairs parses a comma-separated list of key=value (format names it in
// errors) into a map; a key given twice is an error.
func pairs(field func(*Config) *map[string]string, format string) setter {
	return func(c *Config, v string) error {
		out := map[string]string{}
		for _, kv := range items(v) {
			k, val, ok := strings.Cut(kv, "=")
			k, val = strings.TrimSpace(k), strings.TrimSpace(val)
			if !ok || k == "" || val == "" {
				return fmt.Errorf("%q is not %s", kv, format)
			}
			if _, dup := out[k]; dup {
				return fmt.Errorf("%q is given twice", k)
			}
			out[k] = val
		}
		*field(c) = out
		return nil
	}
}

func oneOf(field func(*Config) *string, allowed ...string) setter {
	return func(c *Config, v string) error {
		if !slices.Contains(allowed, v) {
			return fmt.Errorf("want one of %s", strings.Join(allowed, ", "))
		}
		*field(c) = v
		return nil
	}
}

// nonNegative parses a non-negative integer no larger than limit.
func nonNegative(v string, limit int64) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > limit {
		return 0, fmt.Errorf("want a non-negative integer of at most %d", limit)
	}
	return n, nil
}

func integer[T int | int64](field func(*Config) *T) setter {
	return func(c *Config, v string) error {
		n, err := nonNegative(v, math.MaxInt)
		if err != nil {
			return err
		}
		*field(c) = T(n)
		return nil
	}
}

// mebibytes reads a number of MiB (a _MB setting) as bytes.
func mebibytes(field func(*Config) *int64) setter {
	return func(c *Config, v string) error {
		n, err := nonNegative(v, math.MaxInt64>>20)
		if err != nil {
			return err
		}
		*field(c) = n << 20
		return nil
	}
}

func float(field func(*Config) *float64) setter {
	return func(c *Config, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || math.IsInf(f, 0) {
			return errors.New("want a positive number")
		}
		*field(c) = f
		return nil
	}
}

// duration reads a non-negative number of units.
func duration(field func(*Config) *time.Duration, unit time.Duration) setter {
	return func(c *Config, v string) error {
		n, err := nonNegative(v, int64(math.MaxInt64/unit))
		if err != nil {
			return err
		}
		*field(c) = time.Duration(n) * unit
		return nil
	}
}

func millis(field func(*Config) *time.Duration) setter  { return duration(field, time.Millisecond) }
func seconds(field func(*Config) *time.Duration) setter { return duration(field, time.Second) }

// httpURL reads an absolute http or https URL.
func httpURL(field func(*Config) **url.URL) setter {
	return func(c *Config, v string) error {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("want an absolute http:// or https:// URL")
		}
		*field(c) = u
		return nil
	}
}

// file reads the file the setting names.
func file(field func(*Config) *[]byte) setter {
	return func(c *Config, v string) error {
		b, err := os.ReadFile(v)
		if err != nil {
			return err
		}
		*field(c) = b
		return nil
	}
}

// MachineCABundles are where Linux distributions keep the machine's CA
// bundle (Debian and Alpine, Fedora and RHEL, others), in the order
// RUNHOST_CA_BUNDLE's default tries them.
var MachineCABundles = []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"}

// caBundle reads RUNHOST_CA_BUNDLE: a PEM file, or none.
func caBundle(c *Config, v string) error {
	c.Installs.CABundleFile = v
	if v == "none" {
		return nil
	}
	return file(func(c *Config) *[]byte { return &c.Installs.CABundle })(c, v)
}

// imageAliases reads RUNHOST_IMAGE_ALIASES: name=image pairs, both image
// names (never IDs).
func imageAliases(c *Config, v string) error {
	if err := pairs(func(c *Config) *map[string]string { return &c.Policy.ImageAliases }, "name=image")(c, v); err != nil {
		return err
	}
	for name, target := range c.Policy.ImageAliases {
		for _, ref := range []string{name, target} {
			if _, err := imageref.Parse(ref); err != nil {
				return fmt.Errorf("%s=%s: %w", name, target, err)
			}
		}
	}
	return nil
}

// workspaceRoot reads RUNHOST_WORKSPACE_ROOT: a directory, or off.
func workspaceRoot(c *Config, v string) error {
	if v != "off" {
		c.Workspace.Root = v
	}
	return nil
}

func runUser(c *Config, v string) error {
	u, err := executor.ParseUser(v)
	if err != nil {
		return err
	}
	if u.UID == egress.UID || u.GID == egress.GID {
		return fmt.Errorf("uid and gid %d belong to the egress proxy, which no run or install step may share", egress.UID)
	}
	c.Policy.RunUser = u
	return nil
}

// poolTargets reads RUNHOST_POOL: `runtime[:version]=count`, comma-separated,
// or `off`.
func poolTargets(c *Config, v string) error {
	c.Pool.Targets = nil
	if v == "off" {
		return nil
	}
	for _, t := range items(v) {
		spec, n, ok := strings.Cut(t, "=")
		name, version, hasVersion := strings.Cut(spec, ":")
		count, err := nonNegative(n, math.MaxInt32)
		if !ok || name == "" || (hasVersion && version == "") || err != nil {
			return fmt.Errorf("%q is not runtime[:version]=count", t)
		}
		c.Pool.Targets = append(c.Pool.Targets, PoolTarget{Runtime: name, Version: version, Count: int(count)})
	}
	return nil
}
