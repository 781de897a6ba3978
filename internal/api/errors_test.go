package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

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

// TestStatusOf: every sentinel and typed error of the host maps to its
// status and code, wrapped as the layers wrap them.
func TestStatusOf(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("layer: %w", err) }
	cases := []struct {
		err    error
		status int
		code   string
	}{
		{badRequest("no_code", "x"), 400, "no_code"},
		{&apiError{status: 415, code: "unsupported_media_type"}, 415, "unsupported_media_type"},
		{wrap(runner.Invalid("too_many_files", "x")), 400, "too_many_files"},
		{wrap(runner.Invalid("invalid_env", "x")), 400, "invalid_env"},
		{wrap(sessions.ErrNotFound), 404, "session_not_found"},
		{wrap(sessions.ErrBusy), 409, "session_busy"},
		{wrap(sessions.ErrTooMany), 429, "too_many_sessions"},
		{wrap(executor.ErrSessionGone), 410, "session_ended"},
		{&admission.RefusedError{Err: admission.ErrBusy}, 429, "too_many_requests"},
		{&admission.RefusedError{Err: admission.ErrRateLimited}, 429, "too_many_requests"},
		{&http.MaxBytesError{Limit: 1}, 413, "body_too_large"},
		{echo.ErrNotFound, 404, "not_found"},
		{echo.ErrMethodNotAllowed, 405, "method_not_allowed"},
		{echo.ErrStatusRequestEntityTooLarge, 413, "body_too_large"},
		{echo.ErrBadGateway, 502, "http_error"},
		{wrap(&registry.UnknownRuntimeError{Name: "cobol"}), 404, "unknown_runtime"},
		{wrap(registry.ErrUnknownRuntime), 404, "unknown_runtime"},
		{wrap(runner.ErrUnknownVersion), 404, "unknown_version"},
		{wrap(pathguard.ErrUnsafePath), 400, "unsafe_path"},
		{wrap(workspace.ErrNotConfigured), 404, "workspaces_disabled"},
		{wrap(workspace.ErrBadSession), 400, "invalid_session"},
		{wrap(workspace.ErrSymlink), 400, "symlink_refused"},
		{wrap(workspace.ErrNotRegular), 400, "not_a_regular_file"},
		{wrap(workspace.ErrIsDir), 400, "is_a_directory"},
		{wrap(workspace.ErrNotDir), 400, "not_a_directory"},
		{wrap(workspace.ErrNotFound), 404, "not_found"},
		{wrap(workspace.ErrQuota), 413, "quota_exceeded"},
		{wrap(workspace.ErrTooLarge), 413, "file_too_large"},
		{wrap(&policy.ImageError{Image: "x"}), 403, "image_not_allowed"},
		{wrap(policy.ErrContextTooLarge), 413, "context_too_large"},
		{wrap(&policy.LimitError{Field: "timeout_ms"}), 400, "limit_exceeded"},
		{wrap(dockerfile.ErrRefused), 400, "dockerfile_refused"},
		{wrap(dockerfile.ErrInvalid), 400, "dockerfile_invalid"},
		{wrap(&policy.NoCommandError{Msg: "x"}), 400, "no_command"},
		{wrap(shared.Invalidf("x")), 400, "invalid_request"},
		{wrap(&policy.SpecError{Runtime: "x"}), 502, "spec_refused"},
		{wrap(registry.ErrPluginUnavailable), 502, "plugin_failed"},
		{wrap(&registry.PluginError{Runtime: "x", Err: errors.New("crash")}), 502, "plugin_failed"},
		{wrap(executor.ErrUnsupported), 501, "not_supported"},
		{wrap(executor.ErrBusy), 429, "engine_busy"},
		{wrap(executor.ErrNoCapacity), 503, "no_capacity"},
		{wrap(executor.ErrEngineUnavailable), 503, "engine_unavailable"},
		{wrap(executor.ErrImageMissing), 503, "image_missing"},
		{wrap(&policy.ImageNotFoundError{Image: "python:3.11-slim", Err: executor.ErrImageMissing}), 404, "image_not_found"},
		{wrap(outbox.ErrClientGone), 499, "client_closed_request"},
		{wrap(context.Canceled), 499, "client_closed_request"},
		{wrap(context.DeadlineExceeded), 504, "timeout"},
		{errors.New("anything else"), 500, "internal"},
	}
	for _, tc := range cases {
		if status, code := statusOf(tc.err); status != tc.status || code != tc.code {
			t.Errorf("%T %v: %d %s, want %d %s", tc.err, tc.err, status, code, tc.status, tc.code)
		}
	}
}
