package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/runhost/runhost/internal/testenv"
)

// Clients that do not read their answers (issue 14, item 5): a run's slot
// is freed when the run is over, a stream to a client that stopped reading
// is cancelled (its container removed), and nothing waits on such a client
// past the write timeout.

// slowEnv: one run at a time, so a held slot shows; a short write timeout
// and a small stream buffer, so a stalled client is noticed soon; output
// caps far above what socket buffers hold, so a program can fill them.
var slowEnv = []string{
	"RUNHOST_MAX_RUNS=1", "RUNHOST_QUEUE_WAIT_MS=2000",
	"RUNHOST_WRITE_TIMEOUT_MS=1000", "RUNHOST_MAX_STREAM_BUFFER_BYTES=65536",
	"RUNHOST_OUTPUT_LIMIT_BYTES=67108864",
}

// stalledClient sends one request over a raw connection and never reads
// the answer; its receive buffer is kept small. Closed at the test's end.
func stalledClient(t *testing.T, h *host, path, accept string, body any) net.Conn {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(h.URL, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: %s\r\nContent-Length: %d\r\n\r\n%s", path, addr, accept, len(b), b)
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	return conn
}

// auditOutcomes lists the outcome of every audit line so far.
func auditOutcomes(h *host) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(h.Logs()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["@message"] == "audit" {
			out = append(out, fmt.Sprint(line["outcome"]))
		}
	}
	return out
}

func hasOutcome(h *host, want string) bool {
	for _, o := range auditOutcomes(h) {
		if o == want {
			return true
		}
	}
	return false
}

// TestStalledStreamIsCancelled: a client asks for a stream of a program
// that prints without end and never reads. Once the socket buffers and the
// stream buffer are full, a write times out: the run is cancelled, its
// container removed, its slot free (the next run gets it, with one slot),
// and the audit says the client went away.
func TestStalledStreamIsCancelled(t *testing.T) {
	h := startHost(t, slowEnv...)
	stalledClient(t, h, "/runtimes/shell/run", "text/event-stream",
		map[string]any{"code": "yes 0123456789abcdef0123456789abcdef0123456789abcdef", "timeout_ms": 60000})
	label := "runhost.instance=" + h.App.Instance
	testenv.Eventually(t, 60*time.Second, "the run to start", func() bool {
		return testenv.AnyRunning(t, h.Docker, label)
	})
	testenv.Eventually(t, 60*time.Second, "the stalled stream's run to be cancelled and its slot freed", func() bool {
		return h.App.Admission.Stats().InFlight == 0
	})
	testenv.Eventually(t, 60*time.Second, "the cancelled run's container to be removed", func() bool {
		return len(testenv.Containers(t, h.Docker, label)) == 0
	})
	testenv.Eventually(t, 30*time.Second, "the audit to record a client disconnect", func() bool {
		return hasOutcome(h, "client_disconnect")
	})
	if res := h.run("shell", map[string]any{"code": "echo next"}); res.Stdout != "next\n" {
		t.Errorf("the next run: %+v", res)
	}
}

// TestNonReadingClientHoldsNoSlot: a client that never reads a big JSON
// answer holds no run slot (it is freed when the run is over, before the
// answer is written), and the write deadline ends its handler.
func TestNonReadingClientHoldsNoSlot(t *testing.T) {
	h := startHost(t, slowEnv...)
	stalledClient(t, h, "/runtimes/shell/run", "application/json",
		map[string]any{"code": "head -c 16000000 /dev/zero | tr '\\0' a"})
	testenv.Eventually(t, 60*time.Second, "the run to be admitted", func() bool {
		return h.App.Admission.Stats().InFlight == 1 || hasOutcome(h, "client_disconnect")
	})
	testenv.Eventually(t, 60*time.Second, "the slot to be freed while the answer is unread", func() bool {
		return h.App.Admission.Stats().InFlight == 0
	})
	// The stalled connection is still open: another client runs at once.
	if res := h.run("shell", map[string]any{"code": "echo next"}); res.Stdout != "next\n" {
		t.Errorf("the next run: %+v", res)
	}
	testenv.Eventually(t, 60*time.Second, "the write deadline to end the unread answer", func() bool {
		return hasOutcome(h, "client_disconnect")
	})
}

