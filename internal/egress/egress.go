// Package egress is the allow-list proxy that install steps, granted
// builds and granted runs reach the network through. Such a container has
// no network interface but loopback; runhost-init forwards 127.0.0.1:3128
// inside it to this proxy's unix socket (shared through a volume), adding
// the container's token to each connection, and the proxy, which runs in
// its own container on a real network, lets through only requests to the
// hosts the token allows, resolving names itself and refusing private,
// loopback and link-local addresses (the engine, the host, cloud metadata)
// unless an operator allowed their range.
package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// UID and GID are the proxy's own identity: no run or install step has it
// (RUNHOST_RUN_USER refuses it), so the directory that holds the proxy's
// socket, owned by this uid, is one an install step cannot change.
const (
	UID = 65532
	GID = 65532
)

// HealthPath is the one origin-form request the proxy answers itself: a
// health probe (runhost-egress -check) sent to its socket or port.
const HealthPath = "/.runhost-egress/health"

// healthBody is what the proxy answers to HealthPath; a listener that is
// not the proxy does not know to say it.
const healthBody = "runhost-egress ok\n"

// Policy says where requests may go.
type Policy struct {
	// Hosts are allowed host names or patterns: "pypi.org", "*.pythonhosted.org",
	// "index:8000" (a port pins it). Matching ignores case. A request with
	// a token may reach its token's hosts instead.
	Hosts []string
	// Private are address ranges that may be reached although they are
	// private, loopback or link-local (e.g. a local package index's network).
	Private []netip.Prefix
	// Resolver looks names up; nil means the system resolver.
	Resolver *net.Resolver
}

// ErrDenied is a request the policy refuses.
var ErrDenied = errors.New("egress denied")

// allowedHost reports whether host:port is on the list.
func (p Policy) allowedHost(host, port string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pat := range p.Hosts {
		pat = strings.ToLower(pat)
		ph, pp, hasPort := strings.Cut(pat, ":")
		if hasPort && pp != port {
			continue
		}
		if ph == host || strings.HasPrefix(ph, "*.") && strings.HasSuffix(host, ph[1:]) {
			return true
		}
	}
	return false
}

// blocked reports whether ip is an address no install may reach unless an
// operator allowed its range.
func (p Policy) blocked(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, pre := range p.Private {
		if pre.Contains(ip) {
			return false
		}
	}
	return ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() ||
		netip.MustParsePrefix("100.64.0.0/10").Contains(ip) || // carrier-grade NAT
		netip.MustParsePrefix("192.0.0.0/24").Contains(ip) ||
		netip.MustParsePrefix("198.18.0.0/15").Contains(ip)
}

