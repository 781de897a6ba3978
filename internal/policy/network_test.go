package policy

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestRunNetwork(t *testing.T) {
	grant := NetworkGrant{Hosts: []string{"api.github.com", "*.example.org"}}
	byDefault := NetworkGrant{Hosts: grant.Hosts, Default: true}
	many := make([]string, maxNetworkHosts+1)
	for i := range many {
		many[i] = "api.github.com"
	}
	tests := []struct {
		name  string
		grant NetworkGrant
		asked *NetworkRequest
		want  []string // nil: no network
		err   error
	}{
		{"did not ask, no default", grant, nil, nil, nil},
		{"did not ask, default", byDefault, nil, grant.Hosts, nil},
		{"asks for none, default", byDefault, &NetworkRequest{Allow: []string{}}, nil, nil},
		{"asks within", grant, &NetworkRequest{Allow: []string{"API.github.com", "a.example.org:443"}}, []string{"api.github.com", "a.example.org:443"}, nil},
		{"asks beyond", grant, &NetworkRequest{Allow: []string{"api.github.com", "pypi.org"}}, nil, ErrNetworkNotAllowed},
		{"no grant at all", NetworkGrant{}, &NetworkRequest{Allow: []string{"api.github.com"}}, nil, ErrNetworkNotAllowed},
		{"a bad entry", grant, &NetworkRequest{Allow: []string{"10.0.0.1"}}, nil, ErrBadNetwork},
		{"too many entries", grant, &NetworkRequest{Allow: many}, nil, ErrBadNetwork},
	}
	for _, tt := range tests {
		got, err := RunNetwork(tt.grant, tt.asked)
		if !slices.Equal(got, tt.want) || !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
			t.Errorf("%s: RunNetwork = %v, %v; want %v, %v", tt.name, got, err, tt.want, tt.err)
		}
	}
	// The refusal names what was asked beyond the grant, and the grant.
	_, err := RunNetwork(grant, &NetworkRequest{Allow: []string{"pypi.org"}})
	if msg := err.Error(); !strings.Contains(msg, "pypi.org") || !strings.Contains(msg, "api.github.com, *.example.org") {
		t.Errorf("refusal %q does not name the host and the grant", msg)
	}
	_, err = RunNetwork(NetworkGrant{}, &NetworkRequest{Allow: []string{"pypi.org"}})
	if msg := err.Error(); !strings.Contains(msg, "egress=") {
		t.Errorf("refusal without a grant %q does not say how to get one", msg)
	}
}
