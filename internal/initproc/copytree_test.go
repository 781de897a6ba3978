package initproc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestCopyTree(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	write := func(p, content string, mode os.FileMode) {
		t.Helper()
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("pkg/__init__.py", "x = 1\n", 0o644)
	write("bin/tool", "#!/bin/sh\n", 0o755|os.ModeSetuid)
	write("big", string(make([]byte, 1000)), 0o644)
	for i := range 50 {
		if err := os.Link(filepath.Join(src, "big"), filepath.Join(src, fmt.Sprintf("link%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc", filepath.Join(src, "etc-link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(src, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}

	// 50 links to a 1000-byte file are 1000 bytes, not 51000.
	if err := CopyTree(src, dst, 2000); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "pkg/__init__.py")); err != nil || string(b) != "x = 1\n" {
		t.Errorf("file: %q %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(dst, "bin/tool")); err != nil || fi.Mode() != 0o755 {
		t.Errorf("setuid file copied as %v (%v), want 0755 without setuid", fi.Mode(), err)
	}
	big, _ := os.Stat(filepath.Join(dst, "big"))
	link, _ := os.Stat(filepath.Join(dst, "link7"))
	if big == nil || link == nil || !os.SameFile(big, link) {
		t.Error("hard links were not kept as links")
	}
	if target, err := os.Readlink(filepath.Join(dst, "etc-link")); err != nil || target != "/etc" {
		t.Errorf("symlink: %q %v", target, err)
	}
	if _, err := os.Lstat(filepath.Join(dst, "fifo")); !os.IsNotExist(err) {
		t.Errorf("a FIFO was copied: %v", err)
	}
}

func TestCopyTreeRefusesMoreThanItsCap(t *testing.T) {
	for name, mk := range map[string]func(dir string) error{
		"a sparse file larger than the cap": func(dir string) error {
			f, err := os.Create(filepath.Join(dir, "sparse"))
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Truncate(1 << 40)
		},
		"files adding up past the cap": func(dir string) error {
			for i := range 3 {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), make([]byte, 600), 0o644); err != nil {
					return err
				}
			}
			return nil
		},
	} {
		t.Run(name, func(t *testing.T) {
			src, dst := t.TempDir(), t.TempDir()
			if err := mk(src); err != nil {
				t.Fatal(err)
			}
			if err := CopyTree(src, dst, 1000); !errors.Is(err, ErrCopyTooLarge) {
				t.Fatalf("CopyTree = %v, want ErrCopyTooLarge", err)
			}
		})
	}
}

func TestCopyTreeDoesNotFollowASymlinkedSource(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/etc", filepath.Join(dir, "src")); err != nil {
		t.Fatal(err)
	}
	if err := CopyTree(filepath.Join(dir, "src"), t.TempDir(), 1<<20); err == nil {
		t.Fatal("a symlink as the source was followed")
	}
}
