package verify_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/processor/verify"
	"github.com/orderflow/orderflow/scripts/testenv"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// deployment is a processed deployment to corrupt: a database and topics
// that a real processor filled and verify passed.
type deployment struct {
	pool  *pgxpool.Pool
	kopts []kgo.Opt
	names topics.Names
	prod  *kgo.Client
}

func command(names topics.Names, cid, order, action string, expected *int64) *kgo.Record {
	at := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	v, err := topics.EncodeCommand(topics.Command{CommandID: cid, OrderID: order, Action: action, ExpectedVersion: expected,
		Actor: "verify-test", Metadata: json.RawMessage(`{"k": 1}`), RequestedAt: &at})
	if err != nil {
		panic(err)
	}
	return &kgo.Record{Topic: names.Commands, Key: []byte(order), Value: v}
}

// processed runs a processor over a small load with every kind of outcome
// (accepted, rejected, a retry, two dead letters) and waits until verify
// passes.
func processed(t *testing.T) *deployment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := &deployment{pool: testenv.Pool(t), kopts: []kgo.Opt{kgo.SeedBrokers(testenv.Kafka(t)...)}}
	prefix := testenv.TopicPrefix(t)
	d.names = topics.NewNames(prefix)
	if _, err := store.Migrate(ctx, d.pool); err != nil {
		t.Fatal(err)
	}
	if err := store.EnsurePartitions(ctx, d.pool, time.Now()); err != nil {
		t.Fatal(err)
	}
	var err error
	d.prod, err = kgo.NewClient(append(d.kopts, kgo.ProducerLinger(0))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.prod.Close)
	if _, err := topics.Ensure(ctx, kadm.NewClient(d.prod), d.names, topics.Settings{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	one := int64(1)
	recs := []*kgo.Record{
		command(d.names, "a1", "A", "create", nil),
		command(d.names, "a2", "A", "pay", &one),
		command(d.names, "a2", "A", "pay", &one), // a retry
		command(d.names, "a3", "A", "ship", nil),
		command(d.names, "b1", "B", "create", nil),
		command(d.names, "b2", "B", "cancel", nil),
		command(d.names, "b3", "B", "pay", nil), // invalid_transition
		command(d.names, "c1", "C", "pay", nil), // unknown_order
		{Topic: d.names.Commands, Key: []byte("A"), Value: []byte(`{"command_id":"x1","order_id":"A"`)},
		{Topic: d.names.Commands, Key: []byte("B"), Value: []byte(`{"command_id":"x2","order_id":"B","action":"fly"}`)},
		command(d.names, "a4", "A", "deliver", nil),
	}
	if err := d.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	p, err := processor.New(processor.Config{KafkaOpts: d.kopts, Names: d.names, Group: prefix + "group",
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}, d.pool)
	if err != nil {
		t.Fatal(err)
	}
	pctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(pctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("processor: %v", err)
		}
	}()
	for {
		rep, err := verify.Run(ctx, d.pool, d.kopts, d.names, 20)
		if err == nil && rep.OK() && rep.Unconsumed == 0 && rep.Events == 9 && rep.DLQRecords == 2 {
			if rep.Outcomes != 9 || rep.Accepted != 6 || rep.DeadLetters != 2 || rep.CommandsRead != 11 || rep.DuplicatesRead != 1 || rep.Orders != 2 {
				t.Fatalf("clean deployment: %s", rep.Summary())
			}
			return d
		}
		select {
		case <-ctx.Done():
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			t.Fatalf("clean deployment never verified: %s %v", rep.Summary(), rep.Violations)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestVerifyReportsEveryCorruption(t *testing.T) {
	t.Parallel()
	d := processed(t)

	// Each case corrupts the database in a transaction, verifies through
	// it, and rolls back, so the cases share one processed deployment.
	tests := []struct {
		name string
		sql  string
		want []string // checks that must report; every other must not
		text string   // a violation must contain this
	}{
		{"bump an order version", `UPDATE orders SET version = version + 1 WHERE order_id = 'A'`,
			[]string{verify.CheckFold}, "order A is Delivered v5 but its accepted transitions fold to Delivered v4"},
		{"change an order state", `UPDATE orders SET state = 'Paid' WHERE order_id = 'B'`,
			[]string{verify.CheckFold, verify.CheckCounts}, "order B is Paid v2"},
		{"order without transitions", `INSERT INTO orders VALUES ('Z', 'Created', 1, now(), now())`,
			[]string{verify.CheckFold, verify.CheckCounts}, "order Z is Created v1 but has no accepted transitions"},
		{"delete an order row", `DELETE FROM orders WHERE order_id = 'B'`,
			[]string{verify.CheckFold, verify.CheckCounts}, "order B has accepted transitions but no row"},
		{"an order counted twice", `INSERT INTO order_counts VALUES (99, 'Paid', 1)`,
			[]string{verify.CheckCounts}, "order_counts has 1 orders in Paid, the orders table 0"},
		{"delete an outcome row", `DELETE FROM transitions WHERE command_id = 'a3'`,
			[]string{verify.CheckVersions, verify.CheckFold, verify.CheckOutcomes, verify.CheckEvents, verify.CheckOffsets, verify.CheckOutbox},
			"order A: accepted version 4 follows version 2"},
		{"insert an outcome without an event", `INSERT INTO transitions (processed_at, topic_partition, source_offset, seq, event_id,
				command_id, order_id, action, outcome, from_state, version, reason, message)
			SELECT now(), topic_partition, source_offset, seq, 'C/0/rejected/ghost', 'ghost', 'C', 'pay', 'rejected', NULL, 0,
				'unknown_order', 'no' FROM transitions WHERE command_id = 'c1';
			INSERT INTO commands SELECT 'ghost', 'C', topic_partition, seq, now() FROM transitions WHERE command_id = 'c1'`,
			[]string{verify.CheckEvents, verify.CheckOutbox}, "command ghost has an outcome row but no event"},
		{"insert a duplicate outcome", `INSERT INTO transitions SELECT processed_at, topic_partition, source_offset, seq + 1000, event_id,
				command_id, order_id, action, outcome, from_state, to_state, version, reason, message, actor, command_reason, metadata,
				requested_at FROM transitions WHERE command_id = 'b3'`,
			[]string{verify.CheckOutcomes, verify.CheckOffsets}, "command b3 has two outcomes"},
		{"a transition the machine does not have", `UPDATE transitions SET to_state = 'Returned' WHERE command_id = 'a2'`,
			[]string{verify.CheckFold, verify.CheckEvents}, "pay from \"Created\" to \"Returned\" is not a transition"},
		{"a version gap", `UPDATE transitions SET version = 7, event_id = 'A/7' WHERE command_id = 'a4';
				UPDATE orders SET version = 7 WHERE order_id = 'A'`,
			[]string{verify.CheckVersions, verify.CheckEvents}, "order A: accepted version 7 follows version 3"},
		{"a rejection in the wrong state", `UPDATE transitions SET from_state = 'Paid' WHERE command_id = 'b3'`,
			[]string{verify.CheckFold, verify.CheckEvents}, "command b3 (invalid_transition) was rejected at \"Paid\" v2"},
		{"an event that does not match its row", `UPDATE transitions SET actor = 'mallory' WHERE command_id = 'a1'`,
			[]string{verify.CheckEvents}, "event A/1 at"},
		{"delete a de-duplication row", `DELETE FROM commands WHERE command_id = 'b2'`,
			[]string{verify.CheckOutcomes}, "command b2 has an outcome but no de-duplication row"},
		{"delete a dead letter", `DELETE FROM dead_letters WHERE error LIKE '%not a command object%'`,
			[]string{verify.CheckDLQ, verify.CheckOffsets, verify.CheckOutbox}, "has no dead letter row"},
		{"a dead letter with another reason", `UPDATE dead_letters SET error = 'because' WHERE error LIKE '%not a command object%'`,
			[]string{verify.CheckDLQ}, "does not match dead letter"},
		{"a position rewound", `UPDATE partition_offsets SET next_offset = next_offset - 1 WHERE next_offset > 0`,
			[]string{verify.CheckOffsets}, "is past the stored position"},
		{"a position past the topic's end", `UPDATE partition_offsets SET next_offset = next_offset + 5`,
			[]string{verify.CheckOffsets}, "is past the topic's end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var rep *verify.Report
			err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, tt.sql); err != nil {
					return err
				}
				var err error
				rep, err = verify.Run(ctx, tx, d.kopts, d.names, 0)
				if err != nil {
					return err
				}
				return errRollback
			})
			if err != errRollback { //nolint:errorlint // our own sentinel, returned as is
				t.Fatal(err)
			}
			checkReport(t, rep, tt.want, tt.text)
		})
	}
}

