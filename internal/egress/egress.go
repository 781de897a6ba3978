// Package egress is the allow-list proxy that install steps reach the
// network through. An install container has no network interface but
// loopback; runhost-init forwards 127.0.0.1:3128 inside it to this proxy's
// unix socket (shared through a volume), and the proxy, which runs in its
// own container on a real network, lets through only requests to allowed
// hosts, resolving names itself and refusing private, loopback and
// link-local addresses (the engine, the host, cloud metadata) unless an
// operator allowed their range.
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
	// "index:8000" (a port pins it). Matching ignores case.
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
		return nil, fmt.Errorf("%w: %s is not on the allow-list (RUNHOST_EGRESS_ALLOW)", ErrDenied, hostport)
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

// Proxy is an HTTP proxy (CONNECT and absolute-form requests) enforcing a Policy.
type Proxy struct {
	Policy Policy
	Log    *slog.Logger

	once      sync.Once
	transport *http.Transport
}

func (p *Proxy) init() {
	p.once.Do(func() {
		if p.Log == nil {
			p.Log = slog.New(slog.NewJSONHandler(io.Discard, nil))
		}
		p.transport = &http.Transport{
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				return p.Policy.Dial(ctx, addr)
			},
			Proxy:                 nil,
			ResponseHeaderTimeout: 60 * time.Second,
			MaxIdleConns:          16,
			IdleConnTimeout:       30 * time.Second,
		}
	})
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.init()
	if r.Method == http.MethodConnect {
		p.connect(w, r)
		return
	}
	if !r.URL.IsAbs() && r.URL.Path == HealthPath && r.Method == http.MethodGet {
		_, _ = io.WriteString(w, healthBody)
		return
	}
	if !r.URL.IsAbs() || r.URL.Scheme != "http" {
		http.Error(w, "runhost egress: send absolute http:// URLs or CONNECT", http.StatusBadRequest)
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	for _, h := range []string{"Proxy-Connection", "Proxy-Authorization", "Connection", "Keep-Alive", "Te", "Trailer", "Upgrade"} {
		out.Header.Del(h)
	}
	host := r.URL.Host
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(host, "80")
	}
	out.URL.Host = host
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		p.deny(w, r.URL.Host, err)
		return
	}
	defer resp.Body.Close()
	p.Log.Info("egress", "method", r.Method, "host", r.URL.Host, "status", resp.StatusCode)
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func (p *Proxy) connect(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	upstream, err := p.Policy.Dial(ctx, r.Host)
	cancel()
	if err != nil {
		p.deny(w, r.Host, err)
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
	p.Log.Info("egress", "method", "CONNECT", "host", r.Host)
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

func (p *Proxy) deny(w http.ResponseWriter, host string, err error) {
	status := http.StatusBadGateway
	if errors.Is(err, ErrDenied) {
		status = http.StatusForbidden
	}
	p.Log.Warn("egress refused", "host", host, "error", err.Error())
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
