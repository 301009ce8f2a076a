package processor_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestLifecyclesAndRejections(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(t)
	steps := []struct {
		spec            cmdSpec
		outcome, reason string
	}{
		{cmdSpec{id: "a1", order: "A", action: "create"}, "accepted", ""},
		{cmdSpec{id: "a2", order: "A", action: "pay", expected: ptr(1)}, "accepted", ""},
		{cmdSpec{id: "a3", order: "A", action: "ship"}, "accepted", ""},
		{cmdSpec{id: "a4", order: "A", action: "deliver"}, "accepted", ""},
		{cmdSpec{id: "a5", order: "A", action: "return"}, "accepted", ""},
		{cmdSpec{id: "a6", order: "A", action: "cancel"}, "rejected", "invalid_transition"},
		{cmdSpec{id: "b1", order: "B", action: "create"}, "accepted", ""},
		{cmdSpec{id: "b2", order: "B", action: "create"}, "rejected", "order_exists"},
		{cmdSpec{id: "b3", order: "B", action: "pay", expected: ptr(7)}, "rejected", "version_conflict"},
		{cmdSpec{id: "b4", order: "B", action: "ship"}, "rejected", "invalid_transition"},
		{cmdSpec{id: "b5", order: "B", action: "cancel"}, "accepted", ""},
		{cmdSpec{id: "c1", order: "C", action: "pay"}, "rejected", "unknown_order"},
	}
	for _, s := range steps {
		b.send(t, b.command(s.spec)) // one at a time: the order of commands is the test
	}
	b.waitProcessed(t, time.Minute)
	got := b.outcomes(t)
	for _, s := range steps {
		o := got[s.spec.id]
		if o.outcome != s.outcome || o.reason != s.reason {
			t.Errorf("%s %s %s: %s/%s, want %s/%s", s.spec.id, s.spec.order, s.spec.action, o.outcome, o.reason, s.outcome, s.reason)
		}
	}
	for _, w := range []struct {
		order, state string
		version      int64
	}{{"A", "Returned", 5}, {"B", "Cancelled", 2}, {"C", "", 0}} {
		if s, v := b.order(t, w.order); s != w.state || v != w.version {
			t.Errorf("order %s is %q v%d, want %q v%d", w.order, s, v, w.state, w.version)
		}
	}
	evs := b.events(t)
	if e := evs["b3"]; len(e) != 1 || *e[0].Reason != "version_conflict" || *e[0].FromState != "Created" || e[0].Version != 1 || e[0].ToState != nil {
		t.Errorf("b3 event %+v", e)
	}
	if e := evs["a2"]; len(e) != 1 || e[0].EventID != "A/2" || *e[0].ToState != "Paid" {
		t.Errorf("a2 event %+v", e)
	}
}

func TestConcurrentProducersKeepPerOrderOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(t)
	const producers, perProducer, orders = 200, 25, 50
	actions := []string{"create", "pay", "ship", "deliver", "cancel", "return"}
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(p), 7))
			recs := make([]*kgo.Record, 0, perProducer)
			for i := range perProducer {
				// Creates come first often enough that most orders move.
				a := actions[r.IntN(len(actions))]
				if i < 2 {
					a = "create"
				}
				recs = append(recs, b.command(cmdSpec{id: id("p%d-%d", p, i), order: id("o%d", r.IntN(orders)), action: a}))
			}
			for _, rec := range recs {
				b.prod.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
					if err != nil {
						t.Errorf("produce: %v", err)
					}
				})
			}
		})
	}
	wg.Wait()
	if err := b.prod.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	rep := b.waitProcessed(t, 2*time.Minute)
	if rep.Outcomes != producers*perProducer || rep.Accepted < orders {
		t.Fatalf("outcomes %d (accepted %d), want %d with every order created", rep.Outcomes, rep.Accepted, producers*perProducer)
	}
	// verify checked versions have no gaps; here: the accepted transitions
	// of each order are in the offset order of their commands.
	rows, err := b.pool.Query(context.Background(), `SELECT order_id, source_offset, version FROM transitions WHERE outcome = 'accepted' ORDER BY order_id, source_offset`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	last := map[string]int64{}
	for rows.Next() {
		var (
			order        string
			off, version int64
		)
		if err := rows.Scan(&order, &off, &version); err != nil {
			t.Fatal(err)
		}
		if version != last[order]+1 {
			t.Fatalf("order %s: version %d at offset %d follows version %d", order, version, off, last[order])
		}
		last[order] = version
	}
}

func TestResentCommandChangesStateOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	stop := b.start(t)
	b.send(t, b.command(cmdSpec{id: "create-1", order: "R", action: "create"}))
	pay := cmdSpec{id: "pay-1", order: "R", action: "pay"}
	for range 5 {
		b.send(t, b.command(pay))
	}
	b.waitProcessed(t, time.Minute)
	if s, v := b.order(t, "R"); s != "Paid" || v != 2 {
		t.Fatalf("order R is %s v%d, want Paid v2", s, v)
	}
	if evs := b.events(t); len(evs["pay-1"]) != 1 || len(evs) != 2 {
		t.Fatalf("events: %d for pay-1, %d command ids; want 1 and 2", len(evs["pay-1"]), len(evs))
	}
	// A restart replays nothing: the same five again are still one.
	stop()
	b.start(t)
	for range 5 {
		b.send(t, b.command(pay))
	}
	b.waitProcessed(t, time.Minute)
	if evs := b.events(t); len(evs["pay-1"]) != 1 {
		t.Fatalf("%d events for pay-1 after more retries", len(evs["pay-1"]))
	}
}

func TestMalformedRecordsGoToDLQAndDoNotBlock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(t)
	key := []byte("M")
	bad := []struct {
		name  string
		value string
		event bool // a rejected event is expected: ids were readable
	}{
		{"bad json", `{"command_id":"x1","order_id":"M",`, false},
		{"key mismatch", `{"command_id":"x2","order_id":"other","action":"pay"}`, true},
		{"oversize", `{"command_id":"x3","order_id":"M","action":"pay","reason":"` + strings.Repeat("r", topics.MaxValueBytes) + `"}`, false},
		{"unknown action", `{"command_id":"x4","order_id":"M","action":"teleport"}`, true},
		{"wrong type", `{"command_id":"x5","order_id":"M","action":"pay","expected_version":"one"}`, true},
	}
	recs := []*kgo.Record{b.command(cmdSpec{id: "m1", order: "M", action: "create"})}
	for _, x := range bad {
		recs = append(recs, &kgo.Record{Topic: b.names.Commands, Key: key, Value: []byte(x.value)})
	}
	recs = append(recs, b.command(cmdSpec{id: "m2", order: "M", action: "pay"}), b.command(cmdSpec{id: "m3", order: "M", action: "ship"}))
	b.send(t, recs...)
	rep := b.waitProcessed(t, time.Minute)
	if rep.DeadLetters != len(bad) || rep.DLQRecords != len(bad) {
		t.Fatalf("dead letters %d, DLQ records %d; want %d", rep.DeadLetters, rep.DLQRecords, len(bad))
	}
	if s, v := b.order(t, "M"); s != "Shipped" || v != 3 {
		t.Fatalf("order M is %s v%d; the valid commands behind the bad ones were not applied", s, v)
	}
	evs := b.events(t)
	for i, x := range bad {
		id := id("x%d", i+1)
		if got := len(evs[id]); (got == 1) != x.event {
			t.Errorf("%s: %d events for %s, want event=%v", x.name, got, id, x.event)
		}
		if x.event && *evs[id][0].Reason != "invalid_command" {
			t.Errorf("%s: reason %v", x.name, *evs[id][0].Reason)
		}
	}
	// The DLQ records carry why and where from.
	var headers [][]string
	b.readTopic(t, b.names.DLQ, func(r *kgo.Record) {
		var hs []string
		for _, h := range r.Headers {
			hs = append(hs, h.Key)
		}
		slices.Sort(hs)
		headers = append(headers, hs)
	})
	want := []string{topics.HeaderError, topics.HeaderSeq, topics.HeaderSourceOffset, topics.HeaderSourcePartition, topics.HeaderSourceTopic}
	slices.Sort(want)
	for _, hs := range headers {
		if !slices.Equal(hs, want) {
			t.Fatalf("DLQ headers %v, want %v", hs, want)
		}
	}
}
