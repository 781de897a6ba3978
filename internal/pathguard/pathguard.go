// Package pathguard decides whether a path from outside may be used as a file
// name inside a run or workspace directory. It works on the string alone: the
// rules keep a path inside its directory without touching the filesystem.
package pathguard

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode"
)

// Limits on names, in bytes (Linux allows 255 per component).
const (
	MaxComponent = 255
	MaxPath      = 1024
	MaxDepth     = 32
)

// ErrUnsafePath is matched by every error Check returns.
var ErrUnsafePath = errors.New("unsafe path")

// Error says which rule a path broke.
type Error struct {
	Path string
	Rule string
}

func (e *Error) Error() string { return fmt.Sprintf("path %q: %s", e.Path, e.Rule) }

// Is makes errors.Is(err, ErrUnsafePath) true.
func (e *Error) Is(target error) bool { return target == ErrUnsafePath }

// Check returns nil when p is a relative, clean path that stays inside its
// directory: no "..", no absolute path, no empty or "." components, no NUL or
// control characters, no backslashes, and within the length limits.
func Check(p string) error {
	bad := func(rule string) error { return &Error{Path: p, Rule: rule} }
	switch {
	case p == "":
		return bad("empty")
	case len(p) > MaxPath:
		return bad(fmt.Sprintf("longer than %d bytes", MaxPath))
	case strings.HasPrefix(p, "/"):
		return bad("absolute paths are not allowed")
	case strings.ContainsFunc(p, func(r rune) bool { return r == 0 || unicode.IsControl(r) }):
		return bad("NUL and control characters are not allowed")
	case strings.Contains(p, `\`):
		return bad("backslashes are not allowed")
	}
	parts := strings.Split(p, "/")
	if len(parts) > MaxDepth {
		return bad(fmt.Sprintf("deeper than %d levels", MaxDepth))
	}
	for _, part := range parts {
		switch {
		case part == "..":
			return bad(`".." is not allowed`)
		case part == "" || part == ".":
			return bad("not clean (empty or \".\" component)")
		case len(part) > MaxComponent:
			return bad(fmt.Sprintf("a name is longer than %d bytes", MaxComponent))
		}
	}
	if path.Clean(p) != p {
		return bad("not clean")
	}
	return nil
}
