package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/runhost/runhost/internal/testenv"
	"github.com/runhost/runhost/shared/kernel"
	"github.com/runhost/runhost/shared/kernel/kerneltest"
)

// The driver's tests run it as a real process that speaks the protocol on
// fd 3 and fd 4: locally with this machine's node (when there is one), and
// inside the real images through kerneltest's shim, as init will run it.

func startLocal(t testing.TB) *kerneltest.Driver {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("no node on this machine; the image tests cover the driver")
	}
	path := filepath.Join(t.TempDir(), KernelFile)
	if err := os.WriteFile(path, KernelSource, 0o644); err != nil {
		t.Fatal(err)
	}
	return kerneltest.StartLocal(t, kerneltest.Options{Argv: KernelCommand(path), Dir: t.TempDir()})
}

func startImage(t testing.TB, image string) *kerneltest.Driver {
	t.Helper()
	testenv.RequireImages(t, testenv.RequireDocker(t), image)
	path := kerneltest.ShimDir + "/" + KernelFile
	return kerneltest.StartDocker(t, kerneltest.DockerOptions{
		Image: image,
		Files: []kerneltest.File{{Path: path, Mode: 0o644, Content: KernelSource}},
		Argv:  KernelCommand(path),
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
	output = kerneltest.Output
	all    = kerneltest.All
	has    = kerneltest.Has
	lacks  = kerneltest.Lacks
)

func failed(name string) kerneltest.Check { return kerneltest.Failed(name, KernelFile) }

// traceback wants these lines, in this order, among the error's traceback.
func traceback(want ...string) kerneltest.Check {
	return func(t *testing.T, c kerneltest.Cell) {
		t.Helper()
		tb := strings.Join(c.Error.Traceback, "\n")
		rest := tb
		for _, w := range want {
			i := strings.Index(rest, w)
			if i < 0 {
				t.Errorf("traceback lacks %q (in order):\n%s", w, tb)
				return
			}
			rest = rest[i+len(w):]
		}
		if strings.Contains(tb, "node:inspector") || strings.Contains(tb, "runhost-kernel-eval") {
			t.Errorf("traceback shows the driver's frames:\n%s", tb)
		}
	}
}

var basics = []step{
	{"a declaration has no result", "let x = 41", ok()},
	{"let survives between cells", "x + 1", ok("42")},
	{"a declaration may be repeated", "let x = 40; x + 1", ok("41")},
	{"const and class survive too", "const k = 'kept'\nclass Point { constructor(a) { this.a = a } }", ok()},
	{"and are there in the next cell", "[k, new Point(x)]", ok("[ 'kept', Point { a: 40 } ]")},
	{"top-level await", "const later = await new Promise((r) => setTimeout(() => r(x + 2), 5))\nlater", ok("42")},
	{"an awaited declaration survives", "later", ok("42")},
	{"an object literal is a value, not a block", "{a: 1, b: [1, 2]}", ok("{ a: 1, b: [ 1, 2 ] }")},
	{"undefined is no result", "console.log('p')", output("p\n", "")},
	{"null is a result", "null", ok("null")},
	{"strings show quoted", "'s'", ok("'s'")},
	{"bigint, NaN and -0", "[10n ** 20n, NaN, -0]", ok("[ 100000000000000000000n, NaN, -0 ]")},
	{"stdout and stderr", "console.log('out'); console.error('err'); process.stdout.write('w\\n'); undefined", output("out\nw\n", "err\n")},
	{"display() sends results in order, then the value", "display(1, 'a'); 2", ok("1", "'a'", "2")},
	{"display helpers give MIME types", "display.html('<b>h</b>'); display.markdown('*m*'); display.svg('<svg/>'); display.png(Buffer.from('\\x89PNG', 'latin1')); display.json({j: [1]})",
		all(has(0, "text/html", "<b>h</b>"), has(1, "text/markdown", "*m*"), has(2, "image/svg+xml", "<svg/>"), has(3, "image/png", "iVBORw=="),
			func(t *testing.T, c kerneltest.Cell) {
				if len(c.Results) != 5 || string(c.Results[4].Data["application/json"]) != `{"j":[1]}` {
					t.Errorf("results %+v", c.Results)
				}
			})},
	{"an object's mimebundle is used", "({ [Symbol.for('runhost.mimebundle')]() { return { 'text/html': '<i>r</i>', 'text/plain': 'rich' } } })",
		all(ok("rich"), has(0, "text/html", "<i>r</i>"))},
	{"a bundle that cannot be serialised keeps text/plain", "({ [Symbol.for('runhost.mimebundle')]() { return { 'application/json': { n: 1n }, 'text/html': 5 } } })",
		all(lacks(0, "application/json"), lacks(0, "text/html"), has(0, "text/plain", "Symbol(runhost.mimebundle)"))},
	{"a throwing mimebundle falls back to inspect", "({ v: 1, [Symbol.for('runhost.mimebundle')]() { throw new Error('no') } })", has(0, "text/plain", "v: 1")},
	{"an error has name, message and stack", "function f() { throw new TypeError('bad') }\nf()", all(failed("TypeError"), traceback("TypeError: bad", "at f (cell-", "at cell-"),
		func(t *testing.T, c kerneltest.Cell) {
			if c.Error.Value != "bad" {
				t.Errorf("value %q", c.Error.Value)
			}
		})},
	{"a rejected await is the cell's error", "await Promise.reject(new RangeError('late'))", all(failed("RangeError"), traceback("RangeError: late"))},
	{"a thrown value that is not an Error", "throw 5", all(failed("Uncaught"), func(t *testing.T, c kerneltest.Cell) {
		if c.Error.Value != "5" {
			t.Errorf("value %q", c.Error.Value)
		}
	})},
	{"a syntax error points into the cell", "let y = (", all(failed("SyntaxError"), traceback("cell-", "let y = (", "^"))},
	{"the state is still there", "x", ok("40")},
	{"process.stdout.write replaced", "process.stdout.write = () => true; console.log('lost')", output("", "")},
	{"the next cell prints", "console.log('after replace')", output("after replace\n", "")},
	{"process.stdout ended", "process.stdout.end(); undefined", ok()},
	{"the next cell prints again", "console.log('after end')", output("after end\n", "")},
	{"fd 1 closed", "require('fs').closeSync(1)", ok()},
	{"the next cell prints to the pipe", "console.log('after close')", output("after close\n", "")},
	{"the protocol's descriptors are out of reach", `
const fs = require('fs');
for (const fd of [3, 4]) {
  try { fs.writeSync(fd, Buffer.from([0, 0, 0, 2, 123, 125])); console.log(fd, 'open', fs.readlinkSync('/proc/self/fd/' + fd)) }
  catch (e) { console.log(fd, 'refused', e.code) }
}`, output("3 refused EBADF\n4 refused EBADF\n", "")},
	{"a child process inherits no protocol descriptor", "require('child_process').execFileSync('sh', ['-c', 'ls /proc/$$/fd']).toString().split('\\n').filter(Boolean).join(' ')", ok("'0 1 2'")},
	{"errors in callbacks after the cell do not end the driver", "setTimeout(() => { throw new Error('background') }, 1); Promise.reject(new Error('nobody awaits')); 1", ok("1")},
	{"the driver goes on", "await new Promise((r) => setTimeout(r, 20)); x", ok("40")},
	{"require resolves from the working directory", "require('fs').writeFileSync('mod.js', 'module.exports = 7'); require('./mod.js')", ok("7")},
	{"importModule loads ES modules", "require('fs').writeFileSync('m.mjs', 'export const v = 8'); (await importModule('./m.mjs')).v + (await importModule('node:os')).EOL.length", ok("9")},
	{"listeners removed by a cell come back", "for (const e of ['SIGINT', 'uncaughtException', 'unhandledRejection']) process.removeAllListeners(e); 1", ok("1")},
	{"so a stray error still does not end the driver", "setTimeout(() => { throw new Error('again') }, 1); await new Promise((r) => setTimeout(r, 20)); 2", ok("2")},
	{"names the driver uses are the user's own", "var send = null, runCell = null, session = null, queue = null, REQ = 3, EVT = 4, pending = 1", ok()},
	{"the driver still works", "x + 1", ok("41")},
	{"a huge result is capped by inspect, a huge display is sent whole", "display.html('x'.repeat(20_000_000)); 'y'.repeat(50_000)", func(t *testing.T, c kerneltest.Cell) {
		if len(c.Results) != 2 || len(c.Results[0].Text("text/html")) != 20_000_000 || !strings.Contains(c.Results[1].Text("text/plain"), "more characters") {
			t.Errorf("%d results", len(c.Results))
		}
	}},
}

// interrupts: SIGINT stops a busy cell and a waiting cell, the state stays,
// and SIGINT between cells changes nothing.
func interrupts(t *testing.T, d *kerneltest.Driver) {
	t.Helper()
	d.Run("let kept = 'state'")
	for _, code := range []string{
		"console.log('started'); while (true) {}",
		"console.log('started'); await new Promise(() => {})",
	} {
		p := d.Start(code)
		p.WaitOutput("started")
		d.Interrupt()
		c := p.Wait()
		failed("Interrupted")(t, c)
	}
	d.Interrupt() // between cells: ignored
	ok("'state'")(t, d.Run("kept"))
}

func TestKernelLocal(t *testing.T) {
	d := startLocal(t)
	if r := d.Ready(); r.Type != kernel.TypeReady || r.Language != "javascript" || !slices.Contains(r.Features, "top-level-await") {
		t.Errorf("ready = %+v", r)
	}
	runSteps(t, d, basics)
	interrupts(t, d)
}

func TestKernelImages(t *testing.T) {
	for _, v := range versions {
		t.Run(v.Image, func(t *testing.T) {
			d := startImage(t, v.Image)
			if r := d.Ready(); !strings.HasPrefix(r.Version, v.Version+".") {
				t.Errorf("ready = %+v, want node %s", r, v.Version)
			}
			runSteps(t, d, basics)
			interrupts(t, d)
		})
	}
}

func TestKernelCellEndsInterpreter(t *testing.T) {
	d := startLocal(t)
	if _, err := d.Start("process.exit(7)").Result(); err == nil {
		t.Fatal("the cell finished, want the driver gone")
	}
	if exit := d.Wait(); exit.Code != 7 {
		t.Errorf("exit %+v, want code 7", exit)
	}
}

func TestKernelEndsWhenRequestsClose(t *testing.T) {
	d := startLocal(t)
	d.Run("console.log('a')")
	d.CloseRequests()
	if exit := d.Wait(); exit.Code != 0 || exit.Signal != "" {
		t.Errorf("exit %+v, want 0", exit)
	}
}

// BenchmarkKernelCell is one trivial cell's round trip through the driver
// (request on fd 3, result and done on fd 4), with this machine's node.
func BenchmarkKernelCell(b *testing.B) {
	d := startLocal(b)
	d.Run("let x = 1")
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

// BenchmarkKernelMemory reports an idle driver's resident memory in the
// default image.
func BenchmarkKernelMemory(b *testing.B) {
	for b.Loop() {
		d := startImage(b, "runhost/node:20")
		c := d.Run("process.memoryUsage().rss")
		rss, err := strconv.ParseFloat(c.Texts()[0], 64)
		if err != nil {
			b.Fatalf("%+v", c)
		}
		b.ReportMetric(rss/(1<<20), "idle-rss-MB")
	}
}
