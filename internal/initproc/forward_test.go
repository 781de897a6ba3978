package initproc

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// TestForwardWithToken: the forwarder puts the run's token, and only it,
// on each connection's request, and records each target by the proxy's
// answer: reached (any answer of the origin's), refused or failed by the
// proxy, or failed when the proxy is gone.
func TestForwardWithToken(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "proxy.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var auths []string
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				mu.Lock()
				auths = append(auths, strings.Join(req.Header.Values("Proxy-Authorization"), "|"))
				mu.Unlock()
				host := req.Host
				switch {
				case strings.HasPrefix(host, "refused."):
					fmt.Fprint(c, "HTTP/1.1 403 Forbidden\r\nRunhost-Egress: refused\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
				case strings.HasPrefix(host, "failed."):
					fmt.Fprint(c, "HTTP/1.1 502 Bad Gateway\r\nRunhost-Egress: failed\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
				case req.Method == http.MethodConnect:
					fmt.Fprint(c, "HTTP/1.1 200 Connection established\r\n\r\n")
					_, _ = io.Copy(c, c) // an echo for a tunnel
				default: // the origin's own 404 is still a contact
					fmt.Fprint(c, "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno")
				}
			}()
		}
	}()
	fw, err := startForward(Forward{Listen: "127.0.0.1:0", Socket: sock, Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()

	send := func(head string) string {
		c, err := net.Dial("tcp", fw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprint(c, head)
		if strings.HasPrefix(head, "CONNECT") {
			br := bufio.NewReader(c)
			line, _ := br.ReadString('\n')
			if strings.Contains(line, " 200 ") {
				_, _ = br.ReadString('\n')
				fmt.Fprint(c, "ping")
				b := make([]byte, 4)
				_, _ = io.ReadFull(br, b)
				return line + string(b)
			}
			return line
		}
		b, _ := io.ReadAll(c)
		return string(b)
	}
	if got := send("CONNECT api.example.org:443 HTTP/1.1\r\nHost: api.example.org:443\r\n\r\n"); !strings.HasSuffix(got, "ping") {
		t.Errorf("tunnel: %q", got)
	}
	send("GET http://Plain.Example.org/x HTTP/1.1\r\nHost: plain.example.org\r\nProxy-Authorization: Bearer stolen\r\n\r\n")
	send("CONNECT refused.example.org:443 HTTP/1.1\r\nHost: refused.example.org:443\r\n\r\n")
	send("GET http://failed.example.org:8080/ HTTP/1.1\r\nHost: failed.example.org:8080\r\n\r\n")

	want := &NetworkLog{
		Contacted: []string{"api.example.org:443", "plain.example.org:80"},
		Refused:   []string{"refused.example.org:443"},
		Failed:    []string{"failed.example.org:8080"},
	}
	if got := fw.report(); !reflect.DeepEqual(got, want) {
		t.Errorf("report = %+v, want %+v", got, want)
	}
	mu.Lock()
	for _, a := range auths {
		if a != "Bearer tok" {
			t.Errorf("the proxy got Proxy-Authorization %q, want only the run's token", a)
		}
	}
	mu.Unlock()
	if got := fw.report(); len(got.Contacted)+len(got.Refused)+len(got.Failed) != 0 {
		t.Errorf("a report after a report: %+v, want it empty", got)
	}

	// The proxy gone: the program gets an answer, not a hang, and the
	// target is reported as failed.
	ln.Close()
	_ = os.Remove(sock)
	if got := send("CONNECT api.example.org:443 HTTP/1.1\r\nHost: api.example.org:443\r\n\r\n"); !strings.Contains(got, "502") {
		t.Errorf("with the proxy gone: %q, want a 502", got)
	}
	if got := fw.report(); !reflect.DeepEqual(got.Failed, []string{"api.example.org:443"}) {
		t.Errorf("with the proxy gone: report %+v", got)
	}
}
