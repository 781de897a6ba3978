package docker

import (
	"context"
	"fmt"
	"slices"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/imageref"
)

// ResolveImage finds the image ref names and returns its ID. The engine
// would answer an inspect of a name no image has with an image whose ID
// starts with it; the answer counts only if the image lists ref among its
// tags (or digests), so an ID prefix never passes for a name.
func (e *Executor) ResolveImage(ctx context.Context, ref string) (executor.ImageInfo, error) {
	r, err := imageref.Parse(ref)
	if err != nil {
		return executor.ImageInfo{}, err
	}
	info, err := e.engine.ImageInspect(ctx, r.String())
	switch {
	case cerrdefs.IsNotFound(err):
		return executor.ImageInfo{}, fmt.Errorf("%w: %s", executor.ErrImageMissing, r)
	case err != nil:
		return executor.ImageInfo{}, engineError("inspect image", err)
	}
	names := info.RepoTags
	if r.Digest() != "" {
		names = info.RepoDigests
	}
	if !slices.ContainsFunc(names, r.Is) {
		return executor.ImageInfo{}, fmt.Errorf("%w: %s (no image has that name; the engine matched another image by its ID)", executor.ErrImageMissing, r)
	}
	out := executor.ImageInfo{Ref: info.ID, Inspected: true}
	if c := info.Config; c != nil {
		out.Entrypoint, out.Cmd, out.WorkingDir, out.OnBuild = c.Entrypoint, c.Cmd, c.WorkingDir, c.OnBuild
	}
	return out, nil
}
