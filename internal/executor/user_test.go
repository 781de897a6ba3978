package executor

import (
	"errors"
	"testing"
)

func TestParseUser(t *testing.T) {
	tests := []struct {
		in   string
		want User
		root bool // refused as root
		bad  bool // refused as not uid:gid
	}{
		{in: "1000:1000", want: User{1000, 1000}},
		{in: "1:65534", want: User{1, 65534}},
		{in: "01000:1000", want: User{1000, 1000}},
		{in: "4294967295:1", want: User{4294967295, 1}},
		{in: "0:0", root: true},
		{in: "0:1000", root: true},
		{in: "1000:0", root: true},
		{in: "00:1000", root: true},
		{in: "", bad: true},
		{in: "1000", bad: true},
		{in: "root:root", bad: true},
		{in: "runner", bad: true},
		{in: "-1:1000", bad: true},
		{in: "1000:-1", bad: true},
		{in: "4294967296:1", bad: true},
		{in: "1000:1000:1000", bad: true},
		{in: " 1000:1000", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseUser(tt.in)
		switch {
		case tt.root && !errors.Is(err, ErrRootUser):
			t.Errorf("ParseUser(%q) = %v, %v; want ErrRootUser", tt.in, got, err)
		case tt.bad && (err == nil || errors.Is(err, ErrRootUser)):
			t.Errorf("ParseUser(%q) = %v, %v; want a malformed-user error", tt.in, got, err)
		case !tt.root && !tt.bad && (err != nil || got != tt.want):
			t.Errorf("ParseUser(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if s := (User{1000, 1001}).String(); s != "1000:1001" {
		t.Errorf("String = %q", s)
	}
}
