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
	return setupOn(t, testenv.DatabaseURL(t))
}

// setupOn is setup with the deployment's database at dbURL.
func setupOn(t *testing.T, dbURL string) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := &bundle{dbURL: dbURL, kopts: []kgo.Opt{kgo.SeedBrokers(testenv.Kafka(t)...)}}
	prefix := testenv.TopicPrefix(t)
	b.names, b.group = topics.NewNames(prefix), prefix+"group"
	var err error
	if b.pool, err = pgxpool.New(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.pool.Close)
	if _, err := store.Migrate(ctx, b.pool); err != nil {
		t.Fatal(err)
	}
	if err := store.EnsurePartitions(ctx, b.pool, time.Now()); err != nil {
		t.Fatal(err)
	}
	if b.prod, err = kgo.NewClient(append(b.kopts, kgo.ProducerLinger(0))...); err != nil {
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
	return b.startWith(t, b.pool, nil)
}

// startWith is start with the processor's database at pool and its config
// changed by configure (if not nil) before New.
func (b *bundle) startWith(t *testing.T, pool *pgxpool.Pool, configure func(*processor.Config)) (stop func()) {
	t.Helper()
	cfg := processor.Config{KafkaOpts: b.kopts, Names: b.names, Group: b.group, MaxBatch: 500, Logger: testLogger()}
	if configure != nil {
		configure(&cfg)
	}
	p, err := processor.New(cfg, pool)
	if err != nil {
		t.Fatal(err)
	}
	return runInBackground(t, "processor", p.Run)
}

// runInBackground runs run until the test ends or stop is called; stop
// cancels run's context, waits for it to return and fails the test with
// its error, if any.
func runInBackground(t *testing.T, what string, run func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: %v", what, err)
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
	if err := b.produce(recs...); err != nil {
		t.Fatal(err)
	}
}

// produce is send for a goroutine other than the test's, which must not
// call t.Fatal: it returns the error instead.
func (b *bundle) produce(recs ...*kgo.Record) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	return nil
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
	out := map[string][]topics.Event{}
	b.readTopic(t, b.names.Events, func(r *kgo.Record) {
		e, err := topics.DecodeEvent(r.Value)
		if err != nil {
			t.Errorf("event %s: %v", r.Value, err)
			return
		}
		out[e.CommandID] = append(out[e.CommandID], e)
	})
	return out
}

// readTopic hands each committed record of every partition of topic, up to
// the partitions' ends when it starts, to each; within a minute.
func (b *bundle) readTopic(t *testing.T, topic string, each func(*kgo.Record)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ends, err := topics.Ends(ctx, kadm.NewClient(b.prod), topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := topics.ReadCommitted(ctx, b.kopts, topic, ends, each); err != nil {
		t.Fatal(err)
	}
}

func ptr(v int64) *int64 { return &v }

func id(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// testLogger logs to stderr at warn, or debug with ORDERFLOW_TEST_DEBUG=1.
func testLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("ORDERFLOW_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
