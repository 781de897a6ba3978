package config

import (
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	c, err := FromEnv(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8080" || c.PluginDir != "./bin/plugins" || c.DefaultTimeout != 10*time.Second ||
		c.MaxMemoryMB != 2048 || c.OutputBytes != 1<<20 || c.MaxBodyBytes != 10<<20 || c.RunUser != "1000:1000" {
		t.Errorf("defaults: %+v", c)
	}
	if c.MaxCPUs != float64(runtime.NumCPU()) {
		t.Errorf("MaxCPUs = %g, want the number of cores", c.MaxCPUs)
	}
	if !strings.HasSuffix(c.InitPath, "/runhost-init") {
		t.Errorf("InitPath = %q", c.InitPath)
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
		case tt.want == "" && c.DindEnabled && c.WorkspaceDaemonDir != "/workspaces":
			t.Errorf("%v: DIND_WORKSPACE_PATH defaults to %q, want /workspaces", tt.env, c.WorkspaceDaemonDir)
		}
	}
	c, _ := FromEnv([]string{"RUNHOST_WORKSPACE_ROOT=/srv/ws"})
	if c.WorkspaceDaemonDir != "/srv/ws" {
		t.Errorf("with a local engine the daemon sees the workspace where the host does; got %q", c.WorkspaceDaemonDir)
	}
}

func TestOverrides(t *testing.T) {
	c, err := FromEnv([]string{"RUNHOST_ADDR=0.0.0.0:9000", "RUNHOST_ALLOW_UNAUTHENTICATED=true", "RUNHOST_MAX_CPUS=1.5", "RUNHOST_OUTPUT_LIMIT_BYTES=10", "UNRELATED=1"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "0.0.0.0:9000" || c.MaxCPUs != 1.5 || c.OutputBytes != 10 {
		t.Errorf("%+v", c)
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
