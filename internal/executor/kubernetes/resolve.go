package kubernetes

import (
	"context"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/imageref"
)

// ResolveImage checks that ref names an image (not an ID or ID prefix) and
// returns the name with its tag, as the engine lists it. The host cannot
// see the nodes' images nor reach the registry they pull from, so nothing
// is pinned beyond the name, and the image's config is unknown
// (Inspected is false): the nodes and the build pods pull the name the
// policy checked.
func (e *Executor) ResolveImage(_ context.Context, ref string) (executor.ImageInfo, error) {
	r, err := imageref.Parse(ref)
	if err != nil {
		return executor.ImageInfo{}, err
	}
	return executor.ImageInfo{Ref: r.String()}, nil
}
