// Command runhost-bench measures runhost against its baselines on the real
// engine, with the same image, program and limits for every path:
//
//	(a) runhost one-shot runs (warm pool on, as shipped)
//	(b) `docker run --rm` of the same program
//	(c) the bare interpreter in an already running container (`docker exec`)
//	(d) runhost session runs
//	(e) runhost interpreter session cells: `x + 1` in a warm interpreter
//
// For each: median and p95 latency at concurrency 1, throughput at
// concurrency 8, and CPU seconds per run for the whole machine. It also
// reports the host's resident memory, idle, with every plugin loaded, and
// for interpreter sessions (python 3.11, 3.11-data, node 20) the time to
// start one, its memory idle, the first `import matplotlib.pyplot` on the
// data image and its memory holding a 100 MiB DataFrame. It prints a table
// and writes it to docs/benchmarks.md.
//
//	go run ./cmd/runhost-bench            (make bench)
//	go run ./cmd/runhost-bench -paths e   (some paths; prints, writes nothing)
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	serial     = flag.Int("n", 40, "runs at concurrency 1, per path")
	parallel   = flag.Int("p", 120, "runs at concurrency 8, per path")
	out        = flag.String("out", "docs/benchmarks.md", "where to write the table")
	only       = flag.String("paths", "", "letters of the paths to measure (e.g. \"de\"); empty: all, and the table is written to -out")
	image      = "runhost/python:3.11"
	program    = "print(1)"
	dockerArgs = []string{"--network", "none", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
		"--user", "1000:1000", "--memory", "256m", "--memory-swap", "256m", "--cpus", "1", "--pids-limit", "128",
		"--tmpfs", "/tmp:size=64m", "--log-driver", "none"}
)

type result struct {
	name          string
	p50, p95      time.Duration
	throughput    float64 // runs per second at concurrency 8
	cpuPerRun     float64 // machine CPU seconds per run at concurrency 8
	errors        int
	serialSamples int
}

func main() {
	flag.Parse()
	loadStart = loadAverage()
	host, err := startHost()
	if err != nil {
		fail(err)
	}
	defer host.stop()
	time.Sleep(10 * time.Second) // let the warm pool fill
	rss := host.rss()

	session, err := host.newSession()
	if err != nil {
		fail(err)
	}
	sessions := []string{session}
	for range 7 {
		s, err := host.newSession()
		if err != nil {
			fail(err)
		}
		sessions = append(sessions, s)
	}
	execContainer := startExecContainer()
	defer exec.Command("docker", "rm", "-f", execContainer).Run()
	cells := make(chan string, 8)
	for range 8 {
		s, err := host.newInterpreter("3.11", 0)
		if err != nil {
			fail(err)
		}
		if err := host.postExpect("/sessions/"+s+"/run", map[string]any{"code": "x = 41"}, `"exit_code":0`); err != nil {
			fail(err)
		}
		cells <- s
	}

	// Each client has a session of its own: a session runs one program at
	// a time.
	free := make(chan string, len(sessions))
	for _, s := range sessions {
		free <- s
	}
	paths := []struct {
		name string
		run  func() error
	}{
		{"(a) runhost one-shot", func() error { return host.post("/runtimes/python/run", map[string]any{"code": program}) }},
		{"(b) docker run --rm", func() error {
			return docker(append(append([]string{"run", "--rm", "-i"}, dockerArgs...), image, "python3", "-c", program)...)
		}},
		{"(c) docker exec (bare interpreter)", func() error { return docker("exec", execContainer, "python3", "-c", program) }},
		{"(d) runhost session", func() error {
			s := <-free
			defer func() { free <- s }()
			return host.post("/sessions/"+s+"/run", map[string]any{"code": program})
		}},
		{"(e) runhost interpreter cell `x + 1`", func() error {
			s := <-cells
			defer func() { cells <- s }()
			return host.postExpect("/sessions/"+s+"/run", map[string]any{"code": "x + 1"}, `"results":[{"text/plain":"42"}]`)
		}},
	}
	var results []result
	for _, p := range paths {
		if *only != "" && !strings.Contains(*only, p.name[1:2]) {
			continue
		}
		r := measure(p.name, p.run)
		results = append(results, r)
		fmt.Fprintf(os.Stderr, "%s: p50 %s, %.1f runs/s\n", r.name, r.p50, r.throughput)
	}
	// The paths' 16 sessions are the key's whole allowance
	// (RUNHOST_SESSIONS_PER_KEY): end them before the interpreter sessions
	// are measured, so those start on a quiet host instead of a 429.
	close(cells)
	for s := range cells {
		sessions = append(sessions, s)
	}
	for _, s := range sessions {
		host.endSession(s)
	}
	report := table(results, rss)
	if *only == "" {
		report += quietRuns(host)
		report += memoryBreakdown(host)
	}
	report += interpreterSessions(host)
	fmt.Print(report)
	if *only != "" {
		return
	}
	if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
		fail(err)
	}
}

