package api

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/runhost/runhost/internal/auth"
)

// keyIDContext is where the caller's key id is kept in the echo context.
const keyIDContext = "runhost.key_id"

// anonymous is the key id of callers of a host without keys.
const anonymous = "anonymous"

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

// authenticate checks the Bearer key and records its id for limits and logs.
// The key itself is never stored or logged.
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
			c.Set(keyIDContext, anonymous)
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
		c.Set(keyIDContext, id)
		return next(c)
	}
}

// keyID is the id of the caller's key ("anonymous" without keys).
func keyID(c echo.Context) string {
	if id, ok := c.Get(keyIDContext).(string); ok {
		return id
	}
	return anonymous
}
