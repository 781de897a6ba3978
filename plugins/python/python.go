package main

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/runhost/runhost/shared"
)

// Python runs CPython from Debian images.
type Python struct{}

var versions = []shared.Version{
	version("3.11", "runhost/python:3.11", true),
	version("3.13", "runhost/python:3.13", false),
	dataVersion,
}

// dataVersion is Python 3.11 with numpy, pandas, matplotlib (Agg), scipy and
// IPython, from Debian's packages. It is meant to be asked for by its exact
// name: "3.11" matches 3.11 exactly and the default is 3.11, and "3" picks
// the newest 3.x, which is 3.13 (TestDataVersionIsExactOnly checks all three
// through the host's own resolver).
var dataVersion = shared.Version{
	Version: "3.11-data",
	Image:   "runhost/python:3.11-data",
	SelfTest: shared.SelfTest{
		// Draws a chart as a run would, without a display, and checks the PNG.
		Code: "import io, sys\n" +
			"import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n" +
			"import numpy as np, pandas as pd, scipy\n" +
			"df = pd.DataFrame({'x': np.arange(5), 'y': np.arange(5) ** 2})\n" +
			"fig, ax = plt.subplots()\nax.plot(df.x, df.y)\n" +
			"buf = io.BytesIO()\nfig.savefig(buf, format='png')\npng = buf.getvalue()\n" +
			"print('OK' if png.startswith(b'\\x89PNG') and len(png) > 1000 else 'BAD', '%d.%d' % sys.version_info[:2], int(df.y.sum()))\n",
		ExpectedStdout: "OK 3.11 30\n",
	},
}

func version(v, image string, def bool) shared.Version {
	return shared.Version{
		Version: v,
		Image:   image,
		Default: def,
		SelfTest: shared.SelfTest{
			Code:           "import sys\nprint('OK', '%d.%d' % sys.version_info[:2])\n",
			ExpectedStdout: "OK " + v + "\n",
		},
	}
}

// depsDir is where pip installs requirements; the run finds them on PYTHONPATH.
const depsDir = "/deps"

// Describe implements shared.Runtime.
func (Python) Describe(context.Context) (shared.Description, error) {
	return shared.Description{
		Name:        "python",
		Aliases:     []string{"py", "python3"},
		Description: "Python 3 (CPython from Debian), with pip requirements; 3.11-data adds numpy, pandas, matplotlib, scipy and IPython",
		Versions:    versions,
		Capabilities: []shared.Capability{
			shared.CapStdin, shared.CapArgs, shared.CapEnv, shared.CapFiles, shared.CapPackages,
			shared.CapInterpreter,
		},
	}, nil
}

// Plan implements shared.Runtime: `python3 <entry> <args...>`, unbuffered so
// output interleaves as the program wrote it; requirements are installed
// with pip into a cached directory first.
func (Python) Plan(_ context.Context, req shared.RunRequest) (shared.Spec, error) {
	if req.Interpreter {
		return interpreter(req), nil
	}
	files, entry, err := shared.SourceFiles(req, "main.py")
	if err != nil {
		return shared.Spec{}, err
	}
	env := map[string]string{
		"PYTHONUNBUFFERED":        "1",
		"PYTHONDONTWRITEBYTECODE": "1",
	}
	spec := shared.Spec{
		Image:   req.VersionImage,
		Files:   files,
		Command: append([]string{"python3", entry}, req.Args...),
		Env:     env,
	}
	if len(req.Packages) > 0 {
		reqs, err := requirements(req.Packages)
		if err != nil {
			return shared.Spec{}, err
		}
		spec.Install = &shared.Install{
			Command: []string{"python3", "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check",
				"--no-warn-script-location", "--no-input", "--target", depsDir, "-r", "requirements.txt"},
			Files:     []shared.File{{Path: "requirements.txt", Content: []byte(strings.Join(reqs, "\n") + "\n")}},
			OutputDir: depsDir,
			Network:   true,
		}
		env["PYTHONPATH"] = depsDir
	}
	maps.Copy(env, req.Env)
	return spec, nil
}

// requirements normalises requirement lines so that the same set installs
// once: trimmed, sorted, without duplicates. Options and direct references
// are refused: packages come from the host's configured index only.
func requirements(pkgs []string) ([]string, error) {
	if len(pkgs) > 200 {
		return nil, shared.Invalidf("%d requirements, at most 200", len(pkgs))
	}
	var out []string
	for _, p := range pkgs {
		p = strings.TrimSpace(p)
		switch {
		case p == "" || strings.HasPrefix(p, "#"):
			continue
		case len(p) > 256:
			return nil, shared.Invalidf("requirement %.40q... is longer than 256 bytes", p)
		case strings.HasPrefix(p, "-"):
			return nil, shared.Invalidf("requirement %q: pip options are not allowed; the host chooses the package index", p)
		case strings.Contains(p, "://") || strings.Contains(p, "@") || strings.ContainsAny(p, "/\\\n\r"):
			return nil, shared.Invalidf("requirement %q: give a package name and version specifier; URLs and paths are not allowed", p)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, shared.Invalidf("requirements are empty")
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
