// Command chaos is the driver of `make chaos` (scripts/chaos.sh starts it on
// a private stack): it runs several `orderflow serve --role processor`
// processes, offers them a load of commands with retries, conflicts and
// malformed records, and meanwhile SIGKILLs a random processor every few
// seconds, crashes and restarts the Kafka broker once and PostgreSQL once
// (checking that the processors back off, report not ready and resume by
// themselves), then restarts every processor in turn under a steady load.
// At the end it runs `orderflow verify`, checks every order and command
// against what the load predicts, measures the longest stall of a partition,
// and writes results.json and report.md into its run directory. It exits 1
// when anything did not hold.
//
// It restarts Kafka and PostgreSQL: never point it at a shared stack.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/scripts/chaos/workload"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

type config struct {
	brokers     string
	adminURL    string // a database of the server; the run creates its own beside it
	bin         string
	outDir      string
	stackUp     string // shell command that starts whatever of the stack is down
	kafkaStop   string // shell command that crashes the broker
	pgStop      string // shell command that crashes PostgreSQL
	processors  int
	partitions  int
	commands    int // valid-stream records of the fault phase
	poison      int // malformed records mixed into them
	rate        int // records/s offered in the fault phase
	rollingRate int // records/s offered during the rolling restart
	killMin     time.Duration
	killMax     time.Duration
	outage      time.Duration // how long Kafka and PostgreSQL stay down
	session     time.Duration
	httpBase    int
	seed        uint64
}

type driver struct {
	cfg    config
	ctx    context.Context
	runID  string
	runDir string
	log    *slog.Logger
	dbURL  string
	pool   *pgxpool.Pool
	kopts  []kgo.Opt
	names  topics.Names
	sup    *supervisor
	rnd    *rand.Rand // the fault schedule's; used under faultMu

	gen      *workload.Generator
	genMu    sync.Mutex
	prod     *kgo.Client
	produced atomic.Int64
	prodErrs atomic.Int64
	faultMu  sync.Mutex // a kill and an outage never overlap

	mu  sync.Mutex
	res results
}

