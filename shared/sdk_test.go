package shared_test

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/runhost/runhost/shared"
	"github.com/runhost/runhost/shared/plugintest"
)

// echoRuntime returns what it was asked, so a round trip shows every field
// crossed the wire intact.
type echoRuntime struct{ desc shared.Description }

func (e echoRuntime) Describe(context.Context) (shared.Description, error) {
	if e.desc.Name == "" {
		return shared.Description{Name: "echo", Versions: []shared.Version{{Version: "1", Image: "img:1", Default: true}}}, nil
	}
	return e.desc, nil
}

func (e echoRuntime) Plan(ctx context.Context, req shared.RunRequest) (shared.Spec, error) {
	switch req.Code {
	case "panic":
		panic("boom")
	case "invalid":
		return shared.Spec{}, shared.Invalidf("bad %s", "input")
	case "plain error":
		return shared.Spec{}, errors.New("plugin broke")
	case "block":
		<-ctx.Done()
		return shared.Spec{}, ctx.Err()
	}
	if req.Interpreter {
		return shared.Spec{
			Image: req.VersionImage,
			Env:   req.Env,
			Kernel: &shared.Kernel{
				Protocol: shared.KernelProtocol,
				Driver:   shared.File{Path: "driver.py", Content: []byte("print(1)\n")},
				Command:  []string{"python3", shared.KernelDir + "/driver.py"},
			},
		}, nil
	}
	if req.Code == "full" {
		return shared.Spec{
			Install: &shared.Install{Command: req.Packages, Files: req.Files, Env: req.Env, OutputDir: "/deps", Network: true},
			Build:   &shared.Build{Dockerfile: req.Dockerfile, Context: req.Files, BuildArgs: req.BuildArgs},
			Command: append(req.Command.Argv, req.Command.Shell, req.Image),
		}, nil
	}
	return shared.Spec{
		Image:   req.VersionImage,
		Files:   append(req.Files, shared.File{Path: "main", Content: []byte(req.Code)}),
		Command: append([]string{"run", req.Entry}, req.Args...),
		Env:     req.Env,
		WorkDir: "sub",
		Limits:  shared.Limits{Timeout: 1500 * time.Millisecond, MemoryBytes: 64 << 20, CPUs: 0.5},
	}, nil
}

