package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/testenv"
)

// TestPythonClient runs the Python client's own tests
// (clients/python/tests, the seed's usage examples among them) against a
// real host with workspaces, API keys and a local package index.
func TestPythonClient(t *testing.T) {
	python := lookTool(t, "python3")
	cli := dockerClient(t)
	idx := startPackageIndex(t, cli)
	// The seed's api.github.com: an HTTPS origin the key may reach by
	// default (the seed's calls have no network parameter).
	origin := startHTTPSOrigins(t, cli, idx.Network)
	apiHost := strings.Split(origin.API, ":")[0]
	key := auth.NewKey()
	keys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keys, []byte("pyclient "+auth.Hash(key)+" egress="+apiHost+" egress-default\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, _ := startWorkspaceHost(t, append(idx.env(), "RUNHOST_API_KEYS_FILE="+keys, "RUNHOST_CA_BUNDLE="+origin.CAFile)...)

	root := testenv.RepoRoot()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-m", "unittest", "discover", "-s", filepath.Join("clients", "python", "tests"), "-v")
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"RUNHOST_URL="+h.URL,
		"RUNHOST_API_KEY="+key,
		"PYTHONPATH="+filepath.Join("clients", "python"),
		"PYTHONDONTWRITEBYTECODE=1",
		"PYTHONUNBUFFERED=1",
		"RUNHOST_TEST_REQUIREMENT=runhost-greet==1.0",
		"RUNHOST_TEST_IMPORT=runhost_greet",
		"RUNHOST_TEST_HTTPS_URL=https://"+origin.API+"/",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 -m unittest discover -s clients/python/tests: %v\n%s", err, out)
	}
	t.Logf("python3 -m unittest discover -s clients/python/tests:\n%s", out)
}
