// Package auth checks API keys and says who a key is. Keys are never
// stored: the keys file holds their SHA-256 hashes, one per line with the
// key's name and options, and a presented key is hashed and compared in
// constant time against every stored hash.
package auth

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/runhost/runhost/internal/egress"
	"github.com/runhost/runhost/internal/pathguard"
)

// ErrUnauthorized is a missing or wrong key.
var ErrUnauthorized = errors.New("unauthorized")

// Identity is who a caller is: the key's name and what the keys file grants
// it. The key itself is not part of it.
type Identity struct {
	// Name names the key in logs and limits, and owns the key's private
	// workspace namespace.
	Name string
	// Operator may call the operator routes (/admin/*, /metrics, /plugins).
	Operator bool
	// AllWorkspaces reaches every name of the shared workspace namespace;
	// Workspaces reaches the names listed.
	AllWorkspaces bool
	Workspaces    []string
	// Egress are the hosts (egress.CheckPattern's forms) this key's runs
	// may reach through the egress proxy, when a run asks for them or,
	// with EgressDefault, always. None: runs have no network.
	Egress        []string
	EgressDefault bool
	// BuildEgress lets the RUN steps of this key's Dockerfile builds reach
	// the install hosts (RUNHOST_EGRESS_ALLOW) through the proxy.
	BuildEgress bool
}

// AnonymousName is the name of the caller of a host without keys.
const AnonymousName = "anonymous"

// Anonymous is the caller of a host without keys: such a host has one
// tenant, who operates it and uses the shared workspace namespace.
func Anonymous() Identity {
	return Identity{Name: AnonymousName, Operator: true, AllWorkspaces: true}
}

// SharedWorkspace reports whether name resolves to the shared workspace
// namespace for id (rather than to id's private one).
func (id Identity) SharedWorkspace(name string) bool {
	return id.AllWorkspaces || slices.Contains(id.Workspaces, name)
}

// Keys is a set of key hashes and the identities they stand for.
type Keys struct {
	hashes [][32]byte
	ids    []Identity
}

