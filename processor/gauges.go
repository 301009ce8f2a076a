package processor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/orderflow/orderflow/processor/machine"
	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/topics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Defaults of MonitorConfig.
const (
	DefaultMonitorInterval = 10 * time.Second
	DefaultStuckAfter      = time.Hour
)

// MonitorConfig configures a Monitor. Zero fields take the defaults above.
type MonitorConfig struct {
	// KafkaOpts connect to the cluster (seed brokers, SASL, TLS).
	KafkaOpts []kgo.Opt
	Names     topics.Names
	// Interval is how often the gauges are measured.
	Interval time.Duration
	// StuckAfter is how long an order may sit in a non-terminal state
	// before orderflow_orders_stuck counts it.
	StuckAfter time.Duration
	// Registerer receives the gauges; nil registers none.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Monitor measures the deployment as a whole, from PostgreSQL and Kafka
// rather than from one member's memory: consumer lag per partition, orders
// per state, stuck orders and stored dead letters. So its numbers do not
// depend on which processor owns what, and they keep coming when no
// processor runs at all, which is when lag matters most. Every monitor of a
// deployment reports the same values; serve runs one in each API process.
type Monitor struct {
	cfg  MonitorConfig
	pool *pgxpool.Pool
	log  *slog.Logger

	lag     *prometheus.GaugeVec   // partition
	orders  *prometheus.GaugeVec   // state
	stuck   *prometheus.GaugeVec   // state
	dlq     prometheus.Gauge       //
	errs    *prometheus.CounterVec // check
	updated prometheus.Gauge

	stuckAt time.Time // when stuck orders were last counted; only Run's goroutine uses it
}

// stuckEvery is how often stuck orders are counted: every StuckAfter/12 (5
// minutes at the default hour), not every Interval, since it takes a scan
// of the orders table and stuckness moves on the scale of StuckAfter.
func (m *Monitor) stuckEvery() time.Duration { return max(m.cfg.Interval, m.cfg.StuckAfter/12) }

// NewMonitor validates cfg and registers the gauges; Run measures them.
func NewMonitor(cfg MonitorConfig, pool *pgxpool.Pool) (*Monitor, error) {
	cfg.Interval = cmp.Or(cfg.Interval, DefaultMonitorInterval)
	cfg.StuckAfter = cmp.Or(cfg.StuckAfter, DefaultStuckAfter)
	if cfg.Names.Commands == "" {
		cfg.Names = topics.NewNames("")
	}
	if pool == nil {
		return nil, errors.New("monitor: nil pool")
	}
	if cfg.Interval < 0 || cfg.StuckAfter < 0 {
		return nil, fmt.Errorf("monitor: negative Interval %v or StuckAfter %v", cfg.Interval, cfg.StuckAfter)
	}
	m := &Monitor{
		cfg: cfg, pool: pool, log: cmp.Or(cfg.Logger, slog.Default()),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderflow_consumer_lag_records",
			Help: "Commands not yet processed, per partition of the commands topic: its end offset minus the next offset stored in PostgreSQL.",
		}, []string{"partition"}),
		orders: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderflow_orders",
			Help: "Orders per current state.",
		}, []string{"state"}),
		stuck: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "orderflow_orders_stuck",
			Help: "Orders in a non-terminal state whose last transition is older than the stuck-after age (ORDERFLOW_STUCK_AFTER), per state; counted every twelfth of that age (or every monitor interval, if longer).",
		}, []string{"state"}),
		dlq: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderflow_dlq_records",
			Help: "Records ever sent to the DLQ, as kept in PostgreSQL's dead_letters table.",
		}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orderflow_monitor_errors_total",
			Help: "Failed measurements of the deployment gauges, by check (lag, orders, dead_letters); the gauges keep their last values.",
		}, []string{"check"}),
		updated: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orderflow_monitor_updated_timestamp_seconds",
			Help: "When the deployment gauges were last measured without error (Unix time).",
		}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{m.lag, m.orders, m.stuck, m.dlq, m.errs, m.updated} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("monitor: register metrics: %w", err)
			}
		}
	}
	for _, c := range monitorChecks {
		m.errs.WithLabelValues(c.name) // so a rate() has a zero to start from
	}
	return m, nil
}

