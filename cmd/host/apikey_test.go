package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runhost/runhost/internal/auth"
)

// api-key appends a line Load accepts, with the name and options asked
// for; help and bad names or options append nothing.
func TestAPIKeyCommand(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keys")
	t.Setenv("RUNHOST_API_KEYS_FILE", file)
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"--help"}, 0},
		{[]string{"-h"}, 0},
		{[]string{"backend", "--help"}, 0},
		{[]string{"--name"}, 2},
		{[]string{"two words"}, 2},
		{[]string{"a#b"}, 2},
		{[]string{".tenants"}, 2},
		{[]string{"backend", "root"}, 2},
		{[]string{"backend", "workspaces=../x"}, 2},
	}
	for _, tt := range tests {
		if code := apiKey(tt.args); code != tt.code {
			t.Errorf("api-key %q: exit %d, want %d", tt.args, code, tt.code)
		}
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		b, _ := os.ReadFile(file)
		t.Fatalf("help or refused arguments wrote the keys file: %q", b)
	}
	if code := apiKey([]string{"backend", "workspaces=*", "operator"}); code != 0 {
		t.Fatalf("api-key backend workspaces=* operator: exit %d", code)
	}
	if code := apiKey(nil); code != 0 {
		t.Fatalf("api-key: exit %d", code)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "backend ") || !strings.HasSuffix(lines[0], " workspaces=* operator") || len(lines[1]) != 64 {
		t.Fatalf("keys file:\n%s", b)
	}
	if _, err := auth.Load(file); err != nil {
		t.Fatalf("the host cannot load what api-key wrote: %v", err)
	}
}
