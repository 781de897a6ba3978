package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/policy"
	"github.com/runhost/runhost/internal/runner"
	"github.com/runhost/runhost/internal/sessions"
)

// SessionRequest is the body of POST /sessions.
type SessionRequest struct {
	Runtime   string  `json:"runtime"`
	Version   string  `json:"version,omitempty"`
	Mode      string  `json:"mode,omitempty"` // "plain" (the default) or "interpreter"
	Workspace string  `json:"workspace,omitempty"`
	TTLS      int64   `json:"ttl_s,omitempty"` // idle time before it is removed
	MemoryMB  int64   `json:"memory_mb,omitempty"`
	CPUs      float64 `json:"cpus,omitempty"`
	// Network: hosts the session's runs may reach (as a run's network).
	Network *Network `json:"network,omitempty"`
}

// maxTTLS bounds ttl_s before it becomes a duration: far above any
// session lifetime (sessions.Manager refuses what is above the host's),
// low enough not to overflow.
const maxTTLS = 1 << 30

func (s *Server) sessionRoutes() {
	s.echo.POST("/sessions", s.createSession)
	s.echo.GET("/sessions", s.listSessions)
	s.echo.GET("/sessions/:id", s.getSession)
	s.echo.DELETE("/sessions/:id", s.deleteSession)
	s.echo.POST("/sessions/:id/run", s.runInSession)
}

func (s *Server) createSession(c echo.Context) error {
	var req SessionRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	info, err := s.startSession(c.Request().Context(), caller(c), req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, info)
}

// startSession starts a session for id: POST /sessions, and MCP's
// create_session, whose arguments are this body.
func (s *Server) startSession(ctx context.Context, id auth.Identity, req SessionRequest) (sessions.Info, error) {
	spec := runner.SessionSpec{
		Caller:    id,
		Runtime:   req.Runtime,
		Version:   req.Version,
		Mode:      req.Mode,
		Workspace: req.Workspace,
		Limits:    runner.RequestedLimits(0, float64(req.MemoryMB), req.CPUs),
		Network:   (*policy.NetworkRequest)(req.Network),
	}
	if err := spec.Validate(); err != nil {
		return sessions.Info{}, err
	}
	if req.TTLS < 0 || req.TTLS > maxTTLS {
		return sessions.Info{}, &policy.LimitError{Field: "ttl_s", Msg: fmt.Sprintf("%d is out of range", req.TTLS)}
	}
	release, err := s.cfg.Admission.Acquire(ctx, keyOf(id))
	if err != nil {
		return sessions.Info{}, err
	}
	defer release() // the session is made: its answer is written without the slot
	return s.sessions.Create(ctx, keyOf(id), spec, time.Duration(req.TTLS)*time.Second)
}

// SessionList is the answer of GET /sessions: the caller's sessions.
type SessionList struct {
	Sessions []sessions.Info `json:"sessions"`
}

func (s *Server) listSessions(c echo.Context) error {
	return c.JSON(http.StatusOK, SessionList{Sessions: s.sessions.List(keyID(c))})
}

func (s *Server) getSession(c echo.Context) error {
	info, err := s.sessions.Get(keyID(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, info)
}

func (s *Server) deleteSession(c echo.Context) error {
	if err := s.sessions.Delete(keyID(c), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) runInSession(c echo.Context) (err error) {
	start := time.Now()
	var res runner.Result
	var rreq runner.Request
	defer func() { s.audit(c, rreq, res, err, time.Since(start)) }()

	var req RunRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if rreq, err = toRunnerRequest("", req); err != nil {
		return err
	}
	rreq.Caller = caller(c)
	release, err := s.cfg.Admission.Acquire(c.Request().Context(), keyID(c))
	if err != nil {
		return err
	}
	defer release()
	res, err = s.answer(c, rreq, release, func(ctx context.Context, req runner.Request) (runner.Result, error) {
		return s.sessions.Run(ctx, keyID(c), c.Param("id"), req)
	})
	return err
}
