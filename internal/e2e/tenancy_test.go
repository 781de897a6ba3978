package e2e

import (
	"strings"
	"testing"

	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/e2e/scenario"
)

// tenants are the keys of a multi-tenant host, by name.
type tenants map[string]string

// startTenantHost starts a host with workspaces and a keys file holding
// one fresh key per line of lines ("name [option ...]").
func startTenantHost(t *testing.T, lines []string, env ...string) (*host, string, tenants) {
	t.Helper()
	file, keys := keysFile(t, lines...)
	h, root := startWorkspaceHost(t, append([]string{"RUNHOST_API_KEYS_FILE=" + file}, env...)...)
	return h, root, keys
}

// as is h calling with key.
func (h *host) as(key string) *host {
	c := *h
	c.Key = key
	return &c
}

// TestWorkspacesBelongToTheirKey: the tenancy scenario (scenario.Tenancy)
// on the Docker executor, with Dockerfile builds.
func TestWorkspacesBelongToTheirKey(t *testing.T) {
	h, root, keys := startTenantHost(t, scenario.TenancyKeys)
	scenario.Tenancy(t, func(name string) scenario.Caller { return scenario.HTTPCaller(t, h.URL, keys[name]) }, root, true)
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
