package dockerfile

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// PinClassic rewrites src for a builder that resolves image names itself
// (the engine's classic builder): every FROM and COPY --from that names an
// image names pins[name] instead, the exact image the host checked (an
// image ID), and every instruction is one line as BuildKit's parser read
// it, so an older parser cannot read the file differently. FROM loses its
// --platform flag: an image ID is already one platform's image. Heredocs are
// refused: the classic builder does not know them and would read their
// bodies as instructions.
func PinClassic(src []byte, buildArgs map[string]string, pins map[string]string) ([]byte, error) {
	s, err := Parse(src, buildArgs)
	if err != nil {
		return nil, err
	}
	if s.Heredocs {
		return nil, refused(0, "heredocs need BuildKit; this engine's builder cannot read them")
	}
	pin := func(name string, line int) (string, error) {
		ref, ok := pins[name]
		if !ok || ref == "" {
			return "", fmt.Errorf("dockerfile line %d: %s was not resolved to an image before the build", line, name)
		}
		return ref, nil
	}
	var out strings.Builder
	if s.EscapeToken != '\\' {
		fmt.Fprintf(&out, "# escape=%c\n", s.EscapeToken)
	}
	stage := -1
	for _, node := range s.ast.Children {
		line := node.StartLine
		switch {
		case strings.EqualFold(node.Value, "from"):
			stage++
			st := s.Stages[stage]
			base := st.Base
			if st.BaseStage >= 0 {
				base = s.Stages[st.BaseStage].Name
			} else if base != "scratch" {
				if base, err = pin(base, line); err != nil {
					return nil, err
				}
			}
			// No --platform: an image ID is one image of one platform.
			out.WriteString("FROM " + base)
			if st.Name != "" {
				out.WriteString(" AS " + st.Name)
			}
		case s.copyImage[node] != "":
			ref, err := pin(s.copyImage[node], line)
			if err != nil {
				return nil, err
			}
			flags, rest := splitFlags(node.Original, s.EscapeToken)
			out.WriteString("COPY")
			for _, f := range flags {
				name, value, hasValue := strings.Cut(f, "=")
				switch {
				case strings.IndexFunc(f, func(r rune) bool { return r > unicode.MaxASCII }) >= 0:
					// The parser reads flags byte by byte: such a value would
					// not survive a second reading.
					return nil, refused(line, "COPY flag %q: only ASCII is allowed in flags", name)
				case strings.EqualFold(name, "--from"):
					out.WriteString(" --from=" + ref)
				case hasValue:
					out.WriteString(" " + name + "=" + quoteFlag(value, s.EscapeToken))
				default:
					out.WriteString(" " + name)
				}
			}
			if strings.HasPrefix(rest, "--") {
				out.WriteString(" --")
			}
			out.WriteString(" " + rest)
		default:
			out.WriteString(strings.TrimSpace(node.Original))
		}
		out.WriteByte('\n')
	}
	return []byte(out.String()), nil
}

// splitFlags splits an instruction line into its flags (unquoted, as
// BuildKit's extractBuilderFlags reads them) and the rest, verbatim.
func splitFlags(line string, escape rune) (flags []string, rest string) {
	line = strings.TrimSpace(line)
	i := strings.IndexFunc(line, unicode.IsSpace)
	if i < 0 {
		return nil, ""
	}
	line = line[i:]
	var word strings.Builder
	inWord, blankOK := false, false
	quote := rune(0)
	for pos := 0; pos <= len(line); pos++ {
		if pos == len(line) {
			if inWord {
				if w := word.String(); w != "--" && (blankOK || w != "") {
					flags = append(flags, w)
				}
			}
			return flags, ""
		}
		ch := rune(line[pos])
		if !inWord {
			if unicode.IsSpace(ch) {
				continue
			}
			if ch != '-' || pos+1 == len(line) || line[pos+1] != '-' {
				return flags, line[pos:]
			}
			inWord = true
		}
		if quote != 0 {
			switch {
			case ch == quote:
				quote = 0
			case ch == escape && pos+1 < len(line):
				pos++
				word.WriteRune(rune(line[pos]))
			case ch == escape:
				quote = 0
			default:
				word.WriteRune(ch)
			}
			continue
		}
		switch {
		case unicode.IsSpace(ch):
			w := word.String()
			inWord = false
			if w == "--" {
				return flags, strings.TrimLeftFunc(line[pos:], unicode.IsSpace)
			}
			if blankOK || w != "" {
				flags = append(flags, w)
			}
			word.Reset()
			blankOK = false
		case ch == '\'' || ch == '"':
			quote, blankOK = ch, true
		case ch == escape:
			if pos+1 < len(line) {
				pos++
				word.WriteRune(rune(line[pos]))
			}
		default:
			word.WriteRune(ch)
		}
	}
	return flags, ""
}

var plainFlagValue = regexp.MustCompile(`^[A-Za-z0-9_./:@+,%=-]*$`)

// quoteFlag writes a flag's value so that the parser reads it back as v.
func quoteFlag(v string, escape rune) string {
	if plainFlagValue.MatchString(v) {
		return v
	}
	e := string(escape)
	v = strings.ReplaceAll(v, e, e+e)
	v = strings.ReplaceAll(v, `"`, e+`"`)
	return `"` + v + `"`
}
