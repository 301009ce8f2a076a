package store_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/scripts/testenv"
)

func TestMigrateIsIdempotentAndConcurrent(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	applied := make([][]string, 3)
	errs := make([]error, 3)
	for i := range 3 { // processors starting at once
		wg.Go(func() { applied[i], errs[i] = store.Migrate(ctx, pool) })
	}
	wg.Wait()
	total := 0
	for i := range 3 {
		if errs[i] != nil {
			t.Fatalf("migrate %d: %v", i, errs[i])
		}
		total += len(applied[i])
	}
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if total != len(ms) {
		t.Fatalf("%d migrations applied in all, want each of %d once", total, len(ms))
	}
	again, err := store.Migrate(ctx, pool)
	if err != nil || len(again) != 0 {
		t.Fatalf("second migrate applied %v, %v", again, err)
	}
}

func TestEnsurePartitionsAhead(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	ctx := context.Background()
	if _, err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 15, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if err := store.EnsurePartitions(ctx, pool, now); err != nil {
				t.Errorf("ensure partitions: %v", err)
			}
		})
	}
	wg.Wait()
	rows, err := pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'transitions'::regclass ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	want := []string{"transitions_2026_11", "transitions_2026_12", "transitions_2027_01", "transitions_2027_02"}
	if len(names) != len(want) {
		t.Fatalf("partitions %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("partitions %v, want %v", names, want)
		}
	}
}

// A member that lost its partition to a newer claim cannot commit a batch:
// guarantee 5, no zombie writes.
func TestClaimFencesThePreviousOwner(t *testing.T) {
	t.Parallel()
	pool := schema(t)
	ctx := context.Background()
	old := store.Owner{Topic: "orders.commands", Partition: 3, Token: "old"}
	pos, err := store.Claim(ctx, pool, old)
	if err != nil || pos != (store.Position{NextOffset: 0, NextSeq: 1}) {
		t.Fatalf("first claim: %+v, %v", pos, err)
	}
	batch := func(o store.Owner, offset int64, order string) error {
		return store.RunBatch(ctx, pool, o, []string{order}, []string{order + "-c"}, func(s store.Snapshot) (store.Writes, error) {
			now := store.Now()
			return store.Writes{
				Position: store.Position{NextOffset: offset + 1, NextSeq: s.Position.NextSeq + 1},
				Outcomes: []store.Outcome{{Seq: s.Position.NextSeq, Offset: offset, EventID: order + "/1", CommandID: order + "-c",
					OrderID: order, Action: "create", Outcome: "accepted", ToState: "Created", Version: 1, ProcessedAt: now}},
				Orders: []store.OrderWrite{{OrderID: order, State: "Created", Version: 1, CreatedAt: now, UpdatedAt: now}},
			}, nil
		})
	}
	if err := batch(old, 0, "a"); err != nil {
		t.Fatalf("owner's batch: %v", err)
	}
	newer := store.Owner{Topic: "orders.commands", Partition: 3, Token: "new"}
	pos, err = store.Claim(ctx, pool, newer)
	if err != nil || pos != (store.Position{NextOffset: 1, NextSeq: 2}) {
		t.Fatalf("takeover claim: %+v, %v; want the position the old owner committed", pos, err)
	}
	if err := batch(old, 1, "zombie"); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("zombie batch: %v, want ErrFenced", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM orders WHERE order_id = 'zombie'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("zombie's order rows: %d, %v", n, err)
	}
	if err := batch(newer, 1, "b"); err != nil {
		t.Fatalf("new owner's batch: %v", err)
	}
	// A version-checked update refuses an order that moved under it.
	err = store.RunBatch(ctx, pool, newer, []string{"a"}, nil, func(s store.Snapshot) (store.Writes, error) {
		now := store.Now()
		return store.Writes{Position: store.Position{NextOffset: 3, NextSeq: s.Position.NextSeq},
			Orders: []store.OrderWrite{{OrderID: "a", State: "Paid", Version: 3, PrevVersion: 2, PrevState: "Created", UpdatedAt: now}}}, nil
	})
	if !errors.Is(err, store.ErrConcurrentWrite) {
		t.Fatalf("stale update: %v, want ErrConcurrentWrite", err)
	}
	page, err := store.OutboxPage(ctx, pool, 3, 0, 100, 10)
	if err != nil || len(page) != 2 || page[0].Seq != 1 || page[1].Seq != 2 || page[1].Outcome.OrderID != "b" {
		t.Fatalf("outbox %+v, %v", page, err)
	}
}

