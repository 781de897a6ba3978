package imageref

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	const digest = "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		in       string
		err      error
		str      string // as the engine lists it
		full     string
		repo     string
		familiar string
	}{
		{in: "runhost/python:3.11", str: "runhost/python:3.11", full: "docker.io/runhost/python:3.11", repo: "runhost/python", familiar: "runhost/python"},
		{in: "python", str: "python:latest", full: "docker.io/library/python:latest", repo: "library/python", familiar: "python"},
		{in: "docker.io/library/python:3.13", str: "python:3.13", full: "docker.io/library/python:3.13", repo: "library/python", familiar: "python"},
		{in: "docker.io/runhost/build:abc", str: "runhost/build:abc", repo: "runhost/build", familiar: "runhost/build"},
		{in: "ghcr.io/o/i:1", str: "ghcr.io/o/i:1", full: "ghcr.io/o/i:1", repo: "o/i", familiar: "ghcr.io/o/i"},
		{in: "localhost:5000/runhost/egress", str: "localhost:5000/runhost/egress:latest", repo: "runhost/egress"},
		{in: "alpine@" + digest, str: "alpine@" + digest, repo: "library/alpine"},
		{in: "cafe:1", str: "cafe:1"},                    // hex, but tagged: a name
		{in: "runhost/cafe", str: "runhost/cafe:latest"}, // hex path below a namespace: a name
		// IDs, in every spelling.
		{in: digest, err: ErrID},
		{in: "SHA256:abc", err: ErrID},
		{in: "sha256:4497b3dd19ef", err: ErrID},
		{in: strings.TrimPrefix(digest, "sha256:"), err: ErrID},
		{in: "4497b3dd19ef", err: ErrID},
		{in: "4497", err: ErrID},
		{in: "cafe", err: ErrID},
		{in: "ABC123", err: ErrID},
		// Not references at all.
		{in: "", err: ErrInvalid},
		{in: "Runhost/Python:3.11", err: ErrInvalid},
		{in: "runhost/python:", err: ErrInvalid},
		{in: "a b", err: ErrInvalid},
		{in: "runhost/python:${V}", err: ErrInvalid},
		{in: "-x", err: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := Parse(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("error %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.String() != tt.str {
				t.Errorf("String %q, want %q", r.String(), tt.str)
			}
			if tt.full != "" && r.Full() != tt.full {
				t.Errorf("Full %q, want %q", r.Full(), tt.full)
			}
			if tt.repo != "" && r.Repository() != tt.repo {
				t.Errorf("Repository %q, want %q", r.Repository(), tt.repo)
			}
			if tt.familiar != "" && r.FamiliarRepository() != tt.familiar {
				t.Errorf("FamiliarRepository %q, want %q", r.FamiliarRepository(), tt.familiar)
			}
		})
	}
}

func TestIs(t *testing.T) {
	const digest = "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		ref, listed string
		want        bool
	}{
		{"runhost/python:3.11", "runhost/python:3.11", true},
		{"docker.io/runhost/python:3.11", "runhost/python:3.11", true},
		{"python", "python:latest", true},
		{"python", "docker.io/library/python:latest", true},
		{"python:3.11", "python:3.13", false},
		{"python:3.11", "runhost/python:3.11", false},
		{"python:3.11", "python", false}, // listed without a tag means :latest
		{"alpine@" + digest, "alpine@" + digest, true},
		{"alpine@" + digest, "alpine:latest", false},
		{"alpine:3", "alpine@" + digest, false},
		{"runhost/python:3.11", "<none>:<none>", false},
	}
	for _, tt := range tests {
		r, err := Parse(tt.ref)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Is(tt.listed); got != tt.want {
			t.Errorf("Parse(%q).Is(%q) = %v, want %v", tt.ref, tt.listed, got, tt.want)
		}
	}
}

func TestNames(t *testing.T) {
	r, _ := Parse("python")
	got := strings.Join(r.Names("python"), " ")
	if got != "python python:latest docker.io/library/python:latest" {
		t.Fatalf("%q", got)
	}
	r, _ = Parse("runhost/python:3.11")
	if got := strings.Join(r.Names("runhost/python:3.11"), " "); got != "runhost/python:3.11 docker.io/runhost/python:3.11" {
		t.Fatalf("%q", got)
	}
}
