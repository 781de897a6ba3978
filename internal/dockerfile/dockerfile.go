// Package dockerfile reads a Dockerfile with BuildKit's own parser and says
// what building it would reach outside its context: the images of every
// stage, COPY --from and RUN --mount, and whether the final stage has a
// command. It refuses, naming the line, everything that would make the
// builder fetch on the request's behalf (ADD of URLs and git sources,
// `# syntax=` frontends, BuildKit's BUILDKIT_* switches), ask for what no
// build gets (secrets, SSH agents, devices, the host's network, insecure
// mode), or that it cannot reason about (variables in ADD sources,
// unparseable input). Whether an image is allowed is the policy's decision,
// not this package's.
package dockerfile

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

var (
	// ErrRefused marks a Dockerfile that asks for something builds never get.
	ErrRefused = errors.New("dockerfile refused")
	// ErrInvalid marks a Dockerfile that does not parse.
	ErrInvalid = errors.New("dockerfile invalid")
)

// Error is a Dockerfile the host will not build, with the line to blame.
type Error struct {
	Line int // 1-based; 0 when no line is to blame (build arguments)
	Msg  string
	kind error // ErrRefused or ErrInvalid
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("dockerfile line %d: %s", e.Line, e.Msg)
	}
	return "dockerfile: " + e.Msg
}

// Is makes errors.Is(err, ErrRefused) or ErrInvalid hold.
func (e *Error) Is(target error) bool { return target == e.kind }

func refused(line int, format string, args ...any) error {
	return &Error{Line: line, Msg: fmt.Sprintf(format, args...), kind: ErrRefused}
}

func invalid(line int, format string, args ...any) error {
	return &Error{Line: line, Msg: fmt.Sprintf(format, args...), kind: ErrInvalid}
}

// How an instruction names an image.
const (
	UseFrom      = "FROM"
	UseCopyFrom  = "COPY --from"
	UseMountFrom = "RUN --mount from"
)

// Image is an image the Dockerfile names outside its own stages.
type Image struct {
	// Name is the reference as the builder looks it up: as written, after
	// ARG expansion for FROM. It is not normalised: "python" and
	// "python:latest" are two names of one image.
	Name string
	Line int    // of the first instruction naming it
	Use  string // of that instruction: UseFrom, UseCopyFrom, UseMountFrom
}

// Stage is one FROM and the instructions after it.
type Stage struct {
	Name      string // lower case as BuildKit keeps it; empty when unnamed
	Base      string // the base after ARG expansion: an image, an earlier stage or "scratch"
	BaseStage int    // index of the earlier stage Base names; -1 for an image or scratch
	Platform  string // the --platform flag as written
	Line      int

	commands []instructions.Command
}

// Summary is what the host needs to know about a Dockerfile.
type Summary struct {
	Stages []Stage
	// Images are the images the Dockerfile names, each once, in order.
	Images []Image
	// Heredocs is set when an instruction carries a heredoc.
	Heredocs bool
	// EscapeToken is the parser's escape character (\ or `).
	EscapeToken rune

	ast *parser.Node
	lex *shell.Lex
	// copyImage holds, by node, the image a COPY --from names.
	copyImage map[*parser.Node]string
}

// buildArgPrefix names BuildKit's own switches (BUILDKIT_SYNTAX picks a
// frontend image, BUILDKIT_CONTEXT_KEEP_GIT_DIR, ...): never a request's.
const buildArgPrefix = "BUILDKIT_"

