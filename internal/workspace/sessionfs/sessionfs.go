// Package sessionfs gives every workspace session a filesystem of its own,
// of a fixed size: the session directory is the mount point of an ext4
// image, attached to a loop device and mounted nosuid,nodev (and noexec
// unless runs may execute workspace files). A run that writes past the
// quota gets ENOSPC from the kernel while it writes, and its session's
// neighbours and the host's disk are not touched. The images are sparse
// files kept beside the data, in a dot-directory of the workspace root that
// no run mounts:
//
//	<root>/.runhost/volumes/<id>.img    the filesystem (id: hash of the session path)
//	<root>/.runhost/volumes/<id>.path   the session's path relative to the root
//
// It needs what mount(2) needs (root, or CAP_SYS_ADMIN, and loop devices)
// and an engine that sees the host's mounts (the local engine); Probe says
// whether this machine can. Mounts do not survive a reboot: Restore mounts
// every image again before the host serves, so data is never hidden behind
// an empty mount point, and Ensure refuses to mount over a directory that
// holds files.
package sessionfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// Dir is where the images are, relative to the workspace root. Session ids
// cannot start with a dot, so no session is ever called that.
const Dir = ".runhost/volumes"

// ErrHidden means a session directory holds files although its filesystem
// image exists: mounting the image would hide them.
var ErrHidden = errors.New("the session directory holds files outside its filesystem")

// Config configures an FS.
type Config struct {
	Root      string // the workspace root as this host sees it
	SizeBytes int64  // each session's filesystem
	UID, GID  int    // owner of each filesystem's root (the run user)
	Exec      bool   // mount without noexec
	Logger    hclog.Logger
}

// FS mounts session filesystems under one workspace root.
type FS struct {
	cfg Config
	log hclog.Logger

	mu      sync.Mutex
	mounted map[string]bool // session directories this process mounted or found mounted
}

// New returns an FS; call Probe first to know it can work here.
func New(cfg Config) *FS {
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &FS{cfg: cfg, log: log, mounted: map[string]bool{}}
}

func (f *FS) volumes() string { return filepath.Join(f.cfg.Root, Dir) }

// Probe checks that this process can make, mount and unmount a session
// filesystem under the root, by doing it once with a small image.
func (f *FS) Probe(ctx context.Context) error {
	if err := supported(); err != nil {
		return err
	}
	if !canMount() {
		return errors.New("mounting needs root or CAP_SYS_ADMIN")
	}
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		return fmt.Errorf("mkfs.ext4 not found (Debian: e2fsprogs): %w", err)
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		return fmt.Errorf("no loop devices: %w", err)
	}
	if err := os.MkdirAll(f.volumes(), 0o700); err != nil {
		return err
	}
	base := filepath.Join(f.volumes(), fmt.Sprintf(".probe-%d", os.Getpid()))
	img, dir := base+".img", base+".mnt"
	defer os.Remove(img)
	defer os.Remove(dir)
	if err := f.mkfs(ctx, img, 8<<20); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if err := mount(img, dir, flagsAlways|flagNoExec); err != nil {
		return err
	}
	return unmount(dir)
}

// id names a session's image: a hash of its path relative to the root.
func id(rel string) string {
	sum := sha256.Sum256([]byte(rel))
	return hex.EncodeToString(sum[:16])
}

// rel returns sessionDir relative to the root, refusing anything that is
// not strictly below it.
func (f *FS) rel(sessionDir string) (string, error) {
	rel, err := filepath.Rel(f.cfg.Root, filepath.Clean(sessionDir))
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) || strings.HasPrefix(rel, ".runhost") {
		return "", fmt.Errorf("session directory %q is not below the workspace root %q", sessionDir, f.cfg.Root)
	}
	return rel, nil
}

// Ensure makes sessionDir the mount point of its session's filesystem,
// creating the filesystem on first use. A directory that already holds
// files (made before the host bounded sessions) is moved into a new
// filesystem; one too large for it is left as it is, unbounded, with a
// warning. Cheap once done: a stat.
func (f *FS) Ensure(ctx context.Context, sessionDir string) error {
	rel, err := f.rel(sessionDir)
	if err != nil {
		return err
	}
	dir := filepath.Join(f.cfg.Root, rel)
	f.mu.Lock()
	known := f.mounted[dir]
	f.mu.Unlock()
	if known && isMountPoint(dir) {
		return nil
	}
	unlock, err := f.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := f.ensure(ctx, rel, dir); err != nil {
		return fmt.Errorf("session filesystem of %s: %w", rel, err)
	}
	return nil
}

func (f *FS) ensure(ctx context.Context, rel, dir string) error {
	if isMountPoint(dir) {
		f.remember(dir, true)
		return nil
	}
	base := filepath.Join(f.volumes(), id(rel))
	img := base + ".img"
	if _, err := os.Stat(img); err == nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if !emptyDir(dir) {
			return fmt.Errorf("%w (%s); move them away and retry", ErrHidden, dir)
		}
		return f.mountAt(img, dir)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}

	// A new filesystem. Its path file comes first, so Restore finds every
	// image that exists; the image appears under its name only once made.
	if err := os.MkdirAll(f.volumes(), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(base+".path", []byte(rel+"\n"), 0o600); err != nil {
		return err
	}
	tmp := base + ".img.tmp"
	defer os.Remove(tmp)
	if err := f.mkfs(ctx, tmp, f.cfg.SizeBytes); err != nil {
		return err
	}
	if !emptyDir(dir) {
		return f.migrate(tmp, img, base, dir)
	}
	if err := os.Rename(tmp, img); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if err := f.mountAt(img, dir); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(dir, "lost+found"))
	return nil
}

