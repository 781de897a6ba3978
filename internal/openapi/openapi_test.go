package openapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	"github.com/runhost/runhost/internal/admission"
	"github.com/runhost/runhost/internal/api"
	"github.com/runhost/runhost/internal/metrics"
	"github.com/runhost/runhost/internal/openapi"
	"github.com/runhost/runhost/internal/openapi/openapitest"
)

// load parses the embedded document the way a client would, with every
// $ref resolved.
func load(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapitest.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestDocumentIsValidOpenAPI31(t *testing.T) {
	doc := load(t)
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the document does not validate: %v", err)
	}
}

// TestEveryRefResolves walks the resolved document: a $ref that points
// nowhere fails the load; one that loaded must also have a value.
func TestEveryRefResolves(t *testing.T) {
	doc := load(t)
	var missing []string
	check := func(where, ref string, resolved bool) {
		if ref != "" && !resolved {
			missing = append(missing, where+": "+ref)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			for _, p := range append(slices.Clone(item.Parameters), op.Parameters...) {
				check(where, p.Ref, p.Value != nil)
			}
			if rb := op.RequestBody; rb != nil {
				check(where, rb.Ref, rb.Value != nil)
				for _, mt := range rb.Value.Content {
					if mt.Schema != nil {
						check(where, mt.Schema.Ref, mt.Schema.Value != nil)
					}
				}
			}
			for status, r := range op.Responses.Map() {
				check(where+" "+status, r.Ref, r.Value != nil)
				if r.Value == nil {
					continue
				}
				for name, h := range r.Value.Headers {
					check(where+" "+status+" "+name, h.Ref, h.Value != nil)
				}
				for _, mt := range r.Value.Content {
					if mt.Schema != nil {
						check(where+" "+status, mt.Schema.Ref, mt.Schema.Value != nil)
					}
				}
			}
		}
	}
	for name, s := range doc.Components.Schemas {
		check("schema "+name, s.Ref, s.Value != nil)
		for prop, p := range s.Value.Properties {
			check("schema "+name+"."+prop, p.Ref, p.Value != nil)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("unresolved $refs:\n%s", strings.Join(missing, "\n"))
	}
}

// wildcardRoutes maps documented paths that echo serves through a
// wildcard route to that route: the listing is the files route with an
// empty path.
var wildcardRoutes = map[string]string{
	"/workspaces/{session}/files/": "/workspaces/{session}/files/{path}",
}

var echoParam = regexp.MustCompile(`:([A-Za-z_]+)`)

// TestEveryRouteIsDocumented compares the routes of the real server with
// the document's operations, both ways.
func TestEveryRouteIsDocumented(t *testing.T) {
	srv := api.New(api.Config{
		MaxBodyBytes: 1 << 20,
		Admission:    admission.New(admission.Config{MaxInFlight: 1}),
		Metrics:      metrics.New(metrics.Gauges{InFlight: func() float64 { return 0 }, Queued: func() float64 { return 0 }}),
	}, nil, nil, nil, nil, nil)
	e, ok := srv.Handler().(*echo.Echo)
	if !ok {
		t.Fatalf("the server's handler is a %T, not echo", srv.Handler())
	}
	served := map[string]bool{}
	for _, r := range e.Routes() {
		// Routes are told apart by path, never by handler name: a closure's
		// name depends on the compiler's inlining (echo.WrapHandler's is
		// named after its caller or after echo, by Go version).
		if openapitest.Undocumented(r.Path) {
			continue
		}
		path := echoParam.ReplaceAllString(r.Path, "{$1}")
		path = strings.Replace(path, "*", "{path}", 1)
		served[r.Method+" "+path] = true
	}
	if len(served) == 0 {
		t.Fatal("the server registers no routes")
	}

	documented := map[string]bool{}
	for path, item := range load(t).Paths.Map() {
		if openapitest.Undocumented(path) {
			t.Errorf("%s is documented but is one of the pages the document leaves out", path)
		}
		for method := range item.Operations() {
			if p, ok := wildcardRoutes[path]; ok {
				path = p
			}
			documented[method+" "+path] = true
		}
	}
	for _, r := range sortedKeys(served) {
		if !documented[r] {
			t.Errorf("the server serves %s, the document does not have it", r)
		}
	}
	for _, r := range sortedKeys(documented) {
		if !served[r] {
			t.Errorf("the document has %s, the server does not serve it", r)
		}
	}
}

// codePatterns find the error codes the API writes in its source: the
// status mapping, badRequest and literal error bodies.
var codePatterns = []*regexp.Regexp{
	regexp.MustCompile(`return [^,\n]+, "([a-z_]+)"`),
	regexp.MustCompile(`badRequest\("([a-z_]+)"`),
	regexp.MustCompile(`[cC]ode: +"([a-z_]+)"`),
	regexp.MustCompile(`Invalid\("([a-z_]+)"`),
}

// neverSent are codes internal/api names but never writes: a client that
// hung up gets no answer.
var neverSent = map[string]bool{"client_closed_request": true}

// TestEveryErrorCodeIsDocumented keeps the Error schema's enum in step
// with the codes in internal/api.
func TestEveryErrorCodeIsDocumented(t *testing.T) {
	// internal/runner validates every front end's request; internal/api
	// maps its errors and writes the rest.
	var files []string
	for _, dir := range []string{"../api", "../runner"} {
		fs, err := filepath.Glob(dir + "/*.go")
		if err != nil || len(fs) == 0 {
			t.Fatalf("no sources in %s: %v", dir, err)
		}
		files = append(files, fs...)
	}
	used := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range codePatterns {
			for _, m := range re.FindAllStringSubmatch(string(b), -1) {
				used[m[1]] = true
			}
		}
	}
	if !used["unknown_runtime"] || !used["no_code"] || !used["unauthorized"] {
		t.Fatalf("the patterns no longer find the codes in internal/api (found %v)", sortedKeys(used))
	}
	code := load(t).Components.Schemas["Error"].Value.Properties["error"].Value.Properties["code"].Value
	documented := map[string]bool{}
	for _, v := range code.Enum {
		documented[v.(string)] = true
	}
	for _, c := range sortedKeys(used) {
		if !documented[c] && !neverSent[c] {
			t.Errorf("internal/api uses the error code %q; the Error schema's enum lacks it", c)
		}
	}
	for _, c := range sortedKeys(documented) {
		if !used[c] {
			t.Errorf("the Error schema documents %q; internal/api never uses it", c)
		}
	}
}

func TestServedDocumentIsTheEmbeddedOne(t *testing.T) {
	rec := httptest.NewRecorder()
	openapi.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" || rec.Body.String() != string(openapi.Document) {
		t.Fatalf("served %d %q, %d bytes", rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
