package openapitest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// maxCapture bounds what is kept of one body; a bigger body is not checked
// (hostile tests send huge ones on purpose).
const maxCapture = 16 << 20

// maxFailures bounds what one test reports: the first few say enough.
const maxFailures = 20

// Check wraps a server's handler so that every exchange with the native
// API is validated against the document, and fails t at its end with the
// method, path and error of each mismatch.
//
// Responses are always validated, status included. A request is validated
// only when the server accepted it (status < 400): tests send malformed
// requests on purpose, and what the server accepts must be documented.
// Server-sent event streams are checked for status and headers only.
// Authentication is not checked here; it has its own tests.
func Check(t testing.TB, next http.Handler) http.Handler {
	t.Helper()
	doc, err := Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := &checker{doc: doc, next: next}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, f := range c.failures {
			t.Errorf("openapi.json disagrees with the server: %s", f)
		}
		if c.dropped > 0 {
			t.Errorf("openapi.json: %d more mismatches", c.dropped)
		}
	})
	return c
}

type checker struct {
	doc  *openapi3.T
	next http.Handler

	mu       sync.Mutex
	failures []string
	dropped  int
}

func (c *checker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if Unchecked(r.URL.Path) {
		c.next.ServeHTTP(w, r) // websockets and the playground pass untouched
		return
	}
	reqBody := &capture{}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &teeBody{ReadCloser: r.Body, to: reqBody}
	}
	rec := &recorder{ResponseWriter: w}
	c.next.ServeHTTP(rec, r)
	if err := c.validate(r, reqBody, rec); err != nil {
		c.fail(fmt.Sprintf("%s %s → %d: %v", r.Method, r.URL.RequestURI(), rec.code(), err))
	}
}

func (c *checker) fail(msg string) {
	const maxLen = 2000 // schema errors quote whole schemas
	if len(msg) > maxLen {
		msg = msg[:maxLen] + "…"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.failures) >= maxFailures {
		c.dropped++
		return
	}
	c.failures = append(c.failures, msg)
}

func (c *checker) validate(r *http.Request, reqBody *capture, rec *recorder) error {
	status := rec.code()
	if !rec.wrote && r.Context().Err() != nil {
		return nil // the client hung up and nothing was answered (499)
	}
	tmpl, params, found := match(c.doc, r.URL.EscapedPath())
	var op *openapi3.Operation
	var item *openapi3.PathItem
	if found {
		item = c.doc.Paths.Value(tmpl)
		op = item.GetOperation(r.Method)
	}
	if op == nil {
		if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
			return nil // no such route, and the server says so
		}
		return fmt.Errorf("answered, but the document has no operation %s for this path", r.Method)
	}

	ctx := context.Background()
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true,
		SkipSettingDefaults:   true,
	}
	// Say where and why, without quoting the whole schema.
	opts.WithCustomSchemaErrorFunc(func(err *openapi3.SchemaError) string {
		return fmt.Sprintf("at /%s: %s", strings.Join(err.JSONPointer(), "/"), err.Reason)
	})
	req := r.Clone(ctx)
	req.Body = io.NopCloser(bytes.NewReader(reqBody.buf.Bytes()))
	req.ContentLength = int64(reqBody.buf.Len())
	if onlyJSON(op) {
		// The server reads the body as JSON whatever the Content-Type
		// (documented); many clients send none.
		req.Header.Set("Content-Type", "application/json")
	}
	in := &openapi3filter.RequestValidationInput{
		Request:    req,
		PathParams: params,
		Route:      &routers.Route{Spec: c.doc, Path: tmpl, PathItem: item, Method: r.Method, Operation: op},
		Options:    opts,
	}
	if status < 400 && !reqBody.over {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			return fmt.Errorf("request: %w", err)
		}
	}

	respOpts := *opts
	ct, _, _ := mime.ParseMediaType(rec.Header().Get("Content-Type"))
	if ct == "text/event-stream" || rec.body.over {
		respOpts.ExcludeResponseBody = true
		if ct == "text/event-stream" && !acceptsStream(r) {
			return fmt.Errorf("streamed without Accept: text/event-stream")
		}
	}
	if err := openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 rec.Header(),
		Body:                   io.NopCloser(bytes.NewReader(rec.body.buf.Bytes())),
		Options:                &respOpts,
	}); err != nil {
		return fmt.Errorf("response: %w", err)
	}
	return nil
}

// onlyJSON reports whether op's body is JSON and nothing else.
func onlyJSON(op *openapi3.Operation) bool {
	if op.RequestBody == nil || op.RequestBody.Value == nil {
		return false
	}
	content := op.RequestBody.Value.Content
	return len(content) == 1 && content["application/json"] != nil
}

func acceptsStream(r *http.Request) bool {
	return strings.Contains(strings.ToLower(r.Header.Get("Accept")), "text/event-stream")
}

// capture keeps the first maxCapture bytes written to it.
type capture struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	over bool
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.over || c.buf.Len()+len(p) > maxCapture {
		c.over = true
		c.buf.Reset()
		return len(p), nil
	}
	return c.buf.Write(p)
}

// teeBody copies what the handler reads of the request body.
type teeBody struct {
	io.ReadCloser
	to *capture
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		_, _ = b.to.Write(p[:n])
	}
	return n, err
}

// recorder passes the response through and keeps its status and body.
type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
	body   capture
}

func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(p []byte) (int, error) {
	if !r.wrote {
		r.status, r.wrote = http.StatusOK, true
	}
	_, _ = r.body.Write(p)
	return r.ResponseWriter.Write(p)
}

// Flush keeps server-sent events flowing through the wrapper.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) code() int {
	if !r.wrote {
		return http.StatusOK
	}
	return r.status
}
