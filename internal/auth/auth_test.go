package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadAndCheck(t *testing.T) {
	alice, bob := NewKey(), NewKey()
	file := filepath.Join(t.TempDir(), "keys")
	content := "# runhost keys\nalice " + Hash(alice) + "\n\n" + Hash(bob) + "\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key, id string
		err     error
	}{
		{alice, "alice", nil},
		{bob, "key-" + Hash(bob)[:8], nil},
		{"", "", ErrUnauthorized},
		{"rh_wrong", "", ErrUnauthorized},
		{Hash(alice), "", ErrUnauthorized}, // the stored hash is not a key
	}
	for _, tt := range tests {
		id, err := k.Check(tt.key)
		if id != tt.id || !errors.Is(err, tt.err) {
			t.Errorf("Check(%.10q) = %q, %v; want %q, %v", tt.key, id, err, tt.id, tt.err)
		}
	}
}

func TestLoadRejects(t *testing.T) {
	for name, content := range map[string]string{
		"plain key":  "rh_abcdef\n",
		"short hash": "abcd\n",
		"empty":      "# nothing\n",
		"three cols": "a b " + Hash("x") + "\n",
	} {
		file := filepath.Join(t.TempDir(), "keys")
		_ = os.WriteFile(file, []byte(content), 0o600)
		if _, err := Load(file); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}

func TestNewKeysDiffer(t *testing.T) {
	a, b := NewKey(), NewKey()
	if a == b || !strings.HasPrefix(a, "rh_") || len(a) < 40 {
		t.Fatalf("NewKey: %q %q", a, b)
	}
}
