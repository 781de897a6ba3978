package initproc

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeDriver is a kernel driver for tests: the test binary itself, started
// with RUNHOST_TEST_DRIVER=1. Its cells are words:
//
//	set V / get      keep a value across cells / print it
//	print S          write S to stdout;  warn S: to stderr
//	result S         a rich result {"text/plain": S}
//	raise            done with an error
//	sleep            wait for SIGINT, then done with KeyboardInterrupt
//	deaf             the same, but the first SIGINT is lost (as one that lands
//	                 in a finalizer or just before a blocking call can be)
//	hang             ignore SIGINT and sleep
//	exit             end the driver
//	flood            write to stdout without end
func fakeDriver() {
	req := os.NewFile(3, "req")
	ev := os.NewFile(4, "ev")
	defer runtime.KeepAlive(ev) // its finalizer would close fd 4
	send := func(v any) {
		b, _ := json.Marshal(v)
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		_, _ = ev.Write(append(n[:], b...))
	}
	ints := make(chan os.Signal, 1)
	signal.Notify(ints, syscall.SIGINT)
	send(map[string]any{"type": "ready"})
	state := ""
	for {
		var n [4]byte
		if _, err := io.ReadFull(req, n[:]); err != nil {
			os.Exit(0)
		}
		b := make([]byte, binary.BigEndian.Uint32(n[:]))
		_, _ = io.ReadFull(req, b)
		var r struct {
			ID   int64  `json:"id"`
			Code string `json:"code"`
		}
		_ = json.Unmarshal(b, &r)
		word, arg, _ := strings.Cut(r.Code, " ")
		var cellErr any
		switch word {
		case "set":
			state = arg
		case "get":
			os.Stdout.WriteString(state + "\n")
		case "print":
			os.Stdout.WriteString(arg + "\n")
		case "warn":
			os.Stderr.WriteString(arg + "\n")
		case "result":
			send(map[string]any{"type": "result", "id": r.ID, "data": map[string]any{"text/plain": arg}})
		case "raise":
			cellErr = map[string]any{"name": "ValueError", "value": "bad", "traceback": []string{"line 1", "ValueError: bad"}}
		case "sleep":
			<-ints
			cellErr = map[string]any{"name": "KeyboardInterrupt", "value": ""}
		case "deaf":
			<-ints
			<-ints
			cellErr = map[string]any{"name": "KeyboardInterrupt", "value": ""}
		case "hang":
			signal.Ignore(syscall.SIGINT)
			time.Sleep(time.Hour)
		case "exit":
			os.Exit(3)
		case "closeev":
			ev.Close()
			time.Sleep(time.Hour)
		case "flood":
			for {
				os.Stdout.WriteString(strings.Repeat("x", 4096))
			}
		}
		send(map[string]any{"type": "done", "id": r.ID, "error": cellErr})
	}
}

func TestMain(m *testing.M) {
	if os.Getenv("RUNHOST_TEST_DRIVER") == "1" {
		fakeDriver()
		return
	}
	os.Exit(m.Run())
}

// kernelSession starts an interpreter session on the fake driver.
type kernelSession struct {
	t      *testing.T
	dir    string
	stdin  io.WriteCloser
	frames <-chan [2]string
}

