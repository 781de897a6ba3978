package mcp

import (
	"github.com/google/jsonschema-go/jsonschema"

	"github.com/runhost/runhost/internal/auth"
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
	Network      *Network `json:"network,omitempty" jsonschema:"hosts the run may reach through the host's egress proxy; must be within what the host grants this key (absent: the key's default grant, often none)"`
}

type runInSessionArgs struct {
	SessionID string `json:"session_id" jsonschema:"the id create_session returned"`
	program
}

// SessionArgs are create_session's arguments: POST /sessions' body, field
// for field (the host maps one onto the other; a test in internal/api keeps
// their JSON fields the same: whatever POST /sessions accepts,
// create_session forwards).
type SessionArgs struct {
	Runtime   string   `json:"runtime" jsonschema:"runtime name or alias: python, node, shell, ... (see list_runtimes)"`
	Version   string   `json:"version,omitempty" jsonschema:"exact (3.11), a prefix (3: the newest 3.x), or absent for the runtime's default"`
	Mode      string   `json:"mode,omitempty" jsonschema:"plain (the default): every run_in_session call is a fresh process in the session's container, which keeps its files, /tmp and run directory. interpreter: one resident interpreter runs every call as a cell in the same global state (variables and imports survive) and returns the cell's rich outputs (charts as images); only for runtimes whose list_runtimes entry accepts interpreter, on hosts that serve it"`
	Workspace string   `json:"workspace,omitempty" jsonschema:"mount a workspace: <name> or <name>/<sub/dir>, read-write at /workspaces/<name>; the directory is the working directory of every run"`
	TTLS      int64    `json:"ttl_s,omitempty" jsonschema:"seconds the session may stay idle before it is removed; absent: the host's default"`
	MemoryMB  int64    `json:"memory_mb,omitempty" jsonschema:"memory limit of the session's container in MiB; absent: the host's default"`
	CPUs      float64  `json:"cpus,omitempty" jsonschema:"CPU limit of the session's container; absent: the host's default"`
	Network   *Network `json:"network,omitempty" jsonschema:"hosts the session's runs may reach through the host's egress proxy; must be within what the host grants this key (absent: the key's default grant, often none)"`
}

// Network is what a run or session asks to reach, as on the HTTP API.
type Network struct {
	Allow []string `json:"allow" jsonschema:"host names (api.example.com, *.example.com, host:port) within the key's grant"`
}

// sessionModes are the modes create_session offers; the host decides which
// it serves (POST /sessions refuses the others).
var sessionModes = []any{"plain", "interpreter"}

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
	maxFiles = runner.MaxFiles
	maxLimit = runner.MaxTimeoutMS // integers (the runner's bound on limits, also ttl_s's): far above any maximum
	maxItems = 256                 // requirements
	maxRead  = 1 << 20             // bytes of a file read_file returns
	maxText  = 256 << 10           // bytes of each output stream shown as text
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
// host's one request model and validates it (runner.Request.Validate, as
// every front end does): the one place that maps them.
func runRequest(id auth.Identity, a runCodeArgs) (runner.Request, error) {
	files := make([]shared.File, 0, len(a.Files))
	for i, f := range a.Files {
		content, err := runner.DecodeContent(f.Content, f.Encoding)
		if err != nil {
			return runner.Request{}, runner.Invalid("bad_encoding", "files[%d] (%s): %v", i, f.Path, err)
		}
		files = append(files, shared.File{Path: f.Path, Content: content})
	}
	req := runner.Request{
		RunRequest: shared.RunRequest{
			Version:  a.Version,
			Code:     a.Code,
			Files:    files,
			Packages: a.Requirements,
		},
		Caller:    id,
		Runtime:   a.Runtime,
		Workspace: a.Workspace,
		Stdin:     []byte(a.Stdin),
		Limits:    runner.RequestedLimits(float64(a.TimeoutMS), 0, 0),
		Network:   (*policy.NetworkRequest)(a.Network),
	}
	if err := req.Validate(); err != nil {
		return runner.Request{}, err
	}
	return req, nil
}
