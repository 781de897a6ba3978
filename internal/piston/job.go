package piston

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/runhost/runhost/internal/policy"
	"github.com/runhost/runhost/internal/runner"
	"github.com/runhost/runhost/shared"
)

// invalid is a request Piston would refuse, in Piston's words where Piston
// has them; the code is runhost's for the same kind of refusal.
func invalid(format string, args ...any) error {
	return runner.Invalid("invalid_request", format, args...)
}

// jobRequest is Piston's execute body (and the WebSocket init message).
// Fields stay raw so their types can be checked with Piston's messages:
// Piston ignores fields it does not know, and so do we.
type jobRequest struct {
	Language           json.RawMessage `json:"language"`
	Version            json.RawMessage `json:"version"`
	Files              json.RawMessage `json:"files"`
	Stdin              json.RawMessage `json:"stdin"`
	Args               json.RawMessage `json:"args"`
	RunTimeout         json.RawMessage `json:"run_timeout"`
	CompileTimeout     json.RawMessage `json:"compile_timeout"`
	RunMemoryLimit     json.RawMessage `json:"run_memory_limit"`
	CompileMemoryLimit json.RawMessage `json:"compile_memory_limit"`
	RunCPUTime         json.RawMessage `json:"run_cpu_time"`
	CompileCPUTime     json.RawMessage `json:"compile_cpu_time"`
}

// job is a checked request: what to run and how Piston names it.
type job struct {
	entry entry
	req   runner.Request
}

// newJob checks req in Piston's order (language, version, files, the
// runtime, a utf8 file, the limits), builds the one request model and
// validates it as every front end does (runner.Request.Validate: file
// names, args, the limits' range). The runner checks the rest (limits
// against the host's maxima, capabilities).
// interactive leaves stdin as given; Piston ends a one-shot run's stdin
// with a newline.
func newJob(req jobRequest, entries []entry, interactive bool) (job, error) {
	lang, ok := stringField(req.Language)
	if !ok || lang == "" {
		return job{}, invalid("language is required as a string")
	}
	version, ok := stringField(req.Version)
	if !ok || version == "" {
		return job{}, invalid("version is required as a string")
	}
	var rawFiles []json.RawMessage
	if isNull(req.Files) || json.Unmarshal(req.Files, &rawFiles) != nil {
		return job{}, invalid("files is required as an array")
	}
	files := make([]file, len(rawFiles))
	for i, raw := range rawFiles {
		f, err := parseFile(i, raw)
		if err != nil {
			return job{}, err
		}
		files[i] = f
	}
	e, ok := match(entries, lang, version)
	if !ok {
		return job{}, invalid("%s-%s runtime is unknown", lang, version)
	}
	if !hasUTF8File(files) {
		return job{}, invalid("files must include at least one utf8 encoded file")
	}
	limits, err := parseLimits(req)
	if err != nil {
		return job{}, err
	}

	stdin := ""
	if !isNull(req.Stdin) {
		if stdin, ok = stringField(req.Stdin); !ok {
			return job{}, invalid("stdin must be a string")
		}
	}
	if !interactive && e.stdin && !strings.HasSuffix(stdin, "\n") {
		stdin += "\n"
	}
	var args []string
	if !isNull(req.Args) && json.Unmarshal(req.Args, &args) != nil {
		return job{}, invalid("args must be an array of strings")
	}

	out := make([]shared.File, 0, len(files))
	entryFile := ""
	for i, f := range files {
		if f.name == "" {
			f.name = fmt.Sprintf("file%d.%s", i, e.ext)
		}
		content, err := decodeContent(f.content, f.encoding)
		if err != nil {
			return job{}, runner.Invalid("bad_encoding", "files[%d].content: %v", i, err)
		}
		// Piston runs the first utf8 file and places the others beside it.
		if entryFile == "" && f.encoding == "utf8" {
			entryFile = f.name
		}
		out = append(out, shared.File{Path: f.name, Content: content})
	}
	j := job{entry: e, req: runner.Request{
		RunRequest: shared.RunRequest{Version: e.version, Files: out, Entry: entryFile, Args: args},
		Runtime:    e.name,
		Stdin:      []byte(stdin),
		Limits:     limits,
	}}
	if err := j.req.Validate(); err != nil {
		return job{}, err
	}
	return j, nil
}

// file is one entry of files, its encoding normalised as Piston does.
type file struct {
	name     string
	content  string
	encoding string // utf8, base64 or hex
	rawUTF8  bool   // encoding absent or exactly "utf8" (Piston's check)
}

func parseFile(i int, raw json.RawMessage) (file, error) {
	var f struct {
		Name     json.RawMessage `json:"name"`
		Content  json.RawMessage `json:"content"`
		Encoding json.RawMessage `json:"encoding"`
	}
	if json.Unmarshal(raw, &f) != nil {
		// Not an object: it has no content.
		return file{}, invalid("files[%d].content is required as a string", i)
	}
	content, ok := stringField(f.Content)
	if !ok {
		return file{}, invalid("files[%d].content is required as a string", i)
	}
	out := file{content: content, encoding: "utf8"} // unnamed: named once the runtime is known
	if !isNull(f.Name) {
		name, ok := stringField(f.Name)
		if !ok {
			return file{}, invalid("files[%d].name must be a string", i)
		}
		out.name = name
	}
	enc, _ := stringField(f.Encoding)
	switch enc {
	case "base64", "hex":
		out.encoding = enc
	}
	out.rawUTF8 = isNull(f.Encoding) || enc == "" || enc == "utf8"
	return out, nil
}

