package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/orderflow/orderflow/processor/verify"
	"github.com/orderflow/orderflow/scripts/chaos/workload"
)

type event struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`
	Detail string    `json:"detail"`
}

type outage struct {
	Service               string    `json:"service"`
	DownAt                time.Time `json:"down_at"`
	AllNotReadyAfter      string    `json:"all_not_ready_after"`
	RestartedDuringOutage string    `json:"restarted_during_outage,omitempty"`
	ExitedDuringOutage    int       `json:"exited_by_themselves"`
	UpStartedAt           time.Time `json:"up_started_at"`
	UpAt                  time.Time `json:"up_at"`
	AllReadyAfter         string    `json:"all_ready_after"`
	ResumedAfter          string    `json:"resumed_after"`
}

type gap struct {
	Partition int32     `json:"partition"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Seconds   float64   `json:"seconds"`
	During    []string  `json:"during"` // faults in the window
}

type results struct {
	Run      string         `json:"run"`
	Seed     uint64         `json:"seed"`
	Started  time.Time      `json:"started"`
	Ended    time.Time      `json:"ended"`
	Duration string         `json:"duration"`
	Config   map[string]any `json:"config"`
	Load     struct {
		From time.Time `json:"from"`
		To   time.Time `json:"to"`
	} `json:"load"`
	Produced struct {
		Records        int            `json:"records"`
		FaultPhase     int            `json:"fault_phase"`
		RollingPhase   int            `json:"rolling_phase"`
		Retries        int            `json:"retries"`
		Conflicts      int            `json:"conflicts"`
		Malformed      int            `json:"malformed"`
		MalformedKinds map[string]int `json:"malformed_by_kind"`
		Identifiable   int            `json:"malformed_identifiable"`
		Errors         int64          `json:"produce_errors"`
	} `json:"produced"`
	Expected struct {
		Outcomes int `json:"outcomes"`
		Accepted int `json:"accepted"`
		Orders   int `json:"orders"`
	} `json:"expected"`
	Faults struct {
		Kills            int      `json:"sigkills"`
		GracefulRestarts int      `json:"graceful_restarts"`
		KafkaRestarts    int      `json:"kafka_restarts"`
		PGRestarts       int      `json:"postgresql_restarts"`
		UnexpectedExits  []string `json:"unexpected_exits"`
	} `json:"faults"`
	Outages    []outage        `json:"outages"`
	Verify     *verify.Report  `json:"verify"`
	VerifyTook string          `json:"verify_took"`
	Prediction predictionCheck `json:"prediction"`
	Stall      struct {
		Longest gap   `json:"longest"`
		Top     []gap `json:"top"`
	} `json:"stall"`
	Latency struct {
		P50 float64 `json:"p50_seconds"`
		P99 float64 `json:"p99_seconds"`
		Max float64 `json:"max_seconds"`
	} `json:"latency"`
	Timeline []event  `json:"timeline"`
	Failures []string `json:"failures"`
}

type predictionCheck struct {
	OrdersChecked   int      `json:"orders_checked"`
	OrdersWrong     int      `json:"orders_wrong"`
	CommandsChecked int      `json:"commands_checked"`
	CommandsWrong   int      `json:"commands_wrong"`
	Examples        []string `json:"examples,omitempty"`
}

// runVerify runs `orderflow verify` as an operator would, with a wait for
// events that trail their commit.
func (d *driver) runVerify(ctx context.Context) {
	start := time.Now()
	cmd := exec.CommandContext(ctx, d.cfg.bin, "verify", "--json", "--wait", "3m", "--max-violations", "100")
	// The processors' environment (setup gives it their brokers, database and
	// topic prefix): nothing inherited names another deployment.
	cmd.Env = slices.Clone(d.sup.env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	d.res.VerifyTook = time.Since(start).Round(time.Millisecond).String()
	_ = os.WriteFile(filepath.Join(d.runDir, "verify.json"), stdout.Bytes(), 0o644)
	var rep verify.Report
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		d.fail("orderflow verify: %v (%v) %s", err, jerr, stderr.String())
		return
	}
	d.res.Verify = &rep
	d.event("verify", fmt.Sprintf("orderflow verify: %s (took %s)", rep.Summary(), d.res.VerifyTook))
	if err != nil || !rep.OK() {
		d.fail("orderflow verify: %d violations (%v): %s", rep.ViolationsTotal, err, strings.Join(rep.Violations, "; "))
	}
	if rep.Unconsumed != 0 {
		d.fail("orderflow verify: %d commands not consumed", rep.Unconsumed)
	}
}