// Load reads a keys file. Each line is
//
//	name sha256-hex [option ...]
//
// or the older "name sha256-hex" and "sha256-hex" (named key-<first 8 hex
// digits>); blank lines and # comments are skipped. Options:
//
//	operator                  may call /admin/*, /metrics and /plugins
//	workspaces=NAME[,NAME...] reaches these names of the shared workspace namespace
//	workspaces=*              reaches every name of it
//	egress=HOST[,HOST...]     runs may reach these hosts through the egress proxy
//	egress-default            every run gets all of them without asking
//	build-egress              Dockerfile RUN steps reach the install hosts
//
// An unknown option, a name that is not 1-64 letters, digits, '.', '-' or
// '_' (starting with a letter or digit), a name or hash given twice are
// errors naming the file and line. The key itself never appears anywhere.
func Load(path string) (*Keys, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	k := &Keys{}
	names := map[string]int{}
	hashes := map[[32]byte]int{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		hash, id, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		if first, dup := names[id.Name]; dup {
			return nil, fmt.Errorf("%s:%d: the name %q is already used on line %d", path, n, id.Name, first)
		}
		if first, dup := hashes[hash]; dup {
			return nil, fmt.Errorf("%s:%d: the same key hash is already on line %d (one key, one identity)", path, n, first)
		}
		names[id.Name], hashes[hash] = n, n
		k.hashes = append(k.hashes, hash)
		k.ids = append(k.ids, id)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(k.hashes) == 0 {
		return nil, fmt.Errorf("%s holds no keys", path)
	}
	return k, nil
}

// Line returns the keys-file line for a key with hash, name and options,
// checked by the same rules as Load. An empty name makes the old hash-only
// line (it takes no options).
func Line(hash, name string, options []string) (string, error) {
	if name == "" && len(options) > 0 {
		return "", errors.New("options need a name")
	}
	line := strings.Join(append([]string{name, hash}, options...), " ")
	if name == "" {
		line = hash
	}
	if _, _, err := parseLine(line); err != nil {
		return "", err
	}
	return line, nil
}

// CheckName reports whether name may name a key.
func CheckName(name string) error {
	if !pathguard.IsKeyName(name) {
		return fmt.Errorf("key name %q: want 1-64 letters, digits, '.', '-' and '_', starting with a letter or digit", name)
	}
	return nil
}

// parseLine reads one line of a keys file.
func parseLine(line string) ([32]byte, Identity, error) {
	fields := strings.Fields(line)
	var id Identity
	hash := fields[0]
	if len(fields) > 1 {
		id.Name, hash = fields[0], fields[1]
		if err := CheckName(id.Name); err != nil {
			return [32]byte{}, Identity{}, err
		}
	}
	raw, err := hex.DecodeString(hash)
	if err != nil || len(raw) != sha256.Size {
		return [32]byte{}, Identity{}, fmt.Errorf("want \"name sha256-hex [option ...]\"; %q is not a hex SHA-256 hash (store hashes, not keys: `host api-key`)", hash)
	}
	if id.Name == "" {
		id.Name = "key-" + hash[:8]
	}
	seen := map[string]bool{}
	for _, opt := range fields[min(2, len(fields)):] {
		name, value, hasValue := strings.Cut(opt, "=")
		if seen[name] {
			return [32]byte{}, Identity{}, fmt.Errorf("option %q is given twice", name)
		}
		seen[name] = true
		switch {
		case name == "operator" && !hasValue:
			id.Operator = true
		case name == "workspaces" && hasValue:
			if err := parseWorkspaces(&id, value); err != nil {
				return [32]byte{}, Identity{}, err
			}
		case name == "egress" && hasValue:
			hosts, err := egress.CheckPatterns(strings.Split(value, ","))
			if err != nil {
				return [32]byte{}, Identity{}, fmt.Errorf("egress=%s: %w", value, err)
			}
			id.Egress = hosts
		case name == "egress-default" && !hasValue:
			id.EgressDefault = true
		case name == "build-egress" && !hasValue:
			id.BuildEgress = true
		default:
			return [32]byte{}, Identity{}, fmt.Errorf("unknown option %q (want operator, workspaces=NAME[,NAME...], workspaces=*, egress=HOST[,HOST...], egress-default or build-egress)", opt)
		}
	}
	if id.EgressDefault && len(id.Egress) == 0 {
		return [32]byte{}, Identity{}, errors.New("egress-default needs egress=HOST[,HOST...]: the hosts every run of the key may reach")
	}
	return [32]byte(raw), id, nil
}

// parseWorkspaces reads the value of workspaces=: "*" or workspace names.
func parseWorkspaces(id *Identity, value string) error {
	if value == "*" {
		id.AllWorkspaces = true
		return nil
	}
	for _, name := range strings.Split(value, ",") {
		if !pathguard.IsWorkspaceName(name) {
			return fmt.Errorf("workspaces=%s: %q is not a workspace name (1-64 letters, digits, '-' and '_', starting with a letter or digit), and * stands alone", value, name)
		}
		if slices.Contains(id.Workspaces, name) {
			return fmt.Errorf("workspaces=%s: %q is given twice", value, name)
		}
		id.Workspaces = append(id.Workspaces, name)
	}
	return nil
}

// Check returns the identity of the key whose hash matches key. Every
// stored hash is compared, so the time taken does not depend on which one
// matches.
func (k *Keys) Check(key string) (Identity, error) {
	if key == "" {
		return Identity{}, ErrUnauthorized
	}
	sum := sha256.Sum256([]byte(key))
	found := -1
	for i, h := range k.hashes {
		if subtle.ConstantTimeCompare(sum[:], h[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Identity{}, ErrUnauthorized
	}
	id := k.ids[found]
	id.Workspaces = slices.Clone(id.Workspaces)
	id.Egress = slices.Clone(id.Egress)
	return id, nil
}

// EgressKeys names the keys whose runs are granted hosts (egress=).
func (k *Keys) EgressKeys() []string {
	var out []string
	for _, id := range k.ids {
		if len(id.Egress) > 0 {
			out = append(out, id.Name)
		}
	}
	return out
}

// Len is the number of keys.
func (k *Keys) Len() int { return len(k.hashes) }

// Hash returns the hash to store for key.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// NewKey returns a fresh random key.
func NewKey() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "rh_" + base64.RawURLEncoding.EncodeToString(b[:])
}
