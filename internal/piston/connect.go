package piston

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/labstack/echo/v4"

	"github.com/runhost/runhost/internal/executor"
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

// writeTimeout bounds one message to a client that stopped reading.
const writeTimeout = 10 * time.Second

// stdinQueue is how many stdin messages may wait for the program, so a
// program that does not read cannot stall the reading of signals.
const stdinQueue = 256

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
func (h *handler) connect(c echo.Context) error {
	conn, err := websocket.Accept(c.Response(), c.Request(), nil)
	if err != nil {
		return nil // Accept has answered the request
	}
	// An init message carries the files, so it may be as large as an
	// execute body (the library's default is 32 KiB).
	conn.SetReadLimit(h.d.MaxBodyBytes)
	s := &wsSession{h: h, c: c, conn: conn, key: h.d.KeyID(c), stdin: make(chan []byte, stdinQueue)}
	s.serve(c.Request().Context())
	return nil
}

type wsSession struct {
	h     *handler
	c     echo.Context // the upgraded request; valid until serve returns
	conn  *websocket.Conn
	key   string
	stdin chan []byte // from the reader to the run; closed when reading ends

	started atomic.Bool
	kill    context.CancelFunc // ends the run; set before started
	killed  atomic.Bool        // the client sent a signal

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
	close(s.stdin)
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

// read handles messages until the connection ends or a message calls for
// closing it, and says how to close. It starts the run on init; done is
// closed when the run is over.
func (s *wsSession) read(ctx context.Context, done chan struct{}) closing {
	for {
		_, data, err := s.conn.Read(ctx)
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
				return notified(err.Error())
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
			s.stdin <- []byte(msg.Data)
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
	release, err := s.h.d.Admission.Acquire(runCtx, s.key)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	defer release()
	s.send(ctx, map[string]any{"type": "runtime", "language": j.entry.Language, "version": j.entry.Version})
	s.send(ctx, map[string]any{"type": "stage", "stage": "run"})

	s.carry = map[executor.Stream][]byte{}
	j.req.Output = func(stream executor.Stream, p []byte) { s.output(ctx, stream, p) }
	start := time.Now()
	res, err := s.h.d.Runner.Run(runCtx, j.req)
	s.flush(ctx)
	s.h.d.Audit(s.c, j.req, res, err, time.Since(start))
	switch {
	case err != nil && s.killed.Load() && errors.Is(err, context.Canceled):
		s.send(ctx, map[string]any{"type": "exit", "stage": "run", "code": nil, "signal": "SIGKILL"})
	case err != nil:
		s.fail(ctx, err)
		return
	default:
		o := outcomeOf(res.Result)
		s.send(ctx, map[string]any{"type": "exit", "stage": "run", "code": o.code, "signal": o.signal})
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
		for b := range s.stdin {
			if wanted {
				_, _ = pw.Write(b) // fails once the run is over: drop the rest
			}
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
	s.mu.Unlock()
	if cut > 0 {
		s.sendData(ctx, stream, b[:cut])
	}
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
	s.send(ctx, map[string]any{"type": "data", "stream": name, "data": string(p)})
}

// fail tells the client why the run could not go on and closes with 4002.
func (s *wsSession) fail(ctx context.Context, err error) {
	if status, _ := statusOf(err); status == 0 {
		return // the client is gone
	}
	_, msg := statusOf(err)
	s.notify(ctx, msg)
}

// notify sends an error message and closes with 4002, as Piston does.
func (s *wsSession) notify(ctx context.Context, msg string) {
	c := notified(msg)
	s.send(ctx, map[string]any{"type": "error", "message": c.notice})
	s.conn.Close(c.code, c.reason)
}

func (s *wsSession) send(ctx context.Context, v any) {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	_ = wsjson.Write(ctx, s.conn, v)
}
