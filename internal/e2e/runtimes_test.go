package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/volume"

	"github.com/runhost/runhost/internal/e2e/scenario"
	"github.com/runhost/runhost/internal/testenv"
)

func TestEveryVersionRunsItsOwnVersion(t *testing.T) {
	h := startHost(t)
	tests := []struct {
		runtime, version, code, want string
	}{
		{"python", "3.11", "import sys; print('%d.%d' % sys.version_info[:2])", "3.11\n"},
		{"python", "3.13", "import sys; print('%d.%d' % sys.version_info[:2])", "3.13\n"},
		{"python", "3", "import sys; print('%d.%d' % sys.version_info[:2])", "3.13\n"}, // prefix: newest 3.x
		{"python", "", "import sys; print('%d.%d' % sys.version_info[:2])", "3.11\n"},  // the default
		{"node", "18", "console.log(process.versions.node.split('.')[0])", "18\n"},
		{"node", "20", "console.log(process.versions.node.split('.')[0])", "20\n"},
		{"node", "", "console.log(process.versions.node.split('.')[0])", "20\n"},
		{"shell", "5", `echo "${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]}"`, "5.2\n"},
	}
	for _, tt := range tests {
		t.Run(tt.runtime+"@"+tt.version, func(t *testing.T) {
			res := h.run(tt.runtime, map[string]any{"code": tt.code, "version": tt.version})
			if res.Stdout != tt.want {
				t.Fatalf("stdout %q, want %q (stderr %q)", res.Stdout, tt.want, res.Stderr)
			}
		})
	}
	status, body := h.post("/runtimes/node/run", map[string]any{"code": "1", "version": "1"})
	if status != 404 || !strings.Contains(string(body), "known versions: 18, 20") {
		t.Errorf("version 1 of node: %d %s", status, body)
	}
}

func TestSelfTestsPassAndShowInRuntimes(t *testing.T) {
	h := startHost(t)
	results := h.App.Runner.SelfTest(context.Background())
	if len(results) < 6 {
		t.Fatalf("%d self-tests, want one per version of every runtime", len(results))
	}
	for _, r := range results {
		if !r.Passed {
			t.Errorf("%s %s: want %q, got %q", r.Runtime, r.Version, r.Expected, r.Got)
		}
	}
	_, body := h.do(context.Background(), http.MethodGet, "/runtimes/python", nil)
	if !strings.Contains(string(body), `"self_test":{"passed":true,"expected":"OK 3.13\n"`) {
		t.Errorf("GET /runtimes/python does not show the self-test result: %s", body)
	}
}

func TestNodeModulesAndStdio(t *testing.T) {
	h := startHost(t)
	res := h.run("node", map[string]any{
		"files": []map[string]string{
			{"path": "main.mjs", "content": "import { twice } from './lib/twice.mjs';\nimport { readFileSync } from 'node:fs';\nconst input = readFileSync(0, 'utf8');\nconsole.log(twice(input.trim()), process.argv.slice(2).join(','), process.env.MODE);\n"},
			{"path": "lib/twice.mjs", "content": "export const twice = (s) => s + s;\n"},
		},
		"entry": "main.mjs",
		"stdin": "ab\n",
		"args":  []string{"x", "y"},
		"env":   map[string]string{"MODE": "esm"},
	})
	if res.Stdout != "abab x,y esm\n" {
		t.Errorf("ES module: stdout %q stderr %q", res.Stdout, res.Stderr)
	}
	res = h.run("node", map[string]any{
		"files": []map[string]string{
			{"path": "main.js", "content": "const { twice } = require('./lib/twice');\nconsole.log(twice('cj'), typeof module);\n"},
			{"path": "lib/twice.js", "content": "exports.twice = (s) => s + s;\n"},
		},
	})
	if res.Stdout != "cjcj object\n" {
		t.Errorf("CommonJS: stdout %q stderr %q", res.Stdout, res.Stderr)
	}
	// code with import statements is an ES module on every version.
	for _, v := range []string{"18", "20"} {
		res = h.run("node", map[string]any{"version": v, "code": "import { cpus } from 'node:os';\nconsole.log(typeof cpus, typeof require);\n"})
		if res.Stdout != "function undefined\n" {
			t.Errorf("node %s, ES module code: stdout %q stderr %q", v, res.Stdout, res.Stderr)
		}
	}
}

