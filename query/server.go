package query

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/topics"
)

// Defaults of Config.
const (
	DefaultAddr             = "127.0.0.1:8080"
	DefaultCacheSize        = 100_000
	DefaultOutcomeCacheSize = 10_000
	DefaultShutdownTimeout  = 10 * time.Second
	// MaxBodyBytes bounds a request body: the contract's limit for a
	// command record, which a POST body becomes.
	MaxBodyBytes = topics.MaxValueBytes
)

// pollInterval is how often a waiting request re-reads PostgreSQL. Waiters
// are woken by the events feed within milliseconds; the poll is the safety
// net for a feed that lags or is down, so that a committed outcome is never
// reported as "still pending" for longer than this.
const pollInterval = 500 * time.Millisecond

// readyTimeout bounds each /readyz check: a probe that hangs is a failure.
const readyTimeout = 2 * time.Second

// Config configures a Server. The zero value of every field is usable.
type Config struct {
	// Addr is the listen address of Run. Without APIKeys it must be a
	// loopback address. Default DefaultAddr.
	Addr string
	// APIKeys are the accepted keys (see LoadKeys and KeysFromEnv). Empty
	// means no authentication, on loopback only.
	APIKeys []Key
	// Names are the topics; zero means topics.NewNames("").
	Names topics.Names
	// Brokers are the seed brokers of the events feed's own client.
	// Default: the producer's seed brokers.
	Brokers []string
	// ConsumerOpts are added to the events feed client's options (TLS, SASL,
	// client id, ...).
	ConsumerOpts []kgo.Opt
	// CacheSize is how many orders the point-read cache holds; default
	// DefaultCacheSize; negative turns the cache off (every read goes to
	// PostgreSQL).
	CacheSize int
	// OutcomeCacheSize is how many recent command outcomes are kept by
	// command_id; default DefaultOutcomeCacheSize; negative turns it off.
	OutcomeCacheSize int
	// MaxWait is the longest ?wait= accepted; default DefaultMaxWait.
	MaxWait time.Duration
	// ShutdownTimeout bounds the graceful shutdown of Run.
	ShutdownTimeout time.Duration
	// Registry receives the API's metrics and is what /metrics serves, so
	// pass the processor's registry to expose both. Nil means a new
	// registry with the Go and process collectors.
	Registry *prometheus.Registry
	// Ready is an extra readiness check (the processor's); /readyz fails
	// with its error as "processor".
	Ready func(context.Context) error
	// Logger receives start, stop and failure logs; requests are logged at
	// debug only. Nil means slog.Default().
	Logger *slog.Logger
}

// Server is the query API. Create it with New and serve it with Run (or
// Serve, on a listener of your own).
type Server struct {
	cfg      Config
	names    topics.Names
	db       db
	producer *kgo.Client
	brokers  []string
	keys     *keyring
	log      *slog.Logger
	registry *prometheus.Registry
	metrics  *metrics
	engine   *gin.Engine

	orders   *orderCache
	outcomes outcomeCache
	hub      *hub

	feedReady     chan struct{} // closed once the events feed consumes
	feedReadyOnce sync.Once
	stopping      chan struct{} // closed when Run's context ends: waiters give up at once
	stopOnce      sync.Once
}

var ginMode sync.Once

// New builds a Server. pool is the read model; producer publishes commands
// and must not be transactional (an idempotent producer is right). New
// starts nothing: Run does.
func New(cfg Config, pool *pgxpool.Pool, producer *kgo.Client) (*Server, error) {
	if pool == nil || producer == nil {
		return nil, errors.New("query: New needs a PostgreSQL pool and a Kafka producer")
	}
	s, err := newServer(cfg, pool, producer)
	if err != nil {
		return nil, err
	}
	if len(s.brokers) == 0 {
		return nil, errors.New("query: Config.Brokers is empty and the producer has no seed brokers")
	}
	return s, nil
}

