package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runhost/runhost/internal/testenv"
)

// Clients no one here wrote, from npm (internal/e2e/mcpclient: package.json
// and its lockfile): the official TypeScript MCP SDK and the MCP
// conformance suite. They run with Node 20 in runhost/node:20, an image
// every e2e host has, so the machine needs no Node of its own.

// nodeImage runs the npm clients.
const nodeImage = "runhost/node:20"

// mcpClientModules installs mcpclient's locked dependencies (npm ci) once
// per lockfile into the user's cache directory and returns the directory
// of node_modules. npm's own cache sits beside it, so a reinstall (a new
// lockfile) fetches only what changed, and a machine that installed once
// needs no registry again.
func mcpClientModules(t *testing.T) string {
	t.Helper()
	src := filepath.Join(testenv.RepoRoot(), "internal", "e2e", "mcpclient")
	lock, err := os.ReadFile(filepath.Join(src, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(cache, "runhost-e2e")
	sum := sha256.Sum256(lock)
	dir := filepath.Join(root, "mcpclient-"+hex.EncodeToString(sum[:8]))
	modules := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, ".package-lock.json")); err == nil {
		return modules
	}
	npmCache := filepath.Join(root, "npm")
	if err := os.MkdirAll(npmCache, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(root, "mcpclient-install-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(tmp) })
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := runNode(t, 10*time.Minute, []string{"-v", tmp + ":/work", "-v", npmCache + ":/npm-cache", "-w", "/work"},
		"npm", "ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error")
	t.Logf("npm ci: %s", out)
	// Another test may have finished the same install first: its copy is as good.
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, os.ErrExist) {
		if _, serr := os.Stat(modules); serr != nil {
			t.Fatalf("keep the install: %v", err)
		}
	}
	return modules
}

// runNode runs argv in a throw-away runhost/node:20 container on the host's
// network (the test host listens on loopback), as the calling user, with
// the machine's CA certificates (npm may reach its registry through a
// TLS-intercepting proxy), and returns its stdout. mounts are docker run
// options (-v ...).
func runNode(t *testing.T, timeout time.Duration, mounts []string, argv ...string) []byte {
	t.Helper()
	docker := lookTool(t, "docker")
	cli := dockerClient(t)
	testenv.RequireImages(t, cli, nodeImage)
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	name := "runhost-mcpclient-" + hex.EncodeToString(rnd[:])
	t.Cleanup(func() { _ = exec.Command(docker, "rm", "-f", name).Run() })
	args := []string{"run", "--rm", "--name", name, "--network", "host",
		"--user", fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()),
		"-v", "/etc/ssl/certs:/etc/ssl/certs:ro",
		"-e", "HOME=/tmp",
		"-e", "NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt",
		"-e", "npm_config_cafile=/etc/ssl/certs/ca-certificates.crt",
		"-e", "npm_config_cache=/npm-cache",
		"-e", "npm_config_update_notifier=false",
	}
	args = append(append(append(args, mounts...), nodeImage), argv...)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, docker, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout: %s\nstderr: %s", strings.Join(argv, " "), err, stdout.String(), stderr.String())
	}
	return stdout.Bytes()
}

// mcpClientMounts mount the modules at /node_modules (where Node resolves
// packages for any script below /) and the scripts at /src.
func mcpClientMounts(t *testing.T) []string {
	src := filepath.Join(testenv.RepoRoot(), "internal", "e2e", "mcpclient")
	return []string{"-v", mcpClientModules(t) + ":/node_modules:ro", "-v", src + ":/src:ro", "-w", "/tmp"}
}

// tsContent is a tool result's content as the TypeScript SDK returns it.
type tsContent struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	Data     string `json:"data"`
	MIMEType string `json:"mimeType"`
}

type tsResult struct {
	Content []tsContent `json:"content"`
	IsError bool        `json:"isError"`
}

func (r tsResult) text() string {
	if len(r.Content) == 0 {
		return ""
	}
	return r.Content[0].Text
}

