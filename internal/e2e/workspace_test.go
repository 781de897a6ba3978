package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// startWorkspaceHost starts a host whose shared workspace is a fresh
// directory, which the local engine sees at the same path.
func startWorkspaceHost(t *testing.T, env ...string) (*host, string) {
	t.Helper()
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return startHost(t, append([]string{"RUNHOST_WORKSPACE_ROOT=" + root}, env...)...), root
}

func (h *host) put(path, body string) (int, []byte) {
	h.t.Helper()
	return h.do(context.Background(), http.MethodPut, path, strings.NewReader(body))
}

func (h *host) get(path string) (int, []byte) {
	h.t.Helper()
	return h.do(context.Background(), http.MethodGet, path, nil)
}

func TestRunsShareTheWorkspace(t *testing.T) {
	h, root := startWorkspaceHost(t)

	// A run writes into its workspace directory; the host and the files API see it.
	res := h.run("python", map[string]any{
		"workspace": "sess1/proj",
		"files":     []map[string]string{{"path": "main.py", "content": "import os\nprint(os.getcwd())\nopen('out.txt', 'w').write('from the run')\n"}},
	})
	if res.Stdout != "/workspaces/sess1/proj\n" || res.ExitCode != 0 {
		t.Fatalf("run in workspace: %+v", res)
	}
	if b, err := os.ReadFile(filepath.Join(root, "sess1", "proj", "out.txt")); err != nil || string(b) != "from the run" {
		t.Fatalf("the host does not see the run's file: %q %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "sess1", "proj", "main.py")); err != nil || !strings.Contains(string(b), "getcwd") {
		t.Errorf("the request's files are not in the workspace (code-server would not see them): %v", err)
	}
	status, body := h.get("/workspaces/sess1/files/proj/out.txt")
	if status != 200 || string(body) != "from the run" {
		t.Fatalf("files API GET: %d %q", status, body)
	}

	// A file uploaded through the API is read by the next run.
	if status, body := h.put("/workspaces/sess1/files/proj/data/in.txt", "uploaded"); status != 200 {
		t.Fatalf("PUT: %d %s", status, body)
	}
	res = h.run("shell", map[string]any{"workspace": "sess1/proj", "code": "cat data/in.txt; ls /workspaces"})
	if res.Stdout != "uploadedsess1\n" {
		t.Fatalf("the next run does not see the upload, or sees other sessions: %q %q", res.Stdout, res.Stderr)
	}
	// Running again with the same files overwrites them.
	res = h.run("python", map[string]any{"workspace": "sess1/proj", "files": []map[string]string{{"path": "main.py", "content": "print('second')"}}})
	if res.Stdout != "second\n" {
		t.Fatalf("re-run in the workspace: %+v", res)
	}

	status, body = h.get("/workspaces/sess1/files/?list")
	var list struct {
		Files []struct {
			Path string `json:"path"`
			Type string `json:"type"`
			Size int64  `json:"size"`
		} `json:"files"`
	}
	if status != 200 || json.Unmarshal(body, &list) != nil {
		t.Fatalf("list: %d %s", status, body)
	}
	var paths []string
	for _, f := range list.Files {
		paths = append(paths, f.Path+":"+f.Type)
	}
	if got := strings.Join(paths, " "); got != "proj:dir proj/data:dir proj/data/in.txt:file proj/main.py:file proj/out.txt:file" {
		t.Errorf("list = %s", got)
	}
	// A directory lists like the session, its paths still from the session.
	status, body = h.get("/workspaces/sess1/files/proj/data?list")
	if status != 200 || !strings.Contains(string(body), `"path":"proj/data/in.txt"`) || strings.Contains(string(body), "main.py") {
		t.Errorf("list a directory: %d %s", status, body)
	}
	if status, body := h.get("/workspaces/sess1/files/proj/main.py?list"); status != 400 || decodeError(t, body).Error.Code != "not_a_directory" {
		t.Errorf("list a file: %d %s", status, body)
	}
	if status, body := h.get("/workspaces/sess1/files/nope?list"); status != 404 {
		t.Errorf("list a directory that does not exist: %d %s", status, body)
	}

	if status, _ := h.do(context.Background(), http.MethodDelete, "/workspaces/sess1/files/proj/out.txt", nil); status != 204 {
		t.Errorf("DELETE file: %d", status)
	}
	if status, _ := h.get("/workspaces/sess1/files/proj/out.txt"); status != 404 {
		t.Errorf("GET after DELETE: %d", status)
	}
	if status, _ := h.do(context.Background(), http.MethodDelete, "/workspaces/sess1", nil); status != 204 {
		t.Errorf("DELETE session: %d", status)
	}
	if _, err := os.Stat(filepath.Join(root, "sess1")); !os.IsNotExist(err) {
		t.Errorf("session still on disk: %v", err)
	}
}

func TestWorkspacePathRules(t *testing.T) {
	h, _ := startWorkspaceHost(t, "RUNHOST_WORKSPACE_QUOTA_MB=1", "RUNHOST_WORKSPACE_FILE_BYTES=600000")
	runTests := []struct {
		workspace string
		code      string
	}{
		{"../etc", "invalid_session"},
		{"/etc", "invalid_session"},
		{"", ""}, // no workspace: fine
		{"s/../../etc", "unsafe_path"},
		{"s/a//b", "unsafe_path"},
		{"s/a\x00b", "unsafe_path"},
		{strings.Repeat("x", 65), "invalid_session"},
		{"s/" + strings.Repeat("y", 256), "unsafe_path"},
	}
	for _, tt := range runTests {
		if tt.code == "" {
			continue
		}
		status, body := h.post("/runtimes/shell/run", map[string]any{"code": "true", "workspace": tt.workspace})
		if status != 400 || decodeError(t, body).Error.Code != tt.code {
			t.Errorf("workspace %q: %d %s, want 400 %s", tt.workspace, status, body, tt.code)
		}
	}
	fileTests := []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/workspaces/s/files/..%2F..%2Fetc%2Fpasswd", 400, "unsafe_path"},
		{"GET", "/workspaces/..%2Fx/files/a", 400, "invalid_session"},
		{"PUT", "/workspaces/s/files/a%00b", 400, "unsafe_path"},
		{"GET", "/workspaces/s/files/nope", 404, "not_found"},
		{"GET", "/workspaces/s/files/", 400, "invalid_request"},
	}
	for _, tt := range fileTests {
		status, body := h.do(context.Background(), tt.method, tt.path, strings.NewReader("x"))
		if status != tt.status || decodeError(t, body).Error.Code != tt.code {
			t.Errorf("%s %s: %d %s, want %d %s", tt.method, tt.path, status, body, tt.status, tt.code)
		}
	}
	if status, body := h.put("/workspaces/q/files/big", strings.Repeat("x", 600001)); status != 413 || decodeError(t, body).Error.Code != "file_too_large" {
		t.Errorf("file over the size cap: %d %s", status, body)
	}
	h.put("/workspaces/q/files/a", strings.Repeat("x", 600000))
	if status, body := h.put("/workspaces/q/files/b", strings.Repeat("x", 500000)); status != 413 || decodeError(t, body).Error.Code != "quota_exceeded" {
		t.Errorf("upload over the session quota: %d %s", status, body)
	}
}

