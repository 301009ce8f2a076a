package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/query"
	"github.com/orderflow/orderflow/topics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"
)

func init() {
	register(command{name: "serve", summary: "run the processor and the HTTP API (see --role)", run: runServe})
}

type serveConfig struct {
	kafka       kafkaConfig
	db          dbConfig
	log         logConfig
	role        string
	httpAddr    string
	pprofAddr   string
	group       string
	partitions  int
	maxBatch    int
	grace       time.Duration
	session     time.Duration
	apiKeys     string
	apiKeysFile string
	cacheSize   int
	monitor     string
	monitorIvl  time.Duration
	stuckAfter  time.Duration
}

func (c *serveConfig) register(f envFlags) {
	f.String(&c.role, "role", "ORDERFLOW_ROLE", "all", "what to run: processor, api or all")
	c.kafka.register(f)
	c.db.register(f)
	f.String(&c.httpAddr, "http-addr", "ORDERFLOW_HTTP_ADDR", "127.0.0.1:8080", "HTTP listen address (API, /healthz, /metrics)")
	f.String(&c.pprofAddr, "pprof-addr", "ORDERFLOW_PPROF_ADDR", "", "loopback address for Go's /debug/pprof profiles (empty: off)")
	f.String(&c.group, "group", "ORDERFLOW_GROUP", processor.DefaultGroup, "Kafka consumer group of the processors")
	f.Int(&c.partitions, "partitions", "ORDERFLOW_PARTITIONS", topics.DefaultPartitions, "partitions of topics this process creates")
	f.Int(&c.maxBatch, "max-batch", "ORDERFLOW_MAX_BATCH", processor.DefaultMaxBatch, "most commands of one partition in one PostgreSQL transaction (a transaction that joins partitions stops adding them past it)")
	f.Duration(&c.session, "session-timeout", "ORDERFLOW_SESSION_TIMEOUT", processor.DefaultSessionTimeout, "how long a silent processor keeps its partitions before the group moves them")
	f.Duration(&c.grace, "shutdown-grace", "ORDERFLOW_SHUTDOWN_GRACE", processor.DefaultShutdownGrace, "how long stopping waits for work in flight")
	f.Secret(&c.apiKeys, "api-keys", "ORDERFLOW_API_KEYS", "API keys as key:scope,... (scope read or write)")
	f.String(&c.apiKeysFile, "api-keys-file", "ORDERFLOW_API_KEYS_FILE", "", "file of API keys, one 'key scope' per line")
	f.Int(&c.cacheSize, "cache-size", "ORDERFLOW_CACHE_SIZE", query.DefaultCacheSize, "orders held in the point-read cache (negative: no cache)")
	f.String(&c.monitor, "monitor", "ORDERFLOW_MONITOR", "auto", "measure lag, orders per state, stuck orders and dead letters: on, off, or auto (on in roles api and all)")
	f.Duration(&c.monitorIvl, "monitor-interval", "ORDERFLOW_MONITOR_INTERVAL", processor.DefaultMonitorInterval, "how often the monitor measures")
	f.Duration(&c.stuckAfter, "stuck-after", "ORDERFLOW_STUCK_AFTER", processor.DefaultStuckAfter, "age after which an order in a non-terminal state counts as stuck")
	c.log.register(f)
}

// Bounds of the settings, checked by validate.
const (
	maxPartitions = 10000
	maxBatchLimit = 100000
	maxPoolSize   = 10000
	maxCacheSize  = 100_000_000
	// maxTopicName is Kafka's limit on a topic name's length.
	maxTopicName = 249
)

