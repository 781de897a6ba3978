// Command runhost-egress is the allow-list proxy install steps reach the
// network through (see package egress). The host starts it in a container
// on the engine; it serves on a unix socket in a volume that install
// containers mount.
package main

import (
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
	allow := flag.String("allow", "", "comma-separated allowed hosts (host, *.domain, host:port)")
	cidrs := flag.String("allow-cidrs", "", "comma-separated private ranges that may be reached")
	flag.Parse()

	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	p := egress.Policy{Hosts: split(*allow)}
	for _, c := range split(*cidrs) {
		pre, err := netip.ParsePrefix(c)
		if err != nil {
			fmt.Fprintf(os.Stderr, "runhost-egress: -allow-cidrs %q: %v\n", c, err)
			os.Exit(2)
		}
		p.Private = append(p.Private, pre)
	}
	_ = os.Remove(*socket)
	ln, err := net.Listen("unix", *socket)
	if err != nil {
		fmt.Fprintf(os.Stderr, "runhost-egress: %v\n", err)
		os.Exit(1)
	}
	// Install steps run as another user: anyone in the volume may connect.
	_ = os.Chmod(*socket, 0o666)
	log.Info("runhost-egress listening", "socket", *socket, "allow", p.Hosts, "allow_cidrs", *cidrs)
	srv := &http.Server{Handler: &egress.Proxy{Policy: p, Log: log}, ReadHeaderTimeout: 30 * time.Second}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintf(os.Stderr, "runhost-egress: %v\n", err)
		os.Exit(1)
	}
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
