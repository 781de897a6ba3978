// Command vulnreport reads `govulncheck -format json` on stdin and decides
// what `make lint` fails on: a vulnerability the code reaches in a required
// module that has a fixed version (`go get` fixes it). Reachable ones that
// the project cannot fix by a dependency bump — the standard library of the
// local Go toolchain, advisories with no fix yet — are listed as warnings.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
)

type message struct {
	OSV *struct {
		ID      string `json:"id"`
		Summary string `json:"summary"`
	} `json:"osv"`
	Finding *struct {
		OSV          string `json:"osv"`
		FixedVersion string `json:"fixed_version"`
		Trace        []struct {
			Module   string `json:"module"`
			Version  string `json:"version"`
			Function string `json:"function"`
		} `json:"trace"`
	} `json:"finding"`
}

func main() {
	dec := json.NewDecoder(os.Stdin)
	summaries := map[string]string{}
	type called struct{ module, version, fixed string }
	reached := map[string]called{}
	for {
		var m message
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			fmt.Fprintln(os.Stderr, "vulnreport: reading govulncheck output:", err)
			os.Exit(2)
		}
		if m.OSV != nil {
			summaries[m.OSV.ID] = m.OSV.Summary
		}
		if f := m.Finding; f != nil && len(f.Trace) > 0 && f.Trace[0].Function != "" {
			reached[f.OSV] = called{f.Trace[0].Module, f.Trace[0].Version, f.FixedVersion}
		}
	}
	ids := make([]string, 0, len(reached))
	for id := range reached {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	failed := 0
	for _, id := range ids {
		c := reached[id]
		switch {
		case c.module == "stdlib":
			fmt.Printf("warning %s (Go standard library %s, fixed in %s: build with a newer Go): %s\n", id, c.version, c.fixed, summaries[id])
		case c.fixed == "":
			fmt.Printf("warning %s (%s@%s, no fixed version yet): %s\n", id, c.module, c.version, summaries[id])
		default:
			failed++
			fmt.Printf("FAIL    %s (%s@%s, fixed in %s: go get %s@%s): %s\n", id, c.module, c.version, c.fixed, c.module, c.fixed, summaries[id])
		}
	}
	fmt.Printf("vulnreport: %d reachable vulnerabilities, %d fixable by a dependency bump\n", len(ids), failed)
	if failed > 0 {
		os.Exit(1)
	}
}
