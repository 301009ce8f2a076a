package query

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/processor/machine"
	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/topics"
)

func TestGetOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	at := time.Date(2026, 11, 25, 18, 0, 0, 123456000, time.UTC)
	b.seedOrder(t, "o-1", machine.Paid, 2, at)
	b.seedOrder(t, "shop/заказ 1", machine.Created, 1, at)
	b.seedOrder(t, "done", machine.Cancelled, 3, at)

	var o Order
	r := b.get(t, "/v1/orders/o-1")
	r.expect(t, 200, "")
	r.decode(t, &o)
	if o.OrderID != "o-1" || o.State != machine.Paid || o.Version != 2 || !o.CreatedAt.Equal(at) ||
		!slices.Equal(o.AllowedActions, []machine.Action{machine.Ship, machine.Cancel}) {
		t.Fatalf("order %+v", o)
	}
	b.get(t, "/v1/orders/"+esc("shop/заказ 1")).decode(t, &o)
	if o.OrderID != "shop/заказ 1" {
		t.Fatalf("escaped id: %+v", o)
	}
	r = b.get(t, "/v1/orders/done")
	if !strings.Contains(string(r.body), `"allowed_actions":[]`) {
		t.Fatalf("terminal order: %s", r.body)
	}
	b.get(t, "/v1/orders/nope").expect(t, 404, CodeOrderNotFound)
	b.get(t, "/v1/orders/o-1?min_version=2").expect(t, 200, "")
	b.get(t, "/v1/orders/o-1?min_version=3").expect(t, 412, CodeVersionNotReached)
	b.get(t, "/v1/orders/nope?min_version=1").expect(t, 404, CodeOrderNotFound)

	start := time.Now()
	b.get(t, "/v1/orders/o-1?min_version=3&wait=150ms").expect(t, 412, CodeVersionNotReached)
	b.get(t, "/v1/orders/nope?wait=150ms").expect(t, 404, CodeOrderNotFound)
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("two waits of 150ms took %s", el)
	}

	t.Run("wait ends when the version commits", func(t *testing.T) {
		got := make(chan result, 1)
		go func() { got <- b.get(t, "/v1/orders/o-1?min_version=3&wait=20s") }()
		waitForWaiters(t, b, 1)
		b.seedOrder(t, "o-1", machine.Shipped, 3, time.Now())
		b.publishEvent(t, acceptedEvent("o-1", "c-ship", machine.Ship, machine.Paid, machine.Shipped, 3, time.Now()))
		r := <-got
		r.expect(t, 200, "")
		r.decode(t, &o)
		if o.Version != 3 || o.State != machine.Shipped {
			t.Fatalf("after wait: %+v", o)
		}
	})
	t.Run("wait without min_version waits for creation", func(t *testing.T) {
		got := make(chan result, 1)
		go func() { got <- b.get(t, "/v1/orders/later?wait=20s") }()
		waitForWaiters(t, b, 1)
		now := time.Now()
		b.seedOrder(t, "later", machine.Created, 1, now)
		b.publishEvent(t, acceptedEvent("later", "c-later", machine.Create, machine.None, machine.Created, 1, now))
		r := <-got
		r.expect(t, 200, "")
	})
}

// waitForWaiters waits until n requests are registered for events, so that
// a test publishes while they wait (the path under test) and not before.
func waitForWaiters(t *testing.T, b *bundle, n int) {
	t.Helper()
	eventually(t, 10*time.Second, "a waiting request", func() bool { return b.srv.hub.waiting() >= n })
}

