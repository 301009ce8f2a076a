package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrFenced means this process no longer owns the partition: another member
// claimed it after a rebalance. The batch was rolled back and must not be
// retried here.
var ErrFenced = errors.New("partition claimed by another member")

// ErrConcurrentWrite means an order row was not at the version this
// partition's owner read. Only the owner writes an order, so this is a bug or
// a second deployment writing to the same database; the batch is rolled back.
var ErrConcurrentWrite = errors.New("order changed concurrently")

// Position is where a command partition stands: the next offset to consume
// and the next outbox sequence number to allocate.
type Position struct {
	NextOffset int64
	NextSeq    int64
}

// Owner identifies one claim of one partition.
type Owner struct {
	Topic     string
	Partition int32
	Token     string // unique per claim
}

// OrderState is an order's row as a batch reads it.
type OrderState struct {
	State     string
	Version   int64
	CreatedAt time.Time
}

// Outcome is one transitions row: the outcome of one command. Empty strings
// are stored as NULL.
type Outcome struct {
	Seq           int64
	Offset        int64
	EventID       string
	CommandID     string
	OrderID       string
	Action        string
	Outcome       string
	FromState     string
	ToState       string
	Version       int64
	Reason        string
	Message       string
	Actor         string
	CommandReason string
	Metadata      []byte
	RequestedAt   *time.Time
	ProcessedAt   time.Time
}

// DeadLetter is a record that could not be decoded, kept with why.
type DeadLetter struct {
	Seq         int64
	Offset      int64
	Key         []byte
	Value       []byte
	Error       string
	ProcessedAt time.Time
}

// OrderWrite is the final state of one order after a batch: one write per
// order per batch, whatever number of transitions the batch applied to it.
// PrevVersion and PrevState are what the batch read (0 and "": the order is
// new); PrevState keeps order_counts right.
type OrderWrite struct {
	OrderID     string
	State       string
	Version     int64
	PrevVersion int64
	PrevState   string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Snapshot is what a batch reads under the partition lock before deciding.
type Snapshot struct {
	Position Position
	Orders   map[string]OrderState
	Seen     map[string]bool // command_ids that already have an outcome
}

// Writes is what a batch decided. NextOffset and NextSeq become the
// partition's new position in the same transaction.
type Writes struct {
	Position    Position
	Outcomes    []Outcome
	DeadLetters []DeadLetter
	Orders      []OrderWrite
}

// Claim makes owner the partition's only writer and returns where it stands.
// A member that claimed it before can no longer commit a batch (ErrFenced).
// The row lock makes a claim wait for a batch in flight to finish, so the
// position returned includes it.
func Claim(ctx context.Context, pool *pgxpool.Pool, o Owner) (Position, error) {
	var p Position
	err := pool.QueryRow(ctx, `
		INSERT INTO partition_offsets (topic, topic_partition, next_offset, next_seq, owner, claimed_at)
		VALUES ($1, $2, 0, 1, $3, now())
		ON CONFLICT (topic, topic_partition) DO UPDATE SET owner = EXCLUDED.owner, claimed_at = now()
		RETURNING next_offset, next_seq`, o.Topic, o.Partition, o.Token).Scan(&p.NextOffset, &p.NextSeq)
	if err != nil {
		return p, fmt.Errorf("claim %s/%d: %w", o.Topic, o.Partition, err)
	}
	return p, nil
}

// noSeqScans keeps the transaction's statements on their indexes. pgx
// prepares statements, and after five runs PostgreSQL may switch to a
// generic plan costed once, against the tables as they were then: planned
// while orders was nearly empty, a lookup of 2,000 ids became a sequential
// scan comparing every row with every id, and as orders grew by the hundred
// thousand a batch took seconds. Every statement here reads or writes rows
// by key, so an index is always the right plan, and the cached plans stay.
const noSeqScans = `SET LOCAL enable_seqscan = off`

// RunBatch runs one partition's batch in ONE transaction: it locks the
// partition's position row (failing with ErrFenced if owner lost the claim),
// reads the orders and command_ids the batch touches, calls decide, and
// writes its decision: outcomes, de-duplication rows, dead letters, order
// rows (version checked) and the new position. Either all of it commits or
// none of it.
func RunBatch(ctx context.Context, pool *pgxpool.Pool, o Owner, orderIDs, commandIDs []string,
	decide func(Snapshot) (Writes, error),
) error {
	fenced, err := RunBatches(ctx, pool, []Part{{Owner: o, OrderIDs: orderIDs, CommandIDs: commandIDs}},
		func(_ int, s Snapshot) (Writes, error) { return decide(s) })
	if err == nil && fenced[0] {
		err = ErrFenced
	}
	return err
}

// Part is one partition's share of a transaction that RunBatches runs.
type Part struct {
	Owner      Owner
	OrderIDs   []string
	CommandIDs []string
}

// RunBatches runs the batches of several partitions in ONE transaction, as
// RunBatch runs one: one commit (one WAL flush) for all of them is what
// keeps a processor with many quiet partitions cheap. decide is called for
// each part still owned, in order, and the snapshots share one Seen map, so
// a command_id that turns up in two parts gets one outcome. fenced[i] reports
// a part whose claim was lost; nothing is written for it, and the others
// still commit. An error means nothing committed.
func RunBatches(ctx context.Context, pool *pgxpool.Pool, parts []Part,
	decide func(i int, s Snapshot) (Writes, error),
) (fenced []bool, err error) {
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		snaps, err := read(ctx, tx, parts)
		if err != nil {
			return err
		}
		fenced = make([]bool, len(parts))
		var ws []partWrites
		for i := range parts {
			if snaps[i] == nil {
				fenced[i] = true
				continue
			}
			w, err := decide(i, *snaps[i])
			if err != nil {
				return err
			}
			ws = append(ws, partWrites{owner: parts[i].Owner, w: w})
		}
		if len(ws) == 0 {
			return nil
		}
		b := &pgx.Batch{}
		checks, err := queueWrites(b, ws)
		if err != nil {
			return err
		}
		res := tx.SendBatch(ctx, b)
		defer res.Close()
		for _, check := range checks {
			tag, err := res.Exec()
			if err != nil {
				return fmt.Errorf("write batch: %w", err)
			}
			if check != nil {
				if err := check(tag); err != nil {
					return err
				}
			}
		}
		return res.Close()
	})
	return fenced, err
}