// newServer builds a Server without checking its dependencies, so that tests
// of routing and validation need neither PostgreSQL nor Kafka.
func newServer(cfg Config, pool *pgxpool.Pool, producer *kgo.Client) (*Server, error) {
	cfg.Addr = cmp.Or(cfg.Addr, DefaultAddr)
	cfg.MaxWait = cmp.Or(cfg.MaxWait, DefaultMaxWait)
	cfg.ShutdownTimeout = cmp.Or(cfg.ShutdownTimeout, DefaultShutdownTimeout)
	cfg.CacheSize = cmp.Or(cfg.CacheSize, DefaultCacheSize)
	cfg.OutcomeCacheSize = cmp.Or(cfg.OutcomeCacheSize, DefaultOutcomeCacheSize)
	if cfg.MaxWait < 0 {
		return nil, fmt.Errorf("query: Config.MaxWait %s is negative", cfg.MaxWait)
	}
	if err := checkListen(cfg.Addr, len(cfg.APIKeys) > 0); err != nil {
		return nil, err
	}
	for i, k := range cfg.APIKeys {
		if _, err := newKey(k.Secret, string(k.Scope)); err != nil {
			return nil, fmt.Errorf("query: Config.APIKeys[%d]: %w", i, err)
		}
	}
	if err := checkDuplicates(cfg.APIKeys); err != nil {
		return nil, fmt.Errorf("query: Config.APIKeys: %w", err)
	}
	s := &Server{
		cfg:       cfg,
		names:     cfg.Names,
		db:        db{pool: pool},
		producer:  producer,
		brokers:   cfg.Brokers,
		keys:      newKeyring(cfg.APIKeys),
		log:       cmp.Or(cfg.Logger, slog.Default()),
		registry:  cfg.Registry,
		orders:    newOrderCache(cfg.CacheSize),
		outcomes:  outcomeCache{newLRU[*lazyEvent](cfg.OutcomeCacheSize)},
		hub:       newHub(),
		feedReady: make(chan struct{}),
		stopping:  make(chan struct{}),
	}
	if s.names == (topics.Names{}) {
		s.names = topics.NewNames("")
	}
	if len(s.brokers) == 0 && producer != nil {
		if seeds, ok := producer.OptValue(kgo.SeedBrokers).([]string); ok {
			s.brokers = seeds
		}
	}
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
		s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m, err := newMetrics(s.registry, s)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	s.metrics = m
	s.engine = s.routes()
	return s, nil
}

func (s *Server) routes() *gin.Engine {
	ginMode.Do(func() { gin.SetMode(gin.ReleaseMode) })
	e := gin.New()
	// Route on the escaped path so an order id may hold "/" (sent as %2F);
	// path values are unescaped before handlers see them.
	e.UseEscapedPath = true
	e.UnescapePathValues = true
	// Redirects would answer a typo with a 301 instead of a JSON error.
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true
	e.Use(s.requestID, s.observe, s.recover, limitBody)
	e.NoRoute(func(c *gin.Context) {
		writeError(c, newError(http.StatusNotFound, CodeNotFound, "no route for %s %s", c.Request.Method, truncate(c.Request.URL.Path, 200)))
	})
	e.NoMethod(func(c *gin.Context) {
		writeError(c, newError(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "%s is not allowed here", c.Request.Method))
	})

	read, write := s.requireScope(ScopeRead), s.requireScope(ScopeWrite)
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/openapi.json", s.openAPI)
	metricsHandler := promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{Registry: s.registry})
	e.GET("/metrics", read, gin.WrapH(metricsHandler))

	v1 := e.Group("/v1")
	v1.GET("/orders", read, s.listOrders)
	v1.GET("/orders/:order_id", read, s.getOrder)
	v1.GET("/orders/:order_id/history", read, s.history)
	v1.POST("/orders/:order_id/commands", write, s.postCommand)
	v1.GET("/commands/:command_id", read, s.getCommand)
	v1.GET("/stats", read, s.stats)
	v1.GET("/machine", read, s.machine)
	return e
}

