package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/runhost/runhost/internal/runner"
	"github.com/runhost/runhost/internal/testenv"
	"github.com/runhost/runhost/shared"
	"github.com/runhost/runhost/shared/kernel"
	"github.com/runhost/runhost/shared/kernel/kerneltest"
	"github.com/runhost/runhost/shared/plugintest"
)

// The driver's tests run it as a real process that speaks the protocol on
// fd 3 and fd 4: locally with this machine's python3 (when there is one),
// and inside the real images through kerneltest's shim, as init will run it.

var pythonEnv = []string{"PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"}

func startLocal(t testing.TB) *kerneltest.Driver {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("no python3 on this machine; the image tests cover the driver")
	}
	path := filepath.Join(t.TempDir(), KernelFile)
	if err := os.WriteFile(path, KernelSource, 0o644); err != nil {
		t.Fatal(err)
	}
	argv := KernelCommand(path)
	argv[0] = localPython(t)
	return kerneltest.StartLocal(t, kerneltest.Options{Argv: argv, Env: pythonEnv, Dir: t.TempDir()})
}

var (
	pythonOnce sync.Once
	pythonPath string
)

// localPython is the interpreter python3 runs, so that a version manager's
// shim script (pyenv's costs a second) is not measured as the driver's start.
func localPython(t testing.TB) string {
	pythonOnce.Do(func() {
		pythonPath = "python3"
		if out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output(); err == nil && len(out) > 1 {
			pythonPath = strings.TrimSpace(string(out))
		}
	})
	return pythonPath
}

func startImage(t testing.TB, image, memory string) *kerneltest.Driver {
	t.Helper()
	testenv.RequireImages(t, testenv.RequireDocker(t), image)
	path := kerneltest.ShimDir + "/" + KernelFile
	return kerneltest.StartDocker(t, kerneltest.DockerOptions{
		Image:  image,
		Files:  []kerneltest.File{{Path: path, Mode: 0o644, Content: KernelSource}},
		Argv:   KernelCommand(path),
		Env:    pythonEnv,
		Memory: memory,
	})
}

// step is a kerneltest.Step, short to write in tables.
type step struct {
	name  string
	code  string
	check kerneltest.Check
}

func runSteps(t *testing.T, d *kerneltest.Driver, steps []step) {
	t.Helper()
	ks := make([]kerneltest.Step, len(steps))
	for i, s := range steps {
		ks[i] = kerneltest.Step{Name: s.name, Code: s.code, Check: s.check}
	}
	kerneltest.RunSteps(t, d, ks)
}

var (
	ok     = kerneltest.OK
	stdout = kerneltest.Output
	all    = kerneltest.All
	mime   = kerneltest.Has
	lacks  = kerneltest.Lacks
	png    = kerneltest.PNG
)

// failed wants the error name, and a clean traceback whose last line names it.
func failed(name string) kerneltest.Check {
	return func(t *testing.T, c kerneltest.Cell) {
		t.Helper()
		kerneltest.Failed(name, KernelFile)(t, c)
		if tb := c.Error.Traceback; len(tb) == 0 || !strings.HasPrefix(tb[len(tb)-1], name) {
			t.Errorf("traceback %q does not end with %s", tb, name)
		}
	}
}

