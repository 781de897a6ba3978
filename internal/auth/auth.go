// Package auth checks API keys. Keys are never stored: the keys file holds
// their SHA-256 hashes, one per line, and a presented key is hashed and
// compared in constant time against every stored hash.
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
	"strings"
)

// ErrUnauthorized is a missing or wrong key.
var ErrUnauthorized = errors.New("unauthorized")

// Keys is a set of key hashes.
type Keys struct {
	hashes [][32]byte
	ids    []string
}

// Load reads a keys file: one hex SHA-256 hash per line, optionally
// preceded by a name ("alice 3b1f..."); blank lines and # comments are
// skipped. The name (or the hash's first 8 hex digits) identifies the key
// in logs and limits; the key itself never appears anywhere.
func Load(path string) (*Keys, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	k := &Keys{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		name, hash := "", fields[len(fields)-1]
		if len(fields) == 2 {
			name = fields[0]
		} else if len(fields) != 1 {
			return nil, fmt.Errorf("%s:%d: want \"[name] sha256-hex\"", path, n)
		}
		raw, err := hex.DecodeString(hash)
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("%s:%d: not a hex SHA-256 hash (store hashes, not keys: `host api-key`)", path, n)
		}
		if name == "" {
			name = "key-" + hash[:8]
		}
		k.hashes = append(k.hashes, [32]byte(raw))
		k.ids = append(k.ids, name)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(k.hashes) == 0 {
		return nil, fmt.Errorf("%s holds no keys", path)
	}
	return k, nil
}

// Check returns the id of the key whose hash matches key. Every stored hash
// is compared, so the time taken does not depend on which one matches.
func (k *Keys) Check(key string) (string, error) {
	if key == "" {
		return "", ErrUnauthorized
	}
	sum := sha256.Sum256([]byte(key))
	found := -1
	for i, h := range k.hashes {
		if subtle.ConstantTimeCompare(sum[:], h[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", ErrUnauthorized
	}
	return k.ids[found], nil
}

// Len is the number of keys.
func (k *Keys) Len() int { return len(k.hashes) }

// Hash returns the line to store for key.
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
