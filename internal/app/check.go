package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/runhost/runhost/internal/config"
	"github.com/runhost/runhost/internal/registry"
	"github.com/runhost/runhost/shared"
)

// CheckPlugin is the conformance kit (`host plugin check PATH`): it starts
// the plugin binary at path the way the host does, checks what it
// describes, runs every version's self-test on the real engine through the
// host's own run path and policy, and checks how it answers requests it
// must refuse. It writes a report to w and says whether everything passed.
func CheckPlugin(ctx context.Context, cfg config.Config, path string, w io.Writer) bool {
	passed := true
	check := func(ok bool, format string, args ...any) {
		mark := "ok  "
		if !ok {
			mark, passed = "FAIL", false
		}
		fmt.Fprintf(w, "%s %s\n", mark, fmt.Sprintf(format, args...))
	}

	cfg.Plugins.Dir = ""
	cfg.Pool.Targets = nil
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: io.Discard})
	a, err := newApp(ctx, cfg, log, []string{path}, nil)
	if err != nil {
		check(false, "set up the host: %v", err)
		return false
	}
	defer a.Close()

	reports := a.Registry.Reports()
	if len(reports) != 1 || reports[0].State != registry.StateHealthy {
		reason := "no report"
		if len(reports) == 1 {
			reason = reports[0].Reason
		}
		check(false, "start %s: %s", path, reason)
		return false
	}
	rep := reports[0]
	check(true, "starts and completes the handshake (protocol %d), sha256 %s", rep.Protocol, rep.Checksum)

	p, _ := a.Registry.Lookup(rep.Runtime)
	d := p.Description()
	var versions []string
	for _, v := range d.Versions {
		s := v.Version
		if v.Default {
			s += " (default)"
		}
		versions = append(versions, s)
	}
	check(true, "describes runtime %q, aliases [%s], versions %s, capabilities %s", d.Name, strings.Join(d.Aliases, " "), strings.Join(versions, ", "), d.Capabilities)
	for _, v := range d.Versions {
		check(v.SelfTest.Code != "" && v.SelfTest.ExpectedStdout != "", "version %s declares a self-test (code and expected stdout)", v.Version)
		if v.Image == "" {
			continue
		}
		present, err := a.Executor.ImageExists(ctx, v.Image)
		check(err == nil && present, "version %s: image %s is on the engine%s", v.Version, v.Image, hint(err, present))
	}

	for _, r := range a.Runner.SelfTest(ctx) {
		check(r.Passed, "self-test %s %s: want %q, got %q (%s)", r.Runtime, r.Version, r.Expected, r.Got, r.Duration.Round(1e6))
	}

	// A request a runtime cannot run must be refused as invalid (a 400),
	// not crash the plugin or come back as its own failure (a 502).
	_, err = p.Plan(ctx, shared.RunRequest{Version: d.Versions[0].Version})
	check(errors.Is(err, shared.ErrInvalidRequest), "refuses a request with no code as an invalid request (got %v)", err)
	if slices.Contains(d.Capabilities, shared.CapFiles) && !slices.Contains(d.Capabilities, shared.CapDockerfile) {
		_, err = p.Plan(ctx, shared.RunRequest{Version: d.Versions[0].Version, Files: []shared.File{{Path: "a"}}, Entry: "missing"})
		check(errors.Is(err, shared.ErrInvalidRequest), "refuses an entry that is not one of the files as an invalid request (got %v)", err)
	}
	if passed {
		fmt.Fprintf(w, "%s passes: it can be installed in RUNHOST_PLUGIN_DIR\n", path)
	}
	return passed
}

func hint(err error, present bool) string {
	switch {
	case err != nil:
		return ": " + err.Error()
	case !present:
		return " (missing: build or pull it first)"
	}
	return ""
}
