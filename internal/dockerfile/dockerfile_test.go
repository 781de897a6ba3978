package dockerfile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const base = "FROM runhost/shell:bookworm\n"

func TestRefused(t *testing.T) {
	const sum = "sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d"
	tests := []struct {
		name, src string
		args      map[string]string
		line      int
	}{
		{"ADD http", base + "ADD http://127.0.0.1:8080/x /x\n", nil, 2},
		{"ADD https", base + "ADD https://example.com/x /x\n", nil, 2},
		{"ADD ftp", base + "ADD ftp://h/x /x\n", nil, 2},
		{"ADD file scheme", base + "ADD file:///etc/passwd /x\n", nil, 2},
		{"ADD upper-case scheme, lower-case instruction", base + "add HTTP://h/x /x\n", nil, 2},
		{"ADD JSON form", base + `ADD ["http://h/x", "/x"]` + "\n", nil, 2},
		{"ADD second source", base + "ADD local.txt http://h/y /d/\n", nil, 2},
		{"ADD git@", base + "ADD git@github.com:o/r.git /src\n", nil, 2},
		{"ADD scp-like without .git", base + "ADD deploy@10.0.0.1:repo /src\n", nil, 2},
		{"ADD github.com", base + "ADD github.com/o/r.git /src\n", nil, 2},
		{"ADD GitHub.com", base + "ADD GitHub.com/o/r /src\n", nil, 2},
		{"ADD https git with fragment", base + "ADD https://github.com/o/r.git#main:dir /src\n", nil, 2},
		{"ADD git scheme", base + "ADD git://h/r.git /src\n", nil, 2},
		{"ADD --checksum with URL", base + "ADD --checksum=" + sum + " http://h/x /x\n", nil, 2},
		{"ADD --checksum alone", base + "ADD --checksum=" + sum + " x /x\n", nil, 2},
		{"ADD --keep-git-dir", base + "ADD --keep-git-dir=true https://h/r.git /src\n", nil, 2},
		{"ADD through a variable", base + "ARG URL=http://h/x\nADD $URL /x\n", nil, 3},
		{"ADD through braces", base + "ARG URL\nADD ${URL} /x\n", map[string]string{"URL": "http://h/x"}, 3},
		{"ADD through ENV", base + "ENV U=http://h/x\nADD ${U:-x} /x\n", nil, 3},
		{"ADD over continuation lines", base + "ADD \\\n  http://h/x \\\n  /x\n", nil, 2},
		{"COPY of a URL", base + "COPY http://h/x /x\n", nil, 2},
		{"ADD with an escaped colon", base + "ADD http\\://h/x /x\n", nil, 2},
		{"ADD with quotes splitting the scheme", base + "ADD 'http:'//h/x /x\n", nil, 2},
		{"ADD quoted", base + "ADD \"http://h/x\" /x\n", nil, 2},
		{"ADD with an escaped @", base + "ADD git\\@h:r /s\n", nil, 2},
		{"ADD with the backtick escape", "# escape=`\n" + base + "ADD http`://h/x /x\n", nil, 3},
		{"secret mount, escaped", base + "RUN --mount=type=s\\ecret,id=x true\n", nil, 2},
		{"FROM through a platform argument", "FROM runhost/python:3.11-${TARGETARCH}\n", nil, 1},
		{"FROM through a variant", "FROM runhost/python:3.11${TARGETVARIANT:+-evil}\n", nil, 1},
		{"FROM through an ARG made of a platform argument", "ARG A=${BUILDARCH}\nFROM runhost/python:$A\n", nil, 2},
		{"FROM through a redeclared platform argument", "ARG TARGETOS\nFROM runhost/python:$TARGETOS\n", nil, 2},
		{"syntax", "# syntax=docker/dockerfile:1\n" + base, nil, 1},
		{"syntax without space", "#syntax=docker/dockerfile:1\n" + base, nil, 1},
		{"syntax upper case with spaces", "#   SYNTAX  =  evil/frontend  \n" + base, nil, 1},
		{"syntax after escape", "# escape=`\n# syntax=evil/frontend\n" + base, nil, 2},
		{"syntax after a BOM", "\ufeff# syntax=evil/frontend\n" + base, nil, 1},
		{"syntax after a shebang", "#!/usr/bin/env buildctl\n# syntax=evil/frontend\n" + base, nil, 2},
		{"syntax after check", "# check=skip=all\n# syntax=evil/frontend\n" + base, nil, 2},
		{"syntax C-style", "//syntax=evil/frontend\n" + base, nil, 1},
		{"secret mount", base + "RUN --mount=type=secret,id=x cat /run/secrets/x\n", nil, 2},
		{"ssh mount", base + "RUN --mount=type=ssh ssh-add -l\n", nil, 2},
		{"ssh mount upper case", base + "RUN --mount=TYPE=SSH true\n", nil, 2},
		{"host network", base + "RUN --network=host curl x\n", nil, 2},
		{"insecure", base + "RUN --security=insecure id\n", nil, 2},
		{"device", base + "RUN --device=nvidia.com/gpu=all true\n", nil, 2},
		{"BUILDKIT build arg", base, map[string]string{"BUILDKIT_SYNTAX": "evil/frontend"}, 0},
		{"buildkit build arg, lower case", base, map[string]string{"buildkit_context_keep_git_dir": "1"}, 0},
		{"BUILDKIT meta ARG", "ARG BUILDKIT_SYNTAX=evil/frontend\n" + base, nil, 1},
		{"BUILDKIT stage ARG", base + "ARG BUILDKIT_SANDBOX_HOSTNAME=x\n", nil, 2},
		{"ONBUILD ADD of a URL", base + "ONBUILD ADD http://h/x /x\n", nil, 2},
		{"ONBUILD COPY --from an image", base + "ONBUILD COPY --from=runhost/egress:1 / /x\n", nil, 2},
		{"ONBUILD COPY --from a stage", base + "ONBUILD COPY --from=0 / /x\n", nil, 2},
		{"ONBUILD RUN --mount from", base + "ONBUILD RUN --mount=from=runhost/owner:x,target=/o true\n", nil, 2},
		{"ONBUILD secret", base + "onbuild run --mount=type=secret,id=x true\n", nil, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), tt.args)
			var de *Error
			if !errors.Is(err, ErrRefused) || !errors.As(err, &de) {
				t.Fatalf("error %v, want a refusal", err)
			}
			if de.Line != tt.line {
				t.Errorf("line %d, want %d (%v)", de.Line, tt.line, err)
			}
			if tt.line > 0 && !strings.HasPrefix(err.Error(), "dockerfile line ") {
				t.Errorf("message does not name the line: %v", err)
			}
		})
	}
}

