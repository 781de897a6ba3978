// Package piston serves Piston's v2 API (engineer-man/piston) on top of
// runhost's runtimes, so clients written for Piston work unchanged.
package piston

import (
	"github.com/hashicorp/go-hclog"
	"github.com/labstack/echo/v4"

	"github.com/runhost/runhost/internal/admission"
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
}

// Register mounts the Piston routes on g (the host mounts it at /api/v2).
func Register(g *echo.Group, d Deps) {}
