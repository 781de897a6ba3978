package policy

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/helperimage"
	"github.com/runhost/runhost/internal/imageref"
)

// internalRepositories are runhost's own images: built images (other
// tenants' build contexts are in their layers), the helpers (init, egress
// proxy, volume owner, builder) and the deployment's images (host, DinD,
// code-server). No request reaches them, whatever the allow-list says.
// They are compared by repository path, whatever the registry.
var internalRepositories = []string{
	"runhost/build",
	"runhost/builder",
	"runhost/builds",
	"runhost/code-server",
	"runhost/dind",
	helperimage.EgressRepository,
	"runhost/host",
	helperimage.InitRepository,
	"runhost/owner",
}

// ErrNoCommand marks a run of a built image that has nothing to run: no
// ENTRYPOINT or CMD in the image and no command in the request (400).
var ErrNoCommand = errors.New("nothing to run")

// Resolver finds an image on the engine; see executor.Executor.ResolveImage.
type Resolver func(ref string) (executor.ImageInfo, error)

// isInternal reports whether r is one of runhost's own images: a
// repository of internalRepositories or of Config.InternalImages.
func (p *Policy) isInternal(r imageref.Ref) bool {
	repo := r.Repository()
	if slices.Contains(internalRepositories, repo) {
		return true
	}
	for _, extra := range p.cfg.InternalImages {
		if x, err := imageref.Parse(extra); err == nil && x.Repository() == repo {
			return true
		}
	}
	return false
}

// SeedImages are the images the seed's users pre-pull and name: the
// default allow-list accepts them besides the runtimes' own (`make images`
// pulls them where a registry answers; RUNHOST_IMAGE_ALIASES maps them to
// local images where none does).
var SeedImages = []string{"python:3.11-slim", "node:20-alpine", "ubuntu:22.04"}

// allowedImages are the patterns images a request names must match for
// runtime: the grant's custom_images, else RUNHOST_ALLOWED_IMAGES, else
// every image the runtimes declare and the seed's images.
func (p *Policy) allowedImages(runtime string, declared []string) []string {
	if g, ok := p.grantOf(runtime); ok && len(g.CustomImages) > 0 {
		return g.CustomImages
	}
	if len(p.cfg.AllowedImages) > 0 {
		return p.cfg.AllowedImages
	}
	out := slices.Clone(declared)
	for _, img := range SeedImages {
		if !slices.Contains(out, img) {
			out = append(out, img)
		}
	}
	return out
}

// ImageAliases are RUNHOST_IMAGE_ALIASES: image names and the images this
// host runs for them.
func (p *Policy) ImageAliases() map[string]string { return maps.Clone(p.cfg.ImageAliases) }

// alias is the image the host runs for ref: its alias's target, or ref.
// An alias matches the name as written or as the engine lists it
// (docker.io/library/python:3.11-slim is python:3.11-slim).
func (p *Policy) alias(ref string) string {
	if t, ok := p.cfg.ImageAliases[ref]; ok {
		return t
	}
	if r, err := imageref.Parse(ref); err == nil {
		for _, name := range r.Names(ref) {
			if t, ok := p.cfg.ImageAliases[name]; ok {
				return t
			}
		}
	}
	return ref
}

// CheckImage decides whether a request of runtime may use the image ref
// names (a custom image, a Dockerfile's base): it must be a name, not an
// image ID or ID prefix; not one of runhost's own images; and match the
// allow-list (as written, as the engine lists it, or fully qualified).
func (p *Policy) CheckImage(runtime, ref string, declared []string) (imageref.Ref, error) {
	allowed := p.allowedImages(runtime, declared)
	if target := p.alias(ref); target != ref {
		r, err := p.CheckImage(runtime, target, declared)
		if err != nil {
			return imageref.Ref{}, fmt.Errorf("%s is an alias (RUNHOST_IMAGE_ALIASES) of %s: %w", ref, target, err)
		}
		return r, nil
	}
	r, err := imageref.Parse(ref)
	switch {
	case errors.Is(err, imageref.ErrID):
		return imageref.Ref{}, &ImageError{Image: ref, Allowed: allowed, Reason: "image IDs and ID prefixes are not allowed; name the image by repository and tag"}
	case err != nil:
		return imageref.Ref{}, &ImageError{Image: ref, Allowed: allowed, Reason: err.Error()}
	case p.isInternal(r):
		return imageref.Ref{}, &ImageError{Image: ref, Allowed: allowed, Reason: "it is one of runhost's own images, which no request may use"}
	}
	for _, name := range r.Names(ref) {
		if matchAny(allowed, name) {
			return r, nil
		}
	}
	return imageref.Ref{}, &ImageError{Image: ref, Allowed: allowed}
}

