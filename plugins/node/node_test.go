package main

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/runhost/runhost/shared"
	"github.com/runhost/runhost/shared/plugintest"
)

func TestPlan(t *testing.T) {
	rt := plugintest.Connect(t, Node{})
	spec, err := rt.Plan(t.Context(), shared.RunRequest{Version: "18", Files: []shared.File{{Path: "app.mjs"}}, Args: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(spec.Command, []string{"node", "app.mjs", "a"}) || spec.Image != "runhost/node:18" || spec.Install != nil {
		t.Errorf("spec = %+v", spec)
	}
	if _, err := rt.Plan(t.Context(), shared.RunRequest{Version: "20", Files: []shared.File{{Path: "app.py"}}}); !errors.Is(err, shared.ErrInvalidRequest) {
		t.Errorf("a .py entry: %v", err)
	}
}

func TestPackages(t *testing.T) {
	rt := plugintest.Connect(t, Node{})
	spec, err := rt.Plan(t.Context(), shared.RunRequest{Version: "20", Code: "1", Packages: []string{"lodash@4", " @scope/pkg@^1.2.0 ", "lodash@4"}})
	if err != nil {
		t.Fatal(err)
	}
	i := spec.Install
	if i == nil || i.OutputDir != "/node_modules" || !i.Network {
		t.Fatalf("install = %+v", i)
	}
	if got := strings.Join(i.Command[len(i.Command)-2:], " "); got != "@scope/pkg@^1.2.0 lodash@4" {
		t.Errorf("packages are sorted and de-duplicated: %q", got)
	}
	for _, bad := range []string{"git+https://github.com/x/y", "../local", "-g", "https://x/y.tgz", "file:../x", "a b"} {
		if _, err := rt.Plan(t.Context(), shared.RunRequest{Version: "20", Code: "1", Packages: []string{bad}}); !errors.Is(err, shared.ErrInvalidRequest) {
			t.Errorf("package %q: %v, want refused", bad, err)
		}
	}
}