// monitorChecks are the measurements of update, each with the check label
// of orderflow_monitor_errors_total. NewMonitor creates the zero series from
// the same table, so a new check cannot miss its zero.
var monitorChecks = []struct {
	name string
	run  func(m *Monitor, ctx context.Context, adm *kadm.Client) error
}{
	{"lag", (*Monitor).updateLag},
	{"orders", func(m *Monitor, ctx context.Context, _ *kadm.Client) error { return m.updateOrders(ctx) }},
	{"dead_letters", func(m *Monitor, ctx context.Context, _ *kadm.Client) error { return m.updateDLQ(ctx) }},
}

// Run measures at once and then every Interval until ctx ends. It returns
// nil when ctx ends; failed measurements are counted and logged, never
// fatal, since metrics must not take the service down.
func (m *Monitor) Run(ctx context.Context) error {
	cl, err := kgo.NewClient(m.cfg.KafkaOpts...)
	if err != nil {
		return fmt.Errorf("monitor: kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	failing := false
	for {
		err := m.update(ctx, adm)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && !failing:
			// Once per outage, not once per tick: the counter has the rest.
			m.log.Warn("monitor: measuring the deployment failed; retrying", "err", err, "every", m.cfg.Interval)
		case err == nil && failing:
			m.log.Info("monitor: measuring the deployment works again")
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// update measures every gauge once; each check runs even when another fails.
func (m *Monitor) update(ctx context.Context, adm *kadm.Client) error {
	ctx, cancel := context.WithTimeout(ctx, max(m.cfg.Interval, 5*time.Second))
	defer cancel()
	var errs []error
	for _, c := range monitorChecks {
		if err := c.run(m, ctx, adm); err != nil {
			m.errs.WithLabelValues(c.name).Inc()
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
		}
	}
	if len(errs) == 0 {
		m.updated.SetToCurrentTime()
	}
	return errors.Join(errs...)
}

// updateOrders sets the orders per state from order_counts, which batches
// keep, and the stuck orders from a scan of orders when stuckEvery has
// passed. That scan runs without parallel workers: one core for longer
// rather than every core at once, which stalled the whole pipeline for a
// moment every time at a million orders. The age is compared with the
// database's clock, not ours, so host clock skew cannot make orders look
// stuck.
func (m *Monitor) updateOrders(ctx context.Context) error {
	counts, err := store.OrderCounts(ctx, m.pool)
	if err != nil {
		return err
	}
	// Every state gets a series, zeros included, so dashboards and alerts
	// never see one vanish.
	for _, s := range machine.States() {
		m.orders.WithLabelValues(string(s)).Set(float64(counts[string(s)]))
	}
	now := time.Now()
	if now.Sub(m.stuckAt) < m.stuckEvery() {
		return nil
	}
	var nonTerminal []string
	for _, s := range machine.States() {
		if !s.Terminal() {
			nonTerminal = append(nonTerminal, string(s))
		}
	}
	stuck := map[string]int64{}
	err = pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL max_parallel_workers_per_gather = 0`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT state, count(*) FROM orders
			WHERE state = ANY($1) AND updated_at < now() - $2 * interval '1 second' GROUP BY state`,
			nonTerminal, m.cfg.StuckAfter.Seconds())
		if err != nil {
			return err
		}
		var state string
		var n int64
		_, err = pgx.ForEachRow(rows, []any{&state, &n}, func() error { stuck[state] = n; return nil })
		return err
	})
	if err != nil {
		return fmt.Errorf("count stuck orders: %w", err)
	}
	for _, s := range nonTerminal {
		m.stuck.WithLabelValues(s).Set(float64(stuck[s]))
	}
	m.stuckAt = now
	return nil
}

// updateDLQ counts stored dead letters. They are rare by design, so the
// count stays cheap; the table is never pruned, so this only grows.
func (m *Monitor) updateDLQ(ctx context.Context) error {
	var n int64
	if err := m.pool.QueryRow(ctx, `SELECT count(*) FROM dead_letters`).Scan(&n); err != nil {
		return fmt.Errorf("count dead letters: %w", err)
	}
	m.dlq.Set(float64(n))
	return nil
}
