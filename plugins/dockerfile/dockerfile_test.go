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
	if spec.Build == nil || spec.Build.Dockerfile != "FROM x" || len(spec.Build.Context) != 1 || spec.Build.BuildArgs["A"] != "1" || spec.Image != "" || spec.Command != nil {
		t.Fatalf("spec = %+v", spec)
	}
	spec, err = rt.Plan(t.Context(), shared.RunRequest{Version: "1", Code: "FROM y", Command: shared.Command{Argv: []string{"run"}}, Args: []string{"a"}})
	if err != nil || spec.Build.Dockerfile != "FROM y" || !slices.Equal(spec.Command, []string{"run", "a"}) {
		t.Fatalf("code as Dockerfile: %+v %v", spec, err)
	}
	for name, req := range map[string]shared.RunRequest{
		"no Dockerfile":          {Version: "1"},
		"both forms":             {Version: "1", Code: "FROM a", Dockerfile: "FROM b"},
		"Dockerfile in context":  {Version: "1", Dockerfile: "FROM a", Files: []shared.File{{Path: "Dockerfile"}}},
		"args without a command": {Version: "1", Dockerfile: "FROM a", Args: []string{"x"}},
	} {
		if _, err := rt.Plan(t.Context(), req); !errors.Is(err, shared.ErrInvalidRequest) {
			t.Errorf("%s: %v, want an invalid request", name, err)
		}
	}
}