func TestInvalid(t *testing.T) {
	tests := []struct {
		name, src string
		line      int
	}{
		{"empty", "", 0},
		{"comments only", "# nothing\n", 1},
		{"NUL", "FROM \x00\n", 0},
		{"not UTF-8", "FROM a\xff\n", 0},
		{"unknown instruction", base + "FOO bar\n", 2},
		{"instruction before FROM", "RUN true\n" + base, 1},
		{"variable in COPY --from", base + "ARG S=0\nCOPY --from=$S / /x\n", 3},
		{"COPY --from a later index", base + "COPY --from=1 / /x\nFROM runhost/shell:bookworm\n", 2},
		{"COPY --from itself", base + "COPY --from=0 / /x\n", 2},
		{"mount type through a variable", base + "ARG T=secret\nRUN --mount=type=$T,id=x true\n", 3},
		{"unknown mount type", base + "RUN --mount=type=weird true\n", 2},
		{"mount from through a variable", base + "RUN --mount=from=$X,target=/x true\n", 2},
		{"unknown RUN flag", base + "RUN --weird true\n", 2},
		{"unknown COPY flag", base + "COPY --weird=1 a b\n", 2},
		{"FROM empty after expansion", "ARG X\nFROM ${X}\n", 2},
		{"FROM with two words", "FROM a b\n", 1},
		{"unterminated heredoc", base + "RUN <<EOF\necho\n", 2},
		{"duplicate stage name", "FROM runhost/shell:bookworm AS a\nFROM runhost/shell:bookworm AS a\n", 2},
		{"invalid stage name", "FROM runhost/shell:bookworm AS 1a\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), nil)
			var de *Error
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &de) {
				t.Fatalf("error %v, want invalid", err)
			}
			if de.Line != tt.line {
				t.Errorf("line %d, want %d (%v)", de.Line, tt.line, err)
			}
		})
	}
}

