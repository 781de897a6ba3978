package sessionfs

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount flags: every session filesystem is nosuid and nodev, and noexec
// unless runs may execute workspace files.
const (
	flagsAlways uintptr = unix.MS_NOSUID | unix.MS_NODEV
	flagNoExec  uintptr = unix.MS_NOEXEC
)

// supported says whether this OS can have session filesystems: Linux can.
func supported() error { return nil }

// mount attaches img to a free loop device that clears itself when the
// filesystem is unmounted, and mounts it at dir with flags.
func mount(img, dir string, flags uintptr) error {
	file, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer file.Close()
	loop, err := attach(file)
	if err != nil {
		return fmt.Errorf("attach %s to a loop device: %w", img, err)
	}
	// Closing the loop device before the mount holds it would clear it.
	defer loop.Close()
	if err := unix.Mount(loop.Name(), dir, "ext4", flags, "noinit_itable"); err != nil {
		return fmt.Errorf("mount %s (%s) at %s: %w", img, loop.Name(), dir, err)
	}
	return nil
}

// attach binds file to a free loop device and returns the device, open.
func attach(file *os.File) (*os.File, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer ctl.Close()
	for range 16 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("find a free loop device: %w", err)
		}
		dev, err := os.OpenFile(fmt.Sprintf("/dev/loop%d", n), os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		cfg := unix.LoopConfig{Fd: uint32(file.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
		copy(cfg.Info.File_name[:], file.Name())
		err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
		if err == nil {
			return dev, nil
		}
		dev.Close()
		if !errors.Is(err, unix.EBUSY) {
			return nil, err
		}
		// Another process took the device between the two calls.
	}
	return nil, errors.New("no free loop device after 16 tries")
}

// unmount detaches the filesystem at dir; a run still using it keeps it
// until it ends, then the loop device clears itself.
func unmount(dir string) error {
	err := unix.Unmount(dir, unix.MNT_DETACH)
	if errors.Is(err, unix.EINVAL) {
		return nil // not mounted
	}
	return err
}

// canMount reports whether this process has CAP_SYS_ADMIN (root has it
// unless a container runtime dropped it), before Probe touches anything.
func canMount() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return os.Geteuid() == 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<unix.CAP_SYS_ADMIN) != 0
		}
	}
	return false
}
