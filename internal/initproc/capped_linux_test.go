package initproc

import (
	"fmt"
	"io"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// Capped: init tells whether the capped directory's filesystem filled up
// during the run.
func TestCappedFull(t *testing.T) {
	if os.Geteuid() != 0 || testing.Short() {
		t.Skip("mounts a tmpfs: needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	for _, tt := range []struct {
		mib  int
		full bool
	}{{1, false}, {8, true}} {
		t.Run(fmt.Sprintf("%d MiB", tt.mib), func(t *testing.T) {
			// What fills the filesystem stays: a program that cleans up
			// between two samples goes unnoticed (documented).
			script := fmt.Sprintf("rm -f fill; head -c %dM /dev/zero > fill", tt.mib)
			_, _, exits := runInit(t, func(w io.Writer) {
				_ = WriteFrame(w, Header{Dir: dir, WorkDir: dir, Capped: dir, Command: []string{"sh", "-c", script}}, nil)
			})
			if len(exits) != 1 || exits[0].CappedFull != tt.full {
				t.Fatalf("exits %+v, want capped_full %v", exits, tt.full)
			}
			if tt.full == (exits[0].Code == 0) {
				t.Errorf("writing %d MiB into a 4 MiB tmpfs exited %d", tt.mib, exits[0].Code)
			}
		})
	}
}
