package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/runhost/runhost/internal/testenv"
)

// rubyImage is the image of the out-of-tree example plugin in
// examples/plugins/ruby; `make examples` builds it.
const rubyImage = "runhost/ruby:3.1"

// TestOutOfTreeRubyPlugin builds examples/plugins/ruby — a plugin in its own
// Go module that knows runhost only through the SDK — installs it next to
// the shipped plugins and runs Ruby through the host.
func TestOutOfTreeRubyPlugin(t *testing.T) {
	cli := dockerClient(t)
	requireExampleImage(t, cli, rubyImage)
	bins := testenv.Build(t)

	dir := t.TempDir()
	entries, err := os.ReadDir(bins.PluginDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		copyExecutable(t, filepath.Join(bins.PluginDir, e.Name()), filepath.Join(dir, e.Name()))
	}
	copyExecutable(t, buildRubyExample(t), filepath.Join(dir, "runhost-plugin-ruby"))
	h := startHostWith(t, cli, "RUNHOST_PLUGIN_DIR="+dir)

	t.Run("listed next to the shipped runtimes", func(t *testing.T) {
		status, body := h.get("/runtimes")
		if status != http.StatusOK {
			t.Fatalf("GET /runtimes: %d %s", status, body)
		}
		var list []struct {
			Name         string   `json:"name"`
			Aliases      []string `json:"aliases"`
			Capabilities []string `json:"capabilities"`
			Versions     []struct {
				Version   string `json:"version"`
				Image     string `json:"image"`
				Default   bool   `json:"default"`
				Installed bool   `json:"installed"`
			} `json:"versions"`
		}
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, rt := range list {
			names = append(names, rt.Name)
			if rt.Name != "ruby" {
				continue
			}
			if !slices.Equal(rt.Aliases, []string{"rb"}) || !slices.Equal(rt.Capabilities, []string{"stdin", "args", "env", "files"}) {
				t.Errorf("ruby: aliases %q, capabilities %q", rt.Aliases, rt.Capabilities)
			}
			if len(rt.Versions) != 1 || rt.Versions[0].Version != "3.1" || rt.Versions[0].Image != rubyImage ||
				!rt.Versions[0].Default || !rt.Versions[0].Installed {
				t.Errorf("ruby: versions %+v, want 3.1 in %s, default and installed", rt.Versions, rubyImage)
			}
		}
		for _, want := range []string{"ruby", "python", "shell"} {
			if !slices.Contains(names, want) {
				t.Errorf("%s missing from GET /runtimes: %q", want, names)
			}
		}
		status, body = h.get("/plugins")
		if status != http.StatusOK || !strings.Contains(string(body), `"path":"`+filepath.Join(dir, "runhost-plugin-ruby")+`","runtime":"ruby"`) {
			t.Errorf("GET /plugins does not show the ruby plugin served from %s: %d %s", dir, status, body)
		}
	})

	t.Run("self-test", func(t *testing.T) {
		// The plugin's self-test, run by the host against the image.
		ran := false
		for _, r := range h.App.Runner.SelfTest(context.Background()) {
			if r.Runtime == "ruby" {
				ran = true
				if r.Version != "3.1" || !r.Passed {
					t.Errorf("ruby self-test: %+v", r)
				}
			}
		}
		if !ran {
			t.Error("the host ran no self-test of ruby")
		}
	})

	t.Run("stdin, args and env", func(t *testing.T) {
		body := `{"code":"puts ARGV.inspect\nputs STDIN.read.upcase\nputs ENV['GREETING']","args":["a b","c"],"stdin":"piped\nlines\n","env":{"GREETING":"hej"}}`
		req, err := http.NewRequest(http.MethodPost, h.URL+"/runtimes/ruby/run", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var res runResult
		if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, %+v, %v", resp.StatusCode, res, err)
		}
		if want := "[\"a b\", \"c\"]\nPIPED\nLINES\nhej\n"; res.Stdout != want || res.ExitCode != 0 {
			t.Fatalf("stdout %q (want %q), stderr %q, exit %d", res.Stdout, want, res.Stderr, res.ExitCode)
		}
		if res.Runtime != "ruby" || res.Version != "3.1" || res.Image != rubyImage {
			t.Errorf("result names %s %s %s", res.Runtime, res.Version, res.Image)
		}
		// The plugin's log line reaches the host's log with the request id.
		rid := resp.Header.Get("X-Request-Id")
		if rid == "" {
			t.Fatal("no X-Request-Id")
		}
		testenv.Eventually(t, 10*time.Second, "the plugin's log line with request id "+rid, func() bool {
			return logHas(h.Logs(), "planned ruby run", rid)
		})
	})

	t.Run("alias rb", func(t *testing.T) {
		res := h.run("rb", map[string]any{"code": `puts "#{RUBY_ENGINE} #{RUBY_VERSION[0, 3]}"`})
		if res.Stdout != "ruby 3.1\n" || res.Runtime != "ruby" {
			t.Errorf("got %+v", res)
		}
	})

	t.Run("multi-file program with require_relative", func(t *testing.T) {
		files := []map[string]string{
			{"path": "lib/greeter.rb", "content": "require_relative 'punct'\nmodule Greeter\n  def self.greet(n) = \"hello #{n}#{PUNCT}\"\nend\n"},
			{"path": "lib/punct.rb", "content": "PUNCT = '!'\n"},
			{"path": "app.rb", "content": "require_relative 'lib/greeter'\nputs Greeter.greet(ARGV[0])\n"},
		}
		res := h.run("ruby", map[string]any{"files": files, "entry": "app.rb", "args": []string{"files"}})
		if res.Stdout != "hello files!\n" || res.ExitCode != 0 {
			t.Errorf("entry app.rb: stdout %q stderr %q exit %d", res.Stdout, res.Stderr, res.ExitCode)
		}
		res = h.run("ruby", map[string]any{"code": "require_relative 'lib/greeter'\nputs Greeter.greet('code')", "files": files[:2]})
		if res.Stdout != "hello code!\n" || res.ExitCode != 0 {
			t.Errorf("code beside files: stdout %q stderr %q exit %d", res.Stdout, res.Stderr, res.ExitCode)
		}
	})

	t.Run("errors", func(t *testing.T) {
		res := h.run("ruby", map[string]any{"code": "raise 'boom'"})
		if res.ExitCode != 1 || !strings.Contains(res.Stderr, "boom (RuntimeError)") {
			t.Errorf("an exception: %+v", res)
		}
		// The plugin declares no packages capability: the host refuses before calling it.
		status, body := h.post("/runtimes/ruby/run", map[string]any{"code": "1", "packages": []string{"rake"}})
		if status != http.StatusBadRequest {
			t.Errorf("packages for ruby: %d %s", status, body)
		}
		status, body = h.post("/runtimes/ruby/run", map[string]any{"files": []map[string]string{{"path": "a.rb", "content": "1"}}, "entry": "b.rb"})
		if status != http.StatusBadRequest {
			t.Errorf("entry not among the files: %d %s", status, body)
		}
		// The plugin's own refusal (shared.Invalidf) is a 400 with its message.
		status, body = h.post("/runtimes/ruby/run", map[string]any{"files": []map[string]string{{"path": "-e", "content": "1"}}, "args": []string{"puts 1"}})
		if status != http.StatusBadRequest || !strings.Contains(string(body), "starts with -") {
			t.Errorf("entry -e: %d %s", status, body)
		}
	})
}

// requireExampleImage is testenv.RequireImages for the examples' images,
// whose hint is `make examples` rather than `make images`.
func requireExampleImage(t *testing.T, cli *client.Client, image string) {
	t.Helper()
	if _, err := cli.ImageInspect(context.Background(), image); err != nil {
		if testenv.InCI() {
			t.Fatalf("image %s missing in CI (run `make examples`): %v", image, err)
		}
		t.Skipf("image %s missing (run `make examples`): %v", image, err)
	}
}

// buildRubyExample builds examples/plugins/ruby in its own module, the way a
// team builds its plugin in its own repository.
func buildRubyExample(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "runhost-plugin-ruby")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = filepath.Join(testenv.RepoRoot(), "examples", "plugins", "ruby")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the example plugin in %s: %v\n%s", cmd.Dir, err, b)
	}
	return out
}

func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// logHas reports whether a JSON log line has message msg and request id rid.
func logHas(logs, msg, rid string) bool {
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["@message"] == msg && line["request_id"] == rid {
			return true
		}
	}
	return false
}