// watchInstalls counts the install containers the host creates from now
// until the returned function is called.
func watchInstalls(t *testing.T, h *host) func() int {
	t.Helper()
	stop := watchEvents(t, h.Docker, filters.NewArgs(
		filters.Arg("type", "container"),
		filters.Arg("event", "create"),
		filters.Arg("label", "runhost.step=install"),
		filters.Arg("label", "runhost.instance="+h.App.Instance),
	))
	return func() int { return len(stop()) }
}

func TestDependenciesFromALocalIndex(t *testing.T) {
	cli := dockerClient(t)
	idx := startPackageIndex(t, cli)
	h := startHostWith(t, cli, idx.env()...)

	installs := watchInstalls(t, h)
	scenario.Installs(t, h.post)
	t.Run("a cached install starts no install container", func(t *testing.T) {
		// The scenario installed two sets (pip, npm) and failed one.
		if n := installs(); n != 3 {
			t.Errorf("%d install containers, want 3 (one per distinct install)", n)
		}
	})
	t.Run("the run has no network", func(t *testing.T) {
		res := h.run("python", map[string]any{"code": "import os, runhost_greet\nprint(sorted(os.listdir('/sys/class/net')))", "requirements": []string{"runhost-greet==1.0"}})
		if res.Stdout != "['lo']\n" {
			t.Fatalf("stdout %q stderr %q", res.Stdout, res.Stderr)
		}
	})
	t.Run("options and URLs are refused", func(t *testing.T) {
		for _, bad := range []string{"--index-url=http://evil/", "pkg @ https://evil/pkg.whl", "-e git+https://x"} {
			status, body := h.post("/runtimes/python/run", map[string]any{"code": "1", "requirements": []string{bad}})
			if status != 400 {
				t.Errorf("requirement %q: %d %s", bad, status, body)
			}
		}
		status, body := h.post("/runtimes/node/run", map[string]any{"code": "1", "packages": []string{"git+https://x/y.git"}})
		if status != 400 {
			t.Errorf("npm URL: %d %s", status, body)
		}
	})
}

func TestInstallWithoutNetworkFailsClearly(t *testing.T) {
	cli := dockerClient(t)
	idx := startPackageIndex(t, cli)
	h := startHostWith(t, cli, append(idx.env(), "RUNHOST_ALLOW_INSTALL_NETWORK=false", "RUNHOST_INSTALL_TIMEOUT_MS=60000")...)
	res := h.run("python", map[string]any{"code": "print('ran')", "requirements": []string{"runhost-greet==1.0"}})
	if res.Stage != "install" || res.ExitCode == 0 || strings.Contains(res.Stdout, "ran") {
		t.Fatalf("got %+v", res)
	}
	if !strings.Contains(res.Stderr, "runhost-greet") {
		t.Errorf("stderr does not say what failed: %q", res.Stderr)
	}
}

