package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// A grant is a list of host patterns a key's runs may reach through the
// proxy: "host", "*.domain" (every name below domain, not domain itself)
// or either with ":port" (that port only; without one, any port). Only
// names: the proxy resolves them and checks the addresses itself.

// ErrBadPattern is a grant or request entry that is not a host pattern
// runhost accepts.
var ErrBadPattern = errors.New("not an allowed host pattern")

// privateSuffixes are names that resolve on a private network or this
// machine, never to a public host: granting them would aim runs at the
// inside.
var privateSuffixes = []string{"localhost", "local", "localdomain", "internal", "intranet", "lan", "home", "corp", "home.arpa", "arpa"}

// CheckPattern checks one host pattern and returns it normalised (lower
// case, no trailing dot). It refuses IP literals, names without a dot
// (resolved through search domains: an intranet host), private names
// (localhost, *.local, *.internal, ...), "*" alone, a wildcard over a
// public suffix (*.com, *.co.uk, *.github.io), wildcards anywhere but the
// first label, and ports that are not one number in 1-65535 (no ranges).
func CheckPattern(pattern string) (string, error) {
	bad := func(format string, args ...any) (string, error) {
		return "", fmt.Errorf("%w: %q: %s", ErrBadPattern, pattern, fmt.Sprintf(format, args...))
	}
	p := strings.ToLower(strings.TrimSpace(pattern))
	if p == "" {
		return bad("empty")
	}
	host, port := p, ""
	if i := strings.LastIndexByte(p, ':'); i >= 0 && !strings.HasSuffix(p, "]") {
		host, port = p[:i], p[i+1:]
		if strings.Contains(host, ":") {
			return bad("an IP address; grant host names, which the proxy resolves and checks")
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return bad("the port must be one number from 1 to 65535 (no ranges)")
		}
	}
	host = strings.TrimSuffix(host, ".")
	if h := strings.Trim(host, "[]"); h != host || isIP(h) {
		return bad("an IP address; grant host names, which the proxy resolves and checks")
	}
	name := host
	wildcard := strings.HasPrefix(host, "*.")
	if wildcard {
		name = host[2:]
	}
	switch {
	case host == "*" || host == "*.":
		return bad("a wildcard that covers every host")
	case strings.Contains(name, "*"):
		return bad("a wildcard may only be the whole first label (*.example.com)")
	case !validName(name):
		return bad("not a host name (letters, digits and '-' in dot-separated labels)")
	case isIP(name):
		return bad("an IP address; grant host names, which the proxy resolves and checks")
	case !strings.Contains(name, "."):
		return bad("a name without a dot, resolved through the machine's search domains (an intranet host)")
	}
	for _, s := range privateSuffixes {
		if name == s || strings.HasSuffix(name, "."+s) {
			return bad("a name of the private network or this machine (.%s)", s)
		}
	}
	if wildcard {
		if _, err := publicsuffix.EffectiveTLDPlusOne(name); err != nil {
			return bad("a wildcard over a public suffix, which covers everyone's hosts")
		}
	}
	if port != "" {
		return host + ":" + port, nil
	}
	return host, nil
}

// CheckPatterns checks every pattern of a list and returns them
// normalised, duplicates dropped.
func CheckPatterns(patterns []string) ([]string, error) {
	out := make([]string, 0, len(patterns))
	for _, p := range patterns {
		n, err := CheckPattern(p)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// Covers reports whether every host:port that pattern matches is matched
// by a pattern of grant. Both are normalised (CheckPattern).
func Covers(grant []string, pattern string) bool {
	ph, pp, _ := strings.Cut(pattern, ":")
	for _, g := range grant {
		gh, gp, hasPort := strings.Cut(g, ":")
		if hasPort && gp != pp {
			continue // the grant names a port; the pattern any other, or all
		}
		switch {
		case gh == ph:
			return true
		case strings.HasPrefix(gh, "*.") && strings.HasSuffix(strings.TrimPrefix(ph, "*"), gh[1:]):
			// *.example.com covers a.example.com and *.a.example.com.
			return true
		}
	}
	return false
}

// Outside returns the patterns of asked that grant does not cover.
func Outside(grant, asked []string) []string {
	var out []string
	for _, a := range asked {
		if !Covers(grant, a) {
			out = append(out, a)
		}
	}
	return out
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// validName reports whether s is a DNS name of letter-digit-hyphen labels.
func validName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
