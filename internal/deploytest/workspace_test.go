package deploytest

import (
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