// basics is what every Python driver must do, with or without IPython.
var basics = []step{
	{"a cell without a final expression has no result", "x = 41", ok()},
	{"state survives between cells", "x + 1", ok("42")},
	{"a trailing semicolon hides the value", "x;", ok()},
	{"a parenthesised value with a semicolon is hidden too", "(x);", ok()},
	{"a comment after the value does not hide it", "x  # the answer;", ok("41")},
	{"only a final bare expression is shown", "if True:\n    x", ok()},
	{"None is no result", "print('p')", stdout("p\n", "")},
	{"a string shows as its repr", "'s'", ok("'s'")},
	{"display() sends results in order, then the value", "display(1, 'a')\n2", ok("1", "'a'", "2")},
	{"rich reprs become MIME types", `
class Rich:
    def _repr_html_(self): return '<b>rich</b>'
    def _repr_markdown_(self): return '*rich*'
    def _repr_svg_(self): return '<svg/>'
    def _repr_json_(self): return {'k': [1, 2]}
    def _repr_latex_(self): return '$x$'
    def __repr__(self): return 'Rich()'
Rich()`, all(ok("Rich()"), mime(0, "text/html", "<b>rich</b>"), mime(0, "text/markdown", "*rich*"),
		mime(0, "image/svg+xml", "<svg/>"), mime(0, "text/latex", "$x$"), func(t *testing.T, c kerneltest.Cell) {
			if got := string(c.Results[0].Data["application/json"]); got != `{"k":[1,2]}` {
				t.Errorf("application/json = %s", got)
			}
		})},
	{"a _repr_png_ of bytes is base64", "class P:\n    def _repr_png_(self): return b'\\x89PNG\\r\\n\\x1a\\n...'\nP()", all(png(0))},
	{"_repr_mimebundle_ is used", "class M:\n    def _repr_mimebundle_(self, include=None, exclude=None): return {'text/html': '<i>m</i>', 'text/plain': 'M!'}\nM()", all(ok("M!"), mime(0, "text/html", "<i>m</i>"))},
	{"an unserialisable rich repr is dropped, text/plain stays", `
class Odd:
    def _repr_json_(self): return {1, 2}
    def _repr_html_(self): raise RuntimeError('no html')
    def __repr__(self): return 'Odd()'
Odd()`, all(ok("Odd()"), lacks(0, "application/json"), lacks(0, "text/html"))},
	{"a repr that is not a string falls back", "class Bad:\n    def __repr__(self): return 5\nBad()", func(t *testing.T, c kerneltest.Cell) {
		if c.Error != nil || len(c.Results) != 1 || !strings.Contains(c.Results[0].Text("text/plain"), "Bad object at 0x") {
			t.Errorf("%+v, want one result with the default repr", c)
		}
	}},
	{"NaN in application/json is dropped", "class N:\n    def _repr_json_(self): return {'v': float('nan')}\nN()", lacks(0, "application/json")},
	{"lone surrogates survive", "'\\udc80'", ok(`'\udc80'`)},
	{"an error has a traceback from the cell", "def f():\n    return 1 / 0\nf()", all(failed("ZeroDivisionError"), func(t *testing.T, c kerneltest.Cell) {
		tb := strings.Join(c.Error.Traceback, "\n")
		if c.Error.Value != "division by zero" || !strings.HasPrefix(tb, "Traceback (most recent call last):\n  File \"<cell-") ||
			!strings.Contains(tb, "line 3, in <module>") || !strings.Contains(tb, "line 2, in f") {
			t.Errorf("error %q:\n%s", c.Error.Value, tb)
		}
	})},
	{"a syntax error points into the cell", "foo(", all(failed("SyntaxError"), func(t *testing.T, c kerneltest.Cell) {
		if !strings.Contains(c.Error.Traceback[0], "<cell-") {
			t.Errorf("traceback %q", c.Error.Traceback)
		}
	})},
	{"SystemExit ends the cell, not the driver", "raise SystemExit(3)", all(failed("SystemExit"), func(t *testing.T, c kerneltest.Cell) {
		if c.Error.Value != "3" {
			t.Errorf("value %q", c.Error.Value)
		}
	})},
	{"a raised KeyboardInterrupt ends the cell", "raise KeyboardInterrupt", failed("KeyboardInterrupt")},
	{"the state is still there", "x", ok("41")},
	{"sys.stdout closed", "import sys\nsys.stdout.close()", ok()},
	{"the next cell prints", "print('after close')", stdout("after close\n", "")},
	{"sys.stdout replaced", "import io, sys\nsys.stdout = io.StringIO()\nprint('lost')", stdout("", "")},
	{"the next cell prints to the pipe", "print('after replace')", stdout("after replace\n", "")},
	{"fd 1 and fd 2 closed", "import os\nos.close(1)\nos.close(2)", ok()},
	{"the next cell has both", "import sys\nprint('out')\nprint('err', file=sys.stderr)", stdout("out\n", "err\n")},
	{"fd 1 redirected to /dev/null", "import os\nnull = os.open(os.devnull, os.O_WRONLY)\nos.dup2(null, 1)\nos.close(null)", ok()},
	{"the next cell prints to the pipe again", "print('back')", stdout("back\n", "")},
	{"the protocol's descriptors are out of reach", `
import os
for fd in (3, 4):
    try:
        os.write(fd, b'\x00\x00\x00\x02{}')
        print(fd, 'open', os.readlink('/proc/self/fd/%d' % fd))
    except OSError as e:
        print(fd, 'refused', e.errno)`, func(t *testing.T, c kerneltest.Cell) {
		// Closed, or reused by something the cell's libraries opened (IPython
		// keeps /dev/null open), but never the protocol's pipes.
		if strings.Count(c.Stdout, "\n") != 2 || strings.Contains(c.Stdout, "pipe:") {
			t.Errorf("stdout %q, want fd 3 and fd 4 closed or not pipes", c.Stdout)
		}
	}},
	{"a child process inherits no protocol descriptor", `
import subprocess, sys
subprocess.run([sys.executable, '-c', 'import os; print(sorted(os.listdir("/proc/self/fd")))'], close_fds=False, check=True)`,
		func(t *testing.T, c kerneltest.Cell) {
			if c.Stdout != "['0', '1', '2', '3']\n" {
				t.Errorf("the child's descriptors: %q, want 0-2 and its own listing", c.Stdout)
			}
		}},
	{"a forked child that falls through the cell ends there", `
import os
pid = os.fork()
if pid == 0:
    print('child', flush=True)
    display('from the child')
else:
    os.waitpid(pid, 0)
    print('parent')`, stdout("child\nparent\n", "")},
	{"a forked child's SystemExit is its exit status", `
import os
pid = os.fork()
if pid == 0:
    raise SystemExit(5)
os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])`, ok("5")},
	{"multiprocessing finds the cell's functions", `
from multiprocessing import get_context
def square(v):
    return v * v
with get_context('fork').Pool(2) as pool:
    squares = pool.map(square, range(4))
squares`, ok("[0, 1, 4, 9]")},
	{"names the driver uses are the user's own", "_send = _execute = main = json = os = sys = signal = _in_cell = None\n_current_cell = 'x'\ndisplay = print", ok()},
	{"the driver still works", "x + 1", ok("42")},
	{"display() is back when the user's name goes", "del display\ndisplay('again')", ok("'again'")},
	{"top-level await", "import asyncio\nasync def g():\n    await asyncio.sleep(0)\n    return x\nawait g()", ok("41")},
	{"a huge result is sent whole", "'x' * 20_000_000", func(t *testing.T, c kerneltest.Cell) {
		if len(c.Results) != 1 || len(c.Results[0].Text("text/plain")) != 20_000_002 {
			t.Errorf("%d results", len(c.Results))
		}
	}},
	{"__name__ is __main__", "__name__", ok("'__main__'")},
}