// Parse reads src with BuildKit's parser, expands the ARGs of FROM lines
// with buildArgs as BuildKit does, and applies the rules. The error is an
// *Error (ErrRefused or ErrInvalid) naming the line.
func Parse(src []byte, buildArgs map[string]string) (s *Summary, err error) {
	defer func() {
		// The parser is not ours and the input is hostile: a panic in it is
		// a Dockerfile the host does not understand, not a crash.
		if r := recover(); r != nil {
			s, err = nil, invalid(0, "the parser failed on this input: %v", r)
		}
	}()
	for name := range buildArgs {
		if strings.HasPrefix(strings.ToUpper(name), buildArgPrefix) {
			return nil, refused(0, "build argument %s configures BuildKit itself (%s* arguments pick frontends and sources); it is not allowed", name, buildArgPrefix)
		}
	}
	// Text only: the shell lexer reports NUL and bad UTF-8 on stderr.
	if !utf8.Valid(src) || bytes.IndexByte(src, 0) >= 0 {
		return nil, invalid(0, "not UTF-8 text")
	}
	if _, _, loc, ok := parser.DetectSyntax(src); ok {
		return nil, refused(lineOf(loc), "a syntax directive is not allowed: it names a frontend image the builder would fetch from a registry; runhost builds with its own Dockerfile frontend (remove the `# syntax=` line)")
	}
	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		return nil, invalid(lineOfErr(err), "%s", cleanErr(err))
	}
	s = &Summary{ast: res.AST, EscapeToken: res.EscapeToken, copyImage: map[*parser.Node]string{}}
	if err := s.read(buildArgs); err != nil {
		return nil, err
	}
	return s, nil
}

// read walks the instructions: stages, images and the rules.
func (s *Summary) read(buildArgs map[string]string) error {
	lex := shell.NewLex(s.EscapeToken)
	s.lex = lex
	lint := linter.New(&linter.Config{})
	meta := defaultArgs(buildArgs)
	seen := map[string]bool{}
	addImage := func(name string, line int, use string) {
		if !seen[name] {
			seen[name] = true
			s.Images = append(s.Images, Image{Name: name, Line: line, Use: use})
		}
	}
	for _, node := range s.ast.Children {
		line := node.StartLine
		if len(node.Heredocs) > 0 {
			s.Heredocs = true
		}
		cmd, err := instructions.ParseInstructionWithLinter(node, lint)
		if err != nil {
			return invalid(line, "%s", cleanErr(err))
		}
		if st, ok := cmd.(*instructions.Stage); ok {
			stage, err := s.stage(st, lex, meta, line)
			if err != nil {
				return err
			}
			if stage.BaseStage < 0 && stage.Base != "scratch" {
				addImage(stage.Base, line, UseFrom)
			}
			s.Stages = append(s.Stages, stage)
			continue
		}
		if len(s.Stages) == 0 {
			a, ok := cmd.(*instructions.ArgCommand)
			if !ok {
				return invalid(line, "%s before the first FROM: only ARG may come before it", strings.ToUpper(node.Value))
			}
			if err := checkArg(a, line); err != nil {
				return err
			}
			if err := meta.add(a, lex, buildArgs); err != nil {
				return invalid(line, "%s", cleanErr(err))
			}
			continue
		}
		c, ok := cmd.(instructions.Command)
		if !ok {
			return invalid(line, "%T is not an instruction", cmd)
		}
		cur := len(s.Stages) - 1
		images, err := s.check(c, cur, line, false)
		if err != nil {
			return err
		}
		for _, img := range images {
			addImage(img.Name, line, img.Use)
			if img.Use == UseCopyFrom {
				s.copyImage[node] = img.Name
			}
		}
		s.Stages[cur].commands = append(s.Stages[cur].commands, c)
	}
	if len(s.Stages) == 0 {
		return invalid(0, "no FROM: a Dockerfile needs at least one stage")
	}
	return nil
}

// stage reads a FROM: its base after ARG expansion, and whether that base
// is an earlier stage.
func (s *Summary) stage(st *instructions.Stage, lex *shell.Lex, meta *metaArgs, line int) (Stage, error) {
	base, err := lex.ProcessWordWithMatches(st.BaseName, meta)
	if err != nil {
		return Stage{}, invalid(line, "FROM %s: %s", st.BaseName, cleanErr(err))
	}
	if base.Result == "" {
		return Stage{}, invalid(line, "FROM %s: the base name is empty after ARG expansion", st.BaseName)
	}
	for name := range base.Matched {
		if meta.automatic(name) {
			// The builder sets these for the platform it builds for, which
			// need not be this host's: the name checked could differ from
			// the name built.
			return Stage{}, refused(line, "FROM %s: the base name uses %s, which the builder sets for its own platform; write the name out, or give %s as a build argument", st.BaseName, name, name)
		}
	}
	out := Stage{Name: st.Name, Base: base.Result, BaseStage: s.stageIndex(base.Result, len(s.Stages)), Platform: st.Platform, Line: line}
	for i, earlier := range s.Stages {
		if st.Name != "" && earlier.Name == st.Name {
			return Stage{}, invalid(line, "stage name %q is already the name of stage %d", st.Name, i)
		}
	}
	return out, nil
}

