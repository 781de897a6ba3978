package deploytest

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

const (
	baseFile = "docker-compose.yml"
	dindFile = "docker-compose.dind.yml"

	workspaceVolume = "runhost-workspace"
	certsVolume     = "runhost-dind-certs"
	dockerSocket    = "/var/run/docker.sock"
)

// envCase is the environment compose would interpolate the files with (what
// the shell and .env give it).
type envCase struct {
	name string
	env  map[string]string
	// wantWorkspaceDir is the machine's directory behind the workspace
	// volume: the volume's device, and DIND_WORKSPACE_PATH with the
	// machine's engine.
	wantWorkspaceDir string
	wantDindCPUs     float32
	wantDindMemory   int64
}

var envCases = []envCase{
	{
		name:             "defaults",
		env:              map[string]string{"PWD": "/srv/checkout"},
		wantWorkspaceDir: "/srv/checkout/workspace",
		wantDindCPUs:     4,
		wantDindMemory:   8 << 30,
	},
	{
		name: "everything set",
		env: map[string]string{
			"PWD":                "/srv/checkout",
			"WORKSPACE_HOST_DIR": "/data/runhost-workspace",
			"DIND_CPUS":          "8",
			"DIND_MEMORY":        "16g",
			"DOCKER_BUILDKIT":    "0",
			"KEYS_HOST_DIR":      "/etc/runhost-keys",
		},
		wantWorkspaceDir: "/data/runhost-workspace",
		wantDindCPUs:     8,
		wantDindMemory:   16 << 30,
	},
}

// repoRoot is the repository's root directory, where the compose files are.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found from the test's directory: %v", err)
	}
	return root
}

// loadProject loads and merges files, in order, the way
// `docker compose -f a -f b config` does, with env as the only environment
// (hermetic: neither the test's environment nor a developer's .env is read).
func loadProject(t *testing.T, env map[string]string, files ...string) *types.Project {
	t.Helper()
	root := repoRoot(t)
	details := types.ConfigDetails{WorkingDir: root, Environment: types.Mapping(env)}
	for _, f := range files {
		details.ConfigFiles = append(details.ConfigFiles, types.ConfigFile{Filename: filepath.Join(root, f)})
	}
	project, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		// env_file (.env) would be read from the working tree; the
		// `environment:` entries asserted here win over it anyway.
		o.SkipResolveEnvironment = true
	})
	if err != nil {
		t.Fatalf("load %s: %v", strings.Join(files, " + "), err)
	}
	return project
}

// service returns the named service or fails.
func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("project has no service %q (services: %v)", name, p.ServiceNames())
	}
	return s
}

// envValue is a service's environment variable and whether it is set.
func envValue(s types.ServiceConfig, name string) (string, bool) {
	v, ok := s.Environment[name]
	if !ok || v == nil {
		return "", false
	}
	return *v, true
}

// mountAt returns the service's mount whose target is target.
func mountAt(s types.ServiceConfig, target string) (types.ServiceVolumeConfig, bool) {
	for _, v := range s.Volumes {
		if v.Target == target {
			return v, true
		}
	}
	return types.ServiceVolumeConfig{}, false
}

func sortedNames(p *types.Project) []string {
	names := p.ServiceNames()
	sort.Strings(names)
	return names
}

func wantEnv(t *testing.T, s types.ServiceConfig, want map[string]string) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		got, ok := envValue(s, k)
		switch {
		case !ok:
			t.Errorf("service %s: %s is not set, want %q", s.Name, k, want[k])
		case got != want[k]:
			t.Errorf("service %s: %s=%q, want %q", s.Name, k, got, want[k])
		}
	}
}

// wantWorkspaceMount checks that s mounts the workspace named volume at target.
func wantWorkspaceMount(t *testing.T, p *types.Project, s types.ServiceConfig, target string) {
	t.Helper()
	m, ok := mountAt(s, target)
	if !ok {
		t.Errorf("service %s does not mount anything at %s; want the named volume %s", s.Name, target, workspaceVolume)
		return
	}
	if m.Type != types.VolumeTypeVolume || m.Source != workspaceVolume {
		t.Errorf("service %s: %s is a %s of %q; want the named volume %s, the one every service shares",
			s.Name, target, m.Type, m.Source, workspaceVolume)
	}
	if m.ReadOnly {
		t.Errorf("service %s: the workspace at %s is read-only; it must be writable", s.Name, target)
	}
	if _, ok := p.Volumes[workspaceVolume]; !ok {
		t.Errorf("the project declares no volume %s", workspaceVolume)
	}
}

