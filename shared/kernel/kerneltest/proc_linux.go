package kerneltest

import "syscall"

// ownGroup starts a driver in its own process group, killed with the test.
func ownGroup() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
