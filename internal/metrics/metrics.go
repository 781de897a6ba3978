// Package metrics holds the host's Prometheus metrics, on a registry of its
// own (no global state), served at /metrics.
package metrics

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the host's metrics.
type Metrics struct {
	registry        *prometheus.Registry
	runs            *prometheus.CounterVec
	runSeconds      *prometheus.HistogramVec
	pluginRestarts  *prometheus.CounterVec
	containersSwept prometheus.Counter

	// resolve names a served runtime by its name or alias; labels come
	// only from it.
	resolve atomic.Pointer[func(string) (string, bool)]
}

// UnknownRuntime is the runtime label of every run whose runtime is not
// served: a name from a URL never becomes a label of its own.
const UnknownRuntime = "unknown"

// outcomes are the values of the outcome label.
var outcomes = map[string]bool{
	"ok": true, "exit_nonzero": true, "timeout": true, "oom": true, "install_failed": true,
	"build_failed": true, "refused": true, "client_disconnect": true, "error": true,
}

// Gauges are read when scraped.
type Gauges struct {
	InFlight func() float64
	Queued   func() float64
}

// New registers every metric. The gauges are read at scrape time.
func New(g Gauges) *Metrics {
	m := &Metrics{registry: prometheus.NewRegistry()}
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "runhost_runs_total",
		Help: "Runs by runtime (\"unknown\" for a runtime that is not served) and outcome (ok, exit_nonzero, timeout, oom, install_failed, build_failed, refused, client_disconnect, error).",
	}, []string{"runtime", "outcome"})
	m.runSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "runhost_run_duration_seconds",
		Help:    "Run latency as the caller sees it, from request to answer.",
		Buckets: []float64{0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30, 60, 120},
	}, []string{"runtime"})
	m.pluginRestarts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "runhost_plugin_restarts_total",
		Help: "Plugin processes started again after they crashed or hung.",
	}, []string{"plugin"})
	m.containersSwept = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "runhost_containers_swept_total",
		Help: "Containers removed by the sweep (left behind by a crash or past their deadline).",
	})
	m.registry.MustRegister(m.runs, m.runSeconds, m.pluginRestarts, m.containersSwept,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "runhost_runs_in_flight", Help: "Runs executing now."}, g.InFlight),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "runhost_queue_depth", Help: "Runs waiting for a slot."}, g.Queued),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Runtimes sets how runtime names are resolved (by the plugin registry):
// a name or alias of a served runtime gives that runtime's name; anything
// else counts under UnknownRuntime.
func (m *Metrics) Runtimes(resolve func(name string) (string, bool)) {
	m.resolve.Store(&resolve)
}

// Run records a finished (or refused) run. runtime is the name the run was
// asked for or resolved to; the label is the served runtime's name or
// UnknownRuntime, so callers cannot grow the number of series.
func (m *Metrics) Run(runtime, outcome string, d time.Duration) {
	label := UnknownRuntime
	if resolve := m.resolve.Load(); resolve != nil {
		if name, ok := (*resolve)(runtime); ok {
			label = name
		}
	}
	if !outcomes[outcome] {
		outcome = "error"
	}
	m.runs.WithLabelValues(label, outcome).Inc()
	m.runSeconds.WithLabelValues(label).Observe(d.Seconds())
}

// Plugins makes the restart counters of plugins exist at zero.
func (m *Metrics) Plugins(names []string) {
	for _, n := range names {
		m.pluginRestarts.WithLabelValues(n)
	}
}

// PluginRestarted counts a plugin restart.
func (m *Metrics) PluginRestarted(plugin string) { m.pluginRestarts.WithLabelValues(plugin).Inc() }

// Swept counts swept containers.
func (m *Metrics) Swept(n int) { m.containersSwept.Add(float64(n)) }

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
