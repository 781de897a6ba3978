package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/runhost/runhost/internal/testenv"
)

// The playground's interpreter mode in headless Chromium against the real
// host, plugins and engine: cells that share state, streamed output, rich
// results rendered (and untrusted HTML kept in a sandbox), interrupt,
// restart, and the session ended when the page goes.

// cellView is one cell as a person sees it.
type cellView struct {
	State   string     `json:"state"`
	Code    string     `json:"code"`
	Stdout  string     `json:"stdout"`
	Stderr  string     `json:"stderr"`
	Results []richView `json:"results"`
	Error   string     `json:"error"`
	Flags   []string   `json:"flags"`
}

// richView is one rendered result of a cell.
type richView struct {
	MIME    string  `json:"mime"`
	Text    string  `json:"text"`    // what a <pre> shows
	Src     string  `json:"src"`     // an <img>'s
	Alt     string  `json:"alt"`     // an <img>'s
	Sandbox *string `json:"sandbox"` // an <iframe>'s sandbox attribute (nil: none)
	Srcdoc  string  `json:"srcdoc"`  // an <iframe>'s content
}

const readCells = `[...document.querySelectorAll("#cells > li")].map((li) => {
	const text = (sel) => [...li.querySelectorAll(sel)].map((e) => e.textContent).join("");
	return {
		state: li.dataset.state,
		code: li.querySelector(".cell-code").textContent,
		stdout: text(".cell-output .stdout"),
		stderr: text(".cell-output .stderr"),
		results: [...li.querySelectorAll(".rich")].map((r) => {
			const img = r.querySelector("img"), frame = r.querySelector("iframe"), pre = r.querySelector("pre");
			return {
				mime: r.dataset.mime,
				text: pre ? pre.textContent : "",
				src: img ? img.src : "",
				alt: img ? img.alt : "",
				sandbox: frame ? frame.getAttribute("sandbox") : null,
				srcdoc: frame ? frame.srcdoc : "",
			};
		}),
		error: text(".traceback"),
		flags: [...li.querySelectorAll(".flag")].map((f) => f.textContent),
	};
})`

func (p *page) cells() []cellView {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]cellView](readCells))
	if err != nil {
		p.t.Fatalf("read the cells: %v", err)
	}
	return v
}

// eval evaluates a JavaScript expression in the page (awaiting a promise).
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v\nconsole: %v", expr, err, p.messages())
	}
	return v
}

// until waits for a JavaScript condition. The bound only keeps a broken
// page from hanging the suite (a cold matplotlib import takes many
// seconds on a loaded machine); nothing is measured.
func (p *page) until(cond string) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](cond,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(150*time.Second))); err != nil {
		p.t.Fatalf("wait for %s: %v\npage: %+v\ncells: %+v\nconsole: %v", cond, err, p.read(), p.cells(), p.messages())
	}
}

// cellsShown is how many cells the page shows.
func (p *page) cellsShown() int {
	return eval[int](p, `document.querySelectorAll("#cells > li").length`)
}

// cellDone waits until cell n (from 1) has finished and returns it.
func (p *page) cellDone(n int) cellView {
	p.t.Helper()
	p.until(fmt.Sprintf(`document.body.dataset.state === "failed" ||
		(document.body.dataset.state !== "running" && document.querySelectorAll("#cells > li").length >= %d)`, n))
	cells := p.cells()
	if len(cells) < n {
		p.t.Fatalf("cell %d did not run: page %+v", n, p.read())
	}
	return cells[n-1]
}

// runCell types code into the editor, runs it with Ctrl+Enter and returns
// the cell once it has finished.
func (p *page) runCell(code string) cellView {
	p.t.Helper()
	n := p.cellsShown() + 1
	p.typeInto("code", code)
	p.ctrlEnter()
	return p.cellDone(n)
}

