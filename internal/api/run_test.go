package api

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

func TestOutputEncoding(t *testing.T) {
	tests := []struct {
		name     string
		in       []byte
		text     string
		encoding string
	}{
		{"ascii", []byte("hi\n"), "hi\n", "utf8"},
		{"utf8", []byte("héllo 世界"), "héllo 世界", "utf8"},
		{"binary", []byte{0xff, 0x00, 0xfe}, base64.StdEncoding.EncodeToString([]byte{0xff, 0x00, 0xfe}), "base64"},
		{"invalid utf8", []byte("a\xc3"), base64.StdEncoding.EncodeToString([]byte("a\xc3")), "base64"},
	}
	for _, tt := range tests {
		if got, enc := text(tt.in), encoding(tt.in); got != tt.text || enc != tt.encoding {
			t.Errorf("%s: %q %s, want %q %s", tt.name, got, enc, tt.text, tt.encoding)
		}
	}
}

func TestTrimCut(t *testing.T) {
	for in, want := range map[string]string{
		"abc":          "abc",
		"ab\xe4\xb8":   "ab", // 世 cut after two of its three bytes
		"ab\xe4":       "ab",
		"ab世":          "ab世",
		"":             "",
		"\xff\xff\xff": "\xff\xff\xff", // not a cut character: left as is
	} {
		if got := string(trimCut([]byte(in))); got != want {
			t.Errorf("trimCut(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkDecodeRunRequest measures the request path before the runner:
// the bounded, strict JSON decode of a typical run body and its translation
// into a runner request.
func BenchmarkDecodeRunRequest(b *testing.B) {
	body := `{"code":"import sys\nfor line in sys.stdin:\n    print(line.upper())","version":"3.11",` +
		`"stdin":"hello\nworld\n","args":["-v"],"env":{"MODE":"bench"},"timeout_ms":5000,"memory_mb":128,` +
		`"files":[{"path":"lib/util.py","content":"X = 1\n"}]}`
	s := &Server{cfg: Config{MaxBodyBytes: 1 << 20}}
	e := echo.New()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/runtimes/python/run", strings.NewReader(body))
		c := e.NewContext(req, httptest.NewRecorder())
		var rr RunRequest
		if err := s.decode(c, &rr); err != nil {
			b.Fatal(err)
		}
		if _, err := toRunnerRequest("python", rr); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDecodeErrorsSpeakJSON(t *testing.T) {
	// Go 1.27 names the whole path of the field (env.A, files.0.path);
	// earlier releases name the struct field only. Either is a clear answer.
	cases := []struct{ body, want string }{
		{`[1]`, "request body: want a JSON object, got a JSON array"},
		{`{"timeout_ms":"5"}`, `field "timeout_ms": want a JSON integer, got a JSON string`},
		{`{"cpus":"x"}`, `field "cpus": want a JSON number, got a JSON string`},
		{`{"args":"a"}`, `field "args": want a JSON array of strings, got a JSON string`},
		{`{"env":{"A":1}}`, `field "env(\.A)?": want a JSON string, got a JSON number`},
		{`{"command":5}`, `command: want an array of strings or a string`},
		{`{"files":[{"path":1}]}`, `field "files(\.0)?\.path": want a JSON string, got a JSON number`},
	}
	for _, tc := range cases {
		var req RunRequest
		err := json.Unmarshal([]byte(tc.body), &req)
		if err == nil {
			t.Fatalf("%s: decoded", tc.body)
		}
		got := decodeError(err).Error()
		if !regexp.MustCompile(tc.want).MatchString(got) || strings.Contains(got, "api.") || strings.Contains(got, "int64") || strings.Contains(got, "float64") {
			t.Errorf("%s: %q, want %q", tc.body, got, tc.want)
		}
	}
}