// An Outcome's empty strings and nil RequestedAt are stored as NULL, and
// everything else comes back from the outbox as it was written.
func TestOutcomeColumnsKeepNulls(t *testing.T) {
	t.Parallel()
	pool := schema(t)
	ctx := context.Background()
	o := store.Owner{Topic: "orders.commands", Partition: 5, Token: "t"}
	if _, err := store.Claim(ctx, pool, o); err != nil {
		t.Fatal(err)
	}
	now := store.Now()
	requested := now.Add(-time.Second)
	want := []store.Outcome{
		{Seq: 1, Offset: 0, EventID: "bare/0/rejected/c1", CommandID: "c1", OrderID: "bare", Action: "pay",
			Outcome: "rejected", Reason: "invalid_transition", ProcessedAt: now},
		{Seq: 2, Offset: 1, EventID: "full/1", CommandID: "c2", OrderID: "full", Action: "create", Outcome: "accepted",
			FromState: "None", ToState: "Created", Version: 1, Reason: "r", Message: "m", Actor: "a", CommandReason: "cr",
			Metadata: []byte(`{"k":"v"}`), RequestedAt: &requested, ProcessedAt: now},
	}
	err := store.RunBatch(ctx, pool, o, nil, nil, func(s store.Snapshot) (store.Writes, error) {
		return store.Writes{Position: store.Position{NextOffset: 2, NextSeq: 3}, Outcomes: want}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var nulls int
	err = pool.QueryRow(ctx, `SELECT num_nulls(from_state, to_state, message, actor, command_reason, metadata, requested_at)
		FROM transitions WHERE command_id = 'c1'`).Scan(&nulls)
	if err != nil || nulls != 7 {
		t.Fatalf("bare outcome has %d NULL columns (%v), want 7", nulls, err)
	}
	err = pool.QueryRow(ctx, `SELECT num_nulls(from_state, to_state, reason, message, actor, command_reason, metadata, requested_at)
		FROM transitions WHERE command_id = 'c2'`).Scan(&nulls)
	if err != nil || nulls != 0 {
		t.Fatalf("full outcome has %d NULL columns (%v), want 0", nulls, err)
	}
	page, err := store.OutboxPage(ctx, pool, o.Partition, 0, 100, 10)
	if err != nil || len(page) != 2 {
		t.Fatalf("outbox %+v, %v", page, err)
	}
	for i, e := range page {
		got, w := *e.Outcome, want[i]
		if (got.RequestedAt == nil) != (w.RequestedAt == nil) ||
			(got.RequestedAt != nil && !got.RequestedAt.Equal(*w.RequestedAt)) || !got.ProcessedAt.Equal(w.ProcessedAt) {
			t.Fatalf("outcome %d times: %v %v, want %v %v", i, got.RequestedAt, got.ProcessedAt, w.RequestedAt, w.ProcessedAt)
		}
		got.RequestedAt, got.ProcessedAt, w.RequestedAt, w.ProcessedAt = nil, time.Time{}, nil, time.Time{}
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("outcome %d:\n got %+v\nwant %+v", i, got, w)
		}
	}
}

// order_counts follows the batches: new orders, state changes, an update
// that keeps the state, in two partitions and two transactions.
func TestOrderCountsFollowBatches(t *testing.T) {
	t.Parallel()
	pool := schema(t)
	ctx := context.Background()
	// An order from before order_counts existed, counted by RecountOrders.
	if _, err := pool.Exec(ctx, `INSERT INTO orders VALUES ('old', 'Paid', 2, now(), now())`); err != nil {
		t.Fatal(err)
	}
	if err := store.RecountOrders(ctx, pool); err != nil {
		t.Fatal(err)
	}
	owners := []store.Owner{{Topic: "orders.commands", Partition: 1, Token: "t"}, {Topic: "orders.commands", Partition: 2, Token: "t"}}
	for _, o := range owners {
		if _, err := store.Claim(ctx, pool, o); err != nil {
			t.Fatal(err)
		}
	}
	now := store.Now()
	write := func(ws [][]store.OrderWrite) {
		t.Helper()
		parts := make([]store.Part, len(ws))
		for i := range ws {
			parts[i] = store.Part{Owner: owners[i]}
		}
		_, err := store.RunBatches(ctx, pool, parts, func(i int, s store.Snapshot) (store.Writes, error) {
			return store.Writes{Position: store.Position{NextOffset: s.Position.NextOffset + 1, NextSeq: s.Position.NextSeq},
				Orders: ws[i]}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	ow := func(id, state string, v int64, prev string) store.OrderWrite {
		return store.OrderWrite{OrderID: id, State: state, Version: v, PrevVersion: v - 1, PrevState: prev, CreatedAt: now, UpdatedAt: now}
	}
	write([][]store.OrderWrite{
		{ow("a", "Created", 1, ""), ow("b", "Paid", 1, "")},
		{ow("c", "Created", 1, "")},
	})
	write([][]store.OrderWrite{
		{ow("a", "Cancelled", 2, "Created"), ow("b", "Paid", 2, "Paid")},
		{ow("c", "Paid", 2, "Created"), ow("old", "Shipped", 3, "Paid")},
	})
	got, err := store.OrderCounts(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"Cancelled": 1, "Paid": 2, "Shipped": 1}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("OrderCounts = %v, want %v", got, want)
	}
	// The same as counting the table.
	if err := store.RecountOrders(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if again, err := store.OrderCounts(ctx, pool); err != nil || !reflect.DeepEqual(again, want) {
		t.Fatalf("after a recount: %v, %v", again, err)
	}
}

// schema returns a pool on a fresh database with the schema and this
// month's audit partitions, as a processor leaves it at start.
func schema(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := testenv.Pool(t)
	ctx := context.Background()
	if _, err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if err := store.EnsurePartitions(ctx, pool, time.Now()); err != nil {
		t.Fatal(err)
	}
	return pool
}
