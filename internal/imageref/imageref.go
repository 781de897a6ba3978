// Package imageref reads image references the way the engine does, and
// refuses the forms that do not name an image: image IDs, ID prefixes and
// sha256: digests on their own. Everything that compares image names (the
// policy's allow-list and internal images, the executors' exact-tag check)
// goes through it, so "python", "python:latest" and
// "docker.io/library/python:latest" are one image everywhere.
package imageref

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/distribution/reference"
)

// ErrID marks a reference that is, or could be read as, an image ID.
var ErrID = errors.New("an image ID is not an image name")

// ErrInvalid marks a string that is not an image reference.
var ErrInvalid = errors.New("not a valid image reference")

// Ref is a parsed image name: a repository with a tag (":latest" when none
// is written), a digest, or both.
type Ref struct {
	named reference.Named // normalised, with the default tag added
}

// hexName is a name the engine may take for an ID prefix when no image has
// that tag (Docker falls back to an ID prefix search).
var hexName = regexp.MustCompile(`^[0-9a-fA-F]+$`)

// Parse reads s. It refuses image IDs in every spelling the engines accept:
// "sha256:<hex>", 64 hex digits, and a bare run of hex digits without tag
// or digest (which the engine resolves as an ID prefix when no image has
// that name).
func Parse(s string) (Ref, error) {
	switch {
	case s == "":
		return Ref{}, fmt.Errorf("%w: empty", ErrInvalid)
	case strings.HasPrefix(strings.ToLower(s), "sha256:"):
		return Ref{}, fmt.Errorf("%w: %q", ErrID, s)
	case hexName.MatchString(s):
		return Ref{}, fmt.Errorf("%w: %q could be read as an image ID prefix; name the image with its tag (%s:latest)", ErrID, s, s)
	}
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return Ref{}, fmt.Errorf("%w: %q: %v", ErrInvalid, s, err)
	}
	return Ref{named: reference.TagNameOnly(named)}, nil
}

// String is the reference as the engine lists it (RepoTags, RepoDigests):
// "runhost/python:3.11", "python:latest", "ghcr.io/o/i:1", "alpine@sha256:...".
func (r Ref) String() string { return reference.FamiliarString(r.named) }

// Full is the fully qualified reference: "docker.io/library/python:latest".
func (r Ref) Full() string { return r.named.String() }

// Repository is the repository's path without its registry: "runhost/python",
// "library/python", "o/i".
func (r Ref) Repository() string { return reference.Path(r.named) }

// FamiliarRepository is the repository as the engine shows it: "python",
// "runhost/python", "ghcr.io/o/i".
func (r Ref) FamiliarRepository() string { return reference.FamiliarName(r.named) }

// Digest is the reference's digest ("sha256:..."), empty when it has none.
func (r Ref) Digest() string {
	if d, ok := r.named.(reference.Digested); ok {
		return d.Digest().String()
	}
	return ""
}

// Names are the spellings an allow-list pattern is matched against: the
// reference as written, as the engine lists it, and fully qualified.
func (r Ref) Names(written string) []string {
	out := []string{written}
	for _, n := range []string{r.String(), r.Full()} {
		if n != out[len(out)-1] && n != written {
			out = append(out, n)
		}
	}
	return out
}

// Is reports whether listed (a RepoTags or RepoDigests entry, or any
// reference) names exactly r: the same repository and tag, or the same
// repository and digest.
func (r Ref) Is(listed string) bool {
	named, err := reference.ParseNormalizedNamed(listed)
	if err != nil {
		return false
	}
	if r.named.Name() != named.Name() {
		return false
	}
	if d := r.Digest(); d != "" {
		got, ok := named.(reference.Digested)
		return ok && got.Digest().String() == d
	}
	want, _ := r.named.(reference.Tagged)
	got, ok := reference.TagNameOnly(named).(reference.Tagged)
	return ok && want != nil && got.Tag() == want.Tag()
}