func measure(name string, run func() error) result {
	r := result{name: name}
	for range 3 { // warm up
		_ = run()
	}
	var lat []time.Duration
	for range *serial {
		t := time.Now()
		if err := run(); err != nil {
			r.errors++
			continue
		}
		lat = append(lat, time.Since(t))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		r.p50, r.p95, r.serialSamples = lat[len(lat)/2], lat[len(lat)*95/100], len(lat)
	}

	cpu0 := machineCPU()
	start := time.Now()
	work := make(chan struct{}, *parallel)
	for range *parallel {
		work <- struct{}{}
	}
	close(work)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if err := run(); err != nil {
					mu.Lock()
					r.errors++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	r.throughput = float64(*parallel) / elapsed.Seconds()
	r.cpuPerRun = (machineCPU() - cpu0) / float64(*parallel)
	return r
}

// quietRuns measures one-shot runs with the machine left quiet between
// them (the pool refilled, the used container removed): what a run costs
// when the engine's churn for the previous run is not competing with it.
// The difference from (a) is that churn, on the same cores.
func quietRuns(h *hostProc) string {
	const n, gap = 10, 1500 * time.Millisecond
	var lat []time.Duration
	for range n {
		time.Sleep(gap)
		t := time.Now()
		if err := h.post("/runtimes/python/run", map[string]any{"code": program}); err != nil {
			continue
		}
		lat = append(lat, time.Since(t))
	}
	if len(lat) == 0 {
		return ""
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return fmt.Sprintf("\n(a) with the machine quiet between runs (%d runs, %s apart, pool refilled): p50 %s, min %s. "+
		"Back to back, each run shares the 2 cores with the removal and replacement of the previous run's container (the CPU s/run above).\n",
		len(lat), gap, ms(lat[len(lat)/2]), ms(lat[0]))
}

func table(rs []result, rss int64) string {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\n")
	fmt.Fprintf(&b, "Measured by `make bench` (`go run ./cmd/runhost-bench`) on %s. "+
		"Load average (1 min) when the bench started: %s, when the paths were measured: %s (well above 0: other work shared the cores, and the figures are slower than on a quiet machine).\n\n",
		machine(), loadStart, loadAverage())
	fmt.Fprintf(&b, "Every path runs `python3 -c %q` in `%s` with the same limits (256 MiB, 1 CPU, 128 pids, no network, read-only root). "+
		"Latency: %d runs one at a time; throughput: %d runs by 8 concurrent clients; CPU: the whole machine's CPU time during the throughput phase, per run. "+
		"The host runs with `RUNHOST_POOL=python=24` (a pool sized for the burst of back-to-back runs; the default is python=2): a run that finds the pool empty takes the cold path, and the pool refills at the rate the engine starts containers.\n\n",
		program, image, *serial, *parallel)
	b.WriteString("| path | p50 | p95 | runs/s at c=8 | CPU s/run | p50 vs (b) | p50 vs (c) | errors |\n|---|---|---|---|---|---|---|---|\n")
	var base, bare time.Duration
	for _, r := range rs {
		if strings.HasPrefix(r.name, "(b)") {
			base = r.p50
		}
		if strings.HasPrefix(r.name, "(c)") {
			bare = r.p50
		}
	}
	var baseTput float64
	for _, r := range rs {
		if strings.HasPrefix(r.name, "(b)") {
			baseTput = r.throughput
		}
	}
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s | %s | %s | %.1f (%.2f× (b)) | %.3f | %.2f× | %.2f× | %d |\n", r.name, ms(r.p50), ms(r.p95), r.throughput, r.throughput/baseTput,
			r.cpuPerRun, ratio(r.p50, base), ratio(r.p50, bare), r.errors)
	}
	fmt.Fprintf(&b, "\nHost resident memory, idle, with every plugin loaded (host + plugin processes): %.1f MiB.\n", float64(rss)/(1<<20))
	return b.String()
}

// loadStart is the load average when the bench started.
var loadStart string