// wantWorkspaceVolume checks that the workspace volume is the machine's
// directory dir (a local bind volume), under its fixed name.
func wantWorkspaceVolume(t *testing.T, p *types.Project, dir string) {
	t.Helper()
	v, ok := p.Volumes[workspaceVolume]
	if !ok {
		t.Fatalf("the project declares no volume %s", workspaceVolume)
	}
	if v.Name != workspaceVolume {
		t.Errorf("volume %s is named %q; want %q (the docs inspect it by that name)", workspaceVolume, v.Name, workspaceVolume)
	}
	want := map[string]string{"type": "none", "o": "bind", "device": dir}
	if v.Driver != "local" {
		t.Errorf("volume %s: driver %q, want local (a bind of the machine's directory)", workspaceVolume, v.Driver)
	}
	for k, w := range want {
		if got := v.DriverOpts[k]; got != w {
			t.Errorf("volume %s: driver_opts.%s=%q, want %q", workspaceVolume, k, got, w)
		}
	}
}

func TestBaseProject(t *testing.T) {
	for _, tc := range envCases {
		t.Run(tc.name, func(t *testing.T) {
			p := loadProject(t, tc.env, baseFile)
			if got := sortedNames(p); !slices.Equal(got, []string{"runhost"}) {
				t.Errorf("services %v, want only runhost", got)
			}
			host := service(t, p, "runhost")
			if host.Privileged {
				t.Errorf("runhost is privileged; nothing in the base deployment may be")
			}
			if m, ok := mountAt(host, dockerSocket); !ok || m.Type != types.VolumeTypeBind || m.Source != dockerSocket {
				t.Errorf("runhost must bind the machine's %s (the local engine); got %+v (present: %v)", dockerSocket, m, ok)
			}
			wantWorkspaceMount(t, p, host, "/app/workspace")
			wantWorkspaceVolume(t, p, tc.wantWorkspaceDir)
			// Bind sources are resolved by the engine, on the machine: with
			// the machine's engine, DIND_WORKSPACE_PATH is the machine's
			// directory behind /app/workspace, never /app/workspace itself.
			wantEnv(t, host, map[string]string{
				"RUNHOST_WORKSPACE_ROOT": "/app/workspace",
				"DIND_WORKSPACE_PATH":    tc.wantWorkspaceDir,
				"DIND_ENABLED":           "false",
				"DOCKER_HOST":            "unix://" + dockerSocket,
				"RUNHOST_ADDR":           "0.0.0.0:8080",
			})
			if dir, _ := envValue(host, "DIND_WORKSPACE_PATH"); !filepath.IsAbs(dir) {
				t.Errorf("runhost: DIND_WORKSPACE_PATH=%q is not absolute; the host refuses it", dir)
			}
			wantPorts(t, host, "127.0.0.1:8080->8080")
			wantKeysMount(t, p, tc.env)
		})
	}
}

// wantKeysMount checks that runhost gets the keys directory (KEYS_HOST_DIR)
// read-only at /etc/runhost/keys, where RUNHOST_API_KEYS_FILE points when
// .env turns keys on (docs/setup.md, "Keys and tenancy").
func wantKeysMount(t *testing.T, p *types.Project, env map[string]string) {
	t.Helper()
	m, ok := mountAt(service(t, p, "runhost"), "/etc/runhost/keys")
	want := filepath.Join(repoRoot(t), "deploy", "keys")
	if dir, set := env["KEYS_HOST_DIR"]; set {
		want = dir
	}
	if !ok || m.Type != types.VolumeTypeBind || m.Source != want || !m.ReadOnly {
		t.Errorf("runhost must mount %s read-only at /etc/runhost/keys; got %+v (present: %v)", want, m, ok)
	}
}

