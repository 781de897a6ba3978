package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

// outside is a bridge network the test creates to stand for everything
// beyond the machine (the internet, a cloud's metadata service, a private
// network): test traffic goes there and nowhere else. Listeners on its
// gateway, this machine's own address on the bridge, record every
// connection, so a regression that lets a run or an install out is caught
// by a real connection, and nothing ever leaves the machine.
type outside struct {
	Network string
	Subnet  string
	Gateway string
}

func newOutside(t testing.TB, cli *client.Client) outside {
	t.Helper()
	ctx := context.Background()
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	name := "runhost-test-outside-" + hex.EncodeToString(suffix[:])
	if _, err := cli.NetworkCreate(ctx, name, network.CreateOptions{Labels: map[string]string{"runhost.test": "true"}}); err != nil {
		t.Fatalf("create network: %v", err)
	}
	t.Cleanup(func() { _ = cli.NetworkRemove(context.Background(), name) })
	info, err := cli.NetworkInspect(ctx, name, network.InspectOptions{})
	if err != nil || len(info.IPAM.Config) == 0 || info.IPAM.Config[0].Gateway == "" {
		t.Fatalf("inspect network %s: %v", name, err)
	}
	return outside{Network: name, Subnet: info.IPAM.Config[0].Subnet, Gateway: info.IPAM.Config[0].Gateway}
}

// listener counts the connections (TCP) or datagrams (UDP) it gets, and
// answers each, so that a probe that reaches it knows it did.
type listener struct {
	Host string
	Port int
	hits atomic.Int64
}

// Addr is host:port.
func (l *listener) Addr() string { return net.JoinHostPort(l.Host, strconv.Itoa(l.Port)) }

// Hits is how many connections or datagrams reached it.
func (l *listener) Hits() int64 { return l.hits.Load() }

// listen starts a TCP ("tcp") or UDP ("udp") listener on the network's
// gateway. A TCP connection is answered as HTTP ("200 reached").
func (o outside) listen(t testing.TB, proto string) *listener {
	t.Helper()
	l := &listener{Host: o.Gateway}
	switch proto {
	case "tcp":
		ln, err := net.Listen("tcp", net.JoinHostPort(o.Gateway, "0"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		l.Port = ln.Addr().(*net.TCPAddr).Port
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				l.hits.Add(1)
				_, _ = c.Write([]byte("HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\nreached"))
				c.Close()
			}
		}()
	case "udp":
		pc, err := net.ListenPacket("udp", net.JoinHostPort(o.Gateway, "0"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		l.Port = pc.LocalAddr().(*net.UDPAddr).Port
		go func() {
			buf := make([]byte, 1500)
			for {
				_, from, err := pc.ReadFrom(buf)
				if errors.Is(err, net.ErrClosed) {
					return
				}
				if err == nil {
					l.hits.Add(1)
					_, _ = pc.WriteTo([]byte("reached"), from)
				}
			}
		}()
	default:
		t.Fatalf("listen %q", proto)
	}
	return l
}

// watchEvents subscribes to the engine's events matching f from now on and
// returns a function that ends the subscription and returns what came. A
// live subscription, because the engine keeps only its last 256 events for
// `since` queries, and a shared engine's other work pushes them out.
func watchEvents(t testing.TB, cli *client.Client, f filters.Args) func() []events.Message {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	msgs, errs := cli.Events(ctx, events.ListOptions{Filters: f})
	var mu sync.Mutex
	var got []events.Message
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case m := <-msgs:
				mu.Lock()
				got = append(got, m)
				mu.Unlock()
			case <-errs:
				return
			}
		}
	}()
	// The subscription is live once the engine has answered: ping it after.
	if _, err := cli.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	return func() []events.Message {
		time.Sleep(500 * time.Millisecond) // the last events still on their way
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return got
	}
}
