package mcp

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/runner"
	"github.com/runhost/runhost/internal/workspace"
	"github.com/runhost/runhost/shared"
)

// tools holds the handlers of the tools.
type tools struct {
	d Deps
}

// errNoCaller: a request reached the handler without an identity, which
// the host's authentication always sets. A bug, never the caller's fault.
var errNoCaller = errors.New("mcp: request without an authenticated caller")

// handler is a tool's body: the caller, the arguments, and the result or
// an error that becomes a tool error.
type handler[In any] func(ctx context.Context, id auth.Identity, in In) ([]sdk.Content, error)

// tool adapts a handler to the SDK: it finds the caller, ends the call's
// context with its HTTP request, and turns an error into a tool error
// (isError) carrying the host's code and message, never a protocol error.
func tool[In any](t *tools, h handler[In]) sdk.ToolHandlerFor[In, any] {
	return func(ctx context.Context, _ *sdk.CallToolRequest, in In) (*sdk.CallToolResult, any, error) {
		ctx, cancel := withRequest(ctx)
		defer cancel()
		var content []sdk.Content
		id, ok := callerOf(ctx)
		err := errNoCaller
		if ok {
			content, err = h(ctx, id, in)
		}
		if err != nil {
			return t.toolError(ctx, err), nil, nil
		}
		return &sdk.CallToolResult{Content: content}, nil, nil
	}
}

// toolError is err as the model reads it: "code: message", as the HTTP
// API would answer (internal errors say only where the log has them).
func (t *tools) toolError(ctx context.Context, err error) *sdk.CallToolResult {
	status, code := t.d.Code(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		t.d.Log.Error("tool failed", "request_id", RequestID(ctx), "error", err)
		msg = "internal error; the host's log has the details under request id " + RequestID(ctx)
	}
	return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: code + ": " + msg}}}
}

func text(format string, args ...any) []sdk.Content {
	return []sdk.Content{&sdk.TextContent{Text: fmt.Sprintf(format, args...)}}
}

// key is the caller's name for sessions and admission.
func key(id auth.Identity) string { return id.Name }

func addTools(srv *sdk.Server, t *tools) {
	no, yes := new(bool), new(bool)
	*yes = true
	sdk.AddTool(srv, &sdk.Tool{
		Name: "list_runtimes",
		Description: "List the runtimes (languages) this host runs: name and aliases, versions (the default marked, " +
			"and whether its image is installed) and what each accepts. Call it when unsure which runtime or version to use.",
		InputSchema: schemaFor[noArgs](),
		Annotations: &sdk.ToolAnnotations{Title: "List runtimes", ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: no},
	}, tool(t, t.listRuntimes))
	sdk.AddTool(srv, &sdk.Tool{
		Name: "run_code",
		Description: "Run a program once in a fresh sandboxed container and return its exit code, stdout and stderr. " +
			"The container has no network unless the host grants this key hosts (see network) and is removed afterwards: nothing persists between calls " +
			"(use create_session and run_in_session to work in steps, or a workspace for files that last). " +
			"Give the program as code, or as files. A program that fails is a normal result with its exit code.",
		InputSchema: schemaFor[runCodeArgs](),
		Annotations: &sdk.ToolAnnotations{Title: "Run code", OpenWorldHint: no},
	}, tool(t, t.runCode))
	sdk.AddTool(srv, &sdk.Tool{
		Name: "create_session",
		Description: "Start a session: one sandboxed container (no network unless granted) that serves run_in_session calls one at a time " +
			"and keeps its files, /tmp and run directory between them. It ends after ttl_s idle, at the host's maximum " +
			"lifetime, or with end_session. Returns the session id.",
		InputSchema: schemaFor[SessionArgs](),
		Annotations: &sdk.ToolAnnotations{Title: "Create a session", DestructiveHint: no, OpenWorldHint: no},
	}, tool(t, t.createSession))
	sdk.AddTool(srv, &sdk.Tool{
		Name: "run_in_session",
		Description: "Run code in a session made by create_session and return its exit code, stdout and stderr " +
			"(and a cell's rich results, images included, when the session has them). One run at a time per session; " +
			"a timeout stops that run, not the session.",
		InputSchema: schemaFor[runInSessionArgs](),
		Annotations: &sdk.ToolAnnotations{Title: "Run in a session", OpenWorldHint: no},
	}, tool(t, t.runInSession))
	sdk.AddTool(srv, &sdk.Tool{
		Name:        "end_session",
		Description: "End a session and remove its container. Its workspace, if it had one, stays.",
		InputSchema: schemaFor[sessionArgs](),
		Annotations: &sdk.ToolAnnotations{Title: "End a session", DestructiveHint: yes, IdempotentHint: true, OpenWorldHint: no},
	}, tool(t, t.endSession))
	sdk.AddTool(srv, &sdk.Tool{
		Name: "read_file",
		Description: fmt.Sprintf("Read a file of a workspace this key owns or is granted. Text comes back as text, "+
			"PNG, JPEG, GIF and WebP images as images, other bytes as base64; at most %d bytes.", maxRead),
		InputSchema: schemaFor[fileRefArgs](),
		Annotations: &sdk.ToolAnnotations{Title: "Read a workspace file", ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: no},
	}, tool(t, t.readFile))
	sdk.AddTool(srv, &sdk.Tool{
		Name: "write_file",
		Description: "Write a file into a workspace this key owns or is granted, creating the workspace and parent " +
			"directories; an existing file is replaced. Runs in the workspace see it at /workspaces/<workspace>/<path>.",
		InputSchema: schemaFor[writeFileArgs](),
		Annotations: &sdk.ToolAnnotations{Title: "Write a workspace file", DestructiveHint: yes, IdempotentHint: true, OpenWorldHint: no},
	}, tool(t, t.writeFile))
	sdk.AddTool(srv, &sdk.Tool{
		Name: "list_files",
		Description: "List the files of a workspace (or of a directory in it): path, type and size, one per line. " +
			"Without a workspace, list the workspace names this key reaches.",
		InputSchema: schemaFor[listFilesArgs](),
		Annotations: &sdk.ToolAnnotations{Title: "List workspace files", ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: no},
	}, tool(t, t.listFiles))
}

