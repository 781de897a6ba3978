package runner

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/runhost/runhost/shared"
)

// SelfTestResult is the outcome of one version's self-test.
type SelfTestResult struct {
	Runtime   string
	Version   string
	Passed    bool
	Expected  string
	Got       string // stdout, or what went wrong
	CheckedAt time.Time
	Duration  time.Duration
}

// selfTests keeps the latest result per runtime and version.
type selfTests struct {
	mu      sync.Mutex
	results map[string]SelfTestResult // by runtime + "/" + version
}

func (s *selfTests) get(runtime, version string) (SelfTestResult, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.results[runtime+"/"+version]
	return r, ok
}

func (s *selfTests) put(r SelfTestResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.results == nil {
		s.results = map[string]SelfTestResult{}
	}
	s.results[r.Runtime+"/"+r.Version] = r
}

// SelfTest runs every version's self-test of every runtime, one after the
// other, through the same path as any run, and records the results for
// GET /runtimes.
func (r *Runner) SelfTest(ctx context.Context) []SelfTestResult {
	var out []SelfTestResult
	for _, p := range r.registry.Plugins() {
		d := p.Description()
		for _, v := range d.Versions {
			if ctx.Err() != nil {
				return out
			}
			start := time.Now()
			res := SelfTestResult{Runtime: d.Name, Version: v.Version, Expected: v.SelfTest.ExpectedStdout}
			switch run, err := r.Run(ctx, Request{Runtime: d.Name, RunRequest: shared.RunRequest{Version: v.Version, Code: v.SelfTest.Code}}); {
			case v.SelfTest.Code == "":
				res.Got = "the plugin declares no self-test for this version"
			case err != nil:
				res.Got = "error: " + err.Error()
			case run.Stage != "run" || run.ExitCode != 0:
				res.Got = fmt.Sprintf("%s step exited %d: %s%s", run.Stage, run.ExitCode, run.Stdout, run.Stderr)
			default:
				res.Got = string(run.Stdout)
				res.Passed = res.Got == res.Expected
			}
			res.CheckedAt, res.Duration = time.Now(), time.Since(start)
			r.selfTests.put(res)
			out = append(out, res)
			if res.Passed {
				r.log.Info("self-test passed", "runtime", d.Name, "version", v.Version)
			} else {
				r.log.Error("self-test failed", "runtime", d.Name, "version", v.Version, "expected", res.Expected, "got", res.Got)
			}
		}
	}
	return out
}
