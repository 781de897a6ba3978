// Package openapitest checks HTTP traffic against runhost's OpenAPI
// document, so the document cannot drift from what the server does. It is
// for tests only: the host binary does not link kin-openapi.
package openapitest

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/runhost/runhost/internal/openapi"
)

// Load parses the embedded document with every $ref resolved.
func Load(ctx context.Context) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	loader.Context = ctx
	doc, err := loader.LoadFromData(openapi.Document)
	if err != nil {
		return nil, fmt.Errorf("load openapi.json: %w", err)
	}
	return doc, nil
}

// Undocumented reports whether path is one of the pages the host serves
// beside its API (the playground), or MCP's JSON-RPC endpoint (described in
// docs/mcp.md: the protocol's own schema, not an HTTP API's), which the
// document leaves out.
func Undocumented(path string) bool {
	return path == "/" || path == "/mcp" || strings.HasPrefix(path, "/playground/")
}

// Unchecked reports whether traffic to path is not checked against the
// document: the undocumented pages, and Piston's WebSocket (documented, but
// an upgraded connection has no response body to check).
func Unchecked(path string) bool {
	return Undocumented(path) || path == "/api/v2/connect"
}

// restParam is the path parameter that takes the rest of the path, slashes
// included, when it is a template's last segment: a workspace file's path.
// OpenAPI has no multi-segment parameter, so the document says so in
// words and this matcher follows it.
const restParam = "{path}"

// match finds the documented path template of an escaped request path and
// the values of its parameters (unescaped once, as the server does).
func match(doc *openapi3.T, escapedPath string) (string, map[string]string, bool) {
	got := strings.Split(escapedPath, "/")
	var best string
	var bestParams map[string]string
	bestLiterals := -1
	for tmpl := range doc.Paths.Map() {
		params, literals, ok := matchTemplate(strings.Split(tmpl, "/"), got)
		if ok && literals > bestLiterals { // the most literal template wins, as in echo
			best, bestParams, bestLiterals = tmpl, params, literals
		}
	}
	return best, bestParams, bestLiterals >= 0
}

func matchTemplate(want, got []string) (map[string]string, int, bool) {
	params := map[string]string{}
	literals := 0
	for i, w := range want {
		isParam := strings.HasPrefix(w, "{") && strings.HasSuffix(w, "}")
		if isParam && w == restParam && i == len(want)-1 {
			if i >= len(got) {
				return nil, 0, false
			}
			rest := strings.Join(got[i:], "/")
			if rest == "" {
				return nil, 0, false
			}
			params[w[1:len(w)-1]] = unescape(rest)
			return params, literals, true
		}
		if i >= len(got) {
			return nil, 0, false
		}
		switch {
		case isParam:
			if got[i] == "" {
				return nil, 0, false
			}
			params[w[1:len(w)-1]] = unescape(got[i])
		case w == got[i]:
			literals++
		default:
			return nil, 0, false
		}
	}
	if len(want) != len(got) {
		return nil, 0, false
	}
	return params, literals, true
}

func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}
