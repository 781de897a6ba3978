package initproc

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The forwarder's bounds: a request or response head larger than
// maxHeadBytes is not HTTP a proxy client sends, and a program that
// connects but sends nothing holds its connection at most headTimeout.
const (
	maxHeadBytes  = 64 << 10
	headTimeout   = 30 * time.Second
	maxLogTargets = 256 // per list of a NetworkLog
)

// The proxy's mark on its own refusals (egress.VerdictHeader); init does
// not import the proxy's package, so the names are repeated here.
const (
	verdictHeader  = "runhost-egress"
	verdictRefused = "refused"
	verdictFailed  = "failed"
)

// forwarder accepts connections on a loopback address and pipes each to
// the proxy's unix socket. With a token it speaks enough HTTP to add the
// token to the request head and to read the proxy's answer.
type forwarder struct {
	f  Forward
	ln net.Listener

	mu                         sync.Mutex
	contacted, refused, failed map[string]bool
}

// startForward serves f in the background for as long as init lives.
func startForward(f Forward) (*forwarder, error) {
	if host, _, err := net.SplitHostPort(f.Listen); err != nil || !net.ParseIP(host).IsLoopback() {
		return nil, fmt.Errorf("forward: %q is not a loopback address", f.Listen)
	}
	if f.CA != "" {
		if err := writeCA(f.CAFile, f.CA); err != nil {
			return nil, fmt.Errorf("forward: %w", err)
		}
	}
	ln, err := net.Listen("tcp", f.Listen)
	if err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	fw := &forwarder{f: f, ln: ln, contacted: map[string]bool{}, refused: map[string]bool{}, failed: map[string]bool{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go fw.serve(c)
		}
	}()
	return fw, nil
}

// writeCA creates file (absolute, new) holding the CA bundle, read-only.
func writeCA(file, pem string) error {
	if !path.IsAbs(file) || path.Clean(file) != file {
		return fmt.Errorf("CA file %q: want an absolute, clean path", file)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o444)
	if err != nil {
		return fmt.Errorf("CA file: %w", err)
	}
	if _, err := io.WriteString(f, pem); err != nil {
		f.Close()
		return fmt.Errorf("CA file: %w", err)
	}
	return f.Close()
}

// Addr is where the forwarder listens.
func (fw *forwarder) Addr() net.Addr { return fw.ln.Addr() }

// Close stops accepting connections.
func (fw *forwarder) Close() error { return fw.ln.Close() }

