package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/runhost/runhost/internal/testenv"
)

// TestPythonClient runs the Python client's own tests
// (clients/python/tests, the seed's usage examples among them, as written)
// against a real host with workspaces, API keys and a local package index
// serving real wheels of requests and flask (made from Debian's packages).
func TestPythonClient(t *testing.T) {
	python := lookTool(t, "python3")
	cli := dockerClient(t)
	requireBuilder(t)
	idx := startPackageIndex(t, cli, debianWheels(t))
	// The seed's api.github.com: an HTTPS origin the key may reach by
	// default (the seed's calls have no network parameter).
	origin := startHTTPSOrigins(t, cli, idx.Network)
	apiHost := strings.Split(origin.API, ":")[0]
	// The seed's builds install packages: its key is granted build egress;
	// "ungranted" is a key without any grant.
	keys, key := keysFile(t, "pyclient egress="+apiHost+" egress-default build-egress", "ungranted")
	// The seed's image names, mapped to images this engine has.
	aliases := "python:3.11-slim=" + seedPythonSlim(t, cli, idx) + ",node:20-alpine=runhost/node:20"
	h, _ := startWorkspaceHost(t, append(idx.env(), "RUNHOST_API_KEYS_FILE="+keys, "RUNHOST_CA_BUNDLE="+origin.CAFile,
		"RUNHOST_IMAGE_ALIASES="+aliases, "RUNHOST_ALLOWED_IMAGES=runhost/*,runhost-test/*")...)

	root := testenv.RepoRoot()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-m", "unittest", "discover", "-s", filepath.Join("clients", "python", "tests"), "-v")
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"RUNHOST_URL="+h.URL,
		"RUNHOST_API_KEY="+key["pyclient"],
		"RUNHOST_TEST_UNGRANTED_API_KEY="+key["ungranted"],
		"PYTHONPATH="+filepath.Join("clients", "python"),
		"PYTHONDONTWRITEBYTECODE=1",
		"PYTHONUNBUFFERED=1",
		"RUNHOST_TEST_HTTPS_URL=https://"+origin.API+"/",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 -m unittest discover -s clients/python/tests: %v\n%s", err, out)
	}
	t.Logf("python3 -m unittest discover -s clients/python/tests:\n%s", out)
}

// seedPythonSlim stands for the seed's python:3.11-slim, which no registry
// serves here: runhost/python:3.11 made to be what the seed's Dockerfile
// needs of that image — root, `python` on PATH, pip installing into the
// system's site-packages (no EXTERNALLY-MANAGED marker) — with pip pointed
// at the test's index by /etc/pip.conf, as a machine behind a mirror has
// it (a granted build's RUN steps get the proxy, not the host's index).
func seedPythonSlim(t *testing.T, cli *client.Client, idx packageIndex) string {
	t.Helper()
	indexHost := strings.Split(strings.TrimPrefix(idx.PipIndexURL, "http://"), ":")[0]
	name, _ := commitTestImage(t, cli, "runhost-test/python-slim:", "runhost/python:3.11",
		[]string{"sh", "-ec", `ln -s python3 /usr/bin/python
rm /usr/lib/python3.*/EXTERNALLY-MANAGED
printf '[global]\nindex-url = %s\ntrusted-host = %s\n' "$1" "$2" >/etc/pip.conf`, "sh", idx.PipIndexURL, indexHost},
		"USER root", "WORKDIR /", `CMD ["python3"]`)
	return name
}
