//go:build !linux

package sessionfs

import "errors"

// errUnsupported is what Probe says where session filesystems cannot work:
// RUNHOST_WORKSPACE_QUOTA_MODE=auto then runs workspaces unbounded, with a
// warning, and =fs refuses to start.
var errUnsupported = errors.New("session filesystems need Linux (loop devices and mount(2)); on this OS workspaces are not bounded by RUNHOST_WORKSPACE_QUOTA_MB")

const flagsAlways, flagNoExec uintptr = 0, 0

func supported() error                           { return errUnsupported }
func canMount() bool                             { return false }
func mount(img, dir string, flags uintptr) error { return errUnsupported }
func unmount(dir string) error                   { return errUnsupported }
