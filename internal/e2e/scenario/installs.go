package scenario

import (
	"strings"
	"testing"
)

// Run runs req on runtime and fails the test unless it is a 200.
func Run(t *testing.T, post Post, runtime string, req map[string]any) Result {
	t.Helper()
	return run(t, post, "/runtimes/"+runtime+"/run", req)
}

// Installs checks dependency installs from the test package index
// (pkgindex): pip requirements and npm packages are installed once through
// the egress proxy, importable by the run, cached for the next run and
// read-only to it; a failed install is a result of the install stage, and
// the run does not start.
func Installs(t *testing.T, post Post) {
	t.Run("pip requirements are installed, importable and cached", func(t *testing.T) {
		first := Run(t, post, "python", map[string]any{"code": "from runhost_greet import greet\nprint(greet('pip'))", "requirements": []string{"runhost-greet==1.0"}})
		if first.Stage != "run" || first.Stdout != "hello pip from a wheel\n" {
			t.Fatalf("first run: %+v", first)
		}
		if first.Install == nil || first.Install.Cached {
			t.Fatalf("first run must install: %+v", first.Install)
		}
		second := Run(t, post, "python", map[string]any{"code": "from runhost_greet import greet\nprint(greet('again'))", "requirements": []string{" runhost-greet==1.0 ", "runhost-greet==1.0"}})
		if second.Stdout != "hello again from a wheel\n" || second.Install == nil || !second.Install.Cached {
			t.Fatalf("second run: %+v", second)
		}
	})
	t.Run("the run cannot write the installed packages", func(t *testing.T) {
		r := Run(t, post, "python", map[string]any{"code": "import os, runhost_greet\ntry:\n    open(os.path.dirname(runhost_greet.__file__) + '/x', 'w')\nexcept OSError as e:\n    print(e.strerror)", "requirements": []string{"runhost-greet==1.0"}})
		if r.Stdout != "Read-only file system\n" {
			t.Fatalf("stdout %q stderr %q", r.Stdout, r.Stderr)
		}
	})
	t.Run("a failed install is a result and the run does not start", func(t *testing.T) {
		r := Run(t, post, "python", map[string]any{"code": "print('ran')", "requirements": []string{"runhost-no-such-package"}})
		if r.Stage != "install" || r.ExitCode == 0 || strings.Contains(r.Stdout, "ran") {
			t.Fatalf("got %+v", r)
		}
		if !strings.Contains(r.Stderr, "No matching distribution found for runhost-no-such-package") {
			t.Errorf("stderr does not carry pip's error: %q", r.Stderr)
		}
	})
	t.Run("npm packages are installed and cached, for require and import", func(t *testing.T) {
		r := Run(t, post, "node", map[string]any{"code": "const greet = require('runhost-greet-js');\nconsole.log(greet('cjs'))", "packages": []string{"runhost-greet-js@1"}})
		if r.Stdout != "hello cjs from npm\n" || r.Install == nil || r.Install.Cached {
			t.Fatalf("CommonJS: %+v", r)
		}
		r = Run(t, post, "node", map[string]any{
			"files":    []map[string]string{{"path": "main.mjs", "content": "import greet from 'runhost-greet-js';\nconsole.log(greet('esm'))"}},
			"packages": []string{"runhost-greet-js@1"},
		})
		if r.Stdout != "hello esm from npm\n" || r.Install == nil || !r.Install.Cached {
			t.Fatalf("ES module: %+v", r)
		}
	})
}
