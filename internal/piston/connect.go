package piston

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/labstack/echo/v4"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/outbox"
)

// Piston's close codes for /connect.
const (
	closeAlreadyInit   websocket.StatusCode = 4000
	closeInitTimeout   websocket.StatusCode = 4001
	closeNotifiedError websocket.StatusCode = 4002
	closeNotInit       websocket.StatusCode = 4003
	closeOnlyStdin     websocket.StatusCode = 4004
	closeBadSignal     websocket.StatusCode = 4005
	closeJobCompleted  websocket.StatusCode = 4999
)

// initTimeout is how long a connection may stay without an init message
// (Piston's second).
const initTimeout = time.Second

// stdinMessages bounds how many stdin messages may wait for the program
// (their bytes are bounded by Deps.MaxStdinBytes).
const stdinMessages = 1024

// wsMessage is any message a client sends; which fields count depends on
// Type (init carries a whole jobRequest).
type wsMessage struct {
	Type   string `json:"type"`
	Stream string `json:"stream"`
	Data   string `json:"data"`
	Signal string `json:"signal"`
}

// connect serves Piston's interactive protocol: the client sends init (an
// execute body), the server answers runtime and stage, streams data
// messages both ways (the client's stdin goes to the running program as it
// arrives) and ends with exit and close code 4999. A signal message kills
// the run: runhost can only kill a run, so every signal acts as SIGKILL
// and exit reports SIGKILL.
//
// What one connection may make the host hold is bounded: one init message
// (up to the body limit), then messages of at most MaxMessageSize, at most
// MaxStdinBytes (and stdinMessages messages) of stdin waiting for the
// program, and at most MaxStreamBytes of output waiting for the client.
// Past an input bound the connection is closed with 4002; a client that
// stops reading its output hits the write timeout and the run is killed.
func (h *handler) connect(c echo.Context) error {
	// The host's browser guard has refused cross-site upgrades already; the
	// library checks Origin again against the same list.
	conn, err := websocket.Accept(c.Response(), c.Request(), &websocket.AcceptOptions{OriginPatterns: originPatterns(h.d.AllowedOrigins)})
	if err != nil {
		return nil // Accept has answered the request
	}
	// readMessage applies the limit of each phase itself; the library's
	// only has to stay out of its way.
	conn.SetReadLimit(max(h.d.MaxBodyBytes, h.d.MaxMessageSize) + 1)
	s := &wsSession{h: h, c: c, conn: conn, key: h.d.KeyID(c), stdin: newStdinQueue(h.d.MaxStdinBytes, stdinMessages)}
	s.serve(c.Request().Context())
	return nil
}

