package main

import (
	"errors"
	"slices"
	"testing"

	"github.com/runhost/runhost/shared"
	"github.com/runhost/runhost/shared/plugintest"
)

func TestPlan(t *testing.T) {
	rt := plugintest.Connect(t, Dockerfile{})
	ctx := []shared.File{{Path: "app.py", Content: []byte("print(1)")}}
	spec, err := rt.Plan(t.Context(), shared.RunRequest{Version: "1", Dockerfile: "FROM x", Files: ctx, BuildArgs: map[string]string{"A": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Build == nil || spec.Build.Dockerfile != "FROM x" || len(spec.Build.Context) != 1 || spec.Build.BuildArgs["A"] != "1" || spec.Image != "" || spec.Command != nil || spec.Build.Cmd != nil {
		t.Fatalf("spec = %+v", spec)
	}
	for name, req := range map[string]shared.RunRequest{
		"no Dockerfile": {Version: "1"},
		"both forms":    {Version: "1", Code: "FROM a", Dockerfile: "FROM b"},
	} {
		if _, err := rt.Plan(t.Context(), req); !errors.Is(err, shared.ErrInvalidRequest) {
			t.Errorf("%s: %v, want an invalid request", name, err)
		}
	}
}

// The run follows docker run: command replaces the image's CMD (the host
// keeps its ENTRYPOINT), args come after; neither replaces the argv.
func TestPlanCommandAndArgs(t *testing.T) {
	rt := plugintest.Connect(t, Dockerfile{})
	tests := []struct {
		name      string
		req       shared.RunRequest
		cmd, args []string
	}{
		{"argv replaces CMD", shared.RunRequest{Command: shared.Command{Argv: []string{"x", "y"}}}, []string{"x", "y"}, nil},
		{"argv and args", shared.RunRequest{Command: shared.Command{Argv: []string{"run"}}, Args: []string{"a"}}, []string{"run"}, []string{"a"}},
		{"a shell line", shared.RunRequest{Command: shared.Command{Shell: "echo $1"}, Args: []string{"a"}}, []string{"sh", "-c", "echo $1", "sh"}, []string{"a"}},
		{"args alone follow the image's CMD", shared.RunRequest{Args: []string{"a", "b"}}, nil, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Version, tt.req.Code = "1", "FROM y"
			spec, err := rt.Plan(t.Context(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if spec.Command != nil || !slices.Equal(spec.Build.Cmd, tt.cmd) || !slices.Equal(spec.Build.Args, tt.args) {
				t.Fatalf("command %q, build cmd %q, args %q; want cmd %q, args %q", spec.Command, spec.Build.Cmd, spec.Build.Args, tt.cmd, tt.args)
			}
		})
	}
}

// A context with its own Dockerfile builds with it, unless the request gives
// one, which wins (docker build -f); the context keeps its Dockerfile.
func TestPlanContextDockerfile(t *testing.T) {
	rt := plugintest.Connect(t, Dockerfile{})
	ctx := []shared.File{{Path: "Dockerfile", Content: []byte("FROM own")}, {Path: "sub/Dockerfile", Content: []byte("FROM sub")}}
	spec, err := rt.Plan(t.Context(), shared.RunRequest{Version: "1", Files: ctx})
	if err != nil || spec.Build.Dockerfile != "FROM own" || len(spec.Build.Context) != 2 {
		t.Fatalf("the context's own: %+v %v", spec, err)
	}
	spec, err = rt.Plan(t.Context(), shared.RunRequest{Version: "1", Dockerfile: "FROM given", Files: ctx})
	if err != nil || spec.Build.Dockerfile != "FROM given" || len(spec.Build.Context) != 2 {
		t.Fatalf("the given one: %+v %v", spec, err)
	}
	if _, err := rt.Plan(t.Context(), shared.RunRequest{Version: "1", Files: ctx[1:]}); !errors.Is(err, shared.ErrInvalidRequest) {
		t.Fatalf("only a sub-directory's Dockerfile: %v", err)
	}
}
