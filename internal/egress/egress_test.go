package egress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

func TestAllowedHost(t *testing.T) {
	p := Policy{Hosts: []string{"pypi.org", "*.pythonhosted.org", "index:8000"}}
	tests := []struct {
		host, port string
		want       bool
	}{
		{"pypi.org", "443", true},
		{"PyPI.org.", "443", true},
		{"files.pythonhosted.org", "443", true},
		{"pythonhosted.org", "443", false},
		{"evilpypi.org", "443", false},
		{"pypi.org.evil.com", "443", false},
		{"index", "8000", true},
		{"index", "8001", false},
		{"169.254.169.254", "80", false},
	}
	for _, tt := range tests {
		if got := p.allowedHost(tt.host, tt.port); got != tt.want {
			t.Errorf("allowedHost(%s, %s) = %v, want %v", tt.host, tt.port, got, tt.want)
		}
	}
}

func TestBlockedAddresses(t *testing.T) {
	p := Policy{Private: []netip.Prefix{netip.MustParsePrefix("172.30.0.0/16")}}
	for _, tt := range []struct {
		ip      string
		blocked bool
	}{
		{"169.254.169.254", true}, // cloud metadata
		{"127.0.0.1", true},
		{"10.0.0.1", true},
		{"172.17.0.1", true}, // the engine's bridge gateway
		{"192.168.1.1", true},
		{"::1", true},
		{"fe80::1", true},
		{"fd00::1", true},
		{"::ffff:127.0.0.1", true},
		{"100.64.0.1", true},
		{"0.0.0.0", true},
		{"172.30.5.5", false}, // allowed range
		{"151.101.0.223", false},
	} {
		if got := p.blocked(netip.MustParseAddr(tt.ip)); got != tt.blocked {
			t.Errorf("blocked(%s) = %v, want %v", tt.ip, got, tt.blocked)
		}
	}
}

func TestDialRefusesNamesResolvingToPrivateAddresses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	p := Policy{Hosts: []string{"localhost", "127.0.0.1"}}
	for _, host := range []string{"localhost", "127.0.0.1"} {
		if _, err := p.Dial(context.Background(), net.JoinHostPort(host, port)); !errors.Is(err, ErrDenied) {
			t.Errorf("Dial(%s) = %v, want ErrDenied", host, err)
		}
	}
	p.Private = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	conn, err := p.Dial(context.Background(), net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		t.Fatalf("allowed range: %v", err)
	}
	conn.Close()
}

// The proxy, end to end over loopback: an allowed origin is reached by
// plain HTTP and through CONNECT; anything else gets a 403 and is never
// reached. Loopback listeners stand for the outside: one whose host is not
// allowed (another internet host), one whose name is allowed but whose
// address is not in an allowed range (cloud metadata's case).
func TestProxy(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello from origin")
	}))
	defer origin.Close()
	u, _ := url.Parse(origin.URL)
	otherHost, otherHits := countingServer(t, "127.0.0.1:0")
	metadata, metadataHits := countingServer(t, "127.0.0.2:0")
	proxy := httptest.NewServer(&Proxy{Policy: Policy{
		Hosts:   []string{u.Host, metadata},
		Private: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	}})
	defer proxy.Close()
	pu, _ := url.Parse(proxy.URL)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}

	resp, err := client.Get(origin.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "hello from origin" {
		t.Fatalf("allowed plain HTTP: %d %q", resp.StatusCode, b)
	}

	conn, err := net.Dial("tcp", pu.Host)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", u.Host, u.Host)
	br := bufio.NewReader(conn)
	line, _ := br.ReadString('\n')
	if !strings.Contains(line, "200") {
		t.Fatalf("CONNECT to an allowed host: %q", line)
	}
	_, _ = br.ReadString('\n')
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", u.Host)
	rest, _ := io.ReadAll(br)
	conn.Close()
	if !strings.Contains(string(rest), "hello from origin") {
		t.Fatalf("through the tunnel: %q", rest)
	}

	for _, target := range []string{"http://" + metadata + "/latest/meta-data/", "http://" + otherHost + "/"} {
		resp, err := client.Get(target)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s through the proxy: %d, want 403", target, resp.StatusCode)
		}
	}
	if otherHits.Load()+metadataHits.Load() > 0 {
		t.Errorf("refused targets were reached: %d, %d times", otherHits.Load(), metadataHits.Load())
	}
}

// countingServer serves HTTP on addr and counts the requests it gets.
func countingServer(t *testing.T, addr string) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	hits := new(atomic.Int64)
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
	})}}
	srv.Start()
	t.Cleanup(srv.Close)
	return ln.Addr().String(), hits
}

// The health answer comes from the proxy itself; another server at the
// same place does not give it.
func TestCheck(t *testing.T) {
	proxy := httptest.NewServer(&Proxy{})
	defer proxy.Close()
	pu, _ := url.Parse(proxy.URL)
	if err := Check(context.Background(), "tcp", pu.Host); err != nil {
		t.Fatalf("Check of the proxy: %v", err)
	}
	other, _ := countingServer(t, "127.0.0.1:0")
	if err := Check(context.Background(), "tcp", other); err == nil {
		t.Error("Check accepted a server that is not the proxy")
	}
}
