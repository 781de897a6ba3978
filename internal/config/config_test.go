package config

import (
	"flag"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runhost/runhost/internal/executor"
)

func TestDefaults(t *testing.T) {
	c, err := FromEnv(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"Server.Addr", c.Server.Addr, "127.0.0.1:8080"},
		{"Server.MaxBodyBytes", c.Server.MaxBodyBytes, int64(10 << 20)},
		{"Server.WriteTimeout", c.Server.WriteTimeout, 30 * time.Second},
		{"Plugins.Dir", c.Plugins.Dir, "./bin/plugins"},
		{"Plugins.CallTimeout", c.Plugins.CallTimeout, 5 * time.Second},
		{"Limits.DefaultTimeout", c.Limits.DefaultTimeout, 10 * time.Second},
		{"Limits.DefaultMemoryBytes", c.Limits.DefaultMemoryBytes, int64(256 << 20)},
		{"Limits.MaxMemoryBytes", c.Limits.MaxMemoryBytes, int64(2048 << 20)},
		{"Limits.MaxCPUs", c.Limits.MaxCPUs, float64(runtime.NumCPU())},
		{"Limits.OutputBytes", c.Limits.OutputBytes, int64(1 << 20)},
		{"Limits.TmpBytes", c.Limits.TmpBytes, int64(64 << 20)},
		{"Policy.RunUser", c.Policy.RunUser, executor.User{UID: 1000, GID: 1000}},
		{"Policy.OCIRuntimes", len(c.Policy.OCIRuntimes), 0},
		{"Installs.DiskBytes", c.Installs.DiskBytes, int64(512 << 20)},
		{"Installs.CacheEntries", c.Installs.CacheEntries, 100},
		{"Installs.PipIndexURL", c.Installs.PipIndexURL, (*url.URL)(nil)},
		{"Egress.Network", c.Egress.Network, "bridge"},
		{"Egress.Allow", c.Egress.Allow, []string{"pypi.org", "files.pythonhosted.org", "registry.npmjs.org"}},
		{"Builds.BuilderImage", c.Builds.BuilderImage, "runhost/builder:latest"},
		{"Builds.CacheBytes", c.Builds.CacheBytes, int64(10240 << 20)},
		{"Sessions.IdleTTL", c.Sessions.IdleTTL, 10 * time.Minute},
		{"Sessions.PerKey", c.Sessions.PerKey, 4},
		{"Pool.Targets", c.Pool.Targets, []PoolTarget{{Runtime: "python", Count: 2}, {Runtime: "shell", Count: 1}, {Runtime: "node", Count: 1}}},
		{"Pool.MemoryBytes", c.Pool.MemoryBytes, int64(1536 << 20)},
		{"Workspace.QuotaMode", c.Workspace.QuotaMode, "auto"},
		{"Auth.AllowUnauthenticated", c.Auth.AllowUnauthenticated, false},
		{"Admission.QueueLength", c.Admission.QueueLength, 100},
		{"Engine.Executor", c.Engine.Executor, "docker"},
		{"Engine.SweepInterval", c.Engine.SweepInterval, time.Minute},
		{"Kubernetes.PullPolicy", c.Kubernetes.PullPolicy, "IfNotPresent"},
		{"Kubernetes.Namespace", c.Kubernetes.Namespace, "runhost-runs"},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %#v, want %#v", tt.name, tt.got, tt.want)
		}
	}
	if !strings.HasSuffix(c.Engine.InitPath, "/runhost-init") || !strings.HasSuffix(c.Egress.Path, "/runhost-egress") {
		t.Errorf("InitPath = %q, Egress.Path = %q: want the binaries next to the host's", c.Engine.InitPath, c.Egress.Path)
	}
	if c.Admission.MaxRuns < 1 {
		t.Errorf("MaxRuns = %d", c.Admission.MaxRuns)
	}
}

