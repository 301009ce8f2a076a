// Command readload offers an open-loop load of point reads,
// GET /v1/orders/{id}, at a fixed rate against orderflow's API, and reports
// their latency from each request's intended send time (so a stalled server
// cannot hide its queue). It picks the ids among orders that exist, read
// from the database once at start.
//
//	readload -url http://127.0.0.1:18080 -db $DATABASE_URL -rate 5000 -duration 20s
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/orderflow/orderflow/scripts/bench/benchkit"
)

func main() { benchkit.Main("readload", run) }

func run(ctx context.Context) error {
	var (
		base, db, out, name string
		rate, workers, ids  int
		duration, warmup    time.Duration
	)
	flag.StringVar(&base, "url", "http://127.0.0.1:18080", "orderflow API base URL")
	flag.StringVar(&db, "db", os.Getenv("DATABASE_URL"), "PostgreSQL URL, to find existing order ids")
	flag.IntVar(&rate, "rate", 5000, "requests per second (open loop)")
	flag.IntVar(&workers, "workers", 64, "concurrent connections")
	flag.IntVar(&ids, "ids", 20000, "how many existing orders to read from")
	flag.DurationVar(&duration, "duration", 20*time.Second, "how long to send")
	flag.DurationVar(&warmup, "warmup", 2*time.Second, "first part left out of the figures")
	flag.StringVar(&out, "out", "-", "JSON result file")
	flag.StringVar(&name, "name", "read", "name of the result")
	flag.Parse()

	orders, err := sample(ctx, db, ids)
	if err != nil {
		return err
	}
	if len(orders) == 0 {
		return fmt.Errorf("no orders in the database to read")
	}
	proto, err := newGetter(base, 10*time.Second)
	if err != nil {
		return err
	}

	type job struct {
		intended time.Time
		id       string
		first    bool // the run's first read of this order
	}
	// The queue is long enough for seconds of backlog: a slow server makes
	// requests wait here, and the wait counts in their latency.
	jobs := make(chan job, rate*10)
	// Reads are also split by whether the run read the order before: the
	// first read of an order is likely a miss of the API's cache (answered
	// by PostgreSQL), a repeat a hit. Their shares depend on how many ids
	// the run reads, and their latencies are different figures.
	var (
		mu                  sync.Mutex
		hist, first, repeat benchkit.Histogram
		okN, notOK, failedN atomic.Int64
		wg                  sync.WaitGroup
	)
	start := time.Now()
	from := start.Add(warmup)
	for range workers {
		wg.Go(func() {
			var h, hf, hr benchkit.Histogram
			g := *proto // a connection of its own
			defer g.close()
			defer func() { mu.Lock(); hist.Merge(&h); first.Merge(&hf); repeat.Merge(&hr); mu.Unlock() }()
			for j := range jobs {
				status, err := g.get(ctx, "/v1/orders/"+j.id)
				now := time.Now()
				switch {
				case err != nil:
					if failedN.Add(1) == 1 {
						log.Printf("first failed request: %v", err)
					}
				case status != http.StatusOK:
					if notOK.Add(1) == 1 {
						log.Printf("first answer that is not 200: status %d", status)
					}
				default:
					okN.Add(1)
				}
				if !j.intended.Before(from) {
					h.Record(now.Sub(j.intended))
					if j.first {
						hf.Record(now.Sub(j.intended))
					} else {
						hr.Record(now.Sub(j.intended))
					}
				}
			}
		})
	}
	perReq := float64(time.Second) / float64(rate)
	total := int(float64(rate) * duration.Seconds())
	r := rand.New(rand.NewPCG(1, 2)) //nolint:gosec // picking ids to read needs no secret randomness
	read := make([]bool, len(orders))
	for i := 0; i < total && ctx.Err() == nil; {
		now := time.Since(start)
		for ; i < total; i++ {
			due := time.Duration(float64(i) * perReq)
			if due > now {
				break
			}
			k := r.IntN(len(orders))
			jobs <- job{intended: start.Add(due), id: orders[k], first: !read[k]}
			read[k] = true
		}
		time.Sleep(time.Millisecond)
	}
	close(jobs)
	wg.Wait()
	window := duration - warmup
	res := &benchkit.Result{
		Name: name, Kind: "read", OfferedRate: float64(rate), Seconds: window.Seconds(),
		Throughput: float64(hist.Count()) / window.Seconds(), Latency: hist.Summary(),
		Sent: int64(total), Received: okN.Load(), Errors: failedN.Load() + notOK.Load(), Concurrency: workers,
		Notes: map[string]string{"ids": strconv.Itoa(len(orders)), "loop": "open", "latency": "from intended send time"},
		Parts: map[string]benchkit.Latency{"first read of an order": first.Summary(), "repeat read": repeat.Summary()},
	}
	res.Ratio = res.Throughput / float64(rate)
	res.Sustained = res.Ratio >= 0.95 && res.Errors == 0
	log.Printf("%d GET/s offered: p50 %.2f ms, p99 %.2f ms, max %.1f ms, %d errors; first reads of an order: %d, p99 %.2f ms; repeats: %d, p99 %.2f ms",
		rate, res.Latency.P50, res.Latency.P99, res.Latency.Max, res.Errors, first.Count(), first.Summary().P99, repeat.Count(), repeat.Summary().P99)
	return benchkit.WriteResult(out, res)
}

// sample returns up to n order ids that exist.
func sample(ctx context.Context, db string, n int) ([]string, error) {
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer func() { _ = conn.Close(ctx) }()
	rows, err := conn.Query(ctx, `SELECT order_id FROM orders TABLESAMPLE SYSTEM (50) LIMIT $1`, n)
	if err != nil {
		return nil, fmt.Errorf("sample orders: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("sample orders: %w", err)
	}
	return ids, nil
}
