package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"

	"github.com/runhost/runhost/internal/testenv"
)

func TestHelloWorld(t *testing.T) {
	h := startHost(t)
	tests := []struct {
		runtime, code, want string
	}{
		{"python", `print("Hello from runhost!")`, "Hello from runhost!\n"},
		{"py", `print("alias")`, "alias\n"},
		{"shell", `echo "Hello from runhost!"`, "Hello from runhost!\n"},
		{"sh", `echo alias`, "alias\n"},
	}
	for _, tt := range tests {
		t.Run(tt.runtime, func(t *testing.T) {
			res := h.run(tt.runtime, map[string]any{"code": tt.code})
			if res.Stdout != tt.want || res.ExitCode != 0 || res.Stderr != "" {
				t.Fatalf("got %+v, want stdout %q and exit 0", res, tt.want)
			}
			if res.TimedOut || res.OOMKilled || res.StdoutTruncated {
				t.Errorf("unexpected flags: %+v", res)
			}
			if res.Version == "" || res.Image == "" || res.RunID == "" {
				t.Errorf("missing run_id, version or image: %+v", res)
			}
		})
	}
}

func TestStdinAndArgs(t *testing.T) {
	h := startHost(t)
	res := h.run("shell", map[string]any{"code": "echo $1; cat", "args": []string{"hi"}, "stdin": "from stdin"})
	if res.Stdout != "hi\nfrom stdin" {
		t.Errorf("shell stdout = %q, want %q", res.Stdout, "hi\nfrom stdin")
	}
	res = h.run("python", map[string]any{
		"code":  "import sys\nprint(sys.argv[1:], sys.stdin.read().upper())",
		"args":  []string{"a b", "c"},
		"stdin": "piped\nlines\n",
	})
	if want := "['a b', 'c'] PIPED\nLINES\n\n"; res.Stdout != want {
		t.Errorf("python stdout = %q, want %q", res.Stdout, want)
	}
}

func TestEnv(t *testing.T) {
	h := startHost(t)
	res := h.run("python", map[string]any{"code": "import os\nprint(os.environ['GREETING'], os.environ['HOME'])", "env": map[string]string{"GREETING": "hej"}})
	if res.Stdout != "hej /tmp\n" {
		t.Errorf("stdout = %q, want %q", res.Stdout, "hej /tmp\n")
	}
}

func TestMultiFileProgramWithEntry(t *testing.T) {
	h := startHost(t)
	res := h.run("python", map[string]any{
		"files": []map[string]string{
			{"path": "pkg/__init__.py", "content": ""},
			{"path": "pkg/greet.py", "content": "def greet(n): return f'hello {n}'\n"},
			{"path": "app.py", "content": "from pkg.greet import greet\nprint(greet('files'))\n"},
		},
		"entry": "app.py",
	})
	if res.Stdout != "hello files\n" || res.ExitCode != 0 {
		t.Fatalf("got %+v", res)
	}
	res = h.run("shell", map[string]any{
		"files": []map[string]string{
			{"path": "lib/words.txt", "content": "one\ntwo\n"},
			{"path": "run.sh", "content": "wc -l < lib/words.txt; pwd"},
		},
		"entry": "run.sh",
	})
	if res.Stdout != "2\n/code\n" {
		t.Fatalf("shell multi-file stdout = %q", res.Stdout)
	}
}

func TestNonZeroExitIsAResult(t *testing.T) {
	h := startHost(t)
	res := h.run("python", map[string]any{"code": "import sys\nprint('bye', file=sys.stderr)\nsys.exit(3)"})
	if res.ExitCode != 3 || res.Stderr != "bye\n" {
		t.Fatalf("got %+v, want exit 3 and stderr bye", res)
	}
	res = h.run("python", map[string]any{"code": "raise ValueError('boom')"})
	if res.ExitCode != 1 || !strings.Contains(res.Stderr, "ValueError: boom") {
		t.Fatalf("got %+v, want exit 1 and a traceback", res)
	}
}

