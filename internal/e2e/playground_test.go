package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/runhost/runhost/internal/auth"
	"github.com/runhost/runhost/internal/playground"
	"github.com/runhost/runhost/internal/testenv"
)

// The playground page in headless Chromium against the real host, plugins
// and engine: what a person does, key presses included.

// requireChromium finds Debian's chromium; in CI its absence is a failure
// (scripts/ensure-chromium.sh, run by `make test`, installs it).
func requireChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	if testenv.InCI() {
		t.Fatal("CI=true and no chromium on PATH or at /usr/bin/chromium (scripts/ensure-chromium.sh installs it)")
	}
	t.Skip("no chromium (scripts/ensure-chromium.sh installs it)")
	return ""
}

// startBrowser starts one headless Chromium with a throw-away profile; the
// tabs of a test are its children. It is closed before the host stops.
func startBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1200, 900),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to start its sandbox as root
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser, bound to ctx only
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return ctx
}

// page is one tab on the playground, with everything the page logged.
type page struct {
	t       *testing.T
	ctx     context.Context
	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

func openPage(t *testing.T, browser context.Context, url string) *page {
	t.Helper()
	// A bound so that a page that never gets ready fails instead of hanging
	// the suite; not a measurement.
	guard, cancelGuard := context.WithTimeout(browser, 3*time.Minute)
	ctx, cancel := chromedp.NewContext(guard)
	p := &page{t: t, ctx: ctx}
	messages := chromedp.Console(ctx) // subscribed before the page loads
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.console = append(p.console, m)
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); cancelGuard(); <-done })
	p.do(chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS(`body[data-state="ready"], body[data-state="failed"]`)))
	return p
}

func (p *page) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, actions...); err != nil {
		p.t.Fatalf("browser: %v\npage: %+v\nconsole: %v", err, p.read(), p.messages())
	}
}

func (p *page) messages() []chromedp.ConsoleMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.console)
}

// noConsoleErrors fails on an exception or an error in the console (a CSP
// violation is one) other than those containing one of allowed.
func (p *page) noConsoleErrors(allowed ...string) {
	p.t.Helper()
	for _, m := range p.messages() {
		if m.Type != chromedp.ConsoleError && !m.IsException() {
			continue
		}
		if !slices.ContainsFunc(allowed, func(a string) bool { return strings.Contains(m.Text, a) }) {
			p.t.Errorf("console %s at %s:%d: %s", m.Type, m.URL, m.Line+1, m.Text)
		}
	}
}

// set sets a form control as a script would and tells the page, as the
// browser does when a person picks an option.
func (p *page) set(id, value string) {
	p.t.Helper()
	p.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`(() => { const e = document.getElementById(%q); e.value = %q; e.dispatchEvent(new Event("change")); })()`, id, value)))
}

