package processor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/processor/verify"
	"github.com/orderflow/orderflow/scripts/testenv"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// bundle is one isolated deployment for a test: a fresh database, topics
// under a fresh prefix, and a producer.
type bundle struct {
	dbURL string
	pool  *pgxpool.Pool
	kopts []kgo.Opt
	names topics.Names
	group string
	prod  *kgo.Client
}

const testPartitions = 4

func setup(t *testing.T) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := &bundle{dbURL: testenv.DatabaseURL(t), kopts: []kgo.Opt{kgo.SeedBrokers(testenv.Kafka(t)...)}}
	prefix := testenv.TopicPrefix(t)
	b.names, b.group = topics.NewNames(prefix), prefix+"group"
	var err error
	b.pool, err = pgxpool.New(ctx, b.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.pool.Close)
	if _, err := store.Migrate(ctx, b.pool); err != nil {
		t.Fatal(err)
	}
	if err := store.EnsurePartitions(ctx, b.pool, time.Now()); err != nil {
		t.Fatal(err)
	}
	b.prod, err = kgo.NewClient(append(b.kopts, kgo.ProducerLinger(0))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.prod.Close)
	n, err := topics.Ensure(ctx, kadm.NewClient(b.prod), b.names, topics.Settings{Partitions: testPartitions})
	if err != nil || n != testPartitions {
		t.Fatalf("topics: %d partitions, %v", n, err)
	}
	return b
}

// start runs an in-process processor until the test ends or stop is called.
func (b *bundle) start(t *testing.T) (stop func()) {
	t.Helper()
	p, err := processor.New(processor.Config{
		KafkaOpts: b.kopts, Names: b.names, Group: b.group, MaxBatch: 500,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: testLogLevel()})),
	}, b.pool)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

type cmdSpec struct {
	id, order, action string
	expected          *int64
}

func (b *bundle) command(c cmdSpec) *kgo.Record {
	now := time.Now().UTC()
	v, err := json.Marshal(topics.Command{CommandID: c.id, OrderID: c.order, Action: c.action, ExpectedVersion: c.expected,
		Actor: "test", RequestedAt: &now})
	if err != nil {
		panic(err)
	}
	return &kgo.Record{Topic: b.names.Commands, Key: []byte(c.order), Value: v}
}

func (b *bundle) send(t *testing.T, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// waitProcessed waits until the stored positions reach the end of every
// commands partition, then until verify passes (events may trail the
// commit by a transaction). It fails the test with the violations.
func (b *bundle) waitProcessed(t *testing.T, within time.Duration) *verify.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	adm := kadm.NewClient(b.prod)
	for {
		ends, err := topics.Ends(ctx, adm, b.names.Commands)
		if err != nil {
			t.Fatal(err)
		}
		var want, have int64
		for _, r := range ends {
			want += r.To
		}
		if err := b.pool.QueryRow(ctx, `SELECT coalesce(sum(next_offset), 0) FROM partition_offsets WHERE topic = $1`,
			b.names.Commands).Scan(&have); err != nil {
			t.Fatal(err)
		}
		if have >= want {
			break
		}
		if !sleep(ctx, 100*time.Millisecond) {
			t.Fatalf("processed %d of %d commands within %v", have, want, within)
		}
	}
	var last *verify.Report
	for {
		rep, err := verify.Run(ctx, b.pool, b.kopts, b.names, 20)
		if err == nil && rep.OK() {
			return rep
		}
		if err == nil {
			last = rep
		}
		if !sleep(ctx, 200*time.Millisecond) {
			if last != nil {
				t.Fatalf("verify: %s\n%v", last.Summary(), last.Violations)
			}
			t.Fatalf("verify: %v", err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

type outcomeRow struct {
	commandID, orderID, outcome, reason, toState string
	version                                      int64
}

func (b *bundle) outcomes(t *testing.T) map[string]outcomeRow {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT command_id, order_id, outcome, coalesce(reason, ''), coalesce(to_state, ''), version FROM transitions`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]outcomeRow{}
	for rows.Next() {
		var o outcomeRow
		if err := rows.Scan(&o.commandID, &o.orderID, &o.outcome, &o.reason, &o.toState, &o.version); err != nil {
			t.Fatal(err)
		}
		out[o.commandID] = o
	}
	return out
}

func (b *bundle) order(t *testing.T, id string) (state string, version int64) {
	t.Helper()
	err := b.pool.QueryRow(context.Background(), `SELECT state, version FROM orders WHERE order_id = $1`, id).Scan(&state, &version)
	if err != nil {
		return "", 0
	}
	return state, version
}

// events reads every committed event, by command_id.
func (b *bundle) events(t *testing.T) map[string][]topics.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := topics.Ends(ctx, kadm.NewClient(b.prod), b.names.Events)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]topics.Event{}
	err = topics.ReadCommitted(ctx, b.kopts, b.names.Events, ends, func(r *kgo.Record) {
		e, err := topics.DecodeEvent(r.Value)
		if err != nil {
			t.Errorf("event %s: %v", r.Value, err)
			return
		}
		out[e.CommandID] = append(out[e.CommandID], e)
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func ptr(v int64) *int64 { return &v }

func id(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// testLogLevel is warn, or debug with ORDERFLOW_TEST_DEBUG=1.
func testLogLevel() slog.Level {
	if os.Getenv("ORDERFLOW_TEST_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}
