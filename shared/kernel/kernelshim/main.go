// Command kernelshim runs a kernel driver inside a container for tests, in
// place of runhost-init: it starts the driver with the protocol's file
// descriptors (fd 3 requests, fd 4 events, fd 1 and fd 2 pipes) and relays
// everything over its own stdin and stdout, so that a test can drive it
// through `docker run -i`. Package kerneltest builds it and speaks to it.
//
// Frames in both directions are a tag byte, a 4-byte big-endian length and
// the payload. The shim first writes H (hello), then reads S (setup: JSON
// {argv, env, dir, files: [{path, mode, content}]}), writes the files, starts
// the driver and relays: R (a request's JSON, passed on to fd 3), I (SIGINT
// to the driver), C (close fd 3) from the test; O (stdout), E (stderr), V (an
// event's JSON), X (the driver's exit: JSON {code, signal}) and F (the shim
// failed: text) to the test.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/runhost/runhost/shared/kernel"

	"github.com/runhost/runhost/shared/kernel/internal/shimframe"
)

type setup struct {
	Argv  []string `json:"argv"`
	Env   []string `json:"env"`
	Dir   string   `json:"dir"`
	Files []struct {
		Path    string `json:"path"`
		Mode    uint32 `json:"mode"`
		Content []byte `json:"content"`
	} `json:"files"`
}

type writer struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (w *writer) frame(tag byte, payload []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var h [5]byte
	h[0] = tag
	binary.BigEndian.PutUint32(h[1:], uint32(len(payload)))
	if _, err := w.w.Write(h[:]); err != nil {
		return err
	}
	if _, err := w.w.Write(payload); err != nil {
		return err
	}
	return w.w.Flush()
}

func main() {
	out := &writer{w: bufio.NewWriterSize(os.Stdout, 64<<10)}
	if err := run(os.Stdin, out); err != nil {
		_ = out.frame('F', []byte(err.Error()))
		os.Exit(1)
	}
}

func run(stdin io.Reader, out *writer) error {
	if err := out.frame('H', nil); err != nil {
		return err
	}
	tag, payload, err := shimframe.Read(stdin)
	if err != nil || tag != 'S' {
		return fmt.Errorf("want the setup frame: tag %q, %v", tag, err)
	}
	var s setup
	if err := json.Unmarshal(payload, &s); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	for _, f := range s.Files {
		if err := os.MkdirAll(filepath.Dir(f.Path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(f.Path, f.Content, os.FileMode(f.Mode)); err != nil {
			return err
		}
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return err
	}
	evR, evW, err := os.Pipe()
	if err != nil {
		return err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.Command(s.Argv[0], s.Argv[1:]...)
	cmd.Env = append(os.Environ(), s.Env...)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.ExtraFiles = []*os.File{reqR, evW}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the driver: %w", err)
	}
	for _, f := range []*os.File{reqR, evW, outW, errW} {
		_ = f.Close()
	}
	go func() {
		// The test's frames: requests, interrupts, close.
		defer reqW.Close()
		for {
			tag, payload, err := shimframe.Read(stdin)
			if err != nil {
				return
			}
			switch tag {
			case 'R':
				if kernel.WriteRaw(reqW, payload) != nil {
					return
				}
			case 'I':
				_ = cmd.Process.Signal(syscall.SIGINT)
			case 'C':
				return
			}
		}
	}()
	tags := map[kernel.Stream]byte{kernel.Stdout: 'O', kernel.Stderr: 'E', kernel.Events: 'V'}
	derr := kernel.Demux(outR, errR, evR, 1<<31, func(o kernel.Output) error {
		return out.frame(tags[o.Stream], o.Data)
	})
	if derr != nil {
		_ = cmd.Process.Kill()
	}
	werr := cmd.Wait()
	status := map[string]any{"code": cmd.ProcessState.ExitCode()}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		status["signal"] = ws.Signal().String()
	}
	var exitErr *exec.ExitError
	if werr != nil && !errors.As(werr, &exitErr) {
		return werr
	}
	body, _ := json.Marshal(status)
	if err := out.frame('X', body); err != nil {
		return err
	}
	return derr
}
