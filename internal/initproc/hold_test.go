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
// A lingering run (Kubernetes) stays after any exit, until it is killed or
// the linger ends.
func TestHoldKeepsInitAfterSuccess(t *testing.T) {
	for _, tt := range []struct {
		name, command string
		hold          bool
		lingerMS      int64
		holds         bool
	}{
		{"held success", "true", true, 0, true},
		{"held failure", "false", true, 0, false},
		{"lingering failure", "false", false, 60_000, true},
		{"neither", "true", false, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
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
			if err := WriteFrame(stdin, Header{Dir: dir, WorkDir: dir, Hold: tt.hold, LingerMS: tt.lingerMS, Command: []string{tt.command}}, nil); err != nil {
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
			if tt.holds {
				select {
				case <-ended:
					t.Fatal("init exited, want it to stay")
				case <-time.After(time.Second):
				}
				return
			}
			select {
			case <-ended:
			case <-time.After(10 * time.Second): // a bound, not a timing: a loaded -race run is slow
				t.Fatal("init stayed, want it to exit")
			}
		})
	}
}
