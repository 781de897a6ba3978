//go:build k8s

package k8s

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
)

// Interactive stdin on Kubernetes, through the Piston-compatible WebSocket:
// the program prints, waits for a line the client sends only then, and
// answers it. Stdin goes over the pod's attach stream as it arrives.
func TestInteractiveStdinOnKubernetes(t *testing.T) {
	h := startHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.url, "http")+"/api/v2/connect", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	type msg struct {
		Type   string `json:"type"`
		Stream string `json:"stream,omitempty"`
		Data   string `json:"data,omitempty"`
		Code   *int   `json:"code,omitempty"`
	}
	send := func(v any) {
		t.Helper()
		if err := wsjson.Write(ctx, conn, v); err != nil {
			t.Fatal(err)
		}
	}
	var stdout string
	var exit *msg
	read := func(until string) {
		t.Helper()
		for {
			var m msg
			if err := wsjson.Read(ctx, conn, &m); err != nil {
				var ce websocket.CloseError
				if errors.As(err, &ce) && ce.Code == 4999 {
					return
				}
				t.Fatalf("read (stdout so far %q): %v", stdout, err)
			}
			switch m.Type {
			case "data":
				if m.Stream == "stdout" {
					stdout += m.Data
				}
			case "exit":
				exit = &m
			}
			if until != "" && strings.HasSuffix(stdout, until) {
				return
			}
		}
	}
	send(map[string]any{"type": "init", "language": "python", "version": "3.11", "files": []map[string]string{{
		"content": "import sys\nprint('ready', flush=True)\nprint(sys.stdin.readline().strip().upper(), flush=True)",
	}}})
	read("ready\n")
	send(map[string]any{"type": "data", "stream": "stdin", "data": "hello\n"})
	read("")
	if stdout != "ready\nHELLO\n" || exit == nil || exit.Code == nil || *exit.Code != 0 {
		t.Fatalf("stdout %q, exit %+v", stdout, exit)
	}
}
