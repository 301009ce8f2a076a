// Package verify checks a deployment's invariants from the outside: it reads
// PostgreSQL and the topics (read_committed) and reports every violation of
// the guarantees in ARCHITECTURE.md. It backs `orderflow verify`, the chaos
// run and the processor's integration tests. Run it when the processors are
// idle: records still in flight look like missing ones (Report.Unconsumed
// says how many commands were not consumed yet).
package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/processor/machine"
	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DB is how Run reads PostgreSQL: a pool, a connection or a transaction (the
// tests corrupt a database inside a transaction, verify it, and roll back).
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// The checks, the keys of Report.ByCheck. Every violation belongs to one.
const (
	// CheckFold: an order's state and version equal the fold of its accepted
	// transitions, every accepted transition is in the state machine and
	// starts where the fold stands, and every rejection records the state
	// it was rejected in.
	CheckFold = "fold"
	// CheckVersions: an order's accepted versions run 1, 2, 3, ... with no
	// gap and no repeat.
	CheckVersions = "versions"
	// CheckOutcomes: a command_id has exactly one outcome row and one
	// de-duplication row pointing at it, with the event_id the contract
	// gives it.
	CheckOutcomes = "outcomes"
	// CheckEvents: every outcome row has exactly one committed event on the
	// events topic, equal to the row, in the row's partition with its seq.
	CheckEvents = "events"
	// CheckOrder: per order, events come in version order; per partition,
	// events and DLQ records come in outbox (seq) order.
	CheckOrder = "order"
	// CheckOffsets: every record of the commands topic below the stored
	// position is an outcome, a retry of one, or a dead letter, and nothing
	// is recorded beyond the stored position.
	CheckOffsets = "offsets"
	// CheckOutbox: a partition's outbox seqs (outcomes and dead letters)
	// run 1 .. next_seq-1 with no gap and no repeat.
	CheckOutbox = "outbox"
	// CheckDLQ: every dead letter is on the DLQ exactly once, with its bytes,
	// its reason and where it came from; nothing else is.
	CheckDLQ = "dlq"
	// CheckCounts: order_counts, which the monitor and GET /v1/stats read,
	// sums to the orders in each state.
	CheckCounts = "counts"
)

// Checks lists the check names in report order.
func Checks() []string {
	return []string{CheckFold, CheckVersions, CheckOutcomes, CheckEvents, CheckOrder, CheckOffsets, CheckOutbox, CheckDLQ, CheckCounts}
}

// Report is what Run counted and found wrong.
type Report struct {
	Orders      int `json:"orders"`
	Outcomes    int `json:"outcomes"`
	Accepted    int `json:"accepted"`
	Rejected    int `json:"rejected"`
	DeadLetters int `json:"dead_letters"`
	Events      int `json:"events"`
	DLQRecords  int `json:"dlq_records"`
	// CommandsRead counts the records of the commands topic below the
	// stored offsets; DuplicatesRead those of them that retried a
	// command_id that already had an outcome.
	CommandsRead   int `json:"commands_read"`
	DuplicatesRead int `json:"duplicates_read"`
	// Unconsumed counts offsets of the commands topic past the stored
	// positions: work not done yet, so not a violation (transaction markers
	// of transactional producers count too).
	Unconsumed int64 `json:"unconsumed"`
	// Violations lists up to MaxViolations of them, sorted; ViolationsTotal
	// and ByCheck count all of them.
	Violations      []string       `json:"violations"`
	ViolationsTotal int            `json:"violations_total"`
	ByCheck         map[string]int `json:"by_check"`
	MaxViolations   int            `json:"-"`
}

// OK reports whether no invariant was violated.
func (r *Report) OK() bool { return r.ViolationsTotal == 0 }

func (r *Report) fail(check, format string, args ...any) {
	r.ViolationsTotal++
	r.ByCheck[check]++
	if r.MaxViolations <= 0 || len(r.Violations) < r.MaxViolations {
		r.Violations = append(r.Violations, check+": "+fmt.Sprintf(format, args...))
	}
}

// Summary is a one-paragraph account of the report.
func (r *Report) Summary() string {
	return fmt.Sprintf("orders %d, outcomes %d (accepted %d, rejected %d), dead letters %d, events %d, DLQ records %d, "+
		"commands read %d (retries %d), unconsumed %d, violations %d",
		r.Orders, r.Outcomes, r.Accepted, r.Rejected, r.DeadLetters, r.Events, r.DLQRecords,
		r.CommandsRead, r.DuplicatesRead, r.Unconsumed, r.ViolationsTotal)
}

type row struct {
	store.Outcome
	partition int32
	dedup     bool // a de-duplication row points at it
}

type deadLetter struct {
	seq        int64
	key, value []byte
	err        string
	published  int
}

type place struct {
	partition int32
	offset    int64
}

// verifier holds what Run has read so far.
type verifier struct {
	r         *Report
	db        DB
	kopts     []kgo.Opt
	names     topics.Names
	adm       *kadm.Client
	all       []row
	byCommand map[string]*row
	dead      map[place]*deadLetter
	positions map[int32]store.Position
	// fold is an order's state and version by its accepted transitions;
	// ok is false when it has none.
	fold func(orderID string) (s machine.State, version int64, ok bool)
}

// Run checks, reading PostgreSQL through db and the topics through kopts:
//  1. every order's state and version equal the fold of its accepted
//     transitions, and each transition is one the state machine allows;
//  2. accepted versions of an order run 1, 2, 3, ... with no gap or repeat;
//  3. every command_id with an outcome has exactly one outcome row, one
//     de-duplication row and exactly one event, and the event matches the row;
//  4. per order, events appear in version order (per partition, in seq order);
//  5. every offset of the commands topic below the stored position is an
//     outcome, a retry of one, or a dead letter; every dead letter is on the
//     DLQ exactly once; the outbox seqs have no gaps.
//
// It lists at most maxViolations violations (0: all) and counts them all.
func Run(ctx context.Context, db DB, kopts []kgo.Opt, names topics.Names, maxViolations int) (*Report, error) {
	v := &verifier{
		r:  &Report{MaxViolations: maxViolations, ByCheck: map[string]int{}},
		db: db, kopts: kopts, names: names,
		byCommand: map[string]*row{}, dead: map[place]*deadLetter{}, positions: map[int32]store.Position{},
	}
	for _, c := range Checks() {
		v.r.ByCheck[c] = 0
	}
	acl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	v.adm = kadm.NewClient(acl)
	defer v.adm.Close()

	for _, step := range []func(context.Context) error{
		v.readTransitions, v.checkOrders, v.checkDedup, v.readDeadLetters, v.checkPositions,
		v.checkEvents, v.checkDLQ, v.checkCommands,
	} {
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	sort.Strings(v.r.Violations)
	return v.r, nil
}

// readTransitions reads every outcome row in processing order and checks
// checks 1 and 2 on the way: the fold, the versions, one outcome per command.
func (v *verifier) readTransitions(ctx context.Context) error {
	rows, err := v.db.Query(ctx, `SELECT topic_partition, seq, source_offset, event_id, command_id, order_id, action, outcome,
			coalesce(from_state, ''), coalesce(to_state, ''), version, coalesce(reason, ''), coalesce(message, ''),
			coalesce(actor, ''), coalesce(command_reason, ''), metadata::text, requested_at, processed_at
		FROM transitions ORDER BY topic_partition, seq`)
	if err != nil {
		return fmt.Errorf("read transitions: %w", err)
	}
	for rows.Next() {
		var (
			x    row
			meta *string
		)
		if err := rows.Scan(&x.partition, &x.Seq, &x.Offset, &x.EventID, &x.CommandID, &x.OrderID, &x.Action, &x.Outcome.Outcome,
			&x.FromState, &x.ToState, &x.Version, &x.Reason, &x.Message, &x.Actor, &x.CommandReason, &meta,
			&x.RequestedAt, &x.ProcessedAt); err != nil {
			rows.Close()
			return fmt.Errorf("read transitions: %w", err)
		}
		if meta != nil {
			x.Metadata = []byte(*meta)
		}
		v.all = append(v.all, x)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read transitions: %w", err)
	}
	r := v.r
	r.Outcomes = len(v.all)

	// Rows are in (partition, seq) order, and all the accepted transitions
	// of an order are in its key's partition, so walking them in this order
	// replays each order in processing order.
	type folded struct {
		state     machine.State
		version   int64
		partition int32
	}
	fold := map[string]*folded{}
	for i := range v.all {
		x := &v.all[i]
		if prev := v.byCommand[x.CommandID]; prev != nil {
			r.fail(CheckOutcomes, "command %s has two outcomes: partition %d seq %d and partition %d seq %d",
				x.CommandID, prev.partition, prev.Seq, x.partition, x.Seq)
		} else {
			v.byCommand[x.CommandID] = x
		}
		f := fold[x.OrderID]
		if f == nil {
			f = &folded{partition: -1}
			fold[x.OrderID] = f
		}
		switch x.Outcome.Outcome {
		case topics.Accepted:
			r.Accepted++
			if f.partition >= 0 && f.partition != x.partition {
				r.fail(CheckFold, "order %s changed in partitions %d and %d", x.OrderID, f.partition, x.partition)
			}
			f.partition = x.partition
			if x.Version != f.version+1 {
				r.fail(CheckVersions, "order %s: accepted version %d follows version %d (command %s)", x.OrderID, x.Version, f.version, x.CommandID)
			}
			if x.FromState != string(f.state) {
				r.fail(CheckFold, "order %s: transition to v%d starts from %q, the fold is at %q", x.OrderID, x.Version, x.FromState, f.state)
			}
			if a, err := machine.ParseAction(x.Action); err != nil {
				r.fail(CheckFold, "order %s v%d: accepted action %q is not an action", x.OrderID, x.Version, x.Action)
			} else if to, rej := machine.Apply(machine.State(x.FromState), x.Version-1, a, nil); rej != nil || string(to) != x.ToState {
				r.fail(CheckFold, "order %s v%d: %s from %q to %q is not a transition of the state machine", x.OrderID, x.Version, x.Action, x.FromState, x.ToState)
			}
			if want := topics.AcceptedEventID(x.OrderID, x.Version); x.EventID != want {
				r.fail(CheckOutcomes, "command %s: event_id %q, want %q", x.CommandID, x.EventID, want)
			}
			f.state, f.version = machine.State(x.ToState), x.Version
		case topics.Rejected:
			r.Rejected++
			if x.ToState != "" {
				r.fail(CheckFold, "command %s was rejected but has to_state %q", x.CommandID, x.ToState)
			}
			// An invalid command's order_id need not be its record's key,
			// so its partition may not be the order's: no order to compare.
			if x.Reason != machine.ReasonInvalidCommand && (x.FromState != string(f.state) || x.Version != f.version) {
				r.fail(CheckFold, "command %s (%s) was rejected at %q v%d, the fold of order %s is at %q v%d",
					x.CommandID, x.Reason, x.FromState, x.Version, x.OrderID, f.state, f.version)
			}
			if want := topics.RejectedEventID(x.OrderID, x.Version, x.CommandID); x.EventID != want {
				r.fail(CheckOutcomes, "command %s: event_id %q, want %q", x.CommandID, x.EventID, want)
			}
		default:
			r.fail(CheckOutcomes, "command %s has outcome %q", x.CommandID, x.Outcome.Outcome)
		}
	}
	v.fold = func(id string) (machine.State, int64, bool) {
		f := fold[id]
		if f == nil || f.version == 0 {
			return machine.None, 0, false
		}
		return f.state, f.version, true
	}
	return nil
}

// checkOrders compares the orders table with the fold (check 1).
func (v *verifier) checkOrders(ctx context.Context) error {
	rows, err := v.db.Query(ctx, `SELECT order_id, state, version FROM orders`)
	if err != nil {
		return fmt.Errorf("read orders: %w", err)
	}
	seen := map[string]bool{}
	perState := map[string]int64{}
	for rows.Next() {
		var (
			id, state string
			version   int64
		)
		if err := rows.Scan(&id, &state, &version); err != nil {
			rows.Close()
			return fmt.Errorf("read orders: %w", err)
		}
		v.r.Orders++
		seen[id] = true
		perState[state]++
		fs, fv, ok := v.fold(id)
		switch {
		case !ok:
			v.r.fail(CheckFold, "order %s is %s v%d but has no accepted transitions", id, state, version)
		case string(fs) != state || fv != version:
			v.r.fail(CheckFold, "order %s is %s v%d but its accepted transitions fold to %s v%d", id, state, version, fs, fv)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read orders: %w", err)
	}
	for i := range v.all {
		x := &v.all[i]
		if x.Outcome.Outcome == topics.Accepted && x.Version == 1 && !seen[x.OrderID] {
			v.r.fail(CheckFold, "order %s has accepted transitions but no row", x.OrderID)
		}
	}
	return v.checkCounts(ctx, perState)
}

// checkCounts compares order_counts with the orders counted per state.
func (v *verifier) checkCounts(ctx context.Context, perState map[string]int64) error {
	counted, err := store.OrderCounts(ctx, v.db)
	if err != nil {
		return err
	}
	for st := range perState {
		if _, ok := counted[st]; !ok {
			counted[st] = 0
		}
	}
	for st, n := range counted {
		if n != perState[st] {
			v.r.fail(CheckCounts, "order_counts has %d orders in %s, the orders table %d", n, st, perState[st])
		}
	}
	return nil
}

// checkDedup checks that every outcome has the one de-duplication row that
// makes a retry of its command_id change nothing, and every such row an
// outcome (check 3).
func (v *verifier) checkDedup(ctx context.Context) error {
	rows, err := v.db.Query(ctx, `SELECT command_id, order_id, topic_partition, seq FROM commands`)
	if err != nil {
		return fmt.Errorf("read commands: %w", err)
	}
	for rows.Next() {
		var (
			id, order string
			p         int32
			seq       int64
		)
		if err := rows.Scan(&id, &order, &p, &seq); err != nil {
			rows.Close()
			return fmt.Errorf("read commands: %w", err)
		}
		x := v.byCommand[id]
		switch {
		case x == nil:
			v.r.fail(CheckOutcomes, "de-duplication row of command %s has no outcome", id)
		case x.partition != p || x.Seq != seq || x.OrderID != order:
			v.r.fail(CheckOutcomes, "de-duplication row of command %s points at %s %d/%d, its outcome is %s %d/%d",
				id, order, p, seq, x.OrderID, x.partition, x.Seq)
		default:
			x.dedup = true
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read commands: %w", err)
	}
	for id, x := range v.byCommand {
		if !x.dedup {
			v.r.fail(CheckOutcomes, "command %s has an outcome but no de-duplication row", id)
		}
	}
	return nil
}

func (v *verifier) readDeadLetters(ctx context.Context) error {
	rows, err := v.db.Query(ctx, `SELECT topic_partition, source_offset, seq, record_key, record_value, error FROM dead_letters`)
	if err != nil {
		return fmt.Errorf("read dead letters: %w", err)
	}
	for rows.Next() {
		var (
			pl place
			d  deadLetter
		)
		if err := rows.Scan(&pl.partition, &pl.offset, &d.seq, &d.key, &d.value, &d.err); err != nil {
			rows.Close()
			return fmt.Errorf("read dead letters: %w", err)
		}
		if d.err == "" {
			v.r.fail(CheckDLQ, "dead letter %d/%d has no reason", pl.partition, pl.offset)
		}
		v.dead[pl] = &d
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read dead letters: %w", err)
	}
	v.r.DeadLetters = len(v.dead)
	return nil
}

// checkPositions checks the outbox seqs and that nothing was recorded past
// the stored positions (checks 5).
func (v *verifier) checkPositions(ctx context.Context) error {
	rows, err := v.db.Query(ctx, `SELECT topic_partition, next_offset, next_seq FROM partition_offsets WHERE topic = $1`, v.names.Commands)
	if err != nil {
		return fmt.Errorf("read positions: %w", err)
	}
	for rows.Next() {
		var (
			p   int32
			pos store.Position
		)
		if err := rows.Scan(&p, &pos.NextOffset, &pos.NextSeq); err != nil {
			rows.Close()
			return fmt.Errorf("read positions: %w", err)
		}
		v.positions[p] = pos
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read positions: %w", err)
	}
	seqs := map[int32]map[int64]int{}
	add := func(p int32, seq, off int64, what string) {
		pos, ok := v.positions[p]
		switch {
		case !ok:
			v.r.fail(CheckOffsets, "%s at %d/%d: the partition has no stored position", what, p, off)
		case off >= pos.NextOffset || seq >= pos.NextSeq:
			v.r.fail(CheckOffsets, "%s at %d/%d (seq %d) is past the stored position %d (seq %d)", what, p, off, seq, pos.NextOffset, pos.NextSeq)
		}
		if seqs[p] == nil {
			seqs[p] = map[int64]int{}
		}
		seqs[p][seq]++
	}
	for i := range v.all {
		x := &v.all[i]
		add(x.partition, x.Seq, x.Offset, "outcome of command "+x.CommandID)
	}
	for pl, d := range v.dead {
		add(pl.partition, d.seq, pl.offset, "dead letter")
	}
	parts := make([]int32, 0, len(v.positions))
	for p := range v.positions {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	for _, p := range parts {
		next := v.positions[p].NextSeq
		missing, repeated := 0, 0
		for s := int64(1); s < next; s++ {
			switch n := seqs[p][s]; {
			case n == 0:
				missing++
			case n > 1:
				repeated++
			}
		}
		if missing > 0 || repeated > 0 {
			v.r.fail(CheckOutbox, "partition %d: of outbox seqs 1..%d, %d are missing and %d repeated", p, next-1, missing, repeated)
		}
	}
	return nil
}

// checkEvents reads the events topic (checks 3 and 4).
func (v *verifier) checkEvents(ctx context.Context) error {
	ends, err := topics.Ends(ctx, v.adm, v.names.Events)
	if err != nil {
		return err
	}
	r := v.r
	events := map[string]int{}
	lastVersion := map[string]int64{}
	lastSeq := map[int32]int64{}
	err = topics.ReadCommitted(ctx, v.kopts, v.names.Events, ends, func(rec *kgo.Record) {
		r.Events++
		at := fmt.Sprintf("%d/%d", rec.Partition, rec.Offset)
		seq, ok := header(rec, topics.HeaderSeq)
		if !ok {
			r.fail(CheckEvents, "event at %s has no %s header", at, topics.HeaderSeq)
		} else {
			if seq <= lastSeq[rec.Partition] {
				r.fail(CheckOrder, "event at %s has seq %d after seq %d", at, seq, lastSeq[rec.Partition])
			}
			lastSeq[rec.Partition] = seq
		}
		ev, err := topics.DecodeEvent(rec.Value)
		if err != nil {
			r.fail(CheckEvents, "event at %s does not decode: %v", at, err)
			return
		}
		events[ev.CommandID]++
		x := v.byCommand[ev.CommandID]
		switch {
		case x == nil:
			r.fail(CheckEvents, "event %s at %s for command %s has no outcome row", ev.EventID, at, ev.CommandID)
			return
		case events[ev.CommandID] > 1:
			r.fail(CheckEvents, "command %s has %d events (another at %s)", ev.CommandID, events[ev.CommandID], at)
		case !sameEvent(processor.EventFromOutcome(&x.Outcome), ev):
			r.fail(CheckEvents, "event %s at %s does not match its row", ev.EventID, at)
		case rec.Partition != x.partition || seq != x.Seq || string(rec.Key) != x.OrderID:
			r.fail(CheckEvents, "event %s at %s (key %q, seq %d) is not where its row puts it: partition %d, seq %d, key %q",
				ev.EventID, at, rec.Key, seq, x.partition, x.Seq, x.OrderID)
		}
		if ev.Outcome == topics.Accepted {
			if ev.Version <= lastVersion[ev.OrderID] {
				r.fail(CheckOrder, "order %s: event v%d at %s after v%d", ev.OrderID, ev.Version, at, lastVersion[ev.OrderID])
			}
			lastVersion[ev.OrderID] = ev.Version
		}
	})
	if err != nil {
		return err
	}
	for id := range v.byCommand {
		if events[id] == 0 {
			r.fail(CheckEvents, "command %s has an outcome row but no event", id)
		}
	}
	return nil
}

// checkDLQ reads the DLQ topic (check 5).
func (v *verifier) checkDLQ(ctx context.Context) error {
	ends, err := topics.Ends(ctx, v.adm, v.names.DLQ)
	if err != nil {
		return err
	}
	r := v.r
	lastSeq := map[int32]int64{}
	err = topics.ReadCommitted(ctx, v.kopts, v.names.DLQ, ends, func(rec *kgo.Record) {
		r.DLQRecords++
		at := fmt.Sprintf("%d/%d", rec.Partition, rec.Offset)
		off, okOff := header(rec, topics.HeaderSourceOffset)
		part, okPart := header(rec, topics.HeaderSourcePartition)
		seq, okSeq := header(rec, topics.HeaderSeq)
		src, why := "", ""
		for _, h := range rec.Headers {
			switch h.Key {
			case topics.HeaderSourceTopic:
				src = string(h.Value)
			case topics.HeaderError:
				why = string(h.Value)
			}
		}
		if !okOff || !okPart || !okSeq || src != v.names.Commands || int32(part) != rec.Partition || why == "" { //nolint:gosec // compared, not used
			r.fail(CheckDLQ, "DLQ record at %s lacks its headers (source %q partition %d offset %d seq %d, reason %q)", at, src, part, off, seq, why)
			return
		}
		if seq <= lastSeq[rec.Partition] {
			r.fail(CheckOrder, "DLQ record at %s has seq %d after seq %d", at, seq, lastSeq[rec.Partition])
		}
		lastSeq[rec.Partition] = seq
		d := v.dead[place{rec.Partition, off}]
		switch {
		case d == nil:
			r.fail(CheckDLQ, "DLQ record at %s (from offset %d) has no dead letter row", at, off)
			return
		case !sameDeadLetter(d.key, d.value, rec) || d.err != why || d.seq != seq:
			r.fail(CheckDLQ, "DLQ record at %s does not match dead letter %d/%d", at, rec.Partition, off)
		}
		d.published++
	})
	if err != nil {
		return err
	}
	for pl, d := range v.dead {
		if d.published != 1 {
			r.fail(CheckDLQ, "dead letter %d/%d is on the DLQ %d times", pl.partition, pl.offset, d.published)
		}
	}
	return nil
}

// checkCommands reads the commands topic up to the stored positions (check 5).
func (v *verifier) checkCommands(ctx context.Context) error {
	ends, err := topics.Ends(ctx, v.adm, v.names.Commands)
	if err != nil {
		return err
	}
	r := v.r
	ranges := map[int32]topics.Range{}
	for p, e := range ends {
		pos, ok := v.positions[p]
		if !ok {
			r.Unconsumed += e.To - e.From
			continue
		}
		if pos.NextOffset > e.To {
			r.fail(CheckOffsets, "partition %d: stored position %d is past the topic's end %d", p, pos.NextOffset, e.To)
		}
		r.Unconsumed += max(0, e.To-pos.NextOffset)
		ranges[p] = topics.Range{From: e.From, To: min(pos.NextOffset, e.To)}
	}
	for p := range v.positions {
		if _, ok := ends[p]; !ok {
			r.fail(CheckOffsets, "partition %d has a stored position but is not in the commands topic", p)
		}
	}
	return topics.ReadCommitted(ctx, v.kopts, v.names.Commands, ranges, func(rec *kgo.Record) {
		r.CommandsRead++
		at := place{rec.Partition, rec.Offset}
		cmd, err := topics.DecodeCommand(rec.Key, rec.Value)
		if err == nil {
			_, err = machine.ParseAction(cmd.Action)
		}
		if v.dead[at] != nil {
			if err == nil {
				r.fail(CheckOffsets, "command %s at %d/%d is valid but was dead-lettered", cmd.CommandID, at.partition, at.offset)
			}
			// An invalid record whose ids can be read is answered with a
			// rejected outcome (once per command_id).
			if cid, _, ok := topics.Identify(rec.Value); ok && v.byCommand[cid] == nil {
				r.fail(CheckOffsets, "dead letter %d/%d names command %s, which has no outcome", at.partition, at.offset, cid)
			}
			return
		}
		if err != nil {
			r.fail(CheckOffsets, "record %d/%d is invalid (%v) but not a dead letter", at.partition, at.offset, err)
			return
		}
		x := v.byCommand[cmd.CommandID]
		switch {
		case x == nil:
			r.fail(CheckOffsets, "command %s at %d/%d was consumed but has no outcome", cmd.CommandID, at.partition, at.offset)
		case x.partition == at.partition && x.Offset == at.offset:
			if x.OrderID != cmd.OrderID || (x.Action != cmd.Action && x.Reason != machine.ReasonInvalidCommand) {
				r.fail(CheckOffsets, "outcome of command %s is for %s %s, its record at %d/%d says %s %s",
					cmd.CommandID, x.Action, x.OrderID, at.partition, at.offset, cmd.Action, cmd.OrderID)
			}
		case x.partition == at.partition && x.Offset > at.offset:
			r.fail(CheckOffsets, "command %s at %d/%d has its outcome at the later offset %d", cmd.CommandID, at.partition, at.offset, x.Offset)
		default:
			r.DuplicatesRead++
		}
	})
}

// header returns the integer value of a record header.
func header(rec *kgo.Record, key string) (int64, bool) {
	for _, h := range rec.Headers {
		if h.Key == key {
			n, err := strconv.ParseInt(string(h.Value), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// sameEvent compares two events field by field, metadata as JSON values.
func sameEvent(a, b topics.Event) bool {
	am, bm := a.Metadata, b.Metadata
	a.Metadata, b.Metadata = nil, nil
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
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
	jx, _ := json.Marshal(x)
	jy, _ := json.Marshal(y)
	return bytes.Equal(jx, jy)
}

// sameDeadLetter compares a DLQ record with its row; a record cut to fit
// Kafka (header orderflow-truncated) must be a prefix of it.
func sameDeadLetter(key, value []byte, rec *kgo.Record) bool {
	for _, h := range rec.Headers {
		if h.Key == topics.HeaderTruncated {
			return bytes.HasPrefix(key, rec.Key) && bytes.HasPrefix(value, rec.Value) &&
				string(h.Value) == strconv.Itoa(len(key)+len(value))
		}
	}
	return bytes.Equal(key, rec.Key) && bytes.Equal(value, rec.Value)
}
