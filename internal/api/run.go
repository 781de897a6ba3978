package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/runhost/runhost/internal/pathguard"
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
	RunID           string `json:"run_id"`
	Runtime         string `json:"runtime"`
	Version         string `json:"version"`
	Image           string `json:"image"`
	ExitCode        int    `json:"exit_code"`
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	StdoutTruncated bool   `json:"stdout_truncated"`
	StderrTruncated bool   `json:"stderr_truncated"`
	TimedOut        bool   `json:"timed_out"`
	OOMKilled       bool   `json:"oom_killed"`
	DurationMS      int64  `json:"duration_ms"`
}

// Bounds on a request's shape, checked before any plugin sees it.
const (
	maxFiles    = 256
	maxArgs     = 1024
	maxArgBytes = 256 << 10
	maxEnv      = 256
	maxEnvValue = 64 << 10
	maxLimit    = 1 << 30 // far above any maximum, low enough not to overflow
)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (s *Server) run(c echo.Context) error {
	var req RunRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	rreq, err := toRunnerRequest(c.Param("name"), req)
	if err != nil {
		return err
	}
	res, err := s.runner.Run(c.Request().Context(), rreq)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, RunResponse{
		RunID:           res.RunID,
		Runtime:         res.Runtime,
		Version:         res.Version,
		Image:           res.Image,
		ExitCode:        res.ExitCode,
		Stdout:          string(res.Stdout),
		Stderr:          string(res.Stderr),
		StdoutTruncated: res.StdoutTruncated,
		StderrTruncated: res.StderrTruncated,
		TimedOut:        res.TimedOut,
		OOMKilled:       res.OOMKilled,
		DurationMS:      res.Duration.Milliseconds(),
	})
}

// decode reads exactly one JSON value with no unknown fields from a body of
// bounded size. Any Content-Type is accepted: many clients send none.
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
		return badRequest("malformed_json", fmt.Sprintf("field %q: want %s, got a JSON %s", typ.Field, typ.Type, typ.Value))
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return badRequest("unknown_field", strings.TrimPrefix(err.Error(), "json: ")+" (see the API reference for the fields a run takes)")
	}
	return badRequest("malformed_json", err.Error())
}

// toRunnerRequest checks the request's shape and decodes its files.
func toRunnerRequest(runtime string, req RunRequest) (runner.Request, error) {
	switch {
	case req.TimeoutMS > maxLimit || req.TimeoutMS < 0:
		return runner.Request{}, &policy.LimitError{Field: "timeout_ms", Msg: fmt.Sprintf("%d is out of range", req.TimeoutMS)}
	case req.MemoryMB > maxLimit || req.MemoryMB < 0:
		return runner.Request{}, &policy.LimitError{Field: "memory_mb", Msg: fmt.Sprintf("%d is out of range", req.MemoryMB)}
	case req.CPUs > maxLimit || req.CPUs < 0:
		return runner.Request{}, &policy.LimitError{Field: "cpus", Msg: fmt.Sprintf("%g is out of range", req.CPUs)}
	}
	if req.Code == "" && len(req.Files) == 0 {
		return runner.Request{}, badRequest("no_code", "give the program as code or files")
	}
	if len(req.Files) > maxFiles {
		return runner.Request{}, badRequest("too_many_files", fmt.Sprintf("%d files, at most %d", len(req.Files), maxFiles))
	}
	files := make([]shared.File, 0, len(req.Files))
	seen := map[string]bool{}
	for i, f := range req.Files {
		if err := pathguard.Check(f.Path); err != nil {
			return runner.Request{}, fmt.Errorf("files[%d]: %w", i, err)
		}
		if seen[f.Path] {
			return runner.Request{}, badRequest("duplicate_file", fmt.Sprintf("files[%d]: %q is given twice", i, f.Path))
		}
		seen[f.Path] = true
		content, err := decodeContent(f)
		if err != nil {
			return runner.Request{}, badRequest("bad_encoding", fmt.Sprintf("files[%d] (%s): %v", i, f.Path, err))
		}
		files = append(files, shared.File{Path: f.Path, Content: content})
	}
	if req.Entry != "" {
		if err := pathguard.Check(req.Entry); err != nil {
			return runner.Request{}, fmt.Errorf("entry: %w", err)
		}
	}
	if len(req.Args) > maxArgs {
		return runner.Request{}, badRequest("too_many_args", fmt.Sprintf("%d args, at most %d", len(req.Args), maxArgs))
	}
	argBytes := 0
	for i, a := range req.Args {
		if strings.ContainsRune(a, 0) {
			return runner.Request{}, badRequest("invalid_arg", fmt.Sprintf("args[%d] contains NUL", i))
		}
		argBytes += len(a)
	}
	if argBytes > maxArgBytes {
		return runner.Request{}, badRequest("too_many_args", fmt.Sprintf("args total %d bytes, at most %d", argBytes, maxArgBytes))
	}
	if len(req.Env) > maxEnv {
		return runner.Request{}, badRequest("too_many_env", fmt.Sprintf("%d env entries, at most %d", len(req.Env), maxEnv))
	}
	for k, v := range req.Env {
		if !envName.MatchString(k) {
			return runner.Request{}, badRequest("invalid_env", fmt.Sprintf("env name %q: want letters, digits and _, not starting with a digit", k))
		}
		if strings.ContainsRune(v, 0) || len(v) > maxEnvValue {
			return runner.Request{}, badRequest("invalid_env", fmt.Sprintf("env %s: value contains NUL or is longer than %d bytes", k, maxEnvValue))
		}
	}
	return runner.Request{
		Runtime: runtime,
		Version: req.Version,
		Code:    req.Code,
		Files:   files,
		Entry:   req.Entry,
		Stdin:   []byte(req.Stdin),
		Args:    req.Args,
		Env:     req.Env,
		Limits: policy.Requested{
			Timeout:     time.Duration(req.TimeoutMS) * time.Millisecond,
			MemoryBytes: req.MemoryMB << 20,
			CPUs:        req.CPUs,
		},
	}, nil
}

func decodeContent(f File) ([]byte, error) {
	switch f.Encoding {
	case "", "utf8", "utf-8":
		return []byte(f.Content), nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(f.Content)
		if err != nil {
			return nil, fmt.Errorf("invalid base64: %w", err)
		}
		return b, nil
	default:
		return nil, fmt.Errorf("unknown encoding %q (want utf8 or base64)", f.Encoding)
	}
}
