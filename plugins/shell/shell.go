package main

import (
	"context"

	"github.com/runhost/runhost/shared"
)

// Shell runs bash scripts in a Debian image with the usual command-line
// tools, or any command in an image the host allows (the seed's
// run_command).
type Shell struct{}

var versions = []shared.Version{
	{
		Version: "5.2",
		Image:   "runhost/shell:bookworm",
		Default: true,
		SelfTest: shared.SelfTest{
			Code:           "echo \"OK ${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]}\"\n",
			ExpectedStdout: "OK 5.2\n",
		},
	},
}

// Describe implements shared.Runtime.
func (Shell) Describe(context.Context) (shared.Description, error) {
	return shared.Description{
		Name:        "shell",
		Aliases:     []string{"bash", "sh"},
		Description: "bash scripts with Debian's core tools, or a command in another allowed image",
		Versions:    versions,
		Capabilities: []shared.Capability{
			shared.CapStdin, shared.CapArgs, shared.CapEnv, shared.CapFiles, shared.CapCustomImage,
		},
	}, nil
}

// Plan implements shared.Runtime: `bash <entry> <args...>`, so $1... are the
// request's args. With image and command, the command runs in that image
// instead (an argv as is, a string through sh -c).
func (Shell) Plan(_ context.Context, req shared.RunRequest) (shared.Spec, error) {
	if req.Image != "" || len(req.Command.Argv) > 0 || req.Command.Shell != "" {
		return customCommand(req)
	}
	files, entry, err := shared.SourceFiles(req, "main.sh")
	if err != nil {
		return shared.Spec{}, err
	}
	return shared.Spec{
		Image:   req.VersionImage,
		Files:   files,
		Command: append([]string{"bash", entry}, req.Args...),
		Env:     req.Env,
	}, nil
}

func customCommand(req shared.RunRequest) (shared.Spec, error) {
	if req.Code != "" {
		return shared.Spec{}, shared.Invalidf("give code or command, not both")
	}
	image := req.Image
	if image == "" {
		image = req.VersionImage
	}
	var argv []string
	switch {
	case len(req.Command.Argv) > 0:
		argv = append(append([]string{}, req.Command.Argv...), req.Args...)
	case req.Command.Shell != "":
		// sh -c LINE name args...: $0 is a name, $1... are the request's args.
		argv = append([]string{"sh", "-c", req.Command.Shell, "sh"}, req.Args...)
	default:
		return shared.Spec{}, shared.Invalidf("image %q given without a command", image)
	}
	return shared.Spec{Image: image, Files: req.Files, Command: argv, Env: req.Env}, nil
}
