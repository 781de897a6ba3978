//go:build k8s

package k8s

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildResult is a dockerfile run's response.
type buildResult struct {
	result
	Stage string `json:"stage"`
	Build *struct {
		Cached     bool   `json:"cached"`
		Image      string `json:"image"`
		Log        string `json:"log"`
		DurationMS int64  `json:"duration_ms"`
	} `json:"build"`
}

// startBuildHost starts a host whose Dockerfile builds run as build pods
// and push to the suite's registry (scripts/e2e-k8s.sh serves it, with the
// base images in it as a docker.io mirror).
func startBuildHost(t *testing.T, env ...string) *host {
	t.Helper()
	reg := os.Getenv("RUNHOST_K8S_TEST_REGISTRY")
	if reg == "" || os.Getenv("RUNHOST_K8S_BUILDER_IMAGE") == "" {
		t.Fatal("run through scripts/e2e-k8s.sh: RUNHOST_K8S_TEST_REGISTRY and RUNHOST_K8S_BUILDER_IMAGE are not set")
	}
	toml := filepath.Join(t.TempDir(), "buildkitd.toml")
	conf := fmt.Sprintf("[worker.oci]\n  enabled = true\n[worker.containerd]\n  enabled = false\n"+
		"[registry.\"docker.io\"]\n  mirrors = [%q]\n[registry.%q]\n  http = true\n  insecure = true\n", reg, reg)
	if err := os.WriteFile(toml, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return startHost(t, append([]string{
		"RUNHOST_K8S_BUILD_REPOSITORY=" + reg + "/runhost/builds",
		"RUNHOST_K8S_BUILD_REGISTRY_INSECURE=true",
		"RUNHOST_K8S_BUILDER_IMAGE=" + os.Getenv("RUNHOST_K8S_BUILDER_IMAGE"),
		"RUNHOST_K8S_BUILDKIT_CONFIG=" + toml,
		"RUNHOST_BUILD_TIMEOUT_MS=300000",
		// The runtimes' images, and the missing one a test names.
		"RUNHOST_ALLOWED_IMAGES=runhost/python:*,runhost/node:*,runhost/shell:*," + reg + "/runhost/no-such-image:*",
	}, env...)...)
}

func (h *host) build(req map[string]any) buildResult {
	h.t.Helper()
	status, body := h.post("/runtimes/dockerfile/run", req)
	if status != 200 {
		h.t.Fatalf("dockerfile run: %d %s", status, body)
	}
	var r buildResult
	if err := json.Unmarshal(body, &r); err != nil {
		h.t.Fatalf("%v: %s", err, body)
	}
	return r
}

// Dockerfile builds on Kubernetes: a build pod runs rootless BuildKit,
// pushes the image to the build repository, and the run pod's node pulls
// it from there; the same answers as on Docker.
func TestDockerfileBuildsOnKubernetes(t *testing.T) {
	h := startBuildHost(t)
	builds := countPods(t, h, buildsNamespace, "runhost.step=build")
	dockerfile := fmt.Sprintf("FROM runhost/python:3.11\nLABEL test.nonce=%d\nCOPY app.py /app/\nWORKDIR /app\nCMD [\"python3\", \"app.py\"]\n", time.Now().UnixNano())
	req := map[string]any{
		"dockerfile": dockerfile,
		"files":      []map[string]string{{"path": "app.py", "content": "import os, sys\nprint('built', os.getcwd(), sys.stdin.read())\n"}},
		"stdin":      "in",
	}
	first := h.build(req)
	if first.Stage != "run" || first.Stdout != "built /app in\n" {
		t.Fatalf("first: %+v", first)
	}
	if first.Build == nil || first.Build.Cached || !strings.Contains(first.Build.Log, "COPY app.py") || !strings.Contains(first.Build.Image, "/runhost/builds:") {
		t.Fatalf("first build info: %+v", first.Build)
	}
	t.Logf("first build: %d ms (build pod, BuildKit, push); the run after it: %d ms", first.Build.DurationMS, first.DurationMS)
	second := h.build(req)
	if second.Stdout != "built /app in\n" || second.Build == nil || !second.Build.Cached || second.Build.Image != first.Build.Image {
		t.Fatalf("second: %+v", second)
	}

	t.Run("command overrides the image's", func(t *testing.T) {
		r := h.build(map[string]any{"dockerfile": dockerfile, "files": req["files"], "command": []string{"python3", "-c", "print('override')"}})
		if r.Stdout != "override\n" || !r.Build.Cached {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("one build pod per distinct build", func(t *testing.T) {
		if n := builds.Load(); n != 1 {
			t.Errorf("%d build pods, want 1", n)
		}
	})
	t.Run("the built image runs hardened", func(t *testing.T) {
		r := h.build(map[string]any{"dockerfile": "FROM runhost/shell:bookworm\nUSER root\n", "command": "id -u; touch /x 2>&1 | grep -c Read-only"})
		if r.Stdout != "1000\n1\n" {
			t.Fatalf("stdout %q stderr %q", r.Stdout, r.Stderr)
		}
	})
	t.Run("a broken Dockerfile is a result with the log", func(t *testing.T) {
		r := h.build(map[string]any{"dockerfile": "FROM runhost/shell:bookworm\nRUN echo building && exit 3\n"})
		if r.Stage != "build" || r.ExitCode == 0 || r.Build == nil || !strings.Contains(r.Build.Log, "building") || !strings.Contains(r.Stderr, "exit code: 3") {
			t.Fatalf("%+v %+v", r, r.Build)
		}
	})
	t.Run("a missing base image is named", func(t *testing.T) {
		// Named in the suite's registry: a docker.io name would also be
		// tried at docker.io, which this machine cannot reach.
		r := h.build(map[string]any{"dockerfile": "FROM " + os.Getenv("RUNHOST_K8S_TEST_REGISTRY") + "/runhost/no-such-image:1\n"})
		if r.Stage != "build" || !strings.Contains(r.Stderr, "runhost/no-such-image:1") {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("the rules refuse before any build pod", func(t *testing.T) {
		before := builds.Load()
		for _, tt := range []struct {
			dockerfile string
			status     int
			code       string
		}{
			{"FROM runhost/shell:bookworm\nADD http://127.0.0.1:9/x /x\nCMD [\"true\"]\n", 400, "dockerfile_refused"},
			{"FROM runhost/shell:bookworm\nADD git@127.0.0.1:repo /src\nCMD [\"true\"]\n", 400, "dockerfile_refused"},
			{"# syntax=127.0.0.1:9/frontend:1\nFROM runhost/shell:bookworm\nCMD [\"true\"]\n", 400, "dockerfile_refused"},
			{"FROM " + first.Build.Image + "\nCMD [\"true\"]\n", 403, "image_not_allowed"},
			{"FROM runhost/shell:bookworm\nCOPY --from=runhost/egress:x / /e\nCMD [\"true\"]\n", 403, "image_not_allowed"},
		} {
			status, body := h.post("/runtimes/dockerfile/run", map[string]any{"dockerfile": tt.dockerfile})
			var e struct {
				Error struct{ Code string } `json:"error"`
			}
			_ = json.Unmarshal(body, &e)
			if status != tt.status || e.Error.Code != tt.code {
				t.Errorf("%q: %d %s, want %d %s", tt.dockerfile, status, body, tt.status, tt.code)
			}
		}
		if n := builds.Load(); n != before {
			t.Errorf("%d build pods started for refused Dockerfiles", n-before)
		}
	})
	t.Run("RUN steps have no network", func(t *testing.T) {
		// The interfaces of the RUN step's network namespace (rootless
		// BuildKit mounts no sysfs of its own: /proc/net, not /sys/class/net).
		r := h.build(map[string]any{"dockerfile": "FROM runhost/shell:bookworm\nRUN tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /home/runner/nets\nCMD [\"cat\", \"/home/runner/nets\"]\n"})
		if r.Stdout != "lo\n" {
			t.Fatalf("%+v %+v", r, r.Build)
		}
		// The same build with RUNHOST_BUILD_NETWORK=true sees the pod's
		// interface: the check above can tell the two apart.
		hn := startBuildHost(t, "RUNHOST_BUILD_NETWORK=true")
		r = hn.build(map[string]any{"dockerfile": "FROM runhost/shell:bookworm\nLABEL network=allowed\nRUN tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /home/runner/nets\nCMD [\"cat\", \"/home/runner/nets\"]\n"})
		if !strings.Contains(r.Stdout, "eth0") {
			t.Fatalf("with network allowed: %+v %+v", r, r.Build)
		}
	})
}
