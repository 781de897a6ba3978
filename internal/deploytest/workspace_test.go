package deploytest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestMakeRunServesTheWorkspace: `make run` starts the host with the
// checkout's ./workspace (the seed's host directory), and the environment
// wins (RUNHOST_WORKSPACE_ROOT=off turns it off). `make -n` only prints.
func TestMakeRunServesTheWorkspace(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make: %v", err)
	}
	root := repoRoot(t)
	for _, tc := range []struct{ env, want string }{
		{"", "RUNHOST_WORKSPACE_ROOT='" + filepath.Join(root, "workspace") + "' ./bin/host"},
		{"off", "RUNHOST_WORKSPACE_ROOT='off' ./bin/host"},
		{"/srv/ws", "RUNHOST_WORKSPACE_ROOT='/srv/ws' ./bin/host"},
	} {
		cmd := exec.Command("make", "--no-print-directory", "-n", "-C", root, "run")
		cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "RUNHOST_WORKSPACE_ROOT=") })
		if tc.env != "" {
			cmd.Env = append(cmd.Env, "RUNHOST_WORKSPACE_ROOT="+tc.env)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make -n run: %v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if last := lines[len(lines)-1]; last != tc.want {
			t.Errorf("RUNHOST_WORKSPACE_ROOT=%q: make run starts %q, want %q", tc.env, last, tc.want)
		}
	}
}

// TestComposeWorkspaceOff: RUNHOST_WORKSPACE_ROOT=off in .env reaches the
// host in both deployments (the compose files' own value would win over
// the env_file otherwise).
func TestComposeWorkspaceOff(t *testing.T) {
	env := map[string]string{"PWD": "/srv/checkout", "RUNHOST_WORKSPACE_ROOT": "off"}
	for _, files := range [][]string{{baseFile}, {baseFile, dindFile}} {
		host := service(t, loadProject(t, env, files...), "runhost")
		wantEnv(t, host, map[string]string{"RUNHOST_WORKSPACE_ROOT": "off"})
	}
}

// TestFreshCheckoutHasTheWorkspace: `docker compose up` on a fresh
// checkout finds the directory behind the workspace volume (a local bind
// volume of a missing directory fails to mount, in both deployments): the
// default device is ./workspace of the checkout, which git keeps (its
// .gitkeep), so it exists after a clone and belongs to whoever cloned,
// while everything the workspace holds stays out of git.
func TestFreshCheckoutHasTheWorkspace(t *testing.T) {
	root := repoRoot(t)
	for _, files := range [][]string{{baseFile}, {baseFile, dindFile}} {
		p := loadProject(t, map[string]string{"PWD": root}, files...)
		wantWorkspaceVolume(t, p, filepath.Join(root, "workspace"))
	}
	git := func(args ...string) error {
		cmd := exec.Command("git", append([]string{"-C", root}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil && len(out) > 0 {
			return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
		}
		return err
	}
	if err := git("ls-files", "--error-unmatch", "workspace/.gitkeep"); err != nil {
		t.Errorf("git does not keep workspace/ (workspace/.gitkeep): %v", err)
	}
	if err := git("check-ignore", "-q", "--no-index", "workspace/.gitkeep"); err == nil {
		t.Error("workspace/.gitkeep is ignored: a fresh checkout would lack ./workspace")
	}
	for _, data := range []string{"workspace/notes.txt", "workspace/proj/app.py", "workspace/.tenants/alice/p/x"} {
		if err := git("check-ignore", "-q", "--no-index", data); err != nil {
			t.Errorf("%s is not ignored: workspace files would end up in git (%v)", data, err)
		}
	}
}
