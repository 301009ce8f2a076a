// Command pgbatch measures the PostgreSQL limit of orderflow's write path:
// the processor's own decisions (processor.Batch) and batch SQL
// (store.RunBatch) driven from Go with no Kafka at all. With -batch 1 it is one transition per transaction (B2s);
// with larger batches it is B2, and a list of sizes gives the throughput
// against batch size curve. It can also preload a database with a million
// live orders (-preload) for the large-table runs.
//
//	pgbatch -db $DATABASE_URL -batch 1,100,1000 -duration 8s -out-dir results/
//	pgbatch -db $DATABASE_URL -preload 1000000
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/scripts/bench/benchkit"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() { benchkit.Main("pgbatch", run) }

type config struct {
	db         string
	partitions int
	batches    []int
	duration   time.Duration
	outDir     string
	recreate   bool
	onlyCreate bool
	drop       bool
	preload    int
	prefix     string
	gen        benchkit.GenConfig
}

func run(ctx context.Context) error {
	var (
		c       config
		batches string
	)
	flag.StringVar(&c.db, "db", os.Getenv("DATABASE_URL"), "PostgreSQL URL")
	flag.IntVar(&c.partitions, "partitions", topics.DefaultPartitions, "concurrent writers, one per command partition, as the processor has")
	flag.StringVar(&batches, "batch", "1,10,100,1000,2000", "commands per transaction; a comma list measures each")
	flag.DurationVar(&c.duration, "duration", 8*time.Second, "measuring time per batch size")
	flag.StringVar(&c.outDir, "out-dir", "", "write one JSON result per size here (default: stdout)")
	flag.BoolVar(&c.recreate, "recreate", false, "drop and create the database first")
	flag.BoolVar(&c.onlyCreate, "recreate-only", false, "drop and create the database, then stop")
	flag.BoolVar(&c.drop, "drop", false, "drop the database, then stop")
	flag.IntVar(&c.preload, "preload", 0, "instead of measuring, add this many live orders (state Created) with their create transition")
	flag.StringVar(&c.prefix, "preload-prefix", "live-", "order id prefix of preloaded orders")
	flag.IntVar(&c.gen.Orders, "orders", 2000, "orders in flight per writer")
	flag.Float64Var(&c.gen.Invalid, "invalid", 0.01, "share of invalid commands")
	flag.Float64Var(&c.gen.Duplicate, "duplicate", 0.01, "share of duplicate commands")
	flag.Float64Var(&c.gen.Conflict, "conflict", 0.01, "share of version conflicts")
	flag.Parse()
	if c.db == "" {
		return fmt.Errorf("-db (or $DATABASE_URL) is required")
	}
	for s := range strings.SplitSeq(batches, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 100000 {
			return fmt.Errorf("-batch: %q is not in 1..100000", s)
		}
		c.batches = append(c.batches, n)
	}
	if c.drop {
		return benchkit.DropDB(ctx, c.db)
	}
	if c.recreate || c.onlyCreate {
		if err := benchkit.RecreateDB(ctx, c.db); err != nil {
			return err
		}
		if c.onlyCreate {
			return nil
		}
	}
	pool, err := benchkit.OpenPool(ctx, c.db, c.partitions+4)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := store.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := store.EnsurePartitions(ctx, pool, time.Now()); err != nil {
		return err
	}
	if c.preload > 0 {
		return preload(ctx, pool, c.preload, c.prefix)
	}
	run := strconv.FormatInt(time.Now().UnixMilli(), 36)
	for _, size := range c.batches {
		res, err := measure(ctx, pool, &c, size, run)
		if err != nil {
			return err
		}
		log.Printf("batch %5d: %8.0f transitions/s, commit p50 %.1f ms p99 %.1f ms", size, res.Throughput, res.Latency.P50, res.Latency.P99)
		path := ""
		if c.outDir != "" {
			path = filepath.Join(c.outDir, res.Name+".json")
		}
		if err := benchkit.WriteResult(path, res); err != nil {
			return err
		}
	}
	return nil
}