var errRollback = &rollback{}

type rollback struct{}

func (*rollback) Error() string { return "rollback" }

func checkReport(t *testing.T, rep *verify.Report, want []string, text string) {
	t.Helper()
	if rep.OK() {
		t.Fatalf("no violation reported: %s", rep.Summary())
	}
	for _, c := range verify.Checks() {
		if got := rep.ByCheck[c] > 0; got != slices.Contains(want, c) {
			t.Errorf("check %s reported %d violations, want any: %v", c, rep.ByCheck[c], !got)
		}
	}
	if !slices.ContainsFunc(rep.Violations, func(v string) bool { return strings.Contains(v, text) }) {
		t.Errorf("no violation says %q", text)
	}
	if t.Failed() {
		t.Logf("violations:\n%s", strings.Join(rep.Violations, "\n"))
	}
}

// TestVerifyReportsTopicCorruption corrupts the topics, which cannot be
// rolled back, so its cases run in sequence on one deployment and each adds
// to what the previous ones broke.
func TestVerifyReportsTopicCorruption(t *testing.T) {
	t.Parallel()
	d := processed(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := func() *verify.Report {
		t.Helper()
		rep, err := verify.Run(ctx, d.pool, d.kopts, d.names, 0)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	produce := func(recs ...*kgo.Record) {
		t.Helper()
		if err := d.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	// Not yet consumed is not a violation: it is reported as unconsumed.
	produce(command(d.names, "late", "A", "return", nil))
	if rep := run(); !rep.OK() || rep.Unconsumed != 1 {
		t.Fatalf("with one command not consumed: %s %v", rep.Summary(), rep.Violations)
	}

	// Read the events and DLQ records back to re-send copies of them.
	var event, dlq *kgo.Record
	for _, topic := range []string{d.names.Events, d.names.DLQ} {
		ends, err := topics.Ends(ctx, kadm.NewClient(d.prod), topic)
		if err != nil {
			t.Fatal(err)
		}
		err = topics.ReadCommitted(ctx, d.kopts, topic, ends, func(r *kgo.Record) {
			if topic == d.names.Events && strings.Contains(string(r.Value), `"event_id":"A/2"`) {
				event = r
			}
			if topic == d.names.DLQ {
				dlq = r
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if event == nil || dlq == nil {
		t.Fatalf("event A/2 %v, a DLQ record %v", event, dlq)
	}
	produce(&kgo.Record{Topic: d.names.Events, Partition: event.Partition, Key: event.Key, Value: event.Value, Headers: event.Headers})
	checkReport(t, run(), []string{verify.CheckEvents, verify.CheckOrder}, "command a2 has 2 events")

	produce(&kgo.Record{Topic: d.names.DLQ, Partition: dlq.Partition, Key: dlq.Key, Value: dlq.Value, Headers: dlq.Headers})
	checkReport(t, run(), []string{verify.CheckEvents, verify.CheckOrder, verify.CheckDLQ}, "is on the DLQ 2 times")

	ev, err := topics.DecodeEvent(event.Value)
	if err != nil {
		t.Fatal(err)
	}
	ev.CommandID, ev.EventID = "phantom", "A/9"
	v, err := topics.EncodeEvent(&ev)
	if err != nil {
		t.Fatal(err)
	}
	produce(&kgo.Record{Topic: d.names.Events, Partition: event.Partition, Key: event.Key, Value: v})
	checkReport(t, run(), []string{verify.CheckEvents, verify.CheckOrder, verify.CheckDLQ}, "for command phantom has no outcome row")
}
