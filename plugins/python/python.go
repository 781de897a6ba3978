package main

import (
	"context"
	"maps"

	"github.com/runhost/runhost/shared"
)

// Python runs CPython from Debian images.
type Python struct{}

var versions = []shared.Version{
	{
		Version: "3.11",
		Image:   "runhost/python:3.11",
		Default: true,
		SelfTest: shared.SelfTest{
			Code:           "import sys\nprint('OK', '%d.%d' % sys.version_info[:2])\n",
			ExpectedStdout: "OK 3.11\n",
		},
	},
}

// Describe implements shared.Runtime.
func (Python) Describe(context.Context) (shared.Description, error) {
	return shared.Description{
		Name:         "python",
		Aliases:      []string{"py", "python3"},
		Description:  "Python 3 (CPython from Debian)",
		Versions:     versions,
		Capabilities: []shared.Capability{shared.CapStdin, shared.CapArgs, shared.CapEnv, shared.CapFiles},
	}, nil
}

// Plan implements shared.Runtime: `python3 <entry> <args...>`, unbuffered so
// output interleaves as the program wrote it.
func (Python) Plan(_ context.Context, req shared.RunRequest) (shared.Spec, error) {
	image, err := imageOf(req.Version)
	if err != nil {
		return shared.Spec{}, err
	}
	files, entry, err := shared.SourceFiles(req, "main.py")
	if err != nil {
		return shared.Spec{}, err
	}
	env := map[string]string{
		"PYTHONUNBUFFERED":        "1",
		"PYTHONDONTWRITEBYTECODE": "1",
	}
	maps.Copy(env, req.Env)
	return shared.Spec{
		Image:   image,
		Files:   files,
		Command: append([]string{"python3", entry}, req.Args...),
		Env:     env,
	}, nil
}

func imageOf(version string) (string, error) {
	for _, v := range versions {
		if v.Version == version {
			return v.Image, nil
		}
	}
	return "", shared.Invalidf("python %q is not a version this plugin knows", version)
}