// interpreterPage opens the playground in interpreter mode on a runtime.
func interpreterPage(t *testing.T, browser context.Context, h *host, runtime, version string) *page {
	t.Helper()
	p := openPage(t, browser, h.URL+"/")
	if s := p.read(); s.State != "ready" {
		t.Fatalf("the page is not ready: %+v", s)
	}
	p.set("mode", "interpreter")
	p.set("runtime", runtime)
	if version != "" {
		p.set("version", version)
	}
	return p
}

// sessionOf is the id of the page's interpreter session ("" when none).
func (p *page) sessionOf() string {
	return eval[string](p, `document.getElementById("session").dataset.id || ""`)
}

func (r richView) in(results []richView) bool { return slices.Contains(results, r) }

// resultHead is what the page puts before a cell's HTML in its frame.
const resultHead = `<!doctype html><meta charset="utf-8"><link rel="stylesheet" href="/playground/result.css">`

// dot is a 1x1 PNG as a data: URL.
const dot = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

func TestPlaygroundInterpreter(t *testing.T) {
	// With keys: the page's sessions are its key's, and every call about
	// one (the DELETE as the page goes included) carries it.
	h, key := startBrowserKeyHost(t)
	h.Key = key
	browser := startBrowser(t, requireChromium(t))
	// The key typed once, as a person does; the browser keeps it for the
	// pages below.
	first := openPage(t, browser, h.URL+"/")
	first.typeInto("key", key)
	first.do(chromedp.Blur(chromedp.ID("key")), chromedp.WaitReady(chromedp.CSS(`body[data-state="ready"]`)))
	sessionGone := func(t *testing.T, id string) {
		t.Helper()
		testenv.Eventually(t, time.Minute, "session "+id+" ended", func() bool {
			status, _ := h.do(context.Background(), http.MethodGet, "/sessions/"+id, nil)
			return status == http.StatusNotFound
		})
	}

	// Cells share state, show values, output and tracebacks; a cell that
	// runs on streams its output and is interrupted with its state kept;
	// Restart starts from nothing; leaving the page ends the session.
	t.Run("Python", func(t *testing.T) {
		p := interpreterPage(t, browser, h, "python", "3.11")
		if shell := eval[bool](p, `document.querySelector('#runtime option[value="shell"]').disabled`); !shell {
			t.Error("shell, which has no interpreter, can be picked in interpreter mode")
		}
		if hidden := eval[bool](p, `document.getElementById("stdin").closest(".row").hidden`); !hidden {
			t.Error("stdin is offered to cells")
		}
		if s := p.read(); s.Code != "x = 41\nx + 1\n" {
			t.Errorf("the editor in interpreter mode starts with %q, not the cell starter", s.Code)
		}

		if c := p.runCell("x = 41"); c.State != "done" || len(c.Results) != 0 || c.Code != "x = 41" || c.Error != "" {
			t.Fatalf("cell 1: %+v", c)
		}
		if s := p.read(); s.Code != "" {
			t.Errorf("the editor keeps %q after a cell that ran", s.Code)
		}
		id := p.sessionOf()
		if id == "" {
			t.Fatal("no session shown after the first cell")
		}
		c := p.runCell("print('hi')\nx + 1")
		if c.State != "done" || c.Stdout != "hi\n" || len(c.Results) != 1 || c.Results[0] != (richView{MIME: "text/plain", Text: "42"}) {
			t.Fatalf("cell 2: %+v", c)
		}

		c = p.runCell("def f():\n    return 1 / 0\nf()")
		if c.State != "failed" || !strings.Contains(c.Error, "ZeroDivisionError: division by zero") || !strings.Contains(c.Error, "<cell-") {
			t.Errorf("a cell that raises: %+v", c)
		}
		if s := p.read(); !strings.Contains(s.Code, "1 / 0") {
			t.Errorf("the editor lost a cell that failed: %q", s.Code)
		}

		// Markdown as text, JSON pretty-printed.
		c = p.runCell(`display({"text/markdown": "# Title *md*", "text/plain": "md"}, raw=True)` + "\n" +
			`display({"application/json": {"a": [1, 2]}, "text/plain": "json"}, raw=True)`)
		want := []richView{{MIME: "text/markdown", Text: "# Title *md*"}, {MIME: "application/json", Text: "{\n  \"a\": [\n    1,\n    2\n  ]\n}"}}
		if !slices.Equal(c.Results, want) {
			t.Errorf("markdown and JSON: %+v", c.Results)
		}

		// Output streams while the cell runs; Interrupt stops the cell, not
		// the interpreter.
		n := p.cellsShown() + 1
		p.typeInto("code", "print('started', flush=True)\nimport time\nx = 7\nwhile True:\n    time.sleep(0.05)")
		p.ctrlEnter()
		p.until(fmt.Sprintf(`document.body.dataset.state === "running" &&
			document.querySelector("#cells > li:nth-child(%d) .cell-output .stdout") !== null`, n))
		p.do(chromedp.Click(chromedp.ID("stop")))
		c = p.cellDone(n)
		if c.Stdout != "started\n" || !slices.Contains(c.Flags, "interrupted") {
			t.Errorf("the interrupted cell: %+v", c)
		}
		if c := p.runCell("x"); c.State != "done" || len(c.Results) != 1 || c.Results[0].Text != "7" {
			t.Errorf("after the interrupt: %+v (page %+v)", c, p.read())
		}
		if p.sessionOf() != id {
			t.Errorf("the interrupt changed the session: %s, was %s", p.sessionOf(), id)
		}

		// Restart: a new session, no variables, the old one ended.
		p.do(chromedp.Click(chromedp.ID("restart")))
		p.until(fmt.Sprintf(`document.body.dataset.state === "done" && (document.getElementById("session").dataset.id || %q) !== %q`, id, id))
		if n := p.cellsShown(); n != 0 {
			t.Errorf("%d cells shown after a restart", n)
		}
		sessionGone(t, id)
		if c := p.runCell("x"); c.State != "failed" || !strings.Contains(c.Error, "NameError") {
			t.Errorf("x after a restart: %+v", c)
		}

		// Back to Program mode: the session ends, the program comes back.
		id = p.sessionOf()
		p.set("mode", "run")
		sessionGone(t, id)
		if s := p.read(); !strings.Contains(s.Code, "sys.stdin.read()") || s.Output != "" {
			t.Errorf("program mode after interpreter mode: %+v", s)
		}
		p.set("mode", "interpreter")
		if c := p.runCell("y = 1"); c.State != "done" {
			t.Fatalf("a cell after switching back: %+v", c)
		}

		// Leaving the page ends its session.
		id = p.sessionOf()
		p.do(chromedp.Navigate("about:blank"))
		sessionGone(t, id)
		p.noConsoleErrors()
	})

	// The data image: a matplotlib figure is an <img> of a PNG, a
	// DataFrame's HTML is in a sandboxed frame.
	t.Run("DataImage", func(t *testing.T) {
		testenv.RequireImages(t, h.Docker, "runhost/python:3.11-data")
		p := interpreterPage(t, browser, h, "python", "3.11-data")
		// The first imports of matplotlib, pandas and IPython take seconds
		// of CPU on a loaded machine: the cells get a minute.
		p.typeInto("timeout", "60000")
		c := p.runCell("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9]);")
		if c.State != "done" || len(c.Results) != 1 || c.Results[0].MIME != "image/png" || !strings.HasPrefix(c.Results[0].Alt, "<Figure size") {
			t.Fatalf("a figure: %+v", c)
		}
		b64, ok := strings.CutPrefix(c.Results[0].Src, "data:image/png;base64,")
		raw, err := base64.StdEncoding.DecodeString(b64)
		if !ok || err != nil {
			t.Fatalf("the figure's src is not a base64 PNG: %.60q (%v)", c.Results[0].Src, err)
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(raw))
		if err != nil || cfg.Width < 100 || cfg.Height < 100 {
			t.Fatalf("the figure is not a chart's PNG: %+v %v", cfg, err)
		}
		// The browser decoded it, at its size.
		size := eval[[2]int](p, `(async () => {
			const img = document.querySelector('#cells .rich[data-mime="image/png"] img');
			await img.decode();
			return [img.naturalWidth, img.naturalHeight];
		})()`)
		if size != [2]int{cfg.Width, cfg.Height} {
			t.Errorf("the browser shows the figure at %v, the PNG is %dx%d", size, cfg.Width, cfg.Height)
		}

		c = p.runCell("import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})")
		if c.State != "done" || len(c.Results) != 1 {
			t.Fatalf("a DataFrame: %+v", c)
		}
		r := c.Results[0]
		if r.MIME != "text/html" || r.Sandbox == nil || *r.Sandbox != "" || !strings.Contains(r.Srcdoc, `<table border="1" class="dataframe">`) {
			t.Errorf("the DataFrame's HTML is not in a frame sandboxed without permissions: %+v", r)
		}
		if n := eval[int](p, `document.querySelectorAll("table, .dataframe").length`); n != 0 {
			t.Errorf("the DataFrame's table is in the page's own DOM (%d elements)", n)
		}
		p.noConsoleErrors()
	})

	// HTML and SVG results that try to run script, reach the page or send
	// data elsewhere do none of it: no script runs, the page is untouched,
	// and a listener standing for another site gets no connection, not even
	// the preconnects Chromium makes for <link rel="preconnect"> and a
	// refused <iframe src> in a sandboxed frame (while a navigation of the
	// browser to it does reach it). Plain markup and data: images stay.
	t.Run("UntrustedHTML", func(t *testing.T) {
		out := recordRequests(t, newOutside(t, h.Docker))
		other := out.URL
		p := interpreterPage(t, browser, h, "python", "3.11")
		p.do(chromedp.Evaluate[chromedp.Void](`window.framesLoaded = 0;
			document.addEventListener("load", (e) => { if (e.target.tagName === "IFRAME") window.framesLoaded++; }, true)`))
		html := strings.Join([]string{
			`<p id="from-cell" class="kept" style="color: red">from the cell</p>`,
			`<img alt="dot" src="` + dot + `">`,
			`<script>parent.document.body.dataset.pwned = "script"; top.document.title = "pwned"; fetch("OTHER/script");</script>`,
			`<img src="data:," onerror="parent.document.body.dataset.pwned = 'onerror'">`,
			`<img src="OTHER/img">`,
			`<link rel="stylesheet" href="OTHER/css">`,
			`<iframe src="OTHER/frame"></iframe>`,
			`<meta http-equiv="refresh" content="0; url=OTHER/refresh">`,
			`<form action="OTHER/form"><input name="q" value="x" autofocus></form>`,
			`<link rel="preconnect" href="OTHER"><link rel="prefetch" href="OTHER/prefetch">`,
			`<a href="OTHER/link" target="_top">a link</a><base href="OTHER/">`,
			`<math><mi xlink:href="OTHER/math">m</mi></math><object data="OTHER/object"></object>`,
		}, "")
		svg := `<svg xmlns="http://www.w3.org/2000/svg" width="12" height="8"><script>parent.document.body.dataset.pwned = "svg"</script>` +
			`<image href="OTHER/svg" width="1" height="1"/><rect width="12" height="8"/></svg>`
		code := fmt.Sprintf("display({'text/html': %q, 'text/plain': 'html'}, raw=True)\ndisplay({'image/svg+xml': %q, 'text/plain': 'svg'}, raw=True)\n",
			strings.ReplaceAll(html, "OTHER", other), strings.ReplaceAll(svg, "OTHER", other))
		n := p.cellsShown() + 1
		p.set("code", code) // long: set, not typed
		p.ctrlEnter()
		c := p.cellDone(n)
		if c.State != "done" || len(c.Results) != 2 || c.Results[0].MIME != "text/html" || c.Results[1].MIME != "image/svg+xml" {
			t.Fatalf("the cell: %+v", c)
		}
		r := c.Results[0]
		if r.Sandbox == nil || *r.Sandbox != "" {
			t.Errorf("the HTML is not in a frame sandboxed without permissions: %+v", r)
		}
		if want := resultHead + `<p class="kept">from the cell</p><img alt="dot" src="` + dot + `"><img><img><a>a link</a>`; r.Srcdoc != want {
			t.Errorf("the frame holds more than plain markup and a data: image:\n%s\nwant\n%s", r.Srcdoc, want)
		}
		// Everything the frame would load was tried or refused by the time
		// its load event fires; the SVG has been decoded.
		p.until(`window.framesLoaded >= 1`)
		if size := eval[[2]int](p, `(async () => {
			const img = document.querySelector('#cells .rich[data-mime="image/svg+xml"] img');
			await img.decode();
			return [img.naturalWidth, img.naturalHeight];
		})()`); size != [2]int{12, 8} {
			t.Errorf("the SVG shows at %v, want 12x8", size)
		}
		page := eval[map[string]string](p, `({
			pwned: document.body.dataset.pwned || "",
			title: document.title,
			location: location.href,
			fromCell: String(document.getElementById("from-cell")),
			scripts: String(document.querySelectorAll("#cells script, #cells svg").length),
		})`)
		if page["pwned"] != "" || page["title"] != "runhost playground" || page["location"] != h.URL+"/" ||
			page["fromCell"] != "null" || page["scripts"] != "0" {
			t.Errorf("the result reached the page: %v", page)
		}
		if paths, conns := out.Seen(); len(paths) != 0 || conns != 0 {
			t.Errorf("the results made the browser connect to another host %d times and ask it for %v", conns, paths)
		}
		// The listener is reachable from this browser: the zero above is
		// the sandbox's and the CSP's doing.
		control, closeControl := chromedp.NewContext(browser)
		defer closeControl()
		if err := chromedp.Do(control, chromedp.Navigate(other+"/control")); err != nil {
			t.Fatalf("navigate to the listener: %v", err)
		}
		if got, _ := out.Seen(); !slices.Equal(got, []string{"/control"}) {
			t.Errorf("the browser navigated to the listener, which saw %v: the check above proves nothing", got)
		}
		p.noConsoleErrors()
	})

	// Node: top-level await, and a const that survives into the next cell.
	t.Run("Node", func(t *testing.T) {
		p := interpreterPage(t, browser, h, "node", "")
		c := p.runCell("const v = await new Promise((r) => setTimeout(() => r(41), 10));\nconsole.log('waited');\nv + 1")
		if c.State != "done" || c.Stdout != "waited\n" || !(richView{MIME: "text/plain", Text: "42"}).in(c.Results) {
			t.Fatalf("a cell with top-level await: %+v", c)
		}
		if c := p.runCell("v * 2"); c.State != "done" || len(c.Results) != 1 || c.Results[0].Text != "82" {
			t.Errorf("the const in the next cell: %+v", c)
		}
		c = p.runCell("null.x")
		if c.State != "failed" || !strings.Contains(c.Error, "TypeError") {
			t.Errorf("a cell that throws: %+v", c)
		}
		p.noConsoleErrors()
	})
}

// requests is an HTTP server on an outside network that records the path
// of every request it gets, and counts connections (a speculative
// preconnect opens one and sends nothing).
type requests struct {
	URL   string
	mu    sync.Mutex
	paths []string
	conns int
}

func recordRequests(t *testing.T, o outside) *requests {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(o.Gateway, "0"))
	if err != nil {
		t.Fatal(err)
	}
	r := &requests{URL: "http://" + ln.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.paths = append(r.paths, req.URL.Path)
		r.mu.Unlock()
		_, _ = io.WriteString(w, "reached")
	}), ReadHeaderTimeout: 10 * time.Second, ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			r.mu.Lock()
			r.conns++
			r.mu.Unlock()
		}
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return r
}

// Seen is the paths asked for so far, in order, and the connections.
func (r *requests) Seen() ([]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.paths), r.conns
}