// analyse compares the database with the load's prediction and measures
// stalls and latency.
func (d *driver) analyse(ctx context.Context) {
	d.genMu.Lock()
	exp := d.gen.Expect()
	d.genMu.Unlock()
	r := &d.res
	r.Produced.Records, r.Produced.Retries, r.Produced.Conflicts = exp.Records, exp.Retries, exp.Conflicts
	r.Produced.Malformed, r.Produced.MalformedKinds, r.Produced.Identifiable = exp.Poison, exp.PoisonKind, exp.Identifiable
	r.Produced.Errors = d.prodErrs.Load()
	r.Expected.Outcomes, r.Expected.Accepted, r.Expected.Orders = exp.Outcomes(), exp.Accepted, len(exp.Orders)
	r.Faults.UnexpectedExits = d.sup.unexpectedExits()
	if n := len(r.Faults.UnexpectedExits); n > 0 {
		d.fail("%d processor exits the driver did not cause", n)
	}
	if r.Produced.Errors > 0 {
		d.fail("%d records could not be produced", r.Produced.Errors)
	}
	for _, o := range r.Outages {
		switch o.Service {
		case "kafka":
			r.Faults.KafkaRestarts++
		case "postgresql":
			r.Faults.PGRestarts++
		}
	}

	if v := r.Verify; v != nil {
		// The producer is idempotent, so every record is in the topic once.
		check := func(what string, got, want int) {
			if got != want {
				d.fail("verify counted %d %s, the load makes %d", got, what, want)
			}
		}
		check("commands read", v.CommandsRead, exp.Records)
		check("retries", v.DuplicatesRead, exp.Retries)
		check("dead letters", v.DeadLetters, exp.Poison)
		check("DLQ records", v.DLQRecords, exp.Poison)
		check("outcomes", v.Outcomes, exp.Outcomes())
		check("events", v.Events, exp.Outcomes())
		check("accepted transitions", v.Accepted, exp.Accepted)
		check("orders", v.Orders, len(exp.Orders))
	}
	d.checkPrediction(ctx, exp)
	d.measureStalls(ctx)
	err := d.pool.QueryRow(ctx, `SELECT coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY s), 0), coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY s), 0), coalesce(max(s), 0)
		FROM (SELECT extract(epoch FROM processed_at - requested_at)::float8 AS s FROM transitions WHERE requested_at IS NOT NULL) x`).
		Scan(&r.Latency.P50, &r.Latency.P99, &r.Latency.Max)
	if err != nil {
		d.fail("latency: %v", err)
	}
}