func (t *tools) listRuntimes(ctx context.Context, _ auth.Identity, _ noArgs) ([]sdk.Content, error) {
	var b strings.Builder
	for _, rt := range t.d.Runner.Runtimes(ctx) {
		b.WriteString(rt.Name)
		if len(rt.Aliases) > 0 {
			fmt.Fprintf(&b, " (aliases: %s)", strings.Join(rt.Aliases, ", "))
		}
		if rt.Description.Description != "" {
			b.WriteString(": " + rt.Description.Description)
		}
		b.WriteString("\n  versions:")
		for _, v := range rt.Versions {
			b.WriteString(" " + v.Version)
			var notes []string
			if v.Default {
				notes = append(notes, "default")
			}
			if !rt.Installed[v.Version] {
				notes = append(notes, "image not installed")
			}
			if len(notes) > 0 {
				fmt.Fprintf(&b, " (%s)", strings.Join(notes, ", "))
			}
		}
		if len(rt.Capabilities) > 0 {
			caps := make([]string, len(rt.Capabilities))
			for i, c := range rt.Capabilities {
				caps[i] = string(c)
			}
			fmt.Fprintf(&b, "\n  accepts: %s", strings.Join(caps, ", "))
		}
		b.WriteString("\n")
	}
	if b.Len() == 0 {
		return text("no runtimes are installed on this host"), nil
	}
	return text("%s", strings.TrimRight(b.String(), "\n")), nil
}

func (t *tools) runCode(ctx context.Context, id auth.Identity, in runCodeArgs) ([]sdk.Content, error) {
	return t.run(ctx, id, in, t.d.Runner.Run)
}

func (t *tools) runInSession(ctx context.Context, id auth.Identity, in runInSessionArgs) ([]sdk.Content, error) {
	return t.run(ctx, id, runCodeArgs{program: in.program}, func(ctx context.Context, req runner.Request) (runner.Result, error) {
		return t.d.Sessions.Run(ctx, key(id), in.SessionID, req)
	})
}

// run runs a program as the native API does: admission first (a slot,
// released as soon as the run is over), then run, then the audit line.
func (t *tools) run(ctx context.Context, id auth.Identity, in runCodeArgs, run func(context.Context, runner.Request) (runner.Result, error)) (content []sdk.Content, err error) {
	start := time.Now()
	var res runner.Result
	var req runner.Request
	defer func() {
		if t.d.Audit != nil {
			t.d.Audit(ctx, req, res, err, time.Since(start))
		}
	}()
	if req, err = runRequest(id, in); err != nil {
		req.Caller, req.Runtime = id, in.Runtime // for the audit line
		return nil, err
	}
	release, err := t.d.Admission.Acquire(ctx, key(id))
	if err != nil {
		return nil, err
	}
	res, err = run(ctx, req)
	release()
	if err != nil {
		return nil, err
	}
	return runContent(res), nil
}