// Handler returns the HTTP handler. Mounted without Run, it serves reads from
// PostgreSQL; the cache and the wake-ups of ?wait then need the events feed
// that Run starts (waits still end through polling).
func (s *Server) Handler() http.Handler { return s.engine }

// Run listens on Config.Addr and serves until ctx ends; see Serve.
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("query: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve starts the events feed and serves HTTP on ln until ctx ends, then
// shuts down gracefully: waiting requests are answered at once (as if their
// wait ended), in-flight ones get Config.ShutdownTimeout to finish. It
// returns nil after a clean shutdown. Call it once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := checkListen(ln.Addr().String(), !s.keys.empty()); err != nil {
		_ = ln.Close()
		return fmt.Errorf("query: %w", err)
	}
	if s.keys.empty() {
		s.log.Warn("no API keys configured: the query API is unauthenticated and listens on loopback only",
			"addr", ln.Addr().String(), "set", EnvAPIKeys+" or "+EnvAPIKeysFile)
	} else {
		s.log.Info("query API listening", "addr", ln.Addr().String(), "api_keys", len(s.cfg.APIKeys))
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	feedDone := make(chan struct{})
	go func() {
		defer close(feedDone)
		s.runFeed(ctx)
	}()

	srv := &http.Server{
		Handler:           s.engine,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// A response may legitimately take MaxWait to start.
		WriteTimeout:   s.cfg.MaxWait + 30*time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	s.stop()
	shutCtx, shutCancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer shutCancel()
	shutErr := srv.Shutdown(shutCtx)
	cancel()
	<-feedDone
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("query: serve: %w", serveErr)
	}
	if shutErr != nil {
		return fmt.Errorf("query: shutdown: %w", shutErr)
	}
	s.log.Info("query API stopped")
	return nil
}

func (s *Server) stop() { s.stopOnce.Do(func() { close(s.stopping) }) }

// requestIDKey is where the request id lives in the gin context.
const requestIDKey = "orderflow.request_id"

// requestID takes X-Request-ID from the client when it is a sane token
// (so a gateway's id can be followed through the logs), else makes one, and
// echoes it in the response.
func (s *Server) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-ID")
	if !saneRequestID(id) {
		id = uuid.NewString()
	}
	c.Set(requestIDKey, id)
	c.Header("X-Request-ID", id)
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if r > unicode.MaxASCII || !unicode.IsGraphic(r) || r == ' ' {
			return false
		}
	}
	return true
}

func requestID(c *gin.Context) string { return c.GetString(requestIDKey) }

// observe counts and times every request by its route pattern (never the
// raw path, whose ids would make unbounded label values).
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	code := strconv.Itoa(c.Writer.Status())
	elapsed := time.Since(start)
	s.metrics.requests.WithLabelValues(c.Request.Method, route, code).Inc()
	s.metrics.duration.WithLabelValues(c.Request.Method, route).Observe(elapsed.Seconds())
	if s.log.Enabled(c.Request.Context(), slog.LevelDebug) {
		s.log.Debug("request", "method", c.Request.Method, "route", route, "status", c.Writer.Status(),
			"duration", elapsed, "request_id", requestID(c))
	}
}

// recover turns a panic into a JSON 500 and a log line with the request id.
func (s *Server) recover(c *gin.Context) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if r == http.ErrAbortHandler { //nolint:errorlint // a sentinel compared as net/http does
			panic(r)
		}
		s.log.Error("handler panicked", "panic", r, "route", c.FullPath(), "request_id", requestID(c))
		if !c.Writer.Written() {
			writeError(c, newError(http.StatusInternalServerError, CodeInternal, "internal error (request id %s)", requestID(c)))
		}
		c.Abort()
	}()
	c.Next()
}

func limitBody(c *gin.Context) {
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes)
	}
}