// resolve pins an allowed image: the exact image the engine has under
// that name. An image the engine lacks is an error that lists the images
// this host can run instead.
func (p *Policy) resolve(in Input, r imageref.Ref) (executor.ImageInfo, error) {
	if in.Resolve == nil {
		return executor.ImageInfo{}, fmt.Errorf("policy: no image resolver for %s", r)
	}
	info, err := in.Resolve(r.String())
	if errors.Is(err, executor.ErrImageMissing) {
		return executor.ImageInfo{}, &ImageNotFoundError{Image: r.String(), Runnable: p.runnable(in), Err: err}
	}
	if err != nil {
		return executor.ImageInfo{}, err
	}
	if info.Ref == "" {
		return executor.ImageInfo{}, fmt.Errorf("policy: %s resolved to nothing", r)
	}
	return info, nil
}

// ErrImageNotFound marks an allowed image a request names that the engine
// does not have (404).
var ErrImageNotFound = errors.New("image not found")

// ImageNotFoundError is an allowed image the engine lacks, with the images
// this host can run instead.
type ImageNotFoundError struct {
	Image    string
	Runnable []string
	Err      error // wraps executor.ErrImageMissing
}

func (e *ImageNotFoundError) Error() string {
	return fmt.Sprintf("image %s is not on this host's engine (%v); images this host can run: %s (RUNHOST_IMAGE_ALIASES maps a name to one of them)",
		e.Image, e.Err, strings.Join(e.Runnable, ", "))
}
func (e *ImageNotFoundError) Is(target error) bool { return target == ErrImageNotFound }
func (e *ImageNotFoundError) Unwrap() error        { return e.Err }

// BaseMissingError is a Dockerfile naming an allowed image the engine does
// not have: a build-stage result, not an error of the host.
type BaseMissingError struct {
	Line    int
	Use     string // FROM, COPY --from, RUN --mount from
	Image   string
	Allowed []string
	Err     error
}

func (e *BaseMissingError) Error() string {
	return fmt.Sprintf("dockerfile line %d: %s %s: the image is not on the engine (%v); images this host allows: %s",
		e.Line, e.Use, e.Image, e.Err, strings.Join(e.Allowed, ", "))
}

func (e *BaseMissingError) Unwrap() error { return e.Err }

// NoCommandError says why a built image has nothing to run.
type NoCommandError struct{ Msg string }

func (e *NoCommandError) Error() string        { return e.Msg }
func (e *NoCommandError) Is(target error) bool { return target == ErrNoCommand }

// runnable are the images a request of in.Runtime may name that the
// engine has (patterns as they are), then the aliases.
func (p *Policy) runnable(in Input) []string {
	var out []string
	for _, img := range p.allowedImages(in.Runtime, in.DeclaredImages) {
		if strings.Contains(img, "*") {
			out = append(out, img)
			continue
		}
		if _, err := in.Resolve(img); err == nil {
			out = append(out, img)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(p.cfg.ImageAliases)) {
		target := p.cfg.ImageAliases[name]
		if r, err := p.CheckImage(in.Runtime, target, in.DeclaredImages); err == nil {
			if _, err := in.Resolve(r.String()); err == nil {
				out = append(out, name+" (= "+target+")")
			}
		}
	}
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}
