package pathguard

import (
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	tests := []struct {
		name           string
		workspace, key bool
	}{
		{"proj", true, true},
		{"a-b_c9", true, true},
		{"Z", true, true},
		{"team.a", false, true},
		{strings.Repeat("a", 64), true, true},
		{strings.Repeat("a", 65), false, false},
		{"", false, false},
		{".tenants", false, false},
		{".", false, false},
		{"..", false, false},
		{"-x", false, false},
		{"_x", false, false},
		{"a/b", false, false},
		{"a b", false, false},
		{"--help", false, false},
		{"a\x00", false, false},
		{"név", false, false},
	}
	for _, tt := range tests {
		if got := IsWorkspaceName(tt.name); got != tt.workspace {
			t.Errorf("IsWorkspaceName(%q) = %v", tt.name, got)
		}
		if got := IsKeyName(tt.name); got != tt.key {
			t.Errorf("IsKeyName(%q) = %v", tt.name, got)
		}
	}
}