// loadAverage is the machine's 1-minute load average.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Fields(string(b))[0]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// machineCPU is the machine's busy CPU time so far, in seconds.
func machineCPU() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	fields := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1:]
	var busy float64
	for i, f := range fields {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		v, _ := strconv.ParseFloat(f, 64)
		busy += v
	}
	return busy / 100 // USER_HZ
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		kb, _ := strconv.ParseFloat(f[1], 64)
		mem = fmt.Sprintf("%.0f GiB", kb/(1<<20))
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	engine, _ := exec.Command("docker", "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})").Output()
	return fmt.Sprintf("%d × %s, %s, Linux %s, Docker %s, %s", runtime.NumCPU(), model, mem, strings.TrimSpace(string(kernel)), strings.TrimSpace(string(engine)), time.Now().UTC().Format("2006-01-02"))
}

func docker(args ...string) error {
	cmd := exec.Command("docker", args...)
	outb, err := cmd.Output()
	if err != nil {
		return err
	}
	if string(outb) != "1\n" {
		return fmt.Errorf("docker %s: %q", args[0], outb)
	}
	return nil
}

func startExecContainer() string {
	args := append(append([]string{"run", "-d", "--rm"}, dockerArgs...), image, "sleep", "3600")
	id, err := exec.Command("docker", args...).Output()
	if err != nil {
		fail(fmt.Errorf("start the exec container: %w", err))
	}
	return strings.TrimSpace(string(id))
}

type hostProc struct {
	cmd *exec.Cmd
	url string
}

// startHost runs bin/host with the warm pool and sessions, as shipped.
func startHost() (*hostProc, error) {
	cmd := exec.Command("bin/host")
	cmd.Env = append(os.Environ(), "RUNHOST_ADDR=127.0.0.1:0", "RUNHOST_SELFTEST_ON_START=false", "RUNHOST_LOG_FORMAT=json",
		"RUNHOST_LOG_LEVEL=info", "RUNHOST_SESSIONS_PER_KEY=16", "RUNHOST_POOL=python=24,shell=1,node=1", "RUNHOST_POOL_MEMORY_MB=8192")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start bin/host (make build first): %w", err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["@message"] == "runhost listening" {
				addr <- line["addr"].(string)
			}
		}
	}()
	select {
	case a := <-addr:
		return &hostProc{cmd: cmd, url: "http://" + a}, nil
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("bin/host did not start")
	}
}

func (h *hostProc) stop() {
	_ = h.cmd.Process.Signal(os.Interrupt)
	_ = h.cmd.Wait()
}

func (h *hostProc) post(path string, body map[string]any) error {
	return h.postExpect(path, body, `"stdout":"1\n"`)
}

// postExpect posts body and wants a 200 whose answer contains want.
func (h *hostProc) postExpect(path string, body map[string]any, want string) error {
	_, err := h.postAnswer(path, body, want)
	return err
}