func TestCustomImages(t *testing.T) {
	h := startHost(t)
	res := h.run("shell", map[string]any{"image": "runhost/python:3.13", "command": []string{"python3", "-c", "import sys; print(sys.argv[1:])"}, "args": []string{"a"}})
	if res.Stdout != "['a']\n" || res.Image != "runhost/python:3.13" {
		t.Errorf("allowed image with argv: %+v", res)
	}
	res = h.run("shell", map[string]any{"image": "runhost/node:18", "command": "node --version | cut -c1-3"})
	if res.Stdout != "v18\n" {
		t.Errorf("allowed image with a shell line: %+v", res)
	}
	status, body := h.post("/runtimes/shell/run", map[string]any{"image": "alpine:3", "command": "id"})
	if status != http.StatusForbidden || !strings.Contains(string(body), "RUNHOST_ALLOWED_IMAGES") {
		t.Errorf("refused image: %d %s", status, body)
	}
	status, body = h.post("/runtimes/python/run", map[string]any{"image": "runhost/shell:bookworm", "code": "1"})
	if status != 400 || !strings.Contains(string(body), "does not support image") {
		t.Errorf("image on a runtime without custom images: %d %s", status, body)
	}

	h2 := startHost(t, "RUNHOST_ALLOWED_IMAGES=runhost/python:*")
	if res := h2.run("shell", map[string]any{"image": "runhost/python:3.11", "command": "echo ok"}); res.Stdout != "ok\n" {
		t.Errorf("image matching the pattern: %+v", res)
	}
	if status, body := h2.post("/runtimes/shell/run", map[string]any{"image": "runhost/node:20", "command": "echo no"}); status != 403 {
		t.Errorf("image outside the pattern: %d %s", status, body)
	}
}

