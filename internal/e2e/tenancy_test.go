package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runhost/runhost/internal/auth"
)

// tenants are the keys of a multi-tenant host, by name.
type tenants map[string]string

// startTenantHost starts a host with workspaces and a keys file holding
// one fresh key per line of lines ("name [option ...]").
func startTenantHost(t *testing.T, lines []string, env ...string) (*host, string, tenants) {
	t.Helper()
	keys := tenants{}
	var content strings.Builder
	for _, l := range lines {
		name, opts, _ := strings.Cut(l, " ")
		keys[name] = auth.NewKey()
		content.WriteString(name + " " + auth.Hash(keys[name]) + " " + opts + "\n")
	}
	file := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(file, []byte(content.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	h, root := startWorkspaceHost(t, append([]string{"RUNHOST_API_KEYS_FILE=" + file}, env...)...)
	return h, root, keys
}

// as is h calling with key.
func (h *host) as(key string) *host {
	c := *h
	c.Key = key
	return &c
}

// answer is what a caller can observe of a response: status, error code
// and message, and for runs what the program printed.
type answer struct {
	Status  int
	Code    string
	Message string
	Output  string
}

func observe(status int, body []byte) answer {
	a := answer{Status: status}
	var e apiError
	if json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
		a.Code, a.Message = e.Error.Code, e.Error.Message
	}
	var r runResult
	if status == http.StatusOK && json.Unmarshal(body, &r) == nil && r.RunID != "" {
		a.Output = r.Stdout + "|" + r.Stderr
	}
	return a
}

// sameAnswer fails unless got (for another key's name) is exactly want
// (for a name that exists nowhere), once the names are swapped.
func sameAnswer(t *testing.T, what string, got, want answer, name, nowhere string) {
	t.Helper()
	got.Message = strings.ReplaceAll(got.Message, name, nowhere)
	got.Output = strings.ReplaceAll(got.Output, name, nowhere)
	if got != want {
		t.Errorf("%s: another key's name answers %+v; a name that does not exist answers %+v", what, got, want)
	}
}

// TestWorkspacesBelongToTheirKey is issue 14's first finding, tried on
// every route and field that names a workspace or a session: key B gets
// for key A's names exactly what it gets for names that do not exist, and
// A's files stay as they were.
func TestWorkspacesBelongToTheirKey(t *testing.T) {
	h, root, keys := startTenantHost(t, []string{"alice", "bob", "ops operator", "team1 workspaces=proj", "team2 workspaces=proj,docs"})
	alice, bob := h.as(keys["alice"]), h.as(keys["bob"])

	// A writes through a run and through the files API.
	res := alice.run("shell", map[string]any{"workspace": "proj/app", "code": "echo alice-secret > secret.txt; pwd"})
	if res.ExitCode != 0 || res.Stdout != "/workspaces/proj/app\n" {
		t.Fatalf("alice's run: %+v", res)
	}
	if status, body := alice.put("/workspaces/proj/files/app/uploaded.txt", "alice-upload"); status != 200 {
		t.Fatalf("alice's PUT: %d %s", status, body)
	}
	if b, err := os.ReadFile(filepath.Join(root, ".tenants", "alice", "proj", "app", "secret.txt")); err != nil || string(b) != "alice-secret\n" {
		t.Fatalf("alice's file is not in her namespace on the volume: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(root, "proj")); !os.IsNotExist(err) {
		t.Fatalf("alice's private workspace appeared in the shared namespace: %v", err)
	}
	status, body := alice.post("/sessions", map[string]any{"runtime": "shell"})
	if status != http.StatusCreated {
		t.Fatalf("alice's session: %d %s", status, body)
	}
	var sess struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &sess)
	t.Cleanup(func() { alice.do(context.Background(), http.MethodDelete, "/sessions/"+sess.ID, nil) })

	const nowhere = "nothing"
	dockerfile := "FROM runhost/shell:bookworm\nCOPY . /ctx\nCMD [\"cat\", \"/ctx/secret.txt\"]\n"
	type probe struct {
		what   string
		status int // what a name that exists nowhere gets
		do     func(b *host, name string) answer
	}
	// Every route and field that names a workspace, tried by B on A's name
	// and on a name that exists nowhere: first the ones that only look, then
	// the ones that change something (on the old code they hit A's files).
	probes := []probe{
		{"list files", 404, func(b *host, n string) answer { return observe(b.get("/workspaces/" + n + "/files/?list")) }},
		{"read a file", 404, func(b *host, n string) answer { return observe(b.get("/workspaces/" + n + "/files/app/secret.txt")) }},
		{"build from context_path", 404, func(b *host, n string) answer {
			return observe(b.post("/runtimes/dockerfile/run", map[string]any{"dockerfile": dockerfile, "context_path": n + "/app"}))
		}},
		{"run in the workspace", 200, func(b *host, n string) answer {
			return observe(b.post("/runtimes/shell/run", map[string]any{"workspace": n + "/app", "code": "ls -a; cat secret.txt uploaded.txt"}))
		}},
		{"session in the workspace", 200, func(b *host, n string) answer {
			status, body := b.post("/sessions", map[string]any{"runtime": "shell", "workspace": n + "/app"})
			if status != http.StatusCreated {
				return observe(status, body)
			}
			var s struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(body, &s)
			defer b.do(context.Background(), http.MethodDelete, "/sessions/"+s.ID, nil)
			return observe(b.post("/sessions/"+s.ID+"/run", map[string]any{"files": []map[string]string{{"path": "probe.sh", "content": "ls -a; cat secret.txt uploaded.txt"}}}))
		}},
		{"delete a file", 404, func(b *host, n string) answer {
			return observe(b.do(context.Background(), http.MethodDelete, "/workspaces/"+n+"/files/app/secret.txt", nil))
		}},
		{"delete the workspace", 204, func(b *host, n string) answer {
			return observe(b.do(context.Background(), http.MethodDelete, "/workspaces/"+n, nil))
		}},
		{"overwrite a file", 200, func(b *host, n string) answer {
			return observe(b.put("/workspaces/"+n+"/files/app/secret.txt", "bob was here"))
		}},
	}
	for _, p := range probes {
		t.Run(p.what, func(t *testing.T) {
			want := p.do(bob, nowhere)
			if want.Status != p.status {
				t.Fatalf("a name that exists nowhere: %+v, want status %d", want, p.status)
			}
			got := p.do(bob, "proj")
			sameAnswer(t, p.what, got, want, "proj", nowhere)
			if strings.Contains(got.Output, "alice") || strings.Contains(got.Message, "alice") {
				t.Errorf("bob saw alice's data: %+v", got)
			}
			for path, want := range map[string]string{"app/secret.txt": "alice-secret\n", "app/uploaded.txt": "alice-upload"} {
				if status, body := alice.get("/workspaces/proj/files/" + path); status != 200 || string(body) != want {
					t.Errorf("alice's %s after bob's attempt: %d %q", path, status, body)
				}
			}
		})
	}
	if status, body := bob.get("/workspaces"); status != 200 || string(body) != `{"workspaces":[{"name":"nothing","shared":false},{"name":"proj","shared":false}]}`+"\n" {
		t.Errorf("bob's workspaces: %d %s (his own two, never alice's)", status, body)
	}

	// Exec sessions: A's id is, to B, an id that does not exist.
	const unknownID = "s_000000000000000000000000"
	for _, p := range []probe{
		{"describe a session", 404, func(b *host, id string) answer { return observe(b.get("/sessions/" + id)) }},
		{"run in a session", 404, func(b *host, id string) answer {
			return observe(b.post("/sessions/"+id+"/run", map[string]any{"code": "echo in alice's session"}))
		}},
		{"end a session", 404, func(b *host, id string) answer {
			return observe(b.do(context.Background(), http.MethodDelete, "/sessions/"+id, nil))
		}},
	} {
		t.Run(p.what, func(t *testing.T) {
			want := p.do(bob, unknownID)
			if want.Status != p.status || want.Code != "session_not_found" {
				t.Errorf("unknown session: %+v", want)
			}
			sameAnswer(t, p.what, p.do(bob, sess.ID), want, sess.ID, unknownID)
		})
	}

	// Nothing B did reached A.
	if status, _ := alice.get("/sessions/" + sess.ID); status != 200 {
		t.Errorf("alice's session after bob's attempts: %d", status)
	}
	if status, body := alice.get("/workspaces"); status != 200 || string(body) != `{"workspaces":[{"name":"proj","shared":false}]}`+"\n" {
		t.Errorf("alice's workspaces: %d %s", status, body)
	}
	// Both use "proj", each their own.
	if status, body := bob.get("/workspaces/proj/files/app/secret.txt"); status != 200 || string(body) != "bob was here" {
		t.Errorf("bob's own proj: %d %q", status, body)
	}

	t.Run("keys granted a shared name share it", func(t *testing.T) {
		team1, team2 := h.as(keys["team1"]), h.as(keys["team2"])
		res := team1.run("shell", map[string]any{"workspace": "proj", "code": "echo team > shared.txt; ls"})
		if res.Stdout != "main.sh\nshared.txt\n" {
			t.Fatalf("team1's run in the shared proj sees %q (alice's or bob's files?)", res.Stdout)
		}
		if status, body := team2.get("/workspaces/proj/files/shared.txt"); status != 200 || string(body) != "team\n" {
			t.Errorf("team2 reads team1's shared file: %d %q", status, body)
		}
		if b, err := os.ReadFile(filepath.Join(root, "proj", "shared.txt")); err != nil || string(b) != "team\n" {
			t.Errorf("the shared namespace is <root>/<name>, what code-server sees: %q %v", b, err)
		}
		if status, _ := alice.get("/workspaces/proj/files/shared.txt"); status != 404 {
			t.Errorf("alice (not granted) reads the shared proj: %d", status)
		}
		if status, body := team2.get("/workspaces"); string(body) != `{"workspaces":[{"name":"proj","shared":true}]}`+"\n" {
			t.Errorf("team2's workspaces: %d %s", status, body)
		}
	})

	t.Run("operator routes", func(t *testing.T) {
		for _, r := range []struct{ method, path string }{{"GET", "/metrics"}, {"GET", "/plugins"}, {"POST", "/admin/plugins/reload"}} {
			if status, body := h.as(keys["ops"]).do(context.Background(), r.method, r.path, nil); status != 200 {
				t.Errorf("operator %s %s: %d %s", r.method, r.path, status, body)
			}
			for _, name := range []string{"alice", "team2"} {
				status, body := h.as(keys[name]).do(context.Background(), r.method, r.path, nil)
				if status != http.StatusForbidden || decodeError(t, body).Error.Code != "forbidden" {
					t.Errorf("%s %s %s: %d %s, want 403 forbidden", name, r.method, r.path, status, body)
				}
			}
		}
	})
}

// TestCachesAreOwnedPerKey: a key never finds another key's install or
// build in the caches (install.cached / build.cached would tell it what
// the other ran, and a shared entry could be poisoned).
func TestCachesAreOwnedPerKey(t *testing.T) {
	idx := startPackageIndex(t, dockerClient(t))
	h, _, keys := startTenantHost(t, []string{"alice", "bob"}, idx.env()...)
	alice, bob := h.as(keys["alice"]), h.as(keys["bob"])

	install := map[string]any{"code": "import runhost_greet; print('ok')", "requirements": []string{"runhost-greet==1.0"}}
	for i, tt := range []struct {
		who    *host
		cached bool
	}{{alice, false}, {alice, true}, {bob, false}} {
		res := tt.who.run("python", install)
		if res.Install == nil || res.Install.Cached != tt.cached || res.Stdout != "ok\n" {
			t.Fatalf("install %d: cached %+v, want %v: %+v", i, res.Install, tt.cached, res)
		}
	}

	// A Dockerfile no earlier test run built (built images outlive hosts).
	// Its RUN step is where the engine's own layer cache would answer
	// ("Using cache" in the log bob reads) if builds shared it.
	build := map[string]any{"dockerfile": "FROM runhost/shell:bookworm\nRUN echo " + auth.NewKey() + " > /tmp/stamp\nCMD [\"echo\", \"built\"]\n"}
	for i, tt := range []struct {
		who    *host
		cached bool
	}{{alice, false}, {alice, true}, {bob, false}} {
		res := tt.who.run("dockerfile", build)
		if res.Build == nil || res.Build.Cached != tt.cached || res.Stdout != "built\n" {
			t.Fatalf("build %d: %+v, want cached %v", i, res.Build, tt.cached)
		}
		if !tt.cached && strings.Contains(res.Build.Log, "Using cache") {
			t.Errorf("build %d reused layers of an earlier build (an oracle of what another key built):\n%s", i, res.Build.Log)
		}
	}
}
