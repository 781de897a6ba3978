// Command runhost-load is a bounded load run against a real host and engine:
// it starts a host in-process (the plugins and init from bin/), sends N runs
// at concurrency C, optionally restarts the engine part-way, and reports
// completions, 429s, errors, latency and containers left behind.
//
//	go run ./cmd/runhost-load -n 1000 -c 16
//	go run ./cmd/runhost-load -n 300 -c 16 -restart-after 100 -restart-cmd 'pkill -x dockerd; sleep 1; scripts/ensure-engine.sh'
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
	"sync"
	"sync/atomic"
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
	restartCmd := flag.String("restart-cmd", "pkill -x dockerd; while pgrep -x dockerd >/dev/null; do sleep 0.2; done; scripts/ensure-engine.sh", "command that restarts the engine")
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
	fmt.Printf("runhost-load: %d runs of %s at concurrency %d (host: %d in flight, queue %d)\n", *n, *runtime, *c, cfg.MaxRuns, cfg.QueueLength)

	var sent atomic.Int64
	var mu sync.Mutex
	statuses := map[string]int{}
	var latencies []time.Duration
	restarted := make(chan time.Duration, 1)
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
					go func() {
						t := time.Now()
						out, err := exec.Command("sh", "-c", *restartCmd).CombinedOutput()
						if err != nil {
							fmt.Fprintf(os.Stderr, "restart: %v\n%s", err, out)
						}
						restarted <- time.Since(t)
					}()
				}
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
	defer a.Close() // after the leftover check: removals still being retried finish first

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
	default:
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
		a.Close()
		os.Exit(1)
	}
}

func client2() (*client.Client, error) {
	return client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "runhost-load:", err)
	os.Exit(1)
}
