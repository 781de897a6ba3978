package docker

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// LabelOwner names the host process that created a container as
// "hostname/pid/start", where start is the process's start time in clock
// ticks since boot. A sweep on the same machine can then tell a container
// of a dead host (killed with -9, say) from one of a live host at once,
// instead of waiting for its deadline.
const LabelOwner = "runhost.owner"

// processOwner is this process's owner label value.
func processOwner() string {
	host, _ := os.Hostname()
	pid := os.Getpid()
	return fmt.Sprintf("%s/%d/%d", host, pid, processStart(pid))
}

// ownerGone reports whether owner names a process on this machine that no
// longer runs. Owners on other machines are never gone: their deadline decides.
func ownerGone(owner string) bool {
	parts := strings.Split(owner, "/")
	if len(parts) != 3 {
		return false
	}
	host, _ := os.Hostname()
	if parts[0] != host {
		return false
	}
	pid, err1 := strconv.Atoi(parts[1])
	start, err2 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil || start == 0 {
		return false
	}
	return processStart(pid) != start
}

// processStart returns the start time of pid from /proc, or 0 if it does
// not exist.
func processStart(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may contain spaces) start at state.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		return 0
	}
	start, _ := strconv.ParseUint(fields[19], 10, 64) // field 22 of stat
	return start
}
