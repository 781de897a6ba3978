package runner

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/runhost/runhost/shared"
)

// ErrUnknownVersion marks a version no plugin version matches (404).
var ErrUnknownVersion = errors.New("unknown version")

// UnknownVersionError names the version asked for and those that exist.
type UnknownVersionError struct {
	Runtime string
	Asked   string
	Known   []string
}

func (e *UnknownVersionError) Error() string {
	return fmt.Sprintf("runtime %q has no version %q; known versions: %s", e.Runtime, e.Asked, strings.Join(e.Known, ", "))
}
func (e *UnknownVersionError) Is(target error) bool { return target == ErrUnknownVersion }

// ResolveVersion picks the version a request means: the default when asked
// is empty, an exact match, or else the newest version that asked is a
// prefix of at a dot boundary ("3" → newest 3.x, "3.1" never matches "3.11").
func ResolveVersion(d shared.Description, asked string) (shared.Version, error) {
	var best *shared.Version
	for i, v := range d.Versions {
		switch {
		case asked == "" && v.Default, asked == v.Version:
			return v, nil
		case asked != "" && strings.HasPrefix(v.Version, asked+"."):
			if best == nil || compareVersions(v.Version, best.Version) > 0 {
				best = &d.Versions[i]
			}
		}
	}
	if best != nil {
		return *best, nil
	}
	known := make([]string, 0, len(d.Versions))
	for _, v := range d.Versions {
		known = append(known, v.Version)
	}
	return shared.Version{}, &UnknownVersionError{Runtime: d.Name, Asked: asked, Known: known}
}

// compareVersions orders dotted versions component by component, numerically
// where both components are numbers.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		an, aerr := strconv.Atoi(as[i])
		bn, berr := strconv.Atoi(bs[i])
		switch {
		case aerr == nil && berr == nil && an != bn:
			if an < bn {
				return -1
			}
			return 1
		case (aerr != nil || berr != nil) && as[i] != bs[i]:
			return strings.Compare(as[i], bs[i])
		}
	}
	return len(as) - len(bs)
}
