package api

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/mcp"
	"github.com/runhost/runhost/internal/runner"
	"github.com/runhost/runhost/internal/sessions"
)

// mcpRoute serves the Model Context Protocol at /mcp (internal/mcp):
// behind the same middleware as every route (browser guard, API key), for
// the caller the key names, with the HTTP API's error codes and audit log.
func (s *Server) mcpRoute() {
	h := mcp.New(mcp.Deps{
		Runner:     s.runner,
		Sessions:   s.sessions,
		Workspaces: s.workspaces,
		Admission:  s.cfg.Admission,
		StartSession: func(ctx context.Context, id auth.Identity, a mcp.SessionArgs) (sessions.Info, error) {
			return s.startSession(ctx, id, SessionRequest{Runtime: a.Runtime, Version: a.Version, Mode: a.Mode, Workspace: a.Workspace, TTLS: a.TTLS, MemoryMB: a.MemoryMB, CPUs: a.CPUs})
		},
		MaxBodyBytes: s.cfg.MaxBodyBytes,
		Code:         statusOf,
		Audit:        s.auditTool,
		Log:          s.log.Named("mcp"),
	})
	s.echo.Match([]string{http.MethodGet, http.MethodPost, http.MethodDelete}, "/mcp", func(c echo.Context) error {
		r := c.Request()
		h.ServeHTTP(c.Response(), r.WithContext(mcp.WithCaller(r.Context(), caller(c), requestID(c))))
		return nil
	})
}

// auditTool records a tool call that ran code, as audit does a run.
func (s *Server) auditTool(ctx context.Context, req runner.Request, res runner.Result, err error, d time.Duration) {
	s.auditRun(s.log.With("request_id", mcp.RequestID(ctx), "front_end", "mcp"), keyOf(req.Caller), req, res, err, d)
}