func (t *tools) createSession(ctx context.Context, id auth.Identity, in SessionArgs) ([]sdk.Content, error) {
	info, err := t.d.StartSession(ctx, id, in)
	if err != nil {
		return nil, err
	}
	s := fmt.Sprintf("session_id: %s\nruntime: %s %s (%s)\n", info.ID, info.Runtime, info.Version, info.Image)
	if info.Workspace != "" {
		s += fmt.Sprintf("workspace: %s, mounted at /workspaces/%s\n", info.Workspace, strings.SplitN(info.Workspace, "/", 2)[0])
	}
	s += fmt.Sprintf("ends after %d s idle (now: at %s)", info.IdleTTLS, info.ExpiresAt.UTC().Format(time.RFC3339))
	return text("%s", s), nil
}

func (t *tools) endSession(_ context.Context, id auth.Identity, in sessionArgs) ([]sdk.Content, error) {
	if err := t.d.Sessions.Delete(key(id), in.SessionID); err != nil {
		return nil, err
	}
	return text("session %s ended", in.SessionID), nil
}

// workspace resolves a workspace name for the caller, as the files API
// does: its own, or a shared one it is granted.
func (t *tools) workspace(id auth.Identity, name string) (workspace.Ref, error) {
	if err := workspace.CheckSession(name); err != nil {
		return workspace.Ref{}, err
	}
	return t.d.Workspaces.Resolve(id, name)
}

func (t *tools) readFile(_ context.Context, id auth.Identity, in fileRefArgs) ([]sdk.Content, error) {
	ref, err := t.workspace(id, in.Workspace)
	if err != nil {
		return nil, err
	}
	f, info, err := t.d.Workspaces.Open(ref, in.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRead))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", in.Path, err)
	}
	note := ""
	if info.Size() > int64(len(data)) {
		note = fmt.Sprintf(" (the first %d of %d bytes)", len(data), info.Size())
	}
	if mime := http.DetectContentType(data); slices.Contains(imageTypes, mime) && note == "" {
		return []sdk.Content{
			&sdk.TextContent{Text: fmt.Sprintf("%s: %s, %d bytes", in.Path, mime, len(data))},
			&sdk.ImageContent{Data: data, MIMEType: mime},
		}, nil
	}
	if utf8.Valid(data) {
		return text("%s", string(data)+note), nil
	}
	return text("%s is not text%s; its bytes in base64:\n%s", in.Path, note, base64.StdEncoding.EncodeToString(data)), nil
}

func (t *tools) writeFile(_ context.Context, id auth.Identity, in writeFileArgs) ([]sdk.Content, error) {
	ref, err := t.workspace(id, in.Workspace)
	if err != nil {
		return nil, err
	}
	data, err := runner.DecodeContent(in.Content, in.Encoding)
	if err != nil {
		return nil, runner.Invalid("bad_encoding", "content: %v", err)
	}
	n, err := t.d.Workspaces.Put(ref, in.Path, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return text("wrote %d bytes to %s in workspace %s (/workspaces/%s/%s in a run)", n, in.Path, ref.Session, ref.Session, in.Path), nil
}

func (t *tools) listFiles(_ context.Context, id auth.Identity, in listFilesArgs) ([]sdk.Content, error) {
	if in.Workspace == "" {
		if in.Dir != "" {
			return nil, shared.Invalidf("dir needs a workspace")
		}
		names, err := t.d.Workspaces.Names(id)
		if err != nil {
			return nil, err
		}
		if len(names) == 0 {
			return text("no workspaces yet: write_file, or run_code or create_session with a workspace, makes one"), nil
		}
		var b strings.Builder
		for _, w := range names {
			b.WriteString(w.Name)
			if w.Shared {
				b.WriteString(" (shared)")
			}
			b.WriteString("\n")
		}
		return text("%s", strings.TrimRight(b.String(), "\n")), nil
	}
	ref, err := t.workspace(id, in.Workspace)
	if err != nil {
		return nil, err
	}
	ref.Dir = in.Dir
	entries, err := t.d.Workspaces.List(ref)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return text("%s is empty", path.Join(ref.Session, in.Dir)), nil
	}
	var b strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&b, "%s\t%s\t%d\n", path.Join(in.Dir, e.Path), e.Type, e.Size)
	}
	return text("%s", strings.TrimRight(b.String(), "\n")), nil
}
