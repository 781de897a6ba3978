package registry

import "syscall"

// dieWithHost has the kernel kill a plugin process when the host dies, so a
// killed host leaves no plugin behind.
func dieWithHost() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
