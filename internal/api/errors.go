package api

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/runhost/runhost/internal/admission"
	"github.com/runhost/runhost/internal/dockerfile"
	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/outbox"
	"github.com/runhost/runhost/internal/pathguard"
	"github.com/runhost/runhost/internal/policy"
	"github.com/runhost/runhost/internal/registry"
	"github.com/runhost/runhost/internal/runner"
	"github.com/runhost/runhost/internal/sessions"
	"github.com/runhost/runhost/internal/workspace"
	"github.com/runhost/runhost/shared"
)

// Error is the body of every error response: {"error": {"code", "message"}}.
type Error struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody is a machine-readable code and a message for humans.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// apiError is an error that already knows its HTTP status and code.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.message }

func badRequest(code, message string) error {
	return &apiError{status: http.StatusBadRequest, code: code, message: message}
}

// statusOf maps an error from anywhere in the host to a status and code.
// It is the one place that knows which failure is whose fault.
func statusOf(err error) (int, string) {
	var ae *apiError
	var ie *runner.InvalidError
	var he *echo.HTTPError
	var maxBytes *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae.status, ae.code
	case errors.As(err, &ie): // a request's shape, from any front end
		return http.StatusBadRequest, ie.Code
	case errors.Is(err, sessions.ErrNotFound):
		return http.StatusNotFound, "session_not_found"
	case errors.Is(err, sessions.ErrBusy):
		return http.StatusConflict, "session_busy"
	case errors.Is(err, sessions.ErrTooMany):
		return http.StatusTooManyRequests, "too_many_sessions"
	case errors.Is(err, executor.ErrSessionGone):
		return http.StatusGone, "session_ended"
	case errors.Is(err, admission.ErrBusy), errors.Is(err, admission.ErrRateLimited):
		return http.StatusTooManyRequests, "too_many_requests"
	case errors.As(err, &maxBytes):
		return http.StatusRequestEntityTooLarge, "body_too_large"
	case errors.As(err, &he):
		switch he.Code {
		case http.StatusNotFound:
			return he.Code, "not_found"
		case http.StatusMethodNotAllowed:
			return he.Code, "method_not_allowed"
		case http.StatusRequestEntityTooLarge:
			return he.Code, "body_too_large"
		}
		return he.Code, "http_error"
	case errors.Is(err, registry.ErrUnknownRuntime):
		return http.StatusNotFound, "unknown_runtime"
	case errors.Is(err, runner.ErrUnknownVersion):
		return http.StatusNotFound, "unknown_version"
	case errors.Is(err, pathguard.ErrUnsafePath):
		return http.StatusBadRequest, "unsafe_path"
	case errors.Is(err, workspace.ErrNotConfigured):
		return http.StatusNotFound, "workspaces_disabled"
	case errors.Is(err, workspace.ErrBadSession):
		return http.StatusBadRequest, "invalid_session"
	case errors.Is(err, workspace.ErrSymlink):
		return http.StatusBadRequest, "symlink_refused"
	case errors.Is(err, workspace.ErrNotRegular):
		return http.StatusBadRequest, "not_a_regular_file"
	case errors.Is(err, workspace.ErrIsDir):
		return http.StatusBadRequest, "is_a_directory"
	case errors.Is(err, workspace.ErrNotDir):
		return http.StatusBadRequest, "not_a_directory"
	case errors.Is(err, workspace.ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, workspace.ErrQuota):
		return http.StatusRequestEntityTooLarge, "quota_exceeded"
	case errors.Is(err, workspace.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, "file_too_large"
	case errors.Is(err, policy.ErrImageNotAllowed):
		return http.StatusForbidden, "image_not_allowed"
	case errors.Is(err, policy.ErrNetworkNotAllowed):
		return http.StatusForbidden, "network_not_allowed"
	case errors.Is(err, policy.ErrBadNetwork):
		return http.StatusBadRequest, "invalid_network"
	case errors.Is(err, policy.ErrContextTooLarge):
		return http.StatusRequestEntityTooLarge, "context_too_large"
	case errors.Is(err, policy.ErrLimitExceeded):
		return http.StatusBadRequest, "limit_exceeded"
	case errors.Is(err, dockerfile.ErrRefused):
		return http.StatusBadRequest, "dockerfile_refused"
	case errors.Is(err, dockerfile.ErrInvalid):
		return http.StatusBadRequest, "dockerfile_invalid"
	case errors.Is(err, policy.ErrNoCommand):
		return http.StatusBadRequest, "no_command"
	case errors.Is(err, shared.ErrInvalidRequest):
		return http.StatusBadRequest, "invalid_request"
	case errors.Is(err, policy.ErrSpecRefused):
		return http.StatusBadGateway, "spec_refused"
	case errors.Is(err, runner.ErrInterpreterFailed):
		return http.StatusBadGateway, "interpreter_failed"
	case errors.Is(err, registry.ErrPluginUnavailable), errors.As(err, new(*registry.PluginError)):
		return http.StatusBadGateway, "plugin_failed"
	case errors.Is(err, executor.ErrUnsupported):
		return http.StatusNotImplemented, "not_supported"
	case errors.Is(err, executor.ErrBusy):
		return http.StatusTooManyRequests, "engine_busy"
	case errors.Is(err, executor.ErrNoCapacity):
		return http.StatusServiceUnavailable, "no_capacity"
	case errors.Is(err, executor.ErrEngineUnavailable):
		return http.StatusServiceUnavailable, "engine_unavailable"
	case errors.Is(err, policy.ErrImageNotFound):
		return http.StatusNotFound, "image_not_found"
	case errors.Is(err, executor.ErrImageMissing):
		return http.StatusServiceUnavailable, "image_missing"
	case errors.Is(err, outbox.ErrClientGone), errors.Is(err, context.Canceled):
		return 499, "client_closed_request" // nginx's code; nobody is listening
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "timeout"
	}
	return http.StatusInternalServerError, "internal"
}

// handleError is echo's HTTPErrorHandler: every error becomes the JSON shape.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, code := statusOf(err)
	msg := err.Error()
	var he *echo.HTTPError
	if errors.As(err, &he) {
		if m, ok := he.Message.(string); ok {
			msg = m
		}
	}
	log := s.requestLog(c)
	if status >= 500 {
		log.Error("request failed", "status", status, "code", code, "error", err)
		if status == http.StatusInternalServerError {
			msg = "internal error; the host's log has the details under request id " + requestID(c)
		}
	} else {
		log.Debug("request refused", "status", status, "code", code, "error", err)
	}
	if status == 499 {
		return
	}
	if status == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="runhost"`)
	}
	var refused *admission.RefusedError
	if errors.As(err, &refused) {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(refused.RetryAfter.Seconds()))))
	}
	var body any = Error{ErrorBody{Code: code, Message: msg}}
	if p := c.Request().URL.Path; p == "/api/v2" || strings.HasPrefix(p, "/api/v2/") {
		// Piston's clients read Piston's shape, whoever refused them; the
		// code rides along for those that know runhost's.
		body = struct {
			Message string    `json:"message"`
			Error   ErrorBody `json:"error"`
		}{msg, ErrorBody{Code: code, Message: msg}}
	}
	if err := c.JSON(status, body); err != nil {
		log.Debug("write error response", "error", err)
	}
}