// TestCacheFollowsCommittedEvents shows the cache is fed by the events feed,
// only with committed events, and never goes back a version; and that
// min_version reads past a stale entry.
func TestCacheFollowsCommittedEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	at := time.Now().UTC().Truncate(time.Microsecond)
	b.seedOrder(t, "c-1", machine.Created, 1, at)
	version := func() int64 {
		var o Order
		r := b.get(t, "/v1/orders/c-1")
		r.expect(t, 200, "")
		r.decode(t, &o)
		return o.Version
	}
	if v := version(); v != 1 {
		t.Fatalf("version %d", v)
	}
	// PostgreSQL stays at version 1 here: only the cache can answer 2.
	b.publishEvent(t, acceptedEvent("c-1", "c1-pay", machine.Pay, machine.Created, machine.Paid, 2, at))
	eventually(t, 10*time.Second, "the cache to apply version 2", func() bool { return version() == 2 })

	// A stale event, then a marker; once the marker is visible the stale one
	// was applied (same key, same partition, in order), and changed nothing.
	b.publishEvent(t, acceptedEvent("c-1", "c1-old", machine.Create, machine.None, machine.Created, 1, at))
	marker := &topics.Event{EventID: "m", CommandID: "c1-marker", OrderID: "c-1", Action: "ship", Outcome: topics.Rejected,
		FromState: ptr("Paid"), Version: 2, Reason: ptr(machine.ReasonInvalidTransition), ProcessedAt: at}
	b.publishEvent(t, marker)
	eventually(t, 10*time.Second, "the marker", func() bool { return b.get(t, "/v1/commands/c1-marker").status == 200 })
	if v := version(); v != 2 {
		t.Fatalf("a stale event moved the cache to version %d", v)
	}

	// An aborted transaction's event is never applied (read_committed).
	txn, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...), kgo.TransactionalID("query-test-"+b.names.Events))
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	ctx := context.Background()
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	v9, _ := topics.EncodeEvent(acceptedEvent("c-1", "c1-aborted", machine.Ship, machine.Paid, machine.Shipped, 9, at))
	if err := txn.ProduceSync(ctx, &kgo.Record{Topic: b.names.Events, Key: []byte("c-1"), Value: v9}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := txn.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	b.publishEvent(t, acceptedEvent("c-1", "c1-ship", machine.Ship, machine.Paid, machine.Shipped, 3, at))
	eventually(t, 10*time.Second, "version 3", func() bool { return version() >= 3 })
	if v := version(); v != 3 {
		t.Fatalf("version %d: an aborted event was applied", v)
	}
	b.get(t, "/v1/commands/c1-aborted").expect(t, 404, CodeCommandNotFound)

	// PostgreSQL moves to 5 without an event: a plain read may serve the
	// cached 3 (the documented lag), min_version=5 must not.
	b.seedOrder(t, "c-1", machine.Delivered, 5, time.Now())
	if v := version(); v != 3 {
		t.Fatalf("expected the cached version 3, got %d", v)
	}
	var o Order
	b.get(t, "/v1/orders/c-1?min_version=5").decode(t, &o)
	if o.Version != 5 || o.State != machine.Delivered {
		t.Fatalf("min_version=5 answered %+v", o)
	}
	if v := version(); v != 5 {
		t.Fatalf("the read at min_version did not refresh the cache: %d", v)
	}
}

func TestListOrders(t *testing.T) {
	t.Parallel()
	b := setup(t)
	at := time.Now()
	for i := range 10 {
		b.seedOrder(t, fmt.Sprintf("l-%02d", i), []machine.State{machine.Paid, machine.Created}[i%2], 1, at)
	}
	var ids []string
	cursor := ""
	pages := 0
	for {
		var p OrderPage
		b.get(t, "/v1/orders?state=Paid&limit=2"+cursor).decode(t, &p)
		pages++
		for _, o := range p.Orders {
			if o.State != machine.Paid {
				t.Fatalf("state filter: %+v", o)
			}
			ids = append(ids, o.OrderID)
		}
		if p.NextCursor == nil {
			break
		}
		cursor = "&cursor=" + *p.NextCursor
	}
	if want := []string{"l-00", "l-02", "l-04", "l-06", "l-08"}; !slices.Equal(ids, want) || pages != 3 {
		t.Fatalf("paged %v in %d pages, want %v in 3", ids, pages, want)
	}
	var all OrderPage
	b.get(t, "/v1/orders").decode(t, &all)
	if len(all.Orders) != 10 || all.NextCursor != nil {
		t.Fatalf("all orders: %d, cursor %v", len(all.Orders), all.NextCursor)
	}
	r := b.get(t, "/v1/orders?state=Returned")
	r.expect(t, 200, "")
	if !strings.Contains(string(r.body), `"orders":[]`) || !strings.Contains(string(r.body), `"next_cursor":null`) {
		t.Fatalf("empty listing: %s", r.body)
	}
	// seedOrder writes orders directly; batches would have kept the counts.
	if err := store.RecountOrders(context.Background(), b.pool); err != nil {
		t.Fatal(err)
	}
	var s Stats
	b.get(t, "/v1/stats").decode(t, &s)
	if s.Total != 10 || s.Counts["Paid"] != 5 || s.Counts["Created"] != 5 || s.Counts["Returned"] != 0 || len(s.Counts) != 6 {
		t.Fatalf("stats %+v", s)
	}
}

