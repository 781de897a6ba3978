package workspace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/pathguard"
)

// Config configures a Store.
type Config struct {
	Root         string // where this host sees the workspace volume
	DaemonDir    string // where the engine sees it (bind sources)
	QuotaBytes   int64  // per session
	MaxFileBytes int64  // per upload
	UID, GID     int    // the run user, given ownership of what the host creates
	// FS, when set, gives each session a filesystem of its own
	// (sessionfs): made when the session directory is, removed with it.
	FS SessionFS
}

// SessionFS bounds session directories while runs write them.
type SessionFS interface {
	Ensure(ctx context.Context, sessionDir string) error
	Remove(sessionDir string) error
}

// Store is the workspace volume as the host sees it.
type Store struct {
	cfg Config

	mu    sync.Mutex
	locks map[string]*sessionLock // per session: uploads check the quota one at a time
}

// sessionLock is a session's upload lock, in Store.locks while anyone holds
// or waits for it: the map holds the sessions being written to, not every
// session ever written to.
type sessionLock struct {
	sync.Mutex
	refs int // holders and waiters; guarded by Store.mu
}

// NewStore returns a store; a zero Root means workspaces are disabled and
// every method returns ErrNotConfigured.
func NewStore(cfg Config) *Store {
	return &Store{cfg: cfg, locks: map[string]*sessionLock{}}
}

// Enabled reports whether workspaces are configured.
func (s *Store) Enabled() bool { return s != nil && s.cfg.Root != "" }

// errUnresolved is a Ref that did not come from Resolve: a bug, never a
// request's fault.
var errUnresolved = errors.New("workspace ref used without Store.Resolve (no owner check)")

// Resolve is the one place that decides whose a workspace name is. ref is a
// request's "name" or "name/sub/dir". A name id is granted (every name for
// workspaces=* and for the caller of a host without keys) is in the shared
// namespace, <root>/<name>; any other name is in id's private namespace,
// <root>/.tenants/<key>/<name>, which no other key reaches. So another key's
// name behaves exactly like a name that does not exist: the same errors, and
// creating it makes the caller's own. Resolve touches no file.
func (s *Store) Resolve(id auth.Identity, ref string) (Ref, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return Ref{}, err
	}
	if id.SharedWorkspace(r.Session) {
		r.path = r.Session
		return r, nil
	}
	if err := auth.CheckName(id.Name); err != nil {
		return Ref{}, fmt.Errorf("workspace %s: the caller has no private namespace: %w", r.Session, err)
	}
	r.path = TenantsDir + "/" + id.Name + "/" + r.Session
	return r, nil
}

// MountSource is ref's session directory as the engine sees it: the source
// of the bind mount. It is never a path of the host's own filesystem
// unless host and engine share one.
func (s *Store) MountSource(ref Ref) string {
	return path.Join(s.cfg.DaemonDir, ref.path)
}

// Entry is one file or directory in a listing.
type Entry struct {
	Path    string    `json:"path"`
	Type    string    `json:"type"` // "file", "dir" or "symlink" (listed, never followed)
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
}

// File is a file read from a session (a build context).
type File struct {
	Path    string
	Content []byte
}

// lock takes ref's session lock and returns its release, which drops the
// session's entry when nobody else holds or waits for it.
func (s *Store) lock(ref Ref) func() {
	s.mu.Lock()
	l, ok := s.locks[ref.path]
	if !ok {
		l = &sessionLock{}
		s.locks[ref.path] = l
	}
	l.refs++
	s.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		s.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(s.locks, ref.path)
		}
		s.mu.Unlock()
	}
}

// openRoot opens the workspace root itself.
func (s *Store) openRoot() (int, error) {
	if !s.Enabled() {
		return -1, ErrNotConfigured
	}
	fd, err := unix.Open(s.cfg.Root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open workspace root %s: %w", s.cfg.Root, err)
	}
	return fd, nil
}

// EnsureDir creates ref's directory (and its session) if needed.
func (s *Store) EnsureDir(ref Ref) error {
	dir, err := s.openSessionDir(ref, ref.Dir, true)
	if err != nil {
		return err
	}
	return unix.Close(dir)
}

// openDir opens (and with create, makes) the directory name in dirfd,
// refusing symlinks.
func (s *Store) openDir(dirfd int, name string, create bool) (int, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOTDIR) && isSymlink(dirfd, name) {
		return -1, fmt.Errorf("%q: %w", name, ErrSymlink)
	}
	if errors.Is(err, unix.ENOENT) && create {
		if err := unix.Mkdirat(dirfd, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, fmt.Errorf("create %s: %w", name, err)
		}
		fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil {
			s.own(fd)
		}
	}
	return fd, classify(name, err)
}

