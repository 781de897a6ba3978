package e2e

import (
	"context"
	"encoding/base64"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/system"

	"github.com/runhost/runhost/internal/testenv"
)

// hostileCase is one thing hostile code tries, and the safe outcome.
type hostileCase struct {
	name    string
	runtime string
	req     map[string]any
	check   func(t *testing.T, res runResult)
	kernel  bool // checks the host kernel's own mechanisms (not meaningful under gVisor)
}

// probeTargets stand for what a run must not reach: this machine's own
// address on a bridge (where the engine's or the host's ports would be),
// and listeners there standing for the internet and cloud metadata (TCP)
// and for DNS (UDP).
type probeTargets struct {
	gateway  string
	tcp, udp *listener
}

func hostileCases(o probeTargets) []hostileCase {
	shell := func(code string) map[string]any { return map[string]any{"code": code, "timeout_ms": 10000} }
	py := func(code string) map[string]any { return map[string]any{"code": code, "timeout_ms": 10000} }
	contains := func(field, want string) func(*testing.T, runResult) {
		return func(t *testing.T, res runResult) {
			got := res.Stdout
			if field == "stderr" {
				got = res.Stderr
			}
			if !strings.Contains(got, want) {
				t.Errorf("%s %q does not contain %q (result %+v)", field, got, want, res)
			}
		}
	}
	return []hostileCase{
		{name: "fork bomb", runtime: "shell", req: map[string]any{"code": "bomb() { bomb | bomb & }; bomb; sleep 3; echo survived", "timeout_ms": 8000},
			check: func(t *testing.T, res runResult) {}}, // the host staying healthy is the check
		{name: "memory bomb", runtime: "python", req: map[string]any{"code": "a = []\nwhile True:\n    a.append(bytearray(16 << 20))", "memory_mb": 64},
			check: func(t *testing.T, res runResult) {
				if !res.OOMKilled {
					t.Errorf("not OOM-killed: %+v", res)
				}
			}},
		{name: "filling /tmp", runtime: "shell", req: shell("head -c 200M /dev/zero > /tmp/fill; echo rc=$?; df -k /tmp | tail -1"),
			check: contains("stdout", "rc=1")},
		{name: "filling the working directory", runtime: "shell", req: shell("head -c 200M /dev/zero > fill; echo rc=$?"),
			check: contains("stdout", "rc=1")},
		{name: "writing a huge file", runtime: "python", req: py("import os\nf = open('/tmp/big', 'wb')\ntry:\n    f.write(b'x' * (100 << 20))\n    print('wrote')\nexcept OSError as e:\n    print('refused', e.errno)"),
			check: func(t *testing.T, res runResult) {
				if strings.Contains(res.Stdout, "wrote") {
					t.Errorf("a 100 MiB file was written: %+v", res)
				}
			}},
		{name: "writing the root filesystem", runtime: "shell", req: shell("for d in / /usr /etc /bin; do touch $d/x 2>/dev/null && echo WROTE $d; done; echo done"),
			check: func(t *testing.T, res runResult) {
				if strings.Contains(res.Stdout, "WROTE") || !strings.Contains(res.Stdout, "done") {
					t.Errorf("root filesystem writable: %q", res.Stdout)
				}
			}},
		{name: "executing a file dropped in /tmp", runtime: "shell", req: shell("cp /bin/echo /tmp/e && chmod +x /tmp/e && /tmp/e EXECUTED; cp /bin/echo ./e && chmod +x ./e && ./e EXECUTED; echo done"),
			check: func(t *testing.T, res runResult) {
				if strings.Contains(res.Stdout, "EXECUTED") {
					t.Errorf("a dropped binary ran: %q", res.Stdout)
				}
			}},
		{name: "stdout and stderr floods", runtime: "shell", req: shell("yes out | head -c 50000000; yes err | head -c 50000000 >&2; echo end"),
			check: func(t *testing.T, res runResult) {
				if !res.StdoutTruncated || !res.OutputLimitExceeded || len(res.Stdout) > 1<<20 || strings.Contains(res.Stdout, "end") {
					t.Errorf("flood not stopped at the cap: %d/%d bytes, truncated %v, stopped %v", len(res.Stdout), len(res.Stderr), res.StdoutTruncated, res.OutputLimitExceeded)
				}
			}},
		{name: "CPU spin", runtime: "python", req: map[string]any{"code": "while True: pass", "timeout_ms": 2000},
			check: func(t *testing.T, res runResult) {
				if !res.TimedOut {
					t.Errorf("not timed out: %+v", res)
				}
			}},
		{name: "ignoring signals with double-forked children", runtime: "shell", req: map[string]any{"timeout_ms": 2000,
			"code": "trap '' TERM INT HUP; ( ( trap '' TERM INT HUP; while :; do sleep 1; done ) & ) ; ( setsid sh -c 'trap \"\" TERM; sleep 1000' & ); while :; do sleep 1; done"},
			check: func(t *testing.T, res runResult) {
				if !res.TimedOut {
					t.Errorf("not timed out: %+v", res)
				}
			}},
		{name: "outbound TCP, DNS and the metadata address", runtime: "python", req: py(`
import socket
for addr in [('` + o.gateway + `', 2375), ('` + o.gateway + `', 8080), ('` + o.tcp.Host + `', ` + strconv.Itoa(o.tcp.Port) + `)]:
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect(addr); print('CONNECTED', addr)
    except OSError:
        pass
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
try:
    u.sendto(b'query', ('` + o.udp.Host + `', ` + strconv.Itoa(o.udp.Port) + `)); u.recvfrom(64); print('UDP ANSWERED')
except OSError:
    pass
print('done')`),
			check: func(t *testing.T, res runResult) {
				if res.Stdout != "done\n" {
					t.Errorf("network reached: %q", res.Stdout)
				}
				if n := o.tcp.Hits() + o.udp.Hits(); n > 0 {
					t.Errorf("the listeners standing for the outside got %d connections", n)
				}
			}},
		{name: "connecting to the daemon socket", runtime: "shell", req: shell("for s in /var/run/docker.sock /run/docker.sock /run/containerd/containerd.sock; do [ -e $s ] && echo VISIBLE $s; done; echo done"),
			check: func(t *testing.T, res runResult) {
				if res.Stdout != "done\n" {
					t.Errorf("a daemon socket is visible: %q", res.Stdout)
				}
			}},
		{name: "capabilities, no_new_privs, seccomp, non-root", runtime: "shell", kernel: true,
			req:   shell("id -u; grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status"),
			check: contains("stdout", "1000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n")},
		{name: "blocked syscalls: unshare and mount", runtime: "python", kernel: true, req: py(`
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
print('unshare', libc.unshare(0x10000000 | 0x00020000))  # CLONE_NEWUSER | CLONE_NEWNS
print('mount', libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))
print('chroot', libc.chroot(b'/tmp'))`),
			check: contains("stdout", "unshare -1\nmount -1\nchroot -1\n")},
		{name: "/proc and /sys masking", runtime: "shell", kernel: true,
			req: shell("for f in /proc/kcore /proc/keys /proc/timer_list /sys/firmware; do [ -s $f ] && head -c1 $f >/dev/null 2>&1 && echo READ $f; done; echo x > /proc/sysrq-trigger 2>/dev/null && echo WROTE; echo done"),
			check: func(t *testing.T, res runResult) {
				if res.Stdout != "done\n" {
					t.Errorf("masked paths readable or writable: %q", res.Stdout)
				}
			}},
		{name: "no secrets in the environment", runtime: "shell", req: shell("env | sort"),
			check: func(t *testing.T, res runResult) {
				for _, bad := range []string{"DOCKER_", "RUNHOST_", "SECRET", "AWS_", "TOKEN"} {
					if strings.Contains(res.Stdout, bad) {
						t.Errorf("the run's environment carries %s:\n%s", bad, res.Stdout)
					}
				}
			}},
		{name: "binary and invalid UTF-8 output", runtime: "python", req: py("import sys\nsys.stdout.buffer.write(bytes(range(256)))\nsys.stderr.buffer.write(b'ok \\xff\\xfe')"),
			check: func(t *testing.T, res runResult) {
				out, err := base64.StdEncoding.DecodeString(res.Stdout)
				if res.StdoutEncoding != "base64" || err != nil || len(out) != 256 || out[255] != 255 {
					t.Errorf("binary stdout not returned exactly: %s %q", res.StdoutEncoding, res.Stdout)
				}
				if errOut, _ := base64.StdEncoding.DecodeString(res.Stderr); res.StderrEncoding != "base64" || string(errOut) != "ok \xff\xfe" {
					t.Errorf("invalid UTF-8 stderr: %s %q", res.StderrEncoding, res.Stderr)
				}
			}},
		{name: "huge stdin", runtime: "python", req: map[string]any{"code": "import sys\nprint(len(sys.stdin.buffer.read()))", "stdin": strings.Repeat("s", 8<<20)},
			check: contains("stdout", "8388608\n")},
	}
}