// interrupts: SIGINT stops a sleeping and a busy cell, the state stays,
// and SIGINT between cells changes nothing.
func interrupts(t *testing.T, d *kerneltest.Driver) {
	t.Helper()
	d.Run("kept = 'state'")
	for _, code := range []string{
		"print('started', flush=True)\nimport time\ntime.sleep(600)",
		"print('started', flush=True)\nwhile True:\n    pass",
		// Python swallows what a finalizer raises; an interrupt that lands
		// in one (here while it is slow) must still end the cell.
		"import time\nclass Slow:\n    def __del__(self):\n        print('started', flush=True)\n        end = time.time() + 5\n        while time.time() < end:\n            pass\ns = Slow()\ndel s\ntime.sleep(600)",
		"import time, weakref\nclass T: pass\nt = T()\ndef slow(_):\n    print('started', flush=True)\n    end = time.time() + 5\n    while time.time() < end:\n        pass\nr = weakref.ref(t, slow)\ndel t\nwhile True:\n    pass",
	} {
		p := d.Start(code)
		p.WaitOutput("started")
		d.Interrupt()
		c := p.Wait()
		failed("KeyboardInterrupt")(t, c)
		if tb := strings.Join(c.Error.Traceback, "\n"); !strings.Contains(tb, "<cell-") {
			t.Errorf("traceback %s", tb)
		}
		if strings.Contains(c.Stderr, "Exception ignored") {
			t.Errorf("stderr %q: the interrupt was reported as ignored", c.Stderr)
		}
	}
	d.Interrupt() // between cells: ignored
	ok("'state'")(t, d.Run("kept"))
}