// Each setting is parsed once, into the type its users need.
func TestTypedValues(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := FromEnv([]string{
		"RUNHOST_POOL=python=2, python:3.13=1,shell=0",
		"RUNHOST_OCI_RUNTIMES=python=runsc, shell=runc",
		"RUNHOST_IMAGE_ALIASES=python:3.11-slim=runhost/python:3.11, node:20-alpine=runhost/node:20",
		"RUNHOST_RUN_USER=1001:1002",
		"RUNHOST_EGRESS_ALLOW_CIDRS=10.0.0.0/8,fd00::/8",
		"RUNHOST_PIP_INDEX_URL=http://index:8000/simple",
		"RUNHOST_NPM_REGISTRY=https://npm.example/",
		"RUNHOST_CA_BUNDLE=" + ca,
		"RUNHOST_ALLOWED_ORIGINS=https://App.Example:443,http://localhost:3000",
		"RUNHOST_SESSION_MAX_LIFETIME_S=90",
		"RUNHOST_DEFAULT_MEMORY_MB=128",
		"RUNHOST_K8S_RUNTIME_CLASSES=runsc=gvisor",
		"RUNHOST_MAX_CPUS=1.5",
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"Pool.Targets", c.Pool.Targets, []PoolTarget{{"python", "", 2}, {"python", "3.13", 1}, {"shell", "", 0}}},
		{"Policy.OCIRuntimes", c.Policy.OCIRuntimes, map[string]string{"python": "runsc", "shell": "runc"}},
		{"Policy.ImageAliases", c.Policy.ImageAliases, map[string]string{"python:3.11-slim": "runhost/python:3.11", "node:20-alpine": "runhost/node:20"}},
		{"Policy.RunUser", c.Policy.RunUser, executor.User{UID: 1001, GID: 1002}},
		{"Egress.CIDRs", c.Egress.CIDRs, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}},
		{"Egress.CIDRStrings", c.Egress.CIDRStrings(), []string{"10.0.0.0/8", "fd00::/8"}},
		{"Installs.PipIndexURL", c.Installs.PipIndexURL.String(), "http://index:8000/simple"},
		{"Egress.Allow from the indexes", c.Egress.Allow, []string{"index:8000", "npm.example"}},
		{"Installs.CABundle", string(c.Installs.CABundle), "PEM"},
		{"Auth.AllowedOrigins", c.Auth.AllowedOrigins, []string{"https://app.example", "http://localhost:3000"}},
		{"Sessions.MaxLifetime", c.Sessions.MaxLifetime, 90 * time.Second},
		{"Limits.DefaultMemoryBytes", c.Limits.DefaultMemoryBytes, int64(128 << 20)},
		{"Kubernetes.RuntimeClasses", c.Kubernetes.RuntimeClasses, map[string]string{"runsc": "gvisor"}},
		{"Limits.MaxCPUs", c.Limits.MaxCPUs, 1.5},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %#v, want %#v", tt.name, tt.got, tt.want)
		}
	}
	off, err := FromEnv([]string{"RUNHOST_POOL=off"})
	if err != nil || off.Pool.Targets != nil {
		t.Errorf("RUNHOST_POOL=off: %v, %v; want no targets", off.Pool.Targets, err)
	}
}

