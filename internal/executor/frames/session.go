package frames

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/output"
	"github.com/runhost/runhost/internal/initproc"
)

// Session is the host's side of a session container, whatever the engine:
// init reads a header per run on the container's stdin, reports each run's
// output and exit in frames, kills whatever the run left, and waits for the
// next. An executor starts the container, attaches to it, and hands the two
// ends of the attachment here.
type Session struct {
	stdin  io.Writer
	frames chan rawFrame // init's output, frame by frame
	end    func()        // detaches and removes the container
	mu     sync.Mutex    // one run at a time
	closed chan struct{}
	once   sync.Once
	// forward goes in the first run's header: init starts it with the
	// session and keeps it for every run.
	forward *initproc.Forward
	started bool
}

type rawFrame struct {
	kind    byte
	payload []byte
}

var _ executor.Session = (*Session)(nil)

// NewSession serves runs over stdin (init's input) and framed (init's
// output frames, without the engine's own multiplexing). end is called once,
// when the session is closed or framed ends (the container went away).
func NewSession(stdin io.Writer, framed io.Reader, end func()) *Session {
	s := &Session{stdin: stdin, frames: make(chan rawFrame, 64), end: end, closed: make(chan struct{})}
	go func() {
		defer s.Close() // the container went away: so did the session
		defer close(s.frames)
		for {
			kind, p, err := initproc.ReadFrame(framed, nil)
			if err != nil {
				return
			}
			s.frames <- rawFrame{kind, p}
		}
	}()
	return s
}

// Run runs job in the session: its files go to job.FilesDir, its stdin is
// sent whole, and init enforces its timeout. A run that does not report
// back within the timeout and a margin ends the session.
func (s *Session) Run(ctx context.Context, job executor.Job) (executor.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return executor.Result{}, executor.ErrSessionGone
	default:
	}
	frame, err := Encode(job, func(h *initproc.Header) {
		h.Session = true
		if !s.started {
			h.Forward = s.forward
		}
	})
	if err != nil {
		return executor.Result{}, err
	}
	if _, err := s.stdin.Write(append(frame, job.Stdin...)); err != nil {
		s.Close()
		return executor.Result{}, fmt.Errorf("%w: %v", executor.ErrSessionGone, err)
	}
	s.started = true
	stdout, stderr := output.NewCapped(job.Limits.OutputBytes), output.NewCapped(job.Limits.OutputBytes)
	var results []executor.RichResult
	backstop := time.NewTimer(job.Limits.Timeout + 5*time.Second)
	defer backstop.Stop()
	for {
		select {
		case f, ok := <-s.frames:
			if !ok {
				s.Close()
				return executor.Result{}, fmt.Errorf("%w: its container stopped", executor.ErrSessionGone)
			}
			switch f.kind {
			case initproc.FrameStdout:
				emit(job.Output, executor.Stdout, stdout.Keep(f.payload))
			case initproc.FrameStderr:
				emit(job.Output, executor.Stderr, stderr.Keep(f.payload))
			case initproc.FrameResult:
				r := richResult(f.payload)
				results = append(results, r)
				if job.Results != nil {
					job.Results(r)
				}
			case initproc.FrameExit:
				var ex initproc.Exit
				if err := json.Unmarshal(f.payload, &ex); err != nil {
					s.Close()
					return executor.Result{}, fmt.Errorf("session: bad exit frame: %w", err)
				}
				res := result(ex, stdout, stderr)
				res.Results = results
				return res, nil
			}
		case <-backstop.C:
			s.Close()
			return executor.Result{Stage: executor.StageRun, TimedOut: true, ExitCode: 137}, nil
		case <-ctx.Done():
			// The caller went away mid-run: stop this run, as a timeout
			// would, and keep the session.
			return executor.Result{}, s.cancel(ctx.Err())
		}
	}
}

// cancelGrace is how long a cancelled run may take to report its exit
// before the session is ended instead.
const cancelGrace = 10 * time.Second

// cancel asks init to stop the run in progress and waits for its exit
// frame, discarding its output, so the next run starts on a clean stream.
// A session that cannot be brought back (init does not answer) is ended.
// It returns cause.
func (s *Session) cancel(cause error) error {
	if _, err := io.WriteString(s.stdin, initproc.CancelMagic); err != nil {
		s.Close()
		return cause
	}
	grace := time.NewTimer(cancelGrace)
	defer grace.Stop()
	for {
		select {
		case f, ok := <-s.frames:
			if !ok {
				s.Close()
				return cause
			}
			if f.kind == initproc.FrameExit {
				return cause
			}
		case <-grace.C:
			s.Close()
			return cause
		}
	}
}

// Forward makes the session's container forward to the egress proxy
// (init starts f with the first run). Call it before the first Run.
func (s *Session) Forward(f *initproc.Forward) { s.forward = f }

// Close ends the session and removes its container. It is safe to call
// more than once.
func (s *Session) Close() error {
	s.once.Do(func() {
		close(s.closed)
		s.end()
	})
	return nil
}

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.closed }

func emit(sink func(executor.Stream, []byte), s executor.Stream, kept []byte) {
	if sink != nil && len(kept) > 0 {
		sink(s, kept)
	}
}
