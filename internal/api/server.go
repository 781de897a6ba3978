// Package api is runhost's HTTP interface, built on echo: routes, the JSON
// shapes of requests and responses, and the mapping from errors to statuses.
package api

import (
	"cmp"
	"context"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/runhost/runhost/internal/admission"
	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/metrics"
	"github.com/runhost/runhost/internal/openapi"
	"github.com/runhost/runhost/internal/piston"
	"github.com/runhost/runhost/internal/playground"
	"github.com/runhost/runhost/internal/pluginhost"
	"github.com/runhost/runhost/internal/registry"
	"github.com/runhost/runhost/internal/runner"
	"github.com/runhost/runhost/internal/sessions"
	"github.com/runhost/runhost/internal/workspace"
)

// Config configures the HTTP layer.
type Config struct {
	MaxBodyBytes int64
	Keys         *auth.Keys            // nil: no keys (loopback or explicitly allowed)
	Admission    *admission.Controller // caps runs in flight
	Metrics      *metrics.Metrics

	// Anonymous is the caller of a host without keys (its network grants
	// come from settings); zero means auth.Anonymous().
	Anonymous auth.Identity

	// Guard keeps web pages from driving the API (browserguard.go).
	Guard GuardConfig
	// WriteTimeout bounds each write of an answer (0: none).
	WriteTimeout time.Duration
	// MaxStreamBufferBytes bounds the output a streaming run holds for a
	// slow client (server-sent events, the Piston WebSocket).
	MaxStreamBufferBytes int
	// MaxStdinBytes and MaxWSMessageBytes bound stdin of the Piston
	// WebSocket: bytes waiting for the program, and one message after init.
	MaxStdinBytes     int64
	MaxWSMessageBytes int64
}

// Defaults for a Config that leaves the bounds unset (tests).
const (
	defaultStreamBufferBytes = 1 << 20
	defaultStdinBytes        = 1 << 20
	defaultWSMessageBytes    = 64 << 10
)

// Server serves the API.
type Server struct {
	cfg        Config
	echo       *echo.Echo
	runner     *runner.Runner
	registry   *registry.Registry
	workspaces *workspace.Store
	sessions   *sessions.Manager
	log        hclog.Logger
}

// New builds the routes.
func New(cfg Config, run *runner.Runner, reg *registry.Registry, ws *workspace.Store, sess *sessions.Manager, log hclog.Logger) *Server {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	cfg.MaxStreamBufferBytes = cmp.Or(cfg.MaxStreamBufferBytes, defaultStreamBufferBytes)
	cfg.MaxStdinBytes = cmp.Or(cfg.MaxStdinBytes, defaultStdinBytes)
	cfg.MaxWSMessageBytes = cmp.Or(cfg.MaxWSMessageBytes, defaultWSMessageBytes)
	s := &Server{cfg: cfg, echo: echo.New(), runner: run, registry: reg, workspaces: ws, sessions: sess, log: log}
	guard := newBrowserGuard(cfg.Guard)
	e := s.echo
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.Use(middleware.RequestID())
	e.Use(withRequestID)
	e.Use(s.writeDeadlines)
	e.Use(middleware.Recover())
	e.Use(s.logRequests)
	e.Use(guard.middleware)
	if origins := guard.allowedOrigins(); len(origins) > 0 {
		// Pages of an allowed origin need CORS to send JSON with a key.
		e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
			AllowOrigins:  origins,
			AllowMethods:  []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete},
			AllowHeaders:  []string{echo.HeaderAuthorization, echo.HeaderContentType, echo.HeaderAccept},
			ExposeHeaders: []string{echo.HeaderXRequestID, "Retry-After"},
			MaxAge:        600,
		}))
	}
	e.Use(s.authenticate)
	e.Use(authorize) // operator routes

	e.GET("/healthz", s.healthz)
	e.HEAD("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.HEAD("/readyz", s.readyz)
	e.GET("/runtimes", s.listRuntimes)
	e.GET("/runtimes/:name", s.getRuntime)
	e.POST("/runtimes/:name/run", s.run)
	e.GET("/plugins", s.listPlugins)
	e.POST("/admin/plugins/reload", s.reloadPlugins)
	e.GET("/metrics", echo.WrapHandler(cfg.Metrics.Handler()))
	s.workspaceRoutes()
	s.sessionRoutes()
	s.mcpRoute()
	e.GET("/openapi.json", echo.WrapHandler(openapi.Handler()))
	e.GET("/", echo.WrapHandler(playground.Handler()))
	e.GET("/playground/*", echo.WrapHandler(http.StripPrefix("/playground", playground.Handler())))
	piston.Register(e.Group("/api/v2"), piston.Deps{
		Runner: run, Admission: cfg.Admission, KeyID: keyID, MaxBodyBytes: cfg.MaxBodyBytes, Log: log.Named("piston"),
		Audit:          s.audit,
		AllowedOrigins: guard.allowedOrigins(),
		WriteTimeout:   cfg.WriteTimeout,
		MaxStreamBytes: cfg.MaxStreamBufferBytes,
		MaxStdinBytes:  cfg.MaxStdinBytes,
		MaxMessageSize: cfg.MaxWSMessageBytes,
	})
	return s
}

// Handler is the server's http.Handler.
func (s *Server) Handler() http.Handler { return s.echo }

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	if err := s.runner.Ready(ctx); err != nil {
		return c.JSON(http.StatusServiceUnavailable, Error{ErrorBody{Code: "not_ready", Message: err.Error()}})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) listPlugins(c echo.Context) error {
	return c.JSON(http.StatusOK, s.registry.Reports())
}

// reloadPlugins rescans the plugin directory and answers with the result.
func (s *Server) reloadPlugins(c echo.Context) error {
	if err := s.registry.Reload(c.Request().Context()); err != nil {
		return err
	}
	s.cfg.Metrics.Plugins(s.registry.Names())
	return c.JSON(http.StatusOK, s.registry.Reports())
}

// withRequestID puts the request id into the request's context, from where
// plugins (through gRPC metadata) log it.
func withRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		c.SetRequest(r.WithContext(pluginhost.WithRequestID(r.Context(), requestID(c))))
		return next(c)
	}
}

func requestID(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXRequestID)
}

func (s *Server) requestLog(c echo.Context) hclog.Logger {
	return s.log.With("request_id", requestID(c))
}

// logRequests writes one line per request.
func (s *Server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		s.requestLog(c).Info("request",
			"key", keyID(c),
			"method", c.Request().Method,
			"path", c.Request().URL.Path,
			"status", c.Response().Status,
			"duration_ms", time.Since(start).Milliseconds())
		return nil
	}
}
