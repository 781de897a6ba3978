package api

import (
	"mime"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/runhost/runhost/internal/config"
)

// The browser guard keeps web pages from driving the API. A page the
// developer visits can make the browser send requests to the host (the
// loopback host has no keys), and a DNS-rebinding page can even read the
// answers. Three rules close that, for every route:
//
//   - Host: when the host has no keys or listens on loopback, the Host
//     header must be a loopback name or address, the listen address, or a
//     name in RUNHOST_ALLOWED_HOSTS. A rebinding page's requests carry the
//     page's own host name and are refused (as Jupyter does).
//   - Cross-site: a state-changing request or a WebSocket upgrade that a
//     browser marks as coming from another site (Sec-Fetch-Site other than
//     same-origin or none, or an Origin that is not the host's own) is
//     refused, unless its origin is in RUNHOST_ALLOWED_ORIGINS.
//   - Content type: state-changing requests with a body must say
//     application/json (uploads of the files API: application/octet-stream),
//     which a page can only send after a CORS preflight the host does not
//     grant. text/plain, forms and multipart, the types a page may send
//     freely, are refused.
type browserGuard struct {
	checkHost    bool
	laxRoutes    map[string]bool // routes that take text/plain from non-browsers
	allowedHosts map[string]bool // lower case, no port
	listenHost   string          // lower case, no port; "" when unknown
	origins      map[string]bool // normalized (config.NormalizeOrigin)
}

// GuardConfig is what the browser guard needs from the host's settings.
type GuardConfig struct {
	// ListenAddr is the address the host listens on (RUNHOST_ADDR).
	ListenAddr string
	// HasKeys says whether callers need an API key.
	HasKeys bool
	// AllowedOrigins are origins besides the host's own that may send
	// state-changing requests (RUNHOST_ALLOWED_ORIGINS).
	AllowedOrigins []string
	// AllowedHosts are Host names accepted besides loopback and the listen
	// address (RUNHOST_ALLOWED_HOSTS); "*" turns the Host check off.
	AllowedHosts []string
	// PistonAllowTextPlain lets Piston's execute take text/plain (or no
	// type) from requests without browser headers: the npm piston-client
	// sends its JSON that way (RUNHOST_PISTON_ALLOW_TEXT_PLAIN).
	PistonAllowTextPlain bool
}

// rawBodyRoutes take any bytes as their body: application/octet-stream
// (and application/json) are accepted there. Keyed by method and echo route.
var rawBodyRoutes = map[string]bool{
	http.MethodPut + " /workspaces/:session/files/*": true,
}

// pistonExecute is Piston's execute route, which may take text/plain
// (GuardConfig.PistonAllowTextPlain).
const pistonExecute = http.MethodPost + " /api/v2/execute"

func newBrowserGuard(cfg GuardConfig) *browserGuard {
	g := &browserGuard{allowedHosts: map[string]bool{}, origins: map[string]bool{}, laxRoutes: map[string]bool{}}
	if cfg.PistonAllowTextPlain {
		g.laxRoutes[pistonExecute] = true
	}
	listenHost, _, err := net.SplitHostPort(cfg.ListenAddr)
	if err == nil {
		g.listenHost = normalHost(listenHost)
	}
	loopback := err == nil && isLoopbackHost(g.listenHost)
	g.checkHost = !cfg.HasKeys || loopback || len(cfg.AllowedHosts) > 0
	for _, h := range cfg.AllowedHosts {
		if h == "*" {
			g.checkHost = false
		}
		g.allowedHosts[normalHost(h)] = true
	}
	for _, o := range cfg.AllowedOrigins {
		if n, err := config.NormalizeOrigin(o); err == nil {
			g.origins[n] = true
		}
	}
	return g
}

// middleware applies the guard to every request.
func (g *browserGuard) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := g.check(c.Request(), c.Path()); err != nil {
			return err
		}
		return next(c)
	}
}

