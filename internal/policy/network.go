package policy

import (
	"errors"
	"fmt"
	"strings"

	"github.com/runhost/runhost/internal/egress"
	"github.com/runhost/runhost/internal/executor"
)

// NetworkRequest is what a run or session asks to reach through the
// egress proxy; a nil *NetworkRequest means it did not ask. An empty Allow
// asks for no network, even where the key's grant applies by default. The
// front ends' Network types (internal/api, internal/mcp) have the same
// fields and convert to it.
type NetworkRequest struct {
	Allow []string
}

// NetworkGrant is what the keys file (or, without keys, the settings)
// grants a caller: Hosts its runs may reach, and whether every run gets
// all of them without asking.
type NetworkGrant struct {
	Hosts   []string
	Default bool
}

var (
	// ErrNetworkNotAllowed marks a request for hosts outside its key's grant (403).
	ErrNetworkNotAllowed = errors.New("network not allowed")
	// ErrBadNetwork marks a network entry that is not a host pattern (400).
	ErrBadNetwork = egress.ErrBadPattern
)

// NetworkError is a request for hosts the caller's key is not granted.
type NetworkError struct {
	Outside []string // what was asked beyond the grant
	Granted []string // the grant
}

func (e *NetworkError) Error() string {
	if len(e.Granted) == 0 {
		return fmt.Sprintf("network: %s: this key may reach no host (runs have no network); the operator grants hosts with egress=HOST[,HOST...] in the keys file (RUNHOST_RUN_EGRESS_ALLOW on a host without keys)",
			strings.Join(e.Outside, ", "))
	}
	return fmt.Sprintf("network: %s is outside what this key is granted: %s", strings.Join(e.Outside, ", "), strings.Join(e.Granted, ", "))
}
func (e *NetworkError) Is(target error) bool { return target == ErrNetworkNotAllowed }

// maxNetworkHosts bounds a request's list.
const maxNetworkHosts = 64

// RunNetwork decides what a run (or session) may reach: the hosts it asks
// for, each within the grant; without asking, the whole grant when it
// applies by default; otherwise nothing (nil: no network).
func RunNetwork(g NetworkGrant, asked *NetworkRequest) ([]string, error) {
	if asked == nil {
		if g.Default {
			return g.Hosts, nil
		}
		return nil, nil
	}
	hosts, err := NetworkHosts(asked)
	if err != nil {
		return nil, err
	}
	if out := egress.Outside(g.Hosts, hosts); len(out) > 0 {
		return nil, &NetworkError{Outside: out, Granted: g.Hosts}
	}
	if len(hosts) == 0 {
		return nil, nil
	}
	return hosts, nil
}

// NetworkHosts checks what a request asks for (at most maxNetworkHosts
// host patterns) and returns it normalised; errors wrap ErrBadNetwork.
func NetworkHosts(asked *NetworkRequest) ([]string, error) {
	if asked == nil {
		return nil, nil
	}
	if len(asked.Allow) > maxNetworkHosts {
		return nil, fmt.Errorf("%w: network.allow has %d entries, at most %d", ErrBadNetwork, len(asked.Allow), maxNetworkHosts)
	}
	hosts, err := egress.CheckPatterns(asked.Allow)
	if err != nil {
		return nil, fmt.Errorf("network.allow: %w", err)
	}
	return hosts, nil
}

// network is the job's network for the hosts the runner decided, with the
// host's CA bundle; env gets the CA variables the spec did not set itself.
func (p *Policy) network(hosts []string, env map[string]string) *executor.Network {
	if len(hosts) == 0 {
		return nil
	}
	if len(p.cfg.CABundle) > 0 {
		for _, k := range executor.CAEnv {
			if _, set := env[k]; !set {
				env[k] = executor.NetworkCAFile
			}
		}
	}
	return &executor.Network{Allow: hosts, CA: p.cfg.CABundle}
}

// NoBuildNetwork is what a failed build without network says about it.
const NoBuildNetwork = "runhost: this build had no network: its RUN steps reach no host (pip and npm cannot install). " +
	"The key's build-egress option in the keys file (RUNHOST_BUILD_NETWORK=true on a host without keys) lets them reach the package indexes (RUNHOST_EGRESS_ALLOW) through the egress proxy."
