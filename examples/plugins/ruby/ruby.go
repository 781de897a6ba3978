package main

import (
	"context"
	"maps"

	"github.com/runhost/runhost/shared"
)

// Ruby runs Debian bookworm's Ruby 3.1.
type Ruby struct{}

const (
	version = "3.1"
	image   = "runhost/ruby:3.1"
)

// Describe implements shared.Runtime.
func (Ruby) Describe(context.Context) (shared.Description, error) {
	return shared.Description{
		Name:        "ruby",
		Aliases:     []string{"rb"},
		Description: "Ruby 3.1 (from Debian bookworm); an out-of-tree example plugin",
		Versions: []shared.Version{{
			Version: version,
			Image:   image,
			Default: true,
			SelfTest: shared.SelfTest{
				Code:           `puts "OK #{RUBY_VERSION.split('.')[0,2].join('.')}"` + "\n",
				ExpectedStdout: "OK " + version + "\n",
			},
		}},
		Capabilities: []shared.Capability{shared.CapStdin, shared.CapArgs, shared.CapEnv, shared.CapFiles},
	}, nil
}

// Plan implements shared.Runtime: `ruby <entry> <args...>` in the run
// directory, so require_relative finds the request's other files. The host
// has resolved the version and sends its image; SourceFiles refuses an entry
// ruby would read as an option. It logs one line per call; shared.Log(ctx)
// adds the host's request id to it.
func (Ruby) Plan(ctx context.Context, req shared.RunRequest) (shared.Spec, error) {
	log := shared.Log(ctx)
	files, entry, err := shared.SourceFiles(req, "main.rb")
	if err != nil {
		log.Info("refused ruby run", "reason", err)
		return shared.Spec{}, err
	}
	log.Info("planned ruby run", "entry", entry, "files", len(files), "args", len(req.Args))
	return shared.Spec{
		Image:   req.VersionImage,
		Files:   files,
		Command: append([]string{"ruby", entry}, req.Args...),
		Env:     maps.Clone(req.Env),
	}, nil
}
