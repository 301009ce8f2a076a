package testenv_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/scripts/testenv"
)

// TestKafkaRoundTrip proves the broker the tests get is a working Kafka: a topic made
// through the admin API takes records and gives them back, key, value and partition.
func TestKafkaRoundTrip(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	brokers := testenv.Kafka(t)
	topic := testenv.TopicPrefix(t) + "roundtrip"

	// KafkaAdmin closes its client in a cleanup registered now, so it runs after the
	// later-registered one that deletes the topic.
	adm := testenv.KafkaAdmin(t)
	const partitions = 3
	created, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
	if err != nil || created.Err != nil {
		t.Fatalf("create topic %s: %v %v", topic, err, created.Err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := adm.DeleteTopic(ctx, topic); err != nil {
			t.Logf("delete topic %s: %v", topic, err)
		}
	})

	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	var sent []*kgo.Record
	for i := range 30 {
		sent = append(sent, &kgo.Record{
			Key:   fmt.Appendf(nil, "order-%d", i%7),
			Value: fmt.Appendf(nil, `{"n":%d}`, i),
		})
	}
	if err := producer.ProduceSync(ctx, sent...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	consumer, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	var got []*kgo.Record
	for len(got) < len(sent) {
		fetches := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records before the deadline", len(got), len(sent))
		}
		fetches.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s[%d]: %v", topic, p, err) })
		got = append(got, fetches.Records()...)
	}

	type rec struct {
		key, value string
		partition  int32
		offset     int64
	}
	flatten := func(rs []*kgo.Record) []rec {
		out := make([]rec, 0, len(rs))
		for _, r := range rs {
			out = append(out, rec{string(r.Key), string(r.Value), r.Partition, r.Offset})
		}
		slices.SortFunc(out, func(a, b rec) int {
			if a.partition != b.partition {
				return int(a.partition - b.partition)
			}
			return int(a.offset - b.offset)
		})
		return out
	}
	// ProduceSync filled in the partition and offset of every sent record.
	if want, have := flatten(sent), flatten(got); !slices.Equal(want, have) {
		t.Fatalf("consumed records differ from produced ones:\nwant %v\nhave %v", want, have)
	}
}

// TestPostgresFreshDatabase proves the PostgreSQL server the tests get takes writes, that
// each Pool is a database of its own, and that it is dropped when its test ends.
func TestPostgresFreshDatabase(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	pool := testenv.Pool(t)
	if _, err := pool.Exec(ctx, `CREATE TABLE orders (order_id text PRIMARY KEY, state text NOT NULL, version int NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO orders VALUES ('order-1', 'Created', 1), ('order-2', 'Paid', 2)`); err != nil {
		t.Fatal(err)
	}
	type order struct {
		OrderID string `db:"order_id"`
		State   string `db:"state"`
		Version int    `db:"version"`
	}
	rows, err := pool.Query(ctx, `SELECT order_id, state, version FROM orders ORDER BY order_id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[order])
	if err != nil {
		t.Fatal(err)
	}
	want := []order{{"order-1", "Created", 1}, {"order-2", "Paid", 2}}
	if !slices.Equal(got, want) {
		t.Fatalf("read back %v, want %v", got, want)
	}

	var mine, other string
	if err := pool.QueryRow(ctx, `SELECT current_database()`).Scan(&mine); err != nil {
		t.Fatal(err)
	}
	t.Run("dropped after its test", func(t *testing.T) {
		if err := testenv.Pool(t).QueryRow(ctx, `SELECT current_database()`).Scan(&other); err != nil {
			t.Fatal(err)
		}
	})
	if other == "" || other == mine {
		t.Fatalf("two pools share database %q", mine)
	}
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, other).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatalf("database %s still exists after its test ended", other)
	}
}
