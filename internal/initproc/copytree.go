package initproc

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// ErrCopyTooLarge means a tree holds more bytes than the copy may write.
var ErrCopyTooLarge = errors.New("more bytes than allowed")

// CopyTree copies the tree under src into the existing directory dst: how
// an install's output, written to a size-capped tmpfs, reaches the cache
// volume only after the install succeeded. The tree was written by code
// nobody reviewed, so the copy trusts nothing in it: it walks by file
// descriptor without following a symlink (symlinks are copied as links),
// copies directories and regular files (hard links stay links, so a file
// linked a thousand times is written once), skips FIFOs, sockets and
// devices, drops setuid, setgid and sticky bits, and fails once the regular
// files' bytes (sparse files count their whole size) exceed maxBytes, so
// the copy can never write more than the capped filesystem held.
func CopyTree(src, dst string, maxBytes int64) error {
	sfd, err := unix.Open(src, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", src, err)
	}
	defer unix.Close(sfd)
	dfd, err := unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dst, err)
	}
	defer unix.Close(dfd)
	c := &copier{root: dfd, left: maxBytes, max: maxBytes, links: map[inode]string{}}
	return c.dir(sfd, dfd, "")
}

type inode struct{ dev, ino uint64 }

type copier struct {
	root      int // dst
	left, max int64
	links     map[inode]string // where a multiply linked file was first copied, relative to root
}

// dir copies the entries of directory sfd into directory dfd.
func (c *copier) dir(sfd, dfd int, prefix string) error {
	names, err := readNames(sfd)
	if err != nil {
		return fmt.Errorf("read %s: %w", orDot(prefix), err)
	}
	for _, name := range names {
		rel := prefix + name
		var st unix.Stat_t
		if err := unix.Fstatat(sfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat %s: %w", rel, err)
		}
		perm := uint32(st.Mode) & 0o777
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if err := unix.Mkdirat(dfd, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("create %s: %w", rel, err)
			}
			sub, err := unix.Openat(sfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open %s: %w", rel, err)
			}
			dsub, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				unix.Close(sub)
				return fmt.Errorf("open %s in the destination: %w", rel, err)
			}
			err = c.dir(sub, dsub, rel+"/")
			unix.Close(sub)
			if err == nil {
				err = unix.Fchmod(dsub, perm)
			}
			unix.Close(dsub)
			if err != nil {
				return err
			}
		case unix.S_IFREG:
			if err := c.file(sfd, dfd, name, rel, &st, perm); err != nil {
				return err
			}
		case unix.S_IFLNK:
			target, err := readlinkat(sfd, name)
			if err != nil {
				return fmt.Errorf("read link %s: %w", rel, err)
			}
			if err := unix.Symlinkat(target, dfd, name); err != nil {
				return fmt.Errorf("create link %s: %w", rel, err)
			}
		default:
			// FIFOs, sockets, devices: nothing an installed package needs.
		}
	}
	return nil
}

// file copies one regular file, or links it to its earlier copy.
func (c *copier) file(sfd, dfd int, name, rel string, st *unix.Stat_t, perm uint32) error {
	id := inode{uint64(st.Dev), st.Ino}
	if st.Nlink > 1 {
		if first, ok := c.links[id]; ok {
			if err := unix.Linkat(c.root, first, dfd, name, 0); err == nil {
				return nil
			}
			// Too deep to name from the root, say: copy it again.
		}
	}
	if st.Size > c.left {
		return fmt.Errorf("copy %s: %w: the tree holds more than %d bytes", rel, ErrCopyTooLarge, c.max)
	}
	c.left -= st.Size
	in, err := unix.Openat(sfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", rel, err)
	}
	src := os.NewFile(uintptr(in), rel)
	defer src.Close()
	out, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", rel, err)
	}
	dst := os.NewFile(uintptr(out), rel)
	// The file may have grown since it was measured: copy what was measured.
	_, err = io.Copy(dst, io.LimitReader(src, st.Size))
	if err == nil {
		err = dst.Chmod(os.FileMode(perm))
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", rel, err)
	}
	if _, seen := c.links[id]; st.Nlink > 1 && !seen {
		c.links[id] = rel
	}
	return nil
}

func readNames(dirfd int) ([]string, error) {
	dup, err := unix.Dup(dirfd)
	if err != nil {
		return nil, err
	}
	d := os.NewFile(uintptr(dup), "")
	defer d.Close()
	return d.Readdirnames(-1)
}

func readlinkat(dirfd int, name string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func orDot(p string) string {
	if p == "" {
		return "."
	}
	return p
}