// TestMCPTypeScriptClient: the official TypeScript SDK's client
// (internal/e2e/mcpclient/client.mjs) connects with a Bearer key, lists
// the tools, runs a program, gets a failing program as a result and a
// refusal as a tool error, and gets a workspace's PNG back as an image.
func TestMCPTypeScriptClient(t *testing.T) {
	h, _, keys := startTenantHost(t, []string{"agent"})
	mounts := append(mcpClientMounts(t), "-e", "RUNHOST_MCP_URL="+h.URL+"/mcp", "-e", "RUNHOST_API_KEY="+keys["agent"],
		"-e", "PNG_BASE64="+base64.StdEncoding.EncodeToString(mcpPNG))
	out := runNode(t, 5*time.Minute, mounts, "node", "/src/client.mjs")
	var got struct {
		Server struct {
			Name string `json:"name"`
		} `json:"server"`
		Instructions string `json:"instructions"`
		Tools        []struct {
			Name        string         `json:"name"`
			Description string         `json:"description"`
			InputSchema map[string]any `json:"inputSchema"`
		} `json:"tools"`
		Run, Failing, Refused, Write, Image tsResult
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}
	if got.Server.Name != "runhost" || !strings.Contains(got.Instructions, "run_code") {
		t.Errorf("server %q, instructions %q", got.Server.Name, got.Instructions)
	}
	var names []string
	for _, tool := range got.Tools {
		names = append(names, tool.Name)
		if tool.Description == "" || tool.InputSchema["type"] != "object" {
			t.Errorf("%s: description %q, input schema %v", tool.Name, tool.Description, tool.InputSchema)
		}
	}
	slices.Sort(names)
	if want := []string{"create_session", "end_session", "list_files", "list_runtimes", "read_file", "run_code", "run_in_session", "write_file"}; !slices.Equal(names, want) {
		t.Errorf("tools %v, want %v", names, want)
	}
	if r := got.Run; r.IsError || !strings.HasPrefix(r.text(), "exit code 0 · python") || !strings.Contains(r.text(), "--- stdout ---\n42") {
		t.Errorf("run_code: %+v", r)
	}
	if r := got.Failing; r.IsError || !strings.HasPrefix(r.text(), "exit code 7") || !strings.Contains(r.text(), "--- stderr ---\noops") {
		t.Errorf("a failing program: %+v", r)
	}
	if r := got.Refused; !r.IsError || !strings.HasPrefix(r.text(), "unknown_runtime: ") {
		t.Errorf("an unknown runtime: %+v", r)
	}
	if r := got.Write; r.IsError {
		t.Errorf("write_file: %+v", r)
	}
	img := got.Image.Content
	if got.Image.IsError || len(img) != 2 || img[1].Type != "image" || img[1].MIMEType != "image/png" || img[1].Data != base64.StdEncoding.EncodeToString(mcpPNG) {
		t.Errorf("read_file of a PNG: %+v", got.Image)
	}
}

// conformanceScenarios are the server scenarios of the MCP conformance
// suite that apply to a stateless, tools-only server. The others need the
// suite's fixture server's own tools, prompts and resources (test_* names),
// completions or resource subscriptions, or MCP sessions with their GET
// streams (server-sse-*), which runhost does not serve (docs/mcp.md).
var conformanceScenarios = []string{"server-initialize", "ping", "tools-list", "logging-set-level", "dns-rebinding-protection"}

// TestMCPConformance runs those scenarios against the default keyless
// loopback host and wants every check to succeed.
func TestMCPConformance(t *testing.T) {
	h := startHost(t)
	results := t.TempDir()
	if err := os.Chmod(results, 0o777); err != nil {
		t.Fatal(err)
	}
	script := `set -e; for s in ` + strings.Join(conformanceScenarios, " ") + `; do
		node /node_modules/@modelcontextprotocol/conformance/dist/index.js server --url "$URL" --scenario "$s" -o /results/"$s" >&2 || true
	done`
	mounts := append(mcpClientMounts(t), "-v", results+":/results", "-e", "URL="+h.URL+"/mcp")
	runNode(t, 10*time.Minute, mounts, "sh", "-c", script)
	for _, s := range conformanceScenarios {
		files, _ := filepath.Glob(filepath.Join(results, s, "*", "checks.json"))
		if len(files) != 1 {
			t.Errorf("%s: %d result files, want 1", s, len(files))
			continue
		}
		b, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		var checks []struct {
			ID, Status, ErrorMessage string
		}
		if err := json.Unmarshal(b, &checks); err != nil || len(checks) == 0 {
			t.Errorf("%s: checks %s: %v", s, b, err)
			continue
		}
		for _, c := range checks {
			if c.Status != "SUCCESS" {
				t.Errorf("%s: %s %s: %s", s, c.ID, c.Status, c.ErrorMessage)
			} else {
				t.Logf("%s: %s passed", s, c.ID)
			}
		}
	}
}
