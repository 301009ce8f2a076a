package processor

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/scripts/testenv"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A publisher that lost its partition to a newer one cannot publish: the
// newer one's recovery fences its transactional id, and reads back exactly
// what the old one got out, so nothing is sent twice.
func TestPublisherIsFencedByItsSuccessor(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kopts := []kgo.Opt{kgo.SeedBrokers(testenv.Kafka(t)...)}
	pool := testenv.Pool(t)
	if _, err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(kopts, kgo.MetadataMinAge(100*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	names := topics.NewNames(testenv.TopicPrefix(t))
	if _, err := topics.Ensure(ctx, adm, names, topics.Settings{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	newPub := func() *publisher {
		return &publisher{partition: 0, names: names, txnID: names.Events + ".test.0", kopts: kopts, pool: pool, adm: adm,
			log: slog.Default(), m: newMetrics(nil), in: make(chan []store.Entry), done: make(chan struct{})}
	}
	entry := func(seq int64) store.Entry {
		return store.Entry{Seq: seq, Outcome: &store.Outcome{Seq: seq, EventID: "o/1", CommandID: "c", OrderID: "o",
			Action: "create", Outcome: topics.Accepted, ToState: "Created", Version: 1, ProcessedAt: store.Now()}}
	}
	closeClient := func(p *publisher) {
		if p.cl != nil {
			p.cl.Close()
		}
	}

	old := newPub()
	defer closeClient(old)
	if err := old.recover(ctx); err != nil {
		t.Fatal(err)
	}
	if err := old.publish(ctx, []store.Entry{entry(1), entry(2), entry(3)}); err != nil {
		t.Fatal(err)
	}
	successor := newPub()
	defer closeClient(successor)
	if err := successor.recover(ctx); err != nil {
		t.Fatal(err)
	}
	if successor.last != 3 {
		t.Fatalf("successor read back seq %d, want 3", successor.last)
	}
	if err := old.publish(ctx, []store.Entry{entry(4)}); !errors.Is(err, errPublisherFenced) {
		t.Fatalf("the old publisher published after the takeover: %v", err)
	}
	// Entries the successor already knows are out are skipped, not resent.
	if err := successor.publish(ctx, []store.Entry{entry(3), entry(4)}); err != nil {
		t.Fatal(err)
	}
	// EndTransaction returns once the commit is decided; its markers land
	// in the partition a moment later, so read until they are there.
	var seqs []int64
	for ctx.Err() == nil {
		seqs = seqs[:0]
		ends, err := topics.Ends(ctx, adm, names.Events)
		if err != nil {
			t.Fatal(err)
		}
		err = topics.ReadCommitted(ctx, kopts, names.Events, ends, func(r *kgo.Record) {
			s, _ := seqOf(r)
			seqs = append(seqs, s)
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(seqs) >= 4 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(seqs) != 4 || seqs[0] != 1 || seqs[3] != 4 {
		t.Fatalf("committed seqs %v, want 1 2 3 4", seqs)
	}
}