func TestImagesAndStages(t *testing.T) {
	type stage struct {
		name, base string
		baseStage  int
	}
	tests := []struct {
		name   string
		src    string
		args   map[string]string
		images []Image
		stages []stage
	}{
		{
			name:   "one image",
			src:    "FROM runhost/python:3.11\nCMD [\"python3\"]\n",
			images: []Image{{"runhost/python:3.11", 1, UseFrom}},
			stages: []stage{{"", "runhost/python:3.11", -1}},
		},
		{
			name:   "ARG default",
			src:    "ARG V=3.11\nFROM runhost/python:${V}\n",
			images: []Image{{"runhost/python:3.11", 2, UseFrom}},
		},
		{
			name:   "build arg overrides the default",
			src:    "ARG V=3.11\nFROM runhost/python:$V\n",
			args:   map[string]string{"V": "3.13"},
			images: []Image{{"runhost/python:3.13", 2, UseFrom}},
		},
		{
			name:   "undeclared build args do not reach FROM",
			src:    "FROM runhost/python:3.1${V}\n",
			args:   map[string]string{"V": "3"},
			images: []Image{{"runhost/python:3.1", 1, UseFrom}},
		},
		{
			name:   "ARG built from ARG, with a default operator",
			src:    "ARG R=runhost\nARG IMG=${R}/python\nARG V\nFROM ${IMG}:${V:-3.11}\n",
			images: []Image{{"runhost/python:3.11", 4, UseFrom}},
		},
		{
			name:   "platform arguments",
			src:    "FROM --platform=$BUILDPLATFORM runhost/shell:bookworm AS build\n",
			images: []Image{{"runhost/shell:bookworm", 1, UseFrom}},
			stages: []stage{{"build", "runhost/shell:bookworm", -1}},
		},
		{
			name: "multi-stage, lower case, stage names case-insensitive",
			src: "from runhost/node:20 as Build\nrun echo\n" +
				"FROM runhost/python:3.11\n" +
				"COPY --from=build /a /a\nCOPY --from=BUILD /a /b\nCOPY --from=0 /a /c\n" +
				"COPY --from=runhost/node:18 /x /x\n" +
				"RUN --mount=from=build,target=/b --mount=type=cache,target=/c --mount=type=tmpfs,target=/t true\n" +
				"RUN --mount=type=bind,from=runhost/shell:bookworm,target=/s true\n" +
				"FROM build AS again\nFROM scratch\nCOPY --from=again /a /a\n",
			images: []Image{
				{"runhost/node:20", 1, UseFrom}, {"runhost/python:3.11", 3, UseFrom},
				{"runhost/node:18", 7, UseCopyFrom}, {"runhost/shell:bookworm", 9, UseMountFrom},
			},
			stages: []stage{{"build", "runhost/node:20", -1}, {"", "runhost/python:3.11", -1}, {"again", "build", 0}, {"", "scratch", -1}},
		},
		{
			name:   "a later stage's name is an image",
			src:    "FROM runhost/shell:bookworm\nCOPY --from=later / /x\nFROM runhost/shell:bookworm AS later\n",
			images: []Image{{"runhost/shell:bookworm", 1, UseFrom}, {"later", 2, UseCopyFrom}},
		},
		{
			name:   "an image named twice is listed once",
			src:    "FROM runhost/shell:bookworm\nFROM runhost/shell:bookworm\nCOPY --from=runhost/shell:bookworm / /x\n",
			images: []Image{{"runhost/shell:bookworm", 1, UseFrom}},
		},
		{
			name:   "a platform argument given as a build argument",
			src:    "FROM runhost/python:${TARGETARCH}\n",
			args:   map[string]string{"TARGETARCH": "3.11"},
			images: []Image{{"runhost/python:3.11", 1, UseFrom}},
		},
		{
			name:   "an ARG that hides a platform argument",
			src:    "ARG TARGETARCH=3.11\nFROM runhost/python:${TARGETARCH}\n",
			images: []Image{{"runhost/python:3.11", 2, UseFrom}},
		},
		{
			name:   "mount options with variables and quotes",
			src:    base + "RUN --mount=type=cache,target=$HOME/.cache --mount=type=\"tmpfs\",target=/t true\n",
			images: []Image{{"runhost/shell:bookworm", 1, UseFrom}},
		},
		{
			name:   "scratch",
			src:    "FROM scratch\nCOPY a /a\n",
			images: nil,
		},
		{
			name:   "escape directive and continuations",
			src:    "# escape=`\nFROM runhost/shell:bookworm\nRUN echo a `\n  b\nCOPY C:\\x /x\n",
			images: []Image{{"runhost/shell:bookworm", 2, UseFrom}},
		},
		{
			name: "what fetches nothing is allowed",
			src: base + "ADD local.tar.gz /x\nADD --chown=1000:1000 --chmod=644 a b /d/\nADD --link --unpack=false a.tar /t\n" +
				"COPY --chown=$U a /b\nCOPY --parents --exclude=*.tmp a/ /d/\nRUN --network=none true\nRUN --network=default true\n" +
				"RUN --security=sandbox true\nADD https.txt /x\nCOPY a:b /c\n# syntax=late comment\nONBUILD RUN true\nONBUILD COPY a /b\n",
			images: []Image{{"runhost/shell:bookworm", 1, UseFrom}},
		},
		{
			name:   "heredocs carry text, not instructions",
			src:    base + "RUN <<EOF\nADD http://h/x /y\nEOF\nCOPY <<EOF /x\nhttp://h/y\nEOF\nADD <<-EOT /z\n\tgit@h:r\n\tEOT\n",
			images: []Image{{"runhost/shell:bookworm", 1, UseFrom}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.src), tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Images, tt.images) {
				t.Errorf("images %+v, want %+v", s.Images, tt.images)
			}
			if tt.stages != nil {
				var got []stage
				for _, st := range s.Stages {
					got = append(got, stage{st.Name, st.Base, st.BaseStage})
				}
				if !reflect.DeepEqual(got, tt.stages) {
					t.Errorf("stages %+v, want %+v", got, tt.stages)
				}
			}
		})
	}
}

