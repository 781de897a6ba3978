package initproc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/runhost/runhost/internal/pathguard"
)

// Exit codes init uses for its own failures, as shells do.
const (
	ExitSetupFailed = 126 // the frame or the files could not be set up
	ExitNotFound    = 127 // the command does not exist
)

// Main is init's entry point. It never returns.
func Main() {
	os.Exit(run(os.Stdin, os.Stdout, os.Stderr))
}

// run serves one run, or in a session one run after another, and returns
// init's exit status.
func run(stdin *os.File, stdout, stderr io.Writer) int {
	out := &frameWriter{w: stdout}
	r := theReaper()
	h, err := ReadHeader(stdin)
	if err != nil {
		fmt.Fprintf(stderr, "runhost-init: %v\n", err)
		return ExitSetupFailed
	}
	if h.Forward != nil {
		fwd, err := startForward(*h.Forward)
		if err != nil {
			fmt.Fprintf(stderr, "runhost-init: %v\n", err)
			return ExitSetupFailed
		}
		out.network = fwd
	}
	if !h.Session {
		// One run: the files, then the rest of stdin is the program's.
		ex := runOne(h, stdin, stdin, nil, out, r)
		err := out.exit(ex)
		if h.Hold && err == nil && ex.Code == 0 && !ex.TimedOut {
			select {} // until the host kills the container
		}
		if h.LingerMS > 0 && err == nil {
			time.Sleep(time.Duration(h.LingerMS) * time.Millisecond) // or until the host removes the container
		}
		return ex.Code
	}
	serveSession(h, stdin, out, r)
	return 0
}

// sessionMessage is what the host sends a session: a run with its files and
// stdin, read whole, or a cancel (run == nil).
type sessionMessage struct {
	run  *Header
	body []byte // the files' contents, in order, then StdinSize bytes of stdin
	err  error  // the stream broke: the session ends
}

// serveSession runs one run after another. One goroutine owns stdin and
// reads message after message, so that a cancel can arrive while a run
// goes; runs are served in the order they arrive, and a cancel stops only
// the run in progress when it is read.
func serveSession(first Header, stdin io.Reader, out *frameWriter, r *reaper) {
	msgs := make(chan sessionMessage)
	go readSession(first, stdin, msgs)
	var queue []sessionMessage // read while an earlier run went
	ended := false             // stdin is closed: serve the queue, then stop
	var k *kernel              // the resident interpreter, in an interpreter session
	defer func() { k.close() }()
	for {
		var m sessionMessage
		switch {
		case len(queue) > 0:
			m, queue = queue[0], queue[1:]
		case ended:
			return
		default:
			var ok bool
			if m, ok = <-msgs; !ok {
				return
			}
		}
		if m.err != nil {
			_ = out.frame(FrameStderr, []byte(fmt.Sprintf("runhost-init: %v\n", m.err)))
			return
		}
		if m.run == nil {
			continue // a cancel for a run that had already ended
		}
		// Watch for a cancel while the run goes; anything else waits.
		cancel, stop, watched := make(chan struct{}), make(chan struct{}), make(chan struct{})
		go func() {
			defer close(watched)
			cancelled := false
			for !ended {
				select {
				case <-stop:
					return
				case next, ok := <-msgs:
					switch {
					case !ok:
						ended = true
					case next.run == nil && next.err == nil:
						if !cancelled {
							cancelled = true
							close(cancel)
						}
					default:
						queue = append(queue, next)
					}
				}
			}
		}()
		var ex Exit
		switch h := *m.run; {
		case h.Kernel != nil && k == nil:
			k, ex = startKernel(h, bytes.NewReader(m.body), out, r)
		case h.Kernel != nil:
			ex = Exit{Code: ExitSetupFailed, Error: "the session's interpreter is already running"}
		case h.Cell && k == nil:
			ex = Exit{Code: ExitSetupFailed, Error: "a cell, but no interpreter was started"}
		case h.Cell:
			ex = k.cell(h, bytes.NewReader(m.body), cancel)
		default:
			ex = runOne(h, bytes.NewReader(m.body), nil, cancel, out, r)
		}
		close(stop)
		<-watched
		if err := out.exit(ex); err != nil {
			return
		}
	}
}

