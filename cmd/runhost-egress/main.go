// Command runhost-egress is the allow-list proxy install steps, granted
// builds and granted runs reach the network through (see package egress).
// On Docker the host starts it in a container with a secret in
// RUNHOST_EGRESS_SECRET (hex) and it serves on a unix socket in a volume
// that those containers mount; each connection carries a token the host
// signed with the secret, naming the hosts it may reach. On Kubernetes it
// runs as a pod and serves on TCP (-listen), the only address the install
// pods' NetworkPolicy lets them reach, allowing the -allow hosts to
// requests without a token.
//
// `runhost-egress -check` (with the same -socket or -listen) asks a running
// proxy for its health answer and exits 0 if it gave it: the proxy
// container's HEALTHCHECK.
package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/runhost/runhost/internal/egress"
)

func main() {
	socket := flag.String("socket", "/run/egress/proxy.sock", "unix socket to serve on")
	listen := flag.String("listen", "", "TCP address to serve on instead of the socket (host:port)")
	allow := flag.String("allow", "", "comma-separated hosts requests without a token may reach (host, *.domain, host:port); with a secret, tokens name their own")
	cidrs := flag.String("allow-cidrs", "", "comma-separated private ranges that may be reached")
	check := flag.Bool("check", false, "ask the proxy at -socket (or -listen) whether it answers, and exit")
	flag.Parse()

	if *check {
		os.Exit(runCheck(*listen, *socket))
	}

	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	var err error
	p := egress.Policy{Hosts: split(*allow)}
	for _, c := range split(*cidrs) {
		pre, err := netip.ParsePrefix(c)
		if err != nil {
			fmt.Fprintf(os.Stderr, "runhost-egress: -allow-cidrs %q: %v\n", c, err)
			os.Exit(2)
		}
		p.Private = append(p.Private, pre)
	}
	var secret []byte
	if v := os.Getenv(egress.SecretEnv); v != "" {
		if secret, err = hex.DecodeString(v); err != nil || len(secret) < 32 {
			fmt.Fprintf(os.Stderr, "runhost-egress: %s: want at least 32 bytes in hex\n", egress.SecretEnv)
			os.Exit(2)
		}
		_ = os.Unsetenv(egress.SecretEnv)
	}
	ln, err := listener(*listen, *socket)
	if err != nil {
		fmt.Fprintf(os.Stderr, "runhost-egress: %v\n", err)
		os.Exit(1)
	}
	log.Info("runhost-egress listening", "address", ln.Addr().String(), "allow", p.Hosts, "allow_cidrs", *cidrs, "tokens", secret != nil)
	srv := &http.Server{Handler: &egress.Proxy{Policy: p, Secret: secret, Log: log}, ReadHeaderTimeout: 30 * time.Second}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintf(os.Stderr, "runhost-egress: %v\n", err)
		os.Exit(1)
	}
}

// runCheck probes the proxy and returns the exit status.
func runCheck(addr, socket string) int {
	network, address := "unix", socket
	if addr != "" {
		network, address = "tcp", addr
		if strings.HasPrefix(addr, ":") {
			address = "127.0.0.1" + addr
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := egress.Check(ctx, network, address); err != nil {
		fmt.Fprintf(os.Stderr, "runhost-egress: %v\n", err)
		return 1
	}
	return 0
}

// listener serves on addr over TCP if it is set, else on the unix socket.
func listener(addr, socket string) (net.Listener, error) {
	if addr != "" {
		return net.Listen("tcp", addr)
	}
	_ = os.Remove(socket)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, err
	}
	// Install steps run as another user: anyone in the volume may connect.
	_ = os.Chmod(socket, 0o666)
	return ln, nil
}

func split(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}
