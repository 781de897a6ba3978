// Package frames is the host's side of runhost-init's protocol, shared by
// every executor: the frame a job becomes on the container's stdin, and the
// reader of init's output frames.
package frames

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/executor/output"
	"github.com/runhost/runhost/internal/initproc"
)

// Encode builds what init reads ahead of the program's stdin: the header
// (files, command, environment, working directory, timeout) and the
// files' contents. extra, if not nil, adjusts the header (an executor's
// own needs: a ready mark, a forward, session mode).
func Encode(job executor.Job, extra func(*initproc.Header)) ([]byte, error) {
	dir := job.FilesDir
	if dir == "" {
		dir = executor.RunDir
	}
	h := initproc.Header{
		Dir:       dir,
		WorkDir:   job.WorkDir,
		Command:   job.Command,
		Env:       job.Env,
		TimeoutMS: job.Limits.Timeout.Milliseconds(),
	}
	if job.Limits.StopAtOutputLimit {
		h.OutputLimit = job.Limits.OutputBytes
	}
	if k := job.Kernel; k != nil {
		h.Kernel = &initproc.Kernel{Protocol: k.Protocol, InterruptGraceMS: k.InterruptGrace.Milliseconds(), ResultLimit: k.ResultBytes}
	}
	h.Cell = job.Cell
	if extra != nil {
		extra(&h)
	}
	if h.Session {
		h.StdinSize = int64(len(job.Stdin))
	}
	contents := make([][]byte, 0, len(job.Files)+len(job.RunFiles))
	size := 0
	for _, f := range job.Files {
		h.Files = append(h.Files, initproc.FileHeader{Path: f.Path})
		contents = append(contents, f.Content)
		size += len(f.Content)
	}
	for _, f := range job.RunFiles {
		h.Files = append(h.Files, initproc.FileHeader{Path: f.Path, Dir: executor.RunDir})
		contents = append(contents, f.Content)
		size += len(f.Content)
	}
	var buf bytes.Buffer
	buf.Grow(size + 4096)
	if err := initproc.WriteFrame(&buf, h, contents); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Reader turns init's output frames into capped stdout and stderr, a live
// copy for streaming, and the run's exit.
type Reader struct {
	stdout, stderr *output.Capped
	sink           func(executor.Stream, []byte)
	rawStdout      io.Writer
	exit           chan initproc.Exit
	done           chan struct{}
}

// NewReader caps each stream at limit bytes; sink, if not nil, receives
// the kept bytes as they come.
func NewReader(limit int64, sink func(executor.Stream, []byte)) *Reader {
	return &Reader{
		sink:   sink,
		stdout: output.NewCapped(limit),
		stderr: output.NewCapped(limit),
		exit:   make(chan initproc.Exit, 1),
		done:   make(chan struct{}),
	}
}

// StdoutTo sends the program's stdout to w as it comes, whole: nothing of
// it is kept, capped or given to the sink, and the result's Stdout stays
// empty (a builder's image archive, streamed to the engine). A slow w
// slows the program down. Call it before Read.
func (f *Reader) StdoutTo(w io.Writer) { f.rawStdout = w }

// Exit delivers the exit frame, once.
func (f *Reader) Exit() <-chan initproc.Exit { return f.exit }

// Done is closed when Read returns.
func (f *Reader) Done() <-chan struct{} { return f.done }

// Read consumes frames from r until the exit frame or the end of r.
func (f *Reader) Read(r io.Reader) {
	defer close(f.done)
	buf := make([]byte, 64<<10)
	for {
		kind, p, err := initproc.ReadFrame(r, buf)
		if err != nil {
			return
		}
		switch kind {
		case initproc.FrameStdout:
			if f.rawStdout != nil {
				_, _ = f.rawStdout.Write(p)
				continue
			}
			f.emit(executor.Stdout, f.stdout.Keep(p))
		case initproc.FrameStderr:
			f.emit(executor.Stderr, f.stderr.Keep(p))
		case initproc.FrameExit:
			var ex initproc.Exit
			if json.Unmarshal(p, &ex) == nil {
				f.exit <- ex
			}
			return
		}
	}
}

func (f *Reader) emit(s executor.Stream, kept []byte) {
	if f.sink != nil && len(kept) > 0 {
		f.sink(s, kept)
	}
}

// Result is the run's result; call it after the exit frame or Done.
func (f *Reader) Result(ex initproc.Exit) executor.Result {
	return result(ex, f.stdout, f.stderr)
}

// result is a run's result from its exit frame and its capped output.
func result(ex initproc.Exit, stdout, stderr *output.Capped) executor.Result {
	return executor.Result{
		Stage:           executor.StageRun,
		ExitCode:        ex.Code,
		TimedOut:        ex.TimedOut,
		OOMKilled:       ex.OOMKilled,
		CappedFull:      ex.CappedFull,
		Restarted:       ex.Restarted,
		CellError:       cellError(ex.CellError),
		Duration:        time.Duration(ex.DurationMS) * time.Millisecond,
		Stdout:          stdout.Bytes(),
		Stderr:          stderr.Bytes(),
		StdoutTruncated: stdout.Truncated(),
		StderrTruncated: stderr.Truncated(),
		OutputLimited:   ex.OutputLimitExceeded,
		Network:         networkLog(ex.Network),
	}
}

func networkLog(n *initproc.NetworkLog) *executor.NetworkLog {
	if n == nil {
		return nil
	}
	return &executor.NetworkLog{Contacted: n.Contacted, Refused: n.Refused, Failed: n.Failed}
}

func cellError(e *initproc.CellError) *executor.CellError {
	if e == nil {
		return nil
	}
	return &executor.CellError{Name: e.Name, Value: e.Value, Traceback: e.Traceback}
}

// richResult decodes a result frame; a malformed one becomes a note in
// text/plain rather than nothing.
func richResult(p []byte) executor.RichResult {
	var r executor.RichResult
	if err := json.Unmarshal(p, &r); err != nil || len(r.Data) == 0 {
		note, _ := json.Marshal(fmt.Sprintf("[a result the host could not read: %v]", err))
		return executor.RichResult{Data: map[string]json.RawMessage{"text/plain": note}}
	}
	return r
}