// stageIndex is the index of the stage named name among the first n
// stages (case-insensitive, as BuildKit matches), or -1.
func (s *Summary) stageIndex(name string, n int) int {
	for i := 0; i < n; i++ {
		if s.Stages[i].Name != "" && strings.EqualFold(s.Stages[i].Name, name) {
			return i
		}
	}
	return -1
}

// check applies the rules to one instruction of stage cur and returns the
// images it names. In a trigger (ONBUILD), naming any other stage or image
// is refused: what it names is decided by a later build.
func (s *Summary) check(c instructions.Command, cur, line int, trigger bool) ([]Image, error) {
	switch c := c.(type) {
	case *instructions.AddCommand:
		if c.Checksum != "" {
			return nil, refused(line, "ADD --checksum is for remote sources, and ADD may not fetch remote sources: put the file in the build context")
		}
		if c.KeepGitDir != nil {
			return nil, refused(line, "ADD --keep-git-dir is for git sources, and ADD may not fetch git sources: put the files in the build context")
		}
		for _, src := range c.SourcePaths {
			if strings.ContainsRune(src, '$') {
				return nil, refused(line, "ADD source %q uses a variable: only a literal path is known not to be a URL; write the path out, or use COPY", src)
			}
			// The builder reads the source through the shell lexer:
			// quotes and escapes go ("http\://h" is http://h).
			word, _, err := s.lex.ProcessWord(src, noEnv{})
			if err != nil {
				return nil, invalid(line, "ADD source %q: %s", src, cleanErr(err))
			}
			for _, w := range []string{src, word} {
				if err := checkSource("ADD", w, line); err != nil {
					return nil, err
				}
			}
		}
	case *instructions.CopyCommand:
		for _, src := range c.SourcePaths {
			if err := checkSource("COPY", src, line); err != nil {
				return nil, err
			}
		}
		if c.From == "" {
			return nil, nil
		}
		if trigger {
			return nil, refused(line, "ONBUILD COPY --from is not allowed: the stage or image it names is decided by a later build")
		}
		if strings.ContainsRune(c.From, '$') {
			return nil, invalid(line, "COPY --from=%s: variables are not expanded in --from; define a stage with FROM instead", c.From)
		}
		if i, err := strconv.Atoi(c.From); err == nil {
			if i < 0 || i >= cur {
				return nil, invalid(line, "COPY --from=%d: not an earlier stage (this is stage %d)", i, cur)
			}
			return nil, nil
		}
		if s.stageIndex(c.From, cur) >= 0 {
			return nil, nil
		}
		return []Image{{Name: c.From, Line: line, Use: UseCopyFrom}}, nil
	case *instructions.RunCommand:
		return s.checkRun(c, cur, line, trigger)
	case *instructions.OnbuildCommand:
		return nil, s.checkTrigger(c.Expression, cur, line)
	case *instructions.ArgCommand:
		return nil, checkArg(c, line)
	}
	return nil, nil
}

