package output

import (
	"bytes"
	"testing"
)

func TestCapped(t *testing.T) {
	tests := []struct {
		name      string
		limit     int64
		writes    []string
		want      string
		truncated bool
	}{
		{"under", 10, []string{"abc", "def"}, "abcdef", false},
		{"exact", 6, []string{"abc", "def"}, "abcdef", false},
		{"split write", 4, []string{"abc", "def"}, "abcd", true},
		{"after full", 3, []string{"abc", "def", "g"}, "abc", true},
		{"zero limit", 0, []string{"a"}, "", true},
		{"empty writes", 2, []string{"", ""}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCapped(tt.limit)
			for _, w := range tt.writes {
				n, err := c.Write([]byte(w))
				if err != nil || n != len(w) {
					t.Fatalf("Write(%q) = %d, %v; want %d, nil", w, n, err, len(w))
				}
			}
			if got := string(c.Bytes()); got != tt.want {
				t.Errorf("Bytes() = %q, want %q", got, tt.want)
			}
			if c.Truncated() != tt.truncated {
				t.Errorf("Truncated() = %v, want %v", c.Truncated(), tt.truncated)
			}
		})
	}
}

func BenchmarkCapped(b *testing.B) {
	chunk := bytes.Repeat([]byte("x"), 32<<10)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		c := NewCapped(1 << 20)
		for range 64 { // 2 MiB through a 1 MiB cap
			_, _ = c.Write(chunk)
		}
	}
}
