package egress

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckPattern(t *testing.T) {
	tests := []struct {
		in   string
		want string // empty: refused
	}{
		{"api.github.com", "api.github.com"},
		{"API.GitHub.com.", "api.github.com"},
		{" api.github.com ", "api.github.com"},
		{"*.example.org", "*.example.org"},
		{"*.example.org:443", "*.example.org:443"},
		{"api.example.test:8443", "api.example.test:8443"},
		{"*.github.io", ""},                    // a wildcard over a public suffix
		{"*.com", ""},                          // likewise
		{"*.co.uk", ""},                        // likewise
		{"*", ""},                              // everything
		{"*.", ""},                             // likewise
		{"a.*.example.org", ""},                // a wildcard inside
		{"*example.org", ""},                   // not a whole label
		{"10.0.0.1", ""},                       // an IP literal
		{"169.254.169.254:80", ""},             // likewise, with a port
		{"[::1]", ""},                          // an IPv6 literal
		{"[fe80::1]:443", ""},                  // likewise, with a port
		{"::1", ""},                            // bare IPv6
		{"localhost", ""},                      // this machine
		{"db.localhost", ""},                   // likewise
		{"metadata.google.internal", ""},       // a private name
		{"printer.local", ""},                  // mDNS
		{"nas.home.arpa", ""},                  // a home network
		{"intranet", ""},                       // no dot: search domains
		{"api.github.com:1-100", ""},           // a port range
		{"api.github.com:0", ""},               // not a port
		{"api.github.com:65536", ""},           // likewise
		{"api.github.com:080", ""},             // not one canonical number
		{"api.github.com:", ""},                // empty port
		{"", ""},                               // empty
		{"http://api.github.com", ""},          // a URL
		{"api.github.com/path", ""},            // likewise
		{"user@api.github.com", ""},            // likewise
		{"-bad.example.org", ""},               // not a host name
		{"a..example.org", ""},                 // empty label
		{strings.Repeat("a", 64) + ".org", ""}, // label too long
	}
	for _, tt := range tests {
		got, err := CheckPattern(tt.in)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("CheckPattern(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		if err != nil && !errors.Is(err, ErrBadPattern) {
			t.Errorf("CheckPattern(%q): %v does not wrap ErrBadPattern", tt.in, err)
		}
	}
}

func TestCovers(t *testing.T) {
	grant := []string{"api.github.com", "*.example.org", "pypi.org:443"}
	tests := []struct {
		asked string
		want  bool
	}{
		{"api.github.com", true},
		{"api.github.com:443", true},   // any port of a grant without one
		{"a.example.org", true},        // below the wildcard
		{"*.a.example.org", true},      // a narrower wildcard
		{"a.example.org:8080", true},   // any port
		{"example.org", false},         // the wildcard's own name is not below it
		{"*.example.org", true},        // the same wildcard
		{"pypi.org:443", true},         // the granted port
		{"pypi.org", false},            // every port of a host granted one
		{"pypi.org:80", false},         // another port
		{"github.com", false},          // a parent of a granted host
		{"evil-api.github.com", false}, // a sibling
		{"api.github.com.evil.org", false},
		{"xexample.org", false}, // a suffix that is not a label boundary
	}
	for _, tt := range tests {
		if got := Covers(grant, tt.asked); got != tt.want {
			t.Errorf("Covers(%v, %q) = %v, want %v", grant, tt.asked, got, tt.want)
		}
	}
}