// Dial connects to host:port if the policy allows it. It resolves the name
// once and dials the checked address, so a second lookup (DNS rebinding)
// cannot change where the connection goes.
func (p Policy) Dial(ctx context.Context, hostport string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("%w: %q is not host:port", ErrDenied, hostport)
	}
	if !p.allowedHost(host, port) {
		return nil, fmt.Errorf("%w: %s is not on the allow-list", ErrDenied, hostport)
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		r := p.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		addrs, err = r.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
	}
	var lastErr error = fmt.Errorf("%s has no addresses", host)
	for _, ip := range addrs {
		if p.blocked(ip) {
			lastErr = fmt.Errorf("%w: %s resolves to %s, a private, loopback or link-local address (RUNHOST_EGRESS_ALLOW_CIDRS)", ErrDenied, host, ip)
			continue
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(ip, mustPort(port)).String())
		if err == nil {
			return conn, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func mustPort(s string) uint16 {
	var n uint16
	_, _ = fmt.Sscanf(s, "%d", &n)
	return n
}

// Proxy is an HTTP proxy (CONNECT and absolute-form requests) enforcing a
// Policy. Each plain-HTTP request is answered with Connection: close, so a
// connection carries one request and the token its forwarder added to it.
type Proxy struct {
	Policy Policy
	// Secret verifies tokens (Proxy-Authorization: Bearer). A request with
	// a valid token may reach the token's hosts, under the Policy's
	// address rules; one with a bad token is refused, and one without
	// reaches only Policy.Hosts (none when it is empty).
	Secret []byte
	Log    *slog.Logger
	// Now is the clock tokens expire by; nil means time.Now.
	Now func() time.Time

	once      sync.Once
	transport *http.Transport
}

// policyKey carries a request's Policy to the transport's dial.
type policyKey struct{}

func (p *Proxy) init() {
	p.once.Do(func() {
		if p.Log == nil {
			p.Log = slog.New(slog.NewJSONHandler(io.Discard, nil))
		}
		if p.Now == nil {
			p.Now = time.Now
		}
		p.transport = &http.Transport{
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				pol, ok := ctx.Value(policyKey{}).(Policy)
				if !ok {
					return nil, fmt.Errorf("%w: no policy for %s", ErrDenied, addr)
				}
				return pol.Dial(ctx, addr)
			},
			Proxy: nil,
			// One upstream connection per request: a connection dialled for
			// one token is never reused for another.
			DisableKeepAlives:     true,
			ResponseHeaderTimeout: 60 * time.Second,
		}
	})
}

// requestPolicy is the Policy a request is held to: its token's hosts
// under the proxy's address rules, or the proxy's own hosts without a
// token. run names the token's run ("" without one).
func (p *Proxy) requestPolicy(r *http.Request) (pol Policy, run string, err error) {
	token := tokenOf(r.Header)
	if token == "" {
		if len(p.Policy.Hosts) == 0 {
			return Policy{}, "", fmt.Errorf("%w: no token (connect through runhost-init's forwarder at HTTP_PROXY)", ErrDenied)
		}
		return p.Policy, "", nil
	}
	c, err := Verify(p.Secret, token, p.Now())
	if err != nil {
		return Policy{}, "", fmt.Errorf("%w: %w", ErrDenied, err)
	}
	pol = p.Policy
	pol.Hosts = c.Hosts
	return pol, c.Run, nil
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.init()
	if !r.URL.IsAbs() && r.URL.Path == HealthPath && r.Method == http.MethodGet {
		_, _ = io.WriteString(w, healthBody)
		return
	}
	target := r.Host
	if r.Method != http.MethodConnect {
		target = r.URL.Host
	}
	pol, run, err := p.requestPolicy(r)
	if err != nil {
		p.deny(w, target, run, err)
		return
	}
	if r.Method == http.MethodConnect {
		p.connect(w, r, pol, run)
		return
	}
	w.Header().Set("Connection", "close")
	if !r.URL.IsAbs() || r.URL.Scheme != "http" {
		http.Error(w, "runhost egress: send absolute http:// URLs or CONNECT", http.StatusBadRequest)
		return
	}
	out := r.Clone(context.WithValue(r.Context(), policyKey{}, pol))
	out.RequestURI = ""
	for _, h := range []string{"Proxy-Connection", AuthHeader, "Connection", "Keep-Alive", "Te", "Trailer", "Upgrade"} {
		out.Header.Del(h)
	}
	host := r.URL.Host
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(host, "80")
	}
	out.URL.Host = host
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		p.deny(w, r.URL.Host, run, err)
		return
	}
	defer resp.Body.Close()
	p.Log.Info("egress", "method", r.Method, "host", r.URL.Host, "status", resp.StatusCode, "run", run)
	for k, vs := range resp.Header {
		if http.CanonicalHeaderKey(k) == VerdictHeader {
			continue // only the proxy's own answers carry it
		}
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Connection", "close")
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func (p *Proxy) connect(w http.ResponseWriter, r *http.Request, pol Policy, run string) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	upstream, err := pol.Dial(ctx, r.Host)
	cancel()
	if err != nil {
		p.deny(w, r.Host, run, err)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		upstream.Close()
		http.Error(w, "runhost egress: cannot tunnel", http.StatusInternalServerError)
		return
	}
	client, buf, err := hj.Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	p.Log.Info("egress", "method", "CONNECT", "host", r.Host, "run", run)
	_, _ = client.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
	done := make(chan struct{}, 2)
	go func() {
		if n := buf.Reader.Buffered(); n > 0 {
			b, _ := buf.Reader.Peek(n)
			_, _ = upstream.Write(b)
		}
		_, _ = io.Copy(upstream, client)
		closeWrite(upstream)
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(client, upstream)
		closeWrite(client)
		done <- struct{}{}
	}()
	<-done
	<-done
	client.Close()
	upstream.Close()
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// VerdictHeader marks the proxy's own refusals, so that a forwarder can
// tell them from an origin's answer: "refused" (403: the token or the
// address rules forbid it) or "failed" (502: it could not be reached).
const VerdictHeader = "Runhost-Egress"

// Verdicts in VerdictHeader.
const (
	VerdictRefused = "refused"
	VerdictFailed  = "failed"
)

func (p *Proxy) deny(w http.ResponseWriter, host, run string, err error) {
	status, verdict := http.StatusBadGateway, VerdictFailed
	if errors.Is(err, ErrDenied) {
		status, verdict = http.StatusForbidden, VerdictRefused
	}
	p.Log.Warn("egress refused", "host", host, "run", run, "error", err.Error())
	w.Header().Set(VerdictHeader, verdict)
	w.Header().Set("Connection", "close")
	http.Error(w, "runhost egress: "+err.Error(), status)
}

// Check asks the proxy at network/address (a unix socket or a TCP address)
// for its health answer within timeout: nil means the proxy answers.
func Check(ctx context.Context, network, address string) error {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, address)
		},
		DisableKeepAlives: true,
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://runhost-egress"+HealthPath, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("egress proxy at %s: %w", address, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode != http.StatusOK || string(body) != healthBody {
		return fmt.Errorf("egress proxy at %s: answered %d %q, not the proxy's health answer", address, resp.StatusCode, body)
	}
	return nil
}
