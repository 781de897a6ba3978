package mcp

import (
	"encoding/base64"
	"fmt"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/pathguard"
	"github.com/runhost/runhost/internal/policy"
	"github.com/runhost/runhost/internal/runner"
	"github.com/runhost/runhost/shared"
)

// The tools' arguments. Field tags give the JSON names and the
// descriptions a model reads; schemaFor adds the bounds.

type fileArg struct {
	Path     string `json:"path" jsonschema:"relative path in the run directory, e.g. data.csv or lib/util.py"`
	Content  string `json:"content" jsonschema:"the file's content: text, or base64 when encoding is base64"`
	Encoding string `json:"encoding,omitempty" jsonschema:"utf8 (the default) or base64 for binary content"`
}

// program is what run_code and run_in_session share.
type program struct {
	Code      string    `json:"code,omitempty" jsonschema:"the program's source, run as the runtime's main file (main.py, main.js, main.sh)"`
	Files     []fileArg `json:"files,omitempty" jsonschema:"more files, written to the run directory before the run; without code the first file is run"`
	Stdin     string    `json:"stdin,omitempty" jsonschema:"text piped to the program's standard input"`
	TimeoutMS int64     `json:"timeout_ms,omitempty" jsonschema:"wall-clock limit in milliseconds; absent or 0: the host's default; above the host's maximum is refused"`
}

type runCodeArgs struct {
	Runtime string `json:"runtime" jsonschema:"runtime name or alias: python, node, shell, ... (see list_runtimes)"`
	Version string `json:"version,omitempty" jsonschema:"exact (3.11), a prefix (3: the newest 3.x), or absent for the runtime's default"`
	program
	Requirements []string `json:"requirements,omitempty" jsonschema:"dependencies installed before the run (cached per set): pip requirement lines for python (requests==2.32.3), npm packages for node (lodash@4)"`
	Workspace    string   `json:"workspace,omitempty" jsonschema:"run in a workspace: <name> or <name>/<sub/dir>; it is mounted read-write at /workspaces/<name>, the directory is the working directory and files are written there"`
}

type runInSessionArgs struct {
	SessionID string `json:"session_id" jsonschema:"the id create_session returned"`
	program
}

type createSessionArgs struct {
	Runtime   string  `json:"runtime" jsonschema:"runtime name or alias: python, node, shell, ... (see list_runtimes)"`
	Version   string  `json:"version,omitempty" jsonschema:"exact (3.11), a prefix (3: the newest 3.x), or absent for the runtime's default"`
	Mode      string  `json:"mode,omitempty" jsonschema:"plain (the default): every run is a fresh process in the session's container, which keeps its files, /tmp and run directory"`
	Workspace string  `json:"workspace,omitempty" jsonschema:"mount a workspace: <name> or <name>/<sub/dir>, read-write at /workspaces/<name>; the directory is the working directory of every run"`
	TTLS      int64   `json:"ttl_s,omitempty" jsonschema:"seconds the session may stay idle before it is removed; absent: the host's default"`
	MemoryMB  int64   `json:"memory_mb,omitempty" jsonschema:"memory limit of the session's container in MiB; absent: the host's default"`
	CPUs      float64 `json:"cpus,omitempty" jsonschema:"CPU limit of the session's container; absent: the host's default"`
}

// sessionModes are the modes create_session takes; the first is the default.
var sessionModes = []any{"plain"}

type sessionArgs struct {
	SessionID string `json:"session_id" jsonschema:"the id create_session returned"`
}

type fileRefArgs struct {
	Workspace string `json:"workspace" jsonschema:"workspace name (list_files without arguments lists them)"`
	Path      string `json:"path" jsonschema:"relative path of the file in the workspace, e.g. out/chart.png"`
}

type writeFileArgs struct {
	fileRefArgs
	Content  string `json:"content" jsonschema:"the file's content: text, or base64 when encoding is base64"`
	Encoding string `json:"encoding,omitempty" jsonschema:"utf8 (the default) or base64 for binary content"`
}

type listFilesArgs struct {
	Workspace string `json:"workspace,omitempty" jsonschema:"workspace name; absent: list the workspace names this key reaches"`
	Dir       string `json:"dir,omitempty" jsonschema:"a directory in the workspace to list; absent: the whole workspace"`
}