// runHostileSuite runs every case on h: each must end safely, the host must
// stay healthy and a normal run right after must succeed. Containers left
// behind fail the test when h is torn down.
func runHostileSuite(t *testing.T, h *host, gvisor bool) {
	out := newOutside(t, h.Docker)
	targets := probeTargets{gateway: out.Gateway, tcp: out.listen(t, "tcp"), udp: out.listen(t, "udp")}
	for _, c := range hostileCases(targets) {
		t.Run(c.name, func(t *testing.T) {
			res := h.run(c.runtime, c.req)
			if !(gvisor && c.kernel) {
				c.check(t, res)
			}
			if status, _ := h.get("/healthz"); status != http.StatusOK {
				t.Fatalf("host unhealthy after %s: %d", c.name, status)
			}
			if after := h.run("shell", map[string]any{"code": "echo fine"}); after.Stdout != "fine\n" {
				t.Fatalf("a normal run after %s: %+v", c.name, after)
			}
		})
	}
}

func TestHostileSuite(t *testing.T) {
	h := startHost(t, "RUNHOST_MAX_BODY_BYTES=16777216", "RUNHOST_FILE_SIZE_MB=32")
	runHostileSuite(t, h, false)
}

// TestHostileSuiteUnderGVisor runs the suite with gVisor's runsc as the OCI
// runtime. `make engine` installs Debian's runsc and registers it.
func TestHostileSuiteUnderGVisor(t *testing.T) {
	cli := testenv.RequireDocker(t)
	info, err := cli.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := info.Runtimes["runsc"]; !ok {
		if testenv.InCI() || os.Getenv("RUNHOST_TEST_GVISOR") == "1" {
			t.Fatalf("the engine has no runsc runtime (has %v): run scripts/ensure-engine.sh", runtimeNames(info.Runtimes))
		}
		t.Skip("the engine has no runsc runtime; scripts/ensure-engine.sh registers it")
	}
	h := startHostWith(t, cli, "RUNHOST_OCI_RUNTIME=runsc", "RUNHOST_MAX_BODY_BYTES=16777216", "RUNHOST_FILE_SIZE_MB=32")
	res := h.run("python", map[string]any{"code": "import os; print(os.uname().release)"})
	if res.Stdout != "4.4.0\n" {
		t.Fatalf("not running under gVisor (kernel %q)", res.Stdout)
	}
	runHostileSuite(t, h, true)
}

func runtimeNames(m map[string]system.RuntimeWithStatus) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
