// Package fakeexec is an executor.Executor for tests that need no engine.
// It records every job, build and session it is given and answers with
// scripted results, keeping the contract real executors keep: a run ends
// when its context does, output is capped at the job's limit and streamed
// to Output as the result holds it, a session serves runs until it is
// closed or dies, and a closed session's run is executor.ErrSessionGone.
//
// It decides nothing: what a job may do is the policy's, as with the real
// executors. The proof that a feature works on an engine stays with the
// tests against a real one (internal/e2e).
package fakeexec

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/runhost/runhost/internal/executor"
)

// Script answers a job: the program's result, or an error when the engine
// could not run it. It runs while the job does; returning ends the job.
type Script func(ctx context.Context, job executor.Job) (executor.Result, error)

// Exit is a script that exits with code, printing stdout and stderr.
func Exit(code int, stdout, stderr string) Script {
	return func(context.Context, executor.Job) (executor.Result, error) {
		return executor.Result{ExitCode: code, Stdout: []byte(stdout), Stderr: []byte(stderr)}, nil
	}
}

// Fail is a script for an engine that cannot run the job.
func Fail(err error) Script {
	return func(context.Context, executor.Job) (executor.Result, error) { return executor.Result{}, err }
}

// Hang is a script for a program that runs until the caller gives up: it
// ends when the job's context does, with the context's error, as a real
// executor's run does when its caller goes away.
func Hang(started chan<- executor.Job) Script {
	return func(ctx context.Context, job executor.Job) (executor.Result, error) {
		if started != nil {
			started <- job
		}
		<-ctx.Done()
		return executor.Result{}, ctx.Err()
	}
}

// TimedOut is a script for a program killed at its timeout.
func TimedOut() Script {
	return func(_ context.Context, job executor.Job) (executor.Result, error) {
		return executor.Result{ExitCode: 137, TimedOut: true, Duration: job.Limits.Timeout}, nil
	}
}

// Echo is a script that prints its stdin and its argv: what the default
// answer of a runtime looks like without an interpreter.
func Echo() Script {
	return func(_ context.Context, job executor.Job) (executor.Result, error) {
		return executor.Result{Stdout: job.Stdin, Stderr: fmt.Appendf(nil, "%q\n", job.Command)}, nil
	}
}

// Executor is the fake. The zero value is not usable; call New.
type Executor struct {
	mu       sync.Mutex
	run      Script
	build    func(ctx context.Context, b executor.Build) (executor.BuiltImage, error)
	start    func(ctx context.Context, job executor.Job) error
	missing  map[string]bool
	pingErr  error
	jobs     []executor.Job
	builds   []executor.Build
	sessions []*Session
	installs map[string]bool // install keys done: later ones are cached
	built    map[string]bool // build keys done
	closed   bool
}

var (
	_ executor.Executor = (*Executor)(nil)
	_ executor.Session  = (*Session)(nil)
)

// New returns an executor whose runs exit 0 with no output, whose images
// all exist and whose builds all succeed.
func New() *Executor {
	return &Executor{run: Exit(0, "", ""), missing: map[string]bool{}, installs: map[string]bool{}, built: map[string]bool{}}
}

// OnRun scripts every later run, in and out of sessions.
func (e *Executor) OnRun(s Script) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.run = s
}

// OnBuild scripts every later build; nil builds successfully.
func (e *Executor) OnBuild(f func(ctx context.Context, b executor.Build) (executor.BuiltImage, error)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.build = f
}

// OnStartSession scripts whether later sessions start: an error is the
// engine failing to start the container.
func (e *Executor) OnStartSession(f func(ctx context.Context, job executor.Job) error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.start = f
}

// SetMissing makes images absent from the engine.
func (e *Executor) SetMissing(images ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, img := range images {
		e.missing[img] = true
	}
}

// SetPingError makes Ping fail with err (nil: it answers).
func (e *Executor) SetPingError(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pingErr = err
}

// Jobs are the jobs run outside sessions, in order (an install step is
// part of its job).
func (e *Executor) Jobs() []executor.Job {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.jobs)
}

// Builds are the builds asked for, in order.
func (e *Executor) Builds() []executor.Build {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.builds)
}

// Sessions are the sessions started, in order, ended ones included.
func (e *Executor) Sessions() []*Session {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.sessions)
}

// Live counts the sessions whose container is still there.
func (e *Executor) Live() int {
	n := 0
	for _, s := range e.Sessions() {
		if !s.Ended() {
			n++
		}
	}
	return n
}

// Run runs job with the script.
func (e *Executor) Run(ctx context.Context, job executor.Job) (executor.Result, error) {
	e.mu.Lock()
	if e.missing[job.Image] {
		e.mu.Unlock()
		return executor.Result{}, fmt.Errorf("run %s: %w", job.Image, executor.ErrImageMissing)
	}
	e.jobs = append(e.jobs, job)
	script := e.run
	var install *executor.StepInfo
	if job.Install != nil {
		install = &executor.StepInfo{Cached: e.installs[job.Install.Key]}
		e.installs[job.Install.Key] = true
	}
	e.mu.Unlock()
	res, err := runScript(ctx, script, job)
	if err == nil {
		res.Install = install
	}
	return res, err
}

