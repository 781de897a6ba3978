// Package config reads every host setting from the environment into one
// struct, with defaults and validation. Each setting is declared once, in
// settings(), which is also what the README's configuration table documents
// (a test keeps the two in step).
package config

import (
	"errors"
	"fmt"
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
)

// Config is the host's whole configuration.
type Config struct {
	Addr      string // listen address
	PluginDir string // where runtime plugins are discovered
	InitPath  string // the in-container init binary (runhost-init)

	LogLevel  string
	LogFormat string // "json" or "text"

	// Run limits: what a request gets by default and the most it may ask for.
	DefaultTimeout  time.Duration
	MaxTimeout      time.Duration
	DefaultMemoryMB int64
	MaxMemoryMB     int64
	DefaultCPUs     float64
	MaxCPUs         float64

	PidsLimit   int64 // processes and threads per run
	NoFileLimit int64 // open files per process
	FileSizeMB  int64 // largest file a run may write
	TmpMB       int64 // size of the /tmp tmpfs
	RunDirMB    int64 // size of the run directory tmpfs (where code files go)
	OutputBytes int64 // cap on stdout and on stderr, each

	MaxBodyBytes int64 // largest request body
	RunUser      string

	PluginChecksums    string // sha256sum file: the approved plugin binaries
	PluginWatch        bool   // reload plugins when their directory changes
	PluginStartTimeout time.Duration
	PluginCallTimeout  time.Duration
	ShutdownTimeout    time.Duration
	SweepInterval      time.Duration

	// Dependency installs (pip, npm): their own container, limits and network.
	AllowInstallNetwork bool
	InstallNetwork      string   // Docker network the egress proxy joins
	EgressAllow         []string // hosts install steps may reach
	EgressCIDRs         []string // private ranges they may reach
	EgressPath          string   // the runhost-egress binary
	RunEgressAllow      []string // hosts runs of a host without keys may reach
	RunEgressDefault    bool     // and every run gets them without asking
	PipIndexURL         string
	NpmRegistry         string
	CABundle            string // PEM file given to install steps (and builds)
	InstallTimeout      time.Duration
	InstallMemoryMB     int64
	InstallDiskMB       int64 // the install's output directory, a tmpfs
	DepsCacheEntries    int64
	DepsCacheMB         int64

	// PolicyFile grants plugins what they may ask for (RUNHOST_POLICY).
	PolicyFile string

	// Images a request may name (custom-image runtimes); empty means the
	// runtimes' own images.
	AllowedImages []string

	// Dockerfile builds.
	BuildTimeout      time.Duration
	BuildMemoryMB     int64
	BuildNetwork      bool
	MaxContextBytes   int64
	BuildLogBytes     int64
	BuildCacheEntries int64
	BuildCacheMB      int64
	BuilderImage      string // the rootless BuildKit image builds run in
	BuildPids         int64
	BuildDiskMB       int64
	BuildImageMB      int64
	BuildBasesCacheMB int64

	SelfTestOnStart bool

	// Sessions: long-lived containers for consecutive runs.
	SessionIdleTTL     time.Duration
	SessionMaxLifetime time.Duration
	SessionsPerKey     int64
	MaxSessions        int64

	// Warm pool: started containers waiting for a run.
	Pool         []string // "python=2", "python:3.13=1"
	PoolMemoryMB int64

	// The OCI runtime of run containers (e.g. gVisor's runsc), for all
	// runtimes or per runtime name.
	OCIRuntime  string
	OCIRuntimes []string // "python=runsc"

	// Which engine runs the jobs.
	Executor          string // docker or kubernetes
	K8sKubeconfig     string
	K8sNamespace      string
	K8sInitImage      string
	K8sRuntimeClass   string
	K8sPullPolicy     string
	K8sWorkspaceClaim string
	K8sCacheClaim     string
	K8sCacheRoot      string
	K8sEgressImage    string
	K8sBuildRepo      string
	K8sBuildInsecure  bool
	K8sBuildNamespace string
	K8sBuilderImage   string
	K8sBuilderSeccomp string
	K8sBuildkitConfig string

	// Shared workspace: where this host sees it, and where the engine does.
	WorkspaceRoot      string
	WorkspaceDaemonDir string // DIND_WORKSPACE_PATH
	WorkspaceQuotaMB   int64
	WorkspaceQuotaMode string // auto, fs or off: how the quota holds while runs write
	WorkspaceExec      bool   // runs may execute files of the workspace
	WorkspaceFileBytes int64

	// Who may call, and how much.
	APIKeysFile          string
	AllowUnauthenticated bool
	MaxRuns              int64
	QueueLength          int64
	QueueWait            time.Duration
	KeyRate              float64
	KeyBurst             int64
	KeyMaxRuns           int64

	// Browsers and slow clients (internal/api's browser guard, answers
	// with write deadlines, bounded stream and stdin buffers).
	AllowedOrigins       []string // origins other than the host's own that may call it
	AllowedHosts         []string // Host header names besides loopback and the listen address; "*" = no check
	WriteTimeout         time.Duration
	MaxStreamBufferBytes int64
	MaxStdinBytes        int64
	MaxWSMessageBytes    int64
	PistonAllowTextPlain bool // /api/v2/execute takes text/plain from clients that are no browser

	// The engine: Docker-in-Docker must be reached over TLS.
	DindEnabled         bool
	AllowInsecureDocker bool
	DockerHost          string // DOCKER_HOST as given (the Docker client reads it itself)
	DockerTLSVerify     string // DOCKER_TLS_VERIFY as given
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
		{"RUNHOST_ADDR", "127.0.0.1:8080", "HTTP listen address", str(func(c *Config) *string { return &c.Addr })},
		{"RUNHOST_PLUGIN_DIR", "./bin/plugins", "directory scanned for `runhost-plugin-*` executables", str(func(c *Config) *string { return &c.PluginDir })},
		{"RUNHOST_INIT_PATH", "", "the static init binary placed in every run container", str(func(c *Config) *string { return &c.InitPath })},
		{"RUNHOST_LOG_LEVEL", "info", "trace, debug, info, warn or error", oneOf(func(c *Config) *string { return &c.LogLevel }, "trace", "debug", "info", "warn", "error")},
		{"RUNHOST_LOG_FORMAT", "json", "json or text", oneOf(func(c *Config) *string { return &c.LogFormat }, "json", "text")},
		{"RUNHOST_DEFAULT_TIMEOUT_MS", "10000", "wall-clock timeout of a run that asks for none", dur(func(c *Config) *time.Duration { return &c.DefaultTimeout }, time.Millisecond)},
		{"RUNHOST_MAX_TIMEOUT_MS", "60000", "largest `timeout_ms` a request may ask for", dur(func(c *Config) *time.Duration { return &c.MaxTimeout }, time.Millisecond)},
		{"RUNHOST_DEFAULT_MEMORY_MB", "256", "memory limit of a run that asks for none (swap is not allowed)", integer(func(c *Config) *int64 { return &c.DefaultMemoryMB })},
		{"RUNHOST_MAX_MEMORY_MB", "2048", "largest `memory_mb` a request may ask for", integer(func(c *Config) *int64 { return &c.MaxMemoryMB })},
		{"RUNHOST_DEFAULT_CPUS", "1", "CPU limit of a run that asks for none", float(func(c *Config) *float64 { return &c.DefaultCPUs })},
		{"RUNHOST_MAX_CPUS", "", "largest `cpus` a request may ask for", float(func(c *Config) *float64 { return &c.MaxCPUs })},
		{"RUNHOST_PIDS_LIMIT", "128", "processes and threads per run", integer(func(c *Config) *int64 { return &c.PidsLimit })},
		{"RUNHOST_NOFILE_LIMIT", "1024", "open files per process in a run", integer(func(c *Config) *int64 { return &c.NoFileLimit })},
		{"RUNHOST_FILE_SIZE_MB", "64", "largest file a run may write", integer(func(c *Config) *int64 { return &c.FileSizeMB })},
		{"RUNHOST_TMP_MB", "64", "size of the `/tmp` tmpfs in a run (counts against its memory)", integer(func(c *Config) *int64 { return &c.TmpMB })},
		{"RUNHOST_RUN_DIR_MB", "64", "size of the run directory tmpfs holding the code files", integer(func(c *Config) *int64 { return &c.RunDirMB })},
		{"RUNHOST_OUTPUT_LIMIT_BYTES", "1048576", "cap on stdout and on stderr of a run, each; the rest is discarded and flagged", integer(func(c *Config) *int64 { return &c.OutputBytes })},
		{"RUNHOST_MAX_BODY_BYTES", "10485760", "largest request body (413 above it)", integer(func(c *Config) *int64 { return &c.MaxBodyBytes })},
		{"RUNHOST_RUN_USER", "1000:1000", "numeric uid:gid every run uses (never root)", runUser},
		{"RUNHOST_PLUGIN_CHECKSUMS", "", "`sha256sum` output listing the approved plugin binaries; a plugin not listed or not matching is refused", str(func(c *Config) *string { return &c.PluginChecksums })},
		{"RUNHOST_PLUGIN_WATCH", "true", "reload plugins when the plugin directory changes (also on SIGHUP and `POST /admin/plugins/reload`)", boolean(func(c *Config) *bool { return &c.PluginWatch })},
		{"RUNHOST_PLUGIN_START_TIMEOUT_MS", "10000", "how long a plugin may take to start and describe itself", dur(func(c *Config) *time.Duration { return &c.PluginStartTimeout }, time.Millisecond)},
		{"RUNHOST_PLUGIN_CALL_TIMEOUT_MS", "5000", "deadline of one call into a plugin", dur(func(c *Config) *time.Duration { return &c.PluginCallTimeout }, time.Millisecond)},
		{"RUNHOST_SHUTDOWN_TIMEOUT_MS", "30000", "on SIGTERM, how long in-flight runs may finish before they are killed", dur(func(c *Config) *time.Duration { return &c.ShutdownTimeout }, time.Millisecond)},
		{"RUNHOST_SWEEP_INTERVAL_MS", "60000", "how often containers left past their deadline are removed", dur(func(c *Config) *time.Duration { return &c.SweepInterval }, time.Millisecond)},
		{"RUNHOST_ALLOW_INSTALL_NETWORK", "true", "whether dependency installs (pip, npm) get network access; runs never do", boolean(func(c *Config) *bool { return &c.AllowInstallNetwork })},
		{"RUNHOST_INSTALL_NETWORK", "bridge", "the Docker network the egress proxy joins; install steps themselves have no network and reach only the proxy", str(func(c *Config) *string { return &c.InstallNetwork })},
		{"RUNHOST_EGRESS_ALLOW", "", "comma-separated hosts install steps may reach through the egress proxy (`host`, `*.domain`, `host:port`)", list(func(c *Config) *[]string { return &c.EgressAllow })},
		{"RUNHOST_EGRESS_ALLOW_CIDRS", "", "comma-separated private address ranges the proxy may reach (private, loopback and link-local addresses are refused otherwise)", list(func(c *Config) *[]string { return &c.EgressCIDRs })},
		{"RUNHOST_EGRESS_PATH", "", "the static egress proxy binary", str(func(c *Config) *string { return &c.EgressPath })},
		{"RUNHOST_RUN_EGRESS_ALLOW", "", "host without keys: comma-separated hosts its runs may reach through the egress proxy when they ask (`network`), as a key's `egress=` option (`host`, `*.domain`, `host:port`; names only, no IP addresses, private names or wildcards over a public suffix); empty: runs have no network", list(func(c *Config) *[]string { return &c.RunEgressAllow })},
		{"RUNHOST_RUN_EGRESS_DEFAULT", "false", "host without keys: every run gets RUNHOST_RUN_EGRESS_ALLOW without asking (a key's `egress-default`), so clients with no `network` parameter reach those hosts", boolean(func(c *Config) *bool { return &c.RunEgressDefault })},
		{"RUNHOST_PIP_INDEX_URL", "", "package index for pip installs (pip's default, PyPI, when empty)", str(func(c *Config) *string { return &c.PipIndexURL })},
		{"RUNHOST_NPM_REGISTRY", "", "registry for npm installs (npm's default when empty)", str(func(c *Config) *string { return &c.NpmRegistry })},
		{"RUNHOST_CA_BUNDLE", "", "PEM bundle trusted by install steps and builds, for TLS-intercepting proxies (e.g. `/etc/ssl/certs/ca-certificates.crt`)", str(func(c *Config) *string { return &c.CABundle })},
		{"RUNHOST_INSTALL_TIMEOUT_MS", "300000", "wall-clock timeout of one dependency install", dur(func(c *Config) *time.Duration { return &c.InstallTimeout }, time.Millisecond)},
		{"RUNHOST_INSTALL_MEMORY_MB", "1024", "memory limit of a dependency install", integer(func(c *Config) *int64 { return &c.InstallMemoryMB })},
		{"RUNHOST_INSTALL_DISK_MB", "512", "size of the filesystem a dependency install writes its output to (a tmpfs counted against RUNHOST_INSTALL_MEMORY_MB); an install that needs more fails and nothing is cached", integer(func(c *Config) *int64 { return &c.InstallDiskMB })},
		{"RUNHOST_DEPS_CACHE_ENTRIES", "100", "installed dependency sets kept (least recently used go first)", integer(func(c *Config) *int64 { return &c.DepsCacheEntries })},
		{"RUNHOST_DEPS_CACHE_MB", "4096", "bytes of installed dependencies kept", integer(func(c *Config) *int64 { return &c.DepsCacheMB })},
		{"RUNHOST_POLICY", "", "host policy file (JSON, strict) granting each plugin its images, networks and maximum limits; see docs/writing-plugins.md", str(func(c *Config) *string { return &c.PolicyFile })},
		{"RUNHOST_ALLOWED_IMAGES", "", "comma-separated image patterns (`*` matches anything) a request may name with `image` or in a Dockerfile (FROM, COPY --from, RUN --mount from=); empty means the runtimes' own images; image IDs and runhost's own images (runhost/build, runhost/egress, ...) are refused whatever it says", list(func(c *Config) *[]string { return &c.AllowedImages })},
		{"RUNHOST_BUILD_TIMEOUT_MS", "300000", "wall-clock timeout of one Dockerfile build", dur(func(c *Config) *time.Duration { return &c.BuildTimeout }, time.Millisecond)},
		{"RUNHOST_BUILD_MEMORY_MB", "2048", "memory limit of a build: BuildKit and every RUN step together (RUNHOST_BUILD_DISK_MB comes on top)", integer(func(c *Config) *int64 { return &c.BuildMemoryMB })},
		{"RUNHOST_BUILD_NETWORK", "false", "host without keys: whether RUN steps of a Dockerfile build reach the network, only through the egress proxy (RUNHOST_EGRESS_ALLOW); without it they have no network at all. With keys, the keys file grants it per key (`build-egress`) and this must stay false", boolean(func(c *Config) *bool { return &c.BuildNetwork })},
		{"RUNHOST_BUILD_PIDS_LIMIT", "512", "processes and threads of one build, BuildKit's own included", integer(func(c *Config) *int64 { return &c.BuildPids })},
		{"RUNHOST_BUILD_DISK_MB", "2048", "BuildKit's working storage in a build (base layers, snapshots, the exported image): a tmpfs, so it counts as memory", integer(func(c *Config) *int64 { return &c.BuildDiskMB })},
		{"RUNHOST_BUILD_IMAGE_MB", "2048", "largest image a build may hand the engine: the layers it adds (the bases' the engine has are not sent again; with the containerd image store they are, and count); counted as it streams, and the engine loads nothing of a larger one", integer(func(c *Config) *int64 { return &c.BuildImageMB })},
		{"RUNHOST_BUILD_BASES_CACHE_MB", "4096", "bytes of base images kept exported for builds (a volume per image ID; least recently used go first)", integer(func(c *Config) *int64 { return &c.BuildBasesCacheMB })},
		{"RUNHOST_BUILDER_IMAGE", "runhost/builder:latest", "the image Dockerfile builds run in: rootless BuildKit, made by `make images` (`scripts/builder-image.sh`)", str(func(c *Config) *string { return &c.BuilderImage })},
		{"RUNHOST_MAX_CONTEXT_BYTES", "10485760", "largest build context (413 above it)", integer(func(c *Config) *int64 { return &c.MaxContextBytes })},
		{"RUNHOST_BUILD_LOG_BYTES", "65536", "cap on the build log returned with a run", integer(func(c *Config) *int64 { return &c.BuildLogBytes })},
		{"RUNHOST_BUILD_CACHE_ENTRIES", "50", "built images kept (least recently used go first)", integer(func(c *Config) *int64 { return &c.BuildCacheEntries })},
		{"RUNHOST_BUILD_CACHE_MB", "10240", "bytes of built images kept", integer(func(c *Config) *int64 { return &c.BuildCacheMB })},
		{"RUNHOST_OCI_RUNTIME", "", "OCI runtime of every run and install container (e.g. `runsc` for gVisor, registered with the engine); empty for the engine's default", str(func(c *Config) *string { return &c.OCIRuntime })},
		{"RUNHOST_OCI_RUNTIMES", "", "per-runtime overrides of RUNHOST_OCI_RUNTIME, comma-separated `name=oci-runtime` (e.g. `python=runsc,shell=runc`)", list(func(c *Config) *[]string { return &c.OCIRuntimes })},
		{"RUNHOST_SESSION_IDLE_TTL_S", "600", "a session unused this long is removed (a session may ask for less or more, up to the lifetime)", dur(func(c *Config) *time.Duration { return &c.SessionIdleTTL }, time.Second)},
		{"RUNHOST_SESSION_MAX_LIFETIME_S", "3600", "no session lives longer", dur(func(c *Config) *time.Duration { return &c.SessionMaxLifetime }, time.Second)},
		{"RUNHOST_SESSIONS_PER_KEY", "4", "sessions one API key may hold at once", integer(func(c *Config) *int64 { return &c.SessionsPerKey })},
		{"RUNHOST_MAX_SESSIONS", "32", "sessions the host holds at once", integer(func(c *Config) *int64 { return &c.MaxSessions })},
		{"RUNHOST_POOL", "python=2,shell=1,node=1", "warm pool: containers kept started for default requests, `runtime[:version]=count`, comma-separated; `off` turns the pool off", poolList},
		{"RUNHOST_POOL_MEMORY_MB", "1536", "the most memory (by limits) the warm pool holds", integer(func(c *Config) *int64 { return &c.PoolMemoryMB })},
		{"RUNHOST_SELFTEST_ON_START", "true", "run every version's self-test when the host starts (results in `GET /runtimes`)", boolean(func(c *Config) *bool { return &c.SelfTestOnStart })},
		{"RUNHOST_API_KEYS_FILE", "", "file of API key hashes, one line per key: `name sha256-hex [option ...]` with options `operator` (may call `/admin/*`, `/metrics`, `/plugins`) and `workspaces=NAME,...` or `workspaces=*` (shared workspace names the key reaches); make one with `bin/host api-key NAME [option ...]`; callers send `Authorization: Bearer <key>`", str(func(c *Config) *string { return &c.APIKeysFile })},
		{"RUNHOST_ALLOW_UNAUTHENTICATED", "false", "serve without API keys on a non-loopback address (otherwise the host refuses to start); such a host has one tenant, who operates it and uses the shared workspace", boolean(func(c *Config) *bool { return &c.AllowUnauthenticated })},
		{"RUNHOST_MAX_RUNS", "", "runs in flight at once; more wait in the queue", integer(func(c *Config) *int64 { return &c.MaxRuns })},
		{"RUNHOST_QUEUE_LENGTH", "100", "runs that may wait for a slot; beyond it a 429 with Retry-After", integer(func(c *Config) *int64 { return &c.QueueLength })},
		{"RUNHOST_QUEUE_WAIT_MS", "30000", "longest a run waits for a slot before a 429", dur(func(c *Config) *time.Duration { return &c.QueueWait }, time.Millisecond)},
		{"RUNHOST_KEY_RATE", "", "runs per second each API key may start (token bucket); empty for no limit", float(func(c *Config) *float64 { return &c.KeyRate })},
		{"RUNHOST_KEY_BURST", "", "bucket size of RUNHOST_KEY_RATE (default: the rate, at least 1)", integer(func(c *Config) *int64 { return &c.KeyBurst })},
		{"RUNHOST_KEY_MAX_RUNS", "", "runs in flight per API key; empty for no per-key cap", integer(func(c *Config) *int64 { return &c.KeyMaxRuns })},
		{"RUNHOST_ALLOWED_ORIGINS", "", "comma-separated origins (`https://app.example`) besides the host's own whose pages may call the API from a browser (CORS, and the Piston WebSocket); other cross-site requests are refused (403 `cross_site_request`)", list(func(c *Config) *[]string { return &c.AllowedOrigins })},
		{"RUNHOST_ALLOWED_HOSTS", "", "comma-separated `Host` header names accepted besides loopback names and the listen address, checked when the host has no keys or listens on loopback (DNS rebinding; 403 `host_not_allowed`); `*` turns the check off", list(func(c *Config) *[]string { return &c.AllowedHosts })},
		{"RUNHOST_PISTON_ALLOW_TEXT_PLAIN", "false", "accept `POST /api/v2/execute` bodies sent as `text/plain` or without a type (as the npm `piston-client` sends them) from clients that send no `Origin` and no `Sec-Fetch-Site` (no browser does that today); otherwise only `application/json`", boolean(func(c *Config) *bool { return &c.PistonAllowTextPlain })},
		{"RUNHOST_WRITE_TIMEOUT_MS", "30000", "longest one write of an answer (JSON, a server-sent event, a download chunk, a WebSocket message) may wait for a client that does not read; then the answer is abandoned and a streaming run is cancelled", dur(func(c *Config) *time.Duration { return &c.WriteTimeout }, time.Millisecond)},
		{"RUNHOST_MAX_STREAM_BUFFER_BYTES", "1048576", "output of one streaming run (server-sent events, the Piston WebSocket) held for a client that reads slower than the program writes; the run waits while it is full", integer(func(c *Config) *int64 { return &c.MaxStreamBufferBytes })},
		{"RUNHOST_MAX_STDIN_BYTES", "1048576", "stdin bytes one `/api/v2/connect` WebSocket may have waiting for the program; more closes it with 4002", integer(func(c *Config) *int64 { return &c.MaxStdinBytes })},
		{"RUNHOST_MAX_WS_MESSAGE_BYTES", "65536", "largest message on `/api/v2/connect` after init (init may be as large as RUNHOST_MAX_BODY_BYTES); a larger one closes it with 4002", integer(func(c *Config) *int64 { return &c.MaxWSMessageBytes })},
		{"RUNHOST_EXECUTOR", "docker", "`docker` (the engine at DOCKER_HOST) or `kubernetes` (pods in RUNHOST_K8S_NAMESPACE)", oneOf(func(c *Config) *string { return &c.Executor }, "docker", "kubernetes")},
		{"RUNHOST_K8S_KUBECONFIG", "", "kubeconfig file of the cluster; empty means the host runs in the cluster and uses its service account", str(func(c *Config) *string { return &c.K8sKubeconfig })},
		{"RUNHOST_K8S_NAMESPACE", "runhost-runs", "namespace of the run pods", str(func(c *Config) *string { return &c.K8sNamespace })},
		{"RUNHOST_K8S_INIT_IMAGE", "", "image holding runhost-init at /init for the pods' init container (default `runhost/init:<hash of the init binary>`)", str(func(c *Config) *string { return &c.K8sInitImage })},
		{"RUNHOST_K8S_RUNTIME_CLASS", "", "runtimeClassName of run pods (e.g. `gvisor`)", str(func(c *Config) *string { return &c.K8sRuntimeClass })},
		{"RUNHOST_K8S_PULL_POLICY", "IfNotPresent", "imagePullPolicy of run pods (`Never` for images loaded onto the nodes)", oneOf(func(c *Config) *string { return &c.K8sPullPolicy }, "IfNotPresent", "Never", "Always")},
		{"RUNHOST_K8S_WORKSPACE_CLAIM", "", "PersistentVolumeClaim in the run namespace that holds the shared workspace (the volume the host sees at RUNHOST_WORKSPACE_ROOT); empty: no workspaces on Kubernetes", str(func(c *Config) *string { return &c.K8sWorkspaceClaim })},
		{"RUNHOST_K8S_CACHE_CLAIM", "", "PersistentVolumeClaim in the run namespace that keeps installed dependencies (the volume the host sees at RUNHOST_K8S_CACHE_ROOT); empty: no dependency installs on Kubernetes", str(func(c *Config) *string { return &c.K8sCacheClaim })},
		{"RUNHOST_K8S_CACHE_ROOT", "", "where the host sees the volume of RUNHOST_K8S_CACHE_CLAIM", str(func(c *Config) *string { return &c.K8sCacheRoot })},
		{"RUNHOST_K8S_EGRESS_IMAGE", "", "image holding runhost-egress at /egress for the install steps' proxy pod (default `runhost/egress:<hash of the egress binary>`)", str(func(c *Config) *string { return &c.K8sEgressImage })},
		{"RUNHOST_K8S_BUILD_REPOSITORY", "", "repository Dockerfile builds push their images to and the nodes pull them from (e.g. `registry.example.com/runhost/builds`); empty: no Dockerfile builds on Kubernetes", str(func(c *Config) *string { return &c.K8sBuildRepo })},
		{"RUNHOST_K8S_BUILD_REGISTRY_INSECURE", "false", "the build repository's registry speaks plain HTTP", boolean(func(c *Config) *bool { return &c.K8sBuildInsecure })},
		{"RUNHOST_K8S_BUILD_NAMESPACE", "runhost-builds", "namespace of the build pods (Pod Security `baseline`)", str(func(c *Config) *string { return &c.K8sBuildNamespace })},
		{"RUNHOST_K8S_BUILDER_IMAGE", "", "the builder image of build pods as the nodes pull it; empty: RUNHOST_BUILDER_IMAGE", str(func(c *Config) *string { return &c.K8sBuilderImage })},
		{"RUNHOST_K8S_BUILDER_SECCOMP", "runhost-builder.json", "seccomp profile of build pods: a Localhost profile installed on every node (`deploy/kubernetes/seccomp`), or `Unconfined`", str(func(c *Config) *string { return &c.K8sBuilderSeccomp })},
		{"RUNHOST_K8S_BUILDKIT_CONFIG", "", "buildkitd.toml file for every build (registry mirrors, plain-HTTP registries); empty: the builder image's", str(func(c *Config) *string { return &c.K8sBuildkitConfig })},
		{"RUNHOST_WORKSPACE_ROOT", "", "where this host sees the shared workspace volume (the seed's `/app/workspace`); empty disables workspaces", str(func(c *Config) *string { return &c.WorkspaceRoot })},
		{"DIND_WORKSPACE_PATH", "", "where the engine sees the same volume; bind sources use it, never a host path", str(func(c *Config) *string { return &c.WorkspaceDaemonDir })},
		{"RUNHOST_WORKSPACE_QUOTA_MB", "1024", "bytes one workspace session may hold (files API uploads are refused above it; runs get ENOSPC when the quota mode is `fs`)", integer(func(c *Config) *int64 { return &c.WorkspaceQuotaMB })},
		{"RUNHOST_WORKSPACE_QUOTA_MODE", "auto", "`fs`: every workspace session is a loop-mounted ext4 filesystem of RUNHOST_WORKSPACE_QUOTA_MB, so the quota holds while runs write (needs root, loop devices and an engine that sees the host's mounts); `off`: only the files API checks the quota; `auto`: `fs` when the host can mount and the engine shares its filesystem (DIND_WORKSPACE_PATH equals RUNHOST_WORKSPACE_ROOT), else `off` with a warning", oneOf(func(c *Config) *string { return &c.WorkspaceQuotaMode }, "auto", "fs", "off")},
		{"RUNHOST_WORKSPACE_EXEC", "false", "runs may execute files of their workspace; otherwise a session filesystem is mounted `noexec` (always `nosuid,nodev`)", boolean(func(c *Config) *bool { return &c.WorkspaceExec })},
		{"RUNHOST_WORKSPACE_FILE_BYTES", "10485760", "largest file the files API accepts in one upload", integer(func(c *Config) *int64 { return &c.WorkspaceFileBytes })},
		{"DIND_ENABLED", "false", "the engine is a Docker-in-Docker daemon: `DOCKER_HOST` must then use TLS (`tcp://...:2376` with `DOCKER_TLS_VERIFY=1`)", boolean(func(c *Config) *bool { return &c.DindEnabled })},
		{"RUNHOST_ALLOW_INSECURE_DOCKER", "false", "start even though `DIND_ENABLED=true` and `DOCKER_HOST` is plain TCP (anyone who reaches the port owns the daemon)", boolean(func(c *Config) *bool { return &c.AllowInsecureDocker })},
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
	c.DockerHost, c.DockerTLSVerify = env["DOCKER_HOST"], env["DOCKER_TLS_VERIFY"]
	c.fillComputedDefaults()
	return c, c.validate()
}

