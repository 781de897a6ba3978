package piston

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/policy"
	"github.com/runhost/runhost/internal/runner"
	"github.com/runhost/runhost/shared"
)

// testEntries is the catalog of the runtimes that ship.
func testEntries() []entry {
	desc := func(name string, aliases []string, caps []shared.Capability, versions ...string) runner.RuntimeInfo {
		d := shared.Description{Name: name, Aliases: aliases, Capabilities: caps}
		for _, v := range versions {
			d.Versions = append(d.Versions, shared.Version{Version: v})
		}
		return runner.RuntimeInfo{Description: d}
	}
	std := []shared.Capability{shared.CapStdin, shared.CapArgs, shared.CapFiles}
	return catalog([]runner.RuntimeInfo{
		desc("python", []string{"py", "python3"}, std, "3.11", "3.13"),
		desc("node", []string{"javascript", "js", "nodejs"}, std, "18", "20"),
		desc("shell", []string{"bash", "sh"}, std, "5.2"),
		desc("dockerfile", []string{"docker"}, []shared.Capability{shared.CapDockerfile}, "1"),
		desc("ruby", nil, []shared.Capability{shared.CapFiles}, "3.1", "not-semver"),
	})
}

func TestCatalog(t *testing.T) {
	got := map[string]Runtime{}
	for _, e := range testEntries() {
		got[e.Language+"-"+e.Version] = e.Runtime
	}
	want := map[string]Runtime{
		"python-3.11.0":     {Language: "python", Version: "3.11.0", Aliases: []string{"py", "py3", "python3"}},
		"python-3.13.0":     {Language: "python", Version: "3.13.0", Aliases: []string{"py", "py3", "python3"}},
		"javascript-18.0.0": {Language: "javascript", Version: "18.0.0", Aliases: []string{"node-javascript", "node-js", "javascript", "js", "node", "nodejs"}, Runtime: "node"},
		"javascript-20.0.0": {Language: "javascript", Version: "20.0.0", Aliases: []string{"node-javascript", "node-js", "javascript", "js", "node", "nodejs"}, Runtime: "node"},
		"bash-5.2.0":        {Language: "bash", Version: "5.2.0", Aliases: []string{"sh", "shell"}},
		"ruby-3.1.0":        {Language: "ruby", Version: "3.1.0", Aliases: []string{}},
	}
	if len(got) != len(want) {
		t.Errorf("catalog has %d entries, want %d: %v", len(got), len(want), got)
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("no %s", k)
			continue
		}
		if gj, wj := mustJSON(t, g), mustJSON(t, w); gj != wj {
			t.Errorf("%s: %s, want %s", k, gj, wj)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMatch(t *testing.T) {
	entries := testEntries()
	cases := []struct {
		lang, selector string
		want           string // runhost name-version, "" for none
	}{
		{"python", "*", "python-3.13"},
		{"python", "x", "python-3.13"},
		{"python", "3.x", "python-3.13"},
		{"python", "3", "python-3.13"},
		{"python", "3.11", "python-3.11"},
		{"python", "3.11.x", "python-3.11"},
		{"python", "3.11.0", "python-3.11"},
		{"python", "3.11.2", ""},
		{"python", "~3.11", "python-3.11"},
		{"python", "^3.11", "python-3.13"},
		{"python", ">=3.12 <4", "python-3.13"},
		{"python", "<3.12", "python-3.11"},
		{"python", "3.1", ""}, // never a prefix of 3.11
		{"python", "2", ""},
		{"python", "latest", ""}, // not a range
		{"py3", "3.13", "python-3.13"},
		{"javascript", "*", "node-20"},
		{"js", "18", "node-18"},
		{"node-js", "18.x || 20.x", "node-20"},
		{"node", "18", "node-18"},
		{"bash", "5.2", "shell-5.2"},
		{"sh", "*", "shell-5.2"},
		{"shell", "5", "shell-5.2"},
		{"dockerfile", "*", ""},
		{"cobol", "*", ""},
		{"Python", "*", ""}, // Piston compares exactly
	}
	for _, tc := range cases {
		t.Run(tc.lang+" "+tc.selector, func(t *testing.T) {
			e, ok := match(entries, tc.lang, tc.selector)
			got := ""
			if ok {
				got = e.name + "-" + e.version
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNewJobMessages(t *testing.T) {
	const ok = `"language":"python","version":"3.11"`
	const code = `"files":[{"content":"print(1)"}]`
	cases := []struct {
		name, body, want string
	}{
		{"no language", `{}`, "language is required as a string"},
		{"language null", `{"language":null}`, "language is required as a string"},
		{"language a number", `{"language":1}`, "language is required as a string"},
		{"empty language", `{"language":""}`, "language is required as a string"},
		{"no version", `{"language":"python"}`, "version is required as a string"},
		{"version a number", `{"language":"python","version":3}`, "version is required as a string"},
		{"no files", `{` + ok + `}`, "files is required as an array"},
		{"files an object", `{` + ok + `,"files":{"content":"x"}}`, "files is required as an array"},
		{"file not an object", `{` + ok + `,"files":["print(1)"]}`, "files[0].content is required as a string"},
		{"content missing", `{` + ok + `,"files":[{"content":"a"},{}]}`, "files[1].content is required as a string"},
		{"content a number", `{` + ok + `,"files":[{"content":1}]}`, "files[0].content is required as a string"},
		{"unknown language", `{"language":"cobol","version":"1",` + code + `}`, "cobol-1 runtime is unknown"},
		{"unknown version", `{"language":"python","version":"4",` + code + `}`, "python-4 runtime is unknown"},
		{"no utf8 file", `{` + ok + `,"files":[{"content":"00","encoding":"hex"}]}`, "files must include at least one utf8 encoded file"},
		{"utf-8 is not utf8 for the check", `{` + ok + `,"files":[{"content":"x","encoding":"utf-8"}]}`, "files must include at least one utf8 encoded file"},
		{"run_timeout a string", `{` + ok + `,` + code + `,"run_timeout":"1"}`, "If specified, run_timeout must be a number"},
		{"compile_memory_limit a bool", `{` + ok + `,` + code + `,"compile_memory_limit":true}`, "If specified, compile_memory_limit must be a number"},
		{"run_cpu_time an object", `{` + ok + `,` + code + `,"run_cpu_time":{}}`, "If specified, run_cpu_time must be a number"},
		{"negative run_timeout", `{` + ok + `,` + code + `,"run_timeout":-1}`, "run_timeout must be non-negative"},
		{"negative run_memory_limit", `{` + ok + `,` + code + `,"run_memory_limit":-5}`, "run_memory_limit must be non-negative"},
		{"stdin a number", `{` + ok + `,` + code + `,"stdin":5}`, "stdin must be a string"},
		{"args a string", `{` + ok + `,` + code + `,"args":"a b"}`, "args must be an array of strings"},
		{"name a number", `{` + ok + `,"files":[{"name":5,"content":"x"}]}`, "files[0].name must be a string"},
		{"name escapes", `{` + ok + `,"files":[{"name":"/etc/x","content":"x"}]}`, "files[0].name: "},
		{"duplicate name", `{` + ok + `,"files":[{"name":"a.py","content":"x"},{"name":"a.py","content":"y"}]}`, `files[1]: "a.py" is given twice`},
		{"bad base64", `{` + ok + `,"files":[{"content":"x"},{"content":"%%%","encoding":"base64"}]}`, "files[1].content: invalid base64: "},
		{"bad hex", `{` + ok + `,"files":[{"content":"x"},{"content":"abc","encoding":"hex"}]}`, "files[1].content: invalid hex: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var req jobRequest
			if err := json.Unmarshal([]byte(tc.body), &req); err != nil {
				t.Fatal(err)
			}
			_, err := newJob(req, testEntries(), false)
			if err == nil {
				t.Fatal("accepted")
			}
			// A want ending in a space is a prefix: the rest is Go's error.
			if got := message(err); got != tc.want && !(strings.HasSuffix(tc.want, " ") && strings.HasPrefix(got, tc.want)) {
				t.Errorf("message %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNewJob(t *testing.T) {
	cases := []struct {
		name        string
		body        string
		interactive bool
		check       func(t *testing.T, j job)
	}{
		{"defaults", `{"language":"py","version":"3","files":[{"content":"print(1)"}]}`, false, func(t *testing.T, j job) {
			r := j.req
			if r.Runtime != "python" || r.Version != "3.13" || r.Entry != "file0.py" || len(r.Files) != 1 || r.Files[0].Path != "file0.py" {
				t.Errorf("request %+v", r)
			}
			if string(r.Stdin) != "\n" || r.Args != nil || r.Limits != (policy.Requested{}) {
				t.Errorf("stdin %q args %v limits %+v: want Piston's newline and defaults", r.Stdin, r.Args, r.Limits)
			}
		}},
		{"interactive stdin is left alone", `{"language":"py","version":"3","stdin":"x","files":[{"content":"print(1)"}]}`, true, func(t *testing.T, j job) {
			if string(j.req.Stdin) != "x" {
				t.Errorf("stdin %q", j.req.Stdin)
			}
		}},
		{"stdin ending in a newline", `{"language":"py","version":"3","stdin":"a\n","files":[{"content":"print(1)"}]}`, false, func(t *testing.T, j job) {
			if string(j.req.Stdin) != "a\n" {
				t.Errorf("stdin %q", j.req.Stdin)
			}
		}},
		{"first utf8 file is the entry; encodings decoded", `{"language":"python","version":"*","files":[
			{"name":"blob","content":"AAH/","encoding":"base64"},
			{"name":"hexed","content":"00ff","encoding":"hex"},
			{"name":"main.py","content":"print(1)","encoding":"whatever"},
			{"name":"lib.py","content":"x = 1"}]}`, false, func(t *testing.T, j job) {
			r := j.req
			if r.Entry != "main.py" {
				t.Errorf("entry %q, want main.py", r.Entry)
			}
			want := map[string]string{"blob": "\x00\x01\xff", "hexed": "\x00\xff", "main.py": "print(1)", "lib.py": "x = 1"}
			for _, f := range r.Files {
				if string(f.Content) != want[f.Path] {
					t.Errorf("%s: %q, want %q", f.Path, f.Content, want[f.Path])
				}
			}
		}},
		{"limits", `{"language":"python","version":"*","files":[{"content":""}],"run_timeout":1500,"run_memory_limit":104857600,"compile_timeout":10000,"compile_memory_limit":-1,"run_cpu_time":3000}`, false, func(t *testing.T, j job) {
			want := policy.Requested{Timeout: 1500 * time.Millisecond, MemoryBytes: 100 << 20}
			if j.req.Limits != want {
				t.Errorf("limits %+v, want %+v", j.req.Limits, want)
			}
		}},
		{"memory -1 and zero mean the default", `{"language":"python","version":"*","files":[{"content":""}],"run_timeout":0,"run_memory_limit":-1}`, false, func(t *testing.T, j job) {
			if j.req.Limits != (policy.Requested{}) {
				t.Errorf("limits %+v", j.req.Limits)
			}
		}},
		{"unknown fields are ignored", `{"language":"python","version":"*","files":[{"content":""}],"compiler_flags":"-O2"}`, false, func(t *testing.T, j job) {}},
		{"args", `{"language":"bash","version":"*","files":[{"content":""}],"args":["a","b c"]}`, false, func(t *testing.T, j job) {
			if fmt.Sprint(j.req.Args) != "[a b c]" || j.entry.Language != "bash" || j.entry.Version != "5.2.0" {
				t.Errorf("args %q entry %+v", j.req.Args, j.entry.Runtime)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var req jobRequest
			if err := json.Unmarshal([]byte(tc.body), &req); err != nil {
				t.Fatal(err)
			}
			j, err := newJob(req, testEntries(), tc.interactive)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, j)
		})
	}
}

func TestLimitMessage(t *testing.T) {
	cases := []struct {
		err  policy.LimitError
		want string
	}{
		{policy.LimitError{Field: "timeout_ms", Msg: "70000 is above the host's maximum of 60000"}, "run_timeout cannot exceed the configured limit of 60000"},
		{policy.LimitError{Field: "timeout_ms", Msg: `70000 is above the maximum RUNHOST_POLICY grants plugin "python" of 5000`}, "run_timeout cannot exceed the configured limit of 5000"},
		{policy.LimitError{Field: "memory_mb", Msg: "4096 is above the host's maximum of 2048"}, "run_memory_limit cannot exceed the configured limit of 2147483648"},
		{policy.LimitError{Field: "memory_mb", Msg: "1 is below the minimum of 6"}, "run_memory_limit cannot be below the configured minimum of 6291456"},
		{policy.LimitError{Field: "memory_mb", Msg: "must not be negative"}, "run_memory_limit: must not be negative"},
		{policy.LimitError{Field: "cpus", Msg: "3 is above the host's maximum of 2"}, "cpus: 3 is above the host's maximum of 2"},
	}
	for _, tc := range cases {
		if got := limitMessage(&tc.err); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.err.Error(), got, tc.want)
		}
	}
}

func TestOutcome(t *testing.T) {
	str := func(p *string) string {
		if p == nil {
			return "null"
		}
		return *p
	}
	num := func(p *int) string {
		if p == nil {
			return "null"
		}
		return fmt.Sprint(*p)
	}
	cases := []struct {
		name                          string
		res                           executor.Result
		code, signal, status, message string
	}{
		{"success", executor.Result{}, "0", "null", "null", "null"},
		{"exit status", executor.Result{ExitCode: 2}, "2", "null", "RE", "Exited with error status 2"},
		{"timeout", executor.Result{TimedOut: true, ExitCode: 137}, "null", "SIGKILL", "TO", "Time limit exceeded (wall clock)"},
		{"out of memory", executor.Result{OOMKilled: true, ExitCode: 137}, "null", "SIGKILL", "SG", "Caught fatal signal 9 (out of memory)"},
		{"killed", executor.Result{ExitCode: 137}, "null", "SIGKILL", "SG", "Caught fatal signal 9"},
		{"segfault", executor.Result{ExitCode: 139}, "null", "SIGSEGV", "SG", "Caught fatal signal 11"},
		{"stdout cap", executor.Result{StdoutTruncated: true, OutputLimited: true, ExitCode: 137}, "null", "SIGKILL", "OL", "stdout length exceeded"},
		{"stderr cap", executor.Result{StderrTruncated: true, OutputLimited: true, ExitCode: 137}, "null", "SIGKILL", "EL", "stderr length exceeded"},
		{"stdout cut, not stopped", executor.Result{StdoutTruncated: true}, "0", "null", "OL", "stdout length exceeded"},
		{"status beyond signals", executor.Result{ExitCode: 255}, "255", "null", "RE", "Exited with error status 255"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := outcomeOf(tc.res)
			got := fmt.Sprintf("%s %s %s %s", num(o.code), str(o.signal), str(o.status), str(o.message))
			want := fmt.Sprintf("%s %s %s %s", tc.code, tc.signal, tc.status, tc.message)
			if got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func TestStageOutput(t *testing.T) {
	res := runner.Result{Result: executor.Result{Stdout: []byte("a\nc\n"), Stderr: []byte("b\n"), Duration: 1500 * time.Millisecond}}
	if s := stage(res, []byte("a\nb\nc\n")); s.Output != "a\nb\nc\n" || *s.WallTime != 1500 || s.CPUTime != nil || s.Memory != nil {
		t.Errorf("streamed: %+v", s)
	}
	// Nothing streamed (an executor that does not stream): no order known.
	if s := stage(res, nil); s.Output != "a\nc\nb\n" {
		t.Errorf("not streamed: output %q", s.Output)
	}
}

func TestValidSignal(t *testing.T) {
	for sig, want := range map[string]bool{"SIGKILL": true, "SIGTERM": true, "SIGINT": true, "SIGSYS": true, "KILL": false, "": false, "SIGNOPE": false, "9": false} {
		if validSignal(sig) != want {
			t.Errorf("validSignal(%q) = %v", sig, !want)
		}
	}
}