// typeInto replaces a field's text by typing, key by key.
func (p *page) typeInto(id, text string) {
	p.t.Helper()
	// Not chromedp.SetValue(sel, ""): v0.23.0 sends the empty string as
	// undefined, and the field then reads "undefined".
	p.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.getElementById(%q).value = ""`, id)),
		chromedp.SendKeys(chromedp.ID(id), text))
}

// ctrlEnter is the page's run shortcut, pressed where the focus is.
func (p *page) ctrlEnter() {
	p.t.Helper()
	p.do(chromedp.KeyEvent(kb.Enter, chromedp.KeyModifiers(kb.ModifierCtrl)))
}

// pageState is what a person sees after a run.
type pageState struct {
	State     string   `json:"state"`
	Status    string   `json:"status"`
	Stdout    string   `json:"stdout"`
	Stderr    string   `json:"stderr"`
	Output    string   `json:"output"`
	ExitCode  string   `json:"exitCode"`
	Ran       string   `json:"ran"`
	Flags     []string `json:"flags"`
	ErrorCode string   `json:"errorCode"`
	ErrorMsg  string   `json:"errorMsg"`
	Code      string   `json:"code"`
	CodeFont  string   `json:"codeFont"`
}

const readPage = `(() => {
	const $ = (id) => document.getElementById(id);
	const text = (sel) => [...document.querySelectorAll(sel)].map((e) => e.textContent).join("");
	const shown = (id) => !$(id).hidden;
	return {
		state: document.body.dataset.state || "",
		status: $("status").textContent,
		stdout: text("#output .stdout"),
		stderr: text("#output .stderr"),
		output: $("output").textContent,
		exitCode: shown("result") ? $("exit-code").textContent : "",
		ran: shown("result") ? $("ran").textContent : "",
		flags: [...document.querySelectorAll("#flags li")].filter((li) => !li.hidden).map((li) => li.textContent),
		errorCode: shown("error") ? $("error-code").textContent : "",
		errorMsg: shown("error") ? $("error-message").textContent : "",
		code: $("code").value,
		codeFont: getComputedStyle($("code")).fontFamily,
	};
})()`

func (p *page) read() pageState {
	s, err := chromedp.Run(p.ctx, chromedp.Evaluate[pageState](readPage))
	if err != nil {
		p.t.Errorf("read the page: %v", err)
	}
	return s
}

// finished waits until the run has its result or its error.
func (p *page) finished() pageState {
	p.t.Helper()
	p.do(chromedp.WaitReady(chromedp.CSS(`body[data-state="done"], body[data-state="failed"]`)))
	return p.read()
}

func TestPlayground(t *testing.T) {
	h := startHost(t)
	browser := startBrowser(t, requireChromium(t))

	// The real routes: what the page is served as, and the CSP the browser
	// enforces in the cases below (they fail on any CSP violation).
	t.Run("Assets", func(t *testing.T) {
		for _, tt := range []struct{ path, contentType string }{
			{"/", "text/html; charset=utf-8"},
			{"/playground/", "text/html; charset=utf-8"},
			{"/playground/app.js", "text/javascript; charset=utf-8"},
			{"/playground/style.css", "text/css; charset=utf-8"},
			{"/playground/result.css", "text/css; charset=utf-8"},
			{"/playground/icon.svg", "image/svg+xml"},
		} {
			resp, err := http.Get(h.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != tt.contentType {
				t.Errorf("%s: %d %q, want 200 %q", tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), tt.contentType)
			}
			if got := resp.Header.Get("Content-Security-Policy"); got != playground.ContentSecurityPolicy {
				t.Errorf("%s: Content-Security-Policy %q", tt.path, got)
			}
		}
	})

	t.Run("PythonStdinStdoutStderr", func(t *testing.T) {
		p := openPage(t, browser, h.URL+"/")
		p.set("runtime", "python")
		p.set("version", "3.13")
		// The tab key indents (four spaces for python) instead of leaving the editor.
		p.typeInto("code", "import sys\nfor line in sys.stdin:\n\tprint('out:', line.strip())\nprint('err: to stderr', file=sys.stderr)\nsys.exit(3)\n")
		p.typeInto("stdin", "alpha\nbeta\n")
		p.ctrlEnter()
		s := p.finished()
		if !strings.Contains(s.Code, "\n    print('out:'") {
			t.Errorf("Tab did not indent with four spaces: %q", s.Code)
		}
		if s.State != "done" || s.Stdout != "out: alpha\nout: beta\n" || s.Stderr != "err: to stderr\n" || s.ExitCode != "3" || s.Ran != "python 3.13" {
			t.Errorf("page after the run: %+v", s)
		}
		if len(s.Flags) != 0 {
			t.Errorf("flags %v on a plain run", s.Flags)
		}
		if !strings.Contains(s.CodeFont, "monospace") {
			t.Errorf("style sheet not applied: the editor's font is %q", s.CodeFont)
		}
		p.noConsoleErrors()
	})

	t.Run("ShellArgs", func(t *testing.T) {
		p := openPage(t, browser, h.URL+"/playground/")
		p.set("runtime", "shell")
		p.typeInto("code", `printf '[%s]' "$@"; echo; echo "n=$#"`)
		p.typeInto("args", "one two\nthree\n")
		p.do(chromedp.Click(chromedp.ID("run")))
		s := p.finished()
		if s.State != "done" || s.Stdout != "[one two][three]\nn=2\n" || s.Stderr != "" || s.ExitCode != "0" {
			t.Errorf("page after the run: %+v", s)
		}
		p.noConsoleErrors()
	})

	t.Run("TimeoutStreams", func(t *testing.T) {
		p := openPage(t, browser, h.URL+"/")
		p.set("runtime", "shell")
		p.typeInto("code", "echo started; while true; do :; done")
		p.typeInto("timeout", "3000")
		p.ctrlEnter()
		// The first line is on the page while the program still runs: streamed.
		p.do(chromedp.WaitReady(chromedp.CSS(`body[data-state="running"] #output .stdout`)))
		s := p.finished()
		if s.State != "done" || s.Stdout != "started\n" || !slices.Contains(s.Flags, "timed out") || s.ExitCode == "0" {
			t.Errorf("page after the timeout: %+v", s)
		}
		if s.Status != "Timed out." {
			t.Errorf("status %q", s.Status)
		}
		p.noConsoleErrors()
	})

	// A phone: one column, the output under the form, nothing wider than
	// the screen.
	t.Run("Phone", func(t *testing.T) {
		p := openPage(t, browser, h.URL+"/")
		p.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
		layout, err := chromedp.Run(p.ctx, chromedp.Evaluate[struct {
			FormBottom, OutputTop, OutputLeft, FormLeft, ScrollWidth, Width float64
		}](`(() => {
			const f = document.getElementById("form").getBoundingClientRect();
			const o = document.querySelector(".output").getBoundingClientRect();
			return {FormBottom: f.bottom, OutputTop: o.top, OutputLeft: o.left, FormLeft: f.left,
				ScrollWidth: document.documentElement.scrollWidth, Width: window.innerWidth};
		})()`))
		if err != nil {
			t.Fatal(err)
		}
		if layout.OutputTop < layout.FormBottom || layout.OutputLeft != layout.FormLeft || layout.ScrollWidth > layout.Width {
			t.Errorf("not one column at 390 px: %+v", layout)
		}
	})

	t.Run("ErrorShown", func(t *testing.T) {
		p := openPage(t, browser, h.URL+"/")
		p.set("runtime", "python")
		p.typeInto("code", "print('never')")
		p.typeInto("timeout", "86400000") // above the host's maximum: a 400
		p.ctrlEnter()
		s := p.finished()
		if s.State != "failed" || s.ErrorCode == "" || !strings.Contains(s.ErrorMsg, "timeout") || s.Output != "" || s.ExitCode != "" {
			t.Errorf("page after a refused run: %+v", s)
		}
		p.noConsoleErrors("status of 400")
	})
}