// check applies the three rules to r, served by the echo route route.
func (g *browserGuard) check(r *http.Request, route string) error {
	if g.checkHost && !g.hostAllowed(r.Host) {
		return &apiError{status: http.StatusForbidden, code: "host_not_allowed",
			message: "the Host header does not name this host (a DNS-rebinding page?); use localhost or the listen address, or add the name to RUNHOST_ALLOWED_HOSTS"}
	}
	if !stateChanging(r) && !isWebSocket(r) {
		return nil
	}
	if err := g.checkSite(r); err != nil {
		return err
	}
	if isWebSocket(r) && r.Method == http.MethodGet {
		return nil
	}
	if g.laxRoutes[r.Method+" "+route] && !fromBrowser(r) && plainOrNone(r) {
		return nil
	}
	return checkContentType(r, rawBodyRoutes[r.Method+" "+route])
}

// fromBrowser: every browser in use sends Origin on a state-changing
// request (null when it hides it), and Sec-Fetch-Site besides.
func fromBrowser(r *http.Request) bool {
	return r.Header.Get("Origin") != "" || r.Header.Get("Sec-Fetch-Site") != ""
}

// plainOrNone: a body sent as text/plain, or without a type.
func plainOrNone(r *http.Request) bool {
	ct := r.Header.Get(echo.HeaderContentType)
	if ct == "" {
		return true
	}
	media, _, err := mime.ParseMediaType(ct)
	return err == nil && media == "text/plain"
}

// checkSite refuses a request a browser sent on behalf of another site.
func (g *browserGuard) checkSite(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin != "" {
		if n, err := config.NormalizeOrigin(origin); err == nil && g.origins[n] {
			return nil
		}
	}
	site := strings.ToLower(strings.TrimSpace(r.Header.Get("Sec-Fetch-Site")))
	crossSite := site != "" && site != "same-origin" && site != "none"
	if origin != "" && !sameOrigin(r, origin) {
		crossSite = true
	}
	if crossSite {
		return &apiError{status: http.StatusForbidden, code: "cross_site_request",
			message: "cross-site request refused: a page of another site may not call this host (an operator can allow an origin with RUNHOST_ALLOWED_ORIGINS)"}
	}
	return nil
}

// sameOrigin reports whether origin is the host's own: the request's
// scheme and Host.
func sameOrigin(r *http.Request, origin string) bool {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	own, err := config.NormalizeOrigin(scheme + "://" + r.Host)
	if err != nil {
		return false
	}
	got, err := config.NormalizeOrigin(origin)
	return err == nil && got == own
}

// checkContentType wants a JSON body (or, where raw is set, an
// octet-stream one). A request without a body needs no type, but a type it
// names must still be one of these.
func checkContentType(r *http.Request, raw bool) error {
	want := "application/json"
	if raw {
		want = "application/octet-stream (or application/json)"
	}
	ct := r.Header.Get(echo.HeaderContentType)
	if ct == "" {
		if r.ContentLength == 0 {
			return nil
		}
		return unsupportedMediaType("the request has a body but no Content-Type; send Content-Type: " + want)
	}
	media, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return unsupportedMediaType("Content-Type " + quoteShort(ct) + " is not a media type; send Content-Type: " + want)
	}
	if media == "application/json" || raw && media == "application/octet-stream" {
		return nil
	}
	return unsupportedMediaType("Content-Type " + quoteShort(media) + " is not accepted; send Content-Type: " + want)
}

func unsupportedMediaType(msg string) error {
	return &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", message: msg}
}

// quoteShort quotes a header value for a message, cut to a sane length.
func quoteShort(s string) string {
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return `"` + strings.ToValidUTF8(s, "?") + `"`
}

// stateChanging is every method but the safe ones.
func stateChanging(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// isWebSocket reports a WebSocket upgrade (the Piston /connect route).
func isWebSocket(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// hostAllowed reports whether a Host header names this host.
func (g *browserGuard) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	host = normalHost(host)
	switch {
	case host == "":
		return false
	case isLoopbackHost(host), host == g.listenHost, g.allowedHosts[host]:
		return true
	}
	return false
}

// isLoopbackHost: localhost, *.localhost (RFC 6761: always loopback),
// 127.0.0.0/8 and ::1.
func isLoopbackHost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// normalHost lower-cases a host name and drops a trailing dot (an
// absolute name) and IPv6 brackets.
func normalHost(h string) string {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return h
}

// allowedOrigins lists the normalized allowed origins (for CORS and the
// WebSocket's origin check), sorted.
func (g *browserGuard) allowedOrigins() []string {
	out := make([]string, 0, len(g.origins))
	for o := range g.origins {
		out = append(out, o)
	}
	slices.Sort(out)
	return out
}