// readSession reads the session's messages from stdin until it ends; first
// is the header already read, whose body follows.
func readSession(first Header, stdin io.Reader, msgs chan<- sessionMessage) {
	defer close(msgs)
	h := first
	for {
		body, err := readBody(h, stdin)
		if err != nil {
			msgs <- sessionMessage{err: err}
			return
		}
		run := h
		msgs <- sessionMessage{run: &run, body: body}
		for {
			h, err = ReadHeader(stdin)
			if !errors.Is(err, errCancel) {
				break
			}
			msgs <- sessionMessage{} // a cancel
		}
		if errors.Is(err, io.EOF) {
			return // the host closed the session
		}
		if err != nil {
			msgs <- sessionMessage{err: err}
			return
		}
	}
}

// readBody reads the files and the stdin a session run's header announces.
func readBody(h Header, r io.Reader) ([]byte, error) {
	var n int64
	for _, f := range h.Files {
		if f.Size < 0 {
			return nil, fmt.Errorf("file %s: negative size", f.Path)
		}
		n += f.Size
	}
	if h.StdinSize < 0 || n+h.StdinSize > maxSessionBody {
		return nil, fmt.Errorf("run of %d bytes: more than %d", n+h.StdinSize, maxSessionBody)
	}
	body := make([]byte, n+h.StdinSize)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("read run: %w", err)
	}
	return body, nil
}

// maxSessionBody bounds one session run's files and stdin held by init.
const maxSessionBody = 1 << 30

