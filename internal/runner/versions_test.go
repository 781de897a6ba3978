package runner

import (
	"errors"
	"strings"
	"testing"

	"github.com/runhost/runhost/shared"
)

func TestResolveVersion(t *testing.T) {
	d := shared.Description{Name: "python", Versions: []shared.Version{
		{Version: "3.9"}, {Version: "3.11", Default: true}, {Version: "3.13"}, {Version: "3.1"}, {Version: "2.7"},
	}}
	tests := []struct {
		asked, want string
	}{
		{"", "3.11"},
		{"3.11", "3.11"},
		{"3.1", "3.1"}, // exact wins over prefix
		{"3", "3.13"},  // numeric, not lexical: 3.13 > 3.9
		{"2", "2.7"},
		{"4", ""},
		{"3.12", ""},
		{"3.", ""},
		{"13", ""},
	}
	for _, tt := range tests {
		t.Run(tt.asked, func(t *testing.T) {
			v, err := ResolveVersion(d, tt.asked)
			if tt.want == "" {
				if !errors.Is(err, ErrUnknownVersion) {
					t.Fatalf("ResolveVersion(%q) = %v, %v; want ErrUnknownVersion", tt.asked, v, err)
				}
				if !strings.Contains(err.Error(), "3.11, 3.13") {
					t.Errorf("error %q does not list the known versions", err)
				}
				return
			}
			if err != nil || v.Version != tt.want {
				t.Fatalf("ResolveVersion(%q) = %q, %v; want %q", tt.asked, v.Version, err, tt.want)
			}
		})
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"3.9", "3.13", -1},
		{"3.13", "3.9", 1},
		{"20", "18", 1},
		{"3.11", "3.11", 0},
		{"3.11.1", "3.11", 1},
		{"bookworm", "trixie", -1},
	}
	for _, tt := range tests {
		got := compareVersions(tt.a, tt.b)
		if (got > 0) != (tt.want > 0) || (got < 0) != (tt.want < 0) {
			t.Errorf("compareVersions(%q, %q) = %d, want sign of %d", tt.a, tt.b, got, tt.want)
		}
	}
}
