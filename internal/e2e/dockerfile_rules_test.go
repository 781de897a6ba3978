package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
)

// loopbackServer stands for everything a build must not reach: a service
// on the engine machine's loopback. It counts the requests it gets.
func loopbackServer(t *testing.T) (addr string, hits *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hits = new(atomic.Int64)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "secret from the engine's loopback", http.StatusForbidden)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String(), hits
}

// refusal posts a Dockerfile run that must be refused with status and
// code before anything is built, and returns the message.
func (h *host) refusal(t *testing.T, req map[string]any, status int, code string) string {
	t.Helper()
	got, body := h.post("/runtimes/dockerfile/run", req)
	if got != status {
		t.Fatalf("status %d, want %d: %s", got, status, body)
	}
	e := decodeError(t, body)
	if e.Error.Code != code {
		t.Fatalf("code %q, want %q: %s", e.Error.Code, code, body)
	}
	return e.Error.Message
}

// TestDockerfileBuildsFetchNothing: the engine's classic builder fetched
// ADD <url> itself, so a build reached the engine machine's loopback (and
// metadata, private networks) and got the error body back in its log.
// Every instruction that would fetch is refused before any build, naming
// its line, and the server is never asked.
func TestDockerfileBuildsFetchNothing(t *testing.T) {
	addr, hits := loopbackServer(t)
	h := startHost(t)
	url := "http://" + addr + "/x"
	tests := []struct {
		name, dockerfile string
		args             map[string]string
		line             int
	}{
		{"ADD of a URL", "FROM runhost/shell:bookworm\nADD " + url + " /x\nCMD [\"cat\", \"/x\"]\n", nil, 2},
		{"ADD in JSON form", "FROM runhost/shell:bookworm\nADD [\"" + url + "\", \"/x\"]\n", nil, 2},
		{"ADD with a checksum", "FROM runhost/shell:bookworm\nADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d " + url + " /x\n", nil, 2},
		{"ADD through an ARG", "FROM runhost/shell:bookworm\nARG U\nADD ${U} /x\n", map[string]string{"U": url}, 3},
		{"add, lower case, continued", "FROM runhost/shell:bookworm\nadd \\\n " + strings.ToUpper(url[:4]) + url[4:] + " \\\n /x\n", nil, 2},
		{"ADD of a git remote", "FROM runhost/shell:bookworm\nADD http://" + addr + "/repo.git#main /src\n", nil, 2},
		{"ADD of an scp-like git remote", "FROM runhost/shell:bookworm\nADD git@" + strings.Split(addr, ":")[0] + ":repo /src\n", nil, 2},
		{"a syntax directive", "# syntax=" + addr + "/frontend:1\nFROM runhost/shell:bookworm\n", nil, 1},
		{"a BUILDKIT_SYNTAX argument", "FROM runhost/shell:bookworm\nCMD [\"true\"]\n", map[string]string{"BUILDKIT_SYNTAX": addr + "/frontend:1"}, 0},
		{"an ONBUILD trigger", "FROM runhost/shell:bookworm AS base\nONBUILD ADD " + url + " /x\nFROM base\n", nil, 2},
		{"a secret mount", "FROM runhost/shell:bookworm\nRUN --mount=type=secret,id=x cat /run/secrets/x\n", nil, 2},
		{"the host's network", "FROM runhost/shell:bookworm\nRUN --network=host wget -qO- " + url + "\n", nil, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := h.refusal(t, map[string]any{"dockerfile": tt.dockerfile, "build_args": tt.args}, http.StatusBadRequest, "dockerfile_refused")
			if tt.line > 0 && !strings.HasPrefix(msg, fmt.Sprintf("dockerfile line %d: ", tt.line)) {
				t.Errorf("the message does not name line %d: %s", tt.line, msg)
			}
			if strings.Contains(msg, "secret from") {
				t.Errorf("the server's answer came back: %s", msg)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback server was asked %d times by builds", n)
	}
}

// TestDockerfileImagesAreChecked: FROM and COPY --from took any image the
// engine had, by name or by ID prefix: another tenant's built image (its
// build context), runhost's helper images. Now every image a Dockerfile
// names passes the same rule as the image field, even with
// RUNHOST_ALLOWED_IMAGES=*, and nothing is built when one does not.
func TestDockerfileImagesAreChecked(t *testing.T) {
	h := startHost(t, "RUNHOST_ALLOWED_IMAGES=*")
	// Another tenant's build: its context is in the image's layers.
	secret := fmt.Sprintf("tenant-a-secret-%d", time.Now().UnixNano())
	first := h.run("dockerfile", map[string]any{
		"dockerfile": "FROM runhost/shell:bookworm\nCOPY secret.txt /secret.txt\nCMD [\"true\"]\n",
		"files":      []map[string]string{{"path": "secret.txt", "content": secret}},
	})
	if first.Stage != "run" || !strings.HasPrefix(first.Build.Image, "runhost/build:") {
		t.Fatalf("tenant A's build: %+v", first)
	}
	python, err := h.Docker.ImageInspect(context.Background(), "runhost/python:3.11")
	if err != nil {
		t.Fatal(err)
	}
	prefix := strings.TrimPrefix(python.ID, "sha256:")[:12]
	helper := "runhost/egress:none"
	if list, err := h.Docker.ImageList(context.Background(), image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", "runhost/init"))}); err == nil && len(list) > 0 && len(list[0].RepoTags) > 0 {
		helper = list[0].RepoTags[0]
	}
	cat := "\nCMD [\"cat\", \"/secret.txt\"]\n"
	for name, dockerfile := range map[string]string{
		"FROM another build":           "FROM " + first.Build.Image + cat,
		"FROM it fully qualified":      "FROM docker.io/" + first.Build.Image + cat,
		"COPY --from another build":    "FROM runhost/shell:bookworm\nCOPY --from=" + first.Build.Image + " /secret.txt /secret.txt" + cat,
		"FROM an ID prefix":            "FROM " + prefix + cat,
		"FROM an ID":                   "FROM " + python.ID + cat,
		"FROM an ID through an ARG":    "ARG I=" + prefix + "\nFROM ${I}" + cat,
		"FROM a helper image":          "FROM " + helper + cat,
		"COPY --from a helper image":   "FROM runhost/shell:bookworm\nCOPY --from=" + helper + " / /h" + cat,
		"RUN --mount from a build":     "FROM runhost/shell:bookworm\nRUN --mount=from=" + first.Build.Image + ",target=/b cat /b/secret.txt" + cat,
		"FROM the builder, registry'd": "FROM localhost:5000/runhost/builder:latest" + cat,
	} {
		t.Run(name, func(t *testing.T) {
			msg := h.refusal(t, map[string]any{"dockerfile": dockerfile}, http.StatusForbidden, "image_not_allowed")
			if !strings.HasPrefix(msg, "dockerfile line ") {
				t.Errorf("the message does not name the line: %s", msg)
			}
		})
	}
	// The image field of custom-image runs follows the same rule.
	for _, img := range []string{first.Build.Image, helper, prefix, python.ID, "sha256:" + prefix} {
		status, body := h.post("/runtimes/shell/run", map[string]any{"image": img, "command": "cat /secret.txt"})
		if status != http.StatusForbidden || decodeError(t, body).Error.Code != "image_not_allowed" {
			t.Errorf("image %s: %d %s", img, status, body)
		}
	}

	// Outside the allow-list: refused before building.
	h2 := startHost(t)
	msg := h2.refusal(t, map[string]any{"dockerfile": "FROM runhost/shell:bookworm\nCOPY --from=127.0.0.1:9/busybox:latest /bin/busybox /b\nCMD [\"true\"]\n"}, http.StatusForbidden, "image_not_allowed")
	if !strings.Contains(msg, "dockerfile line 2: COPY --from 127.0.0.1:9/busybox:latest") || !strings.Contains(msg, "runhost/python:3.11") {
		t.Errorf("the refusal names neither the line nor the allowed images: %s", msg)
	}
}

// TestDockerfileBasesAreExpandedAndPinned: FROM with ARGs resolves as
// BuildKit does (the meta ARG's default, a build argument over it), and
// the build uses exactly the image the host checked.
func TestDockerfileBasesAreExpandedAndPinned(t *testing.T) {
	h := startHost(t)
	// Built images outlive hosts: a nonce makes the first builds real.
	dockerfile := fmt.Sprintf("ARG V=3.11\nFROM runhost/python:${V} AS py\nLABEL test.nonce=%d\nFROM py\n", time.Now().UnixNano()) +
		"COPY --from=runhost/shell:bookworm /etc/debian_version /debian_version\n" +
		"CMD [\"python3\", \"-c\", \"import sys; print('%d.%d' % sys.version_info[:2])\"]\n"
	if res := h.run("dockerfile", map[string]any{"dockerfile": dockerfile}); res.Stdout != "3.11\n" {
		t.Fatalf("the ARG's default: %+v", res)
	}
	res := h.run("dockerfile", map[string]any{"dockerfile": dockerfile, "build_args": map[string]string{"V": "3.13"}})
	if res.Stdout != "3.13\n" || res.Build.Cached {
		t.Fatalf("a build argument over the default: %+v", res)
	}
	// Each name came from the named context of its pinned image, never
	// from a registry.
	for _, name := range []string{"runhost/python:3.13", "runhost/shell:bookworm"} {
		if !strings.Contains(res.Build.Log, "[context "+name+"]") {
			t.Errorf("the builder did not get %s as its pinned context: %s", name, res.Build.Log)
		}
	}
	// A build argument cannot lead FROM outside the allow-list. (Names
	// that point at loopback: a regression must not pull from anywhere.)
	h.refusal(t, map[string]any{"dockerfile": "ARG IMG=runhost/python:3.11\nFROM ${IMG}\nCMD [\"true\"]\n", "build_args": map[string]string{"IMG": "127.0.0.1:9/evil:1"}}, http.StatusForbidden, "image_not_allowed")

	// An allowed image the engine does not have is a failed build that
	// names it and what the host allows.
	h2 := startHost(t, "RUNHOST_ALLOWED_IMAGES=runhost/*")
	missing := h2.run("dockerfile", map[string]any{"dockerfile": "FROM runhost/no-such-image:1\nCMD [\"true\"]\n"})
	if missing.Stage != "build" || !strings.Contains(missing.Stderr, "runhost/no-such-image:1") || !strings.Contains(missing.Stderr, "runhost/*") {
		t.Fatalf("%+v", missing)
	}
}

// TestDockerfileWithoutACommand (issue 15 #3): a Dockerfile whose image has
// nothing to run was a 502 after a full build; now a 400 before building.
func TestDockerfileWithoutACommand(t *testing.T) {
	h := startHost(t)
	msg := h.refusal(t, map[string]any{"dockerfile": "FROM runhost/shell:bookworm\nRUN sleep 3\n"}, http.StatusBadRequest, "no_command")
	if !strings.Contains(msg, "CMD") {
		t.Errorf("the message does not say what is missing: %s", msg)
	}
	h.refusal(t, map[string]any{"dockerfile": "FROM runhost/python:3.11\nENTRYPOINT []\n", "args": []string{"a"}}, http.StatusBadRequest, "no_command")
	// A base image's own CMD counts, and so does the request's command.
	if res := h.run("dockerfile", map[string]any{"dockerfile": "FROM runhost/shell:bookworm\nRUN true\n", "command": "echo given"}); res.Stdout != "given\n" {
		t.Fatalf("%+v", res)
	}
}

// TestDockerfileRunsLikeDockerRun (issue 15 #4): command replaced the
// ENTRYPOINT and args were refused for ENTRYPOINT images. Now: ENTRYPOINT,
// then command or else CMD, then args.
func TestDockerfileRunsLikeDockerRun(t *testing.T) {
	h := startHost(t)
	dockerfile := "FROM runhost/shell:bookworm\nENTRYPOINT [\"echo\", \"ep\"]\nCMD [\"c\"]\n"
	tests := []struct {
		name string
		req  map[string]any
		want string
	}{
		{"the image's own", map[string]any{}, "ep c\n"},
		{"command replaces CMD", map[string]any{"command": []string{"x", "y"}}, "ep x y\n"},
		{"args follow CMD", map[string]any{"args": []string{"a"}}, "ep c a\n"},
		{"args follow the command", map[string]any{"command": []string{"x"}, "args": []string{"a", "b"}}, "ep x a b\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req["dockerfile"] = dockerfile
			if res := h.run("dockerfile", tt.req); res.Stdout != tt.want || res.ExitCode != 0 {
				t.Fatalf("stdout %q, want %q (%+v)", res.Stdout, tt.want, res)
			}
		})
	}
	// Without an ENTRYPOINT, the command is the argv and args follow it.
	res := h.run("dockerfile", map[string]any{"dockerfile": "FROM runhost/shell:bookworm\nCMD [\"false\"]\n", "command": "echo \"$@\"", "args": []string{"p", "q"}})
	if res.Stdout != "p q\n" {
		t.Fatalf("%+v", res)
	}
}

// TestBuildFromAWorkspaceContextWithItsDockerfile (issue 15 #2): a context
// with its own Dockerfile was refused either way. Now its Dockerfile is
// used when the request gives none, and a given one wins (docker build -f).
func TestBuildFromAWorkspaceContextWithItsDockerfile(t *testing.T) {
	h, _ := startWorkspaceHost(t)
	h.put("/workspaces/ctx/files/app/app.py", "print('from the context')")
	h.put("/workspaces/ctx/files/app/Dockerfile", "FROM runhost/python:3.11\nCOPY app.py /app/\nCMD [\"python3\", \"/app/app.py\"]\n")
	res := h.run("dockerfile", map[string]any{"context_path": "ctx/app"})
	if res.Stage != "run" || res.Stdout != "from the context\n" {
		t.Fatalf("the context's own Dockerfile: %+v", res)
	}
	res = h.run("dockerfile", map[string]any{"context_path": "ctx/app", "dockerfile": "FROM runhost/python:3.11\nCOPY Dockerfile /d\nCMD [\"head\", \"-c\", \"24\", \"/d\"]\n"})
	if res.Stage != "run" || res.Stdout != "FROM runhost/python:3.11" {
		t.Fatalf("the given Dockerfile, with the context's as a file: %+v", res)
	}
	h.put("/workspaces/ctx/files/app/.runhost.Dockerfile", "FROM runhost/build:x")
	status, body := h.post("/runtimes/dockerfile/run", map[string]any{"context_path": "ctx/app"})
	if status != http.StatusBadRequest || decodeError(t, body).Error.Code != "invalid_request" {
		t.Fatalf("a context file named like the builder's Dockerfile: %d %s", status, body)
	}
}