// checkRun applies the rules to RUN's flags.
func (s *Summary) checkRun(c *instructions.RunCommand, cur, line int, trigger bool) ([]Image, error) {
	// Mount options are read once the parser has an expander. Quotes and
	// escapes are processed as the builder does; a word with a variable is
	// kept as written, so "type=$T" is no known type and refused.
	if err := c.Expand(func(word string) (string, error) {
		if strings.ContainsRune(word, '$') {
			return word, nil
		}
		w, _, err := s.lex.ProcessWord(word, noEnv{})
		return w, err
	}); err != nil {
		return nil, invalid(line, "RUN --mount: %s", cleanErr(err))
	}
	switch n := instructions.GetNetwork(c); n {
	case instructions.NetworkDefault, instructions.NetworkNone:
	default:
		return nil, refused(line, "RUN --network=%s is not allowed: a build's network is the host's policy (none unless granted)", n)
	}
	if sec := instructions.GetSecurity(c); sec != instructions.SecuritySandbox {
		return nil, refused(line, "RUN --security=%s is not allowed: build steps always run sandboxed", sec)
	}
	if len(instructions.GetDevices(c)) > 0 {
		return nil, refused(line, "RUN --device is not allowed: builds get no devices")
	}
	var images []Image
	for _, m := range instructions.GetMounts(c) {
		switch m.Type {
		case instructions.MountTypeSecret, instructions.MountTypeSSH:
			return nil, refused(line, "RUN --mount=type=%s is not allowed: builds get no secrets and no SSH agent", m.Type)
		case instructions.MountTypeBind, instructions.MountTypeCache, instructions.MountTypeTmpfs:
		default:
			return nil, refused(line, "RUN --mount=type=%s is not a mount type runhost knows", m.Type)
		}
		if m.From == "" {
			continue
		}
		if trigger {
			return nil, refused(line, "ONBUILD RUN --mount from= is not allowed: the stage or image it names is decided by a later build")
		}
		if s.stageIndex(m.From, cur) >= 0 {
			continue
		}
		images = append(images, Image{Name: m.From, Line: line, Use: UseMountFrom})
	}
	return images, nil
}

// checkTrigger applies the rules to an ONBUILD instruction: it runs in
// every build that uses a stage built from this one as its base.
func (s *Summary) checkTrigger(expr string, cur, line int) error {
	res, err := parser.Parse(strings.NewReader(expr))
	if err != nil || len(res.AST.Children) != 1 {
		return invalid(line, "ONBUILD %s: not one instruction", expr)
	}
	cmd, err := instructions.ParseCommand(res.AST.Children[0])
	if err != nil {
		return invalid(line, "ONBUILD: %s", cleanErr(err))
	}
	_, err = s.check(cmd, cur, line, true)
	return err
}

// checkArg refuses ARGs that configure BuildKit itself.
func checkArg(a *instructions.ArgCommand, line int) error {
	for _, kv := range a.Args {
		if strings.HasPrefix(strings.ToUpper(kv.Key), buildArgPrefix) {
			return refused(line, "ARG %s configures BuildKit itself; %s* arguments are not allowed", kv.Key, buildArgPrefix)
		}
	}
	return nil
}

// checkSource refuses a source that is not a path in the build context:
// a URL of any scheme, a git remote (git@host:repo, github.com/...), which
// ADD would fetch.
func checkSource(instr, src string, line int) error {
	lower := strings.ToLower(src)
	switch {
	case strings.Contains(src, "://"):
		return refused(line, "%s of a URL is not allowed: %s; builds fetch nothing, put the file in the build context", instr, src)
	case strings.HasPrefix(lower, "github.com/"), scpLike(src):
		return refused(line, "%s of a git source is not allowed: %s; builds fetch nothing, put the files in the build context", instr, src)
	}
	return nil
}

// scpLike reports whether src has git's scp-like form, user@host:path.
func scpLike(src string) bool {
	at := strings.IndexByte(src, '@')
	if at <= 0 {
		return false
	}
	colon := strings.IndexByte(src[at:], ':')
	slash := strings.IndexByte(src, '/')
	return colon > 1 && (slash < 0 || slash > at+colon)
}

// HasCommand reports whether the image the final stage builds has a
// command: ENTRYPOINT or CMD in the final stage, in the stages it is built
// on, or in the image at the root of that chain. config says what an image
// sets; known is false when the executor cannot see it, and then so is
// HasCommand's.
func (s *Summary) HasCommand(config func(image string) (entrypoint, cmd []string, known bool)) (has, known bool) {
	ep, cmd, known := s.command(len(s.Stages)-1, config, 0)
	return ep || cmd, known
}

