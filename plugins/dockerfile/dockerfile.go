package main

import (
	"context"

	"github.com/runhost/runhost/shared"
)

// Dockerfile builds the request's Dockerfile with its files as the build
// context, then runs the image: its ENTRYPOINT, the request's command or
// else its CMD, then the request's args. The host builds (without network unless its policy
// says otherwise), caches the image by content and runs it hardened like
// every other run.
type Dockerfile struct{}

// Describe implements shared.Runtime. The single version has no image of its
// own: every request brings its Dockerfile.
func (Dockerfile) Describe(context.Context) (shared.Description, error) {
	return shared.Description{
		Name:        "dockerfile",
		Aliases:     []string{"docker"},
		Description: "build a Dockerfile (code or dockerfile) with the files as context, then run the image",
		Versions: []shared.Version{{
			Version: "1",
			Default: true,
			SelfTest: shared.SelfTest{
				Code:           "FROM runhost/shell:bookworm\nUSER root\nRUN echo OK > /opt/ok.txt\nCMD [\"cat\", \"/opt/ok.txt\"]\n",
				ExpectedStdout: "OK\n",
			},
		}},
		Capabilities: []shared.Capability{
			shared.CapStdin, shared.CapArgs, shared.CapEnv, shared.CapFiles, shared.CapDockerfile,
		},
	}, nil
}

// Plan implements shared.Runtime. The Dockerfile is dockerfile (or code),
// else the build context's own Dockerfile, as docker build -f picks it; the
// context keeps its files either way. The run is what docker run does:
// command replaces the image's CMD (its ENTRYPOINT stays), args follow.
func (Dockerfile) Plan(_ context.Context, req shared.RunRequest) (shared.Spec, error) {
	dockerfile := req.Dockerfile
	switch {
	case dockerfile != "" && req.Code != "":
		return shared.Spec{}, shared.Invalidf("give the Dockerfile as dockerfile or as code, not both")
	case dockerfile == "":
		dockerfile = req.Code
	}
	if dockerfile == "" {
		for _, f := range req.Files {
			if f.Path == "Dockerfile" {
				dockerfile = string(f.Content)
			}
		}
	}
	if dockerfile == "" {
		return shared.Spec{}, shared.Invalidf("no Dockerfile: give dockerfile (or code), or put a Dockerfile at the root of the build context")
	}
	var cmd []string
	switch {
	case len(req.Command.Argv) > 0:
		cmd = req.Command.Argv
	case req.Command.Shell != "":
		cmd = []string{"sh", "-c", req.Command.Shell, "sh"}
	}
	return shared.Spec{
		Env: req.Env,
		Build: &shared.Build{
			Dockerfile: dockerfile,
			Context:    req.Files,
			BuildArgs:  req.BuildArgs,
			Cmd:        cmd,
			Args:       req.Args,
		},
	}, nil
}
