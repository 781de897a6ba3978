package piston

import (
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/runhost/runhost/internal/runner"
	"github.com/runhost/runhost/shared"
)

// Runtime is one entry of GET /api/v2/runtimes: a language at one version.
type Runtime struct {
	Language string   `json:"language"`
	Version  string   `json:"version"`
	Aliases  []string `json:"aliases"`
	// Runtime names the package providing the language when it differs
	// (Piston's node package provides "javascript").
	Runtime string `json:"runtime,omitempty"`
}

// entry is a Piston runtime and the runhost runtime version behind it.
type entry struct {
	Runtime
	semver  *semver.Version
	name    string // runhost runtime name
	version string // runhost version ("3.11")
	stdin   bool   // the runtime takes stdin
	ext     string // of unnamed files: file0.<ext>
}

// language is how Piston names a runhost runtime. Piston's own packages
// decide the names, so clients that hard-code them keep working.
type language struct {
	name    string
	aliases []string
	runtime string
	// ext names unnamed files. Piston calls them file0.code; runhost's
	// plugins pick the interpreter mode by extension (node refuses .code).
	ext string
}

var languages = map[string]language{
	"python": {name: "python", aliases: []string{"py", "py3", "python3"}, ext: "py"},
	"node":   {name: "javascript", aliases: []string{"node-javascript", "node-js", "javascript", "js"}, runtime: "node", ext: "js"},
	"shell":  {name: "bash", aliases: []string{"sh"}, ext: "sh"},
}

// catalog turns runhost's runtimes into Piston's: one entry per version,
// with versions as full semver ("3.11" becomes "3.11.0", since runtimes do
// not report patch levels). Runtimes that build Dockerfiles have no Piston
// counterpart and are left out, as are versions that are not semver.
func catalog(infos []runner.RuntimeInfo) []entry {
	var out []entry
	for _, info := range infos {
		d := info.Description
		if slices.Contains(d.Capabilities, shared.CapDockerfile) {
			continue
		}
		lang, ok := languages[d.Name]
		if !ok {
			lang = language{name: d.Name, ext: "code"}
		}
		// runhost's own names work too (node, nodejs, ...), after Piston's.
		aliases := append([]string{}, lang.aliases...) // [] rather than null in JSON
		for _, a := range append([]string{d.Name}, d.Aliases...) {
			if a != lang.name && !slices.Contains(aliases, a) {
				aliases = append(aliases, a)
			}
		}
		for _, v := range d.Versions {
			sv, err := semver.NewVersion(v.Version)
			if err != nil {
				continue
			}
			out = append(out, entry{
				Runtime: Runtime{Language: lang.name, Version: sv.String(), Aliases: aliases, Runtime: lang.runtime},
				semver:  sv,
				name:    d.Name,
				version: v.Version,
				stdin:   slices.Contains(d.Capabilities, shared.CapStdin),
				ext:     lang.ext,
			})
		}
	}
	return out
}

// match picks the newest entry whose language or alias is lang and whose
// version satisfies the semver range selector, as Piston does. A selector
// that is not a range matches nothing.
func match(entries []entry, lang, selector string) (entry, bool) {
	c, err := semver.NewConstraint(strings.TrimSpace(selector))
	if err != nil {
		return entry{}, false
	}
	var best *entry
	for i, e := range entries {
		if e.Language != lang && !slices.Contains(e.Aliases, lang) {
			continue
		}
		if !c.Check(e.semver) {
			continue
		}
		if best == nil || e.semver.GreaterThan(best.semver) {
			best = &entries[i]
		}
	}
	if best == nil {
		return entry{}, false
	}
	return *best, true
}
