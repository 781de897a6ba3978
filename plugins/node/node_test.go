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

func TestESModuleCodeIsAnMJSFile(t *testing.T) {
	rt := Node{}
	cases := []struct {
		code  string
		entry string
	}{
		{"import fs from 'fs';\nconsole.log(1)", "main.mjs"},
		{"  import {a} from './a.js'", "main.mjs"},
		{"import * as os from 'os'", "main.mjs"},
		{"import 'side-effect'", "main.mjs"},
		{"export const x = 1", "main.mjs"},
		{"export default 3", "main.mjs"},
		{"console.log(import.meta.url)\nimport.meta", "main.mjs"},
		{"const fs = require('fs')\nconsole.log(1)", "main.js"},
		{"import('fs').then(m => console.log(m))", "main.js"},
		{"// import x from 'y'\nconsole.log(1)", "main.js"},
		{"const important = 1; console.log(important)", "main.js"},
		{"exports.x = 1", "main.js"},
	}
	for _, tc := range cases {
		spec, err := rt.Plan(t.Context(), shared.RunRequest{Version: "18", Code: tc.code})
		if err != nil {
			t.Fatal(err)
		}
		if spec.Command[1] != tc.entry || spec.Files[0].Path != tc.entry {
			t.Errorf("%q: entry %s, want %s", tc.code, spec.Command[1], tc.entry)
		}
	}
}

// TestInterpreterPlan: the plugin declares interpreter sessions and plans
// its driver: the embedded source in shared.KernelDir, started by
// KernelCommand, speaking the host's protocol, in the version's image.
func TestInterpreterPlan(t *testing.T) {
	rt := plugintest.Connect(t, Node{})
	d := plugintest.Describe(t, rt)
	if !slices.Contains(d.Capabilities, shared.CapInterpreter) {
		t.Errorf("capabilities %q lack %q", d.Capabilities, shared.CapInterpreter)
	}
	spec, err := rt.Plan(t.Context(), shared.RunRequest{Version: "20", Interpreter: true})
	if err != nil {
		t.Fatal(err)
	}
	k := spec.Kernel
	if k == nil || !strings.HasSuffix(spec.Image, ":20") || len(spec.Files) != 0 || spec.Install != nil {
		t.Fatalf("%+v", spec)
	}
	if k.Protocol != shared.KernelProtocol || k.Driver.Path != KernelFile || !bytes.Equal(k.Driver.Content, KernelSource) ||
		!slices.Equal(k.Command, KernelCommand(shared.KernelDir+"/"+KernelFile)) {
		t.Errorf("kernel %q %q %q", k.Protocol, k.Driver.Path, k.Command)
	}
}
