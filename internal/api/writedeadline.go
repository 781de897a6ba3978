package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// writeDeadlines gives every write of every answer (JSON, errors,
// server-sent events, file downloads) its own deadline, so a client that
// stops reading holds a handler for at most RUNHOST_WRITE_TIMEOUT_MS per
// write instead of forever. The deadline is per write, not per answer: a
// long stream to a client that keeps reading is never cut.
func (s *Server) writeDeadlines(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfg.WriteTimeout > 0 {
			w := c.Response().Writer
			c.Response().Writer = &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: s.cfg.WriteTimeout}
		}
		return next(c)
	}
}

// deadlineWriter sets the connection's write deadline before each write
// and flush. http.ResponseController reaches the writer below through
// Unwrap (hijacking for the WebSocket, too).
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (w *deadlineWriter) Write(b []byte) (int, error) {
	w.extend()
	return w.ResponseWriter.Write(b)
}

// FlushError is what http.ResponseController.Flush calls.
func (w *deadlineWriter) FlushError() error {
	w.extend()
	return w.rc.Flush()
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// extend moves the deadline; a writer that cannot have one (a test
// recorder) simply has none.
func (w *deadlineWriter) extend() {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
}
