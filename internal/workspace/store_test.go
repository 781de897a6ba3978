package workspace

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runhost/runhost/internal/pathguard"
)

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	root := t.TempDir()
	return NewStore(Config{Root: root, DaemonDir: "/workspaces", QuotaBytes: 1000, MaxFileBytes: 600}), root
}

func TestParseRef(t *testing.T) {
	tests := []struct {
		in      string
		want    Ref
		wantErr error
	}{
		{"s1", Ref{Session: "s1"}, nil},
		{"s1/my-app", Ref{Session: "s1", Dir: "my-app"}, nil},
		{"abc_DEF-9/a/b", Ref{Session: "abc_DEF-9", Dir: "a/b"}, nil},
		{"", Ref{}, ErrBadSession},
		{"-x", Ref{}, ErrBadSession},
		{"../x", Ref{}, ErrBadSession},
		{".", Ref{}, ErrBadSession},
		{strings.Repeat("a", 65), Ref{}, ErrBadSession},
		{"s/../x", Ref{}, pathguard.ErrUnsafePath},
		{"s//x", Ref{}, pathguard.ErrUnsafePath},
		{"s/a\x00b", Ref{}, pathguard.ErrUnsafePath},
		{"s/", Ref{Session: "s"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRef(tt.in)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && got != tt.want) {
				t.Fatalf("ParseRef(%q) = %+v, %v; want %+v, %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
	if got := (Ref{Session: "s", Dir: "a/b"}).InContainer(); got != "/workspaces/s/a/b" {
		t.Errorf("InContainer = %q", got)
	}
}

func TestPutGetListDelete(t *testing.T) {
	s, root := newStore(t)
	if _, err := s.Put("s1", "dir/a.txt", strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put("s1", "dir/a.txt", strings.NewReader("hello again")); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	f, info, err := s.Open("s1", "dir/a.txt")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "hello again" || info.Size() != 11 {
		t.Errorf("read %q (%d bytes)", b, info.Size())
	}
	if _, err := os.Stat(filepath.Join(root, "s1", "dir", "a.txt")); err != nil {
		t.Errorf("the file is not where the volume holds it: %v", err)
	}
	list, err := s.List("s1")
	if err != nil || len(list) != 2 || list[0].Path != "dir" || list[0].Type != "dir" || list[1].Path != "dir/a.txt" || list[1].Size != 11 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := s.Delete("s1", "dir"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Open("s1", "dir/a.txt"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
	if err := s.DeleteSession("s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "s1")); !os.IsNotExist(err) {
		t.Errorf("session directory still there: %v", err)
	}
}

func TestLimits(t *testing.T) {
	s, _ := newStore(t)
	if _, err := s.Put("s", "big", strings.NewReader(strings.Repeat("x", 601))); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the file size: %v", err)
	}
	if _, err := s.Put("s", "a", strings.NewReader(strings.Repeat("x", 600))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put("s", "b", strings.NewReader(strings.Repeat("x", 401))); !errors.Is(err, ErrQuota) {
		t.Errorf("over the quota: %v", err)
	}
	if _, err := s.Put("s", "a", strings.NewReader(strings.Repeat("x", 590))); err != nil {
		t.Errorf("replacing a file counts only the difference: %v", err)
	}
	if list, _ := s.List("s"); len(list) != 1 {
		t.Errorf("a refused upload left files behind: %+v", list)
	}
}

// plant makes what a hostile run could leave in its session.
func plant(t *testing.T, root string) string {
	t.Helper()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("host secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	sess := filepath.Join(root, "s")
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(sess, "real"), 0o755))
	must(os.Symlink(outside, filepath.Join(sess, "linkdir")))
	must(os.Symlink(filepath.Join(outside, "secret"), filepath.Join(sess, "linkfile")))
	must(os.Symlink(filepath.Join(outside, "new"), filepath.Join(sess, "dangling")))
	must(syscall.Mkfifo(filepath.Join(sess, "fifo"), 0o644))
	return outside
}

func TestSymlinksAndSpecialFilesAreNeverFollowed(t *testing.T) {
	s, root := newStore(t)
	outside := plant(t, root)

	for _, p := range []string{"linkdir/secret", "linkfile"} {
		if _, _, err := s.Open("s", p); !errors.Is(err, ErrSymlink) {
			t.Errorf("Open(%s) = %v, want ErrSymlink", p, err)
		}
	}
	done := make(chan error, 1)
	go func() { _, _, err := s.Open("s", "fifo"); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("Open(fifo) = %v, want ErrNotRegular", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("opening a FIFO hung")
	}
	if _, err := s.Put("s", "linkdir/x", strings.NewReader("x")); !errors.Is(err, ErrSymlink) {
		t.Errorf("Put through a symlinked directory = %v, want ErrSymlink", err)
	}
	// Writing onto a symlink replaces the link; the target is untouched.
	if _, err := s.Put("s", "linkfile", strings.NewReader("replaced")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put("s", "dangling", strings.NewReader("replaced")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "host secret" {
		t.Errorf("the symlink's target was written: %q", b)
	}
	if _, err := os.Stat(filepath.Join(outside, "new")); !os.IsNotExist(err) {
		t.Errorf("a dangling symlink created a file outside: %v", err)
	}
	if _, err := s.ReadTree(Ref{Session: "s", Dir: "linkdir"}, 1<<20); !errors.Is(err, ErrSymlink) {
		t.Errorf("ReadTree of a symlinked directory = %v, want ErrSymlink", err)
	}
	if err := os.Remove(filepath.Join(root, "s", "fifo")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "s", "real", "inner")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadTree(Ref{Session: "s"}, 1<<20); !errors.Is(err, ErrSymlink) {
		t.Errorf("ReadTree of a tree holding a symlink = %v, want ErrSymlink", err)
	}
	if err := s.Delete("s", "linkdir"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
		t.Errorf("deleting a symlink removed its target: %v", err)
	}
	// A session that is itself a symlink (planted at the root) is refused.
	if err := os.Symlink(outside, filepath.Join(root, "evil")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Open("evil", "secret"); !errors.Is(err, ErrSymlink) {
		t.Errorf("a symlinked session = %v, want ErrSymlink", err)
	}
	if err := s.DeleteSession("evil"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
		t.Errorf("deleting a symlinked session removed its target: %v", err)
	}
}

func TestReadTree(t *testing.T) {
	s, _ := newStore(t)
	for p, c := range map[string]string{"app/Dockerfile.txt": "x", "app/src/main.py": "print(1)", "other": "y"} {
		if _, err := s.Put("s", p, strings.NewReader(c)); err != nil {
			t.Fatal(err)
		}
	}
	files, err := s.ReadTree(Ref{Session: "s", Dir: "app"}, 100)
	if err != nil || len(files) != 2 || files[0].Path != "Dockerfile.txt" || files[1].Path != "src/main.py" || string(files[1].Content) != "print(1)" {
		t.Fatalf("ReadTree = %+v, %v", files, err)
	}
	if _, err := s.ReadTree(Ref{Session: "s", Dir: "app"}, 5); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the limit: %v", err)
	}
}

func TestDisabled(t *testing.T) {
	s := NewStore(Config{})
	if _, _, err := s.Open("s", "a"); !errors.Is(err, ErrNotConfigured) {
		t.Errorf("got %v", err)
	}
}
