package initproc

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// When RUNHOST_INIT_TEST_HOLD is set, the test binary is init: a helper
// process for TestHoldKeepsInitAfterSuccess.
func init() {
	if os.Getenv("RUNHOST_INIT_TEST_HOLD") == "1" {
		os.Exit(run(os.Stdin, os.Stdout, os.Stderr))
	}
}

// A held run reports its exit and init stays alive (its container, and a
// volume only it uses, stay) until it is killed; a failed one does not hold.
func TestHoldKeepsInitAfterSuccess(t *testing.T) {
	for _, tt := range []struct {
		command string
		holds   bool
	}{{"true", true}, {"false", false}} {
		t.Run(tt.command, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), "RUNHOST_INIT_TEST_HOLD=1")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
			if err := WriteFrame(stdin, Header{Dir: dir, WorkDir: dir, Hold: true, Command: []string{tt.command}}, nil); err != nil {
				t.Fatal(err)
			}
			stdin.Close()
			r := bufio.NewReader(stdout)
			for {
				kind, p, err := ReadFrame(r, nil)
				if err != nil {
					t.Fatalf("no exit frame: %v", err)
				}
				if kind == FrameExit {
					var ex Exit
					_ = json.Unmarshal(p, &ex)
					break
				}
			}
			ended := make(chan struct{})
			go func() { _, _ = io.Copy(io.Discard, r); exited <- cmd.Wait(); close(ended) }()
			select {
			case <-ended:
				if tt.holds {
					t.Fatal("init exited after a successful held run")
				}
			case <-time.After(time.Second):
				if !tt.holds {
					t.Fatal("init held after a failed run")
				}
			}
		})
	}
}

// Capped: init tells whether the capped directory's filesystem filled up
// during the run.
func TestCappedFull(t *testing.T) {
	if os.Geteuid() != 0 || testing.Short() {
		t.Skip("mounts a tmpfs: needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	for _, tt := range []struct {
		mib  int
		full bool
	}{{1, false}, {8, true}} {
		t.Run(fmt.Sprintf("%d MiB", tt.mib), func(t *testing.T) {
			// What fills the filesystem stays: a program that cleans up
			// between two samples goes unnoticed (documented).
			script := fmt.Sprintf("rm -f fill; head -c %dM /dev/zero > fill", tt.mib)
			_, _, exits := runInit(t, func(w io.Writer) {
				_ = WriteFrame(w, Header{Dir: dir, WorkDir: dir, Capped: dir, Command: []string{"sh", "-c", script}}, nil)
			})
			if len(exits) != 1 || exits[0].CappedFull != tt.full {
				t.Fatalf("exits %+v, want capped_full %v", exits, tt.full)
			}
			if tt.full == (exits[0].Code == 0) {
				t.Errorf("writing %d MiB into a 4 MiB tmpfs exited %d", tt.mib, exits[0].Code)
			}
		})
	}
}