// TestStreamToAReadingClient: a stream much larger than the stream buffer
// reaches a client that reads, whole and in order, ending with the result:
// a full buffer makes the run wait, it does not cancel it.
func TestStreamToAReadingClient(t *testing.T) {
	h := startHost(t, slowEnv...)
	const lines = 200000 // about 1.3 MB of output through a 64 KiB buffer
	body := fmt.Sprintf(`{"code":"seq 1 %d"}`, lines)
	resp := h.stream("/runtimes/shell/run", body)
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var stdout strings.Builder
	var result *runResult
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 4<<20), 4<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "stdout":
			var chunk struct{ Text string }
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &chunk); err != nil {
				t.Fatal(err)
			}
			stdout.WriteString(chunk.Text)
		case strings.HasPrefix(line, "data: ") && event == "result":
			result = new(runResult)
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), result); err != nil {
				t.Fatal(err)
			}
		}
	}
	if result == nil || result.ExitCode != 0 {
		t.Fatalf("no result event, or a failed run: %+v (%v)", result, sc.Err())
	}
	var want strings.Builder
	for i := 1; i <= lines; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	if stdout.String() != want.String() || result.Stdout != want.String() {
		t.Errorf("streamed %d bytes, result %d bytes, want %d", stdout.Len(), len(result.Stdout), want.Len())
	}
}

// TestWebSocketStdinIsBounded: stdin over /api/v2/connect that the program
// does not read is held up to RUNHOST_MAX_STDIN_BYTES, then the connection
// is closed with Piston's error code; one message over the size limit
// after init closes it the same way. The host never holds more.
func TestWebSocketStdinIsBounded(t *testing.T) {
	h := startHost(t, append([]string{"RUNHOST_MAX_STDIN_BYTES=262144", "RUNHOST_MAX_WS_MESSAGE_BYTES=65536"}, pistonEnv...)...)
	waiting := map[string]any{"type": "init", "language": "bash", "version": "*", "run_timeout": 20000,
		"files": files("echo waiting; sleep 30")}

	t.Run("stdin nobody reads", func(t *testing.T) {
		conn := pistonDial(t, h)
		wsSend(t, conn, waiting)
		wsRead(t, conn, untilStdout("waiting\n"))
		// Send 60 KiB messages until the host closes (reading alongside,
		// so its close frame is seen); give up far past any sane bound.
		const maxSent = 32 << 20
		chunk := strings.Repeat("x", 60<<10)
		var sent atomic.Int64
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		go func() {
			for sent.Load() < maxSent {
				if err := wsjson.Write(ctx, conn, map[string]any{"type": "data", "stream": "stdin", "data": chunk}); err != nil {
					return
				}
				sent.Add(int64(len(chunk)))
			}
		}()
		var notice string
		var closeErr websocket.CloseError
		for {
			var m wsMsg
			err := wsjson.Read(ctx, conn, &m)
			if errors.As(err, &closeErr) {
				break
			}
			if err != nil {
				t.Fatalf("no close after %d bytes of stdin: %v", sent.Load(), err)
			}
			if m.Type == "error" {
				notice = m.Message
			}
		}
		if closeErr.Code != 4002 || closeErr.Reason != "Stdin Limit Exceeded" || !strings.Contains(notice, "RUNHOST_MAX_STDIN_BYTES") {
			t.Errorf("closed %d %q after error %q; want 4002 Stdin Limit Exceeded and a message naming RUNHOST_MAX_STDIN_BYTES", closeErr.Code, closeErr.Reason, notice)
		}
		t.Logf("the host closed after the client had sent %d KiB of stdin (bound 256 KiB, plus what the pipe to the program and the sockets hold)", sent.Load()>>10)
	})

	t.Run("message over the limit", func(t *testing.T) {
		conn := pistonDial(t, h)
		wsSend(t, conn, waiting)
		wsRead(t, conn, untilStdout("waiting\n"))
		wsSend(t, conn, map[string]any{"type": "data", "stream": "stdin", "data": strings.Repeat("x", 100<<10)})
		msgs, code, reason := wsRead(t, conn, nil)
		if code != 4002 || reason != "Message Too Big" || len(msgs) == 0 || msgs[len(msgs)-1].Type != "error" ||
			!strings.Contains(msgs[len(msgs)-1].Message, "65536") {
			t.Errorf("closed %d %q after %+v; want 4002 Message Too Big after an error naming the limit", code, reason, msgs)
		}
	})

	// The runs were killed and their slots freed.
	testenv.Eventually(t, 60*time.Second, "the runs' slots to be freed", func() bool {
		return h.App.Admission.Stats().InFlight == 0
	})
}
