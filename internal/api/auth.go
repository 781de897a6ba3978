package api

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/runhost/runhost/internal/auth"
)

// callerContext is where the caller's identity is kept in the echo context.
const callerContext = "runhost.caller"

// openPaths need no key: probes must work without credentials.
var openPaths = map[string]bool{"/healthz": true, "/readyz": true, "/openapi.json": true, "/": true}

// openPrefixes need no key either: the playground's page and assets (its
// calls to the API send the key the user types in).
var openPrefixes = []string{"/playground/"}

// queryKeyNames are refused in URLs: query strings end up in logs.
var queryKeyNames = []string{"api_key", "apikey", "key", "token", "access_token"}

func unauthorized(msg string) error {
	return &apiError{status: http.StatusUnauthorized, code: "unauthorized", message: msg}
}

// authenticate checks the Bearer key and records who the caller is, for
// ownership, limits and logs. The key itself is never stored or logged.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		path := c.Request().URL.Path
		if openPaths[path] || slices.ContainsFunc(openPrefixes, func(p string) bool { return strings.HasPrefix(path, p) }) {
			return next(c)
		}
		q := c.QueryParams()
		for _, name := range queryKeyNames {
			if _, ok := q[name]; ok {
				return unauthorized("API keys are not accepted in the query string; send Authorization: Bearer <key>")
			}
		}
		if s.cfg.Keys == nil {
			anon := s.cfg.Anonymous
			if anon.Name == "" {
				anon = auth.Anonymous()
			}
			c.Set(callerContext, anon)
			return next(c)
		}
		h := c.Request().Header.Get(echo.HeaderAuthorization)
		scheme, key, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return unauthorized("missing API key: send Authorization: Bearer <key>")
		}
		id, err := s.cfg.Keys.Check(strings.TrimSpace(key))
		if errors.Is(err, auth.ErrUnauthorized) {
			return unauthorized("wrong API key")
		}
		if err != nil {
			return err
		}
		c.Set(callerContext, id)
		return next(c)
	}
}

// caller is who sent the request: the identity of its key, or the
// anonymous caller of a host without keys. A request that passed no
// authentication (the open paths) has no identity: nothing it reaches
// needs one, and it owns nothing.
func caller(c echo.Context) auth.Identity {
	id, _ := c.Get(callerContext).(auth.Identity)
	return id
}

// keyID is the name of the caller's key ("anonymous" without keys).
func keyID(c echo.Context) string { return keyOf(caller(c)) }

// keyOf is the name of id's key ("anonymous" without keys).
func keyOf(id auth.Identity) string {
	if id.Name != "" {
		return id.Name
	}
	return auth.AnonymousName
}

// operatorRoute reports whether the route pattern (echo's c.Path(), known
// once the router matched) is an operator route: /admin/*, /metrics,
// /plugins. By route, not by URL, so no spelling of a URL slips past it.
func operatorRoute(route string) bool {
	return strings.HasPrefix(route, "/admin/") || route == "/metrics" || route == "/plugins"
}

// authorize refuses the operator routes to callers that are not operators:
// a key needs the operator option in the keys file; the caller of a host
// without keys operates it. It runs after authenticate.
func authorize(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if operatorRoute(c.Path()) && !caller(c).Operator {
			return &apiError{status: http.StatusForbidden, code: "forbidden", message: "this route is for operators: the key needs the operator option in the keys file"}
		}
		return next(c)
	}
}
