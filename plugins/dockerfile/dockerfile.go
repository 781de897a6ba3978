package main

import (
	"context"

	"github.com/runhost/runhost/shared"
)

// Dockerfile builds the request's Dockerfile with its files as the build
// context, then runs the image: its own entrypoint and command, or the
// request's command. The host builds (without network unless its policy
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

// Plan implements shared.Runtime.
func (Dockerfile) Plan(_ context.Context, req shared.RunRequest) (shared.Spec, error) {
	dockerfile := req.Dockerfile
	switch {
	case dockerfile != "" && req.Code != "":
		return shared.Spec{}, shared.Invalidf("give the Dockerfile as dockerfile or as code, not both")
	case dockerfile == "":
		dockerfile = req.Code
	}
	if dockerfile == "" {
		return shared.Spec{}, shared.Invalidf("no Dockerfile: give dockerfile (or code)")
	}
	for _, f := range req.Files {
		if f.Path == "Dockerfile" {
			return shared.Spec{}, shared.Invalidf("the build context has its own Dockerfile; give it as dockerfile instead")
		}
	}
	var command []string
	switch {
	case len(req.Command.Argv) > 0:
		command = append(append([]string{}, req.Command.Argv...), req.Args...)
	case req.Command.Shell != "":
		command = append([]string{"sh", "-c", req.Command.Shell, "sh"}, req.Args...)
	case len(req.Args) > 0:
		return shared.Spec{}, shared.Invalidf("args need a command: the image's own command cannot take them")
	}
	return shared.Spec{
		Command: command,
		Env:     req.Env,
		Build: &shared.Build{
			Dockerfile: dockerfile,
			Context:    req.Files,
			BuildArgs:  req.BuildArgs,
		},
	}, nil
}
