package playground

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	resp := rec.Result()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestAssetsContentTypeAndCSP(t *testing.T) {
	tests := []struct {
		path, contentType string
	}{
		{"/", "text/html; charset=utf-8"},
		{"/app.js", "text/javascript; charset=utf-8"},
		{"/style.css", "text/css; charset=utf-8"},
		{"/result.css", "text/css; charset=utf-8"},
		{"/icon.svg", "image/svg+xml"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, _ := get(t, tt.path)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got := resp.Header.Get("Content-Type"); got != tt.contentType {
				t.Errorf("Content-Type %q, want %q", got, tt.contentType)
			}
			if got := resp.Header.Get("Content-Security-Policy"); got != ContentSecurityPolicy {
				t.Errorf("Content-Security-Policy %q, want %q", got, ContentSecurityPolicy)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q", got)
			}
		})
	}
}

// TestPageFitsTheCSP guards what default-src 'self' forbids: inline scripts,
// inline styles and handlers, and assets from elsewhere; and that every
// asset the page names is served.
func TestPageFitsTheCSP(t *testing.T) {
	_, page := get(t, "/")
	forbidden := []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`), // a script with a body
		regexp.MustCompile(`<style`),
		regexp.MustCompile(`\sstyle=`),
		regexp.MustCompile(`\son[a-z]+=`),
		regexp.MustCompile(`(?:src|href)="(?:https?:)?//`),
	}
	for _, re := range forbidden {
		if m := re.FindString(page); m != "" {
			t.Errorf("index.html has %q, which the CSP forbids", m)
		}
	}
	for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(page, -1) {
		if !strings.Contains(tag, ` src="`) {
			t.Errorf("index.html has an inline script %q", tag)
		}
	}
	refs := regexp.MustCompile(`(?:src|href)="/playground(/[^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 3 {
		t.Fatalf("index.html names %d assets, want the script, the style sheet and the icon", len(refs))
	}
	for _, ref := range refs {
		if resp, _ := get(t, ref[1]); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d", ref[1], resp.StatusCode)
		}
	}
}

// TestScriptNeverParsesData: output is written with textContent only. The
// one exception, a cell's text/html result, is rewritten by cleanHTML and
// set as the content of a frame whose sandbox="" is set first; the page
// itself never parses HTML from data.
func TestScriptNeverParsesData(t *testing.T) {
	_, js := get(t, "/app.js")
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
		"createContextualFragment", "DOMParser", "parseFromString", "setHTMLUnsafe", "parseHTMLUnsafe", "allow-"} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
	if n := strings.Count(js, "srcdoc"); n != 1 {
		t.Errorf("app.js names srcdoc %d times, want once (the sandboxed frame)", n)
	}
	if !regexp.MustCompile(`frame\.setAttribute\("sandbox", ""\);[^}]*frame\.srcdoc = [^;]*\+ markup;`).MatchString(js) {
		t.Error(`app.js sets a frame's srcdoc other than to cleaned markup right after sandbox=""`)
	}
}
