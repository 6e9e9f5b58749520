package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/precheck/precheck/policy"
)

// metrics are what /metrics exposes, in the Prometheus text format.
type metrics struct {
	registry   *prometheus.Registry
	decisions  *prometheus.CounterVec
	violations *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	reloads    *prometheus.CounterVec
	revision   *prometheus.GaugeVec
	rejected   *prometheus.CounterVec
	inFlight   prometheus.Gauge

	connsOpen    prometheus.Gauge
	connsRefused prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "precheck_decisions_total",
			Help: "Decisions made, by result (allowed, denied; refused: a proxied call the gate refused for its form; error: precheck could not decide), engine and endpoint (api: /v1/precheck, gate: the proxied call).",
		}, []string{"result", "engine", "endpoint"}),
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "precheck_violations_total",
			Help: "Violations in refusals, by rule code.",
		}, []string{"code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "precheck_decision_duration_seconds",
			Help:    "Time to decide (for the gate: to gather the facts and decide), by engine and endpoint.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16), // 50 µs .. 1.6 s
		}, []string{"engine", "endpoint"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "precheck_policy_reloads_total",
			Help: "Policy loads and reloads, by result (success, failure, unchanged).",
		}, []string{"result"}),
		revision: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "precheck_policy_revision_info",
			Help: "The revision of the policy being served (value 1).",
		}, []string{"revision"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "precheck_http_rejected_total",
			Help: "Requests refused before any decision, by reason (malformed, too_large, body_timeout, busy, not_ready).",
		}, []string{"reason"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "precheck_http_in_flight_requests",
			Help: "Requests being served (their bodies read, holding one of the --max-in-flight slots).",
		}),
		connsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "precheck_http_connections_open",
			Help: "Client connections open, idle or busy.",
		}),
		connsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "precheck_http_connections_refused_total",
			Help: "Connections closed as soon as they were accepted, their client address holding --max-conns-per-client already.",
		}),
	}
	m.registry.MustRegister(m.decisions, m.violations, m.latency, m.reloads, m.revision, m.rejected, m.inFlight,
		m.connsOpen, m.connsRefused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// watchEngine adds the serving engine's state to the metrics, read at each scrape (the wasm engine's
// watchdog may switch it at any time); state's ok is false while no policy is loaded.
func (m *metrics) watchEngine(state func() (policy.State, bool)) {
	stateOf := func(f func(policy.State) float64) func() float64 {
		return func() float64 {
			if s, ok := state(); ok {
				return f(s)
			}
			return 0
		}
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "precheck_engine_interruptible",
			Help: "1 when the wasm engine runs its interruptible code (configured, or switched by the watchdog), 0 on its fast code or another engine.",
		}, stateOf(func(s policy.State) float64 { return b2f(s.Code == "interruptible") })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "precheck_engine_degraded",
			Help: "1 when the watchdog switched the policy to the interruptible code, an evaluation having run past the runaway limit.",
		}, stateOf(func(s policy.State) float64 { return b2f(s.Degraded) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "precheck_engine_runaways_total",
			Help: "Evaluations of the serving policy the watchdog took out of the pool for running past the runaway limit.",
		}, stateOf(func(s policy.State) float64 { return float64(s.Runaways) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "precheck_engine_abandoned_total",
			Help: "Evaluations of the serving policy whose callers gave up (their deadline passed) while the fast code ran; each finished in the background.",
		}, stateOf(func(s policy.State) float64 { return float64(s.Abandoned) })),
	)
}
