// Package playground is the small web page served at / for trying runtimes
// in a browser. It is embedded in the binary: no build step.
package playground

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent with every playground response. The page has
// no inline script or style and talks only to its own origin, so 'self' is
// enough; a script injected through output that escaped escaping still could
// not run, load anything or send data elsewhere. Images may also be data:
// URLs: an interpreter cell's PNG, JPEG and SVG results are shown that way.
// A cell's HTML result is in a sandboxed srcdoc frame, which inherits this
// policy: it cannot load anything from elsewhere either.
const ContentSecurityPolicy = "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the page and its assets.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the directory is embedded above: only a broken build gets here
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// Embedded files have no modification time, so nothing would tell a
		// browser that a new binary serves a new page: always revalidate.
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
