package processor

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// metrics are the processor's Prometheus series. Names follow the
// Prometheus conventions: a unit suffix, _total on counters.
type metrics struct {
	commands       *prometheus.CounterVec
	deadLetters    prometheus.Counter
	duplicates     prometheus.Counter
	latency        prometheus.Histogram
	batchSize      prometheus.Histogram
	txSeconds      prometheus.Histogram
	published      prometheus.Counter
	publishSeconds prometheus.Histogram
	publishErrors  prometheus.Counter
	batchErrors    *prometheus.CounterVec
	outboxLast     *prometheus.GaugeVec
	committedSeq   *prometheus.GaugeVec
	nextOffset     *prometheus.GaugeVec
	owned          prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := func(c prometheus.Collector) {
		if reg != nil {
			reg.MustRegister(c)
		}
	}
	m := &metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_commands_total",
			Help: "Commands decided, by action, outcome and rejection reason (empty when accepted).",
		}, []string{"action", "outcome", "reason"}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderflow_dead_letters_total", Help: "Records sent to the DLQ because they could not be decoded or were invalid.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderflow_duplicate_commands_total", Help: "Commands skipped because their command_id already had an outcome.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "orderflow_command_latency_seconds",
			Help:    "From a command's requested_at to the commit of its outcome.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "orderflow_batch_records", Help: "Records per committed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}),
		txSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "orderflow_batch_transaction_seconds", Help: "Time of one PostgreSQL transaction, which carries the batches of one or more partitions.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
		}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderflow_outbox_published_total", Help: "Events and DLQ records published from the outbox.",
		}),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "orderflow_outbox_publish_seconds", Help: "Time of one Kafka transaction of the outbox publisher.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		publishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "orderflow_outbox_publish_errors_total", Help: "Failed publisher transactions (each followed by a recovery).",
		}),
		batchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_batch_errors_total", Help: "Batches that failed to commit, by kind (retried unless fenced).",
		}, []string{"kind"}),
		outboxLast: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderflow_outbox_published_seq", Help: "Last outbox sequence number published, per partition.",
		}, []string{"partition"}),
		committedSeq: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderflow_outbox_committed_seq", Help: "Last outbox sequence number committed, per partition; minus published_seq it is what waits to be published.",
		}, []string{"partition"}),
		nextOffset: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderflow_partition_next_offset", Help: "Next command offset to process, per owned partition.",
		}, []string{"partition"}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderflow_partitions_owned", Help: "Command partitions this process owns.",
		}),
	}
	pending := &pendingCollector{
		committed: m.committedSeq, published: m.outboxLast,
		desc: prometheus.NewDesc("orderflow_outbox_pending_events",
			"Outcome events and DLQ records committed to PostgreSQL but not yet published to Kafka, per owned partition "+
				"(orderflow_outbox_committed_seq minus orderflow_outbox_published_seq).",
			[]string{"partition"}, nil),
	}
	for _, c := range []prometheus.Collector{m.commands, m.deadLetters, m.duplicates, m.latency, m.batchSize, m.txSeconds,
		m.published, m.publishSeconds, m.publishErrors, m.batchErrors, m.outboxLast, m.committedSeq, m.nextOffset, m.owned,
		pending} {
		f(c)
	}
	return m
}

// forgetPartition drops the per-partition series of a partition this
// process no longer owns, so that its frozen values (and a pending count
// that can never drain here) do not add up with those of the new owner.
// Call it after the partition's worker and publisher have stopped.
func (m *metrics) forgetPartition(partition int32) {
	part := strconv.Itoa(int(partition))
	m.nextOffset.DeleteLabelValues(part)
	m.committedSeq.DeleteLabelValues(part)
	m.outboxLast.DeleteLabelValues(part)
}

// pendingCollector derives the outbox backlog from the committed and
// published sequence gauges when scraped, so the two can never disagree
// with it and nothing on the hot path does extra work.
type pendingCollector struct {
	committed, published *prometheus.GaugeVec
	desc                 *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *pendingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector. A partition without a published
// seq yet is left out rather than reported as its whole committed seq: the
// publisher sets the gauge on its first transaction after a takeover, and
// until then the backlog is unknown here (consumer lag still covers it).
func (c *pendingCollector) Collect(ch chan<- prometheus.Metric) {
	published := gaugeValues(c.published)
	for part, committed := range gaugeValues(c.committed) {
		pub, ok := published[part]
		if !ok {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, max(committed-pub, 0), part)
	}
}

// gaugeValues reads a one-label gauge vector's current values by label value.
func gaugeValues(v *prometheus.GaugeVec) map[string]float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() { v.Collect(ch); close(ch) }()
	out := map[string]float64{}
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil || len(d.GetLabel()) != 1 {
			continue
		}
		out[d.GetLabel()[0].GetValue()] = d.GetGauge().GetValue()
	}
	return out
}