func TestHeredocsAreNoticed(t *testing.T) {
	s, err := Parse([]byte(base+"RUN <<EOF\ntrue\nEOF\n"), nil)
	if err != nil || !s.Heredocs {
		t.Fatalf("%v %+v", err, s)
	}
	s, err = Parse([]byte(base+"RUN echo '<<EOF'\n"), nil)
	if err != nil || s.Heredocs {
		t.Fatalf("quoted <<: %v %+v", err, s)
	}
}

func TestHasCommand(t *testing.T) {
	type cfg struct {
		ep, cmd []string
		known   bool
	}
	none := cfg{known: true}
	withCmd := cfg{cmd: []string{"bash"}, known: true}
	withEP := cfg{ep: []string{"/entry"}, known: true}
	unknown := cfg{}
	tests := []struct {
		name      string
		src       string
		image     cfg
		has, know bool
	}{
		{"no command anywhere", base + "RUN true\n", none, false, true},
		{"the base image's CMD", base, withCmd, true, true},
		{"the base image's ENTRYPOINT", base, withEP, true, true},
		{"CMD", base + `CMD ["a"]`, none, true, true},
		{"shell-form CMD", base + "CMD echo hi", none, true, true},
		{"empty CMD", base + "CMD []", none, false, true},
		{"empty CMD over the base's", base + "CMD []", withCmd, false, true},
		{"ENTRYPOINT resets the base's CMD", base + "ENTRYPOINT []", withCmd, false, true},
		{"ENTRYPOINT keeps the stage's own CMD", base + "CMD [\"a\"]\nENTRYPOINT []", none, true, true},
		{"ENTRYPOINT", base + `ENTRYPOINT ["e"]`, none, true, true},
		{"from an earlier stage", base + "CMD [\"a\"]\nFROM runhost/python:3.11 AS x\nFROM 0\n", none, false, true},
		{"chain of stages", "FROM runhost/shell:bookworm AS a\nCMD [\"a\"]\nFROM a AS b\nRUN true\nFROM b\n", none, true, true},
		{"scratch", "FROM scratch\nCOPY a /a\n", withCmd, false, true},
		{"unknown image config", base, unknown, false, false},
		{"unknown image config, own CMD", base + "CMD [\"a\"]", unknown, true, true},
		{"only the final stage counts", base + "CMD [\"a\"]\nFROM scratch\n", none, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.src), nil)
			if err != nil {
				t.Fatal(err)
			}
			has, known := s.HasCommand(func(string) ([]string, []string, bool) { return tt.image.ep, tt.image.cmd, tt.image.known })
			if has != tt.has || known != tt.know {
				t.Errorf("HasCommand = %v, %v; want %v, %v", has, known, tt.has, tt.know)
			}
		})
	}
}

func TestParserPanicsAreErrors(t *testing.T) {
	// Whatever the input, Parse returns; never a panic.
	for _, src := range []string{"\x00", "FROM \x00", "FROM a\nRUN --mount=,,,,= true", "FROM a\nHEALTHCHECK --interval=x CMD true", strings.Repeat("FROM a\n", 1000)} {
		_, _ = Parse([]byte(src), nil)
	}
}

// BenchmarkParse is the rules' cost per build request: a typical
// multi-stage Dockerfile.
func BenchmarkParse(b *testing.B) {
	src := []byte("ARG V=3.11\nFROM runhost/python:${V} AS build\nWORKDIR /app\nCOPY requirements.txt .\n" +
		"RUN --mount=type=cache,target=/root/.cache pip install -r requirements.txt\nCOPY . .\n" +
		"FROM runhost/python:${V}\nCOPY --from=build /app /app\nWORKDIR /app\nENV PYTHONUNBUFFERED=1\nCMD [\"python3\", \"app.py\"]\n")
	for b.Loop() {
		if _, err := Parse(src, map[string]string{"V": "3.13"}); err != nil {
			b.Fatal(err)
		}
	}
}