func main() {
	var c config
	flag.StringVar(&c.brokers, "brokers", "127.0.0.1:29092", "Kafka of the private chaos stack")
	flag.StringVar(&c.adminURL, "admin-url", "postgres://postgres@127.0.0.1:25432/postgres?sslmode=disable", "PostgreSQL of the private chaos stack; the run creates a database of its own there")
	flag.StringVar(&c.bin, "bin", "bin/orderflow", "the orderflow binary")
	flag.StringVar(&c.outDir, "out", ".stack-chaos/runs", "where run directories (logs, results.json, report.md) go")
	flag.StringVar(&c.stackUp, "stack-up", "", "shell command that starts the stopped services (required)")
	flag.StringVar(&c.kafkaStop, "kafka-stop", "", "shell command that crashes the Kafka broker (required)")
	flag.StringVar(&c.pgStop, "pg-stop", "", "shell command that crashes PostgreSQL (required)")
	flag.IntVar(&c.processors, "processors", 3, "processor processes")
	flag.IntVar(&c.partitions, "partitions", 12, "partitions of the run's topics")
	flag.IntVar(&c.commands, "commands", 200000, "commands (with retries and conflicts) offered during the fault phase")
	flag.IntVar(&c.poison, "poison", 10000, "malformed records mixed into them")
	flag.IntVar(&c.rate, "rate", 2000, "records/s offered during the fault phase")
	flag.IntVar(&c.rollingRate, "rolling-rate", 1000, "records/s offered during the rolling restart")
	flag.DurationVar(&c.killMin, "kill-min", 4*time.Second, "least time between SIGKILLs")
	flag.DurationVar(&c.killMax, "kill-max", 8*time.Second, "most time between SIGKILLs")
	flag.DurationVar(&c.outage, "outage", 8*time.Second, "how long Kafka and PostgreSQL stay down")
	flag.DurationVar(&c.session, "session-timeout", 6*time.Second, "ORDERFLOW_SESSION_TIMEOUT of the processors")
	flag.IntVar(&c.httpBase, "http-base", 28081, "HTTP port of the first processor (the others follow)")
	flag.Uint64Var(&c.seed, "seed", uint64(time.Now().UnixNano()), "seed of the load and the fault schedule")
	flag.Parse()
	if c.stackUp == "" || c.kafkaStop == "" || c.pgStop == "" {
		fmt.Fprintln(os.Stderr, "chaos: -stack-up, -kafka-stop and -pg-stop are required (scripts/chaos.sh sets them)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, c)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, c config) int {
	d := &driver{cfg: c, ctx: ctx, rnd: rand.New(rand.NewPCG(c.seed, 1))} //nolint:gosec // a fault schedule
	d.runID = time.Now().UTC().Format("20060102t150405")
	d.runDir = filepath.Join(c.outDir, d.runID)
	if err := os.MkdirAll(d.runDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	logf, err := os.Create(filepath.Join(d.runDir, "driver.log"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	defer logf.Close()
	d.log = slog.New(slog.NewTextHandler(io.MultiWriter(os.Stdout, logf), nil))
	d.res.Run, d.res.Seed, d.res.Started = d.runID, c.seed, time.Now().UTC()
	d.log.Info("chaos run", "dir", d.runDir, "seed", c.seed)

	err = d.run()
	if err != nil {
		d.fail("run: %v", err)
	}
	if d.sup != nil {
		for _, e := range d.sup.stopAll(30 * time.Second) {
			d.fail("stop: %s", e)
		}
	}
	d.res.Ended = time.Now().UTC()
	d.res.Duration = d.res.Ended.Sub(d.res.Started).Round(time.Second).String()
	if err := d.writeReport(); err != nil {
		d.log.Error("write report", "err", err)
		return 1
	}
	if len(d.res.Failures) > 0 {
		d.log.Error("chaos run FAILED", "failures", len(d.res.Failures), "report", filepath.Join(d.runDir, "report.md"))
		for _, f := range d.res.Failures {
			fmt.Fprintln(os.Stderr, "  -", f)
		}
		return 1
	}
	d.log.Info("chaos run passed", "report", filepath.Join(d.runDir, "report.md"))
	return 0
}

func (d *driver) run() error {
	ctx := d.ctx
	if err := d.setup(ctx); err != nil {
		return err
	}
	defer d.pool.Close()
	defer d.prod.Close()
	for _, p := range d.sup.procs {
		if err := d.sup.start(p); err != nil {
			return err
		}
	}
	if _, err := d.sup.waitAll(ctx, 2*time.Minute, "ready", ready); err != nil {
		return err
	}
	d.event("ready", fmt.Sprintf("%d processors ready", len(d.sup.procs)))

	// Phase 1: load with kills, a Kafka crash and a PostgreSQL crash.
	d.res.Load.From = time.Now().UTC()
	// The phase ends when the load is offered and both outages are over.
	phase, endPhase := context.WithCancel(ctx)
	var (
		wg          sync.WaitGroup
		outagesDone atomic.Bool
	)
	wg.Go(func() { d.killLoop(phase) })
	wg.Go(func() { d.outages(phase); outagesDone.Store(true) })
	total := d.cfg.commands + d.cfg.poison
	err := d.load(ctx, d.cfg.rate, func() bool { return d.produced.Load() >= int64(total) && outagesDone.Load() },
		float64(d.cfg.poison)/float64(total))
	endPhase()
	wg.Wait()
	if err != nil {
		return err
	}
	d.event("phase", fmt.Sprintf("fault phase done: %d records offered", d.produced.Load()))
	d.res.Produced.FaultPhase = int(d.produced.Load())

	// Phase 2: restart each processor in turn (SIGTERM) under a steady load.
	rolling, endRolling := context.WithCancel(ctx)
	loadDone := make(chan error, 1)
	before := d.produced.Load()
	go func() {
		loadDone <- d.load(rolling, d.cfg.rollingRate, func() bool { return false }, 0.01)
	}()
	rollErr := d.rollingRestart(ctx)
	endRolling()
	if err := <-loadDone; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	d.res.Load.To = time.Now().UTC()
	d.res.Produced.RollingPhase = int(d.produced.Load() - before)
	if rollErr != nil {
		d.fail("rolling restart: %v", rollErr)
	}
	if err := d.prod.Flush(ctx); err != nil {
		return fmt.Errorf("flush producer: %w", err)
	}
	d.event("load", fmt.Sprintf("load done: %d records produced, %d produce errors", d.produced.Load(), d.prodErrs.Load()))

	// Drain, judge, measure.
	if err := d.drain(ctx, 5*time.Minute); err != nil {
		d.fail("drain: %v", err)
	}
	d.runVerify(ctx)
	for _, e := range d.sup.stopAll(30 * time.Second) {
		d.fail("graceful stop at the end: %s", e)
	}
	d.analyse(ctx)
	return nil
}

func (d *driver) setup(ctx context.Context) error {
	d.kopts = []kgo.Opt{kgo.SeedBrokers(strings.Split(d.cfg.brokers, ",")...)}
	prefix := "chaos" + d.runID + "."
	d.names = topics.NewNames(prefix)
	dbName := "chaos_" + d.runID
	admin, err := pgx.Connect(ctx, d.cfg.adminURL)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", redact(d.cfg.adminURL), err)
	}
	keep, err := prune(ctx, admin)
	if err == nil {
		_, err = admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{dbName}.Sanitize())
	}
	_ = admin.Close(ctx)
	if err != nil {
		return fmt.Errorf("create database %s: %w", dbName, err)
	}
	u, err := url.Parse(d.cfg.adminURL)
	if err != nil {
		return fmt.Errorf("admin URL: %w", err)
	}
	u.Path = "/" + dbName
	d.dbURL = u.String()
	pcfg, err := pgxpool.ParseConfig(d.dbURL)
	if err != nil {
		return fmt.Errorf("database URL: %w", err)
	}
	pcfg.MaxConns = 4
	if d.pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if _, err := store.Migrate(ctx, d.pool); err != nil {
		return err
	}
	if err := store.EnsurePartitions(ctx, d.pool, time.Now()); err != nil {
		return err
	}
	d.prod, err = kgo.NewClient(append(d.kopts, kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(20000))...)
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	adm := kadm.NewClient(d.prod)
	if err := pruneTopics(ctx, adm, keep); err != nil {
		d.log.Warn("delete the topics of earlier runs", "err", err)
	}
	if _, err := topics.Ensure(ctx, adm, d.names, topics.Settings{Partitions: int32(d.cfg.partitions)}); err != nil {
		return err
	}
	d.gen = workload.New(workload.Config{Seed: d.cfg.seed, Prefix: "o" + d.runID + "-", Active: 2000})
	env := []string{
		"KAFKA_BROKERS=" + d.cfg.brokers,
		"DATABASE_URL=" + d.dbURL,
		"ORDERFLOW_TOPIC_PREFIX=" + prefix,
		"ORDERFLOW_GROUP=" + prefix + "processors",
		fmt.Sprintf("ORDERFLOW_PARTITIONS=%d", d.cfg.partitions),
		"ORDERFLOW_SESSION_TIMEOUT=" + d.cfg.session.String(),
		"ORDERFLOW_LOG_LEVEL=debug",
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "KAFKA_BROKERS" && k != "DATABASE_URL" && !strings.HasPrefix(k, "ORDERFLOW_") {
			env = append(env, kv)
		}
	}
	d.sup = newSupervisor(d, env)
	d.res.Config = map[string]any{
		"processors": d.cfg.processors, "partitions": d.cfg.partitions, "commands": d.cfg.commands, "poison": d.cfg.poison,
		"rate": d.cfg.rate, "rolling_rate": d.cfg.rollingRate, "kill_every": d.cfg.killMin.String() + ".." + d.cfg.killMax.String(),
		"outage": d.cfg.outage.String(), "session_timeout": d.cfg.session.String(), "database": dbName, "topic_prefix": prefix,
	}
	return nil
}

// load offers records at rate per second until done says so or ctx ends;
// poisonShare of them are malformed.
func (d *driver) load(ctx context.Context, rate int, done func() bool, poisonShare float64) error {
	const tick = 10 * time.Millisecond
	perTick := max(1, rate/int(time.Second/tick))
	rnd := rand.New(rand.NewPCG(d.cfg.seed, uint64(rate))) //nolint:gosec // test data
	t := time.NewTicker(tick)
	defer t.Stop()
	for !done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		for range perTick {
			d.genMu.Lock()
			var r workload.Record
			if rnd.Float64() < poisonShare {
				r = d.gen.Poison()
			} else {
				r = d.gen.Next()
			}
			d.genMu.Unlock()
			// Produce blocks while the buffer is full (Kafka down): the
			// offered load waits rather than bursts afterwards. Not ctx:
			// a record generated is a record the prediction counts.
			d.prod.Produce(context.WithoutCancel(ctx), &kgo.Record{Topic: d.names.Commands, Key: r.Key, Value: r.Value}, func(_ *kgo.Record, err error) {
				if err != nil {
					if d.prodErrs.Add(1) <= 5 {
						d.event("error", "produce: "+err.Error())
					}
				}
			})
			d.produced.Add(1)
		}
	}
	return nil
}

// shell runs one of the stack commands.
func (d *driver) shell(ctx context.Context, what, command string) error {
	cmd := exec.CommandContext(ctx, "bash", "-c", command)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s (%s): %w\n%s", what, command, err, out)
	}
	d.log.Debug(what, "out", string(out))
	return nil
}

func (d *driver) event(kind, detail string) {
	e := event{At: time.Now().UTC(), Kind: kind, Detail: detail}
	d.mu.Lock()
	d.res.Timeline = append(d.res.Timeline, e)
	d.mu.Unlock()
	d.log.Info(detail, "event", kind)
}

func (d *driver) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	d.mu.Lock()
	d.res.Failures = append(d.res.Failures, msg)
	d.mu.Unlock()
	d.log.Error(msg)
}

