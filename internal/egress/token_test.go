package egress

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestTokenVerify(t *testing.T) {
	secret, other := NewSecret(), NewSecret()
	now := time.Unix(1_800_000_000, 0)
	claims := Claims{Run: "run-1", Hosts: []string{"api.example.test"}, Expires: now.Add(time.Minute).Unix()}
	good := Sign(secret, claims)

	// A token whose claims were changed keeps its old MAC.
	payload, mac, _ := strings.Cut(good, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	var widened Claims
	_ = json.Unmarshal(raw, &widened)
	widened.Hosts = append(widened.Hosts, "other.example.test")
	wraw, _ := json.Marshal(widened)
	forged := base64.RawURLEncoding.EncodeToString(wraw) + "." + mac

	tests := []struct {
		name   string
		secret []byte
		token  string
		at     time.Time
		ok     bool
	}{
		{"valid", secret, good, now, true},
		{"another host's secret", other, good, now, false},
		{"claims changed", secret, forged, now, false},
		{"signed by another secret", secret, Sign(other, claims), now, false},
		{"expired", secret, good, now.Add(time.Minute), false},
		{"no MAC", secret, payload, now, false},
		{"garbage", secret, "!!.!!", now, false},
		{"empty", secret, "", now, false},
		{"proxy without a secret", nil, good, now, false},
	}
	for _, tt := range tests {
		c, err := Verify(tt.secret, tt.token, tt.at)
		if (err == nil) != tt.ok {
			t.Errorf("%s: Verify = %+v, %v; want ok=%v", tt.name, c, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadToken) {
			t.Errorf("%s: %v does not wrap ErrBadToken", tt.name, err)
		}
		if tt.ok && (c.Run != "run-1" || len(c.Hosts) != 1) {
			t.Errorf("%s: claims %+v", tt.name, c)
		}
	}
}

// TestProxyHoldsEachConnectionToItsToken: one proxy, many runs; each
// request reaches only what its own token names, a forged or replayed
// token gets nothing, and a request without a token gets nothing when the
// proxy has no hosts of its own.
func TestProxyHoldsEachConnectionToItsToken(t *testing.T) {
	secret := NewSecret()
	granted, grantedHits := countingServer(t, "127.0.0.1:0")
	other, otherHits := countingServer(t, "127.0.0.1:0")
	now := time.Now()
	proxy := httptest.NewServer(&Proxy{
		Policy: Policy{Private: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
		Secret: secret,
	})
	defer proxy.Close()
	pu, _ := url.Parse(proxy.URL)

	tokenA := Sign(secret, Claims{Run: "a", Hosts: []string{granted}, Expires: now.Add(time.Minute).Unix()})
	tokenB := Sign(secret, Claims{Run: "b", Hosts: []string{other}, Expires: now.Add(time.Minute).Unix()})
	expired := Sign(secret, Claims{Run: "a", Hosts: []string{granted}, Expires: now.Add(-time.Second).Unix()})
	foreign := Sign(NewSecret(), Claims{Run: "a", Hosts: []string{granted, other}, Expires: now.Add(time.Minute).Unix()})

	tests := []struct {
		name, token, target string
		want                int
	}{
		{"its own host", tokenA, granted, http.StatusOK},
		{"another run's host", tokenA, other, http.StatusForbidden},
		{"the other run, its host", tokenB, other, http.StatusOK},
		{"the other run, the first's host", tokenB, granted, http.StatusForbidden},
		{"an expired token replayed", expired, granted, http.StatusForbidden},
		{"a token of another secret", foreign, granted, http.StatusForbidden},
		{"no token", "", granted, http.StatusForbidden},
		{"a token that is not one", "nonsense", granted, http.StatusForbidden},
	}
	for _, tt := range tests {
		for _, method := range []string{"GET", "CONNECT"} {
			status, verdict := proxyRequest(t, pu.Host, method, tt.target, tt.token)
			if status != tt.want {
				t.Errorf("%s (%s): %d, want %d", tt.name, method, status, tt.want)
			}
			if tt.want == http.StatusForbidden && verdict != VerdictRefused {
				t.Errorf("%s (%s): %s header %q, want %q", tt.name, method, VerdictHeader, verdict, VerdictRefused)
			}
		}
	}
	// Reached only by the requests their tokens grant: a GET and a CONNECT
	// each (the tunnel sends one request).
	if n := grantedHits.Load(); n != 2 {
		t.Errorf("the granted host got %d requests, want 2", n)
	}
	if n := otherHits.Load(); n != 2 {
		t.Errorf("the other host got %d requests, want 2", n)
	}
}

// proxyRequest sends one request for target through the proxy on a fresh
// connection (GET in absolute form, or a CONNECT tunnel carrying a GET)
// and returns the proxy's status and its verdict header.
func proxyRequest(t *testing.T, proxy, method, target, token string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	auth := ""
	if token != "" {
		auth = "Proxy-Authorization: Bearer " + token + "\r\n"
	}
	if method == "CONNECT" {
		fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", target, target, auth)
	} else {
		fmt.Fprintf(conn, "GET http://%s/ HTTP/1.1\r\nHost: %s\r\n%s\r\n", target, target, auth)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	if method == "CONNECT" && resp.StatusCode == http.StatusOK {
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target)
		_, _ = io.ReadAll(br)
		return resp.StatusCode, resp.Header.Get(VerdictHeader)
	}
	if method == "GET" && resp.Header.Get("Connection") != "close" && !resp.Close {
		t.Errorf("GET %s: the proxy's answer keeps the connection open; each request must be one connection", target)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get(VerdictHeader)
}