// runOne places the files (read from files), runs the command with its
// output framed, and returns how it ended. stdin, when not nil, is the
// program's stdin; otherwise (a session) the StdinSize bytes after the
// files are. A close of cancel kills the run.
func runOne(h Header, files io.Reader, stdin *os.File, cancel <-chan struct{}, out *frameWriter, r *reaper) Exit {
	failed := func(code int, err error) Exit {
		msg := fmt.Sprintf("runhost-init: %v\n", err)
		_ = out.frame(FrameStderr, []byte(msg))
		return Exit{Code: code, Error: err.Error()}
	}
	if err := placeFiles(h, files); err != nil {
		return failed(ExitSetupFailed, err)
	}
	childStdin := stdin
	if childStdin == nil {
		// Exactly StdinSize bytes belong to this run.
		pr, pw, err := os.Pipe()
		if err != nil {
			return failed(ExitSetupFailed, err)
		}
		data := make([]byte, h.StdinSize)
		if _, err := io.ReadFull(files, data); err != nil {
			pr.Close()
			pw.Close()
			return failed(ExitSetupFailed, fmt.Errorf("read stdin: %w", err))
		}
		go func() { _, _ = pw.Write(data); pw.Close() }()
		defer pr.Close()
		childStdin = pr
	}
	env := mergeEnv(os.Environ(), h.Env)
	argv0, err := lookPath(h.Command[0], envValue(env, "PATH"))
	if err != nil {
		return failed(ExitNotFound, err)
	}

	outR, outW, err := os.Pipe()
	if err != nil {
		return failed(ExitSetupFailed, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return failed(ExitSetupFailed, err)
	}
	oomBefore := oomKills()
	var full *fullWatch
	if h.Capped != "" {
		full = watchFull(h.Capped)
	}
	start := time.Now()
	r.mu.Lock() // the reaper must know the pid before it can reap it
	var exited <-chan syscall.WaitStatus
	pid, err := syscall.ForkExec(argv0, h.Command, &syscall.ProcAttr{
		Dir:   h.WorkDir,
		Env:   env,
		Files: []uintptr{childStdin.Fd(), outW.Fd(), errW.Fd()},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err == nil {
		exited = r.watch(pid)
	}
	r.mu.Unlock()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return failed(ExitNotFound, fmt.Errorf("start %s: %w", h.Command[0], err))
	}

	// overLimit is closed when a stream passes h.OutputLimit.
	overLimit := make(chan struct{})
	var overOnce sync.Once
	var copying sync.WaitGroup
	for _, p := range []struct {
		f    *os.File
		kind byte
	}{{outR, FrameStdout}, {errR, FrameStderr}} {
		copying.Add(1)
		go func() {
			defer copying.Done()
			defer p.f.Close()
			buf := make([]byte, 32<<10)
			var written int64
			for {
				n, err := p.f.Read(buf)
				if n > 0 {
					chunk := buf[:n]
					if h.OutputLimit > 0 && written+int64(n) > h.OutputLimit {
						// One byte past the limit marks the stream truncated
						// on the host; nothing more is sent.
						chunk = chunk[:max(0, min(int64(n), h.OutputLimit+1-written))]
						overOnce.Do(func() { close(overLimit) })
					}
					if len(chunk) > 0 {
						_ = out.frame(p.kind, chunk)
					}
					written += int64(len(chunk))
				}
				if err != nil {
					return
				}
			}
		}()
	}

	var timeout <-chan time.Time
	if h.TimeoutMS > 0 {
		t := time.NewTimer(time.Duration(h.TimeoutMS) * time.Millisecond)
		defer t.Stop()
		timeout = t.C
	}
	ex := Exit{}
	var status syscall.WaitStatus
	select {
	case status = <-exited:
	case <-timeout:
		ex.TimedOut = true
		killRun(pid)
		status = <-exited
	case <-overLimit:
		ex.OutputLimitExceeded = true
		killRun(pid)
		status = <-exited
	case <-cancel:
		ex.Cancelled = true
		killRun(pid)
		status = <-exited
	}
	ex.DurationMS = time.Since(start).Milliseconds()
	// The run is over when its main process is: whatever it left running
	// goes too, which also closes the pipes those processes held.
	killRun(pid)
	drained := make(chan struct{})
	go func() { copying.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(2 * time.Second):
	}
	select {
	case <-overLimit: // the program ended on its own, past the limit
		ex.OutputLimitExceeded = true
	default:
	}
	ex.Code = exitCode(status)
	ex.OOMKilled = oomKills() > oomBefore
	if full != nil {
		ex.CappedFull = full.stop()
	}
	if ex.Code == 0 && h.ReadyFile != "" {
		if err := os.WriteFile(h.ReadyFile, nil, 0o644); err != nil {
			return failed(ExitSetupFailed, fmt.Errorf("mark %s ready: %w", h.ReadyFile, err))
		}
	}
	return ex
}

// frameWriter serialises frames from several goroutines onto one stream.
type frameWriter struct {
	mu sync.Mutex
	w  io.Writer
	// network, when set, reports what the run asked the egress proxy
	// for since the last exit frame, in every exit frame.
	network *forwarder
}

func (f *frameWriter) frame(kind byte, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return WriteOutputFrame(f.w, kind, p)
}

func (f *frameWriter) exit(ex Exit) error {
	if f.network != nil {
		ex.Network = f.network.report()
	}
	js, _ := json.Marshal(ex)
	return f.frame(FrameExit, js)
}

// killRun kills the run's process group and, when init is PID 1 of a
// container, every other process in it: a run cannot outlive itself by
// leaving its group (setsid, double forks).
func killRun(pid int) {
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	if os.Getpid() != 1 {
		return
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if p, err := strconv.Atoi(e.Name()); err == nil && p > 1 {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

// reaper reaps every child (orphans are re-parented to init) and hands the
// status of watched pids to whoever waits for them.
type reaper struct {
	mu      sync.Mutex
	waiting map[int]chan syscall.WaitStatus
}

// theReaper is the process's one reaper: two would steal each other's
// children.
var theReaper = sync.OnceValue(func() *reaper {
	r := newReaper()
	forwardSignals(r)
	return r
})

func newReaper() *reaper {
	r := &reaper{waiting: map[int]chan syscall.WaitStatus{}}
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	go func() {
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, 0, nil)
			if err != nil {
				if errors.Is(err, syscall.EINTR) {
					continue
				}
				<-chld // no children: wait for one to exist and end
				continue
			}
			r.mu.Lock()
			if ch, ok := r.waiting[pid]; ok {
				ch <- ws
				delete(r.waiting, pid)
			}
			r.mu.Unlock()
		}
	}()
	return r
}

// watch registers pid and returns where its exit status will arrive;
// call with r.mu held, right after starting it. The caller keeps the
// channel: the reaper forgets pid once it has delivered, which can be
// before the caller starts waiting (a program that exits at once).
func (r *reaper) watch(pid int) <-chan syscall.WaitStatus {
	ch := make(chan syscall.WaitStatus, 1)
	r.waiting[pid] = ch
	return ch
}

// forwardSignals passes the signals a container gets (docker stop, kill)
// on to the running programs.
func forwardSignals(r *reaper) {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for sig := range sigs {
			r.mu.Lock()
			for pid := range r.waiting {
				_ = syscall.Kill(-pid, sig.(syscall.Signal))
			}
			r.mu.Unlock()
		}
	}()
}

func exitCode(ws syscall.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	default:
		return ExitSetupFailed
	}
}

// oomKills is the container's count of OOM kills (cgroup v2 memory.events,
// or v1 memory.oom_control), or 0 when neither is readable.
func oomKills() int64 {
	for _, f := range []string{"/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"} {
		file, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "oom_kill "); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				file.Close()
				return n
			}
		}
		file.Close()
	}
	return 0
}

