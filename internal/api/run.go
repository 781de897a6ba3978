package api

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	"github.com/labstack/echo/v4"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/outbox"
	"github.com/runhost/runhost/internal/policy"
	"github.com/runhost/runhost/internal/runner"
	"github.com/runhost/runhost/shared"
)

// RunRequest is the body of POST /runtimes/{name}/run.
type RunRequest struct {
	Version   string            `json:"version,omitempty"`
	Code      string            `json:"code,omitempty"`
	Files     []File            `json:"files,omitempty"`
	Entry     string            `json:"entry,omitempty"`
	Stdin     string            `json:"stdin,omitempty"`
	Args      []string          `json:"args,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	TimeoutMS int64             `json:"timeout_ms,omitempty"`
	MemoryMB  int64             `json:"memory_mb,omitempty"`
	CPUs      float64           `json:"cpus,omitempty"`

	Requirements []string          `json:"requirements,omitempty"` // pip requirements (python)
	Packages     []string          `json:"packages,omitempty"`     // npm packages (node)
	Image        string            `json:"image,omitempty"`        // custom image (shell)
	Command      *Command          `json:"command,omitempty"`      // custom command: argv or a shell line
	Dockerfile   string            `json:"dockerfile,omitempty"`   // Dockerfile to build (dockerfile)
	BuildArgs    map[string]string `json:"build_args,omitempty"`
	Workspace    string            `json:"workspace,omitempty"`    // "session/sub/dir" of the shared workspace
	ContextPath  string            `json:"context_path,omitempty"` // build context from the workspace (dockerfile)
	Network      *Network          `json:"network,omitempty"`      // hosts to reach through the egress proxy
}

// Network asks for hosts a run (or session) may reach through the egress
// proxy, within what its key is granted. An empty list asks for none.
type Network struct {
	Allow []string `json:"allow"`
}

// NetworkLog is what a granted run asked the proxy for, as host:port.
type NetworkLog struct {
	Contacted []string `json:"contacted"`
	Refused   []string `json:"refused"`
	Failed    []string `json:"failed,omitempty"`
}

// Command is a JSON array (an argv) or a string (a line for sh -c).
type Command struct {
	Argv  []string
	Shell string
}

// UnmarshalJSON accepts either form.
func (c *Command) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &c.Shell)
	}
	if err := json.Unmarshal(b, &c.Argv); err != nil {
		return errors.New("command: want an array of strings or a string")
	}
	return nil
}

// MarshalJSON writes the form that was given.
func (c Command) MarshalJSON() ([]byte, error) {
	if c.Argv != nil {
		return json.Marshal(c.Argv)
	}
	return json.Marshal(c.Shell)
}

// File is one file of a multi-file program.
type File struct {
	Path     string `json:"path"`
	Content  string `json:"content"`
	Encoding string `json:"encoding,omitempty"` // "utf8" (default) or "base64"
}

// RunResponse is the result of a run. A program that fails, times out or is
// OOM-killed is still a 200 with these fields set.
type RunResponse struct {
	RunID string `json:"run_id"`
	// Stage is the step the result fields describe: "run", or "install" or
	// "build" when that step failed and the run did not start.
	Stage    string `json:"stage"`
	Runtime  string `json:"runtime"`
	Version  string `json:"version"`
	Image    string `json:"image"`
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	// StdoutEncoding and StderrEncoding are "utf8", or "base64" when the
	// program wrote bytes that are not valid UTF-8 (returned exactly).
	StdoutEncoding  string `json:"stdout_encoding"`
	StderrEncoding  string `json:"stderr_encoding"`
	StdoutTruncated bool   `json:"stdout_truncated"`
	StderrTruncated bool   `json:"stderr_truncated"`
	TimedOut        bool   `json:"timed_out"`
	OOMKilled       bool   `json:"oom_killed"`
	// OutputLimitExceeded: the program was stopped because a stream passed
	// the output limit.
	OutputLimitExceeded bool  `json:"output_limit_exceeded,omitempty"`
	DurationMS          int64 `json:"duration_ms"`

	Install *StepInfo   `json:"install,omitempty"` // present when the run had dependencies
	Build   *BuildInfo  `json:"build,omitempty"`   // present when the run built a Dockerfile
	Network *NetworkLog `json:"network,omitempty"` // present when the run had a network grant

	// A cell of an interpreter session: its rich results (MIME bundles,
	// {"text/plain": "42", "image/png": "<base64>"}, in order), the
	// exception it raised, and whether its interpreter had to be started
	// again (its state lost).
	Results   []Bundle            `json:"results,omitempty"`
	Error     *executor.CellError `json:"error,omitempty"`
	Restarted bool                `json:"restarted,omitempty"`
}

// Bundle is one rich result: its representations by MIME type. Binary
// ones (image/png, image/jpeg) are base64 strings; application/json is a
// JSON value.
type Bundle map[string]json.RawMessage

func bundles(rs []executor.RichResult) []Bundle {
	if len(rs) == 0 {
		return nil
	}
	out := make([]Bundle, len(rs))
	for i, r := range rs {
		out[i] = r.Data
	}
	return out
}

// StepInfo describes an install step before the run.
type StepInfo struct {
	Cached     bool  `json:"cached"`
	DurationMS int64 `json:"duration_ms"`
}

// BuildInfo describes a Dockerfile build before the run.
type BuildInfo struct {
	Image        string `json:"image"`
	Cached       bool   `json:"cached"`
	DurationMS   int64  `json:"duration_ms"`
	Log          string `json:"log"`
	LogTruncated bool   `json:"log_truncated"`
}

func (s *Server) run(c echo.Context) (err error) {
	start := time.Now()
	var res runner.Result
	var rreq runner.Request
	defer func() { s.audit(c, rreq, res, err, time.Since(start)) }()

	var req RunRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	if rreq, err = toRunnerRequest(c.Param("name"), req); err != nil {
		return err
	}
	rreq.Caller = caller(c)
	release, err := s.cfg.Admission.Acquire(c.Request().Context(), keyID(c))
	if err != nil {
		return err
	}
	defer release()
	res, err = s.answer(c, rreq, release, s.runner.Run)
	return err
}

// answer runs req with run and answers: with the result as JSON, or, when
// the caller asked for text/event-stream, with the output as it comes and
// the result at the end. release frees the run's admission slot: as soon as
// the run is over, before the answer is written, so a client that does not
// read holds no slot.
func (s *Server) answer(c echo.Context, req runner.Request, release func(), run func(context.Context, runner.Request) (runner.Result, error)) (runner.Result, error) {
	if !wantsStream(c) {
		res, err := run(c.Request().Context(), req)
		release()
		if err != nil {
			return res, err
		}
		if err := c.JSON(http.StatusOK, runResponse(res)); err != nil {
			return res, fmt.Errorf("%w: %w", outbox.ErrClientGone, err)
		}
		return res, nil
	}
	ctx, cancel := context.WithCancelCause(c.Request().Context())
	defer cancel(nil)
	stream := newEventStream(ctx, c, s.cfg.MaxStreamBufferBytes, cancel)
	defer stream.out.Close() // finish closes it; this ends its writer on a panic too
	req.Output, req.Results = stream.output, stream.result
	res, err := run(ctx, req)
	release()
	return res, stream.finish(runResponse(res), err)
}

// audit writes one line per run request: who, what, with which limits,
// and how it ended. It never contains the code or the key, only a hash.
func (s *Server) audit(c echo.Context, req runner.Request, res runner.Result, err error, d time.Duration) {
	s.auditRun(s.requestLog(c), keyID(c), req, res, err, d)
}

// auditRun writes the audit line of a run to log, for the key named key.
func (s *Server) auditRun(log hclog.Logger, key string, req runner.Request, res runner.Result, err error, d time.Duration) {
	outcome := outcomeOf(res, err)
	runtime := res.Runtime
	if runtime == "" {
		runtime = req.Runtime
	}
	s.cfg.Metrics.Run(runtime, outcome, d)
	log.Info("audit",
		"key", key,
		"run_id", res.RunID,
		"runtime", runtime,
		"version", res.Version,
		"code_sha256", codeHash(req),
		"timeout_ms", res.Limits.Timeout.Milliseconds(),
		"memory_mb", res.Limits.MemoryBytes>>20,
		"cpus", float64(res.Limits.NanoCPUs)/1e9,
		"outcome", outcome,
		"exit_code", res.ExitCode,
		"duration_ms", d.Milliseconds(),
		"stdout_bytes", len(res.Stdout),
		"stderr_bytes", len(res.Stderr),
	)
}

// outcomeOf names how a run ended, for the audit log and the metrics.
func outcomeOf(res runner.Result, err error) string {
	switch {
	case err != nil:
		switch status, _ := statusOf(err); {
		case status == 499:
			return "client_disconnect" // went away, or stopped reading its answer
		case status < 500:
			return "refused"
		}
		return "error"
	case res.Stage == executor.StageInstall:
		return "install_failed"
	case res.Stage == executor.StageBuild:
		return "build_failed"
	case res.TimedOut:
		return "timeout"
	case res.OOMKilled:
		return "oom"
	case res.OutputLimited:
		return "output_limit"
	case res.ExitCode != 0:
		return "exit_nonzero"
	}
	return "ok"
}

// codeHash identifies the program without logging it.
func codeHash(req runner.Request) string {
	h := sha256.New()
	io.WriteString(h, req.Code)
	for _, f := range req.Files {
		fmt.Fprintf(h, "\x00%s\x00%d\x00", f.Path, len(f.Content))
		h.Write(f.Content)
	}
	io.WriteString(h, req.Dockerfile)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// encoding is how output is carried in JSON: as text when it is valid
// UTF-8, else base64, so binary output is returned byte for byte.
func encoding(b []byte) string {
	if utf8.Valid(b) {
		return "utf8"
	}
	return "base64"
}

func text(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// trimCut drops a character the output cap cut in half, so truncated text
// stays text.
func trimCut(b []byte) []byte {
	for i := 1; i <= 3 && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return b[:len(b)-i]
			}
			return b
		}
	}
	return b
}

func runResponse(res runner.Result) RunResponse {
	if res.StdoutTruncated {
		res.Stdout = trimCut(res.Stdout)
	}
	if res.StderrTruncated {
		res.Stderr = trimCut(res.Stderr)
	}
	out := RunResponse{
		RunID:           res.RunID,
		Stage:           res.Stage,
		Runtime:         res.Runtime,
		Version:         res.Version,
		Image:           res.Image,
		ExitCode:        res.ExitCode,
		Stdout:          text(res.Stdout),
		Stderr:          text(res.Stderr),
		StdoutEncoding:  encoding(res.Stdout),
		StderrEncoding:  encoding(res.Stderr),
		StdoutTruncated: res.StdoutTruncated,
		StderrTruncated: res.StderrTruncated,
		TimedOut:        res.TimedOut,
		OOMKilled:       res.OOMKilled,
		DurationMS:      res.Duration.Milliseconds(),

		OutputLimitExceeded: res.OutputLimited,

		Results:   bundles(res.Results),
		Error:     res.CellError,
		Restarted: res.Restarted,
	}
	if i := res.Install; i != nil {
		out.Install = &StepInfo{Cached: i.Cached, DurationMS: i.Duration.Milliseconds()}
	}
	if b := res.Build; b != nil {
		out.Build = &BuildInfo{Image: b.Image, Cached: b.Cached, DurationMS: b.Duration.Milliseconds(), Log: string(b.Log), LogTruncated: b.LogTruncated}
	}
	if n := res.Network; n != nil {
		out.Network = &NetworkLog{Contacted: nonNil(n.Contacted), Refused: nonNil(n.Refused), Failed: n.Failed}
	}
	return out
}

// decode reads exactly one JSON value with no unknown fields from a body of
// bounded size. The browser guard has already checked the Content-Type.
func (s *Server) decode(c echo.Context, v any) error {
	body := http.MaxBytesReader(c.Response(), c.Request().Body, s.cfg.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return decodeError(err)
		}
		return badRequest("malformed_json", "request body holds more than one JSON value")
	}
	return nil
}

func decodeError(err error) error {
	var maxBytes *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &maxBytes):
		return &apiError{status: http.StatusRequestEntityTooLarge, code: "body_too_large", message: fmt.Sprintf("request body is larger than %d bytes", maxBytes.Limit)}
	case errors.Is(err, io.EOF):
		return badRequest("malformed_json", "request body is empty; send a JSON object")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed_json", "request body is not valid JSON: "+err.Error())
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("malformed_json", fmt.Sprintf("request body: want a JSON %s, got a JSON %s", jsonKind(typ.Type), typ.Value))
		}
		return badRequest("malformed_json", fmt.Sprintf("field %q: want a JSON %s, got a JSON %s", typ.Field, jsonKind(typ.Type), typ.Value))
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return badRequest("unknown_field", strings.TrimPrefix(err.Error(), "json: ")+" (see the API reference for the fields a run takes)")
	}
	return badRequest("malformed_json", err.Error())
}

// jsonKind names the JSON type a Go type decodes from, for messages that
// speak the client's language, not the host's.
func jsonKind(t reflect.Type) string {
	if t == reflect.TypeFor[Command]() {
		return "array of strings or a string"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.String:
		return "string"
	case reflect.Slice, reflect.Array:
		return "array of " + jsonKind(t.Elem()) + "s"
	case reflect.Map:
		return "object of " + jsonKind(t.Elem()) + "s"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "object"
}

// toRunnerRequest turns the native wire format into the one request model
// and validates it (runner.Request.Validate, which every front end shares):
// only what is particular to this format is checked here, the encoding of
// files and requirements against packages.
func toRunnerRequest(runtime string, req RunRequest) (runner.Request, error) {
	if len(req.Requirements) > 0 && len(req.Packages) > 0 {
		return runner.Request{}, badRequest("invalid_request", "give requirements or packages, not both")
	}
	files := make([]shared.File, 0, len(req.Files))
	for i, f := range req.Files {
		content, err := runner.DecodeContent(f.Content, f.Encoding)
		if err != nil {
			return runner.Request{}, badRequest("bad_encoding", fmt.Sprintf("files[%d] (%s): %v", i, f.Path, err))
		}
		files = append(files, shared.File{Path: f.Path, Content: content})
	}
	var command shared.Command
	if req.Command != nil {
		command = shared.Command{Argv: req.Command.Argv, Shell: req.Command.Shell}
	}
	out := runner.Request{
		RunRequest: shared.RunRequest{
			Version:    req.Version,
			Code:       req.Code,
			Files:      files,
			Entry:      req.Entry,
			Args:       req.Args,
			Env:        req.Env,
			Packages:   append(req.Requirements, req.Packages...),
			Image:      req.Image,
			Command:    command,
			Dockerfile: req.Dockerfile,
			BuildArgs:  req.BuildArgs,
		},
		Runtime:     runtime,
		Workspace:   req.Workspace,
		ContextPath: req.ContextPath,
		Network:     (*policy.NetworkRequest)(req.Network),
		Stdin:       []byte(req.Stdin),
		Limits:      runner.RequestedLimits(float64(req.TimeoutMS), float64(req.MemoryMB), req.CPUs),
	}
	if err := out.Validate(); err != nil {
		return runner.Request{}, err
	}
	return out, nil
}
