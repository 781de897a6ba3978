// Command runhost-load is a bounded load run against a real host and engine:
// it starts a host in-process (the plugins and init from bin/), sends N runs
// at concurrency C, optionally restarts the engine part-way, and reports
// completions, 429s, errors, latency and containers left behind.
//
//	go run ./cmd/runhost-load -n 1000 -c 16
//	go run ./cmd/runhost-load -n 300 -c 16 -restart-after 100
//
// With -restart-after, the engine is stopped by the process id in its pid
// file (the dockerd `make engine` started), started again with
// scripts/ensure-engine.sh, and a request that fails during the outage is
// retried (not counted as sent) for up to -restart-budget, so the report
// shows the first run that succeeded after the engine came back. Leftovers
// are counted after the host has shut down, so its warm pool is not one.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/hashicorp/go-hclog"

	"github.com/runhost/runhost/internal/app"
	"github.com/runhost/runhost/internal/config"
)

func main() {
	n := flag.Int("n", 1000, "runs to send")
	c := flag.Int("c", 16, "concurrent clients")
	runtime := flag.String("runtime", "python", "runtime to run")
	code := flag.String("code", "print(1)", "program to run")
	restartAfter := flag.Int("restart-after", 0, "restart the engine after this many runs were sent (0: never)")
	restartCmd := flag.String("restart-cmd", "", "command that restarts the engine (default: stop the dockerd of -pidfile, then scripts/ensure-engine.sh)")
	pidfile := flag.String("pidfile", "/var/run/docker.pid", "pid file of the engine to restart")
	budget := flag.Duration("restart-budget", 2*time.Minute, "how long after the restart began requests failing for the outage are retried")
	flag.Parse()
	if *n <= 0 || *c <= 0 || *n > 100000 || *c > 256 {
		fmt.Fprintln(os.Stderr, "runhost-load: want 0 < n <= 100000 and 0 < c <= 256")
		os.Exit(2)
	}

	env := append(os.Environ(), "RUNHOST_SELFTEST_ON_START=false", "RUNHOST_PLUGIN_DIR=bin/plugins", "RUNHOST_INIT_PATH=bin/runhost-init", "RUNHOST_EGRESS_PATH=bin/runhost-egress")
	cfg, err := config.FromEnv(env)
	if err != nil {
		fail(err)
	}
	a, err := app.New(context.Background(), cfg, hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr}))
	if err != nil {
		fail(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	srv := &http.Server{Handler: a.Handler()}
	go func() { _ = srv.Serve(ln) }()
	url := "http://" + ln.Addr().String() + "/runtimes/" + *runtime + "/run"
	body := fmt.Appendf(nil, `{"code":%q}`, *code)
	fmt.Printf("runhost-load: %d runs of %s at concurrency %d (host: %d in flight, queue %d)\n", *n, *runtime, *c, cfg.Admission.MaxRuns, cfg.Admission.QueueLength)

	var sent atomic.Int64
	var mu sync.Mutex
	statuses := map[string]int{}
	var latencies []time.Duration
	restarted := make(chan time.Duration, 1)
	var restartBegan atomic.Int64    // unix nanos; 0 before the restart
	var firstAfter atomic.Int64      // nanos from the restart to the first run that succeeded after it
	var backAfterRestart atomic.Bool // the engine answered after the restart
	client := &http.Client{Timeout: 5 * time.Minute}
	start := time.Now()
	var wg sync.WaitGroup
	for range *c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := sent.Add(1)
				if i > int64(*n) {
					return
				}
				if *restartAfter > 0 && i == int64(*restartAfter) {
					restartBegan.Store(time.Now().UnixNano())
					go func() {
						t := time.Now()
						if err := restartEngine(*restartCmd, *pidfile); err != nil {
							fmt.Fprintf(os.Stderr, "restart: %v\n", err)
						}
						restarted <- time.Since(t)
					}()
				}
			retry:
				t := time.Now()
				resp, err := client.Post(url, "application/json", bytes.NewReader(body))
				key := ""
				if err != nil {
					key = "transport error"
				} else {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					key = fmt.Sprint(resp.StatusCode)
					if resp.StatusCode == 200 && !bytes.Contains(b, []byte(`"exit_code":0`)) {
						key = "200 (program failed)"
					}
				}
				began := restartBegan.Load()
				outage := began != 0 && !backAfterRestart.Load() && time.Since(time.Unix(0, began)) < *budget
				if outage && (key == "503" || key == "transport error" || key == "500") {
					// The engine is away: back off and try again, as a client
					// would, without using up the run count.
					mu.Lock()
					statuses[key+" (during the restart, retried)"]++
					mu.Unlock()
					time.Sleep(500 * time.Millisecond)
					goto retry
				}
				if began != 0 && key == "200" && backAfterRestart.CompareAndSwap(false, true) {
					firstAfter.Store(int64(time.Since(time.Unix(0, began))))
				}
				mu.Lock()
				statuses[key]++
				if key == "200" {
					latencies = append(latencies, time.Since(t))
				}
				mu.Unlock()
				if key == "503" || key == "429" {
					time.Sleep(500 * time.Millisecond) // as a client backing off would
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	_ = srv.Close()
	// Shut the host down first: its warm pool goes with it, so whatever is
	// still on the engine afterwards was left behind.
	a.Close()

	fmt.Printf("done in %s: %.1f completed runs/s\n", elapsed.Round(time.Millisecond), float64(statuses["200"])/elapsed.Seconds())
	keys := make([]string, 0, len(statuses))
	for k := range statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("  %-22s %6d\n", k, statuses[k])
	}
	if len(latencies) > 0 {
		sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
		fmt.Printf("latency of completed runs: p50 %s, p95 %s, max %s\n",
			latencies[len(latencies)/2].Round(time.Millisecond), latencies[len(latencies)*95/100].Round(time.Millisecond), latencies[len(latencies)-1].Round(time.Millisecond))
	}
	select {
	case d := <-restarted:
		fmt.Printf("engine restarted mid-load (restart took %s)\n", d.Round(time.Millisecond))
		if backAfterRestart.Load() {
			fmt.Printf("first successful run after the restart began: %s later\n", time.Duration(firstAfter.Load()).Round(time.Millisecond))
		} else {
			fmt.Printf("no run succeeded within %s of the restart\n", *budget)
			defer os.Exit(1)
		}
	default:
		if *restartAfter > 0 {
			fmt.Println("the engine was not restarted (fewer runs than -restart-after?)")
		}
	}

	// Leftovers: anything of this host still on the engine.
	cli, err := client2()
	if err != nil {
		fail(err)
	}
	left := -1
	for range 60 {
		list, err := cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "runhost.instance="+a.Instance))})
		if err == nil {
			left = len(list)
			if left == 0 {
				break
			}
		}
		time.Sleep(time.Second)
	}
	if left < 0 {
		fail(fmt.Errorf("cannot ask the engine for leftovers"))
	}
	fmt.Printf("containers left behind: %d\n", left)
	if left > 0 {
		os.Exit(1)
	}
}

// restartEngine stops the engine whose pid the pid file holds (checking that
// it is a dockerd), waits until it is gone and starts it again with
// scripts/ensure-engine.sh; cmd, when set, does all of it instead.
func restartEngine(cmd, pidfile string) error {
	if cmd != "" {
		out, err := exec.Command("sh", "-c", cmd).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		return fmt.Errorf("engine pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("engine pid file %s: %q is not a pid", pidfile, b)
	}
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "dockerd" {
		return fmt.Errorf("pid %d of %s is not a dockerd (%q): not restarting it", pid, pidfile, strings.TrimSpace(string(comm)))
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop dockerd %d: %w", pid, err)
	}
	for deadline := time.Now().Add(60 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("dockerd %d did not stop within 60 s", pid)
		}
	}
	out, err := exec.Command("scripts/ensure-engine.sh").CombinedOutput()
	if err != nil {
		return fmt.Errorf("start the engine: %v: %s", err, out)
	}
	return nil
}

func client2() (*client.Client, error) {
	return client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "runhost-load:", err)
	os.Exit(1)
}