// command follows stage i's chain: whether its image has a non-empty
// entrypoint and command.
func (s *Summary) command(i int, config func(string) ([]string, []string, bool), depth int) (ep, cmd, known bool) {
	st := s.Stages[i]
	switch {
	case depth > len(s.Stages):
		return false, false, false
	case st.BaseStage >= 0:
		ep, cmd, known = s.command(st.BaseStage, config, depth+1)
	case st.Base == "scratch":
		known = true
	default:
		e, c, ok := config(st.Base)
		ep, cmd, known = len(e) > 0, len(c) > 0, ok
	}
	cmdSet := false
	for _, c := range st.commands {
		switch c := c.(type) {
		case *instructions.EntrypointCommand:
			// An ENTRYPOINT resets a CMD the stage did not set itself.
			ep = c.PrependShell || len(c.CmdLine) > 0
			if !cmdSet {
				cmd = false
			}
		case *instructions.CmdCommand:
			cmd, cmdSet = c.PrependShell || len(c.CmdLine) > 0, true
			if !known && cmd {
				known = true
			}
		}
	}
	if ep || cmd {
		known = true // whatever the base says, there is a command
	}
	return ep, cmd, known
}

// metaArgs are the ARGs in scope for FROM lines: BuildKit's platform
// arguments, then each ARG before the first FROM, a build argument
// overriding its default.
type metaArgs struct {
	keys []string
	vals map[string]string
	auto map[string]bool // platform arguments with the builder's own values
}

func defaultArgs(buildArgs map[string]string) *metaArgs {
	m := &metaArgs{vals: map[string]string{}, auto: map[string]bool{}}
	platform := "linux/" + runtime.GOARCH
	for _, kv := range [][2]string{
		{"BUILDPLATFORM", platform}, {"BUILDOS", "linux"}, {"BUILDOSVERSION", ""}, {"BUILDARCH", runtime.GOARCH}, {"BUILDVARIANT", ""},
		{"TARGETPLATFORM", platform}, {"TARGETOS", "linux"}, {"TARGETOSVERSION", ""}, {"TARGETARCH", runtime.GOARCH}, {"TARGETVARIANT", ""},
		{"TARGETSTAGE", "default"},
	} {
		v, ok := buildArgs[kv[0]]
		if !ok {
			v, m.auto[kv[0]] = kv[1], true
		}
		m.set(kv[0], v)
	}
	return m
}

func (m *metaArgs) set(k, v string) {
	if _, ok := m.vals[k]; !ok {
		m.keys = append(m.keys, k)
	}
	m.vals[k] = v
}

// automatic reports whether k still has the builder's own platform value.
func (m *metaArgs) automatic(k string) bool { return m.auto[k] }

// add declares the ARGs of a, as BuildKit's buildMetaArgs does.
func (m *metaArgs) add(a *instructions.ArgCommand, lex *shell.Lex, buildArgs map[string]string) error {
	for _, kv := range a.Args {
		if v, ok := buildArgs[kv.Key]; ok {
			m.set(kv.Key, v)
			delete(m.auto, kv.Key)
			continue
		}
		if kv.Value == nil {
			continue
		}
		res, err := lex.ProcessWordWithMatches(*kv.Value, m)
		if err != nil {
			return err
		}
		m.set(kv.Key, res.Result)
		delete(m.auto, kv.Key)
		for name := range res.Matched {
			if m.auto[name] {
				m.auto[kv.Key] = true // derived from a platform argument
			}
		}
	}
	return nil
}

// Get implements shell.EnvGetter.
func (m *metaArgs) Get(k string) (string, bool) { v, ok := m.vals[k]; return v, ok }

// Keys implements shell.EnvGetter.
func (m *metaArgs) Keys() []string { return m.keys }

// noEnv is an empty environment for the shell lexer.
type noEnv struct{}

func (noEnv) Get(string) (string, bool) { return "", false }
func (noEnv) Keys() []string            { return nil }

func lineOf(loc []parser.Range) int {
	if len(loc) == 0 {
		return 0
	}
	return loc[0].Start.Line
}

func lineOfErr(err error) int {
	var le *parser.LocationError
	if errors.As(err, &le) {
		return lineOf(le.Locations[0])
	}
	return 0
}

// cleanErr is the parser's message without its stack and location wrappers.
func cleanErr(err error) string {
	var le *parser.LocationError
	if errors.As(err, &le) {
		err = le.Unwrap()
	}
	return err.Error()
}