// placeFiles writes each file of the frame under h.Dir. Paths are checked
// again here, and os.Root keeps every path, symlinks included, inside Dir.
func placeFiles(h Header, r io.Reader) error {
	if !filepath.IsAbs(h.Dir) || filepath.Clean(h.Dir) != h.Dir {
		return fmt.Errorf("run directory %q is not an absolute clean path", h.Dir)
	}
	if !filepath.IsAbs(h.WorkDir) || filepath.Clean(h.WorkDir) != h.WorkDir {
		return fmt.Errorf("working directory %q is not an absolute clean path", h.WorkDir)
	}
	roots := map[string]*os.Root{}
	defer func() {
		for _, r := range roots {
			r.Close()
		}
	}()
	open := func(dir string) (*os.Root, error) {
		if r, ok := roots[dir]; ok {
			return r, nil
		}
		if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
			return nil, fmt.Errorf("directory %q is not an absolute clean path", dir)
		}
		r, err := os.OpenRoot(dir)
		if err != nil {
			return nil, err
		}
		roots[dir] = r
		return r, nil
	}
	root, err := open(h.Dir)
	if err != nil {
		return err
	}
	for _, f := range h.Files {
		if err := pathguard.Check(f.Path); err != nil {
			return err
		}
		root := root
		if f.Dir != "" {
			if root, err = open(f.Dir); err != nil {
				return err
			}
		}
		if err := mkdirAll(root, filepath.Dir(f.Path)); err != nil {
			return err
		}
		// O_TRUNC, not O_EXCL: in a workspace or a session the file may
		// exist from an earlier run.
		out, err := root.OpenFile(f.Path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		_, err = io.CopyN(out, r, f.Size)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", f.Path, err)
		}
	}
	// A working directory in the run directory is created; one elsewhere
	// (an image's WORKDIR) must exist already.
	if rel, err := filepath.Rel(h.Dir, h.WorkDir); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
		if err := mkdirAll(roots[h.Dir], rel); err != nil {
			return err
		}
	}
	return nil
}

func mkdirAll(root *os.Root, dir string) error {
	if dir == "." || dir == "" {
		return nil
	}
	err := root.MkdirAll(dir, 0o755)
	if err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return nil
}

// mergeEnv returns base with overrides applied (later entries win).
func mergeEnv(base, overrides []string) []string {
	idx := map[string]int{}
	out := make([]string, 0, len(base)+len(overrides))
	for _, kv := range append(base, overrides...) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// defaultPath is used when the environment has no PATH.
const defaultPath = "/usr/local/bin:/usr/bin:/bin"

// lookPath finds name in the job's PATH (not init's).
func lookPath(name, pathEnv string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	if pathEnv == "" {
		pathEnv = defaultPath
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: command not found in PATH %s", name, pathEnv)
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}