type noArgs struct{}

// Bounds on arguments, in the schemas a client sees and checks against.
const (
	maxFiles = 256       // as the native API
	maxLimit = 1 << 30   // far above any maximum, low enough not to overflow
	maxItems = 256       // requirements
	maxRead  = 1 << 20   // bytes of a file read_file returns
	maxText  = 256 << 10 // bytes of each output stream shown as text
)

// schemaFor infers T's schema and adds the bounds that tags cannot say.
func schemaFor[T any]() *jsonschema.Schema {
	s, err := jsonschema.For[T](nil)
	if err != nil {
		panic(err) // the argument types above are fixed: a bug, found by any test
	}
	bound(s)
	return s
}

// bound walks a schema: arrays are arrays (not "null or array") of at most
// maxItems, numbers are at least 0 and at most maxLimit, encodings and
// modes are enumerated.
func bound(s *jsonschema.Schema) {
	for name, p := range s.Properties {
		switch {
		case p.Items != nil:
			p.Type, p.Types = "array", nil
			p.MaxItems = jsonschema.Ptr(maxItems)
			if name == "files" {
				p.MaxItems = jsonschema.Ptr(maxFiles)
			}
			bound(p.Items)
		case p.Type == "integer" || p.Type == "number":
			p.Minimum, p.Maximum = jsonschema.Ptr(0.0), jsonschema.Ptr(float64(maxLimit))
		case name == "encoding":
			p.Enum = []any{"utf8", "base64"}
		case name == "mode":
			p.Enum = sessionModes
		}
	}
}

// runRequest maps run_code's and run_in_session's arguments to the
// runner's request: the one place that does (with the HTTP API's
// toRunnerRequest, it becomes the host's one request type and its
// Validate). The schema has already bounded sizes and numbers.
func runRequest(id auth.Identity, a runCodeArgs) (runner.Request, error) {
	if a.Code == "" && len(a.Files) == 0 {
		return runner.Request{}, shared.Invalidf("give the program as code or files")
	}
	files := make([]shared.File, 0, len(a.Files))
	seen := map[string]bool{}
	for i, f := range a.Files {
		if err := pathguard.Check(f.Path); err != nil {
			return runner.Request{}, fmt.Errorf("files[%d]: %w", i, err)
		}
		if seen[f.Path] {
			return runner.Request{}, shared.Invalidf("files[%d]: %q is given twice", i, f.Path)
		}
		seen[f.Path] = true
		content, err := decodeContent(f.Content, f.Encoding)
		if err != nil {
			return runner.Request{}, shared.Invalidf("files[%d] (%s): %v", i, f.Path, err)
		}
		files = append(files, shared.File{Path: f.Path, Content: content})
	}
	return runner.Request{
		Caller:    id,
		Runtime:   a.Runtime,
		Version:   a.Version,
		Code:      a.Code,
		Files:     files,
		Stdin:     []byte(a.Stdin),
		Packages:  a.Requirements,
		Workspace: a.Workspace,
		Limits:    policy.Requested{Timeout: time.Duration(a.TimeoutMS) * time.Millisecond},
	}, nil
}

// sessionSpec maps create_session's arguments to the session's spec and
// idle time to live. The schema allows only the modes in sessionModes:
// "plain" is today's session; "interpreter" joins the list, and Mode the
// spec, when the host serves interpreter sessions.
func sessionSpec(id auth.Identity, a createSessionArgs) (runner.SessionSpec, time.Duration) {
	return runner.SessionSpec{
		Caller:    id,
		Runtime:   a.Runtime,
		Version:   a.Version,
		Workspace: a.Workspace,
		Limits:    policy.Requested{MemoryBytes: a.MemoryMB << 20, CPUs: a.CPUs},
	}, time.Duration(a.TTLS) * time.Second
}

// decodeContent is a file's bytes from its content and encoding.
func decodeContent(content, encoding string) ([]byte, error) {
	switch encoding {
	case "", "utf8":
		return []byte(content), nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(content)
		if err != nil {
			return nil, fmt.Errorf("invalid base64: %w", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("unknown encoding %q (want utf8 or base64)", encoding)
}