// TestSymlinksPlantedByARun plants links from inside a run, as an attacker
// would, then uses them through the files API, a run and a build.
func TestSymlinksPlantedByARun(t *testing.T) {
	h, root := startWorkspaceHost(t)
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("host secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := h.run("shell", map[string]any{"workspace": "evil", "code": strings.Join([]string{
		"ln -s " + outside + " dirlink", // the host's path, as the host would resolve it
		"ln -s " + secret + " filelink", // likewise
		"ln -s / rootlink",              // the container's root
		"ln -s ../../.. up",             // climbing out of the session
		"mkdir -p app && ln -s " + secret + " app/evil.txt",
		"mkfifo pipe",
	}, " && ")})
	if res.ExitCode != 0 {
		t.Fatalf("planting: %+v", res)
	}

	for _, p := range []string{"dirlink/secret", "filelink", "rootlink/etc/passwd", "up/etc/passwd", "app/evil.txt"} {
		status, body := h.get("/workspaces/evil/files/" + p)
		if status != 400 || decodeError(t, body).Error.Code != "symlink_refused" {
			t.Errorf("GET %s: %d %s, want 400 symlink_refused", p, status, body)
		}
	}
	if status, body := h.get("/workspaces/evil/files/pipe"); status != 400 || decodeError(t, body).Error.Code != "not_a_regular_file" {
		t.Errorf("GET a FIFO: %d %s", status, body)
	}
	if status, body := h.put("/workspaces/evil/files/dirlink/new", "x"); status != 400 {
		t.Errorf("PUT through a symlinked directory: %d %s", status, body)
	}
	if status, _ := h.put("/workspaces/evil/files/filelink", "overwritten"); status != 200 {
		t.Errorf("PUT onto a symlink replaces the link: %d", status)
	}
	if b, _ := os.ReadFile(secret); string(b) != "host secret" {
		t.Fatalf("a host file was written through a planted symlink: %q", b)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Fatalf("files appeared outside the workspace: %v", entries)
	}

	// A run whose workspace directory is a planted symlink is refused.
	status, body := h.post("/runtimes/shell/run", map[string]any{"workspace": "evil/dirlink", "code": "cat secret"})
	if status != 400 || decodeError(t, body).Error.Code != "symlink_refused" {
		t.Errorf("run in a symlinked directory: %d %s", status, body)
	}
	// Inside its container a run sees only its own session: the host path
	// behind a planted link does not exist there.
	res = h.run("shell", map[string]any{"workspace": "evil", "files": []map[string]string{{"path": "main.sh", "content": "cat dirlink/secret 2>&1; cat up/etc/hostname 2>&1 | head -c 40"}}})
	if strings.Contains(res.Stdout, "host secret") {
		t.Fatalf("a run read a host file through a symlink: %q", res.Stdout)
	}
	// A build whose context holds a symlink is refused.
	status, body = h.post("/runtimes/dockerfile/run", map[string]any{"dockerfile": "FROM runhost/shell:bookworm\nCOPY . /ctx\n", "context_path": "evil/app"})
	if status != 400 || decodeError(t, body).Error.Code != "symlink_refused" {
		t.Errorf("build with a symlink in its context: %d %s", status, body)
	}
	status, body = h.post("/runtimes/dockerfile/run", map[string]any{"dockerfile": "FROM runhost/shell:bookworm\nCOPY . /ctx\n", "context_path": "evil/dirlink"})
	if status != 400 || decodeError(t, body).Error.Code != "symlink_refused" {
		t.Errorf("build whose context is a symlink: %d %s", status, body)
	}
	if _, err := os.Stat(filepath.Join(root, "evil", "rootlink")); err != nil {
		t.Errorf("the planted link should still be there (only never followed): %v", err)
	}
}

