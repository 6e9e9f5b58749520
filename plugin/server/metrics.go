package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
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
			Help: "Decisions made, by result (allowed, denied, error), engine and endpoint (api: /v1/precheck, gate: the proxied call).",
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