func TestRoundTripThroughGRPC(t *testing.T) {
	desc := shared.Description{
		Name:         "echo",
		Aliases:      []string{"e"},
		Description:  "echoes",
		Capabilities: []shared.Capability{shared.CapStdin, shared.CapFiles},
		Versions: []shared.Version{
			{Version: "1.0", Image: "img:1.0", Default: true, SelfTest: shared.SelfTest{Code: "x", ExpectedStdout: "OK\n"}},
			{Version: "2.0", Image: "registry.example/echo:2.0"},
		},
	}
	rt := plugintest.Connect(t, echoRuntime{desc})

	got, err := rt.Describe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, desc) {
		t.Errorf("Describe:\n got %+v\nwant %+v", got, desc)
	}

	binary := []byte{0, 0xff, '\n', 0x80}
	spec, err := rt.Plan(t.Context(), shared.RunRequest{
		Version: "2.0",
		Code:    "print(1)",
		Files:   []shared.File{{Path: "data.bin", Content: binary}},
		Entry:   "data.bin",
		Args:    []string{"a", ""},
		Env:     map[string]string{"K": "v"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := shared.Spec{
		Image:   "registry.example/echo:2.0", // the host sent the version's image
		Files:   []shared.File{{Path: "data.bin", Content: binary}, {Path: "main", Content: []byte("print(1)")}},
		Command: []string{"run", "data.bin", "a", ""},
		Env:     map[string]string{"K": "v"},
		WorkDir: "sub",
		Limits:  shared.Limits{Timeout: 1500 * time.Millisecond, MemoryBytes: 64 << 20, CPUs: 0.5},
	}
	if !reflect.DeepEqual(spec, want) {
		t.Errorf("Plan:\n got %+v\nwant %+v", spec, want)
	}
}

func TestInstallBuildAndCustomFieldsCrossTheWire(t *testing.T) {
	rt := plugintest.Connect(t, echoRuntime{})
	files := []shared.File{{Path: "requirements.txt", Content: []byte("six\n")}}
	spec, err := rt.Plan(t.Context(), shared.RunRequest{
		Code:       "full",
		Files:      files,
		Env:        map[string]string{"K": "v"},
		Packages:   []string{"pip", "install"},
		Image:      "custom:1",
		Command:    shared.Command{Argv: []string{"a", "b"}, Shell: "echo"},
		Dockerfile: "FROM x",
		BuildArgs:  map[string]string{"V": "1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := shared.Spec{
		Install: &shared.Install{Command: []string{"pip", "install"}, Files: files, Env: map[string]string{"K": "v"}, OutputDir: "/deps", Network: true},
		Build:   &shared.Build{Dockerfile: "FROM x", Context: files, BuildArgs: map[string]string{"V": "1"}},
		Command: []string{"a", "b", "echo", "custom:1"},
		Files:   []shared.File{},
	}
	if !reflect.DeepEqual(spec, want) {
		t.Errorf("Plan:\n got %+v %+v %+v\nwant %+v %+v %+v", spec, spec.Install, spec.Build, want, want.Install, want.Build)
	}
}

func TestLargeFilesCrossTheWire(t *testing.T) {
	rt := plugintest.Connect(t, echoRuntime{})
	big := bytes.Repeat([]byte("x"), 12<<20) // above gRPC's default 4 MiB
	spec, err := rt.Plan(t.Context(), shared.RunRequest{Code: "c", Files: []shared.File{{Path: "big", Content: big}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Files[0].Content) != len(big) {
		t.Fatalf("got %d bytes back", len(spec.Files[0].Content))
	}
}

func TestErrorsKeepTheirKind(t *testing.T) {
	rt := plugintest.Connect(t, echoRuntime{})
	tests := []struct {
		code    string
		invalid bool
		message string
	}{
		{"invalid", true, "bad input"},
		{"plain error", false, "plugin broke"},
		{"panic", false, "plugin panicked in /runhost.plugin.v1.Runtime/Plan: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			_, err := rt.Plan(t.Context(), shared.RunRequest{Code: tt.code})
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, shared.ErrInvalidRequest) != tt.invalid {
				t.Errorf("errors.Is(%v, ErrInvalidRequest) = %v, want %v", err, !tt.invalid, tt.invalid)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not contain %q", err, tt.message)
			}
		})
	}
	// The plugin survived the panic.
	if _, err := rt.Plan(t.Context(), shared.RunRequest{Code: "fine"}); err != nil {
		t.Fatalf("after a panic: %v", err)
	}
}

func TestCancellationReachesThePlugin(t *testing.T) {
	rt := plugintest.Connect(t, echoRuntime{})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := rt.Plan(ctx, shared.RunRequest{Code: "block"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
}

func TestSourceFiles(t *testing.T) {
	f := func(p string) shared.File { return shared.File{Path: p} }
	tests := []struct {
		name    string
		req     shared.RunRequest
		paths   []string
		entry   string
		invalid string
	}{
		{"code only", shared.RunRequest{Code: "x"}, []string{"main.py"}, "main.py", ""},
		{"code and modules", shared.RunRequest{Code: "x", Files: []shared.File{f("lib.py")}}, []string{"main.py", "lib.py"}, "main.py", ""},
		{"files, first is entry", shared.RunRequest{Files: []shared.File{f("a.py"), f("b.py")}}, []string{"a.py", "b.py"}, "a.py", ""},
		{"files with entry", shared.RunRequest{Files: []shared.File{f("a.py"), f("b.py")}, Entry: "b.py"}, []string{"a.py", "b.py"}, "b.py", ""},
		{"entry missing", shared.RunRequest{Files: []shared.File{f("a.py")}, Entry: "c.py"}, nil, "", "not one of the files"},
		{"code clashes with a file", shared.RunRequest{Code: "x", Files: []shared.File{f("main.py")}}, nil, "", "clashes"},
		{"code and another entry", shared.RunRequest{Code: "x", Entry: "a.py"}, nil, "", "drop one"},
		{"nothing", shared.RunRequest{}, nil, "", "no code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, entry, err := shared.SourceFiles(tt.req, "main.py")
			if tt.invalid != "" {
				if !errors.Is(err, shared.ErrInvalidRequest) || !strings.Contains(err.Error(), tt.invalid) {
					t.Fatalf("got %v, want an invalid request about %q", err, tt.invalid)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var paths []string
			for _, f := range files {
				paths = append(paths, f.Path)
			}
			if !reflect.DeepEqual(paths, tt.paths) || entry != tt.entry {
				t.Errorf("got %v entry %q, want %v entry %q", paths, entry, tt.paths, tt.entry)
			}
		})
	}
}

// versionProbe reports the version, image and request id a Plan call
// arrives with.
type versionProbe struct{ echoRuntime }

func (p versionProbe) Plan(ctx context.Context, req shared.RunRequest) (shared.Spec, error) {
	return shared.Spec{Image: req.VersionImage, Command: []string{req.Version, shared.RequestID(ctx)}}, nil
}

func TestConnectCompletesRequestsAsTheHostDoes(t *testing.T) {
	rt := plugintest.Connect(t, versionProbe{echoRuntime{shared.Description{Name: "probe", Versions: []shared.Version{
		{Version: "1", Image: "probe:1"},
		{Version: "2", Image: "probe:2", Default: true},
	}}}})
	tests := []struct {
		version string
		image   string
		exact   string
	}{
		{"1", "probe:1", "1"},
		{"2", "probe:2", "2"},
		{"", "probe:2", "2"}, // the default
	}
	for _, tt := range tests {
		spec, err := rt.Plan(plugintest.WithRequestID(t.Context(), "req-"+tt.version), shared.RunRequest{Version: tt.version, Code: "x"})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{tt.exact, "req-" + tt.version}; spec.Image != tt.image || !reflect.DeepEqual(spec.Command, want) {
			t.Errorf("version %q: the plugin saw image %q, version and request id %q; want %q, %q", tt.version, spec.Image, spec.Command, tt.image, want)
		}
	}
	// The host never sends a version the plugin did not describe.
	if _, err := rt.Plan(t.Context(), shared.RunRequest{Version: "3", Code: "x"}); !errors.Is(err, shared.ErrInvalidRequest) {
		t.Errorf("an undescribed version: %v, want an invalid request", err)
	}
}

// An interpreter's plan crosses the wire: the request's flag one way, the
// kernel section (protocol, driver file, command) the other.
func TestKernelRoundTripThroughGRPC(t *testing.T) {
	rt := plugintest.Connect(t, echoRuntime{})
	spec, err := rt.Plan(t.Context(), shared.RunRequest{Version: "1", VersionImage: "img:1", Interpreter: true, Env: map[string]string{"A": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	want := shared.Spec{
		Image: "img:1",
		Env:   map[string]string{"A": "b"},
		Files: []shared.File{},
		Kernel: &shared.Kernel{
			Protocol: "runhost-kernel/1",
			Driver:   shared.File{Path: "driver.py", Content: []byte("print(1)\n")},
			Command:  []string{"python3", "/tmp/.runhost-kernel/driver.py"},
		},
	}
	if !reflect.DeepEqual(spec, want) {
		t.Errorf("Plan:\n got %+v\nwant %+v", spec, want)
	}
	// A plain plan has no kernel section.
	spec, err = rt.Plan(t.Context(), shared.RunRequest{Version: "1", VersionImage: "img:1", Code: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Kernel != nil {
		t.Errorf("a run's plan has a kernel: %+v", spec.Kernel)
	}
}