func (c *Config) fillComputedDefaults() {
	if c.MaxRuns == 0 {
		c.MaxRuns = int64(4 * runtime.NumCPU())
		if mem := totalMemoryMB(); mem > 0 && c.DefaultMemoryMB > 0 {
			c.MaxRuns = max(1, min(c.MaxRuns, mem*3/4/c.DefaultMemoryMB))
		}
	}
	if c.WorkspaceDaemonDir == "" {
		if c.DindEnabled {
			c.WorkspaceDaemonDir = "/workspaces"
		} else {
			c.WorkspaceDaemonDir = c.WorkspaceRoot
		}
	}
	if c.MaxCPUs == 0 {
		c.MaxCPUs = float64(runtime.NumCPU())
	}
	if len(c.EgressAllow) == 0 {
		c.EgressAllow = indexHosts(c.PipIndexURL, "pypi.org", "files.pythonhosted.org")
		c.EgressAllow = append(c.EgressAllow, indexHosts(c.NpmRegistry, "registry.npmjs.org")...)
	}
	if c.EgressPath == "" {
		if exe, err := os.Executable(); err == nil {
			c.EgressPath = joinDir(exe, "runhost-egress")
		}
	}
	if c.InitPath == "" {
		if exe, err := os.Executable(); err == nil {
			c.InitPath = joinDir(exe, "runhost-init")
		}
	}
}