func TestKernelLocal(t *testing.T) {
	d := startLocal(t)
	if r := d.Ready(); r.Type != kernel.TypeReady || r.Language != "python" || !strings.HasPrefix(r.Version, "3.") || !slices.Contains(r.Features, "display") {
		t.Errorf("ready = %+v", r)
	}
	runSteps(t, d, basics)
	interrupts(t, d)
}

func TestKernelImages(t *testing.T) {
	for _, image := range []string{"runhost/python:3.11", "runhost/python:3.13"} {
		t.Run(image, func(t *testing.T) {
			d := startImage(t, image, "")
			if r := d.Ready(); r.Language != "python" || slices.Contains(r.Features, "ipython") {
				t.Errorf("ready = %+v, want python without IPython", r)
			}
			runSteps(t, d, basics)
			interrupts(t, d)
		})
	}
}

func TestKernelDataImage(t *testing.T) {
	d := startImage(t, dataVersion.Image, "1g")
	if r := d.Ready(); r.Version != "3.11.2" || !slices.Contains(r.Features, "ipython") || !slices.Contains(r.Features, "matplotlib") || !slices.Contains(r.Features, "pandas") {
		t.Errorf("ready = %+v", d.Ready())
	}
	runSteps(t, d, basics)
	runSteps(t, d, []step{
		{"figures come back as PNG without plt.show()", "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])", all(
			mime(0, "text/plain", "matplotlib.lines.Line2D"), png(1), mime(1, "text/plain", "<Figure size 640x480 with 1 Axes>"),
			func(t *testing.T, c kerneltest.Cell) {
				if len(c.Results) != 2 || c.Stderr != "" {
					t.Errorf("%d results, stderr %q; want the value and one figure", len(c.Results), c.Stderr)
				}
			})},
		{"plt.show() shows the figure once, where it is called", "plt.plot([3, 2, 1])\nplt.show()\nprint('after show')", all(png(0), func(t *testing.T, c kerneltest.Cell) {
			if len(c.Results) != 1 || c.Stdout != "after show\n" || c.Stderr != "" {
				t.Errorf("%d results, stdout %q, stderr %q", len(c.Results), c.Stdout, c.Stderr)
			}
		})},
		{"closed figures are not shown", "fig = plt.figure()\nplt.close(fig)", ok()},
		{"a figure as the value is its PNG", "fig, ax = plt.subplots()\nax.bar([1, 2], [3, 4])\nplt.close(fig)\nfig", all(png(0), mime(0, "text/plain", "<Figure"))},
		{"the backend is the driver's, subprocesses keep Agg", "import matplotlib, os\n(matplotlib.get_backend(), os.environ['MPLBACKEND'])", ok("('module://runhost_kernel_mpl', 'Agg')")},
		{"a DataFrame is HTML and text", "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})\ndf", all(
			mime(0, "text/html", "<table"), mime(0, "text/plain", "a  b"))},
		{"IPython.display.display() publishes through the driver", "from IPython.display import display as show, HTML, Markdown, Image\nshow(HTML('<b>bold</b>'), Markdown('*md*'))", all(
			mime(0, "text/html", "<b>bold</b>"), mime(1, "text/markdown", "*md*"))},
		{"IPython's Image is a PNG", "import io\nbuf = io.BytesIO()\nplt.figure(figsize=(1, 1)).savefig(buf, format='png')\nplt.close('all')\nImage(data=buf.getvalue())", png(0)},
		{"scipy works", "import scipy.stats\nround(float(scipy.stats.norm.cdf(0)), 2)", ok("0.5")},
		{"a 200 MB figure is rendered and sent", "big = plt.figure(figsize=(70.8, 70.8), dpi=100)\nbig.gca().plot([0, 1])\nbig.get_size_inches().prod() * 100 * 100 * 4 > 200e6", all(
			mime(0, "text/plain", "True"), png(1))},
		{"the driver goes on", "x", ok("41")},
	})
	interrupts(t, d)
}

