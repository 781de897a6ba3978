// Package piston serves Piston's v2 API (engineer-man/piston) on top of
// runhost's runtimes, so clients written for Piston work unchanged:
//
//	GET  /api/v2/runtimes   the runtimes, as Piston languages and semver versions
//	GET  /api/v2/packages   the same as Piston's package list
//	POST /api/v2/execute    run files, answer {language, version, run}
//	GET  /api/v2/connect    the interactive WebSocket protocol
//
// Runs go through the host's admission and runner exactly as native runs
// do; this package only translates shapes and messages.
package piston

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/labstack/echo/v4"

	"github.com/runhost/runhost/internal/admission"
	"github.com/runhost/runhost/internal/outbox"
	"github.com/runhost/runhost/internal/policy"
	"github.com/runhost/runhost/internal/runner"
)

// Deps are what the Piston routes use from the host.
type Deps struct {
	Runner    *runner.Runner
	Admission *admission.Controller
	// KeyID names the caller's API key (for admission); routes under the
	// group are already authenticated.
	KeyID        func(echo.Context) string
	MaxBodyBytes int64
	Log          hclog.Logger
	// Audit, when set, records every run like a native one (the audit log
	// line and the run metrics).
	Audit func(c echo.Context, req runner.Request, res runner.Result, err error, d time.Duration)

	// AllowedOrigins are origins besides the host's own whose pages may
	// open the WebSocket (normalized; the host's browser guard has checked
	// the upgrade request by the same rule).
	AllowedOrigins []string
	// WriteTimeout bounds each WebSocket message to a client that does not
	// read (default 10 s).
	WriteTimeout time.Duration
	// MaxStreamBytes bounds the output a WebSocket run holds for a slow
	// client (default 1 MiB).
	MaxStreamBytes int
	// MaxStdinBytes bounds the stdin waiting for the program (default
	// 1 MiB); MaxMessageSize bounds one message after init (default 64 KiB).
	MaxStdinBytes  int64
	MaxMessageSize int64
}

// Register mounts the Piston routes on g (the host mounts it at /api/v2).
func Register(g *echo.Group, d Deps) {
	if d.Log == nil {
		d.Log = hclog.NewNullLogger()
	}
	if d.KeyID == nil {
		d.KeyID = func(echo.Context) string { return "" }
	}
	if d.Audit == nil {
		d.Audit = func(echo.Context, runner.Request, runner.Result, error, time.Duration) {}
	}
	d.WriteTimeout = cmp.Or(d.WriteTimeout, 10*time.Second)
	d.MaxStreamBytes = cmp.Or(d.MaxStreamBytes, 1<<20)
	d.MaxStdinBytes = cmp.Or(d.MaxStdinBytes, 1<<20)
	d.MaxMessageSize = cmp.Or(d.MaxMessageSize, 64<<10)
	h := &handler{d: d}
	g.GET("/runtimes", h.runtimes)
	g.GET("/packages", h.packages)
	g.POST("/execute", h.execute)
	g.GET("/connect", h.connect)
}

type handler struct {
	d Deps
}

func (h *handler) entries(ctx context.Context) []entry {
	return catalog(h.d.Runner.Runtimes(ctx))
}

func (h *handler) runtimes(c echo.Context) error {
	out := []Runtime{}
	for _, e := range h.entries(c.Request().Context()) {
		out = append(out, e.Runtime)
	}
	return c.JSON(http.StatusOK, out)
}

// Package is an entry of Piston's package list.
type Package struct {
	Language        string `json:"language"`
	LanguageVersion string `json:"language_version"`
	Installed       bool   `json:"installed"`
}

// packages lists runtimes as Piston's packages; installing and removing
// them is not offered (images are built with `make images`).
func (h *handler) packages(c echo.Context) error {
	infos := h.d.Runner.Runtimes(c.Request().Context())
	out := []Package{}
	for _, e := range catalog(infos) {
		installed := false
		for _, info := range infos {
			if info.Name == e.name {
				installed = info.Installed[e.version]
			}
		}
		out = append(out, Package{Language: e.Language, LanguageVersion: e.Version, Installed: installed})
	}
	return c.JSON(http.StatusOK, out)
}

func (h *handler) execute(c echo.Context) error {
	ctx := c.Request().Context()
	var req jobRequest
	if err := h.decode(c, &req); err != nil {
		return &refusal{err}
	}
	j, err := newJob(req, h.entries(ctx), false)
	if err != nil {
		return &refusal{err}
	}
	release, err := h.d.Admission.Acquire(ctx, h.d.KeyID(c))
	if err != nil {
		return &refusal{err}
	}
	defer release()
	var out interleaver
	j.req.Output = out.write
	start := time.Now()
	res, err := h.d.Runner.Run(ctx, j.req)
	release() // the run is over: its slot is free before the answer is written
	if err != nil {
		h.d.Audit(c, j.req, res, err, time.Since(start))
		return &refusal{err}
	}
	if werr := c.JSON(http.StatusOK, Result{Language: j.entry.Language, Version: j.entry.Version, Run: stage(res, out.bytes())}); werr != nil {
		err = fmt.Errorf("%w: %w", outbox.ErrClientGone, werr)
	}
	h.d.Audit(c, j.req, res, err, time.Since(start))
	return nil
}

// decode reads one JSON value of bounded size (the host's browser guard
// has made sure it is sent as application/json, or as text/plain by a
// client that is no browser with RUNHOST_PISTON_ALLOW_TEXT_PLAIN). A body that is not an
// object is treated as an empty one, so it gets Piston's message about the
// first missing field.
func (h *handler) decode(c echo.Context, req *jobRequest) error {
	body := http.MaxBytesReader(c.Response(), c.Request().Body, h.d.MaxBodyBytes)
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	if len(b) == 0 {
		return nil
	}
	var raw json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return runner.Invalid("malformed_json", "request body is not valid JSON: %v", err)
	}
	if raw[0] != '{' {
		return nil
	}
	return json.Unmarshal(raw, req)
}

// refusal is err in Piston's words. The host's error handler classifies
// the error it wraps (one mapping for every front end) and answers on
// /api/v2 in Piston's shape, {"message"}, with runhost's code beside it.
type refusal struct{ err error }

func (e *refusal) Error() string { return message(e.err) }
func (e *refusal) Unwrap() error { return e.err }

// message is err as Piston says it: a limit in Piston's fields and units.
func message(err error) string {
	var le *policy.LimitError
	if errors.As(err, &le) {
		return limitMessage(le)
	}
	var fe *runner.FileError
	if errors.As(err, &fe) {
		return fmt.Sprintf("files[%d].name: %v", fe.Index, fe.Err)
	}
	return err.Error()
}

// gone reports whether err means the client went away: it gets no answer.
func gone(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, outbox.ErrClientGone)
}