// TestListPaginationUnderWrites pages through a state while orders are
// inserted before, between and after the pages: every order that was there
// throughout comes back exactly once, in order.
func TestListPaginationUnderWrites(t *testing.T) {
	t.Parallel()
	b := setup(t)
	at := time.Now()
	var seeded []string
	for i := range 300 {
		id := fmt.Sprintf("p-%03d", i)
		seeded = append(seeded, id)
		b.seedOrder(t, id, machine.Paid, 2, at)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var inserted atomic.Int64
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			// Ids that sort among the seeded ones, all through the range.
			id := fmt.Sprintf("p-%03d-new-%d", (i*37)%300, i)
			_, err := b.pool.Exec(ctx, `INSERT INTO orders VALUES ($1, 'Paid', 1, now(), now())`, id)
			if err != nil && ctx.Err() == nil {
				t.Errorf("insert: %v", err)
				return
			}
			inserted.Add(1)
		}
	})
	seen := map[string]int{}
	var last string
	cursor := ""
	for {
		var p OrderPage
		r := b.get(t, "/v1/orders?state=Paid&limit=37"+cursor)
		r.expect(t, 200, "")
		r.decode(t, &p)
		for _, o := range p.Orders {
			if o.OrderID <= last && last != "" {
				// PostgreSQL's collation, not Go's, orders ids; they agree on these.
				t.Fatalf("out of order: %q after %q", o.OrderID, last)
			}
			last = o.OrderID
			seen[o.OrderID]++
		}
		if p.NextCursor == nil {
			break
		}
		cursor = "&cursor=" + *p.NextCursor
	}
	cancel()
	wg.Wait()
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s served %d times", id, n)
		}
	}
	for _, id := range seeded {
		if seen[id] != 1 {
			t.Fatalf("%s was skipped", id)
		}
	}
	if inserted.Load() == 0 {
		t.Fatal("no concurrent writes happened")
	}
	t.Logf("paged %d orders while %d were inserted", len(seen), inserted.Load())
}