// read locks the position rows of the parts still owned and reads the orders
// and command_ids they touch. A nil snapshot is a part whose claim was lost.
func read(ctx context.Context, tx pgx.Tx, parts []Part) ([]*Snapshot, error) {
	n := 0
	for i := range parts {
		n += len(parts[i].OrderIDs)
	}
	var (
		topicNames, owners []string
		partNums           []int32
		commandIDs         []string
	)
	orderIDs := make([]string, 0, n)
	for i := range parts {
		orderIDs = append(orderIDs, parts[i].OrderIDs...)
		commandIDs = append(commandIDs, parts[i].CommandIDs...)
		topicNames = append(topicNames, parts[i].Owner.Topic)
		partNums = append(partNums, parts[i].Owner.Partition)
		owners = append(owners, parts[i].Owner.Token)
	}
	orders := make(map[string]OrderState, n)
	seen := make(map[string]bool)
	b := &pgx.Batch{}
	b.Queue(noSeqScans)
	b.Queue(`SELECT p.topic, p.topic_partition, p.next_offset, p.next_seq FROM partition_offsets p
		JOIN unnest($1::text[], $2::int[], $3::text[]) AS u(topic, topic_partition, owner)
			ON p.topic = u.topic AND p.topic_partition = u.topic_partition AND p.owner = u.owner
		FOR UPDATE OF p`, topicNames, partNums, owners)
	b.Queue(`SELECT order_id, state, version, created_at FROM orders WHERE order_id = ANY($1)`, orderIDs)
	b.Queue(`SELECT command_id FROM commands WHERE command_id = ANY($1)`, commandIDs)
	res := tx.SendBatch(ctx, b)
	defer res.Close()

	if _, err := res.Exec(); err != nil {
		return nil, fmt.Errorf("keep to indexes: %w", err)
	}
	snaps := make([]*Snapshot, len(parts))
	rows, err := res.Query()
	if err != nil {
		return nil, fmt.Errorf("lock positions: %w", err)
	}
	var (
		topic string
		part  int32
		pos   Position
	)
	_, err = pgx.ForEachRow(rows, []any{&topic, &part, &pos.NextOffset, &pos.NextSeq}, func() error {
		for i := range parts {
			if parts[i].Owner.Topic == topic && parts[i].Owner.Partition == part {
				snaps[i] = &Snapshot{Position: pos, Orders: orders, Seen: seen}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lock positions: %w", err)
	}
	rows, err = res.Query()
	if err != nil {
		return nil, fmt.Errorf("read orders: %w", err)
	}
	var (
		id string
		s  OrderState
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &s.State, &s.Version, &s.CreatedAt}, func() error {
		orders[id] = s
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read orders: %w", err)
	}
	rows, err = res.Query()
	if err != nil {
		return nil, fmt.Errorf("read command ids: %w", err)
	}
	_, err = pgx.ForEachRow(rows, []any{&id}, func() error {
		seen[id] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read command ids: %w", err)
	}
	return snaps, res.Close()
}

// partWrites is one part's decision.
type partWrites struct {
	owner Owner
	w     Writes
}

// queueWrites queues the statements that write the parts' decisions onto b,
// the same few statements however many parts there are, and returns a check
// of each one's result (nil: none).
func queueWrites(b *pgx.Batch, ws []partWrites) ([]func(pgconn.CommandTag) error, error) {
	var (
		checks   []func(pgconn.CommandTag) error
		outcomes []Outcome
		oparts   []int32
		dls      []DeadLetter
		dparts   []int32
	)
	for _, pw := range ws {
		outcomes = append(outcomes, pw.w.Outcomes...)
		dls = append(dls, pw.w.DeadLetters...)
		for range pw.w.Outcomes {
			oparts = append(oparts, pw.owner.Partition)
		}
		for range pw.w.DeadLetters {
			dparts = append(dparts, pw.owner.Partition)
		}
	}
	if len(outcomes) > 0 {
		cols := outcomeColumns(outcomes)
		b.Queue(`INSERT INTO transitions (processed_at, topic_partition, source_offset, seq, event_id, command_id,
				order_id, action, outcome, from_state, to_state, version, reason, message, actor, command_reason,
				metadata, requested_at)
			SELECT u.processed_at, u.topic_partition, u.source_offset, u.seq, u.event_id, u.command_id, u.order_id,
				u.action, u.outcome, NULLIF(u.from_state, ''), NULLIF(u.to_state, ''), u.version, NULLIF(u.reason, ''),
				NULLIF(u.message, ''), NULLIF(u.actor, ''), NULLIF(u.command_reason, ''), NULLIF(u.metadata, '')::json,
				CASE WHEN u.has_requested_at THEN u.requested_at END
			FROM unnest($1::int[], $2::timestamptz[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[],
				$8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::text[], $14::text[],
				$15::text[], $16::text[], $17::text[], $18::timestamptz[], $19::bool[])
			AS u(topic_partition, processed_at, source_offset, seq, event_id, command_id, order_id, action, outcome,
				from_state, to_state, version, reason, message, actor, command_reason, metadata, requested_at,
				has_requested_at)`,
			oparts, cols.processedAt, cols.offset, cols.seq, cols.eventID, cols.commandID, cols.orderID,
			cols.action, cols.outcome, cols.fromState, cols.toState, cols.version, cols.reason, cols.message,
			cols.actor, cols.commandReason, cols.metadata, cols.requestedAt, cols.hasRequestedAt)
		checks = append(checks, nil)
		// Every outcome is the first for its command_id: the decision
		// skipped those already seen. A conflict here means it did not,
		// and the primary key refuses the batch rather than double it.
		b.Queue(`INSERT INTO commands (command_id, order_id, topic_partition, seq, processed_at)
			SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::timestamptz[])`,
			cols.commandID, cols.orderID, oparts, cols.seq, cols.processedAt)
		checks = append(checks, nil)
	}

	var (
		newIDs, newStates, updIDs, updStates []string
		newVersions, updVersions, updPrev    []int64
		newCreated, newUpdated, updUpdated   []time.Time
	)
	for _, pw := range ws {
		for _, ow := range pw.w.Orders {
			if ow.PrevVersion == 0 {
				newIDs, newStates, newVersions = append(newIDs, ow.OrderID), append(newStates, ow.State), append(newVersions, ow.Version)
				newCreated, newUpdated = append(newCreated, ow.CreatedAt), append(newUpdated, ow.UpdatedAt)
			} else {
				updIDs, updStates, updVersions = append(updIDs, ow.OrderID), append(updStates, ow.State), append(updVersions, ow.Version)
				updPrev, updUpdated = append(updPrev, ow.PrevVersion), append(updUpdated, ow.UpdatedAt)
			}
		}
	}
	if len(newIDs) > 0 {
		b.Queue(`INSERT INTO orders (order_id, state, version, created_at, updated_at)
			SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[], $5::timestamptz[])
			ON CONFLICT (order_id) DO NOTHING`, newIDs, newStates, newVersions, newCreated, newUpdated)
		checks = append(checks, expectRows(len(newIDs)))
	}
	if len(updIDs) > 0 {
		b.Queue(`UPDATE orders o SET state = u.state, version = u.version, updated_at = u.updated_at
			FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::timestamptz[])
				AS u(order_id, state, version, prev_version, updated_at)
			WHERE o.order_id = u.order_id AND o.version = u.prev_version`,
			updIDs, updStates, updVersions, updPrev, updUpdated)
		checks = append(checks, expectRows(len(updIDs)))
	}
	shards, states, deltas, err := countChanges(ws)
	if err != nil {
		return nil, err
	}
	if len(shards) > 0 {
		b.Queue(`INSERT INTO order_counts (shard, state, n)
			SELECT * FROM unnest($1::int[], $2::text[], $3::bigint[])
			ON CONFLICT (shard, state) DO UPDATE SET n = order_counts.n + excluded.n`, shards, states, deltas)
		checks = append(checks, nil)
	}
	if n := len(dls); n > 0 {
		offs, seqs := make([]int64, n), make([]int64, n)
		keys, vals := make([][]byte, n), make([][]byte, n)
		errs, ats := make([]string, n), make([]time.Time, n)
		for i, d := range dls {
			offs[i], seqs[i], keys[i], vals[i], errs[i], ats[i] = d.Offset, d.Seq, d.Key, d.Value, d.Error, d.ProcessedAt
		}
		b.Queue(`INSERT INTO dead_letters (topic_partition, source_offset, seq, record_key, record_value, error, processed_at)
			SELECT * FROM unnest($1::int[], $2::bigint[], $3::bigint[], $4::bytea[], $5::bytea[], $6::text[], $7::timestamptz[])`,
			dparts, offs, seqs, keys, vals, errs, ats)
		checks = append(checks, nil)
	}
	n := len(ws)
	topicNames, partNums, owners := make([]string, n), make([]int32, n), make([]string, n)
	nextOffsets, nextSeqs := make([]int64, n), make([]int64, n)
	for i, pw := range ws {
		topicNames[i], partNums[i], owners[i] = pw.owner.Topic, pw.owner.Partition, pw.owner.Token
		nextOffsets[i], nextSeqs[i] = pw.w.Position.NextOffset, pw.w.Position.NextSeq
	}
	b.Queue(`UPDATE partition_offsets p SET next_offset = u.next_offset, next_seq = u.next_seq
		FROM unnest($1::text[], $2::int[], $3::text[], $4::bigint[], $5::bigint[])
			AS u(topic, topic_partition, owner, next_offset, next_seq)
		WHERE p.topic = u.topic AND p.topic_partition = u.topic_partition AND p.owner = u.owner`,
		topicNames, partNums, owners, nextOffsets, nextSeqs)
	checks = append(checks, func(tag pgconn.CommandTag) error {
		if tag.RowsAffected() != int64(n) {
			return ErrFenced
		}
		return nil
	})
	return checks, nil
}

// countChanges sums what the batch's order writes do to order_counts: one
// more in each order's new state and one fewer in the state it left, in the
// rows of the order's command partition. Unchanged sums are left out; the
// result is sorted, so equal batches send equal statements.
func countChanges(ws []partWrites) (shards []int32, states []string, deltas []int64, err error) {
	type key struct {
		shard int32
		state string
	}
	sum := map[key]int64{}
	for _, pw := range ws {
		for _, ow := range pw.w.Orders {
			if ow.PrevVersion > 0 && ow.PrevState == "" {
				return nil, nil, nil, fmt.Errorf("store: update of order %q has no PrevState", ow.OrderID)
			}
			if ow.PrevVersion > 0 && ow.PrevState == ow.State {
				continue
			}
			sum[key{pw.owner.Partition, ow.State}]++
			if ow.PrevVersion > 0 {
				sum[key{pw.owner.Partition, ow.PrevState}]--
			}
		}
	}
	keys := make([]key, 0, len(sum))
	for k, d := range sum {
		if d != 0 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.shard, b.shard), strings.Compare(a.state, b.state))
	})
	for _, k := range keys {
		shards, states, deltas = append(shards, k.shard), append(states, k.state), append(deltas, sum[k])
	}
	return shards, states, deltas, nil
}

// Querier is what reads PostgreSQL: a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// OrderCounts returns how many orders are in each state that has any, from
// order_counts: a few rows, however many orders there are.
func OrderCounts(ctx context.Context, q Querier) (map[string]int64, error) {
	rows, err := q.Query(ctx, `SELECT state, sum(n)::bigint FROM order_counts GROUP BY state HAVING sum(n) <> 0`)
	if err != nil {
		return nil, fmt.Errorf("count orders: %w", err)
	}
	counts := map[string]int64{}
	var state string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&state, &n}, func() error { counts[state] = n; return nil }); err != nil {
		return nil, fmt.Errorf("count orders: %w", err)
	}
	return counts, nil
}

