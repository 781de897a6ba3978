package pathguard

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		path string
		rule string // empty: accepted
	}{
		{"main.py", ""},
		{"pkg/mod.py", ""},
		{"a/b/c/d.txt", ""},
		{".hidden", ""},
		{"..foo", ""},
		{"foo..", ""},
		{"名前.py", ""},
		{"", "empty"},
		{"/etc/passwd", "absolute"},
		{"..", `".."`},
		{"../x", `".."`},
		{"a/../../x", `".."`},
		{"a/..", `".."`},
		{".", "not clean"},
		{"./a", "not clean"},
		{"a//b", "not clean"},
		{"a/", "not clean"},
		{"a/./b", "not clean"},
		{"a\x00b", "NUL"},
		{"a\nb", "control"},
		{`a\..\b`, "backslash"},
		{strings.Repeat("a", 256), "longer than 255"},
		{strings.Repeat("a/", 600) + "a", "longer than 1024"},
		{strings.Repeat("a/", 32) + "a", "deeper than 32"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			err := Check(tt.path)
			if tt.rule == "" {
				if err != nil {
					t.Fatalf("Check(%q) = %v, want nil", tt.path, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check(%q) = nil, want an error about %q", tt.path, tt.rule)
			}
			if !errors.Is(err, ErrUnsafePath) {
				t.Errorf("error %v does not match ErrUnsafePath", err)
			}
			if !strings.Contains(err.Error(), tt.rule) {
				t.Errorf("Check(%q) = %v, want it to name %q", tt.path, err, tt.rule)
			}
		})
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{"a", "../a", "a/b", "/a", "a//b", "."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if Check(p) != nil {
			return
		}
		// An accepted path never climbs out of its directory.
		depth := 0
		for _, part := range strings.Split(p, "/") {
			if part == ".." {
				depth--
			} else {
				depth++
			}
			if depth < 0 {
				t.Fatalf("accepted %q, which leaves its directory", p)
			}
		}
	})
}
