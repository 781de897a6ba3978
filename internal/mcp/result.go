package mcp

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/runhost/runhost/internal/executor"
	"github.com/runhost/runhost/internal/runner"
)

// imageTypes are the rich outputs sent as MCP images, in the order they
// are preferred when a bundle offers several.
var imageTypes = []string{"image/png", "image/jpeg", "image/gif", "image/webp"}

// runContent is a run's tool result: one text a model reads at a glance
// (what ran, how it ended, its output, an interpreter cell's rich results
// and error), then each image the cell produced.
func runContent(v runner.Result) []sdk.Content {
	var b strings.Builder
	b.WriteString(summary(v))
	section(&b, "stdout", v.Stdout, v.StdoutTruncated)
	section(&b, "stderr", v.Stderr, v.StderrTruncated)
	if len(v.Stdout) == 0 && len(v.Stderr) == 0 && len(v.Results) == 0 && v.CellError == nil {
		b.WriteString("\n(no output)")
	}
	var images []sdk.Content
	for i, r := range v.Results {
		bundle := r.Data
		fmt.Fprintf(&b, "\n--- result %d ---\n", i+1)
		text := bundleText(bundle)
		img, mime, err := bundleImage(bundle)
		switch {
		case err != nil:
			fmt.Fprintf(&b, "[%s: %v]\n", mime, err)
		case img != nil:
			images = append(images, img)
			fmt.Fprintf(&b, "[%s image %d attached]\n", mime, len(images))
		}
		if text != "" {
			b.WriteString(text)
			b.WriteString("\n")
		}
		if other := otherTypes(bundle, mime); len(other) > 0 {
			fmt.Fprintf(&b, "(also as %s, not shown)\n", strings.Join(other, ", "))
		}
	}
	if e := v.CellError; e != nil {
		fmt.Fprintf(&b, "\n--- error ---\n%s: %s\n", e.Name, e.Value)
		for _, line := range e.Traceback {
			b.WriteString(strings.TrimRight(line, "\n"))
			b.WriteString("\n")
		}
	}
	return append([]sdk.Content{&sdk.TextContent{Text: strings.TrimRight(b.String(), "\n")}}, images...)
}

// summary is the first line: what ran and how it ended.
func summary(v runner.Result) string {
	what := strings.TrimSpace(v.Runtime + " " + v.Version)
	var s string
	switch v.Stage {
	case executor.StageInstall:
		s = fmt.Sprintf("the install of the requirements failed (exit code %d); the program did not run", v.ExitCode)
	case executor.StageBuild:
		s = "the image did not build; the program did not run"
	default:
		s = fmt.Sprintf("exit code %d", v.ExitCode)
	}
	if what != "" {
		s += " · " + what
	}
	s += fmt.Sprintf(" · %d ms", v.Duration.Milliseconds())
	switch {
	case v.TimedOut:
		s += " · timed out: killed at the time limit (timeout_ms)"
	case v.OOMKilled:
		s += " · killed: out of memory"
	case v.OutputLimited:
		s += " · stopped: the output limit was reached"
	}
	if v.Restarted {
		s += " · the interpreter was restarted: its state is lost"
	}
	return s
}

// section writes one output stream as text, cut to maxText; bytes that
// are not UTF-8 (binary output, a character the cut split) show as U+FFFD.
func section(b *strings.Builder, name string, out []byte, truncated bool) {
	if len(out) == 0 {
		return
	}
	var notes []string
	if truncated {
		notes = append(notes, "truncated by the host's output limit")
	}
	if len(out) > maxText {
		out = out[:maxText]
		notes = append(notes, fmt.Sprintf("only the first %d bytes shown", maxText))
	}
	if !utf8.Valid(out) {
		notes = append(notes, "bytes that are not UTF-8 shown as \uFFFD")
	}
	fmt.Fprintf(b, "\n--- %s", name)
	if len(notes) > 0 {
		fmt.Fprintf(b, " (%s)", strings.Join(notes, "; "))
	}
	b.WriteString(" ---\n")
	b.WriteString(strings.TrimRight(strings.ToValidUTF8(string(out), "\uFFFD"), "\n"))
}

// bundleText is a bundle's text/plain (always present in the protocol).
func bundleText(bundle map[string]json.RawMessage) string {
	var s string
	if err := json.Unmarshal(bundle["text/plain"], &s); err != nil {
		return ""
	}
	return strings.TrimRight(s, "\n")
}

// bundleImage is the bundle's preferred image as MCP image content, and
// its MIME type; nil when it has none.
func bundleImage(bundle map[string]json.RawMessage) (sdk.Content, string, error) {
	for _, mime := range imageTypes {
		raw, ok := bundle[mime]
		if !ok {
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, mime, fmt.Errorf("not a base64 string")
		}
		data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil {
			return nil, mime, fmt.Errorf("invalid base64")
		}
		return &sdk.ImageContent{Data: data, MIMEType: mime}, mime, nil
	}
	return nil, "", nil
}

// otherTypes are the bundle's MIME types the text does not show.
func otherTypes(bundle map[string]json.RawMessage, shown string) []string {
	var out []string
	for mime := range bundle {
		if mime != "text/plain" && mime != shown {
			out = append(out, mime)
		}
	}
	slices.Sort(out)
	return out
}