// RecountOrders sets order_counts from a count of orders. Batches keep it
// right; this is for tools that write orders directly (the benchmark's
// preload) and for repairing it after a processor of an earlier version
// wrote orders without it.
func RecountOrders(ctx context.Context, pool *pgxpool.Pool) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `LOCK TABLE orders IN SHARE MODE`)
		if err == nil {
			_, err = tx.Exec(ctx, `DELETE FROM order_counts`)
		}
		if err == nil {
			_, err = tx.Exec(ctx, `INSERT INTO order_counts (shard, state, n) SELECT -1, state, count(*) FROM orders GROUP BY state`)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("recount orders: %w", err)
	}
	return nil
}

func expectRows(n int) func(pgconn.CommandTag) error {
	return func(tag pgconn.CommandTag) error {
		if got := tag.RowsAffected(); got != int64(n) {
			return fmt.Errorf("%w: wrote %d of %d order rows", ErrConcurrentWrite, got, n)
		}
		return nil
	}
}

// columns is a batch of outcomes turned inside out, one array per column, the
// shape unnest takes. Nullable text columns hold "" for NULL (the SQL turns
// it back with NULLIF; an Outcome's empty string means NULL anyway), and
// requested_at has a flag column: pgx encodes slices of strings, times and
// bools directly, while slices of pointers went through reflection, a
// twentieth of the processor's CPU at full load.
type columns struct {
	processedAt, requestedAt                     []time.Time
	hasRequestedAt                               []bool
	offset, seq, version                         []int64
	eventID, commandID, orderID, action, outcome []string
	fromState, toState, reason, message, actor   []string
	commandReason, metadata                      []string
}

