// Package verify checks a deployment's invariants from the outside: it reads
// PostgreSQL and the topics (read_committed) and reports every violation of
// the guarantees in ARCHITECTURE.md. It backs `orderflow verify`, the chaos
// run and the processor's integration tests. Run it when the processors are
// idle: records still in flight look like missing ones.
package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/processor/machine"
	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Report is what Run counted and found wrong.
type Report struct {
	Orders          int
	Outcomes        int
	Accepted        int
	Rejected        int
	DeadLetters     int
	Events          int
	DLQRecords      int
	CommandsRead    int // records of the commands topic below the stored offsets
	DuplicatesRead  int // of those, retries of a command_id that already had an outcome
	Violations      []string
	MaxViolations   int // violations beyond this are counted, not listed
	ViolationsTotal int
}

// OK reports whether no invariant was violated.
func (r *Report) OK() bool { return r.ViolationsTotal == 0 }

func (r *Report) fail(format string, args ...any) {
	r.ViolationsTotal++
	if r.MaxViolations <= 0 || len(r.Violations) < r.MaxViolations {
		r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
	}
}

// Summary is a one-paragraph account of the report.
func (r *Report) Summary() string {
	return fmt.Sprintf("orders %d, outcomes %d (accepted %d, rejected %d), dead letters %d, events %d, DLQ records %d, "+
		"commands read %d (retries %d), violations %d",
		r.Orders, r.Outcomes, r.Accepted, r.Rejected, r.DeadLetters, r.Events, r.DLQRecords,
		r.CommandsRead, r.DuplicatesRead, r.ViolationsTotal)
}

type row struct {
	store.Outcome
	partition int32
}

