package topics_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/orderflow/orderflow/scripts/testenv"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Two producers' transactions interleave in a partition, and the one that
// wrote first commits last: ReadCommitted passes records on in offset
// order, as a read_committed consumer gets them, not in the order of the
// commit markers, and drops an aborted transaction's records.
func TestReadCommittedKeepsOffsetOrder(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kopts := []kgo.Opt{kgo.SeedBrokers(testenv.Kafka(t)...)}
	adm := testenv.KafkaAdmin(t)
	topic := testenv.TopicPrefix(t) + "read"
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	producer := func(id string) *kgo.Client {
		cl, err := kgo.NewClient(append(kopts, kgo.TransactionalID(topic+"."+id), kgo.DefaultProduceTopic(topic),
			kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	a, b, c := producer("a"), producer("b"), producer("c")
	write := func(cl *kgo.Client, v string) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	end := func(cl *kgo.Client, commit kgo.TransactionEndTry) {
		t.Helper()
		if err := cl.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	write(a, "a1")
	write(b, "b1")
	write(c, "c1")
	end(b, kgo.TryCommit)
	end(c, kgo.TryAbort)

	// readTo reads the partition once its end has reached end: each record
	// and each marker takes an offset, and markers land just after
	// EndTransaction returns.
	readTo := func(end int64) []string {
		t.Helper()
		for {
			ends, err := topics.Ends(ctx, adm, topic)
			if err != nil {
				t.Fatal(err)
			}
			if ends[0].To >= end {
				var got []string
				err = topics.ReadCommitted(ctx, kopts, topic, ends, func(r *kgo.Record) { got = append(got, string(r.Value)) })
				if err != nil {
					t.Fatal(err)
				}
				return got
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// a1 is still open: like a read_committed consumer, ReadCommitted holds
	// back b1, committed, behind it. Three records and two markers: end 5.
	if held := readTo(5); len(held) != 0 {
		t.Fatalf("read %v while a1 was undecided, want nothing: a record waits for the ones before it", held)
	}
	end(a, kgo.TryCommit)
	got := readTo(6)
	if !slices.Equal(got, []string{"a1", "b1"}) {
		t.Fatalf("read %v, want [a1 b1]: offset order, the aborted c1 left out", got)
	}
}