func outcomeColumns(os []Outcome) columns {
	n := len(os)
	c := columns{
		processedAt: make([]time.Time, n), requestedAt: make([]time.Time, n), hasRequestedAt: make([]bool, n),
		offset: make([]int64, n), seq: make([]int64, n), version: make([]int64, n),
		eventID: make([]string, n), commandID: make([]string, n), orderID: make([]string, n),
		action: make([]string, n), outcome: make([]string, n),
		fromState: make([]string, n), toState: make([]string, n), reason: make([]string, n),
		message: make([]string, n), actor: make([]string, n), commandReason: make([]string, n),
		metadata: make([]string, n),
	}
	for i := range os {
		o := &os[i]
		c.processedAt[i], c.offset[i], c.seq[i], c.version[i] = o.ProcessedAt, o.Offset, o.Seq, o.Version
		c.eventID[i], c.commandID[i], c.orderID[i], c.action[i], c.outcome[i] = o.EventID, o.CommandID, o.OrderID, o.Action, o.Outcome
		c.fromState[i], c.toState[i], c.reason[i] = o.FromState, o.ToState, o.Reason
		c.message[i], c.actor[i], c.commandReason[i] = o.Message, o.Actor, o.CommandReason
		c.metadata[i] = string(o.Metadata)
		if o.RequestedAt != nil {
			c.requestedAt[i], c.hasRequestedAt[i] = *o.RequestedAt, true
		}
	}
	return c
}