// originPatterns turns origins into the library's patterns (path.Match,
// matched against scheme://host when they contain "://"), escaping the
// pattern characters an IPv6 host has.
func originPatterns(origins []string) []string {
	out := make([]string, 0, len(origins))
	r := strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`, "]", `\]`)
	for _, o := range origins {
		out = append(out, r.Replace(o))
	}
	return out
}

type wsSession struct {
	h     *handler
	c     echo.Context // the upgraded request; valid until serve returns
	conn  *websocket.Conn
	key   string
	stdin *stdinQueue // from the reader to the run; closed when reading ends

	started atomic.Bool
	kill    context.CancelFunc // ends the run; set before started
	killed  atomic.Bool        // the client sent a signal

	out *outbox.Outbox // the run's messages to the client; set by run

	mu    sync.Mutex // guards carry
	carry map[executor.Stream][]byte
}

// serve reads the client's messages until the connection ends, then waits
// for the run.
func (s *wsSession) serve(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer s.conn.CloseNow()
	timer := time.AfterFunc(initTimeout, func() {
		if !s.started.Load() {
			s.conn.Close(closeInitTimeout, "Initialization Timeout")
		}
	})
	defer timer.Stop()

	done := make(chan struct{})
	c := s.read(ctx, done)
	if s.kill != nil {
		s.kill() // reading is over (either side closed, or a bad message): so is the run
	}
	s.stdin.close()
	if s.started.Load() {
		<-done
	}
	// Closing only now means a client that sees the close code knows the
	// run is over.
	if c.notice != "" {
		s.send(ctx, map[string]any{"type": "error", "message": c.notice})
	}
	if c.code != 0 {
		s.conn.Close(c.code, c.reason)
	}
}

// closing is how read wants the connection closed; zero when it is
// already closed.
type closing struct {
	code   websocket.StatusCode
	reason string
	notice string // sent as an error message first
}

func notified(msg string) closing {
	// Close reasons are limited to 123 bytes, so Piston sends the message
	// first and closes with a fixed reason.
	return closing{code: closeNotifiedError, reason: "Notified Error", notice: msg}
}

// overLimit closes with Piston's error code, a short reason and the
// details in an error message first.
func overLimit(reason, msg string) closing {
	return closing{code: closeNotifiedError, reason: reason, notice: msg}
}

// messageTooBig is a message over the limit of its phase.
type messageTooBig struct{ limit int64 }

func (e *messageTooBig) Error() string {
	return fmt.Sprintf("message larger than %d bytes (RUNHOST_MAX_WS_MESSAGE_BYTES after init, RUNHOST_MAX_BODY_BYTES for init)", e.limit)
}

// readMessage reads one data message, at most MaxBodyBytes before init
// (init carries the files) and MaxMessageSize after it (stdin or a
// signal). A larger one is not read further.
func (s *wsSession) readMessage(ctx context.Context) ([]byte, error) {
	_, r, err := s.conn.Reader(ctx)
	if err != nil {
		return nil, err
	}
	limit := s.h.d.MaxBodyBytes
	if s.started.Load() {
		limit = s.h.d.MaxMessageSize
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, &messageTooBig{limit: limit}
	}
	return b, nil
}

// read handles messages until the connection ends or a message calls for
// closing it, and says how to close. It starts the run on init; done is
// closed when the run is over.
func (s *wsSession) read(ctx context.Context, done chan struct{}) closing {
	for {
		data, err := s.readMessage(ctx)
		var tooBig *messageTooBig
		if errors.As(err, &tooBig) {
			return overLimit("Message Too Big", tooBig.Error())
		}
		if err != nil {
			return closing{}
		}
		var msg wsMessage
		if err := json.Unmarshal(data, &msg); err != nil {
			return notified("invalid message: " + err.Error())
		}
		switch msg.Type {
		case "init":
			if s.started.Load() {
				return closing{code: closeAlreadyInit, reason: "Already Initialized"}
			}
			var req jobRequest
			_ = json.Unmarshal(data, &req) // data is a JSON object: it decoded above
			j, err := newJob(req, s.h.entries(ctx), true)
			if err != nil {
				return notified(message(err))
			}
			runCtx, kill := context.WithCancel(ctx)
			s.kill = kill
			s.started.Store(true)
			stdin := s.feedStdin(&j)
			go func() {
				defer close(done)
				defer kill()
				defer stdin.Close() // ends the executor's copy of stdin
				s.run(runCtx, ctx, j)
			}()
		case "data":
			switch {
			case !s.started.Load():
				return closing{code: closeNotInit, reason: "Not yet initialized"}
			case msg.Stream != "stdin":
				return closing{code: closeOnlyStdin, reason: "Can only write to stdin"}
			}
			if err := s.stdin.push([]byte(msg.Data)); err != nil {
				return overLimit("Stdin Limit Exceeded", err.Error())
			}
		case "signal":
			switch {
			case !s.started.Load():
				return closing{code: closeNotInit, reason: "Not yet initialized"}
			case !validSignal(msg.Signal):
				return closing{code: closeBadSignal, reason: "Invalid signal"}
			}
			s.killed.Store(true)
			s.kill()
		}
		// Other types are ignored, as Piston does.
	}
}

// run admits and runs j, streaming its output, then sends exit and closes
// the connection. runCtx ends the run; ctx is the connection's.
func (s *wsSession) run(runCtx, ctx context.Context, j job) {
	s.out = outbox.New(outbox.Config{
		MaxBytes: s.h.d.MaxStreamBytes,
		Write: func(b []byte) error {
			wctx, cancel := context.WithTimeout(ctx, s.h.d.WriteTimeout)
			defer cancel()
			return s.conn.Write(wctx, websocket.MessageText, b)
		},
		OnFail: func(error) { s.kill() }, // the client stopped reading: so does the run
	})
	release, err := s.h.d.Admission.Acquire(runCtx, s.key)
	if err != nil {
		_ = s.out.Close()
		s.fail(ctx, err)
		return
	}
	defer release()
	s.queue(runCtx, map[string]any{"type": "runtime", "language": j.entry.Language, "version": j.entry.Version})
	s.queue(runCtx, map[string]any{"type": "stage", "stage": "run"})

	s.carry = map[executor.Stream][]byte{}
	j.req.Output = func(stream executor.Stream, p []byte) { s.output(runCtx, stream, p) }
	start := time.Now()
	res, err := s.h.d.Runner.Run(runCtx, j.req)
	release() // the run is over: its slot is free while the client reads the rest
	s.flush(runCtx)
	var failure error
	switch {
	case err != nil && s.killed.Load() && errors.Is(err, context.Canceled):
		s.queue(ctx, map[string]any{"type": "exit", "stage": "run", "code": nil, "signal": "SIGKILL"})
	case err != nil:
		failure = err
	default:
		o := outcomeOf(res.Result)
		s.queue(ctx, map[string]any{"type": "exit", "stage": "run", "code": o.code, "signal": o.signal})
	}
	werr := s.out.Close()
	audited := err
	if werr != nil && audited == nil {
		audited = werr
	}
	s.h.d.Audit(s.c, j.req, res, audited, time.Since(start))
	switch {
	case werr != nil:
		return // the client stopped reading; the library has closed the connection
	case failure != nil:
		s.fail(ctx, failure)
		return
	}
	s.conn.Close(closeJobCompleted, "Job Completed")
}

// feedStdin passes the client's stdin messages to the run as they come,
// through a pipe the caller closes when the run is over. A runtime without
// stdin gets none; its messages are dropped.
func (s *wsSession) feedStdin(j *job) io.Closer {
	pr, pw := io.Pipe()
	wanted := j.entry.stdin
	if wanted {
		j.req.StdinStream = pr
	}
	go func() {
		for {
			b, ok := s.stdin.next()
			if !ok {
				return
			}
			if wanted {
				_, _ = pw.Write(b) // fails once the run is over: drop the rest
			}
			s.stdin.done(len(b))
		}
	}()
	return pw
}

// output sends a chunk as a data message, keeping a character cut between
// chunks for the next one.
func (s *wsSession) output(ctx context.Context, stream executor.Stream, p []byte) {
	s.mu.Lock()
	b := append(s.carry[stream], p...)
	cut := len(b)
	for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if !utf8.FullRune(b[len(b)-i:]) {
				cut = len(b) - i
			}
			break
		}
	}
	s.carry[stream] = append([]byte(nil), b[cut:]...)
	if cut > 0 {
		s.sendData(ctx, stream, b[:cut])
	}
	s.mu.Unlock()
}

// flush sends what output kept back.
func (s *wsSession) flush(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, stream := range []executor.Stream{executor.Stdout, executor.Stderr} {
		if rest := s.carry[stream]; len(rest) > 0 {
			s.sendData(ctx, stream, rest)
		}
	}
	s.carry = map[executor.Stream][]byte{}
}

func (s *wsSession) sendData(ctx context.Context, stream executor.Stream, p []byte) {
	name := "stdout"
	if stream == executor.Stderr {
		name = "stderr"
	}
	s.queue(ctx, map[string]any{"type": "data", "stream": name, "data": string(p)})
}

// queue hands a message to the run's outbox; it waits only for room.
func (s *wsSession) queue(ctx context.Context, v any) {
	b, err := json.Marshal(v)
	if err == nil {
		_ = s.out.Send(ctx, b) // fails only once the run is being ended
	}
}

// fail tells the client why the run could not go on and closes with 4002.
func (s *wsSession) fail(ctx context.Context, err error) {
	if gone(err) {
		return
	}
	s.notify(ctx, message(err))
}

// notify sends an error message and closes with 4002, as Piston does.
func (s *wsSession) notify(ctx context.Context, msg string) {
	c := notified(msg)
	s.send(ctx, map[string]any{"type": "error", "message": c.notice})
	s.conn.Close(c.code, c.reason)
}

// send writes a message directly, outside a run's outbox.
func (s *wsSession) send(ctx context.Context, v any) {
	ctx, cancel := context.WithTimeout(ctx, s.h.d.WriteTimeout)
	defer cancel()
	_ = wsjson.Write(ctx, s.conn, v)
}
