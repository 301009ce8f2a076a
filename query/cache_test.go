package query

import (
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/processor/machine"
	"github.com/orderflow/orderflow/topics"
)

func snap(id string, v int64) snapshot {
	return snapshot{OrderID: id, State: machine.Paid, Version: v, CreatedAt: time.Unix(1, 0), UpdatedAt: time.Unix(int64(v), 0)}
}

func event(id string, v int64, outcome string) *topics.EventHead {
	return &topics.EventHead{CommandID: fmt.Sprintf("%s-%d", id, v), OrderID: id, Outcome: outcome,
		ToState: ptr("Shipped"), Version: v, ProcessedAt: time.Unix(100+v, 0)}
}

func cached(c *orderCache, id string) int64 {
	s, ok := c.get(id)
	if !ok {
		return 0
	}
	return s.Version
}

func TestOrderCache(t *testing.T) {
	t.Parallel()
	c := newOrderCache(10)

	// A row read, then an event: the event applies on top.
	c.beginFill("a")
	c.endFill("a", snap("a", 1), true)
	c.apply(event("a", 2, topics.Accepted))
	if v := cached(c, "a"); v != 2 {
		t.Fatalf("a at %d, want 2", v)
	}
	s, _ := c.get("a")
	if s.State != machine.Shipped || !s.CreatedAt.Equal(time.Unix(1, 0)) || !s.UpdatedAt.Equal(time.Unix(102, 0)) {
		t.Fatalf("a = %+v", s)
	}
	// Never back: an older event or an older row change nothing.
	c.apply(event("a", 1, topics.Accepted))
	c.beginFill("a")
	c.endFill("a", snap("a", 1), true)
	if v := cached(c, "a"); v != 2 {
		t.Fatalf("a went back to %d", v)
	}
	// Rejected outcomes change no order.
	c.apply(event("a", 7, topics.Rejected))
	if v := cached(c, "a"); v != 2 {
		t.Fatalf("a moved to %d on a rejection", v)
	}

	// The race the tickets close: the row (v1) is read, an event (v2) is
	// applied before the fill: the fill must not plant v1.
	c.beginFill("b")
	c.apply(event("b", 2, topics.Accepted))
	c.endFill("b", snap("b", 1), true)
	if v := cached(c, "b"); v != 0 {
		t.Fatalf("b cached at %d after a newer event; want a miss", v)
	}
	// Without a pending fill, an event for an uncached order is dropped
	// (PostgreSQL has it), and no ticket is left behind.
	c.apply(event("c", 3, topics.Accepted))
	if v := cached(c, "c"); v != 0 || len(c.pending) != 0 {
		t.Fatalf("c cached at %d, %d tickets", v, len(c.pending))
	}
	// A create event makes a full entry at once.
	c.apply(event("d", 1, topics.Accepted))
	if s, ok := c.get("d"); !ok || !s.CreatedAt.Equal(s.UpdatedAt) {
		t.Fatalf("d = %+v, %v", s, ok)
	}
	// A failed read leaves no ticket.
	c.beginFill("e")
	c.endFill("e", snapshot{}, false)
	if len(c.pending) != 0 {
		t.Fatalf("%d tickets left", len(c.pending))
	}
}

func TestLRUBound(t *testing.T) {
	t.Parallel()
	c := newOrderCache(3)
	for i := range 10 {
		id := fmt.Sprint(i)
		c.beginFill(id)
		c.endFill(id, snap(id, 1), true)
		switch i {
		case 5:
			c.get("3") // used: now outlives 4 and 5
		case 7:
			if _, ok := c.get("3"); !ok {
				t.Fatal("the recently used entry was evicted")
			}
			if _, ok := c.get("4"); ok {
				t.Fatal("the least recently used entry survived")
			}
		}
	}
	if c.len() != 3 {
		t.Fatalf("len %d, want 3", c.len())
	}
	for id, want := range map[string]bool{"9": true, "8": true, "3": true, "7": false, "0": false} {
		if _, ok := c.get(id); ok != want {
			t.Fatalf("get(%s) = %v, want %v", id, ok, want)
		}
	}
	off := newOrderCache(-1)
	off.beginFill("x")
	off.endFill("x", snap("x", 1), true)
	off.apply(event("y", 1, topics.Accepted))
	if off.len() != 0 || len(off.pending) != 0 {
		t.Fatal("a disabled cache holds something")
	}
}