// TestCodeRunsTwiceInAWorkspaceDirectory: an agent running code in its
// project directory twice gets two results, and the directory holds only
// what the programs wrote (no main.py, no main.js); a module sent beside
// the code is imported from the code's directory.
func TestCodeRunsTwiceInAWorkspaceDirectory(t *testing.T) {
	h, root := startWorkspaceHost(t)
	for i, code := range []string{"open('a.txt', 'w').write('first')\nprint('one')", "print(open('a.txt').read(), 'two')"} {
		res := h.run("python", map[string]any{"workspace": "agent/project", "code": code})
		if res.ExitCode != 0 || res.Stdout != []string{"one\n", "first two\n"}[i] {
			t.Fatalf("run %d: %+v", i+1, res)
		}
	}
	res := h.run("node", map[string]any{"workspace": "agent/project", "code": "console.log(require('fs').readFileSync('a.txt', 'utf8'))"})
	if res.ExitCode != 0 || res.Stdout != "first\n" {
		t.Fatalf("node: %+v", res)
	}
	res = h.run("python", map[string]any{
		"workspace": "agent/project",
		"code":      "import helper\nprint(helper.x)",
		"files":     []map[string]string{{"path": "helper.py", "content": "x = 42"}},
	})
	if res.ExitCode != 0 || res.Stdout != "42\n" {
		t.Fatalf("code with a module sent beside it: %+v", res)
	}
	entries, err := os.ReadDir(filepath.Join(root, "agent", "project"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "a.txt helper.py" {
		t.Errorf("the workspace directory holds %q; want only what the programs wrote and the file sent", got)
	}
}

func TestBuildFromAWorkspaceContext(t *testing.T) {
	requireBuilder(t)
	h, _ := startWorkspaceHost(t)
	h.put("/workspaces/s2/files/my-app/app.py", "print('from the workspace context')")
	res := h.run("dockerfile", map[string]any{
		"dockerfile":   "FROM runhost/python:3.11\nCOPY . /app\nWORKDIR /app\nCMD [\"python3\", \"app.py\"]\n",
		"context_path": "s2/my-app",
	})
	if res.Stage != "run" || res.Stdout != "from the workspace context\n" {
		t.Fatalf("%+v", res)
	}
}

// TestCodeNeverOverwritesWorkspaceFiles: the file made from code lives in
// the run's private directory, so a user's own file of the same name stays
// as it was; files sent explicitly are still written where asked.
func TestCodeNeverOverwritesWorkspaceFiles(t *testing.T) {
	h, root := startWorkspaceHost(t)
	h.put("/workspaces/keep/files/main.sh", "echo the user's own script")
	res := h.run("shell", map[string]any{"workspace": "keep", "code": "echo hi; pwd; cat main.sh"})
	if res.Stdout != "hi\n/workspaces/keep\necho the user's own script" {
		t.Fatalf("code beside an existing main.sh: %+v", res)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "keep", "main.sh")); string(b) != "echo the user's own script" {
		t.Fatalf("the user's file changed: %q", b)
	}
	// Sent explicitly as a file, it is the caller's decision to replace it.
	res = h.run("shell", map[string]any{"workspace": "keep", "files": []map[string]string{{"path": "main.sh", "content": "echo replaced"}}})
	if res.Stdout != "replaced\n" {
		t.Fatalf("%+v", res)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "keep", "main.sh")); string(b) != "echo replaced" {
		t.Fatalf("the sent file was not written where asked: %q", b)
	}
	if status, body := h.put("/workspaces/keep/files/main.sh/child", "x"); status != 400 || decodeError(t, body).Error.Code != "not_a_directory" {
		t.Errorf("PUT below a file: %d %s", status, body)
	}
}