// TestHistory pages an order's outcomes, with ties on processed_at broken by
// seq, while more outcomes are appended.
func TestHistory(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Minute)
	var seq int64
	var want []string
	for i := range 40 {
		seq++
		// Pairs share a processed_at, as outcomes of one batch do.
		ev := &topics.Event{EventID: fmt.Sprintf("h-1/r/%d", i), CommandID: fmt.Sprintf("h1-c%d", i), OrderID: "h-1", Action: "pay",
			Outcome: topics.Rejected, Version: 1, Reason: ptr("invalid_transition"), Message: ptr("no"),
			Metadata: []byte(`{"i":` + fmt.Sprint(i) + `}`), ProcessedAt: base.Add(time.Duration(i/2) * time.Millisecond)}
		if err := seedOutcome(ctx, b.pool, ev, 0, 1000-seq); err != nil { // seq falls as time rises: only (time, seq) order is right
			t.Fatal(err)
		}
		want = append(want, ev.CommandID)
	}
	// Within a tie, seq decides: the seeded pairs have falling seqs, so
	// each pair comes back swapped relative to insertion.
	for i := 0; i+1 < len(want); i += 2 {
		want[i], want[i+1] = want[i+1], want[i]
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ev := &topics.Event{EventID: fmt.Sprintf("h-1/late/%d", i), CommandID: fmt.Sprintf("h1-late%d", i), OrderID: "h-1", Action: "pay",
				Outcome: topics.Rejected, Version: 1, ProcessedAt: time.Now().UTC().Truncate(time.Microsecond)}
			if err := seedOutcome(ctx, b.pool, ev, 0, 2000+int64(i)); err != nil {
				t.Errorf("append: %v", err)
				return
			}
		}
	})
	var got []string
	seen := map[string]bool{}
	cursor := ""
	for {
		var p HistoryPage
		r := b.get(t, "/v1/orders/h-1/history?limit=7"+cursor)
		r.expect(t, 200, "")
		r.decode(t, &p)
		for _, e := range p.Events {
			if seen[e.CommandID] {
				t.Fatalf("%s served twice", e.CommandID)
			}
			seen[e.CommandID] = true
			if !strings.HasPrefix(e.CommandID, "h1-late") {
				got = append(got, e.CommandID)
			}
		}
		if p.NextCursor == nil || len(got) == len(want) {
			break
		}
		cursor = "&cursor=" + *p.NextCursor
	}
	close(stop)
	wg.Wait()
	if !slices.Equal(got, want) {
		t.Fatalf("history order\n got %v\nwant %v", got, want)
	}
	var first HistoryPage
	b.get(t, "/v1/orders/h-1/history?limit=1").decode(t, &first)
	if e := first.Events[0]; string(e.Metadata) != `{"i":1}` || e.Reason == nil || e.ToState != nil || e.Actor != nil {
		t.Fatalf("event shape: %+v", e)
	}
	b.get(t, "/v1/orders/never/history").expect(t, 404, CodeOrderNotFound)
}

func TestCommandOutcomeFromPostgres(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.OutcomeCacheSize = -1 })
	req := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	ev := acceptedEvent("order-42", "0b8f3c1e", machine.Pay, machine.Created, machine.Paid, 2, time.Now())
	ev.Actor, ev.Metadata, ev.RequestedAt = ptr("payments-service"), []byte(`{"payment_id":"p-9","n":{"b":1,"a":[1,2]}}`), &req
	if err := seedOutcome(context.Background(), b.pool, ev, 1, 1); err != nil {
		t.Fatal(err)
	}
	var got topics.Event
	r := b.get(t, "/v1/commands/0b8f3c1e")
	r.expect(t, 200, "")
	r.decode(t, &got)
	sameEvent(t, got, *ev)
	for _, field := range []string{`"reason":null`, `"message":null`, `"event_id":"order-42/2"`} {
		if !strings.Contains(string(r.body), field) {
			t.Fatalf("event JSON lacks %s: %s", field, r.body)
		}
	}
	b.get(t, "/v1/commands/unknown").expect(t, 404, CodeCommandNotFound)
	b.get(t, "/v1/commands/0b8f3c1e?x=1").expect(t, 400, CodeUnknownParameter)
}