func TestBase64File(t *testing.T) {
	h := startHost(t)
	data := []byte{0, 1, 2, 255, 254, '\n', 0x80}
	res := h.run("python", map[string]any{
		"code":  "print(list(open('data.bin','rb').read()))",
		"files": []map[string]string{{"path": "data.bin", "content": base64.StdEncoding.EncodeToString(data), "encoding": "base64"}},
	})
	if want := "[0, 1, 2, 255, 254, 10, 128]\n"; res.Stdout != want {
		t.Fatalf("stdout = %q, want %q (stderr %q)", res.Stdout, want, res.Stderr)
	}
}

func TestTimeoutKillsTheRun(t *testing.T) {
	h := startHost(t)
	const timeout = 1000
	start := time.Now()
	res := h.run("python", map[string]any{"code": "print('started', flush=True)\nwhile True: pass", "timeout_ms": timeout})
	elapsed := time.Since(start)
	if !res.TimedOut {
		t.Fatalf("timed_out = false: %+v", res)
	}
	if res.Stdout != "started\n" {
		t.Errorf("output before the timeout was lost: %q", res.Stdout)
	}
	// The run is killed at its deadline: the engine-side duration stays
	// within timeout + 1 s, and the whole request does not hang.
	if res.DurationMS < timeout || res.DurationMS > timeout+1000 {
		t.Errorf("duration_ms = %d, want between %d and %d", res.DurationMS, timeout, timeout+1000)
	}
	if elapsed > timeout*time.Millisecond+5*time.Second {
		t.Errorf("request took %s for a %d ms timeout", elapsed, timeout)
	}
}

func TestMemoryLimitOOMKills(t *testing.T) {
	h := startHost(t)
	res := h.run("python", map[string]any{
		"code":      "chunks = []\nwhile True:\n    chunks.append(b'x' * (8 << 20))\n",
		"memory_mb": 64,
	})
	if !res.OOMKilled || res.ExitCode == 0 {
		t.Fatalf("want oom_killed and a non-zero exit: %+v", res)
	}
	if res.TimedOut {
		t.Errorf("an OOM kill is not a timeout: %+v", res)
	}
}

func TestOutputFloodIsCappedAndHostMemoryStaysFlat(t *testing.T) {
	const limit = 64 << 10
	h := startHost(t, "RUNHOST_OUTPUT_LIMIT_BYTES=65536")

	var base runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()

	// Stopped at the cap: the program would write 200 MiB on stdout and 50
	// MiB on stderr, interleaved, then say done.
	res := h.run("python", map[string]any{"code": "import sys\nchunk = 'x' * (1 << 20)\nfor i in range(250):\n    (sys.stdout if i % 5 else sys.stderr).write(chunk)\nprint('done', file=sys.stderr)\n", "timeout_ms": 30000})
	close(stop)
	<-sampled

	if !res.OutputLimitExceeded || res.ExitCode != 137 || res.TimedOut {
		t.Fatalf("flood run was not stopped at the output limit: exit %d timed_out %v output_limit_exceeded %v", res.ExitCode, res.TimedOut, res.OutputLimitExceeded)
	}
	if len(res.Stdout) > limit || len(res.Stderr) > limit || !res.StdoutTruncated && !res.StderrTruncated {
		t.Errorf("stdout %d, stderr %d bytes, truncated %v/%v; want at most %d each and a truncated stream", len(res.Stdout), len(res.Stderr), res.StdoutTruncated, res.StderrTruncated, limit)
	}
	if strings.Contains(res.Stderr, "done") {
		t.Error("the program ran on past the limit")
	}
	if grown := int64(peak.Load()) - int64(base.HeapInuse); grown > 32<<20 {
		t.Errorf("host heap grew by %d MiB while output flooded a %d KiB cap", grown>>20, limit>>10)
	}
}

func TestOutputWithoutEndIsStoppedAtTheLimit(t *testing.T) {
	h := startHost(t, "RUNHOST_OUTPUT_LIMIT_BYTES=65536")
	res := h.run("shell", map[string]any{"code": "yes", "timeout_ms": 30000})
	if !res.OutputLimitExceeded || !res.StdoutTruncated || res.TimedOut || res.ExitCode != 137 || len(res.Stdout) != 65536 {
		t.Fatalf("yes: exit %d, timed_out %v, output_limit_exceeded %v, %d bytes, truncated %v", res.ExitCode, res.TimedOut, res.OutputLimitExceeded, len(res.Stdout), res.StdoutTruncated)
	}
	// The slot is free again: the next run works at once.
	if r := h.run("shell", map[string]any{"code": "echo next"}); r.Stdout != "next\n" {
		t.Errorf("next run: %+v", r)
	}
}