// badValues has, for every setting the host parses, values it must refuse
// at start with an error naming the setting. freeForm are the settings
// whose every value is accepted as given (names and paths used as is).
var (
	badValues = map[string][]string{
		"RUNHOST_ADDR":                        {"nope", "127.0.0.1"},
		"RUNHOST_LOG_LEVEL":                   {"loud", "INFO"},
		"RUNHOST_LOG_FORMAT":                  {"xml"},
		"RUNHOST_DEFAULT_TIMEOUT_MS":          {"-1", "abc", "1.5", "999999999"},
		"RUNHOST_MAX_TIMEOUT_MS":              {"-1", "abc", "99999999999999999999"},
		"RUNHOST_DEFAULT_MEMORY_MB":           {"-1", "abc", "8", "4096"},
		"RUNHOST_MAX_MEMORY_MB":               {"-1", "abc", "100", "9999999999999999"},
		"RUNHOST_DEFAULT_CPUS":                {"0", "-1", "abc", "Inf", "1000"},
		"RUNHOST_MAX_CPUS":                    {"0", "-1", "abc", "+Inf"},
		"RUNHOST_PIDS_LIMIT":                  {"-1", "abc", "7"},
		"RUNHOST_NOFILE_LIMIT":                {"-1", "abc", "15"},
		"RUNHOST_FILE_SIZE_MB":                {"-1", "abc", "0"},
		"RUNHOST_TMP_MB":                      {"-1", "abc", "0"},
		"RUNHOST_RUN_DIR_MB":                  {"-1", "abc", "0"},
		"RUNHOST_OUTPUT_LIMIT_BYTES":          {"-1", "abc", "0"},
		"RUNHOST_MAX_BODY_BYTES":              {"-1", "abc", "1023"},
		"RUNHOST_RUN_USER":                    {"0:0", "0:1000", "1000:0", "runner", "1000", "65532:1000", "1000:65532"},
		"RUNHOST_PLUGIN_WATCH":                {"yes", "2"},
		"RUNHOST_PLUGIN_START_TIMEOUT_MS":     {"-1", "abc", "0"},
		"RUNHOST_PLUGIN_CALL_TIMEOUT_MS":      {"-1", "abc", "0"},
		"RUNHOST_SHUTDOWN_TIMEOUT_MS":         {"-1", "abc"},
		"RUNHOST_SWEEP_INTERVAL_MS":           {"-1", "abc", "999"},
		"RUNHOST_ALLOW_INSTALL_NETWORK":       {"yes"},
		"RUNHOST_EGRESS_ALLOW_CIDRS":          {"10.0.0.0", "nope", "10.0.0.0/33"},
		"RUNHOST_RUN_EGRESS_ALLOW":            {"10.0.0.1", "localhost", "*", "*.com", "*.co.uk", "api.example.com:1-100", "metadata.internal", "intranet"},
		"RUNHOST_RUN_EGRESS_DEFAULT":          {"maybe"},
		"RUNHOST_PIP_INDEX_URL":               {"pypi.org/simple", "ftp://index/simple", "http://", "%zz"},
		"RUNHOST_NPM_REGISTRY":                {"registry.npmjs.org", "file:///npm"},
		"RUNHOST_CA_BUNDLE":                   {"/nonexistent/ca.pem"},
		"RUNHOST_INSTALL_TIMEOUT_MS":          {"-1", "abc", "0"},
		"RUNHOST_INSTALL_MEMORY_MB":           {"-1", "abc", "8", "256"},
		"RUNHOST_INSTALL_DISK_MB":             {"-1", "abc", "0", "2048"},
		"RUNHOST_DEPS_CACHE_ENTRIES":          {"-1", "abc", "0"},
		"RUNHOST_DEPS_CACHE_MB":               {"-1", "abc", "0"},
		"RUNHOST_BUILD_TIMEOUT_MS":            {"-1", "abc", "0"},
		"RUNHOST_BUILD_MEMORY_MB":             {"-1", "abc", "8"},
		"RUNHOST_BUILD_NETWORK":               {"maybe"},
		"RUNHOST_BUILD_PIDS_LIMIT":            {"-1", "abc", "63"},
		"RUNHOST_BUILD_DISK_MB":               {"-1", "abc", "63"},
		"RUNHOST_BUILD_IMAGE_MB":              {"-1", "abc", "0"},
		"RUNHOST_BUILD_BASES_CACHE_MB":        {"-1", "abc", "0"},
		"RUNHOST_MAX_CONTEXT_BYTES":           {"-1", "abc", "0"},
		"RUNHOST_BUILD_LOG_BYTES":             {"-1", "abc", "0"},
		"RUNHOST_BUILD_CACHE_ENTRIES":         {"-1", "abc", "0"},
		"RUNHOST_BUILD_CACHE_MB":              {"-1", "abc", "0"},
		"RUNHOST_OCI_RUNTIMES":                {"python", "=runsc", "python=", "python=runsc,python=runc"},
		"RUNHOST_IMAGE_ALIASES":               {"python:3.11-slim", "=runhost/python:3.11", "python:3.11-slim=", "a:1=b:1,a:1=c:1", "python:3.11-slim=0123456789ab", "Bad Name=runhost/python:3.11"},
		"RUNHOST_SESSION_IDLE_TTL_S":          {"-1", "abc", "99999999999999999"},
		"RUNHOST_SESSION_MAX_LIFETIME_S":      {"-1", "abc"},
		"RUNHOST_SESSIONS_PER_KEY":            {"-1", "abc"},
		"RUNHOST_MAX_SESSIONS":                {"-1", "abc"},
		"RUNHOST_INTERPRETER_GRACE_MS":        {"-1", "abc", "0"},
		"RUNHOST_INTERPRETER_RESULT_MB":       {"-1", "abc", "0"},
		"RUNHOST_POOL":                        {"python", "=2", "python=-1", "python:=1", "python=x", "python=1.5"},
		"RUNHOST_POOL_MEMORY_MB":              {"-1", "abc"},
		"RUNHOST_SELFTEST_ON_START":           {"no way"},
		"RUNHOST_ALLOW_UNAUTHENTICATED":       {"yes"},
		"RUNHOST_MAX_RUNS":                    {"-1", "abc"},
		"RUNHOST_QUEUE_LENGTH":                {"-1", "abc"},
		"RUNHOST_QUEUE_WAIT_MS":               {"-1", "abc", "0"},
		"RUNHOST_KEY_RATE":                    {"0", "-1", "abc"},
		"RUNHOST_KEY_BURST":                   {"-1", "abc"},
		"RUNHOST_KEY_MAX_RUNS":                {"-1", "abc"},
		"RUNHOST_ALLOWED_ORIGINS":             {"app.example", "https://app.example/path", "https://*.example", "ftp://app.example", "null"},
		"RUNHOST_ALLOWED_HOSTS":               {"http://runhost", "runhost:8080", "*.example", "user@runhost"},
		"RUNHOST_PISTON_ALLOW_TEXT_PLAIN":     {"yes"},
		"RUNHOST_WRITE_TIMEOUT_MS":            {"-1", "abc", "0"},
		"RUNHOST_MAX_STREAM_BUFFER_BYTES":     {"-1", "abc", "10"},
		"RUNHOST_MAX_STDIN_BYTES":             {"-1", "abc", "0"},
		"RUNHOST_MAX_WS_MESSAGE_BYTES":        {"-1", "abc", "1023"},
		"RUNHOST_EXECUTOR":                    {"podman", "Docker"},
		"RUNHOST_K8S_PULL_POLICY":             {"sometimes", "never"},
		"RUNHOST_K8S_RUNTIME_CLASSES":         {"runsc", "runsc=", "=gvisor", "runsc=gvisor,runsc=kata"},
		"RUNHOST_K8S_BUILD_REGISTRY_INSECURE": {"yes"},
		"RUNHOST_K8S_BUILDKIT_CONFIG":         {"/nonexistent/buildkitd.toml"},
		"RUNHOST_WORKSPACE_ROOT":              {"relative/dir"},
		"RUNHOST_WORKSPACE_QUOTA_MB":          {"-1", "abc"},
		"RUNHOST_WORKSPACE_QUOTA_MODE":        {"xfs"},
		"RUNHOST_WORKSPACE_EXEC":              {"yes"},
		"RUNHOST_WORKSPACE_FILE_BYTES":        {"-1", "abc"},
		"DIND_ENABLED":                        {"yes"},
		"RUNHOST_ALLOW_INSECURE_DOCKER":       {"yes"},
	}
	freeForm = []string{
		"RUNHOST_PLUGIN_DIR", "RUNHOST_INIT_PATH", "RUNHOST_PLUGIN_CHECKSUMS", "RUNHOST_INSTALL_NETWORK",
		"RUNHOST_EGRESS_ALLOW", "RUNHOST_EGRESS_PATH", "RUNHOST_POLICY", "RUNHOST_ALLOWED_IMAGES",
		"RUNHOST_BUILDER_IMAGE", "RUNHOST_OCI_RUNTIME", "RUNHOST_API_KEYS_FILE", "RUNHOST_K8S_KUBECONFIG",
		"RUNHOST_K8S_NAMESPACE", "RUNHOST_K8S_INIT_IMAGE", "RUNHOST_K8S_RUNTIME_CLASS", "RUNHOST_K8S_WORKSPACE_CLAIM",
		"RUNHOST_K8S_CACHE_CLAIM", "RUNHOST_K8S_CACHE_ROOT", "RUNHOST_K8S_EGRESS_IMAGE", "RUNHOST_K8S_BUILD_REPOSITORY",
		"RUNHOST_K8S_BUILD_NAMESPACE", "RUNHOST_K8S_BUILDER_IMAGE", "RUNHOST_K8S_BUILDER_SECCOMP", "DIND_WORKSPACE_PATH",
	}
)

