//go:build !linux

package kerneltest

import "syscall"

// ownGroup starts a driver in its own process group. Only Linux also kills it
// when the test process dies; elsewhere the test's cleanup does.
func ownGroup() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