func joinDir(file, name string) string {
	if i := strings.LastIndexByte(file, '/'); i >= 0 {
		return file[:i+1] + name
	}
	return name
}

func (c *Config) validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("RUNHOST_ADDR=%q: %w", c.Addr, err))
	}
	check(c.DefaultTimeout > 0 && c.DefaultTimeout <= c.MaxTimeout, "RUNHOST_DEFAULT_TIMEOUT_MS must be positive and at most RUNHOST_MAX_TIMEOUT_MS")
	check(c.DefaultMemoryMB >= MinMemoryMB && c.DefaultMemoryMB <= c.MaxMemoryMB, "RUNHOST_DEFAULT_MEMORY_MB must be at least %d and at most RUNHOST_MAX_MEMORY_MB", MinMemoryMB)
	check(c.DefaultCPUs > 0 && c.DefaultCPUs <= c.MaxCPUs, "RUNHOST_DEFAULT_CPUS must be positive and at most RUNHOST_MAX_CPUS")
	check(c.PidsLimit >= 8, "RUNHOST_PIDS_LIMIT must be at least 8")
	check(c.NoFileLimit >= 16, "RUNHOST_NOFILE_LIMIT must be at least 16")
	check(c.FileSizeMB > 0, "RUNHOST_FILE_SIZE_MB must be positive")
	check(c.TmpMB > 0, "RUNHOST_TMP_MB must be positive")
	check(c.RunDirMB > 0, "RUNHOST_RUN_DIR_MB must be positive")
	check(c.OutputBytes > 0, "RUNHOST_OUTPUT_LIMIT_BYTES must be positive")
	check(c.MaxBodyBytes >= 1024, "RUNHOST_MAX_BODY_BYTES must be at least 1024")
	check(c.PluginStartTimeout > 0 && c.PluginCallTimeout > 0, "plugin timeouts must be positive")
	check(c.SweepInterval >= time.Second, "RUNHOST_SWEEP_INTERVAL_MS must be at least 1000")
	check(c.InstallTimeout > 0 && c.InstallMemoryMB >= MinMemoryMB, "install timeout and memory must be positive")
	check(c.InstallDiskMB > 0 && c.InstallDiskMB < c.InstallMemoryMB, "RUNHOST_INSTALL_DISK_MB must be positive and less than RUNHOST_INSTALL_MEMORY_MB (the install's output is a tmpfs counted against its memory)")
	check(c.BuildTimeout > 0 && c.BuildMemoryMB >= MinMemoryMB, "build timeout and memory must be positive")
	check(c.DepsCacheEntries > 0 && c.DepsCacheMB > 0 && c.BuildCacheEntries > 0 && c.BuildCacheMB > 0, "cache sizes must be positive")
	check(c.MaxContextBytes > 0 && c.BuildLogBytes > 0, "RUNHOST_MAX_CONTEXT_BYTES and RUNHOST_BUILD_LOG_BYTES must be positive")
	check(c.BuildPids >= 64, "RUNHOST_BUILD_PIDS_LIMIT must be at least 64 (BuildKit's own threads count)")
	check(c.BuildDiskMB >= 64 && c.BuildImageMB > 0 && c.BuildBasesCacheMB > 0, "RUNHOST_BUILD_DISK_MB must be at least 64, RUNHOST_BUILD_IMAGE_MB and RUNHOST_BUILD_BASES_CACHE_MB positive")
	for _, t := range c.Pool {
		name, n, ok := strings.Cut(t, "=")
		count, err := strconv.Atoi(n)
		if !ok || name == "" || err != nil || count < 0 {
			errs = append(errs, fmt.Errorf("RUNHOST_POOL: %q is not runtime[:version]=count", t))
		}
	}
	for _, kv := range c.OCIRuntimes {
		if name, rt, ok := strings.Cut(kv, "="); !ok || name == "" || rt == "" {
			errs = append(errs, fmt.Errorf("RUNHOST_OCI_RUNTIMES: %q is not name=oci-runtime", kv))
		}
	}
	for _, c := range c.EgressCIDRs {
		if _, err := netip.ParsePrefix(c); err != nil {
			errs = append(errs, fmt.Errorf("RUNHOST_EGRESS_ALLOW_CIDRS: %w", err))
		}
	}
	if hosts, err := egress.CheckPatterns(c.RunEgressAllow); err != nil {
		errs = append(errs, fmt.Errorf("RUNHOST_RUN_EGRESS_ALLOW: %w", err))
	} else {
		c.RunEgressAllow = hosts
	}
	check(!c.RunEgressDefault || len(c.RunEgressAllow) > 0, "RUNHOST_RUN_EGRESS_DEFAULT=true needs RUNHOST_RUN_EGRESS_ALLOW: the hosts every run may reach")
	if c.APIKeysFile != "" {
		check(len(c.RunEgressAllow) == 0 && !c.RunEgressDefault, "RUNHOST_RUN_EGRESS_ALLOW and RUNHOST_RUN_EGRESS_DEFAULT are for a host without keys; with RUNHOST_API_KEYS_FILE grant hosts per key (egress=HOST,... and egress-default)")
		check(!c.BuildNetwork, "RUNHOST_BUILD_NETWORK is for a host without keys; with RUNHOST_API_KEYS_FILE grant it per key (build-egress)")
	}
	if c.Executor == "kubernetes" {
		check(len(c.RunEgressAllow) == 0, "RUNHOST_RUN_EGRESS_ALLOW: network for runs is not available on Kubernetes (only dependency installs reach the egress proxy)")
	}
	check(c.MaxRuns > 0 && c.QueueWait > 0, "RUNHOST_MAX_RUNS and RUNHOST_QUEUE_WAIT_MS must be positive")
	check(c.WriteTimeout > 0, "RUNHOST_WRITE_TIMEOUT_MS must be positive")
	check(c.MaxStreamBufferBytes >= 4096 && c.MaxStdinBytes > 0 && c.MaxWSMessageBytes >= 1024, "RUNHOST_MAX_STREAM_BUFFER_BYTES must be at least 4096, RUNHOST_MAX_STDIN_BYTES positive and RUNHOST_MAX_WS_MESSAGE_BYTES at least 1024")
	for _, o := range c.AllowedOrigins {
		if _, err := NormalizeOrigin(o); err != nil {
			errs = append(errs, fmt.Errorf("RUNHOST_ALLOWED_ORIGINS: %w", err))
		}
	}
	for _, h := range c.AllowedHosts {
		if h != "*" && (strings.ContainsAny(h, "/:@ *") || h == "") {
			errs = append(errs, fmt.Errorf("RUNHOST_ALLOWED_HOSTS: %q is not a host name (no scheme, port or wildcard; `*` alone turns the check off)", h))
		}
	}
	if c.APIKeysFile == "" && !c.AllowUnauthenticated {
		if host, _, err := net.SplitHostPort(c.Addr); err == nil && !isLoopback(host) {
			errs = append(errs, fmt.Errorf("RUNHOST_ADDR=%s is not a loopback address and RUNHOST_API_KEYS_FILE is not set: anyone who reaches the port could run code; set RUNHOST_API_KEYS_FILE (bin/host api-key makes a key) or RUNHOST_ALLOW_UNAUTHENTICATED=true", c.Addr))
		}
	}
	if c.WorkspaceRoot != "" {
		check(filepath.IsAbs(c.WorkspaceRoot), "RUNHOST_WORKSPACE_ROOT must be an absolute path")
		check(filepath.IsAbs(c.WorkspaceDaemonDir), "DIND_WORKSPACE_PATH must be an absolute path")
		check(c.WorkspaceQuotaMB > 0 && c.WorkspaceFileBytes > 0, "workspace quota and file size must be positive")
	}
	if c.DindEnabled && !c.AllowInsecureDocker {
		host, tls := c.DockerHost, c.DockerTLSVerify
		switch {
		case host == "" || strings.HasPrefix(host, "unix://"):
			errs = append(errs, errors.New("DIND_ENABLED=true but DOCKER_HOST does not name the DinD daemon (want tcp://dind:2376 with DOCKER_TLS_VERIFY=1)"))
		case strings.HasPrefix(host, "tcp://") && (tls == "" || tls == "0"):
			errs = append(errs, fmt.Errorf("DIND_ENABLED=true and DOCKER_HOST=%s is plain TCP: any container that reaches it owns the daemon; set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH (or RUNHOST_ALLOW_INSECURE_DOCKER=true to accept the risk)", host))
		}
	}
	if c.CABundle != "" {
		if _, err := os.Stat(c.CABundle); err != nil {
			errs = append(errs, fmt.Errorf("RUNHOST_CA_BUNDLE: %w", err))
		}
	}
	return errors.Join(errs...)
}