// Every setting the host reads is either parsed (and has bad values in
// the table above) or taken as given: a new setting must say which.
func TestEverySettingIsParsedOrFreeForm(t *testing.T) {
	for _, s := range Settings() {
		_, parsed := badValues[s.Name]
		free := slices.Contains(freeForm, s.Name)
		switch {
		case s.set == nil && (parsed || free):
			t.Errorf("%s is not read by the host, yet listed", s.Name)
		case s.set != nil && parsed == free:
			t.Errorf("%s: list it in badValues (with values the host must refuse) or in freeForm", s.Name)
		}
	}
}

func TestBadValues(t *testing.T) {
	for name, values := range badValues {
		for _, v := range values {
			t.Run(name+"="+v, func(t *testing.T) {
				_, err := FromEnv([]string{name + "=" + v})
				if err == nil || !strings.Contains(err.Error(), name) {
					t.Fatalf("got %v, want an error naming %s", err, name)
				}
			})
		}
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		env  string
		want string
	}{
		{"RUNHOST_TIMEOUT=5", "unknown setting RUNHOST_TIMEOUT"},
		{"RUNHOST_MAX_TIMEOUT_MS=abc", "RUNHOST_MAX_TIMEOUT_MS"},
		{"RUNHOST_DEFAULT_TIMEOUT_MS=999999", "at most RUNHOST_MAX_TIMEOUT_MS"},
		{"RUNHOST_RUN_USER=0:0", "never use root"},
		{"RUNHOST_RUN_USER=runner", "numeric"},
		{"RUNHOST_RUN_USER=65532:1000", "egress proxy"},
		{"RUNHOST_RUN_USER=1000:65532", "egress proxy"},
		{"RUNHOST_INSTALL_DISK_MB=2048", "less than RUNHOST_INSTALL_MEMORY_MB"},
		{"RUNHOST_INSTALL_DISK_MB=0", "RUNHOST_INSTALL_DISK_MB must be positive"},
		{"RUNHOST_WORKSPACE_QUOTA_MODE=xfs", "want one of"},
		{"RUNHOST_LOG_LEVEL=loud", "want one of"},
		{"RUNHOST_ADDR=nope", "RUNHOST_ADDR"},
		{"RUNHOST_DEFAULT_CPUS=-1", "positive"},
		{"RUNHOST_WORKSPACE_ROOT=relative/dir", "absolute"},
		{"RUNHOST_ADDR=0.0.0.0:8080", "not a loopback address"},
		{"RUNHOST_ADDR=:8080", "not a loopback address"},
		{"RUNHOST_ALLOWED_ORIGINS=app.example", "not an origin"},
		{"RUNHOST_ALLOWED_ORIGINS=https://app.example/path", "not an origin"},
		{"RUNHOST_ALLOWED_ORIGINS=https://*.example", "not an origin"},
		{"RUNHOST_ALLOWED_ORIGINS=ftp://app.example", "not an origin"},
		{"RUNHOST_ALLOWED_HOSTS=http://runhost", "not a host name"},
		{"RUNHOST_ALLOWED_HOSTS=runhost:8080", "not a host name"},
		{"RUNHOST_ALLOWED_HOSTS=*.example", "not a host name"},
		{"RUNHOST_WRITE_TIMEOUT_MS=0", "RUNHOST_WRITE_TIMEOUT_MS"},
		{"RUNHOST_MAX_STREAM_BUFFER_BYTES=10", "RUNHOST_MAX_STREAM_BUFFER_BYTES"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			_, err := FromEnv([]string{tt.env})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func TestNormalizeOrigin(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://App.Example", "https://app.example"},
		{"https://app.example:443", "https://app.example"},
		{"http://app.example:80/", "http://app.example"},
		{"http://localhost:8080", "http://localhost:8080"},
		{"http://[::1]:8080", "http://[::1]:8080"},
		{"null", ""},
		{"https://user@app.example", ""},
		{"https://app.example?x=1", ""},
	}
	for _, tt := range tests {
		got, err := NormalizeOrigin(tt.in)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("NormalizeOrigin(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestDindNeedsTLS(t *testing.T) {
	tests := []struct {
		env  []string
		want string // empty: accepted
	}{
		{[]string{"DIND_ENABLED=true"}, "does not name the DinD daemon"},
		{[]string{"DIND_ENABLED=true", "DOCKER_HOST=tcp://dind:2375"}, "plain TCP"},
		{[]string{"DIND_ENABLED=true", "DOCKER_HOST=tcp://dind:2375", "RUNHOST_ALLOW_INSECURE_DOCKER=true"}, ""},
		{[]string{"DIND_ENABLED=true", "DOCKER_HOST=tcp://dind:2376", "DOCKER_TLS_VERIFY=1"}, ""},
		{[]string{"DOCKER_HOST=tcp://somewhere:2375"}, ""},
	}
	for _, tt := range tests {
		c, err := FromEnv(tt.env)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%v: %v", tt.env, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%v: got %v, want an error about %q", tt.env, err, tt.want)
		case tt.want == "" && c.Engine.DindEnabled && c.Workspace.DaemonDir != "/workspaces":
			t.Errorf("%v: DIND_WORKSPACE_PATH defaults to %q, want /workspaces", tt.env, c.Workspace.DaemonDir)
		}
	}
	c, _ := FromEnv([]string{"RUNHOST_WORKSPACE_ROOT=/srv/ws"})
	if c.Workspace.DaemonDir != "/srv/ws" {
		t.Errorf("with a local engine the daemon sees the workspace where the host does; got %q", c.Workspace.DaemonDir)
	}
}

// A bare host serves no workspace and creates no directory; `off` turns a
// configured one off (the compose files and make run set one).
func TestWorkspaceRootOff(t *testing.T) {
	for _, env := range [][]string{nil, {"RUNHOST_WORKSPACE_ROOT="}, {"RUNHOST_WORKSPACE_ROOT=off"}} {
		c, err := FromEnv(env)
		if err != nil || c.Workspace.Root != "" {
			t.Errorf("%v: root %q, %v; want no workspace", env, c.Workspace.Root, err)
		}
	}
	if c, err := FromEnv([]string{"RUNHOST_WORKSPACE_ROOT=/srv/ws"}); err != nil || c.Workspace.Root != "/srv/ws" {
		t.Errorf("root %q, %v", c.Workspace.Root, err)
	}
}

// Installs trust what the machine trusts unless told otherwise: the
// first of the distributions' bundles that exists, RUNHOST_CA_BUNDLE's
// file, or none.
func TestCABundle(t *testing.T) {
	var machine string
	for _, f := range MachineCABundles {
		if _, err := os.Stat(f); err == nil {
			machine = f
			break
		}
	}
	if machine == "" {
		t.Fatalf("this machine has none of %v", MachineCABundles)
	}
	own := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(own, []byte("PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ env, wantFile string }{
		{"", machine},
		{own, own},
		{"none", ""},
	} {
		c, err := FromEnv([]string{"RUNHOST_CA_BUNDLE=" + tc.env})
		if err != nil {
			t.Fatal(err)
		}
		if c.Installs.CABundleFile != tc.wantFile || (tc.wantFile == "") != (len(c.Installs.CABundle) == 0) {
			t.Errorf("RUNHOST_CA_BUNDLE=%q: file %q (%d bytes), want %q", tc.env, c.Installs.CABundleFile, len(c.Installs.CABundle), tc.wantFile)
		}
	}
}

func TestOverrides(t *testing.T) {
	c, err := FromEnv([]string{"RUNHOST_ADDR=0.0.0.0:9000", "RUNHOST_ALLOW_UNAUTHENTICATED=true", "RUNHOST_MAX_CPUS=1.5", "RUNHOST_OUTPUT_LIMIT_BYTES=10", "UNRELATED=1"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Addr != "0.0.0.0:9000" || c.Limits.MaxCPUs != 1.5 || c.Limits.OutputBytes != 10 {
		t.Errorf("%+v", c)
	}
}

// On Kubernetes, every OCI runtime the policy may choose must map to a
// RuntimeClass, or the host does not start: pods have no OCI runtime of
// their own, and the executor used to drop the choice silently.
func TestKubernetesNeedsARuntimeClassPerOCIRuntime(t *testing.T) {
	k8s := "RUNHOST_EXECUTOR=kubernetes"
	tests := []struct {
		env  []string
		want []string // parts of the error; none: accepted
	}{
		{env: []string{k8s}},
		{env: []string{k8s, "RUNHOST_K8S_RUNTIME_CLASS=gvisor"}},
		{env: []string{k8s, "RUNHOST_OCI_RUNTIME=runsc"}, want: []string{"RUNHOST_OCI_RUNTIME chooses", `"runsc"`, "RUNHOST_K8S_RUNTIME_CLASSES=runsc="}},
		{env: []string{k8s, "RUNHOST_OCI_RUNTIME=runsc", "RUNHOST_K8S_RUNTIME_CLASS=gvisor"}, want: []string{"RUNHOST_OCI_RUNTIME chooses"}},
		{env: []string{k8s, "RUNHOST_OCI_RUNTIME=runsc", "RUNHOST_K8S_RUNTIME_CLASSES=runsc=gvisor"}},
		{env: []string{k8s, "RUNHOST_OCI_RUNTIMES=python=runsc,shell=runc", "RUNHOST_K8S_RUNTIME_CLASSES=runsc=gvisor"}, want: []string{"RUNHOST_OCI_RUNTIMES (shell)", `"runc"`}},
		{env: []string{k8s, "RUNHOST_OCI_RUNTIME=runsc", "RUNHOST_OCI_RUNTIMES=python=runsc"}, want: []string{"RUNHOST_OCI_RUNTIME, RUNHOST_OCI_RUNTIMES (python) chooses"}},
		{env: []string{k8s, "RUNHOST_OCI_RUNTIMES=python=runsc,node=kata", "RUNHOST_K8S_RUNTIME_CLASSES=runsc=gvisor,kata=kata-qemu"}},
		// Docker runs OCI runtimes itself; the mapping is not needed there.
		{env: []string{"RUNHOST_OCI_RUNTIME=runsc", "RUNHOST_OCI_RUNTIMES=shell=runc"}},
	}
	for _, tt := range tests {
		_, err := FromEnv(tt.env)
		switch {
		case len(tt.want) == 0 && err != nil:
			t.Errorf("%v: %v", tt.env, err)
		case len(tt.want) > 0 && err == nil:
			t.Errorf("%v: accepted, want an error", tt.env)
		case err != nil:
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v: %v; want it to say %q", tt.env, err, w)
				}
			}
		}
	}
}

var update = flag.Bool("update", false, "rewrite README.md's configuration table")

// The README's configuration table is generated from Settings; regenerate it
// with `go test ./internal/config -run TestREADME -update`.
func TestREADMEConfigurationTable(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "README.md")
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const start, end = "<!-- config:start -->\n", "<!-- config:end -->"
	i, j := strings.Index(string(readme), start), strings.Index(string(readme), end)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q ... %q markers", start, end)
	}
	want := MarkdownTable()
	got := string(readme[i+len(start) : j])
	if got == want {
		return
	}
	if *update {
		out := string(readme[:i+len(start)]) + want + string(readme[j:])
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's configuration table is out of date; run: go test ./internal/config -run TestREADME -update")
}

// TestRunEgress: a keyless host's run grant, checked with what it needs
// and refused where keys or Kubernetes decide instead.
func TestRunEgress(t *testing.T) {
	tests := []struct {
		env  []string
		want string // empty: accepted
	}{
		{[]string{"RUNHOST_RUN_EGRESS_ALLOW=api.github.com,*.example.org:443"}, ""},
		{[]string{"RUNHOST_RUN_EGRESS_ALLOW=api.github.com", "RUNHOST_RUN_EGRESS_DEFAULT=true"}, ""},
		{[]string{"RUNHOST_RUN_EGRESS_DEFAULT=true"}, "needs RUNHOST_RUN_EGRESS_ALLOW"},
		{[]string{"RUNHOST_API_KEYS_FILE=/etc/keys", "RUNHOST_RUN_EGRESS_ALLOW=api.github.com"}, "grant hosts per key"},
		{[]string{"RUNHOST_API_KEYS_FILE=/etc/keys", "RUNHOST_BUILD_NETWORK=true"}, "build-egress"},
		{[]string{"RUNHOST_EXECUTOR=kubernetes", "RUNHOST_RUN_EGRESS_ALLOW=api.github.com"}, "not available on Kubernetes"},
	}
	for _, tt := range tests {
		c, err := FromEnv(tt.env)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%v: %v", tt.env, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%v: got %v, want an error about %q", tt.env, err, tt.want)
		case tt.want == "" && len(c.Egress.RunAllow) == 0:
			t.Errorf("%v: no run grant parsed", tt.env)
		}
	}
}