// wantPorts checks a service's published ports, as hostIP:published->target.
func wantPorts(t *testing.T, s types.ServiceConfig, want ...string) {
	t.Helper()
	var got []string
	for _, port := range s.Ports {
		got = append(got, port.HostIP+":"+port.Published+"->"+itoa(port.Target))
	}
	if !slices.Equal(got, want) {
		t.Errorf("service %s publishes %v, want %v", s.Name, got, want)
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

func TestDinDProject(t *testing.T) {
	checks := []struct {
		name  string
		check func(t *testing.T, p *types.Project, tc envCase)
	}{
		{"services", func(t *testing.T, p *types.Project, _ envCase) {
			if got, want := sortedNames(p), []string{"code-server", "dind", "runhost"}; !slices.Equal(got, want) {
				t.Errorf("services %v, want %v", got, want)
			}
		}},
		{"only dind is privileged", func(t *testing.T, p *types.Project, _ envCase) {
			if !service(t, p, "dind").Privileged {
				t.Errorf("dind is not privileged; the standard deployment runs the DinD daemon with privileged: true")
			}
			for _, name := range sortedNames(p) {
				if s := p.Services[name]; name != "dind" && s.Privileged {
					t.Errorf("service %s is privileged; only dind may be", name)
				}
			}
		}},
		{"no daemon port is published", func(t *testing.T, p *types.Project, _ envCase) {
			if ports := service(t, p, "dind").Ports; len(ports) != 0 {
				t.Errorf("dind publishes %+v; the DinD daemon must publish nothing", ports)
			}
			for _, name := range sortedNames(p) {
				for _, port := range p.Services[name].Ports {
					for _, daemon := range []string{"2375", "2376"} {
						if port.Published == daemon || itoa(port.Target) == daemon {
							t.Errorf("service %s publishes %s:%s->%d: no Docker daemon port may be published", name, port.HostIP, port.Published, port.Target)
						}
					}
				}
			}
		}},
		{"the keys directory is mounted read-only", func(t *testing.T, p *types.Project, tc envCase) {
			wantKeysMount(t, p, tc.env)
		}},
		{"published ports are loopback only", func(t *testing.T, p *types.Project, _ envCase) {
			wantPorts(t, service(t, p, "runhost"), "127.0.0.1:8080->8080")
			wantPorts(t, service(t, p, "code-server"), "127.0.0.1:8443->8080")
		}},
		{"one workspace volume everywhere", func(t *testing.T, p *types.Project, tc envCase) {
			wantWorkspaceMount(t, p, service(t, p, "runhost"), "/app/workspace")
			wantWorkspaceMount(t, p, service(t, p, "code-server"), "/home/coder/workspace")
			wantWorkspaceMount(t, p, service(t, p, "dind"), "/workspaces")
			wantWorkspaceVolume(t, p, tc.wantWorkspaceDir)
		}},
		{"runhost reaches dind over TLS", func(t *testing.T, p *types.Project, _ envCase) {
			host := service(t, p, "runhost")
			wantEnv(t, host, map[string]string{
				"DOCKER_HOST":            "tcp://dind:2376",
				"DOCKER_TLS_VERIFY":      "1",
				"DOCKER_CERT_PATH":       "/certs/client",
				"DIND_ENABLED":           "true",
				"RUNHOST_WORKSPACE_ROOT": "/app/workspace",
				"DIND_WORKSPACE_PATH":    "/workspaces",
			})
			if v, ok := envValue(host, "RUNHOST_ALLOW_INSECURE_DOCKER"); ok && v != "" && v != "false" {
				t.Errorf("runhost: RUNHOST_ALLOW_INSECURE_DOCKER=%q; the DinD deployment must not accept a plain-TCP daemon", v)
			}
			dep, ok := host.DependsOn["dind"]
			if !ok {
				t.Errorf("runhost does not depend on dind")
			} else if dep.Condition != types.ServiceConditionHealthy {
				t.Errorf("runhost depends on dind with condition %q, want %q (the daemon answers over TLS)", dep.Condition, types.ServiceConditionHealthy)
			}
		}},
		{"code-server reaches dind over TLS", func(t *testing.T, p *types.Project, tc envCase) {
			buildkit := "1"
			if v, ok := tc.env["DOCKER_BUILDKIT"]; ok {
				buildkit = v
			}
			wantEnv(t, service(t, p, "code-server"), map[string]string{
				"DOCKER_HOST":       "tcp://dind:2376",
				"DOCKER_TLS_VERIFY": "1",
				"DOCKER_CERT_PATH":  "/certs/client",
				"DOCKER_BUILDKIT":   buildkit,
			})
		}},
		{"no docker socket", func(t *testing.T, p *types.Project, _ envCase) {
			for _, name := range sortedNames(p) {
				for _, v := range p.Services[name].Volumes {
					if v.Source == dockerSocket || v.Target == dockerSocket || strings.HasSuffix(v.Source, "docker.sock") {
						t.Errorf("service %s mounts %s at %s: nothing in the DinD deployment may reach the machine's engine", name, v.Source, v.Target)
					}
				}
			}
		}},
		{"certificates only where needed", func(t *testing.T, p *types.Project, _ envCase) {
			want := map[string]bool{"dind": false, "runhost": true, "code-server": true} // service -> read-only
			for _, name := range sortedNames(p) {
				s := p.Services[name]
				var mounts []types.ServiceVolumeConfig
				for _, v := range s.Volumes {
					if v.Type == types.VolumeTypeVolume && v.Source == certsVolume {
						mounts = append(mounts, v)
					}
				}
				readOnly, allowed := want[name]
				switch {
				case !allowed && len(mounts) > 0:
					t.Errorf("service %s mounts %s; only dind, runhost and code-server may (it holds the daemon's client key)", name, certsVolume)
				case allowed && len(mounts) != 1:
					t.Errorf("service %s mounts %s %d times, want once", name, certsVolume, len(mounts))
				case allowed && mounts[0].Target != "/certs":
					t.Errorf("service %s mounts %s at %s, want /certs", name, certsVolume, mounts[0].Target)
				case allowed && mounts[0].ReadOnly != readOnly:
					t.Errorf("service %s mounts %s with read-only=%v, want %v", name, certsVolume, mounts[0].ReadOnly, readOnly)
				}
			}
		}},
		{"dind is on the internal network only", func(t *testing.T, p *types.Project, _ envCase) {
			internal, ok := p.Networks["runhost-internal"]
			if !ok {
				t.Fatalf("the project declares no network runhost-internal")
			}
			if !internal.Internal {
				t.Errorf("network runhost-internal is not internal: true")
			}
			dind := service(t, p, "dind")
			if got := slices.Sorted(maps.Keys(dind.Networks)); !slices.Equal(got, []string{"runhost-internal"}) {
				t.Errorf("dind is on networks %v, want only runhost-internal", got)
			}
			for _, name := range []string{"runhost", "code-server"} {
				s := service(t, p, name)
				if _, ok := s.Networks["runhost-internal"]; !ok {
					t.Errorf("service %s is not on runhost-internal, so it cannot reach dind", name)
				}
				external := false
				for n := range s.Networks {
					if nc, ok := p.Networks[n]; ok && !nc.Internal {
						external = true
					}
				}
				if !external {
					t.Errorf("service %s is on internal networks only (%v), so its loopback port cannot be published", name, slices.Sorted(maps.Keys(s.Networks)))
				}
			}
		}},
		{"dind resource limits", func(t *testing.T, p *types.Project, tc envCase) {
			dind := service(t, p, "dind")
			if dind.Deploy == nil || dind.Deploy.Resources.Limits == nil {
				t.Fatalf("dind has no deploy.resources.limits")
			}
			limits := dind.Deploy.Resources.Limits
			if float32(limits.NanoCPUs) != tc.wantDindCPUs {
				t.Errorf("dind cpus limit %v, want %v", limits.NanoCPUs, tc.wantDindCPUs)
			}
			if int64(limits.MemoryBytes) != tc.wantDindMemory {
				t.Errorf("dind memory limit %d, want %d", limits.MemoryBytes, tc.wantDindMemory)
			}
		}},
	}
	for _, tc := range envCases {
		t.Run(tc.name, func(t *testing.T) {
			p := loadProject(t, tc.env, baseFile, dindFile)
			for _, c := range checks {
				t.Run(c.name, func(t *testing.T) { c.check(t, p, tc) })
			}
		})
	}
}

// readFile returns a file of the repository as text.
func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// envExampleVars are the variables .env.example names, set or commented
// out ("NAME=..." or "# NAME=..." at the start of a line), in order.
func envExampleVars(t *testing.T) []string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^#?[ \t]*([A-Za-z_][A-Za-z0-9_]*)=`)
	var names []string
	for _, m := range re.FindAllStringSubmatch(readFile(t, ".env.example"), -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	if len(names) == 0 {
		t.Fatalf(".env.example names no variable")
	}
	return names
}

// configTableVars are the variables of README.md's configuration table.
func configTableVars(t *testing.T) []string {
	t.Helper()
	readme := readFile(t, "README.md")
	start := strings.Index(readme, "<!-- config:start -->")
	end := strings.Index(readme, "<!-- config:end -->")
	if start < 0 || end < start {
		t.Fatalf("README.md has no <!-- config:start --> ... <!-- config:end --> table")
	}
	re := regexp.MustCompile("(?m)^\\| `([A-Z_][A-Z0-9_]*)` \\|")
	var names []string
	for _, m := range re.FindAllStringSubmatch(readme[start:end], -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatalf("README.md's configuration table has no rows")
	}
	return names
}

// mentions reports whether text names the variable (not merely a longer
// name containing it).
func mentions(text, name string) bool {
	return regexp.MustCompile(`(^|[^A-Za-z0-9_])` + regexp.QuoteMeta(name) + `($|[^A-Za-z0-9_])`).MatchString(text)
}

func TestEnvExample(t *testing.T) {
	vars := envExampleVars(t)
	table := configTableVars(t)
	readme := readFile(t, "README.md")

	// compose-file variables (${NAME...}) that the shell, not .env, provides.
	fromShell := map[string]bool{"PWD": true}
	composeVars := func(t *testing.T) []string {
		t.Helper()
		re := regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)`)
		var names []string
		for _, f := range []string{baseFile, dindFile} {
			for _, m := range re.FindAllStringSubmatch(readFile(t, f), -1) {
				if !fromShell[m[1]] && !slices.Contains(names, m[1]) {
					names = append(names, m[1])
				}
			}
		}
		return names
	}

	tests := []struct {
		name  string
		names func(t *testing.T) []string // the variables to check
		ok    func(name string) bool
		fail  string // what the missing ones are
	}{
		{
			name:  "every .env.example variable is documented in README.md",
			names: func(*testing.T) []string { return vars },
			ok:    func(n string) bool { return mentions(readme, n) },
			fail:  "named in .env.example but not documented anywhere in README.md",
		},
		{
			name: "every RUNHOST_* variable of .env.example is a host setting",
			names: func(*testing.T) []string {
				var r []string
				for _, n := range vars {
					if strings.HasPrefix(n, "RUNHOST_") {
						r = append(r, n)
					}
				}
				return r
			},
			ok:   func(n string) bool { return slices.Contains(table, n) },
			fail: "RUNHOST_* in .env.example but not a row of README.md's configuration table (the host refuses unknown RUNHOST_* settings, and env_file hands it all of .env)",
		},
		{
			name: "every RUNHOST_* setting is in .env.example",
			names: func(*testing.T) []string {
				var r []string
				for _, n := range table {
					if strings.HasPrefix(n, "RUNHOST_") {
						r = append(r, n)
					}
				}
				return r
			},
			ok:   func(n string) bool { return slices.Contains(vars, n) },
			fail: "rows of README.md's configuration table missing from .env.example",
		},
		{
			name:  "every variable the compose files interpolate is in .env.example",
			names: composeVars,
			ok:    func(n string) bool { return slices.Contains(vars, n) },
			fail:  "used as ${...} in the compose files but not listed in .env.example",
		},
		{
			name: "every RUNHOST_* the image and compose files set is a host setting",
			names: func(t *testing.T) []string {
				re := regexp.MustCompile(`\bRUNHOST_[A-Z0-9_]+\b`)
				var r []string
				for _, f := range []string{"Dockerfile", baseFile, dindFile} {
					for _, n := range re.FindAllString(readFile(t, f), -1) {
						if !slices.Contains(r, n) {
							r = append(r, n)
						}
					}
				}
				return r
			},
			ok:   func(n string) bool { return slices.Contains(table, n) },
			fail: "RUNHOST_* in Dockerfile or the compose files but not a row of README.md's configuration table (the host refuses unknown RUNHOST_* settings)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			names := tt.names(t)
			if len(names) == 0 {
				t.Fatalf("no variables to check")
			}
			var missing []string
			for _, n := range names {
				if !tt.ok(n) {
					missing = append(missing, n)
				}
			}
			if len(missing) > 0 {
				sort.Strings(missing)
				t.Errorf("%d %s:\n\t%s", len(missing), tt.fail, strings.Join(missing, "\n\t"))
			}
		})
	}
}
