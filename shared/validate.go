package shared

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// validName is the pattern for runtime names and aliases.
var validName = regexp.MustCompile(`^[a-z][a-z0-9_+.-]{0,31}$`)

// ValidateDescription checks a description the way the host does when it
// starts a plugin: valid names and aliases, at least one version, versions
// named once, an image for each (unless the runtime builds its own), and
// exactly one default. Plugin authors call it from their tests.
func ValidateDescription(d Description) error {
	if !validName.MatchString(d.Name) {
		return fmt.Errorf("name %q: want lower case letters, digits and - _ + . (at most 32)", d.Name)
	}
	for _, a := range d.Aliases {
		if !validName.MatchString(a) {
			return fmt.Errorf("alias %q: want lower case letters, digits and - _ + . (at most 32)", a)
		}
		if a == d.Name {
			return fmt.Errorf("alias %q repeats the name", a)
		}
	}
	if len(d.Versions) == 0 {
		return errors.New("no versions")
	}
	defaults := 0
	seen := map[string]bool{}
	for _, v := range d.Versions {
		switch {
		case v.Version == "" || strings.ContainsAny(v.Version, " /\x00"):
			return fmt.Errorf("version %q: must be non-empty, without spaces or slashes", v.Version)
		case seen[v.Version]:
			return fmt.Errorf("version %q is listed twice", v.Version)
		case v.Image == "" && !slices.Contains(d.Capabilities, CapDockerfile):
			return fmt.Errorf("version %q has no image", v.Version)
		}
		seen[v.Version] = true
		if v.Default {
			defaults++
		}
	}
	if defaults != 1 {
		return fmt.Errorf("%d versions are marked default; exactly one must be", defaults)
	}
	return nil
}
