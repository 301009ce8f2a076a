package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
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
	group       string
	partitions  int
	maxBatch    int
	grace       time.Duration
	session     time.Duration
	apiKeys     string
	apiKeysFile string
	cacheSize   int
}

func (c *serveConfig) register(f envFlags) {
	c.kafka.register(f)
	c.db.register(f)
	c.log.register(f)
	f.String(&c.role, "role", "ORDERFLOW_ROLE", "all", "what to run: processor, api or all")
	f.String(&c.httpAddr, "http-addr", "ORDERFLOW_HTTP_ADDR", "127.0.0.1:8080", "HTTP listen address (API, /healthz, /metrics)")
	f.String(&c.group, "group", "ORDERFLOW_GROUP", processor.DefaultGroup, "Kafka consumer group of the processors")
	f.Int(&c.partitions, "partitions", "ORDERFLOW_PARTITIONS", topics.DefaultPartitions, "partitions of topics this process creates")
	f.Int(&c.maxBatch, "max-batch", "ORDERFLOW_MAX_BATCH", processor.DefaultMaxBatch, "most commands in one PostgreSQL transaction")
	f.Duration(&c.session, "session-timeout", "ORDERFLOW_SESSION_TIMEOUT", processor.DefaultSessionTimeout, "how long a silent processor keeps its partitions before the group moves them")
	f.Secret(&c.apiKeys, "api-keys", "ORDERFLOW_API_KEYS", "API keys as key:scope,... (scope read or write)")
	f.String(&c.apiKeysFile, "api-keys-file", "ORDERFLOW_API_KEYS_FILE", "", "file of API keys, one 'key scope' per line")
	f.Int(&c.cacheSize, "cache-size", "ORDERFLOW_CACHE_SIZE", query.DefaultCacheSize, "orders held in the point-read cache (negative: no cache)")
	f.Duration(&c.grace, "shutdown-grace", "ORDERFLOW_SHUTDOWN_GRACE", processor.DefaultShutdownGrace, "how long stopping waits for work in flight")
}

func (c *serveConfig) validate() error {
	switch c.role {
	case "processor", "api", "all":
	default:
		return fmt.Errorf("-role ($ORDERFLOW_ROLE): %q is not processor, api or all", c.role)
	}
	if c.partitions < 1 || c.partitions > 10000 {
		return fmt.Errorf("-partitions ($ORDERFLOW_PARTITIONS): %d is not in 1..10000", c.partitions)
	}
	if c.session < 6*time.Second || c.session > 5*time.Minute {
		return fmt.Errorf("-session-timeout ($ORDERFLOW_SESSION_TIMEOUT): %v is not in 6s..5m (the broker's default bounds)", c.session)
	}
	if c.maxBatch < 1 || c.maxBatch > 100000 {
		return fmt.Errorf("-max-batch ($ORDERFLOW_MAX_BATCH): %d is not in 1..100000", c.maxBatch)
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
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	log, err := c.log.logger()
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	kopts, err := c.kafka.opts()
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	pool, err := c.db.open(ctx, c.partitions+8)
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
	g.Go(func() error { return serveAPI(gctx, log, c, pool, kopts, reg, ready) })
	log.Info("orderflow serving", "role", c.role, "http", c.httpAddr, "topics", c.kafka.names().Commands)
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
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"unavailable"}`))
			return
		}
		_, _ = w.Write([]byte(`{"status":"ready"}`))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}
