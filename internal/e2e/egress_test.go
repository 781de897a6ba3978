package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/network"

	"github.com/runhost/runhost/internal/testenv"
)

// pluginDirWith builds the test plugin into a directory of its own under
// each name (runhost-plugin-<name>).
func pluginDirWith(t *testing.T, names ...string) string {
	t.Helper()
	bin := testenv.GoBuild(t, "./internal/registry/testdata/testplugin", t.TempDir(), "testplugin")
	dir := t.TempDir()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, "runhost-plugin-"+n), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestInstallStepsReachOnlyAllowedHosts runs code as an install step (the
// one step that may use the network) and checks what it can reach: the
// allowed package index through the egress proxy, and nothing else — not
// other hosts, not cloud metadata, not the engine or the host, not even DNS.
func TestInstallStepsReachOnlyAllowedHosts(t *testing.T) {
	cli := dockerClient(t)
	idx := startPackageIndex(t, cli)
	bridge, err := cli.NetworkInspect(context.Background(), "bridge", network.InspectOptions{})
	if err != nil || len(bridge.IPAM.Config) == 0 {
		t.Fatal(err)
	}
	gateway := bridge.IPAM.Config[0].Gateway
	h := startHostWith(t, cli, append(idx.env(), "RUNHOST_PLUGIN_DIR="+pluginDirWith(t, "probe"))...)

	probe := `
import json, os, socket, sys, urllib.request, urllib.error
res = {}
def get(name, url):
    try:
        urllib.request.urlopen(url, timeout=10).read(); res[name] = 'ok'
    except urllib.error.HTTPError as e:
        res[name] = e.code
    except Exception as e:
        res[name] = type(e).__name__
get('allowed', 'INDEX/runhost-greet/')
get('other_host', 'http://example.com/')
get('metadata', 'http://169.254.169.254/latest/meta-data/')
get('engine', 'http://GATEWAY:2375/version')
get('host_api', 'http://GATEWAY:8080/runtimes')
for name, addr in [('direct_engine', ('GATEWAY', 2375)), ('direct_metadata', ('169.254.169.254', 80))]:
    s = socket.socket(); s.settimeout(3)
    try:
        s.connect(addr); res[name] = 'CONNECTED'
    except OSError:
        res[name] = 'failed'
try:
    socket.getaddrinfo('example.com', 80); res['dns'] = 'RESOLVED'
except OSError:
    res['dns'] = 'failed'
res['interfaces'] = sorted(os.listdir('/sys/class/net'))
print(json.dumps(res))
sys.exit(3)
`
	probe = strings.NewReplacer("INDEX", idx.PipIndexURL, "GATEWAY", gateway).Replace(probe)
	res := h.run("probe", map[string]any{"code": probe})
	if res.Stage != "install" {
		t.Fatalf("the probe install must fail on purpose: %+v", res)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(res.Stdout)), &got); err != nil {
		t.Fatalf("probe output %q (stderr %q): %v", res.Stdout, res.Stderr, err)
	}
	t.Logf("install step reached: %v", got)
	want := map[string]any{
		"allowed":         "ok",
		"other_host":      float64(403),
		"metadata":        float64(403),
		"engine":          float64(403),
		"host_api":        float64(403),
		"direct_engine":   "failed",
		"direct_metadata": "failed",
		"dns":             "failed",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %v, want %v", k, got[k], v)
		}
	}
	if ifs, _ := json.Marshal(got["interfaces"]); string(ifs) != `["lo"]` {
		t.Errorf("the install step has network interfaces %s; want only lo", ifs)
	}
}
