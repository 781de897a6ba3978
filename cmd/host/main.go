// Command host is the runhost server: an HTTP API that runs code in throw-away
// containers through runtime plugins. Configuration is read from the
// environment; see the table in README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/runhost/runhost/internal/app"
	"github.com/runhost/runhost/internal/config"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintf(os.Stderr, "usage: %s (configured by environment variables; see README.md)\n", os.Args[0])
		os.Exit(2)
	}
	os.Exit(serve())
}

func serve() int {
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintf(os.Stderr, "runhost: configuration: %v\n", err)
		return 2
	}
	log := hclog.New(&hclog.LoggerOptions{
		Name:       "runhost",
		Level:      hclog.LevelFromString(cfg.LogLevel),
		JSONFormat: cfg.LogFormat == "json",
		Output:     os.Stderr,
	})

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	a, err := app.New(ctx, cfg, log)
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	defer a.Close()

	// Every request's context descends from runs; cancelling it kills the
	// runs still going when the shutdown grace period ends.
	runs, killRuns := context.WithCancel(context.Background())
	defer killRuns()
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return runs },
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.Addr, "error", err)
		return 1
	}
	go a.SweepLoop(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("runhost listening", "addr", ln.Addr().String(), "instance", a.Instance, "plugin_dir", cfg.PluginDir)

	select {
	case err := <-served:
		log.Error("server stopped", "error", err)
		return 1
	case <-ctx.Done():
	}

	log.Info("shutting down: no new requests; in-flight runs may finish", "grace", cfg.ShutdownTimeout)
	grace, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(grace); errors.Is(err, context.DeadlineExceeded) {
		log.Warn("grace period over: killing the remaining runs")
		killRuns()
		final, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.Shutdown(final)
	}
	log.Info("stopped")
	return 0
}
