package main

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/runhost/runhost/shared"
	"github.com/runhost/runhost/shared/plugintest"
)

// The tests talk to the plugin the way the host does: through the SDK's gRPC
// server and client, in memory, without Docker or a plugin binary.

func TestDescribe(t *testing.T) {
	rt := plugintest.Connect(t, Ruby{})
	d, err := rt.Describe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "ruby" || !slices.Equal(d.Aliases, []string{"rb"}) || d.Description == "" {
		t.Errorf("names: %+v", d)
	}
	want := []shared.Capability{shared.CapStdin, shared.CapArgs, shared.CapEnv, shared.CapFiles}
	if !slices.Equal(d.Capabilities, want) {
		t.Errorf("capabilities = %q, want %q", d.Capabilities, want)
	}
	if len(d.Versions) != 1 {
		t.Fatalf("versions = %+v, want one", d.Versions)
	}
	v := d.Versions[0]
	if v.Version != "3.1" || v.Image != "runhost/ruby:3.1" || !v.Default {
		t.Errorf("version = %+v, want 3.1 in runhost/ruby:3.1, the default", v)
	}
	if v.SelfTest.Code == "" || v.SelfTest.ExpectedStdout != "OK 3.1\n" {
		t.Errorf("self-test = %+v, want one that prints \"OK 3.1\\n\"", v.SelfTest)
	}
}

func TestPlan(t *testing.T) {
	rt := plugintest.Connect(t, Ruby{})
	lib := shared.File{Path: "lib/greet.rb", Content: []byte("def greet(n) = \"hello #{n}\"\n")}
	app := shared.File{Path: "app.rb", Content: []byte("require_relative 'lib/greet'\nputs greet('files')\n")}
	tests := []struct {
		name    string
		req     shared.RunRequest
		command []string
		files   []string
	}{
		{"code", shared.RunRequest{Version: "3.1", Code: "puts 1"}, []string{"ruby", "main.rb"}, []string{"main.rb"}},
		{"code and args", shared.RunRequest{Version: "3.1", Code: "p ARGV", Args: []string{"a b", "-c"}}, []string{"ruby", "main.rb", "a b", "-c"}, []string{"main.rb"}},
		{"code beside files", shared.RunRequest{Version: "3.1", Code: "require_relative 'lib/greet'", Files: []shared.File{lib}}, []string{"ruby", "main.rb"}, []string{"main.rb", "lib/greet.rb"}},
		{"files with entry", shared.RunRequest{Version: "3.1", Files: []shared.File{lib, app}, Entry: "app.rb"}, []string{"ruby", "app.rb"}, []string{"lib/greet.rb", "app.rb"}},
		{"files, first is entry", shared.RunRequest{Version: "3.1", Files: []shared.File{app, lib}}, []string{"ruby", "app.rb"}, []string{"app.rb", "lib/greet.rb"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := rt.Plan(t.Context(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if spec.Image != "runhost/ruby:3.1" {
				t.Errorf("image = %q", spec.Image)
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
			if spec.WorkDir != "" || spec.Install != nil || spec.Build != nil {
				t.Errorf("spec asks for more than a plain run: %+v", spec)
			}
		})
	}
}

func TestPlanCarriesContentAndEnv(t *testing.T) {
	rt := plugintest.Connect(t, Ruby{})
	env := map[string]string{"GREETING": "hej", "EMPTY": ""}
	spec, err := rt.Plan(t.Context(), shared.RunRequest{Version: "3.1", Code: "puts ENV['GREETING']", Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Files) != 1 || string(spec.Files[0].Content) != "puts ENV['GREETING']" {
		t.Errorf("files = %+v, want main.rb holding the code", spec.Files)
	}
	if !maps.Equal(spec.Env, env) {
		t.Errorf("env = %v, want %v", spec.Env, env)
	}
}

func TestPlanRefusesWhatItCannotRun(t *testing.T) {
	rt := plugintest.Connect(t, Ruby{})
	for name, req := range map[string]shared.RunRequest{
		"no code":                    {Version: "3.1"},
		"entry not a file":           {Version: "3.1", Files: []shared.File{{Path: "app.rb"}}, Entry: "x.rb"},
		"entry and code":             {Version: "3.1", Code: "puts 1", Entry: "app.rb"},
		"file clashes with code":     {Version: "3.1", Code: "puts 1", Files: []shared.File{{Path: "main.rb"}}},
		"entry looks like an option": {Version: "3.1", Files: []shared.File{{Path: "-e"}}, Args: []string{"puts 1"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := rt.Plan(t.Context(), req)
			if !errors.Is(err, shared.ErrInvalidRequest) {
				t.Fatalf("Plan = %v, want an invalid-request error (a 400 for the caller)", err)
			}
		})
	}
}

// requestIDProbe records the request id a call arrives with; shared.Log(ctx)
// puts the same id on the plugin's log line.
type requestIDProbe struct {
	Ruby
	got chan string
}

func (p requestIDProbe) Plan(ctx context.Context, req shared.RunRequest) (shared.Spec, error) {
	p.got <- shared.RequestID(ctx)
	return p.Ruby.Plan(ctx, req)
}

func TestPlanSeesTheHostsRequestID(t *testing.T) {
	probe := requestIDProbe{got: make(chan string, 1)}
	rt := plugintest.Connect(t, probe)
	ctx := plugintest.WithRequestID(t.Context(), "req-42")
	if _, err := rt.Plan(ctx, shared.RunRequest{Version: "3.1", Code: "puts 1"}); err != nil {
		t.Fatal(err)
	}
	if got := <-probe.got; got != "req-42" {
		t.Errorf("request id in the plugin = %q, want req-42", got)
	}
}
