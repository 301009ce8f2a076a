package query

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the API's own series. The registry is the caller's (or a new
// one), and /metrics serves the whole registry, so the processor's series
// come out of the same endpoint when serve shares one registry.
type metrics struct {
	requests   *prometheus.CounterVec   // method, route, code
	duration   *prometheus.HistogramVec // method, route
	cache      *prometheus.CounterVec   // cache, result
	events     *prometheus.CounterVec   // result
	eventDelay prometheus.Histogram
}

// httpBuckets reach past DefaultMaxWait: a request that waits is slow on
// purpose, and should land in a bucket rather than +Inf.
var httpBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

func newMetrics(reg prometheus.Registerer, s *Server) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_http_requests_total",
			Help: "HTTP requests answered, by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "orderflow_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, including any ?wait, by method and route pattern.",
			Buckets: httpBuckets,
		}, []string{"method", "route"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_query_cache_lookups_total",
			Help: "Point-read cache lookups, by cache (orders, outcomes) and result (hit, miss).",
		}, []string{"cache", "result"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_query_events_total",
			Help: "Outcome events read by the API's cache feed, by result (applied, invalid).",
		}, []string{"result"}),
		eventDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "orderflow_query_event_delay_seconds",
			Help:    "From an event's processed_at to its arrival in the API cache: how far a cache hit can lag PostgreSQL.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
	}
	var err error
	if m.requests, err = register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.cache, err = register(reg, m.cache); err != nil {
		return nil, err
	}
	if m.events, err = register(reg, m.events); err != nil {
		return nil, err
	}
	if m.eventDelay, err = register(reg, m.eventDelay); err != nil {
		return nil, err
	}
	gauges := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "orderflow_query_cache_entries",
			Help: "Orders held by the point-read cache.",
		}, func() float64 { return float64(s.orders.len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "orderflow_query_waiters",
			Help: "Requests waiting for an outcome or a version (?wait).",
		}, func() float64 { return float64(s.hub.waiting()) }),
	}
	for _, g := range gauges {
		if _, err := register(reg, g); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// the same name, so that two servers sharing a registry (tests, or a restart
// within one process) count into the same series instead of failing.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	switch {
	case err == nil:
		return c, nil
	case errors.As(err, &are):
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register metrics: %w", err)
}