// openNamespace opens (and with create, makes) a directory that holds
// sessions: .tenants or a key's directory in it. They belong to the host,
// not to the run user, and only the host may enter them: runs mount
// session directories, never these.
func openNamespace(dirfd int, name string, create bool) (int, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) && create {
		if err := unix.Mkdirat(dirfd, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, fmt.Errorf("create %s: %w", name, err)
		}
		fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if errors.Is(err, unix.ENOTDIR) && isSymlink(dirfd, name) {
		return -1, fmt.Errorf("%q: %w", name, ErrSymlink)
	}
	return fd, classify(name, err)
}

// own gives fd to the run user when the host may (it runs as root).
func (s *Store) own(fd int) {
	if s.cfg.UID > 0 && os.Geteuid() == 0 {
		_ = unix.Fchown(fd, s.cfg.UID, s.cfg.GID)
	}
}

// isSymlink reports whether name in dirfd is a symlink (for the message:
// the open already refused it).
func isSymlink(dirfd int, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
}

// classify turns the errors of a no-follow walk into the package's errors.
func classify(name string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ELOOP):
		return fmt.Errorf("%q: %w", name, ErrSymlink)
	case errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%q: %w", name, ErrNotDir)
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%q: %w", name, ErrNotFound)
	}
	return fmt.Errorf("%q: %w", name, err)
}

// openNamespaceOf opens the directory that holds ref's session (the root,
// or the key's directory in .tenants), and returns it with the session's
// name in it.
func (s *Store) openNamespaceOf(ref Ref, create bool) (int, string, error) {
	if ref.path == "" {
		return -1, "", errUnresolved
	}
	if err := CheckSessionPath(ref.path); err != nil {
		return -1, "", err
	}
	fd, err := s.openRoot()
	if err != nil {
		return -1, "", err
	}
	parts := strings.Split(ref.path, "/")
	session := parts[len(parts)-1]
	for _, part := range parts[:len(parts)-1] {
		next, err := openNamespace(fd, part, create)
		unix.Close(fd)
		if errors.Is(err, ErrNotFound) {
			// A key that has no namespace yet: said exactly as for a
			// session that does not exist, in the caller's words.
			return -1, "", fmt.Errorf("%q: %w", session, ErrNotFound)
		}
		if err != nil {
			return -1, "", fmt.Errorf("workspace %s: %w", ref.Session, err)
		}
		fd = next
	}
	return fd, session, nil
}

// openSessionDir walks from the root to ref's session and on to dir (relative
// to the session), one directory at a time, never following a symlink.
// The caller closes the result.
func (s *Store) openSessionDir(ref Ref, dir string, create bool) (int, error) {
	if dir != "" {
		if err := pathguard.Check(dir); err != nil {
			return -1, err
		}
	}
	ns, session, err := s.openNamespaceOf(ref, create)
	if err != nil {
		return -1, err
	}
	if create && s.cfg.FS != nil {
		// The session directory is (or becomes) the mount point of its own
		// fixed-size filesystem, before anything is written into it.
		if err := s.cfg.FS.Ensure(context.Background(), filepath.Join(s.cfg.Root, ref.path)); err != nil {
			unix.Close(ns)
			return -1, err
		}
	}
	fd, err := s.openDir(ns, session, create)
	unix.Close(ns)
	if err != nil {
		return -1, err
	}
	if dir == "" {
		return fd, nil
	}
	for _, part := range strings.Split(dir, "/") {
		next, err := s.openDir(fd, part, create)
		unix.Close(fd)
		if err != nil {
			return -1, fmt.Errorf("%s: %w", dir, err)
		}
		fd = next
	}
	return fd, nil
}

// parent opens the directory holding p (relative to ref's directory), and
// returns it with p's last component.
func (s *Store) parent(ref Ref, p string, create bool) (int, string, error) {
	if err := pathguard.Check(p); err != nil {
		return -1, "", err
	}
	dir, name := path.Split(path.Join(ref.Dir, p))
	fd, err := s.openSessionDir(ref, strings.TrimSuffix(dir, "/"), create)
	return fd, name, err
}