// startBrowserKeyHost starts a host whose one key, "browser", it returns.
func startBrowserKeyHost(t *testing.T) (*host, string) {
	t.Helper()
	key := auth.NewKey()
	file := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(file, []byte("browser "+auth.Hash(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return startHost(t, "RUNHOST_API_KEYS_FILE="+file), key
}

// The API key: asked for when the host wants one, sent as a Bearer key,
// remembered by the browser.
func TestPlaygroundAPIKey(t *testing.T) {
	h, key := startBrowserKeyHost(t)
	browser := startBrowser(t, requireChromium(t))

	p := openPage(t, browser, h.URL+"/")
	if s := p.read(); s.State != "failed" || s.ErrorCode != "unauthorized" {
		t.Fatalf("page of a keyed host without a key: %+v", s)
	}
	p.typeInto("key", key)
	p.do(chromedp.Blur(chromedp.ID("key")), chromedp.WaitReady(chromedp.CSS(`body[data-state="ready"]`)))
	p.set("runtime", "python")
	p.typeInto("code", "print('with a key')")
	p.ctrlEnter()
	if s := p.finished(); s.State != "done" || s.Stdout != "with a key\n" || s.ExitCode != "0" {
		t.Errorf("run with the key: %+v", s)
	}

	// A new page in the same profile has the key already.
	p2 := openPage(t, browser, h.URL+"/")
	if s := p2.read(); s.State != "ready" {
		t.Errorf("page reopened after the key was typed: %+v", s)
	}
	p.noConsoleErrors("status of 401")
	p2.noConsoleErrors()
}