func startKernelSession(t *testing.T) *kernelSession {
	t.Helper()
	dir := t.TempDir()
	stdin, frames := liveInit(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	_ = WriteFrame(stdin, Header{Dir: dir, WorkDir: dir, Session: true, Command: []string{self},
		Env:    []string{"RUNHOST_TEST_DRIVER=1"},
		Kernel: &Kernel{Protocol: KernelProtocol, InterruptGraceMS: 500, ResultLimit: 1 << 20}}, nil)
	if ex, _ := nextExit(t, frames); ex.Code != 0 || ex.Error != "" {
		t.Fatalf("kernel start: %+v", ex)
	}
	return &kernelSession{t: t, dir: dir, stdin: stdin, frames: frames}
}

// cell runs code and returns its exit, stdout+stderr, and results.
func (s *kernelSession) cell(code string, timeoutMS, outputLimit int64) (Exit, string, []string) {
	s.t.Helper()
	h := Header{Dir: s.dir, WorkDir: s.dir, Session: true, Cell: true, Command: []string{"cell"}, StdinSize: int64(len(code)), TimeoutMS: timeoutMS, OutputLimit: outputLimit}
	_ = WriteFrame(s.stdin, h, nil)
	_, _ = io.WriteString(s.stdin, code)
	var out strings.Builder
	var results []string
	for f := range s.frames {
		switch f[0] {
		case string(FrameExit):
			var ex Exit
			if err := json.Unmarshal([]byte(f[1]), &ex); err != nil {
				s.t.Fatal(err)
			}
			return ex, out.String(), results
		case string(FrameResult):
			results = append(results, f[1])
		default:
			out.WriteString(f[1])
		}
	}
	s.t.Fatal("init ended during a cell")
	return Exit{}, "", nil
}

func TestKernelCells(t *testing.T) {
	s := startKernelSession(t)
	if ex, out, _ := s.cell("set kept", 0, 0); ex.Code != 0 || out != "" {
		t.Fatalf("set: %+v %q", ex, out)
	}
	if ex, out, _ := s.cell("get", 0, 0); ex.Code != 0 || out != "kept\n" {
		t.Fatalf("state across cells: %+v %q", ex, out)
	}
	if _, out, res := s.cell("result hello", 0, 0); out != "" || len(res) != 1 || res[0] != `{"data":{"text/plain":"hello"},"metadata":{}}` {
		t.Fatalf("result: %q %v", out, res)
	}
	if ex, _, _ := s.cell("raise", 0, 0); ex.Code != 1 || ex.CellError == nil || ex.CellError.Name != "ValueError" || len(ex.CellError.Traceback) != 2 {
		t.Fatalf("error: %+v", ex)
	}
	// Output written just before done arrives whole, before the exit.
	for i := range 20 {
		if _, out, _ := s.cell("print line", 0, 0); out != "line\n" {
			t.Fatalf("cell %d: output %q", i, out)
		}
	}
}

// An interrupted cell ends with KeyboardInterrupt and the state stays; the
// interrupt is repeated until the cell ends, so a driver that lost the
// first SIGINT stops at the next.
func TestKernelInterruptKeepsState(t *testing.T) {
	for _, cell := range []string{"sleep", "deaf"} {
		t.Run(cell, func(t *testing.T) {
			s := startKernelSession(t)
			s.cell("set kept", 0, 0)
			ex, _, _ := s.cell(cell, 300, 0)
			if !ex.TimedOut || ex.Restarted || ex.CellError == nil || ex.CellError.Name != "KeyboardInterrupt" {
				t.Fatalf("interrupted cell: %+v", ex)
			}
			if _, out, _ := s.cell("get", 0, 0); out != "kept\n" {
				t.Fatalf("state after an interrupt: %q", out)
			}
		})
	}
}

func TestKernelRestartsWhenAnInterruptDoesNotStopTheCell(t *testing.T) {
	s := startKernelSession(t)
	s.cell("set kept", 0, 0)
	start := time.Now()
	ex, _, _ := s.cell("hang", 300, 0)
	if !ex.TimedOut || !ex.Restarted {
		t.Fatalf("hung cell: %+v", ex)
	}
	if time.Since(start) > 20*time.Second {
		t.Fatal("the hung cell was not ended after the grace period")
	}
	if ex, out, _ := s.cell("get", 0, 0); ex.Code != 0 || out != "\n" {
		t.Fatalf("after a restart the state is new: %+v %q", ex, out)
	}
}

func TestKernelDiesAndComesBack(t *testing.T) {
	s := startKernelSession(t)
	ex, _, _ := s.cell("exit", 0, 0)
	if !ex.Restarted || ex.CellError == nil || ex.CellError.Name != "KernelDied" || ex.Code != 3 {
		t.Fatalf("a driver that ends: %+v", ex)
	}
	if ex, out, _ := s.cell("print again", 0, 0); ex.Code != 0 || out != "again\n" {
		t.Fatalf("after the driver died: %+v %q", ex, out)
	}
	// A driver that closes its end of the protocol but lives on is ended.
	if ex, _, _ := s.cell("closeev", 0, 0); !ex.Restarted || ex.CellError == nil || ex.CellError.Name != "KernelDied" {
		t.Fatalf("a driver that closed fd 4: %+v", ex)
	}
	if ex, out, _ := s.cell("print back", 0, 0); ex.Code != 0 || out != "back\n" {
		t.Fatalf("after the driver closed fd 4: %+v %q", ex, out)
	}
}

func TestKernelCancelAndOutputLimit(t *testing.T) {
	s := startKernelSession(t)
	h := Header{Dir: s.dir, WorkDir: s.dir, Session: true, Cell: true, Command: []string{"cell"}, StdinSize: 5}
	_ = WriteFrame(s.stdin, h, nil)
	_, _ = io.WriteString(s.stdin, "sleep")
	_, _ = io.WriteString(s.stdin, CancelMagic)
	ex, _ := nextExit(t, s.frames)
	if !ex.Cancelled || ex.Restarted {
		t.Fatalf("cancelled cell: %+v", ex)
	}
	ex, out, _ := s.cell("flood", 10000, 10000)
	if !ex.OutputLimitExceeded || len(out) > 10001 {
		t.Fatalf("flood: %+v, %d bytes", ex, len(out))
	}
	if ex, out, _ := s.cell("print ok", 0, 0); ex.Code != 0 || out != "ok\n" {
		t.Fatalf("after a flood: %+v %q", ex, out)
	}
}
