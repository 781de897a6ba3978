package policy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runhost/runhost/internal/dockerfile"
	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/workspace"
	"github.com/runhost/runhost/shared"
)

func testConfig() Config {
	return Config{
		DefaultTimeout: 10 * time.Second, MaxTimeout: 60 * time.Second,
		DefaultMemory: 256 << 20, MaxMemory: 1 << 30, MinMemory: 16 << 20,
		DefaultCPUs: 1, MaxCPUs: 2,
		Pids: 128, NoFile: 1024, FileSizeBytes: 64 << 20, TmpBytes: 64 << 20, RunDirBytes: 1 << 20, OutputBytes: 1 << 20,
		User: "1000:1000",
	}
}

// engineImages are the images the fake resolver finds, by the name the
// engine lists them under.
var engineImages = map[string]executor.ImageInfo{
	"runhost/python:3.11":    {Ref: "sha256:py311", Inspected: true, Cmd: []string{"python3"}},
	"runhost/node:20":        {Ref: "sha256:node20", Inspected: true, Entrypoint: []string{"node"}},
	"runhost/shell:bookworm": {Ref: "sha256:shell", Inspected: true},
	"alpine:3":               {Ref: "sha256:alpine3", Inspected: true, Cmd: []string{"/bin/sh"}},
	"onbuild:1":              {Ref: "sha256:onbuild", Inspected: true, Cmd: []string{"x"}, OnBuild: []string{"ADD http://h/x /x"}},
	"runhost/build:other":    {Ref: "sha256:other", Inspected: true, Cmd: []string{"x"}},
	"runhost/egress:1":       {Ref: "sha256:egress", Inspected: true, Cmd: []string{"x"}},
}

func resolve(ref string) (executor.ImageInfo, error) {
	if info, ok := engineImages[ref]; ok {
		return info, nil
	}
	return executor.ImageInfo{}, fmt.Errorf("%w: %s", executor.ErrImageMissing, ref)
}

func input(mutate func(*Input)) Input {
	in := Input{
		Resolve: resolve,
		RunID:   "r1",
		Runtime: "python",
		Version: shared.Version{Version: "3.11", Image: "runhost/python:3.11"},
		Spec: shared.Spec{
			Image:   "runhost/python:3.11",
			Files:   []shared.File{{Path: "main.py", Content: []byte("print(1)")}},
			Command: []string{"python3", "main.py"},
			Env:     map[string]string{"B": "2", "A": "1"},
		},
	}
	if mutate != nil {
		mutate(&in)
	}
	return in
}