// indexHosts is the host (with its port, if any) of index, or defaults when
// index is empty.
func indexHosts(index string, defaults ...string) []string {
	if index == "" {
		return defaults
	}
	u, err := url.Parse(index)
	if err != nil || u.Host == "" {
		return nil
	}
	return []string{u.Host}
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

// MinMemoryMB is the smallest memory limit a run may have: below it even an
// interpreter's start-up is killed, which only confuses the caller.
const MinMemoryMB = 16

func str(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *field(c) = v; return nil }
}

func boolean(field func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("want true or false")
		}
		*field(c) = b
		return nil
	}
}

func list(field func(*Config) *[]string) func(*Config, string) error {
	return func(c *Config, v string) error {
		var out []string
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
		*field(c) = out
		return nil
	}
}

func poolList(c *Config, v string) error {
	if v == "off" {
		c.Pool = nil
		return nil
	}
	return list(func(c *Config) *[]string { return &c.Pool })(c, v)
}

func oneOf(field func(*Config) *string, allowed ...string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if !slices.Contains(allowed, v) {
			return fmt.Errorf("want one of %s", strings.Join(allowed, ", "))
		}
		*field(c) = v
		return nil
	}
}

func integer(field func(*Config) *int64) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return errors.New("want a non-negative integer")
		}
		*field(c) = n
		return nil
	}
}

func float(field func(*Config) *float64) func(*Config, string) error {
	return func(c *Config, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return errors.New("want a positive number")
		}
		*field(c) = f
		return nil
	}
}

func dur(field func(*Config) *time.Duration, unit time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return errors.New("want a non-negative integer")
		}
		*field(c) = time.Duration(n) * unit
		return nil
	}
}

func runUser(c *Config, v string) error {
	uid, gid, ok := strings.Cut(v, ":")
	u, err1 := strconv.ParseUint(uid, 10, 32)
	g, err2 := strconv.ParseUint(gid, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return errors.New("want numeric uid:gid")
	}
	if u == 0 || g == 0 {
		return errors.New("runs never use root (uid or gid 0)")
	}
	if u == egress.UID || g == egress.GID {
		return fmt.Errorf("uid and gid %d belong to the egress proxy, which no run or install step may share", egress.UID)
	}
	c.RunUser = v
	return nil
}
