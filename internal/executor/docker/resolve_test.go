package docker

import (
	"context"
	"errors"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/imageref"
)

// inspectEngine answers ImageInspect as Docker does: by name when an image
// has it, else by ID prefix.
type inspectEngine struct {
	engine
	images []image.InspectResponse
}

func (f inspectEngine) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	for _, img := range f.images {
		for _, t := range append(append([]string{}, img.RepoTags...), img.RepoDigests...) {
			if t == ref {
				return img, nil
			}
		}
	}
	for _, img := range f.images {
		if strings.HasPrefix(strings.TrimPrefix(img.ID, "sha256:"), strings.TrimSuffix(ref, ":latest")) {
			return img, nil
		}
	}
	return image.InspectResponse{}, cerrdefs.ErrNotFound
}

func TestResolveImage(t *testing.T) {
	const (
		python = "sha256:4497b3dd19ef0000000000000000000000000000000000000000000000000000"
		build  = "sha256:cafe000000000000000000000000000000000000000000000000000000000000"
		digest = "sha256:1234567890123456789012345678901234567890123456789012345678901234"
	)
	e := &Executor{engine: inspectEngine{images: []image.InspectResponse{
		{ID: python, RepoTags: []string{"runhost/python:3.11"}, Config: &dockerspec.DockerOCIImageConfig{ImageConfig: ocispec.ImageConfig{Cmd: []string{"python3"}, WorkingDir: "/w"}}},
		{ID: build, RepoTags: []string{"runhost/build:abc"}, RepoDigests: []string{"alpine@" + digest}},
	}}}
	tests := []struct {
		ref  string
		want string
		err  error
	}{
		{"runhost/python:3.11", python, nil},
		{"docker.io/runhost/python:3.11", python, nil},
		{"alpine@" + digest, build, nil},
		{"runhost/python:3.13", "", executor.ErrImageMissing},
		{"cafe:latest", "", executor.ErrImageMissing}, // the engine matches the ID prefix; no image has the name
		{"cafe", "", imageref.ErrID},
		{python, "", imageref.ErrID},
		{"sha256:4497", "", imageref.ErrID},
		{"Runhost/Python", "", imageref.ErrInvalid},
	}
	for _, tt := range tests {
		info, err := e.ResolveImage(context.Background(), tt.ref)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("%s: error %v, want %v", tt.ref, err, tt.err)
			}
			continue
		}
		if err != nil || info.Ref != tt.want || !info.Inspected {
			t.Errorf("%s: %+v %v, want %s", tt.ref, info, err, tt.want)
		}
	}
	info, _ := e.ResolveImage(context.Background(), "runhost/python:3.11")
	if len(info.Cmd) != 1 || info.WorkingDir != "/w" {
		t.Errorf("config not read: %+v", info)
	}
}
