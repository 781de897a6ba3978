package initproc

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestFrameRoundTrip(t *testing.T) {
	h := Header{Dir: "/code", WorkDir: "/code/sub", Command: []string{"python3", "main.py"}, Env: []string{"A=1"},
		Files: []FileHeader{{Path: "main.py"}, {Path: "pkg/x.bin"}}}
	contents := [][]byte{[]byte("print(1)"), {0, 1, 2}}
	var buf bytes.Buffer
	if err := WriteFrame(&buf, h, contents); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("user stdin")

	got, err := ReadHeader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	h.Files[0].Size, h.Files[1].Size = 8, 3
	if !reflect.DeepEqual(got, h) {
		t.Fatalf("header = %+v, want %+v", got, h)
	}
	rest, _ := io.ReadAll(&buf)
	if want := "print(1)\x00\x01\x02user stdin"; string(rest) != want {
		t.Fatalf("after the header: %q, want %q", rest, want)
	}
}

func TestReadHeaderRejects(t *testing.T) {
	tests := []struct {
		name, input, want string
	}{
		{"empty", "", "EOF"},
		{"bad magic", "NOTRUNHOST\x00\x00\x00\x02{}", "bad magic"},
		{"huge header", Magic + "\xff\xff\xff\xff", "too large"},
		{"short header", Magic + "\x00\x00\x00\x10{}", "EOF"},
		{"no command", Magic + "\x00\x00\x00\x02{}", "empty command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadHeader(strings.NewReader(tt.input))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func TestPlaceFiles(t *testing.T) {
	dir := t.TempDir()
	h := Header{Dir: dir, WorkDir: filepath.Join(dir, "work"), Command: []string{"x"},
		Files: []FileHeader{{Path: "a.txt", Size: 3}, {Path: "deep/er/b.txt", Size: 2}}}
	if err := placeFiles(h, strings.NewReader("abcdeREST")); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"a.txt": "abc", "deep/er/b.txt": "de"} {
		got, err := os.ReadFile(filepath.Join(dir, path))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", path, got, err, want)
		}
	}
	if fi, err := os.Stat(h.WorkDir); err != nil || !fi.IsDir() {
		t.Errorf("work dir not created: %v", err)
	}
}

// TestPlaceFilesInTheirOwnDirectory: a file with its own Dir (a workspace
// run's plugin-made file, in the private run directory) goes there, the
// others under the header's Dir (the workspace).
func TestPlaceFilesInTheirOwnDirectory(t *testing.T) {
	ws, run := t.TempDir(), t.TempDir()
	h := Header{Dir: ws, WorkDir: filepath.Join(ws, "proj"), Command: []string{"x"},
		Files: []FileHeader{{Path: "proj/sent.txt", Size: 2}, {Path: "main.py", Size: 3, Dir: run}}}
	if err := placeFiles(h, strings.NewReader("abcde")); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{filepath.Join(ws, "proj/sent.txt"): "ab", filepath.Join(run, "main.py"): "cde"} {
		if got, err := os.ReadFile(path); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", path, got, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(ws, "main.py")); !os.IsNotExist(err) {
		t.Errorf("the run directory's file is in the workspace too: %v", err)
	}
	h.Files = []FileHeader{{Path: "x", Size: 1, Dir: run + "/../other"}}
	if err := placeFiles(h, strings.NewReader("x")); err == nil || !strings.Contains(err.Error(), "not an absolute clean path") {
		t.Errorf("a file directory that is not clean: %v", err)
	}
}

func TestPlaceFilesRefuses(t *testing.T) {
	outside := t.TempDir()
	tests := []struct {
		name  string
		setup func(dir string)
		h     func(dir string) Header
		want  string
	}{
		{"path escapes", nil, func(dir string) Header {
			return Header{Dir: dir, WorkDir: dir, Files: []FileHeader{{Path: "../x", Size: 1}}}
		}, `".."`},
		{"symlinked directory", func(dir string) {
			_ = os.Symlink(outside, filepath.Join(dir, "link"))
		}, func(dir string) Header {
			return Header{Dir: dir, WorkDir: dir, Files: []FileHeader{{Path: "link/x", Size: 1}}}
		}, "escapes"},
		{"existing symlink as file", func(dir string) {
			_ = os.Symlink(filepath.Join(outside, "target"), filepath.Join(dir, "f"))
		}, func(dir string) Header {
			return Header{Dir: dir, WorkDir: dir, Files: []FileHeader{{Path: "f", Size: 1}}}
		}, "escapes"},
		{"work dir not clean", nil, func(dir string) Header {
			return Header{Dir: dir, WorkDir: dir + "/../x"}
		}, "not an absolute clean path"},
		{"short content", nil, func(dir string) Header {
			return Header{Dir: dir, WorkDir: dir, Files: []FileHeader{{Path: "a", Size: 100}}}
		}, "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.setup != nil {
				tt.setup(dir)
			}
			err := placeFiles(tt.h(dir), strings.NewReader("x"))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error about %q", err, tt.want)
			}
			entries, _ := os.ReadDir(outside)
			if len(entries) > 0 {
				t.Fatalf("a file was written outside the run directory: %v", entries)
			}
		})
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"PATH=/bin", "HOME=/", "LANG=C"}, []string{"HOME=/tmp", "X=1"})
	want := []string{"PATH=/bin", "HOME=/tmp", "LANG=C", "X=1"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "tool")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := lookPath("tool", "/nonexistent:"+dir); err != nil || got != exe {
		t.Errorf("lookPath = %q, %v", got, err)
	}
	if _, err := lookPath("nope", dir); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("lookPath(nope) = %v", err)
	}
	if got, _ := lookPath("./rel/x", dir); got != "./rel/x" {
		t.Errorf("a path with a slash is used as is, got %q", got)
	}
}