func (h *hostProc) postAnswer(path string, body map[string]any, want string) ([]byte, error) {
	b, _ := json.Marshal(body)
	resp, err := http.Post(h.url+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Contains(rb, []byte(want)) {
		return nil, fmt.Errorf("%s: %d %s", path, resp.StatusCode, rb)
	}
	return rb, nil
}

// newInterpreter starts a Python interpreter session of version (with
// memoryMB, 0 for the default).
func (h *hostProc) newInterpreter(version string, memoryMB int) (string, error) {
	return h.startSession(map[string]any{"runtime": "python", "version": version, "mode": "interpreter", "memory_mb": memoryMB})
}

// interpreterRuntimes are the interpreter sessions the bench starts.
var interpreterRuntimes = []struct {
	runtime, version string
	memory           string // a cell that prints workingSet and the interpreter's RSS, in bytes
}{
	{"python", "3.11", pythonMemory},
	{"python", "3.11-data", pythonMemory},
	{"node", "20", "{\n" +
		"const fs = require('fs')\n" +
		"const [d, usage, inactive] = fs.existsSync('/sys/fs/cgroup/memory.current') ? ['/sys/fs/cgroup', 'memory.current', 'inactive_file'] : ['/sys/fs/cgroup/memory', 'memory.usage_in_bytes', 'total_inactive_file']\n" +
		"const stat = Object.fromEntries(fs.readFileSync(d + '/memory.stat', 'utf8').trim().split('\\n').map(l => l.split(' ')))\n" +
		"console.log(Number(fs.readFileSync(d + '/' + usage, 'utf8')) - Number(stat[inactive]), process.memoryUsage().rss)\n" +
		"}"},
}

// workingSet is how the container's memory is counted: its cgroup's usage
// less the inactive file cache (what docker stats and the kubelet show),
// read inside the container from cgroup v2 or v1.
const workingSet = "the container's working set (cgroup memory usage less inactive file cache, as `docker stats` and the kubelet count it: " +
	"init, the driver, what it allocated and the active page cache of the files it read)"

const pythonMemory = "def _runhost_bench_memory():\n" +
	"    import os\n" +
	"    for d, usage, inactive in (('/sys/fs/cgroup', 'memory.current', 'inactive_file'), ('/sys/fs/cgroup/memory', 'memory.usage_in_bytes', 'total_inactive_file')):\n" +
	"        if os.path.exists(os.path.join(d, usage)):\n" +
	"            stat = dict(l.split() for l in open(os.path.join(d, 'memory.stat')))\n" +
	"            rss = [l for l in open('/proc/self/status') if l.startswith('VmRSS:')][0].split()[1]\n" +
	"            print(int(open(os.path.join(d, usage)).read()) - int(stat[inactive]), int(rss) * 1024)\n" +
	"_runhost_bench_memory()\n"

// sessionStarts is how many sessions of each runtime are started, one
// after another, to time the start.
const sessionStarts = 5

// interpreterSessions measures interpreter sessions: the time POST
// /sessions takes to answer (a container started and the driver ready),
// the memory of an idle session, and on the data image the first
// `import matplotlib.pyplot` of a fresh session and the memory of a
// session holding a 100 MiB DataFrame.
func interpreterSessions(h *hostProc) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nInterpreter sessions: start is `POST /sessions` with `\"mode\":\"interpreter\"` until it answers (container started, driver ready), "+
		"p50 and range of %d sessions started one after another with `memory_mb` 1024; memory is read by a cell of an idle session: "+
		"%s, and the interpreter's resident memory. Load average (1 min) when these were measured: %s.\n\n", sessionStarts, workingSet, loadAverage())
	b.WriteString("| interpreter | start p50 | start min–max | idle: container working set | idle: interpreter RSS |\n|---|---|---|---|---|\n")
	for _, rt := range interpreterRuntimes {
		name := rt.runtime + " " + rt.version
		var starts []time.Duration
		var idle string
		for i := range sessionStarts {
			t := time.Now()
			s, err := h.startSession(map[string]any{"runtime": rt.runtime, "version": rt.version, "mode": "interpreter", "memory_mb": 1024})
			if err != nil {
				idle = fmt.Sprintf("not measured (%v)", err)
				break
			}
			starts = append(starts, time.Since(t))
			if i == sessionStarts-1 {
				idle = memoryLine(h, s, rt.memory)
			}
			h.endSession(s)
		}
		fmt.Fprintf(os.Stderr, "%s interpreter: starts %v, idle %s\n", name, starts, idle)
		if len(starts) == 0 {
			fmt.Fprintf(&b, "| %s | not measured | | %s | |\n", name, idle)
			continue
		}
		sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
		fmt.Fprintf(&b, "| %s | %s | %s–%s | %s |\n", name, ms(starts[len(starts)/2]), ms(starts[0]), ms(starts[len(starts)-1]), idle)
	}
	b.WriteString(dataImage(h))
	return b.String()
}

// memoryLine runs the memory cell code in session s and returns its two
// numbers as table cells.
func memoryLine(h *hostProc, s, code string) string {
	rb, err := h.postAnswer("/sessions/"+s+"/run", map[string]any{"code": code, "timeout_ms": 60000}, `"exit_code":0`)
	if err != nil {
		return fmt.Sprintf("not measured (%v) |", err)
	}
	var res struct{ Stdout string }
	var current, rss float64
	if err := json.Unmarshal(rb, &res); err != nil {
		return fmt.Sprintf("not measured (%v) |", err)
	}
	if _, err := fmt.Sscan(res.Stdout, &current, &rss); err != nil {
		return fmt.Sprintf("not measured (%q: %v) |", res.Stdout, err)
	}
	return fmt.Sprintf("%.1f MiB | %.1f MiB", current/(1<<20), rss/(1<<20))
}

