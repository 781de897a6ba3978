package dockerfile

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

const (
	idPython = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	idNode   = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

func TestPinClassic(t *testing.T) {
	pins := map[string]string{"runhost/python:3.11": idPython, "runhost/node:20": idNode, "runhost/python:3.13": idNode}
	tests := []struct {
		name, src, want string
		args            map[string]string
	}{
		{
			name: "FROM and COPY --from name the pinned images",
			src:  "FROM runhost/python:3.11\nCOPY --from=runhost/node:20 /usr/local/bin/node /n\nCMD [\"python3\"]\n",
			want: "FROM " + idPython + "\nCOPY --from=" + idNode + " /usr/local/bin/node /n\nCMD [\"python3\"]\n",
		},
		{
			name: "ARGs are expanded, stages keep their names",
			src:  "ARG V=3.11\nfrom runhost/python:${V} as Build\nRUN true\nFROM build\nCOPY --from=BUILD /a /b\nCOPY --from=0 /a /c\n",
			want: "ARG V=3.11\nFROM " + idPython + " AS build\nRUN true\nFROM build\nCOPY --from=BUILD /a /b\nCOPY --from=0 /a /c\n",
		},
		{
			name: "a build argument picks the image",
			src:  "ARG V=3.11\nFROM runhost/python:$V\n",
			args: map[string]string{"V": "3.13"},
			want: "ARG V=3.11\nFROM " + idNode + "\n",
		},
		{
			name: "other flags are kept, quoted where needed",
			src:  "FROM scratch\nCOPY --chown=\"1000:1000\" --from=runhost/node:20 --chmod=644 --exclude=\"a b\" /a /b\n",
			want: "FROM scratch\nCOPY --chown=1000:1000 --from=" + idNode + " --chmod=644 --exclude=\"a b\" /a /b\n",
		},
		{
			name: "a rest that starts with -- keeps its terminator",
			src:  "FROM scratch\nCOPY --from=runhost/node:20 -- --weird /d\n",
			want: "FROM scratch\nCOPY --from=" + idNode + " -- --weird /d\n",
		},
		{
			name: "platform flag",
			src:  "FROM --platform=$BUILDPLATFORM runhost/python:3.11 AS b\n",
			want: "FROM " + idPython + " AS b\n",
		},
		{
			name: "continuations and comments become one line each",
			src:  "FROM runhost/python:3.11\nRUN echo a \\\n# a comment\n  b \\\n\n  c\n",
			want: "FROM " + idPython + "\nRUN echo a   b   c\n",
		},
		{
			name: "escape directive is kept",
			src:  "# escape=`\nFROM runhost/python:3.11\nRUN echo a `\n  b\nCOPY C:\\x /x\n",
			want: "# escape=`\nFROM " + idPython + "\nRUN echo a   b\nCOPY C:\\x /x\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PinClassic([]byte(tt.src), tt.args, pins)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tt.want)
			}
			// The pinned file reads back as the same instructions.
			orig, pinned := commands(t, tt.src, tt.args), commands(t, string(got), tt.args)
			if len(orig) != len(pinned) {
				t.Fatalf("%d instructions, pinned %d", len(orig), len(pinned))
			}
			for i := range orig {
				if r, ok := orig[i].(*instructions.RunCommand); ok {
					if !reflect.DeepEqual(r.CmdLine, pinned[i].(*instructions.RunCommand).CmdLine) {
						t.Errorf("RUN %q became %q", r.CmdLine, pinned[i].(*instructions.RunCommand).CmdLine)
					}
				}
				if c, ok := orig[i].(*instructions.CopyCommand); ok {
					p := pinned[i].(*instructions.CopyCommand)
					if !reflect.DeepEqual(c.SourcePaths, p.SourcePaths) || c.DestPath != p.DestPath || c.Chown != p.Chown || !reflect.DeepEqual(c.ExcludePatterns, p.ExcludePatterns) {
						t.Errorf("COPY %+v became %+v", c, p)
					}
				}
			}
		})
	}
}

func commands(t *testing.T, src string, args map[string]string) []instructions.Command {
	t.Helper()
	s, err := Parse([]byte(src), args)
	if err != nil {
		t.Fatal(err)
	}
	var out []instructions.Command
	for _, st := range s.Stages {
		out = append(out, st.commands...)
	}
	return out
}

func TestPinClassicRefuses(t *testing.T) {
	pins := map[string]string{"runhost/python:3.11": idPython}
	if _, err := PinClassic([]byte("FROM runhost/python:3.11\nRUN <<EOF\nADD http://h/x /x\nEOF\n"), nil, pins); !errors.Is(err, ErrRefused) {
		t.Errorf("heredoc: %v", err)
	}
	if _, err := PinClassic([]byte("FROM runhost/node:20\n"), nil, pins); err == nil || !strings.Contains(err.Error(), "runhost/node:20") {
		t.Errorf("unpinned image: %v", err)
	}
	if _, err := PinClassic([]byte("FROM runhost/python:3.11\nCOPY --from=runhost/node:20 a b\n"), nil, pins); err == nil {
		t.Errorf("unpinned COPY --from: %v", err)
	}
	if _, err := PinClassic([]byte("# syntax=x\nFROM runhost/python:3.11\n"), nil, pins); !errors.Is(err, ErrRefused) {
		t.Errorf("rules apply: %v", err)
	}
}

func TestSplitFlags(t *testing.T) {
	tests := []struct {
		line  string
		flags []string
		rest  string
	}{
		{"COPY a b", nil, "a b"},
		{"COPY --from=x a b", []string{"--from=x"}, "a b"},
		{`COPY --chown="a b" --link a b`, []string{"--chown=a b", "--link"}, "a b"},
		{`COPY --chown=a\ b a`, []string{"--chown=a b"}, "a"},
		{"COPY --from=x -- --a b", []string{"--from=x"}, "--a b"},
		{"COPY --from=x", []string{"--from=x"}, ""},
		{`COPY --x="" a`, []string{"--x="}, "a"},
		{`  copy   --from=x   ["a", "b"]`, []string{"--from=x"}, `["a", "b"]`},
	}
	for _, tt := range tests {
		flags, rest := splitFlags(tt.line, '\\')
		if !reflect.DeepEqual(flags, tt.flags) || rest != tt.rest {
			t.Errorf("splitFlags(%q) = %q, %q; want %q, %q", tt.line, flags, rest, tt.flags, tt.rest)
		}
	}
}
