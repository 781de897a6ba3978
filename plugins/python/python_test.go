package main

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/runhost/runhost/shared"
	"github.com/runhost/runhost/shared/plugintest"
)

func TestDescription(t *testing.T) {
	d := plugintest.Describe(t, plugintest.Connect(t, Python{}))
	if d.Name != "python" || len(d.Versions) < 2 {
		t.Errorf("%+v", d)
	}
}

func TestPlan(t *testing.T) {
	rt := plugintest.Connect(t, Python{})
	tests := []struct {
		name    string
		req     shared.RunRequest
		command []string
		files   []string
		invalid bool
	}{
		{"code", shared.RunRequest{Version: "3.11", Code: "print(1)", Args: []string{"a"}}, []string{"python3", "main.py", "a"}, []string{"main.py"}, false},
		{"files with entry", shared.RunRequest{Version: "3.11", Files: []shared.File{{Path: "lib.py"}, {Path: "app.py"}}, Entry: "app.py"}, []string{"python3", "app.py"}, []string{"lib.py", "app.py"}, false},
		{"files, first is entry", shared.RunRequest{Version: "3.11", Files: []shared.File{{Path: "app.py"}}}, []string{"python3", "app.py"}, []string{"app.py"}, false},
		{"entry missing", shared.RunRequest{Version: "3.11", Files: []shared.File{{Path: "app.py"}}, Entry: "x.py"}, nil, nil, true},
		{"no code", shared.RunRequest{Version: "3.11"}, nil, nil, true},
		{"unknown version", shared.RunRequest{Version: "2.7", Code: "print 1"}, nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := rt.Plan(t.Context(), tt.req)
			if tt.invalid {
				if !errors.Is(err, shared.ErrInvalidRequest) {
					t.Fatalf("Plan = %v, want an invalid-request error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(spec.Command, tt.command) {
				t.Errorf("command = %q, want %q", spec.Command, tt.command)
			}
			var paths []string
			for _, f := range spec.Files {
				paths = append(paths, f.Path)
			}
			if !slices.Equal(paths, tt.files) {
				t.Errorf("files = %q, want %q", paths, tt.files)
			}
			if spec.Image != "runhost/python:3.11" {
				t.Errorf("image = %q", spec.Image)
			}
			if spec.Env["PYTHONUNBUFFERED"] != "1" {
				t.Errorf("env = %v, want PYTHONUNBUFFERED=1", spec.Env)
			}
		})
	}
}

func TestRequirements(t *testing.T) {
	rt := plugintest.Connect(t, Python{})
	spec, err := rt.Plan(t.Context(), shared.RunRequest{Version: "3.13", Code: "1", Packages: []string{"requests>=2", "# comment", "", "numpy==2.0", "requests>=2"}})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Install == nil || spec.Install.OutputDir != "/deps" || spec.Env["PYTHONPATH"] != "/deps" || spec.Image != "runhost/python:3.13" {
		t.Fatalf("spec = %+v", spec)
	}
	if got := string(spec.Install.Files[0].Content); got != "numpy==2.0\nrequests>=2\n" {
		t.Errorf("requirements.txt = %q, want sorted and de-duplicated", got)
	}
	for _, bad := range []string{"--index-url http://x", "-e .", "pkg @ https://x/p.whl", "./local", "git+https://x"} {
		if _, err := rt.Plan(t.Context(), shared.RunRequest{Version: "3.11", Code: "1", Packages: []string{bad}}); !errors.Is(err, shared.ErrInvalidRequest) {
			t.Errorf("requirement %q: %v, want refused", bad, err)
		}
	}
}

// TestInterpreterPlan: the plugin declares interpreter sessions and plans
// its driver: the embedded source in shared.KernelDir, started by
// KernelCommand, speaking the host's protocol, in the version's image.
func TestInterpreterPlan(t *testing.T) {
	rt := plugintest.Connect(t, Python{})
	d := plugintest.Describe(t, rt)
	if !slices.Contains(d.Capabilities, shared.CapInterpreter) {
		t.Errorf("capabilities %q lack %q", d.Capabilities, shared.CapInterpreter)
	}
	spec, err := rt.Plan(t.Context(), shared.RunRequest{Version: "3.11", Interpreter: true})
	if err != nil {
		t.Fatal(err)
	}
	k := spec.Kernel
	if k == nil || !strings.HasSuffix(spec.Image, ":3.11") || len(spec.Files) != 0 || spec.Install != nil {
		t.Fatalf("%+v", spec)
	}
	if k.Protocol != shared.KernelProtocol || k.Driver.Path != KernelFile || !bytes.Equal(k.Driver.Content, KernelSource) ||
		!slices.Equal(k.Command, KernelCommand(shared.KernelDir+"/"+KernelFile)) {
		t.Errorf("kernel %q %q %q", k.Protocol, k.Driver.Path, k.Command)
	}
}
