package initproc

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// An interpreter session keeps one program resident: a kernel driver that
// a runtime plugin ships (see shared.Kernel). init starts it when a session
// run's header carries Kernel, and then serves cells (headers with Cell set,
// whose stdin is the cell's code) by talking to the driver over two pipes,
// the protocol KernelProtocol:
//
//	fd 3 (driver reads):  uint32 big-endian length | JSON {"id", "code"}
//	fd 4 (driver writes): uint32 big-endian length | JSON event
//	events: {"type":"ready"}, {"type":"result","data":{mime:value},"metadata":{}},
//	        {"type":"done","error":null | {"name","value","traceback"}}
//
// The driver's stdout and stderr are the cell's, framed as a run's are. A
// cell past its timeout (or cancelled, or past the output limit) is
// interrupted with SIGINT, repeated every interruptAgain until it ends (a
// driver takes one interrupt per cell); a driver that does not finish the cell within
// the grace period, or that dies, is killed and started again, and the
// cell's exit says Restarted.

// KernelProtocol is the only driver protocol init speaks.
const KernelProtocol = "runhost-kernel/1"

// interruptAgain is how often an interrupted cell that has not ended gets
// SIGINT again.
const interruptAgain = 50 * time.Millisecond

// Kernel starts a session's resident driver (see above).
type Kernel struct {
	Protocol string `json:"protocol"`
	// InterruptGraceMS is how long an interrupted cell may take to finish
	// before the driver is restarted.
	InterruptGraceMS int64 `json:"interrupt_grace_ms,omitempty"`
	// ResultLimit bounds the bytes of rich results of one cell; a result
	// past it is replaced by a note.
	ResultLimit int64 `json:"result_limit,omitempty"`
}

// CellError is the exception a cell raised.
type CellError struct {
	Name      string   `json:"name"`
	Value     string   `json:"value"`
	Traceback []string `json:"traceback,omitempty"`
}

// FrameResult carries one rich result of a cell: {"data", "metadata"}.
const FrameResult byte = 'r'

// maxEventBytes bounds one event from a driver (a figure, a table).
const maxEventBytes = 256 << 20