// TestOrderCacheConcurrent races fills against events for one order: the
// cache must end at the highest version, whatever the interleaving.
func TestOrderCacheConcurrent(t *testing.T) {
	t.Parallel()
	for round := range 50 {
		c := newOrderCache(100)
		var wg sync.WaitGroup
		var mu sync.Mutex
		db := int64(1) // "PostgreSQL": events are published after it moves
		wg.Go(func() {
			for v := int64(2); v <= 50; v++ {
				mu.Lock()
				db = v
				mu.Unlock()
				c.apply(event("o", v, topics.Accepted))
			}
		})
		for range 4 {
			wg.Go(func() {
				for range 50 {
					c.beginFill("o")
					mu.Lock()
					v := db
					mu.Unlock()
					c.endFill("o", snap("o", v), true)
				}
			})
		}
		wg.Wait()
		if v := cached(c, "o"); v != 0 && v != 50 {
			t.Fatalf("round %d: cache ended at %d, PostgreSQL at 50", round, v)
		}
		if len(c.pending) != 0 {
			t.Fatalf("round %d: %d tickets left", round, len(c.pending))
		}
	}
}

func TestHub(t *testing.T) {
	t.Parallel()
	h := newHub()
	cw, cancelC := h.waitCommand("c1")
	ow, cancelO := h.waitOrder("o1", 3)
	_, cancelLate := h.waitOrder("o1", 9)
	if h.waiting() != 3 {
		t.Fatalf("waiting %d", h.waiting())
	}
	// The whole event is decoded once per publish that wakes someone, and
	// not at all for the outcomes nobody waits for.
	decodes := 0
	publish := func(ev topics.Event) {
		hd := ev.Head()
		h.publish(&hd, func() (topics.Event, error) { decodes++; return ev, nil })
	}
	publish(topics.Event{CommandID: "c0", OrderID: "o0", Outcome: topics.Accepted, Version: 1})
	if decodes != 0 {
		t.Fatalf("an outcome nobody waits for was decoded %d times", decodes)
	}
	publish(topics.Event{CommandID: "c1", OrderID: "o1", Outcome: topics.Rejected, Version: 5})
	if ev := <-cw.ch; ev.CommandID != "c1" {
		t.Fatalf("command waiter got %+v", ev)
	}
	select {
	case <-ow.ch:
		t.Fatal("an order waiter was woken by a rejection")
	default:
	}
	publish(topics.Event{CommandID: "c2", OrderID: "o1", Outcome: topics.Accepted, Version: 3})
	if ev := <-ow.ch; ev.Version != 3 {
		t.Fatalf("order waiter got %+v", ev)
	}
	if decodes != 2 {
		t.Fatalf("%d decodes for two publishes that woke a waiter each", decodes)
	}
	if h.waiting() != 1 {
		t.Fatalf("waiting %d, want the version-9 waiter only", h.waiting())
	}
	cancelC()
	cancelO()
	cancelLate()
	cancelLate()
	if h.waiting() != 0 || len(h.orders) != 0 || len(h.commands) != 0 {
		t.Fatalf("waiters left: %d", h.waiting())
	}
}

// TestApplyKeepsTheWholeEvent: the feed decodes only an event's head, and an
// outcome lookup later gets the whole event back from the bytes it kept,
// which are its own copy (a fetch's buffer is not).
func TestApplyKeepsTheWholeEvent(t *testing.T) {
	t.Parallel()
	s, err := newServer(Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 26, 1, 2, 3, 456_000_000, time.UTC)
	want := topics.Event{EventID: "o-1/1", CommandID: "c-1", OrderID: "o-1", Action: "create", Outcome: topics.Accepted,
		ToState: ptr("Created"), Version: 1, Actor: ptr("shop"), Metadata: []byte(`{"k":"v"}`), RequestedAt: &at, ProcessedAt: at}
	value, err := topics.EncodeEvent(&want)
	if err != nil {
		t.Fatal(err)
	}
	h, err := topics.DecodeEventHead(value)
	if err != nil {
		t.Fatal(err)
	}
	s.apply(&h, value)
	for i := range value {
		value[i] = 'x' // the fetch buffer is reused
	}
	got, ok := s.outcomes.get("c-1")
	if !ok {
		t.Fatal("outcome of c-1 not cached")
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("cached outcome %+v, want %+v", got, want)
	}
	if sn, ok := s.orders.get("o-1"); !ok || sn.Version != 1 || sn.State != machine.Created {
		t.Fatalf("order cache holds %+v, %v", sn, ok)
	}
}
