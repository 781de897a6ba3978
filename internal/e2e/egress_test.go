package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
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
// another host of an allowed range, not an allowed name at a refused
// address (cloud metadata's case), not this machine's ports, not even a DNS
// server. Listeners on networks the test made stand for those, so a
// regression shows as a real connection and nothing leaves the machine.
func TestInstallStepsReachOnlyAllowedHosts(t *testing.T) {
	cli := dockerClient(t)
	idx := startPackageIndex(t, cli)
	idxNet, err := cli.NetworkInspect(context.Background(), idx.Network, network.InspectOptions{})
	if err != nil || len(idxNet.IPAM.Config) == 0 {
		t.Fatal(err)
	}
	// Another host in the index's range, which RUNHOST_EGRESS_ALLOW_CIDRS
	// allows: only the host allow-list stops it.
	sameRange := (outside{Gateway: idxNet.IPAM.Config[0].Gateway}).listen(t, "tcp")
	// An address outside every allowed range under an allowed name: only the
	// address check stops it, as for 169.254.169.254.
	out := newOutside(t, cli)
	metadata, dns := out.listen(t, "tcp"), out.listen(t, "udp")
	indexHost := strings.TrimPrefix(strings.TrimSuffix(idx.PipIndexURL, "/simple"), "http://")
	h := startHostWith(t, cli, append(idx.env(), "RUNHOST_PLUGIN_DIR="+pluginDirWith(t, "probe"),
		"RUNHOST_EGRESS_ALLOW="+indexHost+","+metadata.Addr())...)

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
get('other_host', 'http://SAMERANGE/')
get('metadata', 'http://METADATA/latest/meta-data/')
get('engine', 'http://GATEWAY:2375/version')
get('host_api', 'http://GATEWAY:8080/runtimes')
for name, addr in [('direct_engine', ('GATEWAY', 2375)), ('direct_metadata', ('METAHOST', METAPORT))]:
    s = socket.socket(); s.settimeout(3)
    try:
        s.connect(addr); res[name] = 'CONNECTED'
    except OSError:
        res[name] = 'failed'
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(3)
try:
    u.sendto(b'query', ('DNSHOST', DNSPORT)); u.recvfrom(64); res['dns'] = 'ANSWERED'
except OSError:
    res['dns'] = 'failed'
res['interfaces'] = sorted(os.listdir('/sys/class/net'))
print(json.dumps(res))
sys.exit(3)
`
	probe = strings.NewReplacer("INDEX", idx.PipIndexURL, "SAMERANGE", sameRange.Addr(), "METADATA", metadata.Addr(),
		"METAHOST", metadata.Host, "METAPORT", strconv.Itoa(metadata.Port), "DNSHOST", dns.Host, "DNSPORT", strconv.Itoa(dns.Port),
		"GATEWAY", out.Gateway).Replace(probe)
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
	for name, l := range map[string]*listener{"another host of the allowed range": sameRange, "the metadata stand-in": metadata, "the DNS stand-in": dns} {
		if n := l.Hits(); n > 0 {
			t.Errorf("%s got %d connections", name, n)
		}
	}
}
