package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/docker/docker/pkg/stdcopy"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/output"
	"github.com/runhost/runhost/internal/initproc"
)

// ErrSessionGone means the session's container is no longer there.
var ErrSessionGone = errors.New("session ended")

// Session is a container that serves one run after another: init reads a
// header per run, reports each run's exit, kills whatever the run left, and
// waits for the next. Files, /tmp and the run directory persist between runs.
type Session struct {
	e      *Executor
	c      *started
	frames chan rawFrame // init's output, frame by frame
	mu     sync.Mutex    // one run at a time
	closed chan struct{}
	once   sync.Once
}

type rawFrame struct {
	kind    byte
	payload []byte
}

var _ executor.Session = (*Session)(nil)

// StartSession starts a session container with job's image, limits and
// mounts. Its command, files and stdin are ignored: runs bring their own.
func (e *Executor) StartSession(ctx context.Context, job executor.Job) (executor.Session, error) {
	if err := e.init.ensure(ctx, e.engine, e.labels(job.Labels, time.Hour)); err != nil {
		return nil, err
	}
	s := step{Job: job}
	if ws := job.Workspace; ws != nil {
		s.mounts = append(s.mounts, bindMount(*ws))
	}
	c, err := e.start(ctx, s)
	if err != nil {
		if c != nil {
			e.remove(ctx, c.id)
		}
		return nil, err
	}
	sess := &Session{e: e, c: c, frames: make(chan rawFrame, 64), closed: make(chan struct{})}
	framed, pw := io.Pipe()
	go func() {
		// init's own complaints (before framing) are dropped: a session
		// reports failures per run, in frames.
		_, err := stdcopy.StdCopy(pw, io.Discard, c.stream.Reader)
		pw.CloseWithError(err)
	}()
	go func() {
		defer close(sess.frames)
		for {
			kind, p, err := initproc.ReadFrame(framed, nil)
			if err != nil {
				return
			}
			sess.frames <- rawFrame{kind, p}
		}
	}()
	return sess, nil
}

// ID is the session container's id.
func (s *Session) ID() string { return s.c.id }

// Run runs job in the session: its files go to job.FilesDir, its stdin is
// sent whole, and init enforces its timeout. A run that does not report
// back within the timeout and a margin ends the session.
func (s *Session) Run(ctx context.Context, job executor.Job) (executor.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return executor.Result{}, ErrSessionGone
	default:
	}
	frame, err := encodeFrame(step{Job: job, session: true})
	if err != nil {
		return executor.Result{}, err
	}
	if _, err := s.c.stream.Conn.Write(append(frame, job.Stdin...)); err != nil {
		s.Close()
		return executor.Result{}, fmt.Errorf("%w: %v", ErrSessionGone, err)
	}
	stdout, stderr := output.NewCapped(job.Limits.OutputBytes), output.NewCapped(job.Limits.OutputBytes)
	backstop := time.NewTimer(job.Limits.Timeout + 5*time.Second)
	defer backstop.Stop()
	for {
		select {
		case f, ok := <-s.frames:
			if !ok {
				s.Close()
				return executor.Result{}, fmt.Errorf("%w: its container stopped", ErrSessionGone)
			}
			switch f.kind {
			case initproc.FrameStdout:
				emit(job.Output, executor.Stdout, stdout.Keep(f.payload))
			case initproc.FrameStderr:
				emit(job.Output, executor.Stderr, stderr.Keep(f.payload))
			case initproc.FrameExit:
				var ex initproc.Exit
				if err := json.Unmarshal(f.payload, &ex); err != nil {
					s.Close()
					return executor.Result{}, fmt.Errorf("session: bad exit frame: %w", err)
				}
				return executor.Result{
					Stage:           executor.StageRun,
					ExitCode:        ex.Code,
					TimedOut:        ex.TimedOut,
					OOMKilled:       ex.OOMKilled,
					Duration:        time.Duration(ex.DurationMS) * time.Millisecond,
					Stdout:          stdout.Bytes(),
					Stderr:          stderr.Bytes(),
					StdoutTruncated: stdout.Truncated(),
					StderrTruncated: stderr.Truncated(),
				}, nil
			}
		case <-backstop.C:
			s.Close()
			return executor.Result{Stage: executor.StageRun, TimedOut: true, ExitCode: 137}, nil
		case <-ctx.Done():
			// The caller went away mid-run: the session cannot tell where
			// this run's output ends, so it ends too.
			s.Close()
			return executor.Result{}, ctx.Err()
		}
	}
}

// Close removes the session's container. It is safe to call more than once.
func (s *Session) Close() error {
	s.once.Do(func() {
		close(s.closed)
		s.c.stream.Close()
		s.c.cancel()
		s.e.removeAsync(s.c.id)
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
