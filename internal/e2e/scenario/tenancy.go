package scenario

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Caller sends one request as one key. body is nil, a string (sent as
// application/octet-stream: an upload) or a value sent as JSON.
type Caller func(method, path string, body any) (int, []byte)

// HTTPCaller calls the host at base with key (none when empty).
func HTTPCaller(t *testing.T, base, key string) Caller {
	return func(method, path string, body any) (int, []byte) {
		t.Helper()
		var r io.Reader
		ctype := ""
		switch b := body.(type) {
		case nil:
		case string:
			r, ctype = strings.NewReader(b), "application/octet-stream"
		default:
			js, err := json.Marshal(b)
			if err != nil {
				t.Fatal(err)
			}
			r, ctype = bytes.NewReader(js), "application/json"
		}
		req, err := http.NewRequest(method, base+path, r)
		if err != nil {
			t.Fatal(err)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, out
	}
}

// TenancyKeys are the keys file lines (name and options) Tenancy needs.
var TenancyKeys = []string{"alice", "bob", "ops operator", "team1 workspaces=proj", "team2 workspaces=proj,docs"}

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
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
		a.Code, a.Message = e.Error.Code, e.Error.Message
	}
	var r struct {
		RunID          string `json:"run_id"`
		Stdout, Stderr string
	}
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

// Tenancy is issue 14's first finding tried on every route and field that
// names a workspace or a session, on any executor: key B gets for key A's
// names exactly what it gets for names that do not exist, A's files stay
// as they were, keys granted a shared name share it (at <root>/<name>,
// what code-server sees), and operator routes need the operator. as
// returns a caller for a key of TenancyKeys by name; root is where the
// host sees the workspace volume; builds says whether Dockerfile builds
// work (context_path is then probed too).
func Tenancy(t *testing.T, as func(name string) Caller, root string, builds bool) {
	alice, bob := as("alice"), as("bob")
	run := func(c Caller, runtime string, req map[string]any) Result {
		t.Helper()
		status, body := c(http.MethodPost, "/runtimes/"+runtime+"/run", req)
		var r Result
		if status != http.StatusOK || json.Unmarshal(body, &r) != nil {
			t.Fatalf("run %s: %d %s", runtime, status, body)
		}
		return r
	}

	// A writes through a run and through the files API.
	if r := run(alice, "shell", map[string]any{"workspace": "proj/app", "code": "echo alice-secret > secret.txt; pwd"}); r.ExitCode != 0 || r.Stdout != "/workspaces/proj/app\n" {
		t.Fatalf("alice's run: %+v", r)
	}
	if status, body := alice(http.MethodPut, "/workspaces/proj/files/app/uploaded.txt", "alice-upload"); status != 200 {
		t.Fatalf("alice's PUT: %d %s", status, body)
	}
	if b, err := os.ReadFile(filepath.Join(root, ".tenants", "alice", "proj", "app", "secret.txt")); err != nil || string(b) != "alice-secret\n" {
		t.Fatalf("alice's file is not in her namespace on the volume: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(root, "proj")); !os.IsNotExist(err) {
		t.Fatalf("alice's private workspace appeared in the shared namespace: %v", err)
	}
	status, body := alice(http.MethodPost, "/sessions", map[string]any{"runtime": "shell"})
	if status != http.StatusCreated {
		t.Fatalf("alice's session: %d %s", status, body)
	}
	var sess struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &sess)
	t.Cleanup(func() { alice(http.MethodDelete, "/sessions/"+sess.ID, nil) })

	const nowhere = "nothing"
	dockerfile := "FROM runhost/shell:bookworm\nCOPY . /ctx\nCMD [\"cat\", \"/ctx/secret.txt\"]\n"
	type probe struct {
		what   string
		status int // what a name that exists nowhere gets
		do     func(b Caller, name string) answer
	}
	// Every route and field that names a workspace, tried by B on A's name
	// and on a name that exists nowhere: first the ones that only look, then
	// the ones that change something.
	probes := []probe{
		{"list files", 404, func(b Caller, n string) answer {
			return observe(b(http.MethodGet, "/workspaces/"+n+"/files/?list", nil))
		}},
		{"list a directory", 404, func(b Caller, n string) answer {
			return observe(b(http.MethodGet, "/workspaces/"+n+"/files/app?list", nil))
		}},
		{"read a file", 404, func(b Caller, n string) answer {
			return observe(b(http.MethodGet, "/workspaces/"+n+"/files/app/secret.txt", nil))
		}},
		{"run in the workspace", 200, func(b Caller, n string) answer {
			return observe(b(http.MethodPost, "/runtimes/shell/run", map[string]any{"workspace": n + "/app", "code": "ls -a; cat secret.txt uploaded.txt"}))
		}},
		{"session in the workspace", 200, func(b Caller, n string) answer {
			status, body := b(http.MethodPost, "/sessions", map[string]any{"runtime": "shell", "workspace": n + "/app"})
			if status != http.StatusCreated {
				return observe(status, body)
			}
			var s struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(body, &s)
			defer b(http.MethodDelete, "/sessions/"+s.ID, nil)
			return observe(b(http.MethodPost, "/sessions/"+s.ID+"/run", map[string]any{"files": []map[string]string{{"path": "probe.sh", "content": "ls -a; cat secret.txt uploaded.txt"}}}))
		}},
		{"delete a file", 404, func(b Caller, n string) answer {
			return observe(b(http.MethodDelete, "/workspaces/"+n+"/files/app/secret.txt", nil))
		}},
		{"delete the workspace", 204, func(b Caller, n string) answer {
			return observe(b(http.MethodDelete, "/workspaces/"+n, nil))
		}},
		{"overwrite a file", 200, func(b Caller, n string) answer {
			return observe(b(http.MethodPut, "/workspaces/"+n+"/files/app/secret.txt", "bob was here"))
		}},
	}
	if builds {
		probes = append([]probe{{"build from context_path", 404, func(b Caller, n string) answer {
			return observe(b(http.MethodPost, "/runtimes/dockerfile/run", map[string]any{"dockerfile": dockerfile, "context_path": n + "/app"}))
		}}}, probes...)
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
				if status, body := alice(http.MethodGet, "/workspaces/proj/files/"+path, nil); status != 200 || string(body) != want {
					t.Errorf("alice's %s after bob's attempt: %d %q", path, status, body)
				}
			}
		})
	}
	if status, body := bob(http.MethodGet, "/workspaces", nil); status != 200 || string(body) != `{"workspaces":[{"name":"nothing","shared":false},{"name":"proj","shared":false}]}`+"\n" {
		t.Errorf("bob's workspaces: %d %s (his own two, never alice's)", status, body)
	}

	// Exec sessions: A's id is, to B, an id that does not exist.
	const unknownID = "s_000000000000000000000000"
	for _, p := range []probe{
		{"describe a session", 404, func(b Caller, id string) answer { return observe(b(http.MethodGet, "/sessions/"+id, nil)) }},
		{"run in a session", 404, func(b Caller, id string) answer {
			return observe(b(http.MethodPost, "/sessions/"+id+"/run", map[string]any{"code": "echo in alice's session"}))
		}},
		{"end a session", 404, func(b Caller, id string) answer { return observe(b(http.MethodDelete, "/sessions/"+id, nil)) }},
	} {
		t.Run(p.what, func(t *testing.T) {
			want := p.do(bob, unknownID)
			if want.Status != p.status || want.Code != "session_not_found" {
				t.Errorf("unknown session: %+v", want)
			}
			sameAnswer(t, p.what, p.do(bob, sess.ID), want, sess.ID, unknownID)
		})
	}
	if status, body := bob(http.MethodGet, "/sessions", nil); status != 200 || strings.Contains(string(body), sess.ID) {
		t.Errorf("bob's sessions list alice's: %d %s", status, body)
	}

	// Nothing B did reached A.
	if status, _ := alice(http.MethodGet, "/sessions/"+sess.ID, nil); status != 200 {
		t.Errorf("alice's session after bob's attempts: %d", status)
	}
	if status, body := alice(http.MethodGet, "/workspaces", nil); status != 200 || string(body) != `{"workspaces":[{"name":"proj","shared":false}]}`+"\n" {
		t.Errorf("alice's workspaces: %d %s", status, body)
	}
	// Both use "proj", each their own.
	if status, body := bob(http.MethodGet, "/workspaces/proj/files/app/secret.txt", nil); status != 200 || string(body) != "bob was here" {
		t.Errorf("bob's own proj: %d %q", status, body)
	}

	t.Run("keys granted a shared name share it", func(t *testing.T) {
		team1, team2 := as("team1"), as("team2")
		r := run(team1, "shell", map[string]any{"workspace": "proj", "code": "echo team > shared.txt; ls"})
		if r.Stdout != "main.sh\nshared.txt\n" && r.Stdout != "shared.txt\n" {
			t.Fatalf("team1's run in the shared proj sees %q (alice's or bob's files?)", r.Stdout)
		}
		if status, body := team2(http.MethodGet, "/workspaces/proj/files/shared.txt", nil); status != 200 || string(body) != "team\n" {
			t.Errorf("team2 reads team1's shared file: %d %q", status, body)
		}
		if b, err := os.ReadFile(filepath.Join(root, "proj", "shared.txt")); err != nil || string(b) != "team\n" {
			t.Errorf("the shared namespace is <root>/<name>, what code-server sees: %q %v", b, err)
		}
		if status, _ := alice(http.MethodGet, "/workspaces/proj/files/shared.txt", nil); status != 404 {
			t.Errorf("alice (not granted) reads the shared proj: %d", status)
		}
		if status, body := team2(http.MethodGet, "/workspaces", nil); string(body) != `{"workspaces":[{"name":"proj","shared":true}]}`+"\n" {
			t.Errorf("team2's workspaces: %d %s", status, body)
		}
	})

	t.Run("operator routes", func(t *testing.T) {
		for _, r := range []struct{ method, path string }{{"GET", "/metrics"}, {"GET", "/plugins"}, {"POST", "/admin/plugins/reload"}} {
			if status, body := as("ops")(r.method, r.path, nil); status != 200 {
				t.Errorf("operator %s %s: %d %s", r.method, r.path, status, body)
			}
			for _, name := range []string{"alice", "team2"} {
				status, body := as(name)(r.method, r.path, nil)
				if a := observe(status, body); status != http.StatusForbidden || a.Code != "forbidden" {
					t.Errorf("%s %s %s: %d %s, want 403 forbidden", name, r.method, r.path, status, body)
				}
			}
		}
	})
}
