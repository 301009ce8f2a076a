package processor

import (
	"fmt"
	"testing"
	"time"

	"github.com/orderflow/orderflow/processor/store"
	"github.com/twmb/franz-go/pkg/kgo"
)

func rec(offset int64, key, value string) *kgo.Record {
	return &kgo.Record{Offset: offset, Key: []byte(key), Value: []byte(value)}
}

func cmd(id, order, action string, extra ...string) string {
	s := fmt.Sprintf(`{"command_id":%q,"order_id":%q,"action":%q`, id, order, action)
	for _, e := range extra {
		s += "," + e
	}
	return s + "}"
}

func TestDecideLifecycleAndRejections(t *testing.T) {
	t.Parallel()
	recs := []*kgo.Record{
		rec(10, "o1", cmd("c1", "o1", "create")),
		rec(11, "o1", cmd("c2", "o1", "pay", `"expected_version":1`)),
		rec(12, "o1", cmd("c2", "o1", "pay")), // duplicate: skipped
		rec(13, "o1", cmd("c3", "o1", "deliver")),
		rec(14, "o2", cmd("c4", "o2", "pay")),
		rec(15, "o1", cmd("c5", "o1", "create")),
		rec(16, "o1", cmd("c6", "o1", "ship", `"expected_version":1`)),
		rec(17, "o1", `{"command_id":"c7","order_id":"o1","action":"teleport"}`),
		rec(18, "o1", `not json`),
		rec(19, "oX", cmd("c8", "o1", "ship")),  // key mismatch
		rec(20, "o3", cmd("seen", "o3", "pay")), // seen in an earlier batch
		rec(21, "o3", cmd("c9", "o3", "ship")),
	}
	items, orderIDs, commandIDs := prepare(recs)
	if len(orderIDs) != 3 || len(commandIDs) != 11 {
		t.Fatalf("prepare: orders %v, commands %v", orderIDs, commandIDs)
	}
	now := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	snap := store.Snapshot{
		Position: store.Position{NextOffset: 10, NextSeq: 100},
		Orders:   map[string]store.OrderState{"o3": {State: "Paid", Version: 2, CreatedAt: now.Add(-time.Hour)}},
		Seen:     map[string]bool{"seen": true},
	}
	d := decide(items, snap, now)

	type want struct {
		cmd, outcome, reason, from, to string
		version                        int64
	}
	wants := []want{
		{"c1", "accepted", "", "", "Created", 1},
		{"c2", "accepted", "", "Created", "Paid", 2},
		{"c3", "rejected", "invalid_transition", "Paid", "", 2},
		{"c4", "rejected", "unknown_order", "", "", 0},
		{"c5", "rejected", "order_exists", "Paid", "", 2},
		{"c6", "rejected", "version_conflict", "Paid", "", 2},
		{"c7", "rejected", "invalid_command", "Paid", "", 2},
		{"c8", "rejected", "invalid_command", "Paid", "", 2},
		{"c9", "accepted", "", "Paid", "Shipped", 3},
	}
	if len(d.writes.Outcomes) != len(wants) {
		t.Fatalf("%d outcomes, want %d: %+v", len(d.writes.Outcomes), len(wants), d.writes.Outcomes)
	}
	for i, w := range wants {
		o := d.writes.Outcomes[i]
		if o.CommandID != w.cmd || o.Outcome != w.outcome || o.Reason != w.reason || o.FromState != w.from || o.ToState != w.to || o.Version != w.version {
			t.Errorf("outcome %d = %+v, want %+v", i, o, w)
		}
	}
	if n := len(d.writes.DeadLetters); n != 3 {
		t.Fatalf("%d dead letters, want 3 (unknown action, bad JSON, key mismatch)", n)
	}
	if d.writes.Position != (store.Position{NextOffset: 22, NextSeq: 112}) {
		t.Fatalf("position %+v", d.writes.Position)
	}
	for i, e := range d.entries {
		if e.Seq != 100+int64(i) {
			t.Fatalf("outbox entry %d has seq %d: not contiguous", i, e.Seq)
		}
	}
	got := map[string]store.OrderWrite{}
	for _, w := range d.writes.Orders {
		got[w.OrderID] = w
	}
	if w := got["o1"]; len(got) != 2 || w.State != "Paid" || w.Version != 2 || w.PrevVersion != 0 || !w.CreatedAt.Equal(now) {
		t.Fatalf("order writes %+v", got)
	}
	if w := got["o3"]; w.State != "Shipped" || w.Version != 3 || w.PrevVersion != 2 {
		t.Fatalf("o3 write %+v", w)
	}
	if e := d.writes.Outcomes[1].EventID; e != "o1/2" {
		t.Fatalf("event id %q", e)
	}
}

func TestDecideSkipsCommittedOffsets(t *testing.T) {
	t.Parallel()
	items, _, _ := prepare([]*kgo.Record{rec(4, "o", cmd("a", "o", "create")), rec(5, "o", cmd("b", "o", "pay"))})
	d := decide(items, store.Snapshot{Position: store.Position{NextOffset: 5, NextSeq: 7}, Orders: map[string]store.OrderState{"o": {State: "Created", Version: 1}}, Seen: map[string]bool{}}, time.Now())
	if len(d.writes.Outcomes) != 1 || d.writes.Outcomes[0].CommandID != "b" || d.writes.Position.NextOffset != 6 {
		t.Fatalf("decision %+v", d.writes)
	}
}

func TestStorable(t *testing.T) {
	t.Parallel()
	if s := storable("a\x00b\xffc"); s != "a\\0b\uFFFDc" {
		t.Fatalf("storable = %q", s)
	}
}

func BenchmarkDecide(b *testing.B) {
	recs := make([]*kgo.Record, 1000)
	for i := range recs {
		id := fmt.Sprintf("o%d", i%250)
		recs[i] = rec(int64(i), id, cmd(fmt.Sprint("c", i), id, []string{"create", "pay", "ship", "deliver"}[i/250]))
	}
	b.ReportAllocs()
	for b.Loop() {
		items, _, _ := prepare(recs)
		decide(items, store.Snapshot{Orders: map[string]store.OrderState{}, Seen: map[string]bool{}}, time.Now())
	}
}
