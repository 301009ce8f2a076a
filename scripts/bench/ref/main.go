// Command ref is baseline REF, the seed's reference design: one REST call
// per transition, which reads the order, checks the transition, and updates
// it with an optimistic version check and appends a history row, all in its
// own PostgreSQL transaction. `ref serve` is that service (net/http, pgx);
// `ref load` drives it closed-loop with some concurrency, each client taking
// its own orders through their lifecycles, and prints a JSON result.
//
//	ref serve -addr 127.0.0.1:18181 -db $DATABASE_URL
//	ref load -url http://127.0.0.1:18181 -concurrency 32 -duration 15s
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/orderflow/orderflow/processor/machine"
	"github.com/orderflow/orderflow/scripts/bench/benchkit"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("ref: ")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "serve":
		err = serve(ctx, os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "load":
		err = load(ctx, os.Args[2:])
	default:
		err = errors.New("usage: ref serve|load [flags]")
	}
	stop()
	if err != nil {
		log.Fatal(err)
	}
}

const schema = `
CREATE TABLE IF NOT EXISTS ref_orders (
    order_id   text PRIMARY KEY,
    state      text NOT NULL,
    version    bigint NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS ref_history (
    id         bigserial PRIMARY KEY,
    order_id   text NOT NULL,
    command_id text NOT NULL,
    action     text NOT NULL,
    from_state text,
    to_state   text NOT NULL,
    version    bigint NOT NULL,
    at         timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS ref_history_by_order ON ref_history (order_id, at);
`

// request is the body of POST /orders/{id}/transition.
type request struct {
	CommandID       string `json:"command_id"`
	Action          string `json:"action"`
	ExpectedVersion *int64 `json:"expected_version"`
}

type answer struct {
	State   string `json:"state,omitempty"`
	Version int64  `json:"version,omitempty"`
	Error   string `json:"error,omitempty"`
}

var errConflict = errors.New("version changed concurrently")

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:18181", "listen address")
	db := fs.String("db", os.Getenv("DATABASE_URL"), "PostgreSQL URL")
	conns := fs.Int("conns", 32, "PostgreSQL connections")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pool, err := benchkit.OpenPool(ctx, *db, *conns)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, schema); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders/{id}/transition", func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
			reply(w, http.StatusBadRequest, answer{Error: err.Error()})
			return
		}
		a, err := machine.ParseAction(req.Action)
		if err != nil {
			reply(w, http.StatusUnprocessableEntity, answer{Error: err.Error()})
			return
		}
		status, ans := transition(r.Context(), pool, r.PathValue("id"), a, &req)
		reply(w, status, ans)
	})
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Printf("serving on %s", *addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http: %w", err)
	}
	return nil
}

// transition is the reference design's whole write path: read, check,
// version-checked write, history row, one transaction per call.
func transition(ctx context.Context, pool *pgxpool.Pool, id string, a machine.Action, req *request) (int, answer) {
	var ans answer
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var (
			state   string
			version int64
		)
		err := tx.QueryRow(ctx, `SELECT state, version FROM ref_orders WHERE order_id = $1`, id).Scan(&state, &version)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read: %w", err)
		}
		to, rej := machine.Apply(machine.State(state), version, a, req.ExpectedVersion)
		if rej != nil {
			return rej
		}
		var tag interface{ RowsAffected() int64 }
		if version == 0 {
			tag, err = tx.Exec(ctx, `INSERT INTO ref_orders VALUES ($1, $2, 1, now(), now()) ON CONFLICT DO NOTHING`, id, string(to))
		} else {
			tag, err = tx.Exec(ctx, `UPDATE ref_orders SET state = $2, version = version + 1, updated_at = now()
				WHERE order_id = $1 AND version = $3`, id, string(to), version)
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if tag.RowsAffected() != 1 {
			return errConflict
		}
		if _, err := tx.Exec(ctx, `INSERT INTO ref_history (order_id, command_id, action, from_state, to_state, version, at)
			VALUES ($1, $2, $3, NULLIF($4, ''), $5, $6, now())`, id, req.CommandID, string(a), state, string(to), version+1); err != nil {
			return fmt.Errorf("history: %w", err)
		}
		ans = answer{State: string(to), Version: version + 1}
		return nil
	})
	var rej *machine.Rejection
	switch {
	case err == nil:
		return http.StatusOK, ans
	case errors.As(err, &rej), errors.Is(err, errConflict):
		return http.StatusConflict, answer{Error: err.Error()}
	default:
		return http.StatusInternalServerError, answer{Error: err.Error()}
	}
}

func reply(w http.ResponseWriter, status int, a answer) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(a)
}

func load(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	base := fs.String("url", "http://127.0.0.1:18181", "base URL of ref serve")
	conc := fs.Int("concurrency", 32, "clients, each waiting for its answer before its next call (closed loop)")
	duration := fs.Duration("duration", 15*time.Second, "how long to measure")
	out := fs.String("out", "-", "JSON result file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: *conc}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	run := strconv.FormatInt(time.Now().UnixMilli(), 36)
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	var (
		ok, conflicts, failures atomic.Int64
		mu                      sync.Mutex
		hist                    benchkit.Histogram
		wg                      sync.WaitGroup
	)
	start := time.Now()
	for w := range *conc {
		wg.Go(func() {
			// Valid lifecycle steps only: the reference design has no
			// de-duplication to exercise, and its figure is its best case.
			gen, err := benchkit.NewGen(benchkit.GenConfig{Prefix: fmt.Sprintf("ref%s-%d-", run, w), Orders: 50, Seed: uint64(w) + 1})
			if err != nil {
				failures.Add(1)
				return
			}
			var h benchkit.Histogram
			defer func() { mu.Lock(); hist.Merge(&h); mu.Unlock() }()
			for ctx.Err() == nil {
				c := gen.Next()
				req := request{CommandID: c.CommandID, Action: c.Action}
				if c.ExpectedVersion >= 0 {
					req.ExpectedVersion = &c.ExpectedVersion
				}
				body, _ := json.Marshal(&req)
				t := time.Now()
				status, err := benchkit.Post(ctx, hc, *base+"/orders/"+c.OrderID+"/transition", body)
				if ctx.Err() != nil {
					return
				}
				h.Record(time.Since(t))
				switch {
				case err != nil || status >= 500:
					failures.Add(1)
				case status == http.StatusConflict:
					conflicts.Add(1)
				default:
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	res := &benchkit.Result{
		Name: "ref", Kind: "ref", Seconds: secs, Throughput: float64(ok.Load()) / secs, Latency: hist.Summary(),
		Accepted: ok.Load(), Rejected: conflicts.Load(), Errors: failures.Load(), Concurrency: *conc, Sustained: true,
		Notes: map[string]string{"loop": "closed", "latency": "per HTTP call"},
	}
	log.Printf("%d clients: %.0f transitions/s, p50 %.1f ms, p99 %.1f ms, %d conflicts, %d failures",
		*conc, res.Throughput, res.Latency.P50, res.Latency.P99, conflicts.Load(), failures.Load())
	return benchkit.WriteResult(*out, res)
}