// TestCommands drives POST /v1/orders/{id}/commands against the fake
// processor (a test double, see startFakeProcessor).
func TestCommands(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startFakeProcessor(t)
	post := func(id, body string) result {
		return b.do(t, "POST", "/v1/orders/"+esc(id)+"/commands?wait=10s", body)
	}
	var ev topics.Event
	r := post("o-7", `{"command_id":"cmd-create","action":"create","actor":"shop","metadata":{"cart":"c-1"}}`)
	r.expect(t, 200, "")
	r.decode(t, &ev)
	if ev.Outcome != topics.Accepted || ev.Version != 1 || *ev.ToState != "Created" || ev.RequestedAt == nil {
		t.Fatalf("create: %s", r.body)
	}
	onKafka := b.eventsOf(t, "cmd-create")
	if len(onKafka) != 1 {
		t.Fatalf("%d events for cmd-create", len(onKafka))
	}
	sameEvent(t, ev, onKafka[0])

	r = post("o-7", `{"command_id":"cmd-pay","order_id":"o-7","action":"pay","expected_version":1}`)
	r.expect(t, 200, "")
	r.decode(t, &ev)
	if ev.Version != 2 {
		t.Fatalf("pay: %s", r.body)
	}
	paid := r.body

	r = post("o-7", `{"command_id":"cmd-bad-ship","action":"ship","expected_version":1}`)
	r.expect(t, 409, "")
	r.decode(t, &ev)
	if ev.Outcome != topics.Rejected || *ev.Reason != machine.ReasonVersionConflict || ev.Version != 2 {
		t.Fatalf("stale ship: %s", r.body)
	}
	if onKafka = b.eventsOf(t, "cmd-bad-ship"); len(onKafka) != 1 {
		t.Fatalf("%d events for cmd-bad-ship", len(onKafka))
	}
	sameEvent(t, ev, onKafka[0])

	t.Run("retry returns the first outcome without a second transition", func(t *testing.T) {
		for _, path := range []string{"/v1/orders/o-7/commands?wait=10s", "/v1/orders/o-7/commands"} {
			r := b.do(t, "POST", path, `{"command_id":"cmd-pay","action":"pay","expected_version":1}`)
			r.expect(t, 200, "")
			if string(r.body) != string(paid) {
				t.Fatalf("retry answered\n%s\nfirst answer\n%s", r.body, paid)
			}
		}
		var rows int
		if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM transitions WHERE command_id = 'cmd-pay'`).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows != 1 || b.commandsOf(t, "cmd-pay") != 1 || len(b.eventsOf(t, "cmd-pay")) != 1 {
			t.Fatalf("retry left %d transitions, %d commands, %d events; want 1 each", rows, b.commandsOf(t, "cmd-pay"), len(b.eventsOf(t, "cmd-pay")))
		}
		b.do(t, "POST", "/v1/orders/o-7/commands", `{"command_id":"cmd-pay","action":"ship"}`).expect(t, 422, CodeCommandIDReused)
		b.do(t, "POST", "/v1/orders/o-8/commands", `{"command_id":"cmd-pay","action":"pay"}`).expect(t, 422, CodeCommandIDReused)
	})

	t.Run("concurrent retries share one outcome", func(t *testing.T) {
		var wg sync.WaitGroup
		bodies := make([]string, 5)
		for i := range bodies {
			wg.Go(func() {
				r := post("o-7", `{"command_id":"cmd-ship","action":"ship"}`)
				if r.status != 200 {
					t.Errorf("status %d: %s", r.status, r.body)
				}
				bodies[i] = string(r.body)
			})
		}
		wg.Wait()
		for _, body := range bodies[1:] {
			if body != bodies[0] {
				t.Fatalf("answers differ:\n%s\n%s", body, bodies[0])
			}
		}
		var rows int
		_ = b.pool.QueryRow(context.Background(), `SELECT count(*) FROM transitions WHERE command_id = 'cmd-ship'`).Scan(&rows)
		if rows != 1 {
			t.Fatalf("%d transitions for one command", rows)
		}
	})

	t.Run("without wait: 202, then the outcome", func(t *testing.T) {
		r := b.do(t, "POST", "/v1/orders/o-9/commands", `{"action":"create"}`)
		r.expect(t, 202, "")
		var p CommandPending
		r.decode(t, &p)
		if p.Status != "pending" || len(p.CommandID) != 36 || r.header.Get("Location") != "/v1/commands/"+p.CommandID {
			t.Fatalf("pending: %+v, Location %q", p, r.header.Get("Location"))
		}
		eventually(t, 10*time.Second, "the outcome", func() bool { return b.get(t, "/v1/commands/"+p.CommandID).status == 200 })
	})

	t.Run("wait runs out: 202", func(t *testing.T) {
		start := time.Now()
		r := b.do(t, "POST", "/v1/orders/ignored-1/commands?wait=300ms", `{"command_id":"cmd-ignored","action":"create"}`)
		r.expect(t, 202, "")
		if el := time.Since(start); el < 300*time.Millisecond {
			t.Fatalf("answered after %s, before the wait ended", el)
		}
		b.get(t, "/v1/commands/cmd-ignored").expect(t, 404, CodeCommandNotFound)
		if n := b.srv.hub.waiting(); n != 0 {
			t.Fatalf("%d waiters left behind", n)
		}
	})

	t.Run("rejected unknown order", func(t *testing.T) {
		r := post("ghost", `{"action":"pay"}`)
		r.expect(t, 409, "")
		r.decode(t, &ev)
		if *ev.Reason != machine.ReasonUnknownOrder || ev.FromState != nil || ev.Version != 0 {
			t.Fatalf("unknown order: %s", r.body)
		}
		b.get(t, "/v1/orders/ghost/history").expect(t, 200, "")
		b.get(t, "/v1/orders/ghost").expect(t, 404, CodeOrderNotFound)
	})
}

// TestReadYourWrites: after an accepted command at version N, a read with
// min_version=N never answers with a lower version, from any path.
func TestReadYourWrites(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startFakeProcessor(t)
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			id := fmt.Sprintf("ryw-%d", i)
			for _, a := range []machine.Action{machine.Create, machine.Pay, machine.Ship, machine.Deliver, machine.Return} {
				r := b.do(t, "POST", "/v1/orders/"+id+"/commands?wait=10s", `{"action":"`+string(a)+`"}`)
				var ev topics.Event
				if r.status != 200 {
					t.Errorf("%s %s: %d %s", id, a, r.status, r.body)
					return
				}
				r.decode(t, &ev)
				for _, q := range []string{"", "&wait=1s"} {
					var o Order
					r = b.get(t, fmt.Sprintf("/v1/orders/%s?min_version=%d%s", id, ev.Version, q))
					if r.status != 200 {
						t.Errorf("%s at min_version %d: %d %s", id, ev.Version, r.status, r.body)
						return
					}
					r.decode(t, &o)
					if o.Version < ev.Version || (o.Version == ev.Version && string(o.State) != *ev.ToState) {
						t.Errorf("%s: read %d/%s after writing %d/%s", id, o.Version, o.State, ev.Version, *ev.ToState)
					}
				}
			}
		})
	}
	wg.Wait()
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	b := setup(t, func(c *Config) {
		c.Ready = func(context.Context) error {
			if fail.Load() {
				return errors.New("partitions not assigned")
			}
			return nil
		}
		c.APIKeys = []Key{{readKey, ScopeRead}}
	})
	var rd Readiness
	b.get(t, "/readyz").decode(t, &rd)
	if rd.Status != "ready" || rd.Checks["postgres"] != "ok" || rd.Checks["kafka"] != "ok" || rd.Checks["events_feed"] != "ok" || rd.Checks["processor"] != "ok" {
		t.Fatalf("readiness %+v", rd)
	}
	fail.Store(true)
	r := b.get(t, "/readyz")
	r.expect(t, 503, "")
	r.decode(t, &rd)
	if rd.Checks["processor"] != "partitions not assigned" || rd.Error == nil || !strings.Contains(rd.Error.Message, "processor") {
		t.Fatalf("readiness %s", r.body)
	}

	// Auth against the real stack: the key reads, cannot write; no key, 401.
	b.get(t, "/v1/stats").expect(t, 200, "")
	b.do(t, "POST", "/v1/orders/x/commands", `{"action":"create"}`).expect(t, 403, CodeForbidden)
	b.key = ""
	b.get(t, "/v1/stats").expect(t, 401, CodeUnauthorized)
	b.get(t, "/healthz").expect(t, 200, "")
}

// TestShutdownEndsWaits: a request waiting when the server stops is answered
// at once, and Serve returns nil.
func TestShutdownEndsWaits(t *testing.T) {
	t.Parallel()
	b := setup(t)
	got := make(chan result, 1)
	go func() { got <- b.get(t, "/v1/orders/nobody?wait=25s") }()
	waitForWaiters(t, b, 1)
	start := time.Now()
	if err := b.stop(); err != nil {
		t.Fatalf("Serve returned %v", err)
	}
	(<-got).expect(t, 404, CodeOrderNotFound)
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("shutdown took %s with a waiting request", el)
	}
	if _, err := http.Get(b.base + "/healthz"); err == nil {
		t.Fatal("still serving after shutdown")
	}
}