func TestKernelCellEndsInterpreter(t *testing.T) {
	d := startLocal(t)
	if _, err := d.Start("import os\nos._exit(7)").Result(); err == nil {
		t.Fatal("the cell finished, want the driver gone")
	}
	if exit := d.Wait(); exit.Code != 7 {
		t.Errorf("exit %+v, want code 7", exit)
	}
}

func TestKernelEndsWhenRequestsClose(t *testing.T) {
	d := startLocal(t)
	d.Run("print('a')")
	d.CloseRequests()
	if exit := d.Wait(); exit.Code != 0 || exit.Signal != "" {
		t.Errorf("exit %+v, want 0", exit)
	}
}

func TestDataVersionIsExactOnly(t *testing.T) {
	d, err := Python{}.Describe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for asked, want := range map[string]string{"": "3.11", "3": "3.13", "3.11": "3.11", "3.11-data": "3.11-data"} {
		v, err := runner.ResolveVersion(d, asked)
		if err != nil || v.Version != want {
			t.Errorf("version %q resolves to %q (%v), want %q", asked, v.Version, err, want)
		}
	}
	spec, err := plugintest.Connect(t, Python{}).Plan(t.Context(), shared.RunRequest{Version: "3.11-data", Code: "import pandas"})
	if err != nil || spec.Image != "runhost/python:3.11-data" {
		t.Errorf("Plan = %+v, %v", spec.Image, err)
	}
}

// BenchmarkKernelCell is one trivial cell's round trip through the driver
// (request on fd 3, result and done on fd 4), with this machine's python3.
func BenchmarkKernelCell(b *testing.B) {
	d := startLocal(b)
	d.Run("x = 1")
	for b.Loop() {
		if c := d.Run("x + 1"); len(c.Results) != 1 {
			b.Fatalf("%+v", c)
		}
	}
}

// BenchmarkKernelStart is the driver's start: process start to ready.
func BenchmarkKernelStart(b *testing.B) {
	for b.Loop() {
		d := startLocal(b)
		d.CloseRequests()
		d.Wait()
	}
}

// BenchmarkKernelMemory reports the driver's resident memory in the data
// image, idle and holding a 100 MB DataFrame.
func BenchmarkKernelMemory(b *testing.B) {
	for b.Loop() {
		d := startImage(b, dataVersion.Image, "1g")
		rss := func() float64 {
			c := d.Run("int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])")
			kb, err := strconv.ParseFloat(c.Texts()[0], 64)
			if err != nil {
				b.Fatalf("%+v", c)
			}
			return kb / 1024
		}
		b.ReportMetric(rss(), "idle-rss-MB")
		c := d.Run("import numpy as np, pandas as pd\ndf = pd.DataFrame(np.random.rand(1_310_720, 10))\nint(df.memory_usage().sum()) // 2**20")
		if c.Texts()[0] != "100" {
			b.Fatalf("%+v", c)
		}
		b.ReportMetric(rss(), "df100-rss-MB")
	}
}
