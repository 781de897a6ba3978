//go:build !linux

package registry

import "syscall"

// dieWithHost: only Linux has a parent-death signal. Elsewhere (macOS, for
// development) the host kills its plugins when it shuts down, but a host
// killed with SIGKILL leaves them running until their connection breaks.
func dieWithHost() *syscall.SysProcAttr { return nil }
