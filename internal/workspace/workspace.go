// Package workspace is the host's side of the shared workspace volume: the
// session directories runs mount, and the files API's storage.
//
// Runs can write anything inside their session, including symbolic links
// and FIFOs meant to trick the host (Judge0's CVE-2024-28185 and -28189).
// So every host-side operation walks the path one component at a time from
// an open directory, with O_NOFOLLOW at every step: a symlink anywhere in
// the path is refused, never followed, and a directory swapped for a
// symlink while a request is in flight cannot redirect it, because each step
// holds the directory it already opened. Only regular files are read.
package workspace

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/runhost/runhost/internal/pathguard"
)

// MountPoint is where a run sees the workspace: its session directory is
// mounted at MountPoint/<session>.
const MountPoint = "/workspaces"

// Errors the API maps to statuses; each names the rule that was broken.
var (
	ErrNotConfigured = errors.New("workspaces are not configured (set RUNHOST_WORKSPACE_ROOT)")
	ErrBadSession    = errors.New("invalid session id")
	ErrSymlink       = errors.New("symbolic links are not followed")
	ErrNotRegular    = errors.New("not a regular file")
	ErrIsDir         = errors.New("is a directory")
	ErrNotFound      = errors.New("no such file or directory")
	ErrTooLarge      = errors.New("file too large")
	ErrQuota         = errors.New("session quota exceeded")
	ErrNotDir        = errors.New("a path component is not a directory")
	ErrExists        = errors.New("file exists")
)

var sessionPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// CheckSession reports whether id is a valid session id: 1 to 64 letters,
// digits, '-' and '_', not starting with '-' or '_'.
func CheckSession(id string) error {
	if !sessionPattern.MatchString(id) {
		return fmt.Errorf("%w %q: want 1-64 letters, digits, - and _, starting with a letter or digit", ErrBadSession, id)
	}
	return nil
}

// Ref names a directory in a session: "session" or "session/sub/dir".
type Ref struct {
	Session string
	Dir     string // relative to the session; empty for the session itself
}

// ParseRef parses a request's workspace or context_path.
func ParseRef(s string) (Ref, error) {
	session, dir, _ := strings.Cut(s, "/")
	if err := CheckSession(session); err != nil {
		return Ref{}, err
	}
	if dir != "" {
		if err := pathguard.Check(dir); err != nil {
			return Ref{}, err
		}
	}
	return Ref{Session: session, Dir: dir}, nil
}

// String is the ref as written in a request.
func (r Ref) String() string {
	if r.Dir == "" {
		return r.Session
	}
	return r.Session + "/" + r.Dir
}

// InContainer is the ref's directory as a run sees it.
func (r Ref) InContainer() string {
	return path.Join(MountPoint, r.Session, r.Dir)
}