// validate checks every setting before anything connects, and reports all
// that are wrong at once, each naming its flag and variable, so a
// deployment is fixed in one round rather than one error per restart.
func (c *serveConfig) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch c.role {
	case "processor", "api", "all":
	default:
		bad("-role ($ORDERFLOW_ROLE): %q is not processor, api or all", c.role)
	}
	if _, err := c.kafka.opts(); err != nil {
		errs = append(errs, err)
	}
	if err := checkTopicPrefix(c.kafka.prefix); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.db.config(); err != nil {
		errs = append(errs, err)
	}
	if c.db.poolSize < 0 || c.db.poolSize > maxPoolSize {
		bad("-db-pool-size ($ORDERFLOW_DB_POOL_SIZE): %d is not in 0..%d", c.db.poolSize, maxPoolSize)
	}
	if err := checkHostPort(c.httpAddr); err != nil {
		bad("-http-addr ($ORDERFLOW_HTTP_ADDR): %w", err)
	}
	if c.pprofAddr != "" {
		// Profiles show internals and cost CPU to take: never on a
		// public interface, and never on the API's port, which has auth.
		if err := checkHostPort(c.pprofAddr); err != nil {
			bad("-pprof-addr ($ORDERFLOW_PPROF_ADDR): %w", err)
		} else if !query.IsLoopback(c.pprofAddr) {
			bad("-pprof-addr ($ORDERFLOW_PPROF_ADDR): %q is not a loopback address", c.pprofAddr)
		}
	}
	if strings.TrimSpace(c.group) == "" {
		bad("-group ($ORDERFLOW_GROUP) is empty")
	}
	if c.partitions < 1 || c.partitions > maxPartitions {
		bad("-partitions ($ORDERFLOW_PARTITIONS): %d is not in 1..%d", c.partitions, maxPartitions)
	}
	if c.session < 6*time.Second || c.session > 5*time.Minute {
		bad("-session-timeout ($ORDERFLOW_SESSION_TIMEOUT): %v is not in 6s..5m (the broker's default bounds)", c.session)
	}
	if c.maxBatch < 1 || c.maxBatch > maxBatchLimit {
		bad("-max-batch ($ORDERFLOW_MAX_BATCH): %d is not in 1..%d", c.maxBatch, maxBatchLimit)
	}
	if c.grace < 0 || c.grace > 10*time.Minute {
		bad("-shutdown-grace ($ORDERFLOW_SHUTDOWN_GRACE): %v is not in 0..10m", c.grace)
	}
	if c.cacheSize > maxCacheSize {
		bad("-cache-size ($ORDERFLOW_CACHE_SIZE): %d is over %d", c.cacheSize, maxCacheSize)
	}
	if keys, err := query.LoadKeys(c.apiKeys, c.apiKeysFile); err != nil {
		// LoadKeys never echoes a key, only its position.
		bad("-api-keys ($ORDERFLOW_API_KEYS) / -api-keys-file ($ORDERFLOW_API_KEYS_FILE): %w", err)
	} else if len(keys) == 0 && c.role != "processor" && checkHostPort(c.httpAddr) == nil && !query.IsLoopback(c.httpAddr) {
		bad("-http-addr ($ORDERFLOW_HTTP_ADDR): %q is not a loopback address, and without API keys the API listens on loopback only; "+
			"set -api-keys-file ($ORDERFLOW_API_KEYS_FILE) or -api-keys ($ORDERFLOW_API_KEYS)", c.httpAddr)
	}
	switch c.monitor {
	case "auto", "on", "off":
	default:
		bad("-monitor ($ORDERFLOW_MONITOR): %q is not on, off or auto", c.monitor)
	}
	if c.monitorIvl < 100*time.Millisecond || c.monitorIvl > time.Hour {
		bad("-monitor-interval ($ORDERFLOW_MONITOR_INTERVAL): %v is not in 100ms..1h", c.monitorIvl)
	}
	if c.stuckAfter < time.Second {
		bad("-stuck-after ($ORDERFLOW_STUCK_AFTER): %v is under 1s", c.stuckAfter)
	}
	if _, err := c.log.logger(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// monitorOn says whether this process measures the deployment gauges. By
// default the API processes do, not the processors: the gauges then keep
// coming when every processor is down, which is when lag matters most. A
// deployment without API processes turns it on in one processor.
func (c *serveConfig) monitorOn() bool {
	switch c.monitor {
	case "on":
		return true
	case "off":
		return false
	default:
		return c.role != "processor"
	}
}

// poolSize is the effective number of PostgreSQL connections: one per
// partition worker plus headroom for the API and the monitor, never less.
func (c *serveConfig) poolSize() int { return max(c.db.poolSize, c.partitions+8) }

// checkHostPort accepts host:port with a numeric port; the host may be empty
// (all interfaces).
func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number in 0..65535", addr, port)
	}
	return nil
}