func hasUTF8File(files []file) bool {
	for _, f := range files {
		if f.rawUTF8 {
			return true
		}
	}
	return false
}

// decodeContent turns a file's content into bytes. Piston (Node's Buffer)
// silently skips characters that do not belong; refusing them is kinder.
func decodeContent(content, encoding string) ([]byte, error) {
	switch encoding {
	case "base64":
		b, err := base64.StdEncoding.DecodeString(content)
		if err != nil {
			// Node accepts unpadded and URL-safe base64 too.
			if b, err2 := base64.RawStdEncoding.DecodeString(strings.TrimRight(content, "=")); err2 == nil {
				return b, nil
			}
			if b, err2 := base64.RawURLEncoding.DecodeString(strings.TrimRight(content, "=")); err2 == nil {
				return b, nil
			}
			return nil, fmt.Errorf("invalid base64: %w", err)
		}
		return b, nil
	case "hex":
		b, err := hex.DecodeString(content)
		if err != nil {
			return nil, fmt.Errorf("invalid hex: %w", err)
		}
		return b, nil
	}
	return []byte(content), nil
}

// parseLimits checks Piston's six limit fields the way Piston does: an
// absent, null or zero value means the default; anything else must be a
// number. run_timeout (ms) and run_memory_limit (bytes) become runhost's
// timeout and memory limit, whose range Validate checks and which the
// runner checks against the host's maxima (their refusal is turned into
// Piston's message by limitMessage). runhost has no compile stage and no
// CPU-time limit of its own (the wall-clock timeout and the CPU quota bound
// CPU time), so the compile_* and *_cpu_time values are only checked for
// type and range, as Piston does for limits it has no maximum for.
func parseLimits(req jobRequest) (policy.Requested, error) {
	var timeoutMS, memoryBytes float64
	fields := []struct {
		name string
		raw  json.RawMessage
		set  func(float64) error
	}{
		{"compile_memory_limit", req.CompileMemoryLimit, nil},
		{"run_memory_limit", req.RunMemoryLimit, func(v float64) error {
			// -1 is Piston's "no limit" (clients send it by default):
			// here the host's default.
			if v == -1 {
				return nil
			}
			if v < 0 {
				return runner.Invalid("limit_exceeded", "run_memory_limit must be non-negative")
			}
			memoryBytes = v
			return nil
		}},
		{"compile_timeout", req.CompileTimeout, nil},
		{"run_timeout", req.RunTimeout, func(v float64) error {
			if v < 0 {
				return runner.Invalid("limit_exceeded", "run_timeout must be non-negative")
			}
			timeoutMS = v
			return nil
		}},
		{"compile_cpu_time", req.CompileCPUTime, nil},
		{"run_cpu_time", req.RunCPUTime, nil},
	}
	for _, f := range fields {
		if falsy(f.raw) {
			continue
		}
		var v float64
		if json.Unmarshal(f.raw, &v) != nil {
			return policy.Requested{}, invalid("If specified, %s must be a number", f.name)
		}
		if v > 1<<40 {
			return policy.Requested{}, runner.Invalid("limit_exceeded", "%s is out of range", f.name)
		}
		if f.set != nil {
			if err := f.set(v); err != nil {
				return policy.Requested{}, err
			}
		}
	}
	return runner.RequestedLimits(timeoutMS, memoryBytes/(1<<20), 0), nil
}

// limitMessage turns the runner's refusal of a limit into Piston's
// message, naming the configured bound in Piston's units (ms, bytes).
func limitMessage(le *policy.LimitError) string {
	field := map[string]string{"timeout_ms": "run_timeout", "memory_mb": "run_memory_limit"}[le.Field]
	if field == "" {
		return le.Error()
	}
	bound, ok := int64(0), false
	if i := strings.LastIndex(le.Msg, " of "); i >= 0 {
		n, err := strconv.ParseInt(le.Msg[i+len(" of "):], 10, 64)
		bound, ok = n, err == nil
	}
	if ok && field == "run_memory_limit" {
		bound <<= 20
	}
	switch {
	case ok && strings.Contains(le.Msg, " is above "):
		return fmt.Sprintf("%s cannot exceed the configured limit of %d", field, bound)
	case ok && strings.Contains(le.Msg, " is below "):
		return fmt.Sprintf("%s cannot be below the configured minimum of %d", field, bound)
	}
	return field + ": " + le.Msg
}

// stringField reports raw as a string, and whether it is one.
func stringField(raw json.RawMessage) (string, bool) {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// falsy is JavaScript's falsiness for a JSON value: absent, null, false,
// 0 and "".
func falsy(raw json.RawMessage) bool {
	switch strings.TrimSpace(string(raw)) {
	case "", "null", "false", `""`:
		return true
	}
	var v float64
	return json.Unmarshal(raw, &v) == nil && v == 0
}