func TestRunHasNoNetwork(t *testing.T) {
	h := startHost(t)
	// Aim at the engine's own bridge gateway: an address on this machine.
	bridge, err := h.Docker.NetworkInspect(context.Background(), "bridge", network.InspectOptions{})
	if err != nil || len(bridge.IPAM.Config) == 0 {
		t.Fatalf("inspect the bridge network: %v", err)
	}
	gateway := bridge.IPAM.Config[0].Gateway
	res := h.run("python", map[string]any{"code": `
import os, socket
print(sorted(os.listdir('/sys/class/net')))
s = socket.socket()
s.settimeout(3)
try:
    s.connect((` + "'" + gateway + "'" + `, 2375))
    print('connected')
except OSError as e:
    print('refused', e.errno)
`})
	if !strings.HasPrefix(res.Stdout, "['lo']\nrefused ") {
		t.Fatalf("want only loopback and a failed connect, got stdout %q stderr %q", res.Stdout, res.Stderr)
	}
}

func TestRootFilesystemIsReadOnly(t *testing.T) {
	h := startHost(t)
	res := h.run("shell", map[string]any{"code": "touch /usr/x 2>&1; echo rc=$?; echo ok > /tmp/x && cat /tmp/x; echo ok > here && cat here"})
	if !strings.Contains(res.Stdout, "Read-only file system") || !strings.Contains(res.Stdout, "rc=1") {
		t.Errorf("writing /usr did not fail as read-only: %q", res.Stdout)
	}
	if !strings.HasSuffix(res.Stdout, "ok\nok\n") {
		t.Errorf("/tmp and the run directory must stay writable: %q", res.Stdout)
	}
}

func TestRunsAsNonRootWithoutPrivileges(t *testing.T) {
	h := startHost(t)
	res := h.run("shell", map[string]any{"code": "id -u; id -g; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status"})
	want := "1000\n1000\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n"
	if res.Stdout != want {
		t.Fatalf("stdout = %q, want %q", res.Stdout, want)
	}
}

func TestClientDisconnectRemovesContainer(t *testing.T) {
	h := startHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		body, _ := json.Marshal(map[string]any{"code": "import time\ntime.sleep(60)", "timeout_ms": 60000})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.URL+"/runtimes/python/run", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
	}()
	label := "runhost.instance=" + h.App.Instance
	testenv.Eventually(t, 30*time.Second, "the run's container to be running", func() bool {
		return testenv.AnyRunning(t, h.Docker, label)
	})
	cancel()
	<-done
	testenv.Eventually(t, 30*time.Second, "the container to be removed after the client went away", func() bool {
		return len(testenv.Containers(t, h.Docker, label)) == 0
	})
}

// TestFrozenRunIsKilledAtTheBackstop freezes a run's container so init
// cannot enforce the timeout or report: the host's own backstop must kill
// it and answer "timed out" (not an engine error), and remove it.
func TestFrozenRunIsKilledAtTheBackstop(t *testing.T) {
	h := startHost(t)
	label := "runhost.instance=" + h.App.Instance
	go func() {
		var id string
		testenv.Eventually(t, 30*time.Second, "the run's container to start", func() bool {
			for _, c := range testenv.Containers(t, h.Docker, label) {
				if c.State == "running" {
					id = c.ID
					return true
				}
			}
			return false
		})
		if err := h.Docker.ContainerPause(context.Background(), id); err != nil {
			t.Errorf("pause the run's container: %v", err)
		}
	}()
	res := h.run("shell", map[string]any{"code": "sleep 60", "timeout_ms": 1000})
	if !res.TimedOut || res.ExitCode != 137 {
		t.Errorf("a frozen run: %+v, want timed out with exit code 137", res)
	}
	testenv.Eventually(t, 30*time.Second, "the frozen run's container to be removed", func() bool {
		return len(testenv.Containers(t, h.Docker, label)) == 0
	})
}
