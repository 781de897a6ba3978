package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/outbox"
)

// Streaming: a run request with `Accept: text/event-stream` is answered
// with server-sent events as the program writes:
//
//	event: stdout            data: {"text": "..."}   (or {"base64": "..."} for bytes that are not UTF-8)
//	event: stderr            data: the same
//	event: rich_result       data: one rich result of a cell (interpreter sessions), a MIME bundle as in "results"
//	event: result            data: the run's result, as the non-streaming answer
//	event: error             data: {"error": {"code", "message"}} when the run fails after streaming began
//
// The chunks are exactly the bytes the result holds: output caps, timeouts
// and a client that goes away behave as without streaming.
func wantsStream(c echo.Context) bool {
	return wantsEventStream(c.Request().Header.Get(echo.HeaderAccept))
}

// eventStream turns a run's output into server-sent events. The run's
// output callback only queues events in an outbox of bounded size; its
// writer goroutine writes them to the client, each write with the write
// deadline. A client that stops reading fills the outbox, its write times
// out, and the run is cancelled (its container killed and removed): the
// run never waits on the network, and the connection never holds more
// than RUNHOST_MAX_STREAM_BUFFER_BYTES of output.
//
// The response starts lazily, with the first event, so a request refused
// before any output still gets a normal JSON error.
type eventStream struct {
	c   echo.Context
	ctx context.Context // the run's; cancelled when the client stops reading
	out *outbox.Outbox

	mu      sync.Mutex
	started bool                       // an event was queued: the answer is a stream
	carry   map[executor.Stream][]byte // the start of a character cut between chunks

	headerSent bool // the writer goroutine's own
}

// newEventStream starts the writer; cancel ends the run when the client
// stops reading.
func newEventStream(ctx context.Context, c echo.Context, maxBytes int, cancel context.CancelCauseFunc) *eventStream {
	s := &eventStream{c: c, ctx: ctx, carry: map[executor.Stream][]byte{}}
	s.out = outbox.New(outbox.Config{
		MaxBytes: maxBytes,
		Write:    s.write,
		Flush:    func() error { return http.NewResponseController(c.Response()).Flush() },
		OnFail:   cancel,
	})
	return s
}

// write runs on the outbox's goroutine: it alone touches the response
// until the outbox is closed.
func (s *eventStream) write(b []byte) error {
	if !s.headerSent {
		s.headerSent = true
		h := s.c.Response().Header()
		h.Set(echo.HeaderContentType, "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		s.c.Response().WriteHeader(http.StatusOK)
	}
	_, err := s.c.Response().Write(b)
	return err
}

// event queues one event; it waits only for room in the outbox. Called
// with s.mu held.
func (s *eventStream) event(name string, v any) {
	s.started = true
	b, _ := json.Marshal(v)
	_ = s.out.Send(s.ctx, fmt.Appendf(nil, "event: %s\ndata: %s\n\n", name, b)) // fails only once the run is being cancelled
}

// output sends one chunk of a stream, keeping a character cut in half for
// the next chunk.
func (s *eventStream) output(stream executor.Stream, p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := append(s.carry[stream], p...)
	cut := trimCut(b)
	s.carry[stream] = append([]byte(nil), b[len(cut):]...)
	if len(cut) == 0 {
		return
	}
	name := "stdout"
	if stream == executor.Stderr {
		name = "stderr"
	}
	if utf8.Valid(cut) {
		s.event(name, map[string]string{"text": string(cut)})
	} else {
		s.event(name, map[string]string{"base64": base64.StdEncoding.EncodeToString(cut)})
	}
}

// result sends one rich result of a cell, in its place among the
// output events.
func (s *eventStream) result(r executor.RichResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.event("rich_result", Bundle(r.Data))
}

// finish sends what is left of the streams and then the result, or the
// error, and waits until the client has it (or stopped reading). It
// returns an error wrapping outbox.ErrClientGone when the client stopped
// reading, else the run's error.
func (s *eventStream) finish(res RunResponse, runErr error) error {
	s.mu.Lock()
	for _, stream := range []executor.Stream{executor.Stdout, executor.Stderr} {
		if rest := s.carry[stream]; len(rest) > 0 {
			name := map[executor.Stream]string{executor.Stdout: "stdout", executor.Stderr: "stderr"}[stream]
			s.event(name, map[string]string{"base64": base64.StdEncoding.EncodeToString(rest)})
		}
	}
	switch {
	case errors.Is(context.Cause(s.ctx), outbox.ErrClientGone):
		// The writer failed and cancelled the run: nobody to tell.
	case runErr != nil && !s.started:
		// Nothing was streamed: the caller answers with a JSON error.
	case runErr != nil:
		if status, code := statusOf(runErr); status != 499 {
			s.event("error", Error{ErrorBody{Code: code, Message: runErr.Error()}})
		}
	default:
		s.event("result", res)
	}
	s.mu.Unlock()
	if err := s.out.Close(); err != nil {
		return err
	}
	// A run error after streaming began was answered as an event: the
	// response is committed, so the error handler writes nothing more.
	return runErr
}