// checkTopicPrefix keeps the topic names legal for Kafka: letters, digits,
// '.', '_' and '-', at most 249 characters in all.
func checkTopicPrefix(prefix string) error {
	legal := func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
	}
	for _, r := range prefix {
		if !legal(r) {
			return fmt.Errorf("-topic-prefix ($ORDERFLOW_TOPIC_PREFIX): %q has %q; topic names allow only letters, digits, '.', '_' and '-'", prefix, r)
		}
	}
	if longest := topics.NewNames(prefix).DLQ; len(longest) > maxTopicName {
		return fmt.Errorf("-topic-prefix ($ORDERFLOW_TOPIC_PREFIX): makes topic name %q longer than %d characters", longest, maxTopicName)
	}
	return nil
}

func runServe(ctx context.Context, args []string, _ io.Writer) error {
	var c serveConfig
	f := newFlags("serve")
	c.register(f)
	if err := f.parse(args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return fmt.Errorf("%w: invalid configuration:\n  %s", errUsage, strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	log, err := c.log.logger()
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	// Every line says which role wrote it: processes of all roles usually
	// share one log pipeline.
	log = log.With("role", c.role)
	kopts, err := c.kafka.opts()
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	log.Debug("configuration", settingsAttrs(f)...)
	setGCPercent()
	pool, err := c.db.open(ctx, c.poolSize())
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := prepareDeployment(ctx, log, pool, kopts, c.kafka.names(), int32(c.partitions)); err != nil { //nolint:gosec // validated range
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	g, gctx := errgroup.WithContext(ctx)
	var ready func(context.Context) error
	if c.role != "api" {
		p, err := processor.New(processor.Config{
			KafkaOpts: kopts, Names: c.kafka.names(), Group: c.group, MaxBatch: c.maxBatch,
			ShutdownGrace: c.grace, SessionTimeout: c.session, Logger: log, Registerer: reg,
		}, pool)
		if err != nil {
			return err
		}
		ready = p.Ready
		g.Go(func() error { return p.Run(gctx) })
		g.Go(func() error { return maintainPartitions(gctx, log, pool) })
	}
	if c.monitorOn() {
		mon, err := processor.NewMonitor(processor.MonitorConfig{
			KafkaOpts: kopts, Names: c.kafka.names(), Interval: c.monitorIvl, StuckAfter: c.stuckAfter,
			Registerer: reg, Logger: log,
		}, pool)
		if err != nil {
			return err
		}
		g.Go(func() error { return mon.Run(gctx) })
	}
	g.Go(func() error { return serveAPI(gctx, log, c, pool, kopts, reg, ready) })
	if c.pprofAddr != "" {
		g.Go(func() error { return servePprof(gctx, c.pprofAddr) })
	}
	log.Info("orderflow serving", "http", c.httpAddr, "topics", c.kafka.names().Commands, "group", c.group,
		"partitions", c.partitions, "monitor", c.monitorOn())
	return g.Wait()
}

// prepareDeployment waits for PostgreSQL and Kafka, applies migrations,
// creates the months' partitions and the topics. Several processes may run
// it at once: each step is idempotent.
func prepareDeployment(ctx context.Context, log *slog.Logger, pool *pgxpool.Pool, kopts []kgo.Opt, names topics.Names, partitions int32) error {
	if err := waitPing(ctx, log, "PostgreSQL", pool.Ping); err != nil {
		return err
	}
	applied, err := store.Migrate(ctx, pool)
	if err != nil {
		return err
	}
	if len(applied) > 0 {
		log.Info("schema migrated", "applied", applied)
	}
	if err := store.EnsurePartitions(ctx, pool, time.Now()); err != nil {
		return err
	}
	// A short metadata age: Ensure polls metadata until new topics show,
	// and franz-go would otherwise answer from a 5 s cache.
	cl, err := kgo.NewClient(append(kopts, kgo.MetadataMinAge(100*time.Millisecond))...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	if err := waitPing(ctx, log, "Kafka", cl.Ping); err != nil {
		return err
	}
	n, err := topics.Ensure(ctx, kadm.NewClient(cl), names, topics.Settings{Partitions: partitions})
	if err != nil {
		return err
	}
	log.Debug("topics ready", "partitions", n)
	return nil
}

// maintainPartitions creates next months' partitions of the audit log once a
// day, so that inserts never find a month without one.
func maintainPartitions(ctx context.Context, log *slog.Logger, pool *pgxpool.Pool) error {
	t := time.NewTicker(24 * time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := store.EnsurePartitions(ctx, pool, time.Now()); err != nil && ctx.Err() == nil {
				log.Warn("create partitions", "err", err)
			}
		}
	}
}

// serveAPI runs the query API (role api or all), or only the operational
// endpoints (role processor), until ctx ends.
func serveAPI(ctx context.Context, log *slog.Logger, c serveConfig, pool *pgxpool.Pool, kopts []kgo.Opt,
	reg *prometheus.Registry, ready func(context.Context) error,
) error {
	if c.role == "processor" {
		return serveOps(ctx, c.httpAddr, reg, ready)
	}
	keys, err := query.LoadKeys(c.apiKeys, c.apiKeysFile)
	if err != nil {
		return fmt.Errorf("%w: -api-keys/-api-keys-file: %w", errUsage, err)
	}
	// No linger: a POST waits for its produce, and there is no batch to fill.
	producer, err := kgo.NewClient(append(kopts, kgo.ProducerLinger(0))...)
	if err != nil {
		return fmt.Errorf("kafka producer: %w", err)
	}
	defer producer.Close()
	api, err := query.New(query.Config{
		Addr: c.httpAddr, APIKeys: keys, Names: c.kafka.names(), ConsumerOpts: kopts,
		CacheSize: c.cacheSize, Registry: reg, Ready: ready, Logger: log,
	}, pool, producer)
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	return api.Run(ctx)
}

// serveOps serves /healthz, /readyz and /metrics for a processor-only
// process, so it can be probed and scraped like the others.
func serveOps(ctx context.Context, addr string, reg *prometheus.Registry, ready func(context.Context) error) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"status":"ok"}`)) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(r.Context()); err != nil {
			// The error starts with the dependency's name
			// (processor.Ready): that is all this reports.
			dep, _, _ := strings.Cut(err.Error(), ":")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, `{"status":"unavailable","failed":%q}`, dep)
			return
		}
		_, _ = w.Write([]byte(`{"status":"ready"}`))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return listen(ctx, "http", &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second})
}

// listen serves srv until ctx ends, then lets requests in flight finish
// (within 10 s).
func listen(ctx context.Context, name string, srv *http.Server) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return fmt.Errorf("%s: %w", name, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s shutdown: %w", name, err)
	}
	return nil
}

// servePprof serves Go's profiles (net/http/pprof) on addr until ctx ends.
func servePprof(ctx context.Context, addr string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return listen(ctx, "pprof http", &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second})
}

// serveGOGC is serve's garbage collector target when GOGC is not set. serve
// allocates for every record it handles, and with Go's default of 100 it
// spent 16-20 % of its CPU collecting at 40,000 transitions/s on the 2-core
// benchmark machine. With 400, two runs at 40,000/s achieved 39,700 and
// 40,200/s against 38,800 and 38,400/s with 100, and point reads under load
// had a lower p99. The price is a larger heap between collections: about
// 320 MB resident at 40,000/s.
const serveGOGC = 400

// setGCPercent applies serveGOGC unless the operator set GOGC, which the Go
// runtime has already applied.
func setGCPercent() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(serveGOGC)
	}
}
