package initproc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/runhost/runhost/internal/pathguard"
)

// Exit codes init uses for its own failures, as shells do.
const (
	ExitSetupFailed = 126 // the frame or the files could not be set up
	ExitNotFound    = 127 // the command does not exist
)

// Main is init's entry point. It never returns.
func Main() {
	os.Exit(run(os.Stdin, os.Stderr))
}

func run(stdin *os.File, stderr io.Writer) int {
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "runhost-init: %v\n", err)
		return code
	}
	h, err := ReadHeader(stdin)
	if err != nil {
		return fail(ExitSetupFailed, err)
	}
	if err := placeFiles(h, stdin); err != nil {
		return fail(ExitSetupFailed, err)
	}
	if h.Forward != nil {
		if _, err := startForward(*h.Forward); err != nil {
			return fail(ExitSetupFailed, err)
		}
	}
	env := mergeEnv(os.Environ(), h.Env)
	argv0, err := lookPath(h.Command[0], envValue(env, "PATH"))
	if err != nil {
		return fail(ExitNotFound, err)
	}

	// Subscribe before starting the child so no signal is lost.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs)

	pid, err := syscall.ForkExec(argv0, h.Command, &syscall.ProcAttr{
		Dir:   h.WorkDir,
		Env:   env,
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		return fail(ExitNotFound, fmt.Errorf("start %s: %w", h.Command[0], err))
	}
	code := supervise(pid, sigs)
	if code == 0 && h.ReadyFile != "" {
		if err := os.WriteFile(h.ReadyFile, nil, 0o644); err != nil {
			return fail(ExitSetupFailed, fmt.Errorf("mark %s ready: %w", h.ReadyFile, err))
		}
	}
	return code
}

// supervise forwards signals to the child's process group and reaps every
// process that ends (orphans are re-parented to init, PID 1), until the child
// itself ends. Its status becomes init's exit status.
func supervise(child int, sigs <-chan os.Signal) int {
	for sig := range sigs {
		s, ok := sig.(syscall.Signal)
		if !ok {
			continue
		}
		if s != syscall.SIGCHLD {
			if s != syscall.SIGURG { // the Go runtime's own preemption signal
				_ = syscall.Kill(-child, s)
			}
			continue
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err != nil || pid <= 0 {
				break
			}
			if pid == child {
				return exitCode(ws)
			}
		}
	}
	return ExitSetupFailed
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

// placeFiles writes each file of the frame under h.Dir. Paths are checked
// again here, and files are created exclusively without following symlinks.
func placeFiles(h Header, r io.Reader) error {
	if !filepath.IsAbs(h.Dir) || filepath.Clean(h.Dir) != h.Dir {
		return fmt.Errorf("run directory %q is not an absolute clean path", h.Dir)
	}
	if !filepath.IsAbs(h.WorkDir) || filepath.Clean(h.WorkDir) != h.WorkDir {
		return fmt.Errorf("working directory %q is not an absolute clean path", h.WorkDir)
	}
	root, err := os.OpenRoot(h.Dir)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, f := range h.Files {
		if err := pathguard.Check(f.Path); err != nil {
			return err
		}
		if err := mkdirAll(root, filepath.Dir(f.Path)); err != nil {
			return err
		}
		// O_TRUNC, not O_EXCL: in a workspace the file may exist from an
		// earlier run. os.Root keeps every path, symlinks included, inside Dir.
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
		if err := mkdirAll(root, rel); err != nil {
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

// startForward serves f in the background for as long as init lives.
func startForward(f Forward) (net.Listener, error) {
	if host, _, err := net.SplitHostPort(f.Listen); err != nil || !net.ParseIP(host).IsLoopback() {
		return nil, fmt.Errorf("forward: %q is not a loopback address", f.Listen)
	}
	ln, err := net.Listen("tcp", f.Listen)
	if err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go pipe(c, f.Socket)
		}
	}()
	return ln, nil
}

// pipe copies between a forwarded connection and a new connection to socket.
func pipe(c net.Conn, socket string) {
	defer c.Close()
	u, err := net.Dial("unix", socket)
	if err != nil {
		return
	}
	defer u.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(u, c); closeWrite(u); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, u); closeWrite(c); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}