func TestJobDefaults(t *testing.T) {
	job, err := New(testConfig()).Job(input(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := executor.Limits{
		Timeout: 10 * time.Second, MemoryBytes: 256 << 20, NanoCPUs: 1e9,
		Pids: 128, NoFile: 1024, FileSizeBytes: 64 << 20, TmpBytes: 64 << 20, RunDirBytes: 1 << 20, OutputBytes: 1 << 20,
		StopAtOutputLimit: true,
	}
	if job.Limits != want {
		t.Errorf("limits = %+v, want %+v", job.Limits, want)
	}
	if job.User != "1000:1000" || job.WorkDir != executor.RunDir || job.Image != "runhost/python:3.11" {
		t.Errorf("job = %+v", job)
	}
	if got := strings.Join(job.Env, " "); got != "A=1 B=2 HOME=/tmp" {
		t.Errorf("env = %q, want sorted with HOME=/tmp", got)
	}
	if job.Labels["runhost.run"] != "r1" || job.Labels["runhost.runtime"] != "python" {
		t.Errorf("labels = %v", job.Labels)
	}
}

// TestWorkspaceFiles: in a workspace run the files the caller sent go to
// the workspace directory; once the plugin made a file of its own, the
// whole program is in the private run directory too and the command names
// the plugin-made file there; the working directory stays the workspace's.
func TestWorkspaceFiles(t *testing.T) {
	ws := &workspace.Ref{Session: "s1", Dir: "proj"}
	helper := shared.File{Path: "helper.py", Content: []byte("x = 1")}
	tests := []struct {
		name       string
		files      []shared.File
		sent       []string
		wantFiles  []string // under FilesDir
		wantRun    []string // under the run directory
		wantCmdArg string
	}{
		{"code only", []shared.File{{Path: "main.py"}}, nil, nil, []string{"main.py"}, executor.RunDir + "/main.py"},
		{"files only", []shared.File{{Path: "main.py"}, helper}, []string{"main.py", "helper.py"}, []string{"proj/main.py", "proj/helper.py"}, nil, "main.py"},
		{"code and a module", []shared.File{{Path: "main.py"}, helper}, []string{"helper.py"}, []string{"proj/helper.py"}, []string{"main.py", "helper.py"}, executor.RunDir + "/main.py"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New(testConfig())
			job, err := p.Job(input(func(in *Input) {
				in.Spec.Files = tt.files
				in.Workspace, in.WorkspaceSource, in.Sent = ws, "/srv/ws/s1", tt.sent
			}))
			if err != nil {
				t.Fatal(err)
			}
			paths := func(fs []executor.File) (out []string) {
				for _, f := range fs {
					out = append(out, f.Path)
				}
				return out
			}
			if got := paths(job.Files); !slices.Equal(got, tt.wantFiles) {
				t.Errorf("workspace files = %v, want %v", got, tt.wantFiles)
			}
			if got := paths(job.RunFiles); !slices.Equal(got, tt.wantRun) {
				t.Errorf("run directory files = %v, want %v", got, tt.wantRun)
			}
			if job.Command[1] != tt.wantCmdArg {
				t.Errorf("command = %v, want the file as %s", job.Command, tt.wantCmdArg)
			}
			if job.WorkDir != "/workspaces/s1/proj" || job.FilesDir != "/workspaces/s1" {
				t.Errorf("work dir %s, files dir %s", job.WorkDir, job.FilesDir)
			}
		})
	}
}

func TestLimitPrecedence(t *testing.T) {
	p := New(testConfig())
	job, err := p.Job(input(func(in *Input) {
		in.Spec.Limits = shared.Limits{Timeout: 20 * time.Second, MemoryBytes: 512 << 20, CPUs: 0.5}
		in.Requested = Requested{Timeout: 5 * time.Second}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if job.Limits.Timeout != 5*time.Second || job.Limits.MemoryBytes != 512<<20 || job.Limits.NanoCPUs != 5e8 {
		t.Errorf("request beats plugin beats host default; got %+v", job.Limits)
	}
}

func TestRefusals(t *testing.T) {
	p := New(testConfig())
	tests := []struct {
		name   string
		mutate func(*Input)
		kind   error
		want   string
	}{
		{"request timeout above max", func(in *Input) { in.Requested.Timeout = time.Hour }, ErrLimitExceeded, "timeout_ms"},
		{"request memory above max", func(in *Input) { in.Requested.MemoryBytes = 2 << 30 }, ErrLimitExceeded, "memory_mb"},
		{"request memory below min", func(in *Input) { in.Requested.MemoryBytes = 1 << 20 }, ErrLimitExceeded, "minimum"},
		{"request cpus above max", func(in *Input) { in.Requested.CPUs = 3 }, ErrLimitExceeded, "cpus"},
		{"negative timeout", func(in *Input) { in.Requested.Timeout = -1 }, ErrLimitExceeded, "negative"},
		{"image not the version's", func(in *Input) { in.Spec.Image = "alpine" }, ErrSpecRefused, `image: "alpine" is not the image of version 3.11`},
		{"empty command", func(in *Input) { in.Spec.Command = nil }, ErrSpecRefused, "command: empty"},
		{"NUL in command", func(in *Input) { in.Spec.Command = []string{"a\x00"} }, ErrSpecRefused, "NUL"},
		{"file escapes", func(in *Input) { in.Spec.Files = []shared.File{{Path: "../x"}} }, ErrSpecRefused, `".."`},
		{"absolute file", func(in *Input) { in.Spec.Files = []shared.File{{Path: "/etc/x"}} }, ErrSpecRefused, "absolute"},
		{"duplicate file", func(in *Input) { in.Spec.Files = []shared.File{{Path: "a"}, {Path: "a"}} }, ErrSpecRefused, "twice"},
		{"file and dir clash", func(in *Input) { in.Spec.Files = []shared.File{{Path: "a"}, {Path: "a/b"}} }, ErrSpecRefused, "both a file and a directory"},
		{"files too big", func(in *Input) { in.Spec.Files = []shared.File{{Path: "a", Content: make([]byte, 2<<20)}} }, ErrSpecRefused, "do not fit"},
		{"work dir escapes", func(in *Input) { in.Spec.WorkDir = "../.." }, ErrSpecRefused, "work_dir"},
		{"bad env name", func(in *Input) { in.Spec.Env = map[string]string{"A-B": "x"} }, ErrSpecRefused, "env"},
		{"plugin timeout above max", func(in *Input) { in.Spec.Limits.Timeout = time.Hour }, ErrSpecRefused, "limits.timeout"},
		{"plugin memory above max", func(in *Input) { in.Spec.Limits.MemoryBytes = 4 << 30 }, ErrSpecRefused, "limits.memory_bytes"},
		{"plugin cpus above max", func(in *Input) { in.Spec.Limits.CPUs = 64 }, ErrSpecRefused, "limits.cpus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Job(input(tt.mutate))
			if !errors.Is(err, tt.kind) {
				t.Fatalf("got %v, want %v", err, tt.kind)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if errors.Is(err, ErrSpecRefused) && !strings.Contains(err.Error(), `plugin "python"`) {
				t.Errorf("a refused spec must name the plugin: %q", err)
			}
		})
	}
}

func BenchmarkJob(b *testing.B) {
	p := New(testConfig())
	in := input(nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Job(in); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCustomImages(t *testing.T) {
	custom := func(image string) func(*Input) {
		return func(in *Input) {
			in.Capabilities = []shared.Capability{shared.CapCustomImage}
			in.Spec.Image = image
			in.DeclaredImages = []string{"runhost/python:3.11", "runhost/node:20"}
		}
	}
	tests := []struct {
		name    string
		allowed []string
		mutate  func(*Input)
		err     error
	}{
		{"declared image by default", nil, custom("runhost/node:20"), nil},
		{"undeclared image refused by default", nil, custom("alpine:3"), ErrImageNotAllowed},
		{"pattern allows", []string{"docker.io/library/*", "alpine:*"}, custom("alpine:3"), nil},
		{"fully qualified matches the short pattern", []string{"alpine:*"}, custom("docker.io/library/alpine:3"), nil},
		{"short matches the fully qualified pattern", []string{"docker.io/library/alpine:*"}, custom("alpine:3"), nil},
		{"pattern refuses", []string{"alpine:*"}, custom("runhost/node:20"), ErrImageNotAllowed},
		{"no capability: a plugin fault", nil, func(in *Input) { in.Spec.Image = "alpine:3" }, ErrSpecRefused},
		{"allowed but not on the engine", []string{"*"}, custom("alpine:4"), executor.ErrImageMissing},
		{"a seed image by default, not on the engine", nil, custom("python:3.11-slim"), ErrImageNotFound},
		{"a seed image, fully qualified", nil, custom("docker.io/library/ubuntu:22.04"), ErrImageNotFound},
		{"an alias runs its target", nil, custom("node:20-alpine"), nil},
		{"an alias, fully qualified", nil, custom("docker.io/library/node:20-alpine"), nil},
		{"an alias's target is judged", []string{"node:20-alpine"}, custom("node:20-alpine"), ErrImageNotAllowed},
		{"an alias to runhost's own image", []string{"*"}, custom("evil:1"), ErrImageNotAllowed},
		// Never, whatever the allow-list says.
		{"another tenant's built image", []string{"*"}, custom("runhost/build:other"), ErrImageNotAllowed},
		{"built image, fully qualified", []string{"*"}, custom("docker.io/runhost/build:other"), ErrImageNotAllowed},
		{"built image from another registry", []string{"*"}, custom("registry.local:5000/runhost/build:other"), ErrImageNotAllowed},
		{"the egress proxy", []string{"runhost/*"}, custom("runhost/egress:1"), ErrImageNotAllowed},
		{"the init image", []string{"*"}, custom("runhost/init:abc"), ErrImageNotAllowed},
		{"the owner image", []string{"*"}, custom("runhost/owner:deps-1000-1000"), ErrImageNotAllowed},
		{"the builder", []string{"*"}, custom("runhost/builder:x"), ErrImageNotAllowed},
		{"a configured helper image", []string{"*"}, custom("corp/k8s-init:1"), ErrImageNotAllowed},
		{"the k8s build repository", []string{"*"}, custom("reg.example/tenant/builds:abc"), ErrImageNotAllowed},
		{"an image ID", []string{"*"}, custom("sha256:4497b3dd19ef0000000000000000000000000000000000000000000000000000"), ErrImageNotAllowed},
		{"a short ID", []string{"*"}, custom("4497b3dd19ef"), ErrImageNotAllowed},
		{"a bare hex name", []string{"*"}, custom("cafe"), ErrImageNotAllowed},
		{"a full ID without sha256:", []string{"*"}, custom("4497b3dd19ef0000000000000000000000000000000000000000000000000000"), ErrImageNotAllowed},
		{"not a reference", []string{"*"}, custom("Alpine:3"), ErrImageNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.AllowedImages = tt.allowed
			cfg.InternalImages = []string{"corp/k8s-init:1", "reg.example/tenant/builds"}
			cfg.ImageAliases = map[string]string{"node:20-alpine": "runhost/node:20", "evil:1": "runhost/egress:1"}
			job, err := New(cfg).Job(input(tt.mutate))
			if !errors.Is(err, tt.err) && !(tt.err == nil && err == nil) {
				t.Fatalf("got image %s: %v, want %v", job.Image, err, tt.err)
			}
			if err == nil && !strings.HasPrefix(job.Image, "sha256:") {
				t.Errorf("the job runs %q, not the image the policy pinned", job.Image)
			}
			if errors.Is(err, ErrImageNotFound) && len(tt.allowed) == 0 && !strings.Contains(err.Error(), "images this host can run: runhost/python:3.11, runhost/node:20, node:20-alpine (= runhost/node:20) (") {
				t.Errorf("the refusal must list the images this host can run: %v", err)
			}
			if errors.Is(err, ErrImageNotAllowed) && len(tt.allowed) == 0 && !strings.Contains(err.Error(), "RUNHOST_ALLOWED_IMAGES") {
				t.Errorf("the refusal must name the setting: %v", err)
			}
		})
	}
}

func TestDeclaredImageMayNotBeInternal(t *testing.T) {
	for _, image := range []string{"runhost/egress:1", "4497b3dd19ef"} {
		_, err := New(testConfig()).Job(input(func(in *Input) { in.Version.Image, in.Spec.Image = image, image }))
		if !errors.Is(err, ErrSpecRefused) {
			t.Errorf("a runtime declaring %s: %v", image, err)
		}
	}
}

func TestMatchImage(t *testing.T) {
	tests := []struct {
		pattern, image string
		want           bool
	}{
		{"alpine:3", "alpine:3", true},
		{"alpine:3", "alpine:3.1", false},
		{"alpine:*", "alpine:3.1", true},
		{"*", "anything/at:all", true},
		{"runhost/*:3.*", "runhost/python:3.11", true},
		{"runhost/*:3.*", "runhost/python:2.7", false},
		{"*/python:*", "evil.io/python:3", true},
		{"docker.io/*", "docker.io.evil.com/x", false},
		{"docker.io/library/*", "docker.io.evil/library/x", false},
	}
	for _, tt := range tests {
		if got := MatchImage(tt.pattern, tt.image); got != tt.want {
			t.Errorf("MatchImage(%q, %q) = %v, want %v", tt.pattern, tt.image, got, tt.want)
		}
	}
}

func TestInstallStep(t *testing.T) {
	withInstall := func(mut func(*shared.Install)) func(*Input) {
		return func(in *Input) {
			in.Capabilities = []shared.Capability{shared.CapPackages}
			in.Spec.Install = &shared.Install{
				Command: []string{"pip", "install", "-r", "requirements.txt"}, OutputDir: "/deps", Network: true,
				Files: []shared.File{{Path: "requirements.txt", Content: []byte("six\n")}},
			}
			if mut != nil {
				mut(in.Spec.Install)
			}
		}
	}
	cfg := testConfig()
	cfg.AllowInstallNetwork = true
	cfg.InstallTimeout, cfg.InstallMemory, cfg.InstallDisk = time.Minute, 512<<20, 128<<20
	cfg.PipIndexURL, cfg.NpmRegistry = "http://index:8000/simple", "https://npm.example/"
	cfg.CABundle = []byte("PEM")
	job, err := New(cfg).Job(input(withInstall(nil)))
	if err != nil {
		t.Fatal(err)
	}
	inst := job.Install
	if inst == nil || !inst.Egress || inst.OutputDir != "/deps" || inst.Image != job.Image || inst.Limits.Timeout != time.Minute || inst.Limits.MemoryBytes != 512<<20 || inst.DiskBytes != 128<<20 {
		t.Fatalf("install = %+v", inst)
	}
	env := strings.Join(inst.Env, " ")
	for _, want := range []string{"PIP_INDEX_URL=http://index:8000/simple", "PIP_TRUSTED_HOST=index", "NPM_CONFIG_REGISTRY=https://npm.example/", "PIP_CERT=/code/.runhost-ca.pem", "NODE_EXTRA_CA_CERTS=/code/.runhost-ca.pem"} {
		if !strings.Contains(env, want) {
			t.Errorf("install env lacks %s: %s", want, env)
		}
	}
	if len(inst.Files) != 2 || inst.Files[1].Path != ".runhost-ca.pem" {
		t.Errorf("install files = %+v, want requirements.txt and the CA bundle", inst.Files)
	}

	again, _ := New(cfg).Job(input(withInstall(nil)))
	other, _ := New(cfg).Job(input(withInstall(func(i *shared.Install) { i.Files[0].Content = []byte("seven\n") })))
	if again.Install.Key != inst.Key || other.Install.Key == inst.Key {
		t.Errorf("install keys: same content %s/%s, other content %s", inst.Key, again.Install.Key, other.Install.Key)
	}

	cfg.AllowInstallNetwork = false
	noNet, _ := New(cfg).Job(input(withInstall(nil)))
	if noNet.Install.Egress {
		t.Error("the host forbids install network, but the install may use the egress proxy")
	}

	for _, dir := range []string{"/", "/usr", "/tmp", "/code", "relative", "/a/b", "/.runhost"} {
		_, err := New(cfg).Job(input(withInstall(func(i *shared.Install) { i.OutputDir = dir })))
		if !errors.Is(err, ErrSpecRefused) {
			t.Errorf("output dir %q: got %v, want a refusal", dir, err)
		}
	}
	_, err = New(cfg).Job(input(func(in *Input) { withInstall(nil)(in); in.Capabilities = nil }))
	if !errors.Is(err, ErrSpecRefused) {
		t.Errorf("install without the packages capability: %v", err)
	}
}

func TestBuild(t *testing.T) {
	cfg := testConfig()
	cfg.MaxContextBytes, cfg.BuildTimeout, cfg.BuildMemory, cfg.BuildLogBytes = 100, time.Minute, 1<<30, 1000
	withBuild := func(ctx []shared.File) func(*Input) {
		return func(in *Input) {
			in.Capabilities = []shared.Capability{shared.CapDockerfile}
			in.Spec.Image = ""
			in.Spec.Build = &shared.Build{Dockerfile: "FROM runhost/python:3.11", Context: ctx}
			in.DeclaredImages = []string{"runhost/python:3.11"}
		}
	}
	p := New(cfg)
	b, err := p.Build(input(withBuild([]shared.File{{Path: "a", Content: []byte("1")}})))
	if err != nil || b.Network || b.Timeout != time.Minute || len(b.Key) != 64 {
		t.Fatalf("build = %+v, %v", b, err)
	}
	// The CA bundle goes with the network grant, and only with it.
	cfg.CABundle = []byte("PEM")
	for _, granted := range []bool{false, true} {
		b, err := New(cfg).Build(input(func(in *Input) { withBuild(nil)(in); in.BuildEgress = granted }))
		if err != nil || b.Network != granted || (string(b.CA) == "PEM") != granted {
			t.Errorf("build-egress %v: network %v, CA %q, %v", granted, b.Network, b.CA, err)
		}
	}
	if _, err := p.Build(input(withBuild([]shared.File{{Path: "a", Content: make([]byte, 200)}}))); !errors.Is(err, ErrContextTooLarge) {
		t.Errorf("oversize context: %v", err)
	}
	if _, err := p.Build(input(withBuild([]shared.File{{Path: "../a"}}))); !errors.Is(err, ErrSpecRefused) {
		t.Errorf("escaping context path: %v", err)
	}
	for _, path := range []string{executor.BuildDockerfile, executor.BuildDockerfile + "/x"} {
		if _, err := p.Build(input(withBuild([]shared.File{{Path: path, Content: []byte("FROM evil")}}))); !errors.Is(err, shared.ErrInvalidRequest) {
			t.Errorf("a context file standing in for the checked Dockerfile (%s): %v", path, err)
		}
	}
	in := input(withBuild(nil))
	in.Spec.Command = nil
	in.Built = &executor.BuiltImage{Ref: "runhost/build:k", Entrypoint: []string{"python3"}, Cmd: []string{"app.py"}, WorkingDir: "/app"}
	job, err := p.Job(in)
	if err != nil {
		t.Fatal(err)
	}
	if job.Image != "runhost/build:k" || strings.Join(job.Command, " ") != "python3 app.py" || job.WorkDir != "/app" {
		t.Errorf("job from a built image = %+v", job)
	}
}

// Installed dependencies and built images are cached per owner: the same
// content asked for by two keys gets two entries, so neither key can tell
// whether the other asked for it, nor plant an entry the other would use.
func TestCacheKeysAreOwned(t *testing.T) {
	cfg := testConfig()
	cfg.MaxContextBytes = 1 << 20
	p := New(cfg)
	install := func(owner string) string {
		t.Helper()
		job, err := p.Job(input(func(in *Input) {
			in.Owner = owner
			in.Capabilities = []shared.Capability{shared.CapPackages}
			in.Spec.Install = &shared.Install{Command: []string{"pip", "install", "six"}, OutputDir: "/deps"}
		}))
		if err != nil {
			t.Fatal(err)
		}
		return job.Install.Key
	}
	build := func(owner string) string {
		t.Helper()
		b, err := p.Build(input(func(in *Input) {
			in.Owner = owner
			in.Capabilities = []shared.Capability{shared.CapDockerfile}
			in.Spec.Image = ""
			in.Spec.Build = &shared.Build{Dockerfile: "FROM scratch\nCOPY a /a\nCMD [\"/a\"]", Context: []shared.File{{Path: "a", Content: []byte("1")}}}
		}))
		if err != nil {
			t.Fatal(err)
		}
		return b.Key
	}
	for name, key := range map[string]func(string) string{"install": install, "build": build} {
		alice, again, bob, none := key("alice"), key("alice"), key("bob"), key("")
		if alice != again {
			t.Errorf("%s: one owner's same content gets two keys", name)
		}
		if alice == bob || alice == none {
			t.Errorf("%s: two owners share a key", name)
		}
	}
}

// Every image a Dockerfile names is checked like a custom image and pinned;
// the build says which exact image each name is.
func TestBuildBases(t *testing.T) {
	build := func(dockerfile string, mutate ...func(*Input)) Input {
		return input(func(in *Input) {
			in.Runtime = "dockerfile"
			in.Capabilities = []shared.Capability{shared.CapDockerfile}
			in.Spec = shared.Spec{Build: &shared.Build{Dockerfile: dockerfile}}
			in.DeclaredImages = []string{"runhost/python:3.11", "runhost/node:20", "runhost/shell:bookworm"}
			for _, m := range mutate {
				m(in)
			}
		})
	}
	withCommand := func(in *Input) { in.Spec.Build.Cmd = []string{"true"} }
	tests := []struct {
		name    string
		in      Input
		allowed []string
		err     error
		bases   []executor.BaseImage
	}{
		{name: "a declared image", in: build("FROM runhost/python:3.11"),
			bases: []executor.BaseImage{{Name: "runhost/python:3.11", Ref: "sha256:py311"}}},
		{name: "every kind of reference", in: build("FROM runhost/node:20 AS n\nFROM runhost/python:3.11\nCOPY --from=runhost/shell:bookworm /bin/sh /x\nCOPY --from=n /a /b\n"),
			bases: []executor.BaseImage{{Name: "runhost/node:20", Ref: "sha256:node20"}, {Name: "runhost/python:3.11", Ref: "sha256:py311"}, {Name: "runhost/shell:bookworm", Ref: "sha256:shell"}}},
		{name: "ARG-expanded, from a build argument", in: build("ARG V=9\nFROM runhost/python:${V}", func(in *Input) { in.Spec.Build.BuildArgs = map[string]string{"V": "3.11"} }),
			bases: []executor.BaseImage{{Name: "runhost/python:3.11", Ref: "sha256:py311"}}},
		{name: "scratch needs nothing", in: build("FROM scratch\nCOPY a /a", withCommand), bases: []executor.BaseImage{}},
		{name: "outside the allow-list", in: build("FROM alpine:3"), err: ErrImageNotAllowed},
		{name: "allowed by pattern", in: build("FROM alpine:3"), allowed: []string{"alpine:*"},
			bases: []executor.BaseImage{{Name: "alpine:3", Ref: "sha256:alpine3"}}},
		{name: "another tenant's build", in: build("FROM runhost/build:other"), allowed: []string{"*"}, err: ErrImageNotAllowed},
		{name: "COPY --from a helper image", in: build("FROM runhost/python:3.11\nCOPY --from=runhost/egress:1 /egress /x"), allowed: []string{"*"}, err: ErrImageNotAllowed},
		{name: "RUN --mount from a helper image", in: build("FROM runhost/python:3.11\nRUN --mount=from=runhost/owner:x,target=/o true"), allowed: []string{"*"}, err: ErrImageNotAllowed},
		{name: "an ID prefix", in: build("FROM 4497b3dd19ef"), allowed: []string{"*"}, err: ErrImageNotAllowed},
		{name: "an ID", in: build("FROM sha256:4497b3dd19ef0000000000000000000000000000000000000000000000000000"), allowed: []string{"*"}, err: ErrImageNotAllowed},
		{name: "an ID through an ARG", in: build("ARG I=4497b3dd19ef\nFROM $I"), allowed: []string{"*"}, err: ErrImageNotAllowed},
		{name: "ONBUILD triggers in the base", in: build("FROM onbuild:1"), allowed: []string{"*"}, err: ErrImageNotAllowed},
		{name: "a rule of the Dockerfile", in: build("FROM runhost/python:3.11\nADD http://127.0.0.1/x /x"), err: dockerfile.ErrRefused},
		{name: "unparseable", in: build("FROM runhost/python:3.11\nNOPE x"), err: dockerfile.ErrInvalid},
		{name: "BUILDKIT_SYNTAX build argument", in: build("FROM runhost/python:3.11", func(in *Input) { in.Spec.Build.BuildArgs = map[string]string{"BUILDKIT_SYNTAX": "evil/fe"} }), err: dockerfile.ErrRefused},
		// Nothing to run, known before building.
		{name: "no CMD anywhere", in: build("FROM runhost/shell:bookworm\nRUN sleep 3"), err: ErrNoCommand},
		{name: "the base's CMD", in: build("FROM runhost/python:3.11\nRUN true"), bases: []executor.BaseImage{{Name: "runhost/python:3.11", Ref: "sha256:py311"}}},
		{name: "the request's command", in: build("FROM runhost/shell:bookworm", withCommand), bases: []executor.BaseImage{{Name: "runhost/shell:bookworm", Ref: "sha256:shell"}}},
		{name: "the request's whole argv", in: build("FROM runhost/shell:bookworm", func(in *Input) { in.Spec.Command = []string{"true"} }), bases: []executor.BaseImage{{Name: "runhost/shell:bookworm", Ref: "sha256:shell"}}},
		{name: "args are not a command", in: build("FROM runhost/shell:bookworm", func(in *Input) { in.Spec.Build.Args = []string{"x"} }), err: ErrNoCommand},
		{name: "config unknown (Kubernetes)", in: build("FROM runhost/shell:bookworm", func(in *Input) {
			in.Resolve = func(ref string) (executor.ImageInfo, error) { return executor.ImageInfo{Ref: ref}, nil }
		}), bases: []executor.BaseImage{{Name: "runhost/shell:bookworm", Ref: "runhost/shell:bookworm"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.MaxContextBytes, cfg.AllowedImages = 1<<20, tt.allowed
			b, err := New(cfg).Build(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("error %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(b.Bases) != fmt.Sprint(tt.bases) {
				t.Errorf("bases %+v, want %+v", b.Bases, tt.bases)
			}
		})
	}

	// An allowed base the engine lacks names itself and what is allowed.
	cfg := testConfig()
	cfg.MaxContextBytes = 1 << 20
	_, err := New(cfg).Build(build("FROM runhost/python:3.11\nCOPY --from=runhost/node:18 /a /b", func(in *Input) { in.DeclaredImages = append(in.DeclaredImages, "runhost/node:18") }))
	var missing *BaseMissingError
	if !errors.As(err, &missing) || missing.Line != 2 || !strings.Contains(err.Error(), "runhost/node:18") || !strings.Contains(err.Error(), "runhost/python:3.11") {
		t.Errorf("missing base: %v", err)
	}

	// The key changes with the image a name is pinned to.
	first, err := New(cfg).Build(build("FROM runhost/python:3.11"))
	if err != nil {
		t.Fatal(err)
	}
	moved, err := New(cfg).Build(build("FROM runhost/python:3.11", func(in *Input) {
		in.Resolve = func(string) (executor.ImageInfo, error) {
			return executor.ImageInfo{Ref: "sha256:new", Inspected: true, Cmd: []string{"x"}}, nil
		}
	}))
	if err != nil || moved.Key == first.Key {
		t.Errorf("a re-tagged base reuses the old build: %v", err)
	}
}

// A built image runs as docker run runs it.
func TestBuiltCommand(t *testing.T) {
	tests := []struct {
		name              string
		entrypoint, cmd   []string
		spec, bcmd, bargs []string
		want              string
		err               error
	}{
		{name: "ENTRYPOINT and CMD", entrypoint: []string{"python3"}, cmd: []string{"app.py"}, want: "python3 app.py"},
		{name: "command replaces CMD, keeps ENTRYPOINT", entrypoint: []string{"echo", "ep"}, cmd: []string{"c"}, bcmd: []string{"x", "y"}, want: "echo ep x y"},
		{name: "args follow CMD", entrypoint: []string{"echo"}, cmd: []string{"c"}, bargs: []string{"a"}, want: "echo c a"},
		{name: "args follow the command", entrypoint: []string{"echo"}, bcmd: []string{"x"}, bargs: []string{"a"}, want: "echo x a"},
		{name: "args with an ENTRYPOINT alone", entrypoint: []string{"echo"}, bargs: []string{"a", "b"}, want: "echo a b"},
		{name: "command without ENTRYPOINT", cmd: []string{"c"}, bcmd: []string{"ls", "-l"}, want: "ls -l"},
		{name: "a whole argv replaces both", entrypoint: []string{"echo"}, cmd: []string{"c"}, spec: []string{"true"}, bargs: []string{"ignored"}, want: "true"},
		{name: "nothing to run", err: ErrNoCommand},
		{name: "args alone are nothing to run", bargs: []string{"a"}, err: ErrNoCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := input(func(in *Input) {
				in.Capabilities = []shared.Capability{shared.CapDockerfile}
				in.Spec.Image, in.Spec.Command = "", tt.spec
				in.Spec.Build = &shared.Build{Dockerfile: "FROM x", Cmd: tt.bcmd, Args: tt.bargs}
				in.Built = &executor.BuiltImage{Ref: "runhost/build:k", Entrypoint: tt.entrypoint, Cmd: tt.cmd}
			})
			job, err := New(testConfig()).Job(in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("error %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || strings.Join(job.Command, " ") != tt.want {
				t.Fatalf("command %q (%v), want %q", job.Command, err, tt.want)
			}
		})
	}
}

func TestGrants(t *testing.T) {
	no := false
	cfg := testConfig()
	cfg.AllowInstallNetwork = true
	cfg.Grants = map[string]Grant{"python": {
		Images:         []string{"runhost/python:*"},
		MaxMemoryMB:    128,
		MaxTimeoutMS:   5000,
		InstallNetwork: &no,
	}}
	p := New(cfg)
	tests := []struct {
		name   string
		mutate func(*Input)
		kind   error
		want   string
	}{
		{"request memory above the grant", func(in *Input) { in.Requested.MemoryBytes = 256 << 20 }, ErrLimitExceeded, `RUNHOST_POLICY grants plugin "python" of 128`},
		{"request timeout above the grant", func(in *Input) { in.Requested.Timeout = 6 * time.Second }, ErrLimitExceeded, "5000"},
		{"plugin memory above the grant", func(in *Input) { in.Spec.Limits.MemoryBytes = 512 << 20 }, ErrSpecRefused, "limits.memory_bytes"},
		{"image outside the grant", func(in *Input) {
			in.Version.Image, in.Spec.Image = "evil/python:3", "evil/python:3"
		}, ErrSpecRefused, "outside the images RUNHOST_POLICY grants"},
		{"install network the grant refuses", func(in *Input) {
			in.Capabilities = []shared.Capability{shared.CapPackages}
			in.Spec.Install = &shared.Install{Command: []string{"pip"}, OutputDir: "/deps", Network: true}
		}, ErrSpecRefused, "install.network"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Job(input(tt.mutate))
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %v mentioning %q", err, tt.kind, tt.want)
			}
		})
	}
	// Defaults stay within the grant; other runtimes keep the host's.
	job, err := p.Job(input(nil))
	if err != nil || job.Limits.MemoryBytes != 128<<20 {
		t.Fatalf("default memory under a 128 MiB grant: %v %v", job.Limits.MemoryBytes, err)
	}
	other := input(func(in *Input) { in.Runtime = "shell"; in.Requested.MemoryBytes = 512 << 20 })
	if _, err := p.Job(other); err != nil {
		t.Errorf("a runtime without a grant keeps the host's maxima: %v", err)
	}
}

func TestLoadGrants(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		f := filepath.Join(dir, fmt.Sprintf("p%d.json", len(s)))
		_ = os.WriteFile(f, []byte(s), 0o644)
		return f
	}
	if g, err := LoadGrants(write(`{"plugins":{"python":{"max_memory_mb":512,"install_network":true}}}`), testConfig()); err != nil || g["python"].MaxMemoryMB != 512 || !*g["python"].InstallNetwork {
		t.Fatalf("valid: %+v %v", g, err)
	}
	for name, bad := range map[string]string{
		"unknown field":    `{"plugins":{"python":{"max_memroy_mb":512}}}`,
		"above host max":   `{"plugins":{"python":{"max_memory_mb":999999}}}`,
		"not json":         `plugins: python`,
		"unknown toplevel": `{"plugin":{}}`,
	} {
		if _, err := LoadGrants(write(bad), testConfig()); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}
