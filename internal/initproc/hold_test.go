package initproc

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"
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