func TestDockerfileBuilds(t *testing.T) {
	h := startBuildHost(t, "RUNHOST_MAX_CONTEXT_BYTES=4096", "RUNHOST_ALLOWED_IMAGES=runhost/python:*,runhost/shell:*,runhost/no-such-image:*")
	// Built images outlive hosts (a content-keyed cache): a nonce makes this
	// test's Dockerfile new, so its first build really builds.
	dockerfile := fmt.Sprintf("FROM runhost/python:3.11\nLABEL test.nonce=%d\nCOPY app.py /app/\nWORKDIR /app\nCMD [\"python3\", \"app.py\"]\n", time.Now().UnixNano())
	req := map[string]any{
		"dockerfile": dockerfile,
		"files":      []map[string]string{{"path": "app.py", "content": "import os, sys\nprint('built', os.getcwd(), sys.stdin.read())\n"}},
		"stdin":      "in",
	}
	first := h.run("dockerfile", req)
	if first.Stage != "run" || first.Stdout != "built /app in\n" {
		t.Fatalf("first: %+v", first)
	}
	if first.Build == nil || first.Build.Cached || !strings.Contains(first.Build.Log, "COPY app.py /app/") {
		t.Fatalf("first build info: %+v", first.Build)
	}
	before := builtImages(t, h)
	second := h.run("dockerfile", req)
	if second.Stdout != "built /app in\n" || second.Build == nil || !second.Build.Cached || second.Build.Image != first.Build.Image {
		t.Fatalf("second: %+v", second)
	}
	if after := builtImages(t, h); after != before {
		t.Errorf("the cached build changed the number of built images from %d to %d", before, after)
	}

	t.Run("command overrides the image's", func(t *testing.T) {
		res := h.run("dockerfile", map[string]any{"dockerfile": dockerfile, "files": req["files"], "command": []string{"python3", "-c", "print('override')"}})
		if res.Stdout != "override\n" || !res.Build.Cached {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("the built image runs hardened", func(t *testing.T) {
		res := h.run("dockerfile", map[string]any{"dockerfile": "FROM runhost/shell:bookworm\nUSER root\n", "command": "id -u; touch /x 2>&1 | grep -c Read-only; ls /sys/class/net"})
		if res.Stdout != "1000\n1\nlo\n" {
			t.Fatalf("stdout %q stderr %q", res.Stdout, res.Stderr)
		}
	})
	t.Run("a broken Dockerfile is a result with the log", func(t *testing.T) {
		res := h.run("dockerfile", map[string]any{"dockerfile": "FROM runhost/shell:bookworm\nRUN echo building && exit 3\nCMD [\"true\"]\n"})
		if res.Stage != "build" || res.ExitCode == 0 || !strings.Contains(res.Build.Log, "building") || !strings.Contains(res.Stderr, "did not complete successfully: exit code: 3") {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("a missing base image is named", func(t *testing.T) {
		res := h.run("dockerfile", map[string]any{"dockerfile": "FROM runhost/no-such-image:1\nCMD [\"true\"]\n"})
		if res.Stage != "build" || !strings.Contains(res.Stderr, "runhost/no-such-image:1") {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("builds have no network", func(t *testing.T) {
		res := h.run("dockerfile", map[string]any{"dockerfile": "FROM runhost/shell:bookworm\nRUN tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /home/runner/nets\nCMD [\"cat\", \"/home/runner/nets\"]\n"})
		if res.Stdout != "lo\n" {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("an oversize context is a 413", func(t *testing.T) {
		status, body := h.post("/runtimes/dockerfile/run", map[string]any{"dockerfile": dockerfile, "files": []map[string]string{{"path": "big", "content": strings.Repeat("x", 5000)}}})
		if status != http.StatusRequestEntityTooLarge || decodeError(t, body).Error.Code != "context_too_large" {
			t.Fatalf("%d %s", status, body)
		}
	})
}

func builtImages(t *testing.T, h *host) int {
	t.Helper()
	list, err := h.Docker.ImageList(context.Background(), image.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "runhost.build"))})
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// TestRealNpmRegistry installs a real package from the npm registry through
// this machine's TLS-intercepting proxy, on the default settings: installs
// trust the machine's CA bundle. With RUNHOST_CA_BUNDLE=none the install
// fails and says which setting fixes it. It needs the registry: it is
// skipped where the registry does not answer.
func TestRealNpmRegistry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://registry.npmjs.org/is-number", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Skipf("needs the npm registry, which does not answer here: %v", err)
	}
	resp.Body.Close()
	h := startHost(t)
	res := h.run("node", map[string]any{"code": "console.log(require('is-number')(5))", "packages": []string{"is-number@7.0.0"}})
	if res.Stage != "run" || res.Stdout != "true\n" {
		t.Fatalf("%+v", res)
	}
	t.Logf("install and run on the defaults: %d ms", res.DurationMS)

	h = startHost(t, "RUNHOST_CA_BUNDLE=none")
	res = h.run("node", map[string]any{"code": "console.log(require('is-number')(5))", "packages": []string{"is-number@7.0.0"}})
	if res.Stage != "install" || !strings.Contains(res.Stderr, "RUNHOST_CA_BUNDLE") {
		t.Fatalf("without the machine's CAs behind a re-signing proxy: %+v", res)
	}
	t.Logf("failed install without the machine's CAs: %d ms", res.DurationMS)
}

func TestCachesEvictLeastRecentlyUsed(t *testing.T) {
	cli := dockerClient(t)
	idx := startPackageIndex(t, cli)
	testenv.RequireBuilder(t, cli)
	h := startHostWith(t, cli, append(idx.env(), "RUNHOST_DEPS_CACHE_ENTRIES=1", "RUNHOST_BUILD_CACHE_ENTRIES=1")...)
	depsVolumes := func() []string {
		list, err := cli.VolumeList(context.Background(), volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "runhost.deps"))})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, v := range list.Volumes {
			names = append(names, v.Name)
		}
		return names
	}
	code := "import runhost_greet; print('ok')"
	h.run("python", map[string]any{"code": code, "requirements": []string{"runhost-greet==1.0"}})
	first := depsVolumes()
	h.run("python", map[string]any{"code": code, "requirements": []string{"runhost-greet>=1.0"}})
	testenv.Eventually(t, 30*time.Second, "the older dependency volume to be evicted", func() bool {
		now := depsVolumes()
		for _, v := range first {
			if slices.Contains(now, v) {
				return false
			}
		}
		return len(now) == 1
	})

	h.run("dockerfile", map[string]any{"dockerfile": "FROM runhost/shell:bookworm\nLABEL evict=one\nCMD [\"true\"]\n"})
	h.run("dockerfile", map[string]any{"dockerfile": "FROM runhost/shell:bookworm\nLABEL evict=two\nCMD [\"true\"]\n"})
	testenv.Eventually(t, 30*time.Second, "the older built image to be removed", func() bool {
		return builtImages(t, h) <= 1
	})
}