// report returns what was recorded since the last report, and forgets it;
// nil for a forward without a token (nothing is recorded).
func (fw *forwarder) report() *NetworkLog {
	if fw == nil || fw.f.Token == "" {
		return nil
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	out := &NetworkLog{Contacted: sortedSet(fw.contacted), Refused: sortedSet(fw.refused), Failed: sortedSet(fw.failed)}
	clear(fw.contacted)
	clear(fw.refused)
	clear(fw.failed)
	return out
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// record notes target's outcome.
func (fw *forwarder) record(target, verdict string) {
	if target == "" {
		return
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	set := fw.contacted
	switch verdict {
	case verdictRefused:
		set = fw.refused
	case verdictFailed:
		set = fw.failed
	}
	if len(set) < maxLogTargets {
		set[target] = true
	}
}

// serve carries one connection to the proxy.
func (fw *forwarder) serve(c net.Conn) {
	defer c.Close()
	if fw.f.Token == "" {
		u, err := net.Dial("unix", fw.f.Socket)
		if err != nil {
			return
		}
		defer u.Close()
		splice(c, u)
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(headTimeout))
	in := bufio.NewReaderSize(c, 4096)
	head, target, err := readRequestHead(in, fw.f.Token)
	if err != nil {
		return // not a request a proxy could answer: nothing to forward
	}
	_ = c.SetReadDeadline(time.Time{})
	u, err := net.Dial("unix", fw.f.Socket)
	if err != nil {
		fw.record(target, verdictFailed)
		fmt.Fprintf(c, "HTTP/1.1 502 Bad Gateway\r\nRunhost-Egress: failed\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nrunhost: the egress proxy is not reachable: %v\n", err)
		return
	}
	defer u.Close()
	if _, err := u.Write(head); err != nil {
		fw.record(target, verdictFailed)
		return
	}
	// The request's body (or a tunnel's first bytes) goes on while the
	// answer's head is read.
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		_, _ = io.Copy(u, in)
		closeWrite(u)
	}()
	out := bufio.NewReaderSize(u, 4096)
	answer, verdict, err := readResponseHead(out)
	if err != nil {
		fw.record(target, verdictFailed)
		c.Close()
		<-sent
		return
	}
	fw.record(target, verdict)
	if _, err := c.Write(answer); err == nil {
		_, _ = io.Copy(c, out)
	}
	// The proxy is done: it answers a plain request with Connection:
	// close, and ends a tunnel when both sides have. A program that keeps
	// its end open is not waited for long.
	closeWrite(c)
	select {
	case <-sent:
	case <-time.After(headTimeout):
		c.Close()
		<-sent
	}
}

// splice copies both ways between a and b until both directions end.
func splice(a, b net.Conn) {
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(b, a); closeWrite(b); done <- struct{}{} }()
	go func() { _, _ = io.Copy(a, b); closeWrite(a); done <- struct{}{} }()
	<-done
	<-done
}

// readRequestHead reads a request head from r and returns it with the
// token as its only Proxy-Authorization, and the request's target as
// host:port (CONNECT's authority, or an absolute URL's host); "" for a
// request that names none.
func readRequestHead(r *bufio.Reader, token string) (head []byte, target string, err error) {
	lines, err := readHead(r)
	if err != nil {
		return nil, "", err
	}
	method, rest, _ := strings.Cut(lines[0], " ")
	uri, _, _ := strings.Cut(rest, " ")
	target = requestTarget(method, uri)
	var b bytes.Buffer
	b.WriteString(lines[0] + "\r\n")
	b.WriteString("Proxy-Authorization: Bearer " + token + "\r\n")
	for _, l := range lines[1:] {
		name, _, _ := strings.Cut(l, ":")
		if strings.EqualFold(strings.TrimSpace(name), "proxy-authorization") {
			continue
		}
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes(), target, nil
}

// requestTarget is the host:port a proxy request is for.
func requestTarget(method, uri string) string {
	if method == "CONNECT" {
		if _, _, err := net.SplitHostPort(uri); err != nil {
			return ""
		}
		return strings.ToLower(uri)
	}
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443"}[u.Scheme]
		if port == "" {
			port = "80"
		}
	}
	return strings.ToLower(net.JoinHostPort(u.Hostname(), port))
}

// readResponseHead reads the proxy's answer head and says what it means:
// the proxy's own refusal, its failure, or (any other answer) a target
// that was reached.
func readResponseHead(r *bufio.Reader) (head []byte, verdict string, err error) {
	lines, err := readHead(r)
	if err != nil {
		return nil, "", err
	}
	verdict = ""
	for _, l := range lines[1:] {
		name, value, _ := strings.Cut(l, ":")
		if strings.EqualFold(strings.TrimSpace(name), verdictHeader) {
			verdict = strings.TrimSpace(value)
		}
	}
	if verdict != verdictRefused && verdict != verdictFailed {
		verdict = "contacted"
	}
	return []byte(strings.Join(lines, "\r\n") + "\r\n\r\n"), verdict, nil
}

// readHead reads the lines of an HTTP head up to the empty line, at most
// maxHeadBytes.
func readHead(r *bufio.Reader) ([]string, error) {
	var lines []string
	n := 0
	for {
		line, err := r.ReadString('\n')
		n += len(line)
		if err != nil {
			return nil, err
		}
		if n > maxHeadBytes {
			return nil, fmt.Errorf("head larger than %d bytes", maxHeadBytes)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if len(lines) == 0 {
				continue // a stray empty line before the request line
			}
			return lines, nil
		}
		lines = append(lines, line)
	}
}