// redact drops the password of a URL for messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// prune drops the databases of earlier runs but the latest, so that runs do
// not fill the disk and the last one can still be inspected; it returns the
// run id kept.
func prune(ctx context.Context, admin *pgx.Conn) (string, error) {
	rows, err := admin.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'chaos\_%' ORDER BY datname DESC`)
	if err != nil {
		return "", fmt.Errorf("list databases: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", fmt.Errorf("list databases: %w", err)
	}
	if len(names) == 0 {
		return "", nil
	}
	for _, n := range names[1:] {
		if _, err := admin.Exec(ctx, "DROP DATABASE "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)"); err != nil {
			return "", fmt.Errorf("drop database %s: %w", n, err)
		}
	}
	return strings.TrimPrefix(names[0], "chaos_"), nil
}

// pruneTopics deletes the topics of earlier runs but the one kept.
func pruneTopics(ctx context.Context, adm *kadm.Client, keep string) error {
	listed, err := adm.ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	var old []string
	for _, t := range listed.Names() {
		if strings.HasPrefix(t, "chaos") && (keep == "" || !strings.HasPrefix(t, "chaos"+keep+".")) {
			old = append(old, t)
		}
	}
	if len(old) == 0 {
		return nil
	}
	if _, err := adm.DeleteTopics(ctx, old...); err != nil {
		return fmt.Errorf("delete topics: %w", err)
	}
	return nil
}