// migrate moves the files of an existing session directory into the fresh
// filesystem tmp, then mounts it at dir. The old directory is kept (renamed
// beside the images) until the new filesystem is mounted, so a crash at any
// point loses nothing.
func (f *FS) migrate(tmp, img, base, dir string) error {
	staging := base + ".mnt"
	if err := os.Mkdir(staging, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	defer os.Remove(staging)
	if err := mount(tmp, staging, flagsAlways|flagNoExec); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(staging, "lost+found"))
	err := exec.Command("cp", "-a", "--", dir+"/.", staging+"/").Run()
	if uerr := unmount(staging); err == nil {
		err = uerr
	}
	if err != nil {
		// Too large for the quota (or unreadable): leave it as it was.
		_ = os.Remove(base + ".path")
		f.log.Warn("a workspace session holds more than its filesystem can; it stays unbounded", "session", dir, "error", err)
		return nil
	}
	if err := os.Rename(tmp, img); err != nil {
		return err
	}
	old := base + ".old"
	if err := os.Rename(dir, old); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if err := f.mountAt(img, dir); err != nil {
		return err
	}
	f.log.Info("moved a workspace session into its own filesystem", "session", dir)
	return os.RemoveAll(old)
}

func (f *FS) mountAt(img, dir string) error {
	flags := flagsAlways
	if !f.cfg.Exec {
		flags |= flagNoExec
	}
	if err := mount(img, dir, flags); err != nil {
		return err
	}
	f.remember(dir, true)
	return nil
}

func (f *FS) remember(dir string, mounted bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if mounted {
		f.mounted[dir] = true
	} else {
		delete(f.mounted, dir)
	}
}

// Remove unmounts a session's filesystem and deletes its image: the
// session's files are gone. The directory itself (now empty) is left to
// the caller. A session without an image is not an error.
func (f *FS) Remove(sessionDir string) error {
	rel, err := f.rel(sessionDir)
	if err != nil {
		return err
	}
	dir := filepath.Join(f.cfg.Root, rel)
	unlock, err := f.lock()
	if err != nil {
		return err
	}
	defer unlock()
	base := filepath.Join(f.volumes(), id(rel))
	if _, err := os.Stat(base + ".img"); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if isMountPoint(dir) {
		if err := unmount(dir); err != nil {
			return fmt.Errorf("unmount %s: %w", dir, err)
		}
	}
	f.remember(dir, false)
	if err := os.Remove(base + ".img"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	_ = os.Remove(base + ".path")
	return nil
}

// Restore mounts every session filesystem of the root that is not mounted:
// after a host restart or a reboot, before the host serves.
func (f *FS) Restore(ctx context.Context) error {
	entries, err := os.ReadDir(f.volumes())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	restored := 0
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".path")
		if !ok {
			continue
		}
		if _, err := os.Stat(filepath.Join(f.volumes(), name+".img")); err != nil {
			continue // never finished: Ensure makes it again
		}
		b, err := os.ReadFile(filepath.Join(f.volumes(), e.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rel := strings.TrimSpace(string(b))
		if id(rel) != name {
			errs = append(errs, fmt.Errorf("%s names %q, whose image is not %s", e.Name(), rel, name))
			continue
		}
		if err := f.Ensure(ctx, filepath.Join(f.cfg.Root, rel)); err != nil {
			errs = append(errs, err)
			continue
		}
		restored++
	}
	if restored > 0 {
		f.log.Info("workspace session filesystems mounted", "sessions", restored)
	}
	return errors.Join(errs...)
}

// Close unmounts the filesystems this process mounted or found (lazily:
// a run still using one keeps it until it ends). Restore mounts them again
// at the next start.
func (f *FS) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	for dir := range f.mounted {
		if isMountPoint(dir) {
			if err := unmount(dir); err != nil {
				errs = append(errs, fmt.Errorf("unmount %s: %w", dir, err))
				continue
			}
		}
		delete(f.mounted, dir)
	}
	return errors.Join(errs...)
}

// lock serialises filesystem changes between host processes sharing the
// root on one machine (an image mounted twice would be corrupted).
func (f *FS) lock() (func(), error) {
	if err := os.MkdirAll(f.volumes(), 0o700); err != nil {
		return nil, err
	}
	lf, err := os.OpenFile(filepath.Join(f.volumes(), ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		lf.Close()
		return nil, err
	}
	return func() { _ = unix.Flock(int(lf.Fd()), unix.LOCK_UN); lf.Close() }, nil
}

// mkfs makes a sparse image of size bytes holding an empty ext4 whose root
// belongs to the run user: no reserved blocks (the quota is the run's),
// a small journal, inode tables left to read as zeros.
func (f *FS) mkfs(ctx context.Context, img string, size int64) error {
	_ = os.Remove(img)
	file, err := os.OpenFile(img, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = file.Truncate(size)
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(img)
		return err
	}
	journal := "-J"
	journalSize := "size=4"
	if size < 64<<20 {
		journal, journalSize = "-O", "^has_journal" // too small for one
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, "mkfs.ext4", "-q", "-F", "-m", "0", journal, journalSize,
		"-E", "root_owner="+strconv.Itoa(f.cfg.UID)+":"+strconv.Itoa(f.cfg.GID)+",lazy_itable_init=1,lazy_journal_init=1,nodiscard", img)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(img)
		return fmt.Errorf("mkfs.ext4: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// isMountPoint reports whether dir is on another device than its parent.
func isMountPoint(dir string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(dir, &st) != nil || unix.Lstat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Dev != parent.Dev
}

// emptyDir reports whether dir is missing or holds nothing.
func emptyDir(dir string) bool {
	d, err := os.Open(dir)
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	defer d.Close()
	names, _ := d.Readdirnames(1)
	return len(names) == 0
}
