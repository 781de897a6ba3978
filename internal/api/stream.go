package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/runhost/runhost/internal/executor"
)

// Streaming: a run request with `Accept: text/event-stream` is answered
// with server-sent events as the program writes:
//
//	event: stdout            data: {"text": "..."}   (or {"base64": "..."} for bytes that are not UTF-8)
//	event: stderr            data: the same
//	event: result            data: the run's result, as the non-streaming answer
//	event: error             data: {"error": {"code", "message"}} when the run fails after streaming began
//
// The chunks are exactly the bytes the result holds: output caps, timeouts
// and a client that goes away behave as without streaming.
func wantsStream(c echo.Context) bool {
	return strings.Contains(c.Request().Header.Get(echo.HeaderAccept), "text/event-stream")
}

// eventStream writes server-sent events; it starts the response lazily, so
// a request refused before any output still gets a normal JSON error.
type eventStream struct {
	c       echo.Context
	mu      sync.Mutex
	started bool
	carry   map[executor.Stream][]byte // the start of a character cut between chunks
}

func newEventStream(c echo.Context) *eventStream {
	return &eventStream{c: c, carry: map[executor.Stream][]byte{}}
}

func (s *eventStream) start() {
	if s.started {
		return
	}
	s.started = true
	h := s.c.Response().Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	s.c.Response().WriteHeader(http.StatusOK)
}

func (s *eventStream) event(name string, v any) {
	s.start()
	b, _ := json.Marshal(v)
	fmt.Fprintf(s.c.Response(), "event: %s\ndata: %s\n\n", name, b)
	s.c.Response().Flush()
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

// finish sends what is left of the streams and then the result, or the
// error. It reports whether it answered (false: nothing was streamed and
// the caller answers the error the usual way).
func (s *eventStream) finish(res RunResponse, err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, stream := range []executor.Stream{executor.Stdout, executor.Stderr} {
		if rest := s.carry[stream]; len(rest) > 0 {
			name := map[executor.Stream]string{executor.Stdout: "stdout", executor.Stderr: "stderr"}[stream]
			s.event(name, map[string]string{"base64": base64.StdEncoding.EncodeToString(rest)})
		}
	}
	if err != nil {
		if !s.started {
			return false
		}
		status, code := statusOf(err)
		if status == 499 {
			return true
		}
		s.event("error", Error{ErrorBody{Code: code, Message: err.Error()}})
		return true
	}
	s.event("result", res)
	return true
}
