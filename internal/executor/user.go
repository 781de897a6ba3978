package executor

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// User is the numeric identity a container runs as. Neither id is 0:
// ParseUser refuses root, and every executor runs a job only as a User it
// parsed, so no configuration or job can make a run root on any engine.
type User struct {
	UID, GID uint32
}

// ErrRootUser marks a user that is root (uid or gid 0).
var ErrRootUser = errors.New("runs never use root (uid or gid 0)")

// ParseUser reads "uid:gid" (both numeric) and refuses root. It is the one
// check of a run's user: the configuration (RUNHOST_RUN_USER) and both
// executors (each job's User) call it.
func ParseUser(s string) (User, error) {
	uid, gid, ok := strings.Cut(s, ":")
	u, err1 := strconv.ParseUint(uid, 10, 32)
	g, err2 := strconv.ParseUint(gid, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return User{}, fmt.Errorf("user %q: want numeric uid:gid", s)
	}
	if u == 0 || g == 0 {
		return User{}, fmt.Errorf("user %q: %w", s, ErrRootUser)
	}
	return User{UID: uint32(u), GID: uint32(g)}, nil
}

// String is the user as "uid:gid", what Job.User holds.
func (u User) String() string { return fmt.Sprintf("%d:%d", u.UID, u.GID) }
