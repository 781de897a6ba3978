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
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/runhost/runhost/internal/app"
	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/config"
)

const usage = `usage: host [command]

Commands:
  (none)     serve the HTTP API
  selftest   run every runtime version's self-test against the engine and exit
             non-zero if any fails
  plugin check PATH
             the conformance kit: start the plugin binary at PATH as the host
             does, check its description, run every version's self-test on
             the engine and check its answers against the host policy; exits
             non-zero if anything fails
  api-key [name [option ...]]
             make a new API key and print it (it is shown once). Its line
             ("name sha256-hex [option ...]") is appended to
             RUNHOST_API_KEYS_FILE when that is set, else printed for you to
             store. name: 1-64 letters, digits, '.', '-' and '_', starting
             with a letter or digit. Options:
               operator                   may call /admin/*, /metrics, /plugins
               workspaces=NAME[,NAME...]  reaches these shared workspaces
               workspaces=*               reaches every shared workspace

Configuration comes from environment variables; see README.md.
`

func main() {
	switch {
	case len(os.Args) == 1:
		os.Exit(serve())
	case len(os.Args) == 2 && os.Args[1] == "selftest":
		os.Exit(selftest())
	case len(os.Args) == 4 && os.Args[1] == "plugin" && os.Args[2] == "check":
		os.Exit(pluginCheck(os.Args[3]))
	case os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help":
		fmt.Print(usage)
	case os.Args[1] == "api-key":
		os.Exit(apiKey(os.Args[2:]))
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
}

// pluginCheck runs the conformance kit on one plugin binary.
func pluginCheck(path string) int {
	cfg, _, ok := setup()
	if !ok {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if !app.CheckPlugin(ctx, cfg, path, os.Stdout) {
		return 1
	}
	return 0
}

// apiKey makes a key, stores its hash (never the key) with its name and
// options, and prints the key. args are [name [option ...]].
func apiKey(args []string) int {
	if slices.Contains(args, "-h") || slices.Contains(args, "--help") {
		fmt.Print(usage)
		return 0
	}
	name, options := "", []string(nil)
	if len(args) > 0 {
		name, options = args[0], args[1:]
		if err := auth.CheckName(name); err != nil {
			fmt.Fprintf(os.Stderr, "api-key: %v\n\n%s", err, usage)
			return 2
		}
	}
	key := auth.NewKey()
	line, err := auth.Line(auth.Hash(key), name, options)
	if err != nil {
		fmt.Fprintf(os.Stderr, "api-key: %v\n\n%s", err, usage)
		return 2
	}
	file := os.Getenv("RUNHOST_API_KEYS_FILE")
	if file == "" {
		fmt.Println(key)
		fmt.Fprintf(os.Stderr, "the key is above (shown once). Append this line to your RUNHOST_API_KEYS_FILE:\n%s\n", line)
		return 0
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err == nil {
		_, err = fmt.Fprintln(f, line)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "api-key: %v\n", err)
		return 1
	}
	fmt.Println(key)
	fmt.Fprintf(os.Stderr, "the key is above (shown once); its hash was added to %s; restart the host to load it\n", file)
	return 0
}

// setup reads the configuration and makes the logger.
func setup() (config.Config, hclog.Logger, bool) {
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintf(os.Stderr, "runhost: configuration: %v\n", err)
		return cfg, nil, false
	}
	log := hclog.New(&hclog.LoggerOptions{
		Name:       "runhost",
		Level:      hclog.LevelFromString(cfg.Server.LogLevel),
		JSONFormat: cfg.Server.LogFormat == "json",
		Output:     os.Stderr,
	})
	return cfg, log, true
}

// selftest runs every self-test once and prints a table.
func selftest() int {
	cfg, log, ok := setup()
	if !ok {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	defer a.Close()
	results := a.Runner.SelfTest(ctx)
	failed := 0
	fmt.Printf("%-12s %-10s %-6s %8s  %s\n", "RUNTIME", "VERSION", "RESULT", "TIME", "OUTPUT")
	for _, r := range results {
		verdict := "ok"
		detail := strings.TrimSpace(r.Got)
		if !r.Passed {
			verdict, failed = "FAIL", failed+1
			detail = fmt.Sprintf("want %q, got %q", r.Expected, r.Got)
		}
		fmt.Printf("%-12s %-10s %-6s %6dms  %s\n", r.Runtime, r.Version, verdict, r.Duration.Milliseconds(), detail)
	}
	if len(results) == 0 {
		fmt.Println("no runtimes found: build the plugins (make build) or set RUNHOST_PLUGIN_DIR")
		return 1
	}
	if failed > 0 {
		fmt.Printf("%d of %d self-tests failed\n", failed, len(results))
		return 1
	}
	fmt.Printf("all %d self-tests passed\n", len(results))
	return 0
}

func serve() int {
	cfg, log, ok := setup()
	if !ok {
		return 2
	}

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
		// A kept-alive connection that sends nothing more is closed. There
		// is no WriteTimeout for whole answers (streams last as long as
		// their run): every write has its own deadline instead
		// (RUNHOST_WRITE_TIMEOUT_MS, internal/api).
		IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return runs },
	}
	ln, err := net.Listen("tcp", cfg.Server.Addr)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.Server.Addr, "error", err)
		return 1
	}
	go a.SweepLoop(ctx)
	if cfg.Plugins.Watch {
		if err := a.Registry.Watch(ctx); err != nil {
			log.Warn("not watching the plugin directory; reload with SIGHUP or POST /admin/plugins/reload", "error", err)
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			log.Info("SIGHUP: reloading plugins")
			if err := a.Registry.Reload(ctx); err != nil {
				log.Error("reload plugins", "error", err)
			}
		}
	}()
	var background sync.WaitGroup
	if cfg.Plugins.SelfTestOnStart {
		background.Go(func() { a.Runner.SelfTest(ctx) })
	}
	// Cancelled self-tests still remove their containers before the host exits.
	defer background.Wait()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("runhost listening", "addr", ln.Addr().String(), "instance", a.Instance, "plugin_dir", cfg.Plugins.Dir)

	select {
	case err := <-served:
		log.Error("server stopped", "error", err)
		return 1
	case <-ctx.Done():
	}

	log.Info("shutting down: no new requests; in-flight runs may finish", "grace", cfg.Server.ShutdownTimeout)
	grace, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
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