// Run checks:
//  1. every order's state and version equal the fold of its accepted transitions;
//  2. accepted versions of an order run 1, 2, 3, ... with no gap or repeat;
//  3. every command_id with an outcome has exactly one outcome row, one
//     de-duplication row and exactly one event, and the event matches the row;
//  4. per order, events appear in version order;
//  5. every offset of the commands topic below the stored position is an
//     outcome, a retry of one, or a dead letter; every dead letter is on the DLQ.
func Run(ctx context.Context, pool *pgxpool.Pool, kopts []kgo.Opt, names topics.Names, maxViolations int) (*Report, error) {
	r := &Report{MaxViolations: maxViolations}

	rows, err := pool.Query(ctx, `SELECT topic_partition, seq, source_offset, event_id, command_id, order_id, action, outcome,
			coalesce(from_state, ''), coalesce(to_state, ''), version, coalesce(reason, ''), coalesce(message, ''),
			coalesce(actor, ''), coalesce(command_reason, ''), metadata::text, requested_at, processed_at
		FROM transitions ORDER BY topic_partition, seq`)
	if err != nil {
		return nil, fmt.Errorf("read transitions: %w", err)
	}
	var all []row
	for rows.Next() {
		var (
			x    row
			meta *string
		)
		if err := rows.Scan(&x.partition, &x.Seq, &x.Offset, &x.EventID, &x.CommandID, &x.OrderID, &x.Action, &x.Outcome.Outcome,
			&x.FromState, &x.ToState, &x.Version, &x.Reason, &x.Message, &x.Actor, &x.CommandReason, &meta,
			&x.RequestedAt, &x.ProcessedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read transitions: %w", err)
		}
		if meta != nil {
			x.Metadata = []byte(*meta)
		}
		all = append(all, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read transitions: %w", err)
	}
	r.Outcomes = len(all)

	// 1 and 2: fold per order, in processing order (partition, seq).
	type folded struct {
		state   machine.State
		version int64
	}
	fold := map[string]*folded{}
	byCommand := make(map[string]*row, len(all))
	for i := range all {
		x := &all[i]
		if prev, dup := byCommand[x.CommandID]; dup {
			r.fail("command %s has two outcomes: seq %d/%d and %d/%d", x.CommandID, prev.partition, prev.Seq, x.partition, x.Seq)
		}
		byCommand[x.CommandID] = x
		if x.Outcome.Outcome != topics.Accepted {
			r.Rejected++
			continue
		}
		r.Accepted++
		f := fold[x.OrderID]
		if f == nil {
			f = &folded{}
			fold[x.OrderID] = f
		}
		if x.Version != f.version+1 {
			r.fail("order %s: accepted version %d follows %d", x.OrderID, x.Version, f.version)
		}
		if string(f.state) != x.FromState {
			r.fail("order %s: transition to v%d starts from %q, fold is at %q", x.OrderID, x.Version, x.FromState, f.state)
		}
		f.state, f.version = machine.State(x.ToState), x.Version
	}
	orows, err := pool.Query(ctx, `SELECT order_id, state, version FROM orders`)
	if err != nil {
		return nil, fmt.Errorf("read orders: %w", err)
	}
	seenOrders := map[string]bool{}
	for orows.Next() {
		var (
			id, state string
			version   int64
		)
		if err := orows.Scan(&id, &state, &version); err != nil {
			orows.Close()
			return nil, fmt.Errorf("read orders: %w", err)
		}
		r.Orders++
		seenOrders[id] = true
		f := fold[id]
		if f == nil || string(f.state) != state || f.version != version {
			r.fail("order %s is %s v%d but its accepted transitions fold to %+v", id, state, version, f)
		}
	}
	if err := orows.Err(); err != nil {
		return nil, fmt.Errorf("read orders: %w", err)
	}
	for id := range fold {
		if !seenOrders[id] {
			r.fail("order %s has accepted transitions but no row", id)
		}
	}

	// 3: de-duplication rows.
	var dedup int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM commands`).Scan(&dedup); err != nil {
		return nil, fmt.Errorf("count commands: %w", err)
	}
	if dedup != len(byCommand) {
		r.fail("commands table has %d rows for %d command ids with outcomes", dedup, len(byCommand))
	}

	acl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	adm := kadm.NewClient(acl)
	defer adm.Close()

	// 3 and 4: events.
	ends, err := topics.Ends(ctx, adm, names.Events)
	if err != nil {
		return nil, err
	}
	events := map[string]int{}
	lastVersion := map[string]int64{}
	err = topics.ReadCommitted(ctx, kopts, names.Events, ends, func(rec *kgo.Record) {
		r.Events++
		ev, err := topics.DecodeEvent(rec.Value)
		if err != nil {
			r.fail("event at %d/%d does not decode: %v", rec.Partition, rec.Offset, err)
			return
		}
		events[ev.CommandID]++
		x := byCommand[ev.CommandID]
		switch {
		case x == nil:
			r.fail("event %s for command %s has no outcome row", ev.EventID, ev.CommandID)
			return
		case events[ev.CommandID] > 1:
			r.fail("command %s has %d events", ev.CommandID, events[ev.CommandID])
		case !sameEvent(processor.EventFromOutcome(&x.Outcome), ev):
			r.fail("event %s does not match its row", ev.EventID)
		}
		if ev.Outcome == topics.Accepted {
			if ev.Version <= lastVersion[ev.OrderID] {
				r.fail("order %s: event v%d after v%d", ev.OrderID, ev.Version, lastVersion[ev.OrderID])
			}
			lastVersion[ev.OrderID] = ev.Version
		}
	})
	if err != nil {
		return nil, err
	}
	for id := range byCommand {
		if events[id] == 0 {
			r.fail("command %s has an outcome row but no event", id)
		}
	}

	// 5: every consumed offset is accounted for, every dead letter published.
	dl := map[[2]int64]bool{}
	drows, err := pool.Query(ctx, `SELECT topic_partition, source_offset FROM dead_letters`)
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	for drows.Next() {
		var (
			p   int32
			off int64
		)
		if err := drows.Scan(&p, &off); err != nil {
			drows.Close()
			return nil, fmt.Errorf("read dead letters: %w", err)
		}
		dl[[2]int64{int64(p), off}] = true
	}
	if err := drows.Err(); err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	r.DeadLetters = len(dl)

	dlqEnds, err := topics.Ends(ctx, adm, names.DLQ)
	if err != nil {
		return nil, err
	}
	dlqSeen := map[[2]int64]int{}
	err = topics.ReadCommitted(ctx, kopts, names.DLQ, dlqEnds, func(rec *kgo.Record) {
		r.DLQRecords++
		var off int64
		for _, h := range rec.Headers {
			if h.Key == topics.HeaderSourceOffset {
				_, _ = fmt.Sscan(string(h.Value), &off)
			}
		}
		dlqSeen[[2]int64{int64(rec.Partition), off}]++
	})
	if err != nil {
		return nil, err
	}
	for k := range dl {
		if dlqSeen[k] != 1 {
			r.fail("dead letter %d/%d is on the DLQ %d times", k[0], k[1], dlqSeen[k])
		}
	}

	positions := map[int32]topics.Range{}
	prow, err := pool.Query(ctx, `SELECT topic_partition, next_offset FROM partition_offsets WHERE topic = $1`, names.Commands)
	if err != nil {
		return nil, fmt.Errorf("read positions: %w", err)
	}
	for prow.Next() {
		var (
			p    int32
			next int64
		)
		if err := prow.Scan(&p, &next); err != nil {
			prow.Close()
			return nil, fmt.Errorf("read positions: %w", err)
		}
		positions[p] = topics.Range{To: next}
	}
	if err := prow.Err(); err != nil {
		return nil, fmt.Errorf("read positions: %w", err)
	}
	cmdEnds, err := topics.Ends(ctx, adm, names.Commands)
	if err != nil {
		return nil, err
	}
	for p, rg := range positions {
		rg.From = cmdEnds[p].From
		positions[p] = rg
	}
	firstOffset := map[string]int64{}
	for id, x := range byCommand {
		firstOffset[id] = x.Offset
	}
	err = topics.ReadCommitted(ctx, kopts, names.Commands, positions, func(rec *kgo.Record) {
		r.CommandsRead++
		if dl[[2]int64{int64(rec.Partition), rec.Offset}] {
			return
		}
		c, err := topics.DecodeCommand(rec.Key, rec.Value)
		if err != nil {
			r.fail("command record %d/%d is invalid (%v) but not a dead letter", rec.Partition, rec.Offset, err)
			return
		}
		x := byCommand[c.CommandID]
		switch {
		case x == nil:
			r.fail("command %s at %d/%d was consumed but has no outcome", c.CommandID, rec.Partition, rec.Offset)
		case x.Offset != rec.Offset || x.partition != rec.Partition:
			r.DuplicatesRead++
		}
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(r.Violations)
	return r, nil
}

// sameEvent compares two events field by field, metadata as JSON values.
func sameEvent(a, b topics.Event) bool {
	am, bm := a.Metadata, b.Metadata
	a.Metadata, b.Metadata = nil, nil
	ja, _ := json.Marshal(a) //nolint:errcheck // an Event always encodes
	jb, _ := json.Marshal(b) //nolint:errcheck // likewise
	return bytes.Equal(ja, jb) && sameJSON(am, bm)
}

func sameJSON(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b) || string(a)+string(b) == "null"
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	jx, _ := json.Marshal(x) //nolint:errcheck // decoded JSON encodes
	jy, _ := json.Marshal(y) //nolint:errcheck // likewise
	return bytes.Equal(jx, jy)
}
