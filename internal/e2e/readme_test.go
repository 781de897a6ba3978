package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runhost/runhost/internal/testenv"
)

// readmeSection returns the text of README.md from heading to the next
// heading of the same level.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README has no %q section", heading)
	}
	level := heading[:strings.Index(heading, " ")+1]
	section, _, _ = strings.Cut(section, "\n"+level)
	return section
}

// codeBlock returns the first fenced block of the given language in text.
func codeBlock(t *testing.T, text, lang string) string {
	t.Helper()
	_, rest, ok := strings.Cut(text, "```"+lang+"\n")
	if !ok {
		t.Fatalf("no ```%s block in %q", lang, text)
	}
	block, _, _ := strings.Cut(rest, "```")
	return block
}

// lookTool finds a program the test needs: missing fails in CI.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if testenv.InCI() {
			t.Fatalf("CI=true and %s is missing: %v", name, err)
		}
		t.Skipf("%s is missing: %v", name, err)
	}
	return p
}

// TestREADMEQuickStart runs the curl commands of the README's "Run it"
// section, as a reader pastes them, and checks what they print.
func TestREADMEQuickStart(t *testing.T) {
	curl := lookTool(t, "curl")
	var examples []string
	for _, line := range strings.Split(readmeSection(t, "## Run it"), "\n") {
		if strings.HasPrefix(line, "curl -s ") {
			examples = append(examples, line)
		}
		if strings.HasPrefix(line, "More of what") {
			break // the examples after it need PyPI or a registry
		}
	}
	type result struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	checks := []func(t *testing.T, out []byte){
		func(t *testing.T, out []byte) {
			var rts []map[string]any
			if err := json.Unmarshal(out, &rts); err != nil || len(rts) < 4 {
				t.Errorf("GET /runtimes: %s (%v)", out, err)
			}
		},
		func(t *testing.T, out []byte) {
			var r result
			if err := json.Unmarshal(out, &r); err != nil || r.ExitCode != 0 || r.Stdout != "Hello from runhost!\n" {
				t.Errorf("python example: %s (%v)", out, err)
			}
		},
		func(t *testing.T, out []byte) {
			var r result
			if err := json.Unmarshal(out, &r); err != nil || r.ExitCode != 0 || r.Stdout != "hi\nfrom stdin" {
				t.Errorf("shell example: %s (%v)", out, err)
			}
		},
	}
	if len(examples) != len(checks) {
		t.Fatalf("README's quick start has %d curl commands, the test checks %d: %q", len(examples), len(checks), examples)
	}
	h := startHost(t)
	addr := strings.TrimPrefix(h.URL, "http://")
	for i, ex := range examples {
		cmd := strings.Replace(strings.Replace(ex, "curl -s", curl+" -s", 1), "localhost:8080", addr, 1)
		out, err := exec.Command("sh", "-c", cmd).Output()
		if err != nil {
			t.Fatalf("%s: %v", ex, err)
		}
		checks[i](t, out)
	}
}

// TestREADMEPythonClient runs the README's Python client example with the
// machine's python3, from the repository root as the README says.
func TestREADMEPythonClient(t *testing.T) {
	python := lookTool(t, "python3")
	script := codeBlock(t, readmeSection(t, "### Python client"), "python")
	h := startHost(t)
	cmd := exec.Command(python, "-c", script)
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(os.Environ(), "RUNHOST_URL="+h.URL, "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's Python example: %v\n%s", err, out)
	}
	want := "45\n 0\nhello from runhost\n 0\n"
	if string(out) != want {
		t.Errorf("the README's Python example printed %q, want %q", out, want)
	}
}
