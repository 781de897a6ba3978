// Command vulndb turns the OSV files of a golang.org/x/vulndb module
// snapshot (fetched through the Go module proxy) into the directory layout
// govulncheck reads with -db file://DIR. It is for machines that reach the
// module proxy but not vuln.go.dev.
//
//	go run ./scripts/vulndb -src $(go env GOMODCACHE)/golang.org/x/vulndb@VERSION -out .cache/vulndb
package main

import (
	"encoding/json"
	"flag"
	"log"
	"os"
	"path/filepath"
	"sort"
	"time"
)

type entry struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Affected []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
	} `json:"affected"`
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
}

type module struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

func main() {
	src := flag.String("src", "", "the vulndb module directory (holds data/osv)")
	out := flag.String("out", ".cache/vulndb", "where to write the database")
	flag.Parse()

	files, err := filepath.Glob(filepath.Join(*src, "data", "osv", "GO-*.json"))
	if err != nil || len(files) == 0 {
		log.Fatalf("no OSV files under %s/data/osv (%v)", *src, err)
	}
	if err := os.MkdirAll(filepath.Join(*out, "ID"), 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(*out, "index"), 0o755); err != nil {
		log.Fatal(err)
	}
	byModule := map[string][]moduleVuln{}
	var newest time.Time
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			log.Fatal(err)
		}
		var e entry
		if err := json.Unmarshal(raw, &e); err != nil {
			log.Fatalf("%s: %v", f, err)
		}
		if err := os.WriteFile(filepath.Join(*out, "ID", e.ID+".json"), raw, 0o644); err != nil {
			log.Fatal(err)
		}
		seen := map[string]bool{}
		for _, a := range e.Affected {
			if p := a.Package.Name; p != "" && !seen[p] {
				seen[p] = true
				byModule[p] = append(byModule[p], moduleVuln{ID: e.ID, Modified: e.Modified})
			}
		}
		if e.Modified.After(newest) {
			newest = e.Modified
		}
	}
	mods := make([]module, 0, len(byModule))
	for p, v := range byModule {
		mods = append(mods, module{Path: p, Vulns: v})
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].Path < mods[j].Path })
	write(filepath.Join(*out, "index", "modules.json"), mods)
	write(filepath.Join(*out, "index", "db.json"), map[string]time.Time{"modified": newest})
	log.Printf("vulndb: %d entries for %d modules in %s", len(files), len(mods), *out)
}

func write(path string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		log.Fatal(err)
	}
}