func (d *driver) checkPrediction(ctx context.Context, exp *workload.Expectation) {
	pc := &d.res.Prediction
	wrong := func(format string, args ...any) {
		if len(pc.Examples) < 10 {
			pc.Examples = append(pc.Examples, fmt.Sprintf(format, args...))
		}
	}
	rows, err := d.pool.Query(ctx, `SELECT order_id, state, version FROM orders`)
	if err != nil {
		d.fail("read orders: %v", err)
		return
	}
	seen := map[string]bool{}
	var (
		id, state string
		version   int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &state, &version}, func() error {
		seen[id] = true
		pc.OrdersChecked++
		want, ok := exp.Orders[id]
		if !ok || string(want.State) != state || want.Version != version {
			pc.OrdersWrong++
			wrong("order %s is %s v%d, the load makes it %s v%d", id, state, version, want.State, want.Version)
		}
		return nil
	}); err != nil {
		d.fail("read orders: %v", err)
		return
	}
	for id, want := range exp.Orders {
		if !seen[id] {
			pc.OrdersWrong++
			wrong("order %s is missing, the load makes it %s v%d", id, want.State, want.Version)
		}
	}
	rows, err = d.pool.Query(ctx, `SELECT command_id, outcome, coalesce(reason, '') FROM transitions`)
	if err != nil {
		d.fail("read outcomes: %v", err)
		return
	}
	got := map[string]workload.Outcome{}
	var o workload.Outcome
	if _, err := pgx.ForEachRow(rows, []any{&id, &o.Outcome, &o.Reason}, func() error {
		got[id] = o
		return nil
	}); err != nil {
		d.fail("read outcomes: %v", err)
		return
	}
	for id, want := range exp.Commands {
		pc.CommandsChecked++
		if g := got[id]; g != want {
			pc.CommandsWrong++
			wrong("command %s: %s/%s, the load makes %s/%s", id, g.Outcome, g.Reason, want.Outcome, want.Reason)
		}
	}
	for id, g := range got {
		if _, ok := exp.Commands[id]; !ok && g.Reason != "invalid_command" {
			pc.CommandsWrong++
			wrong("command %s: %s/%s, the load has no such command", id, g.Outcome, g.Reason)
		}
	}
	if pc.OrdersWrong > 0 || pc.CommandsWrong > 0 {
		d.fail("%d orders and %d commands differ from what the load makes: %s", pc.OrdersWrong, pc.CommandsWrong, strings.Join(pc.Examples, "; "))
	}
}

// measureStalls finds, per partition, the longest time between two
// committed batches while load was offered. Every command is in some
// partition's batch, and at the offered rates every partition has commands
// every few milliseconds, so a long gap is a stall.
func (d *driver) measureStalls(ctx context.Context) {
	from, to := d.res.Load.From, d.res.Load.To
	rows, err := d.pool.Query(ctx, `SELECT topic_partition, processed_at FROM transitions
		UNION SELECT topic_partition, processed_at FROM dead_letters ORDER BY 1, 2`)
	if err != nil {
		d.fail("stalls: %v", err)
		return
	}
	var (
		gaps []gap
		p    int32
		at   time.Time
	)
	last := map[int32]time.Time{}
	if _, err := pgx.ForEachRow(rows, []any{&p, &at}, func() error {
		prev, ok := last[p]
		if !ok {
			prev = from // waiting for the first batch counts too
		}
		last[p] = at
		if at.Before(from) || !prev.Before(to) {
			return nil
		}
		gaps = append(gaps, gap{Partition: p, From: prev.UTC(), To: at.UTC(), Seconds: at.Sub(prev).Seconds()})
		return nil
	}); err != nil {
		d.fail("stalls: %v", err)
		return
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i].Seconds > gaps[j].Seconds })
	// The longest gaps of distinct incidents (a gap overlapping a longer
	// one listed already is the same incident on another partition), with
	// the faults injected around them.
	faults := map[string]bool{"kill": true, "restart": true, "outage": true, "recovered": true, "rolling": true,
		"kill-during-outage": true, "unexpected-exit": true}
	for _, g := range gaps {
		if len(d.res.Stall.Top) == 10 {
			break
		}
		if slices.ContainsFunc(d.res.Stall.Top, func(t gap) bool { return g.From.Before(t.To) && t.From.Before(g.To) }) {
			continue
		}
		for _, e := range d.res.Timeline {
			if faults[e.Kind] && !e.At.Before(g.From.Add(-time.Second)) && !e.At.After(g.To) {
				g.During = append(g.During, e.At.Format("15:04:05.000")+" "+e.Detail)
			}
		}
		d.res.Stall.Top = append(d.res.Stall.Top, g)
	}
	if len(d.res.Stall.Top) > 0 {
		d.res.Stall.Longest = d.res.Stall.Top[0]
	}
}

