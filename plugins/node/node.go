package main

import (
	"context"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/runhost/runhost/shared"
)

// Node runs JavaScript on Node.js from Debian images. A file ending in .mjs
// is an ES module, .js and .cjs are CommonJS (unless a package.json among the
// files says "type": "module", which Node honours itself).
type Node struct{}

var versions = []shared.Version{
	version("18", "runhost/node:18", false),
	version("20", "runhost/node:20", true),
}

func version(v, image string, def bool) shared.Version {
	return shared.Version{
		Version: v,
		Image:   image,
		Default: def,
		SelfTest: shared.SelfTest{
			Code:           "console.log('OK', process.versions.node.split('.')[0])\n",
			ExpectedStdout: "OK " + v + "\n",
		},
	}
}

// modulesDir is where npm installs packages. Node looks for node_modules in
// every parent directory of the importing file, for require and import
// alike, so /node_modules serves code anywhere below /.
const modulesDir = "/node_modules"

// Describe implements shared.Runtime.
func (Node) Describe(context.Context) (shared.Description, error) {
	return shared.Description{
		Name:        "node",
		Aliases:     []string{"javascript", "js", "nodejs"},
		Description: "JavaScript on Node.js (from Debian), CommonJS and ES modules, with npm packages",
		Versions:    versions,
		Capabilities: []shared.Capability{
			shared.CapStdin, shared.CapArgs, shared.CapEnv, shared.CapFiles, shared.CapPackages,
		},
	}, nil
}

// Plan implements shared.Runtime: `node <entry> <args...>`.
func (Node) Plan(_ context.Context, req shared.RunRequest) (shared.Spec, error) {
	// Code written as an ES module (import/export statements) becomes
	// main.mjs, so it runs the same on every version: Node 20 would guess
	// the module type of a main.js itself, Node 18 does not.
	mainName := "main.js"
	if req.Code != "" && esModule.MatchString(req.Code) {
		mainName = "main.mjs"
	}
	files, entry, err := shared.SourceFiles(req, mainName)
	if err != nil {
		return shared.Spec{}, err
	}
	switch path.Ext(entry) {
	case ".js", ".mjs", ".cjs":
	default:
		return shared.Spec{}, shared.Invalidf("entry %q: want a .js, .mjs or .cjs file", entry)
	}
	spec := shared.Spec{
		Image:   req.VersionImage,
		Files:   files,
		Command: append([]string{"node", entry}, req.Args...),
		Env:     map[string]string{},
	}
	if len(req.Packages) > 0 {
		pkgs, err := packages(req.Packages)
		if err != nil {
			return shared.Spec{}, err
		}
		// npm installs into <prefix>/node_modules and cannot use / as the
		// prefix, so it installs under /tmp and the result is copied into
		// the cached output directory. cp -R, not -a: the output directory
		// itself may belong to another user (a Kubernetes emptyDir), so its
		// times and mode cannot be set; links inside stay links.
		spec.Install = &shared.Install{
			Command: append([]string{"sh", "-c",
				`npm install --prefix /tmp/npm --no-save --no-package-lock --no-audit --no-fund --omit=dev --ignore-scripts --loglevel=warn "$@" && cp -R /tmp/npm/node_modules/. ` + modulesDir + `/`,
				"npm-install"}, pkgs...),
			Env:       map[string]string{"NPM_CONFIG_CACHE": "/tmp/.npm", "NPM_CONFIG_UPDATE_NOTIFIER": "false"},
			OutputDir: modulesDir,
			Network:   true,
		}
	}
	maps.Copy(spec.Env, req.Env)
	return spec, nil
}

// esModule matches a line that starts with an import or export statement
// (not a dynamic import(), which CommonJS has too): what makes code an ES
// module.
var esModule = regexp.MustCompile(`(?m)^[ \t]*(import[ \t]*[\w{*"'` + "`" + `]|import[ \t]*\.[ \t]*meta\b|export[ \t]+(default|const|let|var|function|class|async|\{|\*))`)

// npmSpec is a registry package with an optional version or range:
// "lodash", "lodash@4.17.21", "@scope/name@^1".
var npmSpec = regexp.MustCompile(`^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*(@[A-Za-z0-9.^~<>=*| +-]+)?$`)

// packages normalises package specs (sorted, without duplicates) and refuses
// anything but registry packages: no git URLs, tarballs, paths or options.
func packages(pkgs []string) ([]string, error) {
	if len(pkgs) > 200 {
		return nil, shared.Invalidf("%d packages, at most 200", len(pkgs))
	}
	var out []string
	for _, p := range pkgs {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if len(p) > 214 || !npmSpec.MatchString(p) {
			return nil, shared.Invalidf("package %q: give a registry package name with an optional version (name@range); URLs, paths and options are not allowed", p)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, shared.Invalidf("packages are empty")
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