// dataImage measures, on the data image, the first `import
// matplotlib.pyplot` in fresh sessions (the import timed inside the cell,
// and the cell end to end) and the memory of a session holding a 100 MiB
// DataFrame.
func dataImage(h *hostProc) string {
	const fresh = 5
	var imports, cpus, cells []time.Duration
	var df string
	built := 0 // font caches matplotlib wrote in the last session
	for i := range fresh {
		s, err := h.newInterpreter("3.11-data", 1024)
		if err != nil {
			return fmt.Sprintf("\nData image: not measured (%v).\n", err)
		}
		t := time.Now()
		rb, err := h.postAnswer("/sessions/"+s+"/run", map[string]any{
			"code": "import glob, os, time\nt, c = time.perf_counter(), time.process_time()\nimport matplotlib.pyplot\n" +
				"print(time.perf_counter() - t, time.process_time() - c, " +
				"len(glob.glob(os.path.join(matplotlib.get_cachedir(), 'fontlist-*.json'))))",
			"timeout_ms": 60000,
		}, `"exit_code":0`)
		cell := time.Since(t)
		var res struct{ Stdout string }
		var secs, cpu float64
		if err == nil {
			err = json.Unmarshal(rb, &res)
		}
		if err == nil {
			_, err = fmt.Sscan(res.Stdout, &secs, &cpu, &built)
		}
		if err != nil {
			h.endSession(s)
			return fmt.Sprintf("\nData image: the first import of matplotlib not measured (%v).\n", err)
		}
		imports = append(imports, time.Duration(secs*float64(time.Second)))
		cpus = append(cpus, time.Duration(cpu*float64(time.Second)))
		cells = append(cells, cell)
		if i == fresh-1 {
			df = memoryLine(h, s, "import numpy as np, pandas as pd\ndf = pd.DataFrame(np.ones((1310720, 10)))\n"+
				"assert df.memory_usage(index=False).sum() == 100 << 20\n"+pythonMemory)
		}
		h.endSession(s)
	}
	sort.Slice(imports, func(i, j int) bool { return imports[i] < imports[j] })
	sort.Slice(cells, func(i, j int) bool { return cells[i] < cells[j] })
	sort.Slice(cpus, func(i, j int) bool { return cpus[i] < cpus[j] })
	fmt.Fprintf(os.Stderr, "data image: first import of matplotlib.pyplot %v (CPU %v), cells %v; with a DataFrame %s\n", imports, cpus, cells, df)
	return fmt.Sprintf("\nData image (python 3.11-data): the first `import matplotlib.pyplot` in a fresh interpreter session (p50 of %d sessions) "+
		"takes %s inside the cell (min %s), of which %s of CPU (waiting for a core under load adds to the first, not to this), %s for the cell end to end; font caches matplotlib built in the session's cache directory: %d. "+
		"A session holding a 100 MiB pandas DataFrame (numpy and pandas imported): "+
		"container working set, interpreter RSS: %s.\n",
		fresh, ms(imports[len(imports)/2]), ms(imports[0]), ms(cpus[len(cpus)/2]), ms(cells[len(cells)/2]), built, strings.ReplaceAll(df, " | ", ", "))
}

// endSession deletes session id.
func (h *hostProc) endSession(id string) {
	req, _ := http.NewRequest(http.MethodDelete, h.url+"/sessions/"+id, nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
}

func (h *hostProc) newSession() (string, error) {
	return h.startSession(map[string]any{"runtime": "python"})
}

// startSession posts req to /sessions and returns the session's id.
func (h *hostProc) startSession(req map[string]any) (string, error) {
	body, _ := json.Marshal(req)
	resp, err := http.Post(h.url+"/sessions", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var info struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil || info.ID == "" {
		return "", fmt.Errorf("create session: %d %v", resp.StatusCode, err)
	}
	return info.ID, nil
}

// rss is the resident memory of the host and its plugin processes.
func (h *hostProc) rss() int64 {
	total := rssOf(h.cmd.Process.Pid)
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(h.cmd.Process.Pid) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(s)))
			total += rssOf(pid)
		}
	}
	return total
}

// memoryBreakdown says where the host's resident memory is: anonymous
// memory (heaps) and file-backed pages (the binaries' code).
func memoryBreakdown(h *hostProc) string {
	pids := []int{h.cmd.Process.Pid}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(h.cmd.Process.Pid) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(s)))
			pids = append(pids, pid)
		}
	}
	var b strings.Builder
	b.WriteString("\n| process | resident | anonymous | file-backed (code) |\n|---|---|---|---|\n")
	for _, pid := range pids {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		name := filepath.Base(strings.SplitN(string(comm), "\x00", 2)[0])
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		field := func(k string) string {
			for _, l := range strings.Split(string(st), "\n") {
				if v, ok := strings.CutPrefix(l, k+":"); ok {
					kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
					return fmt.Sprintf("%.1f MiB", kb/1024)
				}
			}
			return "?"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name, field("VmRSS"), field("RssAnon"), field("RssFile"))
	}
	return b.String()
}

func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "runhost-bench:", err)
	os.Exit(1)
}