// Open opens the regular file p (relative to ref's directory) for reading.
// The caller closes it.
func (s *Store) Open(ref Ref, p string) (*os.File, os.FileInfo, error) {
	dirfd, name, err := s.parent(ref, p, false)
	if err != nil {
		return nil, nil, err
	}
	defer unix.Close(dirfd)
	// O_NONBLOCK: a FIFO planted by a run must not hang the request.
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, classify(p, err)
	}
	f := os.NewFile(uintptr(fd), p)
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	switch {
	case info.IsDir():
		f.Close()
		return nil, nil, fmt.Errorf("%q: %w", p, ErrIsDir)
	case !info.Mode().IsRegular():
		f.Close()
		return nil, nil, fmt.Errorf("%q: %w", p, ErrNotRegular)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, info, nil
}

// Put writes r to p (relative to ref's directory), creating parent
// directories, within the file size cap and the session's quota. The file
// is written beside its destination and renamed over it, so a symlink at p
// is replaced, never written through.
func (s *Store) Put(ref Ref, p string, r io.Reader) (int64, error) {
	defer s.lock(ref)()
	dirfd, name, err := s.parent(ref, p, true)
	if err != nil {
		return 0, err
	}
	defer unix.Close(dirfd)

	used, err := s.usage(ref)
	if err != nil {
		return 0, err
	}
	var existing int64
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return 0, fmt.Errorf("%q: %w", p, ErrIsDir)
		}
		existing = st.Size
	}
	room := min(s.cfg.MaxFileBytes, s.cfg.QuotaBytes-used+existing)

	tmp := fmt.Sprintf(".runhost-upload-%d-%d", os.Getpid(), time.Now().UnixNano())
	fd, err := unix.Openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return 0, classify(p, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	n, err := io.Copy(f, io.LimitReader(r, room+1))
	if errors.Is(err, unix.ENOSPC) {
		// The session's own filesystem (FS) is full before the count is.
		err = fmt.Errorf("%w: the session's filesystem is full", ErrQuota)
	}
	if err == nil && n > room {
		if room < s.cfg.MaxFileBytes {
			err = fmt.Errorf("%w: %d bytes used of %d", ErrQuota, used, s.cfg.QuotaBytes)
		} else {
			err = fmt.Errorf("%w: more than %d bytes", ErrTooLarge, s.cfg.MaxFileBytes)
		}
	}
	if err == nil {
		s.own(fd)
		err = f.Close()
	} else {
		f.Close()
	}
	if err == nil {
		err = unix.Renameat(dirfd, tmp, dirfd, name)
	}
	if err != nil {
		_ = unix.Unlinkat(dirfd, tmp, 0)
		return 0, err
	}
	return n, nil
}

// Exists reports whether p exists in ref's directory (a symlink counts,
// unfollowed).
func (s *Store) Exists(ref Ref, p string) (bool, error) {
	dirfd, name, err := s.parent(ref, p, false)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer unix.Close(dirfd)
	var st unix.Stat_t
	err = unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	return err == nil, classify(p, err)
}

// Delete removes p in ref's directory (a file, a symlink itself, or a
// directory tree).
func (s *Store) Delete(ref Ref, p string) error {
	dirfd, name, err := s.parent(ref, p, false)
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	return removeAt(dirfd, name)
}

// DeleteSession removes ref's whole session directory (ref.Dir is not
// looked at).
func (s *Store) DeleteSession(ref Ref) error {
	ns, session, err := s.openNamespaceOf(ref, false)
	if err != nil {
		return err
	}
	defer unix.Close(ns)
	if s.cfg.FS != nil {
		if err := s.cfg.FS.Remove(filepath.Join(s.cfg.Root, ref.path)); err != nil {
			return err
		}
	}
	return removeAt(ns, session)
}

// removeAt removes name in dirfd and, for a directory, everything below it,
// without following symlinks.
func removeAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return classify(name, err)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return classify(name, err)
	}
	d := os.NewFile(uintptr(fd), name)
	names, err := d.Readdirnames(-1)
	if err != nil {
		d.Close()
		return err
	}
	for _, n := range names {
		if err := removeAt(fd, n); err != nil {
			d.Close()
			return err
		}
	}
	d.Close()
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

// List returns every entry below ref's directory, sorted by path.
// Symlinks are listed as such and not followed.
func (s *Store) List(ref Ref) ([]Entry, error) {
	fd, err := s.openSessionDir(ref, ref.Dir, false)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var out []Entry
	err = walk(fd, "", func(e Entry, _ int) error { out = append(out, e); return nil })
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, err
}

