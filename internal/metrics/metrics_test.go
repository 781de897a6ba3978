package metrics

import (
	"fmt"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// served resolves the names and aliases of two runtimes.
func served(name string) (string, bool) {
	switch name {
	case "python", "py", "python3":
		return "python", true
	case "shell", "sh":
		return "shell", true
	}
	return "", false
}

func newMetrics() *Metrics {
	m := New(Gauges{InFlight: func() float64 { return 0 }, Queued: func() float64 { return 0 }})
	m.Runtimes(served)
	return m
}

// series lists the label sets of the run metrics.
func series(t *testing.T, m *Metrics) map[string]bool {
	t.Helper()
	families, err := m.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, f := range families {
		if f.GetName() != "runhost_runs_total" && f.GetName() != "runhost_run_duration_seconds" {
			continue
		}
		for _, metric := range f.Metric {
			out[f.GetName()+labels(metric)] = true
		}
	}
	return out
}

func labels(m *dto.Metric) string {
	s := ""
	for _, l := range m.Label {
		s += fmt.Sprintf(",%s=%q", l.GetName(), l.GetValue())
	}
	return s
}

// TestBogusRuntimeNamesAddNoSeries: 50 runtime names that are not served
// (as a client can put in the URL) all count under one label.
func TestBogusRuntimeNamesAddNoSeries(t *testing.T) {
	m := newMetrics()
	m.Run("nope", "refused", time.Millisecond)
	before := len(series(t, m))
	for i := range 50 {
		m.Run(fmt.Sprintf("zz-qa-%d x y", i), "refused", time.Millisecond)
	}
	got := series(t, m)
	if len(got) != before {
		t.Errorf("%d series after 50 bogus runtime names, want %d: %v", len(got), before, got)
	}
	if !got[`runhost_runs_total,outcome="refused",runtime="unknown"`] {
		t.Errorf("no unknown series: %v", got)
	}
}

func TestRuntimeLabels(t *testing.T) {
	tests := []struct {
		runtime, outcome string
		want             string
	}{
		{"python", "ok", `runhost_runs_total,outcome="ok",runtime="python"`},
		{"py", "ok", `runhost_runs_total,outcome="ok",runtime="python"`}, // an alias counts as its runtime
		{"sh", "timeout", `runhost_runs_total,outcome="timeout",runtime="shell"`},
		{"", "refused", `runhost_runs_total,outcome="refused",runtime="unknown"`},
		{"cobol", "refused", `runhost_runs_total,outcome="refused",runtime="unknown"`},
		{"python", "made-up", `runhost_runs_total,outcome="error",runtime="python"`},
		{"python", "client_disconnect", `runhost_runs_total,outcome="client_disconnect",runtime="python"`},
	}
	for _, tt := range tests {
		t.Run(tt.runtime+"/"+tt.outcome, func(t *testing.T) {
			m := newMetrics()
			m.Run(tt.runtime, tt.outcome, time.Millisecond)
			if got := series(t, m); !got[tt.want] {
				t.Errorf("series %v, want %s", got, tt.want)
			}
		})
	}
}

// Without a resolver (not wired), nothing becomes a label.
func TestNoResolverMeansUnknown(t *testing.T) {
	m := New(Gauges{InFlight: func() float64 { return 0 }, Queued: func() float64 { return 0 }})
	m.Run("python", "ok", time.Millisecond)
	if got := series(t, m); !got[`runhost_runs_total,outcome="ok",runtime="unknown"`] {
		t.Errorf("series %v", got)
	}
}