// measure runs c.partitions writers, each committing batches of size
// commands as the processor's worker does, for c.duration.
func measure(ctx context.Context, pool *pgxpool.Pool, c *config, size int, run string) (*benchkit.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.duration)
	defer cancel()
	var (
		transitions atomic.Int64
		mu          sync.Mutex
		hist        benchkit.Histogram
		firstErr    error
		wg          sync.WaitGroup
	)
	start := time.Now()
	for p := range c.partitions {
		wg.Go(func() {
			var h benchkit.Histogram
			err := writer(ctx, pool, c, size, run, int32(p), &h, &transitions)
			mu.Lock()
			defer mu.Unlock()
			hist.Merge(&h)
			if err != nil && ctx.Err() == nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	secs := time.Since(start).Seconds()
	kind, name := "b2", fmt.Sprintf("b2-batch-%d", size)
	if size == 1 {
		kind, name = "b2s", "b2s"
	}
	return &benchkit.Result{
		Name: name, Kind: kind, Seconds: secs, Throughput: float64(transitions.Load()) / secs,
		Latency: hist.Summary(), BatchSize: size, Concurrency: c.partitions, Sustained: true,
		Notes: map[string]string{"latency": "per transaction (BEGIN to COMMIT)", "partitions": strconv.Itoa(c.partitions)},
	}, nil
}

// writer is one partition's worker without Kafka: it claims a partition of
// a topic name no processor uses, then commits generated commands.
func writer(ctx context.Context, pool *pgxpool.Pool, c *config, size int, run string, p int32,
	h *benchkit.Histogram, transitions *atomic.Int64,
) error {
	cfg := c.gen
	cfg.Prefix = fmt.Sprintf("pg%s-%d-%d-", run, size, p)
	cfg.Seed = uint64(p) + 1
	gen, err := benchkit.NewGen(cfg)
	if err != nil {
		return err
	}
	// One topic name for every size and run: positions (offsets and outbox
	// seqs) are per partition in a database, as for one deployment.
	owner := store.Owner{Topic: "pgbatch", Partition: p, Token: cfg.Prefix}
	pos, err := store.Claim(ctx, pool, owner)
	if err != nil {
		return err
	}
	recs := make([]*kgo.Record, size)
	for ctx.Err() == nil {
		// Encoding and decoding happen before the transaction, as a
		// worker decodes before it hands the batch over.
		now := time.Now()
		for i := range recs {
			c := gen.Next()
			recs[i] = &kgo.Record{Offset: pos.NextOffset + int64(i), Key: []byte(c.OrderID), Value: benchkit.AppendJSON(nil, &c, "bench", now)}
		}
		b := processor.NewBatch(recs)
		var n int
		t := time.Now()
		err := store.RunBatch(ctx, pool, owner, b.OrderIDs, b.CommandIDs, func(s store.Snapshot) (store.Writes, error) {
			w := b.Decide(s, store.Now())
			n = len(w.Outcomes)
			pos = w.Position
			return w, nil
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil //nolint:nilerr // the measurement window closed mid-transaction
			}
			return fmt.Errorf("partition %d: %w", p, err)
		}
		h.Record(time.Since(t))
		transitions.Add(int64(n))
	}
	return nil
}

// preload adds n orders in state Created at version 1, each with its create
// transition and command row, in set-based SQL. Their audit rows go to
// partition -1, which no publisher reads, so nothing is published for them.
func preload(ctx context.Context, pool *pgxpool.Pool, n int, prefix string) error {
	start := time.Now()
	id := `$1 || lpad(g::text, 7, '0')`
	steps := []string{
		`INSERT INTO orders (order_id, state, version, created_at, updated_at)
			SELECT ` + id + `, 'Created', 1, now(), now() FROM generate_series(0, $2 - 1) g ON CONFLICT DO NOTHING`,
		`INSERT INTO commands (command_id, order_id, topic_partition, seq, processed_at)
			SELECT ` + id + ` || '-create', ` + id + `, -1, g, now() FROM generate_series(0, $2 - 1) g ON CONFLICT DO NOTHING`,
		`INSERT INTO transitions (processed_at, topic_partition, source_offset, seq, event_id, command_id, order_id,
				action, outcome, from_state, to_state, version, actor)
			SELECT now(), -1, g, g, ` + id + ` || '/1', ` + id + ` || '-create', ` + id + `,
				'create', 'accepted', NULL, 'Created', 1, 'preload' FROM generate_series(0, $2 - 1) g`,
		`ANALYZE orders`, `ANALYZE commands`, `ANALYZE transitions`,
	}
	for _, s := range steps {
		args := []any{prefix, n}
		if strings.HasPrefix(s, "ANALYZE") {
			args = nil
		}
		if _, err := pool.Exec(ctx, s, args...); err != nil {
			return fmt.Errorf("preload: %w", err)
		}
	}
	// The orders above bypassed the batches that keep order_counts.
	if err := store.RecountOrders(ctx, pool); err != nil {
		return fmt.Errorf("preload: %w", err)
	}
	log.Printf("preloaded %d orders (%s0000000..) in %.1fs", n, prefix, time.Since(start).Seconds())
	return nil
}
