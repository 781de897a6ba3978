package sessionfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/runhost/runhost/internal/testenv"
)

// newFS returns an FS over a fresh root, or skips where this process
// cannot mount (CI=true makes that a failure).
func newFS(t testing.TB, size int64, exec bool) (*FS, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("mounts filesystems; skipped under -short")
	}
	root := t.TempDir()
	f := New(Config{Root: root, SizeBytes: size, UID: 1000, GID: 1000, Exec: exec})
	if err := f.Probe(context.Background()); err != nil {
		if testenv.InCI() {
			t.Fatalf("CI=true and this machine cannot mount session filesystems: %v", err)
		}
		t.Skipf("cannot mount session filesystems here: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	})
	return f, root
}

func TestEnsureBoundsASession(t *testing.T) {
	f, root := newFS(t, 64<<20, false)
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	for _, dir := range []string{a, b} {
		if err := f.Ensure(context.Background(), dir); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Ensure(context.Background(), a); err != nil {
		t.Fatalf("a second Ensure: %v", err)
	}
	if !isMountPoint(a) {
		t.Fatal("the session directory is not a mount point")
	}
	var st unix.Stat_t
	if err := unix.Stat(a, &st); err != nil || st.Uid != 1000 || st.Gid != 1000 {
		t.Errorf("session root owned by %d:%d (%v), want the run user", st.Uid, st.Gid, err)
	}
	if _, err := os.Stat(filepath.Join(a, "lost+found")); !os.IsNotExist(err) {
		t.Error("lost+found is left in the session")
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(a, &sfs); err != nil {
		t.Fatal(err)
	}
	for name, flag := range map[string]int64{"noexec": unix.ST_NOEXEC, "nosuid": unix.ST_NOSUID, "nodev": unix.ST_NODEV} {
		if sfs.Flags&flag == 0 {
			t.Errorf("mounted without %s", name)
		}
	}

	// Writing past the size fails while writing; the neighbour is untouched.
	err := fill(filepath.Join(a, "fill"), 100<<20)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("writing 100 MiB into a 64 MiB session: %v, want ENOSPC", err)
	}
	if err := os.WriteFile(filepath.Join(b, "ok"), []byte("fine"), 0o644); err != nil {
		t.Fatalf("the other session: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(a, "fill")); fi == nil || fi.Size() > 64<<20 {
		t.Errorf("the session holds %v bytes", fi)
	}
}

func TestExecIsASetting(t *testing.T) {
	f, root := newFS(t, 16<<20, true)
	dir := filepath.Join(root, "s")
	if err := f.Ensure(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Flags&unix.ST_NOEXEC != 0 || sfs.Flags&unix.ST_NOSUID == 0 {
		t.Errorf("with Exec: flags %#x, want exec allowed and nosuid", sfs.Flags)
	}
}

func TestRestoreMountsAgainAndKeepsTheData(t *testing.T) {
	f, root := newFS(t, 16<<20, false)
	dir := filepath.Join(root, ".tenants", "k1", "proj")
	if err := f.Ensure(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A host restart (or a reboot): nothing is mounted any more.
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if isMountPoint(dir) {
		t.Fatal("Close left the session mounted")
	}
	g := New(Config{Root: root, SizeBytes: 16 << 20, UID: 1000, GID: 1000})
	t.Cleanup(func() { _ = g.Close() })
	if err := g.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "data")); err != nil || string(b) != "kept" {
		t.Fatalf("after Restore: %q %v", b, err)
	}
}

func TestEnsureNeverHidesFiles(t *testing.T) {
	f, root := newFS(t, 16<<20, false)
	dir := filepath.Join(root, "s")
	if err := f.Ensure(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// Written into the bare mount point while the filesystem was away.
	if err := os.WriteFile(filepath.Join(dir, "stray"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Ensure(context.Background(), dir); !errors.Is(err, ErrHidden) {
		t.Fatalf("Ensure over files = %v, want ErrHidden", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "stray")); err != nil || string(b) != "x" {
		t.Errorf("the stray file: %q %v", b, err)
	}
}

func TestEnsureMovesAnExistingSessionIn(t *testing.T) {
	f, root := newFS(t, 16<<20, false)
	dir := filepath.Join(root, "old")
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "f"), []byte("before"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Ensure(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	if !isMountPoint(dir) {
		t.Fatal("not mounted")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "sub", "f")); err != nil || string(b) != "before" {
		t.Fatalf("moved file: %q %v", b, err)
	}

	// One larger than the quota stays as it is.
	big := filepath.Join(root, "big")
	if err := os.MkdirAll(big, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := fill(filepath.Join(big, "f"), 20<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Ensure(context.Background(), big); err != nil {
		t.Fatal(err)
	}
	if isMountPoint(big) {
		t.Error("a session larger than the quota was mounted over")
	}
	if fi, err := os.Stat(filepath.Join(big, "f")); err != nil || fi.Size() != 20<<20 {
		t.Errorf("the large session's file: %v %v", fi, err)
	}
}

func TestRemoveDeletesTheFilesystem(t *testing.T) {
	f, root := newFS(t, 16<<20, false)
	dir := filepath.Join(root, "s")
	if err := f.Ensure(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	if err := f.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if isMountPoint(dir) {
		t.Error("still mounted")
	}
	left, _ := filepath.Glob(filepath.Join(root, Dir, "*.img"))
	if len(left) > 0 {
		t.Errorf("images left: %v", left)
	}
	if err := f.Remove(filepath.Join(root, "never")); err != nil {
		t.Errorf("Remove of a session without a filesystem: %v", err)
	}
}

func TestRefusesPathsOutsideTheRoot(t *testing.T) {
	f := New(Config{Root: "/srv/ws"})
	for _, p := range []string{"/srv/ws", "/srv", "/srv/other/x", "/srv/ws/../x", "/srv/ws/.runhost/volumes", "relative"} {
		if _, err := f.rel(p); err == nil {
			t.Errorf("rel(%q) accepted", p)
		}
	}
	if rel, err := f.rel("/srv/ws/.tenants/k/p"); err != nil || rel != ".tenants/k/p" {
		t.Errorf("rel = %q, %v", rel, err)
	}
}

// BenchmarkEnsure measures what a new session costs: image, mkfs, loop
// device, mount.
func BenchmarkEnsure(b *testing.B) {
	f, root := newFS(b, 1<<30, false)
	for i := range b.N {
		dir := filepath.Join(root, "s", string(rune('a'+i%26))+filepath.Base(b.TempDir()))
		if err := f.Ensure(context.Background(), dir); err != nil {
			b.Fatal(err)
		}
	}
}

func fill(path string, n int64) error {
	file, err := os.Create(path)
	if err != nil {
		return err
	}
	defer file.Close()
	buf := make([]byte, 1<<20)
	for written := int64(0); written < n; written += int64(len(buf)) {
		if _, err := file.Write(buf); err != nil {
			return err
		}
	}
	return file.Sync()
}
