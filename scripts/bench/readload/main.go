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

	// The schedule is drawn up front: request i is due at start + i/rate,
	// for a random one of the ids. Reads are also split by whether the run
	// read the order before: the first read of an order is likely a miss of
	// the API's cache (answered by PostgreSQL), a repeat a hit. Their shares
	// depend on how many ids the run reads, and their latencies are
	// different figures.
	total := int(float64(rate) * duration.Seconds())
	pick, first := drawSchedule(total, len(orders))
	perReq := float64(time.Second) / float64(rate)

	// Each connection sends its own share of the schedule: requests w,
	// w+workers, w+2*workers... each when due, or at once when the one
	// before took longer. One dispatcher goroutine feeding a queue measured
	// itself: Go sleeps no less than about 1 ms here, so its requests left
	// 0.84 ms late at the median and 1.80 ms at p99 (reads alone), all of
	// it counted as the server's latency. A connection's own sleep until
	// its next request, 12.8 ms ahead at 5,000/s, overshoots by a tenth of
	// that. Latency still counts from the due time, so a slow answer
	// delays the connection's next requests and that wait counts too.
	var (
		mu                        sync.Mutex
		hist, firsts, repeat, lag benchkit.Histogram
		okN, notOK, failedN       atomic.Int64
		wg                        sync.WaitGroup
	)
	start := time.Now().Add(10 * time.Millisecond) // every connection ready at the first due time
	from := start.Add(warmup)
	for w := range workers {
		wg.Go(func() {
			var hf, hr, hl benchkit.Histogram
			g := *proto // a connection of its own
			defer g.close()
			defer func() {
				mu.Lock()
				firsts.Merge(&hf)
				repeat.Merge(&hr)
				lag.Merge(&hl)
				mu.Unlock()
			}()
			for i := w; i < total; i += workers {
				due := start.Add(time.Duration(float64(i) * perReq))
				if !sleepUntil(ctx, due) {
					return
				}
				sent := time.Now()
				status, err := g.get(ctx, "/v1/orders/"+orders[pick[i]])
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
				if due.Before(from) {
					continue
				}
				hl.Record(sent.Sub(due))
				if first[i] {
					hf.Record(now.Sub(due))
				} else {
					hr.Record(now.Sub(due))
				}
			}
		})
	}
	wg.Wait()
	hist.Merge(&firsts)
	hist.Merge(&repeat)
	window := duration - warmup
	res := &benchkit.Result{
		Name: name, Kind: "read", OfferedRate: float64(rate), Seconds: window.Seconds(),
		Throughput: float64(hist.Count()) / window.Seconds(), Latency: hist.Summary(),
		Sent: int64(total), Received: okN.Load(), Errors: failedN.Load() + notOK.Load(), Concurrency: workers,
		Notes: map[string]string{"ids": strconv.Itoa(len(orders)), "loop": "open", "latency": "from intended send time"},
		Parts: map[string]benchkit.Latency{
			benchkit.PartFirstRead: firsts.Summary(), benchkit.PartRepeatRead: repeat.Summary(), benchkit.PartSendLag: lag.Summary(),
		},
	}
	res.Ratio = res.Throughput / float64(rate)
	res.Sustained = res.Ratio >= 0.95 && res.Errors == 0
	log.Printf("%d GET/s offered: p50 %.2f ms, p99 %.2f ms, max %.1f ms, %d errors; first reads of an order: %d, p99 %.2f ms; repeats: %d, p99 %.2f ms; send lag p50 %.2f, p99 %.2f ms",
		rate, res.Latency.P50, res.Latency.P99, res.Latency.Max, res.Errors, firsts.Count(), firsts.Summary().P99, repeat.Count(), repeat.Summary().P99,
		lag.Summary().P50, lag.Summary().P99)
	return benchkit.WriteResult(out, res)
}

// drawSchedule picks, for each of total requests, one of ids ids at random
// (the same draw every run), and marks the requests that are the first of
// their id.
func drawSchedule(total, ids int) (pick []int32, first []bool) {
	pick, first = make([]int32, total), make([]bool, total)
	r := rand.New(rand.NewPCG(1, 2)) //nolint:gosec // picking ids to read needs no secret randomness
	seen := make([]bool, ids)
	for i := range pick {
		k := r.IntN(ids)
		pick[i], first[i], seen[k] = int32(k), !seen[k], true
	}
	return pick, first
}

// sleepUntil sleeps until t; false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
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
