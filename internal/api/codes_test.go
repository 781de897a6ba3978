package api

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEveryErrorCodeIsDocumented: each code the API can answer with is in
// README.md's error table and in openapi.json's list of codes.
func TestEveryErrorCodeIsDocumented(t *testing.T) {
	// The API's own codes, and those of the request refusals every front
	// end shares (runner.Invalid).
	var sources []string
	for _, dir := range []string{".", "../runner", "../piston"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, files...)
	}
	found := regexp.MustCompile(`return (?:http\.Status[A-Za-z]+|he\.Code|[0-9]+), "([a-z_]+)"|(?:badRequest|Invalid)\("([a-z_]+)"|(?:[Cc]ode): +"([a-z_]+)"`)
	codes := map[string]bool{}
	for _, f := range sources {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range found.FindAllStringSubmatch(string(b), -1) {
			codes[m[1]+m[2]+m[3]] = true
		}
	}
	delete(codes, "client_closed_request") // never written: nobody is listening
	if len(codes) < 40 {
		t.Fatalf("found only %d codes: the pattern no longer matches the sources", len(codes))
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := os.ReadFile("../openapi/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	for code := range codes {
		if !strings.Contains(string(readme), "`"+code+"`") {
			t.Errorf("README.md's error table lacks %s", code)
		}
		if !strings.Contains(string(spec), `"`+code+`"`) {
			t.Errorf("openapi.json lacks %s", code)
		}
	}
}
