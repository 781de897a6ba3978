package main

import (
	"context"

	"github.com/runhost/runhost/shared"
)

// Shell runs bash scripts in a Debian image with the usual command-line tools.
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
		Name:         "shell",
		Aliases:      []string{"bash", "sh"},
		Description:  "bash scripts with Debian's core tools",
		Versions:     versions,
		Capabilities: []shared.Capability{shared.CapStdin, shared.CapArgs, shared.CapEnv, shared.CapFiles},
	}, nil
}

// Plan implements shared.Runtime: `bash <entry> <args...>`, so $1... are the
// request's args.
func (Shell) Plan(_ context.Context, req shared.RunRequest) (shared.Spec, error) {
	var image string
	for _, v := range versions {
		if v.Version == req.Version {
			image = v.Image
		}
	}
	if image == "" {
		return shared.Spec{}, shared.Invalidf("bash %q is not a version this plugin knows", req.Version)
	}
	files, entry, err := shared.SourceFiles(req, "main.sh")
	if err != nil {
		return shared.Spec{}, err
	}
	return shared.Spec{
		Image:   image,
		Files:   files,
		Command: append([]string{"bash", entry}, req.Args...),
		Env:     req.Env,
	}, nil
}
