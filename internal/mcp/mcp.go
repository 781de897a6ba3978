// Package mcp serves runhost to agents over the Model Context Protocol:
// Streamable HTTP, with the official Go SDK. It is a front end like the
// native API and Piston's: it decodes its own wire format (a tool call's
// arguments) and calls the same runner, sessions and workspace store as
// they do, for the caller the host has authenticated, with the same
// admission, limits and audit log.
//
// The server is stateless (StreamableHTTPOptions.Stateless): every POST
// is answered on its own, with no MCP session (no Mcp-Session-Id) kept on
// the host. The caller is whoever the request's Bearer key names, on every
// request; there is no session id that could outlive its key or be replayed
// by another. What an agent keeps between calls is runhost's own: sessions
// and workspaces, named by ids and names that belong to the key that made
// them (another key gets the same "not found" as for a name that does not
// exist).
package mcp

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/runhost/runhost/internal/admission"
	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/runner"
	"github.com/runhost/runhost/internal/sessions"
	"github.com/runhost/runhost/internal/workspace"
)

// Deps is what the MCP front end calls.
type Deps struct {
	Runner     *runner.Runner
	Sessions   *sessions.Manager
	Workspaces *workspace.Store
	Admission  *admission.Controller // a tool call that runs code takes a slot, as a run does
	// StartSession starts a session for the caller as POST /sessions does
	// (the same validation, admission and manager): create_session.
	StartSession func(ctx context.Context, id auth.Identity, a SessionArgs) (sessions.Info, error)
	// MaxBodyBytes bounds one request's body (RUNHOST_MAX_BODY_BYTES).
	MaxBodyBytes int64
	// Code names an error the way the HTTP API does (its status and code),
	// so a refusal reads the same on both; the host passes its one mapping.
	Code func(error) (status int, code string)
	// Audit records a tool call that ran code, as a native run is recorded
	// (the audit log line and the run metrics).
	Audit func(ctx context.Context, req runner.Request, res runner.Result, err error, d time.Duration)
	Log   hclog.Logger
}

// Handler serves MCP over Streamable HTTP.
type Handler struct {
	sdk http.Handler
}

// ServerName is how the server names itself to clients.
const ServerName = "runhost"

// instructions tell a model what the server is for (the initialize result).
const instructions = `runhost runs code in throw-away sandboxed containers: no network, a read-only root filesystem, hard limits on time, memory and output.
Use run_code for a one-shot program. For work in steps, create_session keeps one container (its files and /tmp) between run_in_session calls; end_session when done.
Workspaces are directories that outlive sessions: write_file, read_file and list_files reach them, and run_code or create_session with "workspace" mounts one at /workspaces/<name>.
A program that fails is not a tool error: the result says its exit code, stdout and stderr. A tool error means the host refused the call (unknown runtime, a limit, a name that does not exist).`

// New builds the handler. The caller of each request must be in its
// context (WithCaller): the host's authentication puts it there.
func New(d Deps) *Handler {
	if d.Log == nil {
		d.Log = hclog.NewNullLogger()
	}
	srv := sdk.NewServer(&sdk.Implementation{Name: ServerName, Title: "runhost: sandboxed code runs", Version: "1"}, &sdk.ServerOptions{
		Instructions: instructions,
		Logger:       slogger(d.Log),
	})
	addTools(srv, &tools{d: d})
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, &sdk.StreamableHTTPOptions{
		Stateless:    true,
		JSONResponse: true, // one answer per POST: no server-to-client messages to stream
		Logger:       slogger(d.Log),
		// The host's browser guard checks Host (with RUNHOST_ALLOWED_HOSTS)
		// and Origin on every route, /mcp included; the SDK's own check
		// would refuse names the operator allowed.
		DisableLocalhostProtection:   true,
		MaxRequestBodyBytes:          d.MaxBodyBytes,
		PropagateRequestCancellation: true,
	})
	return &Handler{sdk: h}
}

// ServeHTTP serves one MCP request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The SDK detaches a tool call's context from the HTTP request (it
	// keeps the values); a call remembers the request so that a client
	// that hangs up stops its run, as on the native API.
	h.sdk.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestKey{}, r.Context())))
}

type (
	callerKey  struct{}
	requestKey struct{}
)

// caller is who sends a request, and the request's id in the host's log.
type caller struct {
	id        auth.Identity
	requestID string
}

// WithCaller returns ctx carrying the identity the request authenticated
// as and the request's id (for log lines and the audit line).
func WithCaller(ctx context.Context, id auth.Identity, requestID string) context.Context {
	return context.WithValue(ctx, callerKey{}, caller{id, requestID})
}

// callerOf is the identity WithCaller recorded; ok is false without one.
func callerOf(ctx context.Context) (auth.Identity, bool) {
	c, ok := ctx.Value(callerKey{}).(caller)
	return c.id, ok && c.id.Name != ""
}

// RequestID is the request id WithCaller recorded.
func RequestID(ctx context.Context) string {
	c, _ := ctx.Value(callerKey{}).(caller)
	return c.requestID
}

// withRequest returns a context that ends when ctx does or when the HTTP
// request that carried the call ends (the client hung up).
func withRequest(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	if req, ok := ctx.Value(requestKey{}).(context.Context); ok {
		stop := context.AfterFunc(req, cancel)
		return ctx, func() { stop(); cancel() }
	}
	return ctx, cancel
}

// slogger sends the SDK's log lines to the host's log.
func slogger(log hclog.Logger) *slog.Logger {
	w := log.StandardWriter(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
