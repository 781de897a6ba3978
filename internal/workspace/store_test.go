package workspace

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/pathguard"
)

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	root := t.TempDir()
	return NewStore(Config{Root: root, DaemonDir: "/workspaces", QuotaBytes: 1000, MaxFileBytes: 600}), root
}

// shared resolves name in the shared namespace (a host without keys).
func shared(t *testing.T, s *Store, name string) Ref {
	t.Helper()
	r, err := s.Resolve(auth.Anonymous(), name)
	if err != nil {
		t.Fatal(err)
	}
	return r
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
	if _, err := s.Put(shared(t, s, "s1"), "dir/a.txt", strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(shared(t, s, "s1"), "dir/a.txt", strings.NewReader("hello again")); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	f, info, err := s.Open(shared(t, s, "s1"), "dir/a.txt")
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
	list, err := s.List(shared(t, s, "s1"))
	if err != nil || len(list) != 2 || list[0].Path != "dir" || list[0].Type != "dir" || list[1].Path != "dir/a.txt" || list[1].Size != 11 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := s.Delete(shared(t, s, "s1"), "dir"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Open(shared(t, s, "s1"), "dir/a.txt"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
	if err := s.DeleteSession(shared(t, s, "s1")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "s1")); !os.IsNotExist(err) {
		t.Errorf("session directory still there: %v", err)
	}
}

func TestLimits(t *testing.T) {
	s, _ := newStore(t)
	if _, err := s.Put(shared(t, s, "s"), "big", strings.NewReader(strings.Repeat("x", 601))); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the file size: %v", err)
	}
	if _, err := s.Put(shared(t, s, "s"), "a", strings.NewReader(strings.Repeat("x", 600))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(shared(t, s, "s"), "b", strings.NewReader(strings.Repeat("x", 401))); !errors.Is(err, ErrQuota) {
		t.Errorf("over the quota: %v", err)
	}
	if _, err := s.Put(shared(t, s, "s"), "a", strings.NewReader(strings.Repeat("x", 590))); err != nil {
		t.Errorf("replacing a file counts only the difference: %v", err)
	}
	if list, _ := s.List(shared(t, s, "s")); len(list) != 1 {
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
		if _, _, err := s.Open(shared(t, s, "s"), p); !errors.Is(err, ErrSymlink) {
			t.Errorf("Open(%s) = %v, want ErrSymlink", p, err)
		}
	}
	done := make(chan error, 1)
	go func() { _, _, err := s.Open(shared(t, s, "s"), "fifo"); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("Open(fifo) = %v, want ErrNotRegular", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("opening a FIFO hung")
	}
	if _, err := s.Put(shared(t, s, "s"), "linkdir/x", strings.NewReader("x")); !errors.Is(err, ErrSymlink) {
		t.Errorf("Put through a symlinked directory = %v, want ErrSymlink", err)
	}
	// Writing onto a symlink replaces the link; the target is untouched.
	if _, err := s.Put(shared(t, s, "s"), "linkfile", strings.NewReader("replaced")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(shared(t, s, "s"), "dangling", strings.NewReader("replaced")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "host secret" {
		t.Errorf("the symlink's target was written: %q", b)
	}
	if _, err := os.Stat(filepath.Join(outside, "new")); !os.IsNotExist(err) {
		t.Errorf("a dangling symlink created a file outside: %v", err)
	}
	if _, err := s.ReadTree(shared(t, s, "s/linkdir"), 1<<20); !errors.Is(err, ErrSymlink) {
		t.Errorf("ReadTree of a symlinked directory = %v, want ErrSymlink", err)
	}
	if err := os.Remove(filepath.Join(root, "s", "fifo")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "s", "real", "inner")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadTree(shared(t, s, "s"), 1<<20); !errors.Is(err, ErrSymlink) {
		t.Errorf("ReadTree of a tree holding a symlink = %v, want ErrSymlink", err)
	}
	if err := s.Delete(shared(t, s, "s"), "linkdir"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
		t.Errorf("deleting a symlink removed its target: %v", err)
	}
	// A session that is itself a symlink (planted at the root) is refused.
	if err := os.Symlink(outside, filepath.Join(root, "evil")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Open(shared(t, s, "evil"), "secret"); !errors.Is(err, ErrSymlink) {
		t.Errorf("a symlinked session = %v, want ErrSymlink", err)
	}
	if err := s.DeleteSession(shared(t, s, "evil")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
		t.Errorf("deleting a symlinked session removed its target: %v", err)
	}
}

func TestReadTree(t *testing.T) {
	s, _ := newStore(t)
	for p, c := range map[string]string{"app/Dockerfile.txt": "x", "app/src/main.py": "print(1)", "other": "y"} {
		if _, err := s.Put(shared(t, s, "s"), p, strings.NewReader(c)); err != nil {
			t.Fatal(err)
		}
	}
	files, err := s.ReadTree(shared(t, s, "s/app"), 100)
	if err != nil || len(files) != 2 || files[0].Path != "Dockerfile.txt" || files[1].Path != "src/main.py" || string(files[1].Content) != "print(1)" {
		t.Fatalf("ReadTree = %+v, %v", files, err)
	}
	if _, err := s.ReadTree(shared(t, s, "s/app"), 5); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the limit: %v", err)
	}
}

func TestDisabled(t *testing.T) {
	s := NewStore(Config{})
	if _, _, err := s.Open(shared(t, s, "s"), "a"); !errors.Is(err, ErrNotConfigured) {
		t.Errorf("got %v", err)
	}
}

func TestResolve(t *testing.T) {
	s, _ := newStore(t)
	alice := auth.Identity{Name: "alice"}
	granted := auth.Identity{Name: "backend", Workspaces: []string{"proj", "docs"}}
	all := auth.Identity{Name: "ops.1", AllWorkspaces: true}
	tests := []struct {
		id      auth.Identity
		ref     string
		path    string // the session's directory under the root; empty: refused
		dir     string
		shared  bool
		wantErr error
	}{
		{auth.Anonymous(), "proj/app", "proj", "app", true, nil},
		{all, "anything", "anything", "", true, nil},
		{granted, "proj/a/b", "proj", "a/b", true, nil},
		{granted, "docs", "docs", "", true, nil},
		{granted, "other", ".tenants/backend/other", "", false, nil},
		{alice, "proj/app", ".tenants/alice/proj", "app", false, nil},
		{alice, ".tenants/bob/proj", "", "", false, ErrBadSession},
		{alice, "../proj", "", "", false, ErrBadSession},
		{alice, "proj/../../bob", "", "", false, pathguard.ErrUnsafePath},
		{auth.Identity{}, "proj", "", "", false, nil}, // no name, no grant: no namespace
		{auth.Identity{Name: "../x"}, "proj", "", "", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.id.Name+":"+tt.ref, func(t *testing.T) {
			r, err := s.Resolve(tt.id, tt.ref)
			if tt.path == "" {
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("Resolve = %+v, %v; want an error (%v)", r, err, tt.wantErr)
				}
				return
			}
			if err != nil || r.SessionPath() != tt.path || r.Dir != tt.dir || r.Shared() != tt.shared {
				t.Fatalf("Resolve = %+v (path %q, shared %v), %v; want path %q dir %q shared %v", r, r.SessionPath(), r.Shared(), err, tt.path, tt.dir, tt.shared)
			}
			if want := "/workspaces/" + r.Session + "/" + tt.dir; r.Dir != "" && r.InContainer() != want {
				t.Errorf("InContainer = %q, want %q (runs see the name the caller used)", r.InContainer(), want)
			}
			if got, want := s.MountSource(r), "/workspaces/"+tt.path; got != want {
				t.Errorf("MountSource = %q, want %q", got, want)
			}
		})
	}
}

func TestCheckSessionPath(t *testing.T) {
	for rel, ok := range map[string]bool{
		"s1":                    true,
		".tenants/alice/proj":   true,
		".tenants/a.b/proj":     true,
		".tenants/alice":        false,
		".tenants/alice/p/q":    false,
		".tenants/../proj":      false,
		"tenants/alice/proj":    false,
		".tenants/alice/.x":     false,
		"s1/sub":                false,
		"":                      false,
		".":                     false,
		"..":                    false,
		".tenants//proj":        false,
		".tenants/alice/proj/":  false,
		"/.tenants/alice/proj":  false,
		".tenants/alice/pr\x00": false,
	} {
		if err := CheckSessionPath(rel); (err == nil) != ok {
			t.Errorf("CheckSessionPath(%q) = %v, want ok=%v", rel, err, ok)
		}
	}
}

func TestUnresolvedRefsAreRefused(t *testing.T) {
	s, _ := newStore(t)
	ref, err := ParseRef("s1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ref, "a", strings.NewReader("x")); !errors.Is(err, errUnresolved) {
		t.Errorf("Put with a parsed, unresolved ref = %v", err)
	}
	if err := s.EnsureDir(ref); !errors.Is(err, errUnresolved) {
		t.Errorf("EnsureDir with an unresolved ref = %v", err)
	}
}

// Two keys using one name each get their own directory; neither sees the
// other's, and a key's requests for the other's name behave exactly like a
// name that does not exist.
func TestPrivateNamespacesKeepKeysApart(t *testing.T) {
	s, root := newStore(t)
	resolve := func(id auth.Identity, ref string) Ref {
		t.Helper()
		r, err := s.Resolve(id, ref)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	alice, bob := auth.Identity{Name: "alice"}, auth.Identity{Name: "bob"}
	if _, err := s.Put(resolve(alice, "proj"), "app/secret.txt", strings.NewReader("alice's")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, ".tenants", "alice", "proj", "app", "secret.txt")); err != nil || string(b) != "alice's" {
		t.Fatalf("alice's file is not in her namespace: %q %v", b, err)
	}
	if info, err := os.Stat(filepath.Join(root, ".tenants")); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf(".tenants: %v %v, want a directory only the host enters", info.Mode(), err)
	}
	if _, err := os.Stat(filepath.Join(root, "proj")); !os.IsNotExist(err) {
		t.Errorf("a private name appeared in the shared namespace: %v", err)
	}

	// What bob gets for "proj" is what he gets for "nothing", which exists nowhere.
	for _, name := range []string{"proj", "nothing"} {
		r := resolve(bob, name)
		if _, _, err := s.Open(r, "app/secret.txt"); !errors.Is(err, ErrNotFound) {
			t.Errorf("bob opens %s: %v, want ErrNotFound", name, err)
		}
		if _, err := s.List(r); !errors.Is(err, ErrNotFound) {
			t.Errorf("bob lists %s: %v, want ErrNotFound", name, err)
		}
		if err := s.Delete(r, "app"); !errors.Is(err, ErrNotFound) {
			t.Errorf("bob deletes in %s: %v, want ErrNotFound", name, err)
		}
		if err := s.DeleteSession(r); !errors.Is(err, ErrNotFound) {
			t.Errorf("bob deletes %s: %v, want ErrNotFound", name, err)
		}
		if _, err := s.ReadTree(resolve(bob, name+"/app"), 1<<20); !errors.Is(err, ErrNotFound) {
			t.Errorf("bob reads the tree of %s: %v, want ErrNotFound", name, err)
		}
		if ok, err := s.Exists(r, "app/secret.txt"); ok || err != nil {
			t.Errorf("bob: Exists in %s = %v, %v", name, ok, err)
		}
	}
	// Bob writing "proj" makes his own.
	if _, err := s.Put(resolve(bob, "proj"), "app/secret.txt", strings.NewReader("bob's")); err != nil {
		t.Fatal(err)
	}
	f, _, err := s.Open(resolve(alice, "proj"), "app/secret.txt")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "alice's" {
		t.Errorf("alice's file became %q", b)
	}

	// Names lists exactly what each key reaches.
	names := func(id auth.Identity) string {
		t.Helper()
		list, err := s.Names(id)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, w := range list {
			out = append(out, fmt.Sprintf("%s:%v", w.Name, w.Shared))
		}
		return strings.Join(out, " ")
	}
	if _, err := s.Put(shared(t, s, "common"), "x", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(root, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if got := names(alice); got != "proj:false" {
		t.Errorf("alice's names: %q", got)
	}
	if got := names(auth.Identity{Name: "alice", Workspaces: []string{"common", "absent"}}); got != "common:true proj:false" {
		t.Errorf("alice granted common: %q", got)
	}
	if got := names(auth.Identity{Name: "alice", Workspaces: []string{"proj"}}); got != "" {
		t.Errorf("alice granted the shared proj (which does not exist) still lists her own: %q", got)
	}
	if got := names(auth.Anonymous()); got != "common:true" {
		t.Errorf("anonymous: %q (symlinks and .tenants are not workspaces)", got)
	}
	if got := names(auth.Identity{Name: "carol"}); got != "" {
		t.Errorf("carol: %q", got)
	}
}

// The namespace directories are walked like every other: a symlink planted
// for .tenants or a key's directory is refused, never followed.
func TestNamespaceSymlinksAreRefused(t *testing.T) {
	s, root := newStore(t)
	outside := t.TempDir()
	if err := os.MkdirAll(filepath.Join(outside, "alice", "proj"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, ".tenants")); err != nil {
		t.Fatal(err)
	}
	r, err := s.Resolve(auth.Identity{Name: "alice"}, "proj")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(r, "x", strings.NewReader("x")); !errors.Is(err, ErrSymlink) {
		t.Errorf("Put through a symlinked .tenants = %v, want ErrSymlink", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "alice", "proj", "x")); !os.IsNotExist(err) {
		t.Errorf("the write went through the symlink: %v", err)
	}
	if _, err := s.Names(auth.Identity{Name: "alice"}); !errors.Is(err, ErrSymlink) {
		t.Errorf("Names through a symlinked .tenants = %v, want ErrSymlink", err)
	}
}
