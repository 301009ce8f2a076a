package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/scripts/testenv"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A publisher that lost a partition to a newer owner cannot publish it: the
// newer one fences the producer recorded for the partition, reads back
// exactly what the old one got out, and sends the rest from PostgreSQL, so
// nothing is sent twice and nothing is skipped, gaps included. A partition
// handed over with everything sent leaves no producer to fence.
func TestPublisherIsFencedByItsSuccessor(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kopts := []kgo.Opt{kgo.SeedBrokers(testenv.Kafka(t)...)}
	pool := testenv.Pool(t)
	if _, err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if err := store.EnsurePartitions(ctx, pool, time.Now()); err != nil {
		t.Fatal(err)
	}
	adm := testenv.KafkaAdmin(t)
	names := topics.NewNames(testenv.TopicPrefix(t))
	if _, err := topics.Ensure(ctx, adm, names, topics.Settings{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	member := func() *publisher {
		p, err := New(Config{KafkaOpts: kopts, Names: names, Group: names.Commands + ".test"}, pool)
		if err != nil {
			t.Fatal(err)
		}
		p.adm = adm
		pb := newPublisher(p)
		t.Cleanup(pb.closeProducers)
		return pb
	}
	// commit writes outcomes for seqs from..to as owner o, as a worker would.
	commit := func(o store.Owner, from, to int64) []store.Entry {
		var es []store.Entry
		err := store.RunBatch(ctx, pool, o, nil, nil, func(s store.Snapshot) (store.Writes, error) {
			if s.Position.NextSeq != from {
				return store.Writes{}, fmt.Errorf("next seq %d, want %d", s.Position.NextSeq, from)
			}
			w := store.Writes{Position: store.Position{NextOffset: to, NextSeq: to + 1}}
			for seq := from; seq <= to; seq++ {
				cid := fmt.Sprintf("%s-c%d", names.Commands, seq)
				w.Outcomes = append(w.Outcomes, store.Outcome{Seq: seq, Offset: seq - 1, EventID: cid, CommandID: cid,
					OrderID: "o", Action: "pay", Outcome: topics.Rejected, Reason: "unknown_order", ProcessedAt: store.Now()})
			}
			for i := range w.Outcomes {
				es = append(es, store.Entry{Seq: w.Outcomes[i].Seq, Outcome: &w.Outcomes[i]})
			}
			return w, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	claim := func(token string) store.Owner {
		o := store.Owner{Topic: names.Commands, Partition: 0, Token: token}
		if _, err := store.Claim(ctx, pool, o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	step := func(pb *publisher) error {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		return pb.step(sctx)
	}

	a := claim("a")
	old := member()
	commit(a, 1, 3)
	old.handle(pubMsg{kind: pubAdd, owner: a})
	if err := step(old); err != nil {
		t.Fatal(err)
	}
	old.handle(pubMsg{kind: pubEntries, owner: a, entries: commit(a, 4, 4)})

	b := claim("b")
	successor := member()
	successor.handle(pubMsg{kind: pubAdd, owner: b})
	if err := step(successor); err != nil {
		t.Fatal(err)
	}
	if pp := successor.parts[0]; pp == nil || pp.last != 4 {
		t.Fatalf("successor: %+v, want seq 4 published", pp)
	}
	if err := step(old); !errors.Is(err, errPublisherFenced) {
		t.Fatalf("the old publisher published after the takeover: %v", err)
	}
	old.reset()
	if err := step(old); err != nil || len(old.parts) != 0 {
		t.Fatalf("old publisher after the takeover: %v, %d partitions; want the partition forgotten", err, len(old.parts))
	}

	// Seq 5 is handed over (or its hand-over lost), only 6 arrives: the
	// gap is read from PostgreSQL, and 5 goes out before 6.
	commit(b, 5, 5)
	successor.handle(pubMsg{kind: pubEntries, owner: b, entries: commit(b, 6, 6)})
	for successor.hasWork() {
		if err := step(successor); err != nil {
			t.Fatal(err)
		}
	}
	if got := eventSeqs(ctx, t, kopts, adm, names.Events, 6); !slices.Equal(got, []int64{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("committed seqs %v, want 1..6 once each", got)
	}

	// Handing over clears the record: the next owner has nothing to fence.
	done := make(chan struct{})
	successor.handle(pubMsg{kind: pubRelease, owner: b, done: done})
	if err := step(successor); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	default:
		t.Fatal("hand-over not done")
	}
	prev, err := store.RegisterPublisher(ctx, pool, claim("c"), "c-producer")
	if err != nil || prev != "" {
		t.Fatalf("recorded producer after a hand-over: %q, %v; want none", prev, err)
	}
}

// eventSeqs reads the committed seq headers of partition 0 of topic until
// at least want are there: EndTransaction returns once the commit is
// decided, and its markers land a moment later.
func eventSeqs(ctx context.Context, t *testing.T, kopts []kgo.Opt, adm *kadm.Client, topic string, want int) []int64 {
	t.Helper()
	var seqs []int64
	for ctx.Err() == nil {
		seqs = seqs[:0]
		ends, err := topics.Ends(ctx, adm, topic)
		if err != nil {
			t.Fatal(err)
		}
		err = topics.ReadCommitted(ctx, kopts, topic, ends, func(r *kgo.Record) {
			s, _ := seqOf(r)
			seqs = append(seqs, s)
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(seqs) >= want {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return seqs
}
