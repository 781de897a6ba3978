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
//
// Every workspace name has an owner, recorded by where it lives on the
// volume, so a restarted host and every replica agree without a database:
//
//	<root>/<name>                  the shared namespace: keys granted the name
//	                               (workspaces=NAME or *), and the caller of a
//	                               host without keys
//	<root>/.tenants/<key>/<name>   key <key>'s private namespace: only that key
//
// Store.Resolve is the one place that decides which; every Store method
// takes the Ref it returns.
package workspace

import (
	"errors"
	"fmt"
	"os"
	"path"
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
)

// CheckSession reports whether id is a valid workspace name: 1 to 64
// letters, digits, '-' and '_', not starting with '-' or '_'.
func CheckSession(id string) error {
	if !pathguard.IsWorkspaceName(id) {
		return fmt.Errorf("%w %q: want 1-64 letters, digits, - and _, starting with a letter or digit", ErrBadSession, id)
	}
	return nil
}

// Ref names a directory in a workspace: "name" or "name/sub/dir" as the
// caller wrote it, and — once Store.Resolve has decided whose it is — where
// that name lives on the volume. Store methods refuse a Ref that was not
// resolved, so no route can reach a name without the owner check.
type Ref struct {
	Session string // the name as the caller wrote it: responses, /workspaces/<name> in runs
	Dir     string // relative to the session; empty for the session itself

	// path is the session directory relative to the root: "<name>" in the
	// shared namespace, ".tenants/<key>/<name>" in a key's private one.
	path string
}

// TenantsDir holds the private namespaces, one directory per key. It can
// never be a workspace name (names start with a letter or digit).
const TenantsDir = ".tenants"

// ParseRef parses a request's workspace or context_path. The result names
// no namespace yet: Store.Resolve makes it usable.
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

// InContainer is the ref's directory as a run sees it: always under the
// name the caller used, whichever namespace holds it.
func (r Ref) InContainer() string {
	return path.Join(MountPoint, r.Session, r.Dir)
}

// Shared reports whether the ref resolved to the shared namespace.
func (r Ref) Shared() bool { return r.path != "" && r.path == r.Session }

// SessionPath is the session directory relative to the workspace root
// ("<name>" or ".tenants/<key>/<name>"); empty for an unresolved ref.
func (r Ref) SessionPath() string { return r.path }

// CheckSessionPath reports whether rel is a session directory relative to
// the workspace root as Resolve makes them: "<name>" or
// ".tenants/<key>/<name>". Executors that mount by sub-path use it.
func CheckSessionPath(rel string) error {
	parts := strings.Split(rel, "/")
	switch {
	case len(parts) == 1 && pathguard.IsWorkspaceName(parts[0]):
		return nil
	case len(parts) == 3 && parts[0] == TenantsDir && pathguard.IsKeyName(parts[1]) && pathguard.IsWorkspaceName(parts[2]):
		return nil
	}
	return fmt.Errorf("%w: %q is not a session directory (<name> or %s/<key>/<name>)", ErrBadSession, rel, TenantsDir)
}

// PrepareRoot makes the workspace root the operator named (a missing
// directory is created, its parents too) and proves the host can write
// there: a root the host cannot use fails the start, not the first run.
func PrepareRoot(root string) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("create it: %w", err)
	}
	f, err := os.CreateTemp(root, ".runhost-write-check-*")
	if err != nil {
		return fmt.Errorf("the host cannot write there: %w", err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
