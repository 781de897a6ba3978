package registry

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/runhost/runhost/internal/pluginwire"
	"github.com/runhost/runhost/internal/testenv"
	"github.com/runhost/runhost/shared"
)

// pluginDir builds testdata/testplugin once and installs it under each
// name; "!" before a name installs it without the executable bit.
func pluginDir(t *testing.T, names ...string) string {
	t.Helper()
	bin := testenv.GoBuild(t, "./internal/registry/testdata/testplugin", t.TempDir(), "testplugin")
	dir := t.TempDir()
	for _, n := range names {
		mode := os.FileMode(0o755)
		if strings.HasPrefix(n, "!") {
			n, mode = n[1:], 0o644
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), data, mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func discover(t *testing.T, dir string) *Registry {
	t.Helper()
	reg, err := Discover(context.Background(), Config{
		Dir:          dir,
		StartTimeout: 10 * time.Second,
		CallTimeout:  2 * time.Second,
		Logger:       hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	return reg
}

func TestDiscovery(t *testing.T) {
	dir := pluginDir(t,
		"runhost-plugin-good",
		"runhost-plugin-zclash",
		"!runhost-plugin-noexec",
		"not-a-plugin",
		"runhost-plugin-exits",
		"runhost-plugin-badproto",
		"runhost-plugin-stdout",
		"runhost-plugin-nodesc",
	)
	if err := os.Symlink(filepath.Join(dir, "runhost-plugin-good"), filepath.Join(dir, "runhost-plugin-link")); err != nil {
		t.Fatal(err)
	}
	reg := discover(t, dir)

	tests := []struct {
		file   string
		state  State
		reason string // a part of the reason
	}{
		{"runhost-plugin-good", StateHealthy, ""},
		{"runhost-plugin-zclash", StateRefused, `runtime name "good" is already served by`},
		{"runhost-plugin-noexec", StateRefused, "not executable"},
		{"not-a-plugin", StateIgnored, "name does not match"},
		{"runhost-plugin-exits", StateRefused, "exited during start-up"},
		{"runhost-plugin-badproto", StateRefused, "protocol version 99 but this host speaks 1, 2:"},
		{"runhost-plugin-stdout", StateRefused, `wrote "a stray line on stdout" to stdout`},
		{"runhost-plugin-nodesc", StateRefused, "invalid description: no versions"},
		{"runhost-plugin-link", StateRefused, "symbolic links"},
	}
	reports := map[string]FileReport{}
	for _, r := range reg.Reports() {
		reports[filepath.Base(r.Path)] = r
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			r, ok := reports[tt.file]
			if !ok {
				t.Fatalf("no report for %s", tt.file)
			}
			if r.State != tt.state || !strings.Contains(r.Reason, tt.reason) {
				t.Errorf("got %s %q, want %s with %q", r.State, r.Reason, tt.state, tt.reason)
			}
		})
	}
	if len(reg.Plugins()) != 1 {
		t.Errorf("%d plugins served, want only good", len(reg.Plugins()))
	}
	if _, err := reg.Lookup("good"); err != nil {
		t.Errorf("Lookup(good): %v", err)
	}
	var unknown *UnknownRuntimeError
	if _, err := reg.Lookup("exits"); !errors.As(err, &unknown) || !strings.Contains(err.Error(), "known runtimes: good") {
		t.Errorf("Lookup(exits) = %v, want an unknown-runtime error listing good", err)
	}
}

// TestProtocolVersions: plugins of this SDK speak protocol 2 and get the
// version's image from the host; a plugin built against a protocol 1 SDK
// still starts and plans.
func TestProtocolVersions(t *testing.T) {
	reg := discover(t, pluginDir(t, "runhost-plugin-good", "runhost-plugin-v1"))
	for name, protocol := range map[string]int{"good": pluginwire.ProtocolVersion, "v1": pluginwire.ProtocolV1} {
		t.Run(name, func(t *testing.T) {
			p, err := reg.Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			if p.Protocol() != protocol {
				t.Errorf("negotiated protocol %d, want %d", p.Protocol(), protocol)
			}
			spec, err := p.Plan(t.Context(), shared.RunRequest{Version: "1", Code: "x"})
			if err != nil || spec.Image != "img:1" {
				t.Errorf("Plan = %q, %v; want the version's image img:1", spec.Image, err)
			}
			// A version the plugin did not describe never reaches it.
			if _, err := p.Plan(t.Context(), shared.RunRequest{Version: "2", Code: "x"}); !errors.Is(err, shared.ErrInvalidRequest) {
				t.Errorf("Plan of an undescribed version = %v, want an invalid request", err)
			}
		})
	}
}

func TestMissingPluginDirIsEmpty(t *testing.T) {
	reg := discover(t, filepath.Join(t.TempDir(), "nope"))
	if len(reg.Plugins()) != 0 {
		t.Fatal("plugins from a missing directory")
	}
}

func TestPluginGetsNoHostEnvironment(t *testing.T) {
	t.Setenv("RUNHOST_TEST_SECRET", "s3cret")
	reg := discover(t, pluginDir(t, "runhost-plugin-env"))
	p, err := reg.Lookup("env")
	if err != nil {
		t.Fatal(err)
	}
	env := p.Description().Description
	if strings.Contains(env, "s3cret") || strings.Contains(env, "PATH=") {
		t.Errorf("plugin environment carries host variables:\n%s", env)
	}
}

func TestPluginFaults(t *testing.T) {
	reg := discover(t, pluginDir(t, "runhost-plugin-good"))
	p, err := reg.Lookup("good")
	if err != nil {
		t.Fatal(err)
	}
	plan := func(code string) (shared.Spec, error) {
		return p.Plan(context.Background(), shared.RunRequest{Version: "1", Code: code})
	}
	first, err := plan("ok")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("invalid request is the caller's fault", func(t *testing.T) {
		if _, err := plan("invalid"); !errors.Is(err, shared.ErrInvalidRequest) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("panic becomes an error and the process lives", func(t *testing.T) {
		_, err := plan("panic")
		var pe *PluginError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "planned panic") {
			t.Fatalf("got %v, want a plugin error naming the panic", err)
		}
		spec, err := plan("ok")
		if err != nil || spec.Env["PID"] != first.Env["PID"] {
			t.Fatalf("after a panic: %v, pid %s then %s", err, first.Env["PID"], spec.Env["PID"])
		}
	})
	t.Run("crash is reported and the next call gets a new process", func(t *testing.T) {
		if _, err := plan("exit"); !errors.Is(err, ErrPluginUnavailable) {
			t.Fatalf("got %v, want ErrPluginUnavailable", err)
		}
		spec, err := plan("ok")
		if err != nil {
			t.Fatalf("after a crash: %v", err)
		}
		if spec.Env["PID"] == first.Env["PID"] {
			t.Fatal("same process after a crash")
		}
		first = spec
	})
	t.Run("hang hits the call deadline and the process is replaced", func(t *testing.T) {
		if _, err := plan("hang"); !errors.Is(err, ErrPluginUnavailable) {
			t.Fatalf("got %v, want ErrPluginUnavailable", err)
		}
		spec, err := plan("ok")
		if err != nil || spec.Env["PID"] == first.Env["PID"] {
			t.Fatalf("after a hang: %v, pid %s then %s", err, first.Env["PID"], spec.Env["PID"])
		}
	})
	t.Run("caller cancel reaches the plugin", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := p.Plan(ctx, shared.RunRequest{Version: "1", Code: "wait-for-cancel"})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want the caller's deadline", err)
		}
	})
}

func TestValidateDescription(t *testing.T) {
	ok := shared.Description{Name: "py", Versions: []shared.Version{{Version: "3.11", Image: "i", Default: true}}}
	tests := []struct {
		name   string
		mutate func(*shared.Description)
		want   string
	}{
		{"valid", func(*shared.Description) {}, ""},
		{"upper-case name", func(d *shared.Description) { d.Name = "Py" }, "name"},
		{"empty name", func(d *shared.Description) { d.Name = "" }, "name"},
		{"bad alias", func(d *shared.Description) { d.Aliases = []string{"a b"} }, "alias"},
		{"alias repeats name", func(d *shared.Description) { d.Aliases = []string{"py"} }, "repeats"},
		{"no versions", func(d *shared.Description) { d.Versions = nil }, "no versions"},
		{"no default", func(d *shared.Description) { d.Versions[0].Default = false }, "0 versions are marked default"},
		{"two defaults", func(d *shared.Description) {
			d.Versions = append(d.Versions, shared.Version{Version: "3.13", Image: "j", Default: true})
		}, "2 versions"},
		{"duplicate version", func(d *shared.Description) {
			d.Versions = append(d.Versions, shared.Version{Version: "3.11", Image: "j"})
		}, "twice"},
		{"no image", func(d *shared.Description) { d.Versions[0].Image = "" }, "no image"},
		{"slash in version", func(d *shared.Description) { d.Versions[0].Version = "3/11" }, "slashes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ok
			d.Versions = append([]shared.Version(nil), ok.Versions...)
			tt.mutate(&d)
			err := ValidateDescription(d)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func buildVariant(t *testing.T, variant string) []byte {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-ldflags", "-X main.variant="+variant, "-o", filepath.Join(dir, "p"), "./internal/registry/testdata/testplugin")
	cmd.Dir = testenv.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "p"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// install writes a plugin binary the way an operator should: beside its
// place, then renamed into it.
func install(t *testing.T, dir, name string, bin []byte) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".new")
	if err := os.WriteFile(tmp, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func TestReload(t *testing.T) {
	v1, v2 := buildVariant(t, "1"), buildVariant(t, "2")
	dir := t.TempDir()
	install(t, dir, "runhost-plugin-good", v1)
	reg := discover(t, dir)
	plan := func(name, code string) (shared.Spec, error) {
		p, err := reg.Lookup(name)
		if err != nil {
			return shared.Spec{}, err
		}
		return p.Plan(context.Background(), shared.RunRequest{Version: "1", Code: code})
	}
	if spec, err := plan("good", "x"); err != nil || spec.Env["VARIANT"] != "1" {
		t.Fatalf("v1: %+v %v", spec, err)
	}

	t.Run("a new plugin appears", func(t *testing.T) {
		install(t, dir, "runhost-plugin-second", v1)
		if err := reg.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := plan("second", "x"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a replaced binary is restarted; a call in flight finishes on the old one", func(t *testing.T) {
		slow := make(chan error, 1)
		go func() {
			spec, err := plan("good", "slow")
			if err == nil && spec.Env["VARIANT"] != "1" {
				err = fmt.Errorf("the slow call was served by variant %s", spec.Env["VARIANT"])
			}
			slow <- err
		}()
		time.Sleep(200 * time.Millisecond)
		install(t, dir, "runhost-plugin-good", v2)
		if err := reg.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		if spec, err := plan("good", "x"); err != nil || spec.Env["VARIANT"] != "2" {
			t.Fatalf("after replacing: %+v %v", spec, err)
		}
		if err := <-slow; err != nil {
			t.Fatalf("the call in flight during the replacement: %v", err)
		}
	})
	t.Run("a removed plugin disappears", func(t *testing.T) {
		if err := os.Remove(filepath.Join(dir, "runhost-plugin-second")); err != nil {
			t.Fatal(err)
		}
		if err := reg.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Lookup("second"); !errors.Is(err, ErrUnknownRuntime) {
			t.Fatalf("after removal: %v", err)
		}
	})
	t.Run("reports carry path, checksum, protocol and state", func(t *testing.T) {
		for _, r := range reg.Reports() {
			if r.Runtime == "good" && (r.Checksum != fmt.Sprintf("%x", sha256.Sum256(v2)) || r.Protocol != pluginwire.ProtocolVersion || r.State != StateHealthy) {
				t.Errorf("report %+v", r)
			}
		}
	})
}

func TestChecksums(t *testing.T) {
	v1, v2 := buildVariant(t, "1"), buildVariant(t, "2")
	dir := t.TempDir()
	install(t, dir, "runhost-plugin-good", v1)
	install(t, dir, "runhost-plugin-tampered", v2)
	install(t, dir, "runhost-plugin-unlisted", v1)
	sums := filepath.Join(t.TempDir(), "SHA256SUMS")
	content := fmt.Sprintf("%x  runhost-plugin-good\n%x *bin/runhost-plugin-tampered\n", sha256.Sum256(v1), sha256.Sum256(v1))
	if err := os.WriteFile(sums, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	checksums, err := LoadChecksums(sums)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := Discover(context.Background(), Config{Dir: dir, StartTimeout: 10 * time.Second, CallTimeout: 2 * time.Second, Checksums: checksums})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	got := map[string]FileReport{}
	for _, r := range reg.Reports() {
		got[filepath.Base(r.Path)] = r
	}
	if r := got["runhost-plugin-good"]; r.State != StateHealthy {
		t.Errorf("listed and matching: %+v", r)
	}
	if r := got["runhost-plugin-tampered"]; r.State != StateRefused || !strings.Contains(r.Reason, "does not match RUNHOST_PLUGIN_CHECKSUMS") {
		t.Errorf("checksum mismatch: %+v", r)
	}
	if r := got["runhost-plugin-unlisted"]; r.State != StateRefused || !strings.Contains(r.Reason, "not listed") {
		t.Errorf("unlisted: %+v", r)
	}
}

func TestHandshakeTimeoutIsExplained(t *testing.T) {
	dir := pluginDir(t, "runhost-plugin-sleepy")
	reg, err := Discover(context.Background(), Config{Dir: dir, StartTimeout: time.Second, CallTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	r := reg.Reports()[0]
	if r.State != StateRefused || !strings.Contains(r.Reason, "did not complete the handshake within 1s") || !strings.Contains(r.Reason, "shared.Serve") {
		t.Fatalf("report %+v", r)
	}
}

func TestStartedByHandIsExplained(t *testing.T) {
	bin := filepath.Join(pluginDir(t, "runhost-plugin-good"), "runhost-plugin-good")
	out, err := exec.Command(bin).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("exit: %v", err)
	}
	for _, want := range []string{"is a runhost runtime plugin", "RUNHOST_PLUGIN_DIR", "host plugin check"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("message %q does not say %q", out, want)
		}
	}
}