func TestForward(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		b := make([]byte, 5)
		_, _ = io.ReadFull(c, b)
		_, _ = c.Write(append([]byte("echo:"), b...))
		c.Close()
	}()
	fwd, err := startForward(Forward{Listen: "127.0.0.1:0", Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()
	c, err := net.Dial("tcp", fwd.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("hello"))
	got, _ := io.ReadAll(c)
	c.Close()
	if string(got) != "echo:hello" {
		t.Fatalf("through the forward: %q", got)
	}
	if _, err := startForward(Forward{Listen: "0.0.0.0:0", Socket: sock}); err == nil {
		t.Error("a non-loopback listener was accepted")
	}
}

// runInit runs init's loop in-process on frames written by send and
// returns the frames it wrote.
func runInit(t *testing.T, send func(w io.Writer)) (code int, frames []string, exits []Exit) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { send(pw); pw.Close() }()
	var out bytes.Buffer
	code = run(pr, &out, io.Discard)
	pr.Close()
	for {
		kind, p, err := ReadFrame(&out, nil)
		if err != nil {
			break
		}
		if kind == FrameExit {
			var ex Exit
			_ = json.Unmarshal(p, &ex)
			exits = append(exits, ex)
			continue
		}
		frames = append(frames, string(kind)+":"+string(p))
	}
	return code, frames, exits
}

func TestFramedRun(t *testing.T) {
	dir := t.TempDir()
	code, frames, exits := runInit(t, func(w io.Writer) {
		_ = WriteFrame(w, Header{Dir: dir, WorkDir: dir, Command: []string{"sh", "-c", "cat x.txt; echo err >&2; exit 3"}, Files: []FileHeader{{Path: "x.txt"}}}, [][]byte{[]byte("out\n")})
	})
	if code != 3 || len(exits) != 1 || exits[0].Code != 3 {
		t.Fatalf("code %d, exits %+v", code, exits)
	}
	// stdout and stderr are separate pipes read concurrently: their frames
	// may interleave either way, but each stream arrives whole and in order.
	var stdout, stderr strings.Builder
	for _, f := range frames {
		switch {
		case strings.HasPrefix(f, "o:"):
			stdout.WriteString(f[2:])
		case strings.HasPrefix(f, "e:"):
			stderr.WriteString(f[2:])
		default:
			t.Errorf("unexpected frame %q", f)
		}
	}
	if stdout.String() != "out\n" || stderr.String() != "err\n" {
		t.Errorf("stdout %q, stderr %q (frames %q)", stdout.String(), stderr.String(), frames)
	}
}

func TestFramedTimeoutKillsTheRun(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	_, _, exits := runInit(t, func(w io.Writer) {
		_ = WriteFrame(w, Header{Dir: dir, WorkDir: dir, TimeoutMS: 200, Command: []string{"sh", "-c", "sleep 30"}}, nil)
	})
	if len(exits) != 1 || !exits[0].TimedOut || exits[0].Code != 137 {
		t.Fatalf("exits %+v", exits)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("the run was not killed at its timeout")
	}
}

func TestSessionRunsOneAfterAnother(t *testing.T) {
	dir := t.TempDir()
	_, frames, exits := runInit(t, func(w io.Writer) {
		stdin := []byte("piped")
		_ = WriteFrame(w, Header{Dir: dir, WorkDir: dir, Session: true, Command: []string{"sh", "-c", "echo one > state; cat"}, StdinSize: int64(len(stdin))}, nil)
		_, _ = w.Write(stdin)
		_ = WriteFrame(w, Header{Dir: dir, WorkDir: dir, Session: true, Command: []string{"cat", "state"}}, nil)
		_ = WriteFrame(w, Header{Dir: dir, WorkDir: dir, Session: true, Command: []string{"no-such-command"}}, nil)
	})
	if len(exits) != 3 || exits[0].Code != 0 || exits[1].Code != 0 || exits[2].Code != ExitNotFound || exits[2].Error == "" {
		t.Fatalf("exits %+v", exits)
	}
	if got := strings.Join(frames, "|"); !strings.HasPrefix(got, "o:piped|o:one\n|e:runhost-init:") {
		t.Errorf("frames %q", got)
	}
}