func (d *driver) writeReport() error {
	r := &d.res
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(d.runDir, "results.json"), b, 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	var m strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&m, format+"\n", args...) }
	status := "PASSED"
	if len(r.Failures) > 0 {
		status = "FAILED"
	}
	w("# Chaos run %s: %s", r.Run, status)
	w("")
	w("Seed %d, %s (%s to %s).", r.Seed, r.Duration, r.Started.Format(time.RFC3339), r.Ended.Format(time.RFC3339))
	w("")
	w("| what | count |")
	w("|---|---|")
	w("| records produced to the commands topic | %d |", r.Produced.Records)
	w("| of them during the fault phase / the rolling restart | %d / %d |", r.Produced.FaultPhase, r.Produced.RollingPhase)
	w("| retries (a command_id sent again) | %d |", r.Produced.Retries)
	w("| conflicts (rejections by design) | %d |", r.Produced.Conflicts)
	w("| malformed records | %d (%d with readable ids) |", r.Produced.Malformed, r.Produced.Identifiable)
	w("| SIGKILLs of a processor | %d |", r.Faults.Kills)
	w("| graceful restarts (rolling) | %d |", r.Faults.GracefulRestarts)
	w("| Kafka crashes and restarts | %d |", r.Faults.KafkaRestarts)
	w("| PostgreSQL crashes and restarts | %d |", r.Faults.PGRestarts)
	w("| processor exits not caused by the driver | %d |", len(r.Faults.UnexpectedExits))
	w("")
	kinds := make([]string, 0, len(r.Produced.MalformedKinds))
	for k, n := range r.Produced.MalformedKinds {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(kinds)
	w("Malformed by kind: %s.", strings.Join(kinds, ", "))
	w("")
	if v := r.Verify; v != nil {
		w("`orderflow verify` (took %s): %s.", r.VerifyTook, v.Summary())
		checks := make([]string, 0, len(v.ByCheck))
		for _, c := range verify.Checks() {
			checks = append(checks, fmt.Sprintf("%s %d", c, v.ByCheck[c]))
		}
		w("Violations by check: %s.", strings.Join(checks, ", "))
		w("")
	}
	w("Prediction: %d orders and %d commands checked against what the load makes of them; %d and %d differ.",
		r.Prediction.OrdersChecked, r.Prediction.CommandsChecked, r.Prediction.OrdersWrong, r.Prediction.CommandsWrong)
	w("")
	w("Outages:")
	w("")
	w("| service | all processors not ready after | processor restarted during it | exited by themselves | down for | all ready after it answered | commits resumed after |")
	w("|---|---|---|---|---|---|---|")
	for _, o := range r.Outages {
		w("| %s | %s | %s | %d | %v | %s | %s |", o.Service, o.AllNotReadyAfter, orNone(o.RestartedDuringOutage), o.ExitedDuringOutage,
			o.UpAt.Sub(o.DownAt).Round(time.Millisecond), o.AllReadyAfter, o.ResumedAfter)
	}
	w("")
	w("Longest stall of a partition while load was offered: %.1f s (partition %d, %s to %s).",
		r.Stall.Longest.Seconds, r.Stall.Longest.Partition, r.Stall.Longest.From.Format("15:04:05.000"), r.Stall.Longest.To.Format("15:04:05.000"))
	w("")
	w("| partition | stall | from | faults injected then |")
	w("|---|---|---|---|")
	for _, g := range r.Stall.Top {
		w("| %d | %.1f s | %s | %s |", g.Partition, g.Seconds, g.From.Format("15:04:05.000"), strings.Join(g.During, "; "))
	}
	w("")
	w("End-to-end latency (requested_at to processed_at): p50 %.3f s, p99 %.3f s, max %.1f s.", r.Latency.P50, r.Latency.P99, r.Latency.Max)
	w("")
	if len(r.Failures) > 0 {
		w("Failures:")
		w("")
		for _, f := range r.Failures {
			w("- %s", f)
		}
		w("")
	}
	w("Timeline:")
	w("")
	for _, e := range r.Timeline {
		w("- %s %s: %s", e.At.Format("15:04:05.000"), e.Kind, e.Detail)
	}
	if err := os.WriteFile(filepath.Join(d.runDir, "report.md"), []byte(m.String()), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