// kernelEvent is one event of the driver.
type kernelEvent struct {
	Type     string          `json:"type"`
	ID       int64           `json:"id"`
	Data     json.RawMessage `json:"data,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
	Error    *CellError      `json:"error,omitempty"`
	raw      []byte          // the whole event, for results
	tooLarge int64           // set instead of raw for a result over the limit
}

// kernel is the session's resident driver.
type kernel struct {
	start Header // how it was started, to start it again
	out   *frameWriter
	r     *reaper

	pid    int
	exited <-chan syscall.WaitStatus
	req    *os.File         // fd 3's other end
	events chan kernelEvent // closed when the driver closes fd 4 (dies)
	outR   *os.File
	errR   *os.File
	fds    [2]int // outR's and errR's descriptors, non-blocking (never call Fd again: it makes them blocking)
	nextID int64

	// mu orders reading the driver's stdout and stderr: a copier reads
	// and frames under it, and a drain after the cell holds it while it
	// takes what is left, so no byte is read and not yet framed.
	mu      sync.Mutex
	active  bool     // a cell is going: output is framed
	perOut  [2]int64 // this cell's bytes so far, by stream
	limit   int64    // the cell's output limit
	over    chan struct{}
	overOne sync.Once
	copying sync.WaitGroup
}

// startKernel places the header's files and starts its command as the
// session's driver, waiting for it to say it is ready.
func startKernel(h Header, files io.Reader, out *frameWriter, r *reaper) (*kernel, Exit) {
	failed := func(err error) Exit {
		_ = out.frame(FrameStderr, []byte(fmt.Sprintf("runhost-init: %v\n", err)))
		return Exit{Code: ExitSetupFailed, Error: err.Error()}
	}
	if h.Kernel.Protocol != KernelProtocol {
		return nil, failed(fmt.Errorf("kernel protocol %q: this init speaks %s", h.Kernel.Protocol, KernelProtocol))
	}
	if err := placeFiles(h, files); err != nil {
		return nil, failed(err)
	}
	k := &kernel{start: h, out: out, r: r}
	if err := k.spawn(); err != nil {
		return nil, failed(err)
	}
	return k, Exit{}
}

// spawn starts the driver and waits for its ready event.
func (k *kernel) spawn() error {
	h := k.start
	env := mergeEnv(os.Environ(), h.Env)
	argv0, err := lookPath(h.Command[0], envValue(env, "PATH"))
	if err != nil {
		return err
	}
	var pipes []*os.File
	pipe := func() (*os.File, *os.File, error) {
		pr, pw, err := os.Pipe()
		if err == nil {
			pipes = append(pipes, pr, pw)
		}
		return pr, pw, err
	}
	closeAll := func() {
		for _, p := range pipes {
			p.Close()
		}
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	outR, outW, err1 := pipe()
	errR, errW, err2 := pipe()
	reqR, reqW, err3 := pipe()
	evR, evW, err4 := pipe()
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		closeAll()
		return err
	}
	k.r.mu.Lock()
	pid, err := syscall.ForkExec(argv0, h.Command, &syscall.ProcAttr{
		Dir:   h.WorkDir,
		Env:   env,
		Files: []uintptr{devnull.Fd(), outW.Fd(), errW.Fd(), reqR.Fd(), evW.Fd()},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err == nil {
		k.exited = k.r.watch(pid)
	}
	k.r.mu.Unlock()
	outW.Close()
	errW.Close()
	reqR.Close()
	evW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		reqW.Close()
		evR.Close()
		return fmt.Errorf("start %s: %w", h.Command[0], err)
	}
	k.pid, k.req, k.outR, k.errR = pid, reqW, outR, errR
	k.fds = [2]int{int(outR.Fd()), int(errR.Fd())}
	k.events = make(chan kernelEvent, 16)
	go k.readEvents(evR)
	for i, fd := range k.fds {
		_ = unix.SetNonblock(fd, true)
		k.copying.Add(1)
		go k.copy(fd, i)
	}
	ready := time.NewTimer(60 * time.Second)
	defer ready.Stop()
	for {
		select {
		case ev, ok := <-k.events:
			if !ok {
				k.stop()
				return fmt.Errorf("the kernel driver %s ended before it was ready", h.Command[0])
			}
			if ev.Type == "ready" {
				return nil
			}
		case <-ready.C:
			k.stop()
			return fmt.Errorf("the kernel driver %s was not ready within 60 s", h.Command[0])
		}
	}
}

// readEvents reads the driver's events until fd 4 closes.
func (k *kernel) readEvents(f *os.File) {
	defer close(k.events)
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	limit := k.start.Kernel.ResultLimit
	for {
		var size [4]byte
		if _, err := io.ReadFull(br, size[:]); err != nil {
			return
		}
		n := int64(binary.BigEndian.Uint32(size[:]))
		if n > maxEventBytes || limit > 0 && n > limit+4096 {
			// Too large to hold: skip it, and say so in its place.
			if _, err := io.CopyN(io.Discard, br, n); err != nil {
				return
			}
			k.events <- kernelEvent{Type: "result", tooLarge: n}
			continue
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			return
		}
		var ev kernelEvent
		if err := json.Unmarshal(b, &ev); err != nil {
			continue // not an event: ignored
		}
		ev.raw = b
		k.events <- ev
	}
}

// copy frames one of the driver's output streams while a cell goes;
// between cells the output has nowhere to go and is dropped.
func (k *kernel) copy(fd, stream int) {
	defer k.copying.Done()
	buf := make([]byte, 32<<10)
	for {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, -1); err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		k.mu.Lock()
		eof := k.readAvailable(fd, stream, buf)
		k.mu.Unlock()
		if eof {
			return
		}
	}
}

// readAvailable reads what the stream holds now and frames it; call with
// k.mu held. It reports the end of the stream.
func (k *kernel) readAvailable(fd, stream int, buf []byte) bool {
	kind := []byte{FrameStdout, FrameStderr}[stream]
	for {
		n, err := unix.Read(fd, buf)
		if n > 0 && k.active {
			chunk := buf[:n]
			if k.limit > 0 && k.perOut[stream]+int64(n) > k.limit {
				chunk = chunk[:max(0, min(int64(n), k.limit+1-k.perOut[stream]))]
				k.overOne.Do(func() { close(k.over) })
			}
			if len(chunk) > 0 {
				_ = k.out.frame(kind, chunk)
			}
			k.perOut[stream] += int64(len(chunk))
		}
		switch {
		case errors.Is(err, unix.EAGAIN):
			return false
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil || n == 0:
			return true
		}
	}
}

// drain frames what the driver wrote before it finished the cell.
func (k *kernel) drain() {
	buf := make([]byte, 32<<10)
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, fd := range k.fds {
		k.readAvailable(fd, i, buf)
	}
	k.active = false
}

// cell runs one cell: the header's stdin is its code.
func (k *kernel) cell(h Header, body io.Reader, cancel <-chan struct{}) Exit {
	if err := placeFiles(h, body); err != nil {
		_ = k.out.frame(FrameStderr, []byte(fmt.Sprintf("runhost-init: %v\n", err)))
		return Exit{Code: ExitSetupFailed, Error: err.Error()}
	}
	code := make([]byte, h.StdinSize)
	if _, err := io.ReadFull(body, code); err != nil {
		return Exit{Code: ExitSetupFailed, Error: "read the cell: " + err.Error()}
	}
	ex := Exit{}
	if k.pid == 0 { // the driver could not be started again after the last cell
		if err := k.spawn(); err != nil {
			return Exit{Code: ExitSetupFailed, Error: err.Error(), Restarted: true}
		}
		ex.Restarted = true
	}
	k.mu.Lock()
	k.active, k.perOut, k.limit = true, [2]int64{}, h.OutputLimit
	k.over, k.overOne = make(chan struct{}), sync.Once{}
	over := k.over
	k.mu.Unlock()

	k.nextID++
	id := k.nextID
	oomBefore := oomKills()
	start := time.Now()
	req, _ := json.Marshal(map[string]any{"id": id, "code": string(code)})
	if err := writeMessage(k.req, req); err != nil {
		return k.died(ex, start, oomBefore)
	}
	var timeout <-chan time.Time
	if h.TimeoutMS > 0 {
		t := time.NewTimer(time.Duration(h.TimeoutMS) * time.Millisecond)
		defer t.Stop()
		timeout = t.C
	}
	var grace, again <-chan time.Time
	stopAgain := func() {}
	defer func() { stopAgain() }()
	interrupt := func(mark *bool) {
		*mark = true
		timeout, cancel, over = nil, nil, nil
		if grace == nil {
			_ = syscall.Kill(k.pid, syscall.SIGINT)
			grace = time.After(time.Duration(max(k.start.Kernel.InterruptGraceMS, 100)) * time.Millisecond)
			// SIGINT again until the cell ends: an interpreter may handle a
			// signal only after the blocking call it was about to make
			// (Python's time.sleep), or lose it (in a finalizer); drivers
			// take one interrupt per cell and ignore the repeats.
			t := time.NewTicker(interruptAgain)
			again, stopAgain = t.C, t.Stop
		}
	}
	var results int64
	for {
		select {
		case ev, ok := <-k.events:
			if !ok {
				return k.died(ex, start, oomBefore)
			}
			switch {
			case ev.Type == "result" && ev.tooLarge > 0:
				k.note(fmt.Sprintf("[a result of %d bytes was dropped: more than the limit of %d bytes]", ev.tooLarge, k.start.Kernel.ResultLimit))
			case ev.Type == "result" && ev.ID == id:
				results += int64(len(ev.raw))
				if lim := k.start.Kernel.ResultLimit; lim > 0 && results > lim {
					k.note(fmt.Sprintf("[a result of %d bytes was dropped: the cell's results passed %d bytes]", len(ev.raw), lim))
					continue
				}
				payload, _ := json.Marshal(map[string]json.RawMessage{"data": ev.Data, "metadata": orEmpty(ev.Metadata)})
				_ = k.out.frame(FrameResult, payload)
			case ev.Type == "done" && ev.ID == id:
				ex.DurationMS = time.Since(start).Milliseconds()
				ex.CellError = ev.Error
				if ev.Error != nil {
					ex.Code = 1
				}
				k.finish()
				return ex
			}
		case <-again:
			_ = syscall.Kill(k.pid, syscall.SIGINT)
		case <-timeout:
			interrupt(&ex.TimedOut)
		case <-cancel:
			interrupt(&ex.Cancelled)
		case <-over:
			interrupt(&ex.OutputLimitExceeded)
		case <-grace:
			// The cell did not stop: the driver goes, and a new one comes.
			ex.Code = 137
			ex.Restarted = true
			ex.DurationMS = time.Since(start).Milliseconds()
			k.stop()
			k.drainAfterStop()
			if err := k.spawn(); err != nil {
				k.pid = 0
				ex.Error = "the kernel driver could not be started again: " + err.Error()
			}
			return ex
		}
	}
}

// died handles a driver that ended during a cell (killed for memory, or by
// the cell itself) or that closed its end of the protocol. It is started again for the next cell.
func (k *kernel) died(ex Exit, start time.Time, oomBefore int64) Exit {
	// It may have only closed its end of the protocol: make sure it is gone.
	_ = syscall.Kill(-k.pid, syscall.SIGKILL)
	killOthers(0)
	status := k.wait()
	k.drainAfterStop()
	ex.Code = exitCode(status)
	ex.OOMKilled = oomKills() > oomBefore
	ex.Restarted = true
	ex.DurationMS = time.Since(start).Milliseconds()
	ex.CellError = &CellError{Name: "KernelDied", Value: fmt.Sprintf("the interpreter ended (%s) and was started again: its state is lost", describeStatus(status, ex.OOMKilled))}
	k.cleanup()
	if err := k.spawn(); err != nil {
		k.pid = 0
		ex.Error = "the kernel driver could not be started again: " + err.Error()
	}
	return ex
}

// finish ends a cell: what the driver wrote is framed, and whatever the
// cell started goes (the driver stays).
func (k *kernel) finish() {
	k.drain()
	killOthers(k.pid)
}

// note tells the cell's stderr what happened to a result.
func (k *kernel) note(msg string) {
	_ = k.out.frame(FrameStderr, []byte("runhost: "+msg+"\n"))
}

// stop kills the driver and everything in the session but init, and waits
// for the driver.
func (k *kernel) stop() {
	_ = syscall.Kill(-k.pid, syscall.SIGKILL)
	killOthers(0)
	k.wait()
	k.cleanup()
}

// wait returns the driver's exit status (once it is known).
func (k *kernel) wait() syscall.WaitStatus {
	if k.exited == nil {
		return 0
	}
	st := <-k.exited
	k.exited = nil
	return st
}

// drainAfterStop frames the dead driver's last output and waits for its
// streams to close.
func (k *kernel) drainAfterStop() {
	done := make(chan struct{})
	go func() { k.copying.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	k.mu.Lock()
	k.active = false
	k.mu.Unlock()
}

// cleanup closes the host's ends of the driver's pipes.
func (k *kernel) cleanup() {
	if k.req != nil {
		k.req.Close()
		k.req = nil
	}
	for range k.events { // until the reader sees fd 4 close
	}
	k.copying.Wait()
	if k.outR != nil {
		k.outR.Close()
		k.errR.Close()
		k.outR, k.errR = nil, nil
	}
	k.pid = 0
}

// close ends the driver when the session ends.
func (k *kernel) close() {
	if k != nil && k.pid != 0 {
		k.stop()
	}
}

func writeMessage(w io.Writer, p []byte) error {
	var size [4]byte
	binary.BigEndian.PutUint32(size[:], uint32(len(p)))
	if _, err := w.Write(append(size[:], p...)); err != nil {
		return err
	}
	return nil
}

func orEmpty(m json.RawMessage) json.RawMessage {
	if len(m) == 0 {
		return json.RawMessage(`{}`)
	}
	return m
}

func describeStatus(st syscall.WaitStatus, oom bool) string {
	switch {
	case oom:
		return "killed for exceeding the memory limit"
	case st.Signaled():
		return "killed by signal " + strconv.Itoa(int(st.Signal()))
	default:
		return "exit status " + strconv.Itoa(st.ExitStatus())
	}
}

// killOthers kills every process of the container but init and keep.
func killOthers(keep int) {
	if os.Getpid() != 1 {
		return
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if p, err := strconv.Atoi(e.Name()); err == nil && p > 1 && p != keep {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
}