func TestOutputLimitStopsTheRun(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	_, frames, exits := runInit(t, func(w io.Writer) {
		_ = WriteFrame(w, Header{Dir: dir, WorkDir: dir, TimeoutMS: 30000, OutputLimit: 1000, Command: []string{"yes"}}, nil)
	})
	if len(exits) != 1 || !exits[0].OutputLimitExceeded || exits[0].TimedOut || exits[0].Code != 137 {
		t.Fatalf("exits %+v", exits)
	}
	n := 0
	for _, f := range frames {
		n += len(f) - 2
	}
	if n != 1001 {
		t.Errorf("%d bytes framed, want the limit and one more (the mark of truncation)", n)
	}
	if time.Since(start) > 20*time.Second {
		t.Fatalf("the run was not stopped at its output limit")
	}
}

func TestOutputWithinLimitRunsToTheEnd(t *testing.T) {
	dir := t.TempDir()
	_, _, exits := runInit(t, func(w io.Writer) {
		_ = WriteFrame(w, Header{Dir: dir, WorkDir: dir, OutputLimit: 1000, Command: []string{"sh", "-c", "echo fine; exit 4"}}, nil)
	})
	if len(exits) != 1 || exits[0].OutputLimitExceeded || exits[0].Code != 4 {
		t.Fatalf("exits %+v", exits)
	}
}

// liveInit runs init with stdin and output frames the test drives as it
// goes; frames arrive on the returned channel, which closes when init ends.
func liveInit(t *testing.T) (stdin io.WriteCloser, frames <-chan [2]string) {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { run(inR, outW, io.Discard); outW.Close(); close(done) }()
	ch := make(chan [2]string, 64)
	go func() {
		defer close(ch)
		for {
			kind, p, err := ReadFrame(outR, nil)
			if err != nil {
				return
			}
			ch <- [2]string{string(kind), string(p)}
		}
	}()
	t.Cleanup(func() { inW.Close(); <-done; inR.Close(); outR.Close() })
	return inW, ch
}

// nextExit reads frames until an exit and returns it with the output before it.
func nextExit(t *testing.T, frames <-chan [2]string) (Exit, string) {
	t.Helper()
	var out strings.Builder
	for f := range frames {
		if f[0] == string(FrameExit) {
			var ex Exit
			if err := json.Unmarshal([]byte(f[1]), &ex); err != nil {
				t.Fatal(err)
			}
			return ex, out.String()
		}
		out.WriteString(f[1])
	}
	t.Fatal("init ended without an exit frame")
	return Exit{}, ""
}

func TestSessionCancelStopsTheRunNotTheSession(t *testing.T) {
	dir := t.TempDir()
	stdin, frames := liveInit(t)
	_ = WriteFrame(stdin, Header{Dir: dir, WorkDir: dir, Session: true, TimeoutMS: 30000, Command: []string{"sh", "-c", "echo kept > state; echo started; exec sleep 30"}}, nil)
	// Wait until the run has started, then cancel it.
	if f := <-frames; f != [2]string{"o", "started\n"} {
		t.Fatalf("first frame %q", f)
	}
	start := time.Now()
	_, _ = io.WriteString(stdin, CancelMagic)
	ex, _ := nextExit(t, frames)
	if !ex.Cancelled || ex.TimedOut || ex.Code != 137 {
		t.Fatalf("cancelled run: %+v", ex)
	}
	if time.Since(start) > 20*time.Second {
		t.Fatal("the cancel did not stop the run")
	}
	// The session goes on, with what the cancelled run left.
	_ = WriteFrame(stdin, Header{Dir: dir, WorkDir: dir, Session: true, Command: []string{"cat", "state"}}, nil)
	ex, out := nextExit(t, frames)
	if ex.Code != 0 || ex.Cancelled || out != "kept\n" {
		t.Fatalf("next run: %+v, output %q", ex, out)
	}
	// A cancel between runs is ignored: the run after it is not cancelled.
	_, _ = io.WriteString(stdin, CancelMagic)
	_ = WriteFrame(stdin, Header{Dir: dir, WorkDir: dir, Session: true, Command: []string{"sh", "-c", "sleep 0.2; echo done"}}, nil)
	ex, out = nextExit(t, frames)
	if ex.Code != 0 || ex.Cancelled || out != "done\n" {
		t.Fatalf("run after a stale cancel: %+v, output %q", ex, out)
	}
}