// usage is the bytes of regular files in ref's session.
func (s *Store) usage(ref Ref) (int64, error) {
	fd, err := s.openSessionDir(ref, "", false)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	var total int64
	err = walk(fd, "", func(e Entry, _ int) error {
		if e.Type == "file" {
			total += e.Size
		}
		return nil
	})
	return total, err
}

// ReadTree reads every file under ref's directory (a build context), at most
// maxBytes in all. A symlink, FIFO or device anywhere in it is refused.
func (s *Store) ReadTree(ref Ref, maxBytes int64) ([]File, error) {
	fd, err := s.openSessionDir(ref, ref.Dir, false)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var out []File
	var total int64
	err = walk(fd, "", func(e Entry, dirfd int) error {
		switch e.Type {
		case "dir":
			return nil
		case "symlink":
			return fmt.Errorf("%q: %w", e.Path, ErrSymlink)
		case "other":
			return fmt.Errorf("%q: %w", e.Path, ErrNotRegular)
		}
		total += e.Size
		if total > maxBytes {
			return fmt.Errorf("%w: the context holds more than %d bytes", ErrTooLarge, maxBytes)
		}
		ffd, err := unix.Openat(dirfd, path.Base(e.Path), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return classify(e.Path, err)
		}
		f := os.NewFile(uintptr(ffd), e.Path)
		defer f.Close()
		if info, err := f.Stat(); err != nil || !info.Mode().IsRegular() {
			return fmt.Errorf("%q: %w", e.Path, ErrNotRegular)
		}
		content, err := io.ReadAll(io.LimitReader(f, maxBytes+1))
		if err != nil {
			return err
		}
		out = append(out, File{Path: e.Path, Content: content})
		return nil
	})
	return out, err
}

// walk calls fn for every entry below dirfd (depth first), with the
// directory fd that holds it. It descends only into real directories.
func walk(dirfd int, prefix string, fn func(Entry, int) error) error {
	dup, err := unix.Dup(dirfd)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(dup), prefix)
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue // removed meanwhile
		}
		e := Entry{Path: path.Join(prefix, name), Size: st.Size, ModTime: time.Unix(st.Mtim.Unix())}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			e.Type = "file"
		case unix.S_IFDIR:
			e.Type, e.Size = "dir", 0
		case unix.S_IFLNK:
			e.Type = "symlink"
		default:
			e.Type = "other"
		}
		if err := fn(e, dirfd); err != nil {
			return err
		}
		if e.Type != "dir" {
			continue
		}
		sub, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return classify(e.Path, err)
		}
		err = walk(sub, e.Path, fn)
		unix.Close(sub)
		if err != nil {
			return err
		}
	}
	return nil
}

// Workspace is one workspace name a caller reaches.
type Workspace struct {
	Name   string `json:"name"`
	Shared bool   `json:"shared"` // in the shared namespace (a grant), else the caller's own
}

// Names lists the workspaces id reaches, sorted by name: the names of its
// private namespace, and the names of the shared namespace it is granted
// that exist. Exactly the names Resolve would lead id to.
func (s *Store) Names(id auth.Identity) ([]Workspace, error) {
	root, err := s.openRoot()
	if err != nil {
		return nil, err
	}
	defer unix.Close(root)
	out := []Workspace{}
	shared, err := sessionsIn(root)
	if err != nil {
		return nil, err
	}
	for _, name := range shared {
		if id.SharedWorkspace(name) {
			out = append(out, Workspace{Name: name, Shared: true})
		}
	}
	if auth.CheckName(id.Name) == nil && !id.AllWorkspaces {
		ns, err := openNamespace(root, TenantsDir, false)
		if err == nil {
			own, oerr := openNamespace(ns, id.Name, false)
			unix.Close(ns)
			ns, err = own, oerr
		}
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return nil, err
		default:
			private, err := sessionsIn(ns)
			unix.Close(ns)
			if err != nil {
				return nil, err
			}
			for _, name := range private {
				if !id.SharedWorkspace(name) { // a grant added later hides it
					out = append(out, Workspace{Name: name})
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// sessionsIn lists the session directories in dirfd: real directories with
// workspace names (symlinks and other files are not sessions).
func sessionsIn(dirfd int) ([]string, error) {
	dup, err := unix.Dup(dirfd)
	if err != nil {
		return nil, err
	}
	d := os.NewFile(uintptr(dup), "")
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, name := range names {
		var st unix.Stat_t
		if CheckSession(name) != nil || unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		out = append(out, name)
	}
	return out, nil
}
