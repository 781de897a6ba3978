// Package openapi holds the OpenAPI 3.1 document of runhost's native API,
// embedded in the binary and served at /openapi.json.
package openapi

import (
	_ "embed"
	"net/http"
)

//go:embed openapi.json
var Document []byte

// Handler serves the document.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(Document)
	})
}