// runScript runs job with script the way an executor runs a container:
// not at all when ctx has ended, the output capped at the job's limit and
// streamed to job.Output, the stage and duration set.
func runScript(ctx context.Context, script Script, job executor.Job) (executor.Result, error) {
	if err := ctx.Err(); err != nil {
		return executor.Result{}, err
	}
	start := time.Now()
	res, err := script(ctx, job)
	if err != nil {
		return executor.Result{}, err
	}
	if res.Stage == "" {
		res.Stage = executor.StageRun
	}
	if res.Duration == 0 {
		res.Duration = time.Since(start)
	}
	if limit := job.Limits.OutputBytes; limit > 0 {
		capStream(&res.Stdout, &res.StdoutTruncated, limit)
		capStream(&res.Stderr, &res.StderrTruncated, limit)
		if (res.StdoutTruncated || res.StderrTruncated) && job.Limits.StopAtOutputLimit {
			res.OutputLimited, res.ExitCode = true, 137
		}
	}
	if job.Output != nil {
		if len(res.Stdout) > 0 {
			job.Output(executor.Stdout, res.Stdout)
		}
		if len(res.Stderr) > 0 {
			job.Output(executor.Stderr, res.Stderr)
		}
	}
	return res, nil
}

func capStream(b *[]byte, truncated *bool, limit int64) {
	if int64(len(*b)) > limit {
		*b, *truncated = (*b)[:limit], true
	}
}

// Ping answers, or fails as SetPingError said.
func (e *Executor) Ping(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pingErr != nil {
		return e.pingErr
	}
	return ctx.Err()
}

// ImageExists reports every image present but those SetMissing names.
func (e *Executor) ImageExists(_ context.Context, image string) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.missing[image], nil
}

// ResolveImage pins a present image to an ID made from its name.
func (e *Executor) ResolveImage(_ context.Context, ref string) (executor.ImageInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.missing[ref] {
		return executor.ImageInfo{}, fmt.Errorf("%s: %w", ref, executor.ErrImageMissing)
	}
	return executor.ImageInfo{Ref: ImageID(ref), Inspected: true, Cmd: []string{"sh"}}, nil
}

// ImageID is the ID ResolveImage pins ref to.
func ImageID(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Build records b and builds it with the script, or succeeds: an image
// whose command is true, cached when its key was built before.
func (e *Executor) Build(ctx context.Context, b executor.Build) (executor.BuiltImage, error) {
	e.mu.Lock()
	e.builds = append(e.builds, b)
	script := e.build
	cached := e.built[b.Key]
	e.built[b.Key] = true
	e.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return executor.BuiltImage{}, err
	}
	if script != nil {
		return script(ctx, b)
	}
	return executor.BuiltImage{Ref: ImageID("build:" + b.Key), Cached: cached, Cmd: []string{"true"}}, nil
}

// StartSession starts a session in job's container, unless the script
// says the engine cannot.
func (e *Executor) StartSession(ctx context.Context, job executor.Job) (executor.Session, error) {
	e.mu.Lock()
	start := e.start
	missing := e.missing[job.Image]
	e.mu.Unlock()
	if missing {
		return nil, fmt.Errorf("start session %s: %w", job.Image, executor.ErrImageMissing)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if start != nil {
		if err := start(ctx, job); err != nil {
			return nil, err
		}
	}
	s := &Session{exec: e, job: job, done: make(chan struct{}), files: map[string][]byte{}}
	e.mu.Lock()
	e.sessions = append(e.sessions, s)
	e.mu.Unlock()
	return s, nil
}

// Sweep finds nothing left behind: the fake leaves nothing.
func (e *Executor) Sweep(context.Context) (int, error) { return 0, nil }

// Close ends every session, as closing the host's engine client does.
func (e *Executor) Close() error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	for _, s := range e.Sessions() {
		_ = s.Close()
	}
	return nil
}

// Closed reports whether Close was called.
func (e *Executor) Closed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// Session is a fake session's container. Its state is the files runs put
// there: they stay for the next run, as in a real session's container.
type Session struct {
	exec *Executor
	job  executor.Job // the container's job

	mu     sync.Mutex
	runs   []executor.Job
	files  map[string][]byte
	ended  bool
	closed bool // by Close (not by dying)
	done   chan struct{}
}

// Job is the job the session's container was started with.
func (s *Session) Job() executor.Job { return s.job }

// Run runs job in the session with the executor's script; the files it
// brings stay in the session.
func (s *Session) Run(ctx context.Context, job executor.Job) (executor.Result, error) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return executor.Result{}, executor.ErrSessionGone
	}
	s.runs = append(s.runs, job)
	for _, f := range job.Files {
		s.files[f.Path] = f.Content
	}
	s.mu.Unlock()
	s.exec.mu.Lock()
	script := s.exec.run
	s.exec.mu.Unlock()
	return runScript(ctx, script, job)
}

// Runs are the jobs run in the session, in order.
func (s *Session) Runs() []executor.Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.runs)
}

// Files are the files runs left in the session, by path.
func (s *Session) Files() map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]byte, len(s.files))
	for k, v := range s.files {
		out[k] = v
	}
	return out
}

// Die ends the session as a container that goes away on its own does:
// Done is closed, later runs are executor.ErrSessionGone.
func (s *Session) Die() { s.end(false) }

// Close ends the session and removes its container.
func (s *Session) Close() error {
	s.end(true)
	return nil
}

func (s *Session) end(closed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if closed {
		s.closed = true
	}
	if !s.ended {
		s.ended = true
		close(s.done)
	}
}

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Ended reports whether the session has ended (closed or died).
func (s *Session) Ended() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// Closed reports whether the host closed the session.
func (s *Session) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
