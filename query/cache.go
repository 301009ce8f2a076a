package query

import (
	"math"
	"slices"
	"sync"
	"time"

	"github.com/orderflow/orderflow/processor/machine"
	"github.com/orderflow/orderflow/topics"
)

// lru is a size-bounded map that forgets the least recently used entry
// first. One mutex guards it: a point read holds it for a map lookup and a
// list move, well under a microsecond, so it is not worth sharding at the
// request rates one API replica serves.
//
// The feed updates two of these for every outcome event (tens of thousands
// a second), and once a cache is full every such insert evicts. So the
// recency list is threaded through a slice by index instead of being a
// container/list: a full cache reuses the evicted entry's slot and
// allocates nothing per insert, and the GC sees one array rather than two
// small objects per entry made and dropped for every event.
type lru[V any] struct {
	mu    sync.Mutex
	max   int
	ents  []lruEntry[V]    // grows up to max, never shrinks
	index map[string]int32 // key -> its entry in ents
	head  int32            // most recently used; -1 when empty
	tail  int32            // least recently used, next to go; -1 when empty
}

type lruEntry[V any] struct {
	key        string
	val        V
	prev, next int32 // towards head, towards tail; -1 at either end
}

// newLRU returns a cache of at most max entries; max <= 0 gives a cache
// that holds nothing, so callers need no "is caching on" branches. The
// entries are allocated as they come, not up front, so a large max costs
// nothing until it is used.
func newLRU[V any](max int) *lru[V] {
	max = min(max, math.MaxInt32) // entries are indexed by int32
	return &lru[V]{max: max, index: make(map[string]int32), head: -1, tail: -1}
}

func (c *lru[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.index[key]; ok {
		c.toFront(i)
		return c.ents[i].val, true
	}
	var zero V
	return zero, false
}

// update sets key to fn(old, found) when fn says so. fn runs under the lock,
// which is what makes "replace only with a higher version" atomic. With
// max <= 0, fn is not called.
func (c *lru[V]) update(key string, fn func(old V, found bool) (V, bool)) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	i, found := c.index[key]
	var old V
	if found {
		old = c.ents[i].val
	}
	v, ok := fn(old, found)
	if !ok {
		return
	}
	if found {
		c.ents[i].val = v
		c.toFront(i)
		return
	}
	if len(c.ents) < c.max {
		if len(c.ents) == cap(c.ents) {
			// Double, but not past max: append alone would overshoot it
			// by up to a quarter on a large cache.
			n := min(max(2*cap(c.ents), 16), c.max)
			c.ents = slices.Grow(c.ents, n-len(c.ents))
		}
		i = int32(len(c.ents)) //nolint:gosec // len < max <= MaxInt32 (newLRU)
		c.ents = append(c.ents, lruEntry[V]{key: key, val: v, prev: -1, next: -1})
	} else {
		// Full: the least recently used entry goes, and its slot takes the
		// new one. The whole entry is overwritten, so neither the evicted
		// value (V may be a pointer) nor its key stays reachable from here.
		i = c.tail
		c.unlink(i)
		delete(c.index, c.ents[i].key)
		c.ents[i] = lruEntry[V]{key: key, val: v, prev: -1, next: -1}
	}
	c.index[key] = i
	c.pushFront(i)
}

func (c *lru[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.index)
}

// toFront marks entry i most recently used. c.mu must be held.
func (c *lru[V]) toFront(i int32) {
	if c.head != i {
		c.unlink(i)
		c.pushFront(i)
	}
}

// unlink takes entry i out of the recency list. c.mu must be held.
func (c *lru[V]) unlink(i int32) {
	e := &c.ents[i]
	if e.prev >= 0 {
		c.ents[e.prev].next = e.next
	} else {
		c.head = e.next
	}
	if e.next >= 0 {
		c.ents[e.next].prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = -1, -1
}

// pushFront puts the unlinked entry i at the head of the recency list.
// c.mu must be held.
func (c *lru[V]) pushFront(i int32) {
	e := &c.ents[i]
	e.prev, e.next = -1, c.head
	if c.head >= 0 {
		c.ents[c.head].prev = i
	} else {
		c.tail = i
	}
	c.head = i
}

// snapshot is an order's row as the API serves it.
type snapshot struct {
	OrderID   string
	State     machine.State
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// orderCache holds order snapshots. Its invariant: an entry is only ever
// replaced by a higher version, so a cached order never goes back in time.
//
// A read that misses fetches the row from PostgreSQL and then fills the
// cache. An event for the same order may be applied in between, newer than
// the row read; it finds no entry to update, and the fill would then plant
// the older row for good. So a miss takes a fill ticket first; an event for
// an order that is not cached raises the ticket's high-water mark; and the
// fill is dropped when the row is older than that mark. Tickets are guarded
// by the LRU's own lock, which apply and endFill both hold, so no event can
// pass between the check and the fill.
type orderCache struct {
	*lru[snapshot]
	pending map[string]*fillTicket // guarded by lru.mu
}

type fillTicket struct {
	refs int   // misses of this order in flight
	seen int64 // highest version an event announced meanwhile
}

func newOrderCache(max int) *orderCache {
	return &orderCache{lru: newLRU[snapshot](max), pending: make(map[string]*fillTicket)}
}

// beginFill is called before reading order id from PostgreSQL; endFill must
// follow.
func (c *orderCache) beginFill(id string) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.pending[id]
	if t == nil {
		t = &fillTicket{}
		c.pending[id] = t
	}
	t.refs++
}

// endFill stores the row read (when found) unless an event announced a
// newer version while it was read.
func (c *orderCache) endFill(id string, s snapshot, found bool) {
	c.update(id, func(old snapshot, cached bool) (snapshot, bool) {
		var seen int64
		if t := c.pending[id]; t != nil {
			seen = t.seen
			if t.refs--; t.refs == 0 {
				delete(c.pending, id)
			}
		}
		if !found || s.Version < seen {
			return old, false
		}
		return s, !cached || s.Version > old.Version
	})
}

// apply folds the head of a committed outcome event into the cache.
// Rejected outcomes change no order. The event carries no created_at, so an
// order the cache does not hold becomes an entry only from its create event
// (created_at is that event's processed_at, as the processor writes it); for
// any other version it only raises a pending fill's mark.
func (c *orderCache) apply(ev *topics.EventHead) {
	if ev.Outcome != topics.Accepted || ev.ToState == nil || ev.Version < 1 {
		return
	}
	c.update(ev.OrderID, func(old snapshot, cached bool) (snapshot, bool) {
		switch {
		case cached && ev.Version <= old.Version:
			return old, false
		case cached:
			old.State, old.Version, old.UpdatedAt = machine.State(*ev.ToState), ev.Version, ev.ProcessedAt
			return old, true
		}
		if t := c.pending[ev.OrderID]; t != nil {
			t.seen = max(t.seen, ev.Version)
		}
		if ev.Version != 1 {
			return old, false
		}
		return snapshot{OrderID: ev.OrderID, State: machine.State(*ev.ToState), Version: 1,
			CreatedAt: ev.ProcessedAt, UpdatedAt: ev.ProcessedAt}, true
	})
}

// outcomeCache maps command_id to its outcome event. Outcomes never change
// (the first one stands), so any copy is current.
type outcomeCache struct{ *lru[*lazyEvent] }

func (c outcomeCache) put(commandID string, ev *lazyEvent) {
	c.update(commandID, func(_ *lazyEvent, found bool) (*lazyEvent, bool) { return ev, !found })
}

// get returns the outcome of commandID when it is cached and decodes.
func (c outcomeCache) get(commandID string) (topics.Event, bool) {
	le, ok := c.lru.get(commandID)
	if !ok {
		return topics.Event{}, false
	}
	ev, err := le.event()
	return ev, err == nil
}

// lazyEvent is an outcome event kept as it came, decoded when asked for:
// the feed caches every outcome, and few are ever looked up. Set ev instead
// of raw for an event already decoded.
type lazyEvent struct {
	raw []byte
	ev  *topics.Event
}

func (l *lazyEvent) event() (topics.Event, error) {
	if l.ev != nil {
		return *l.ev, nil
	}
	return topics.DecodeEvent(l.raw)
}

// hub hands committed outcome events to requests waiting for them: a POST
// waiting for its command's outcome, or a GET waiting for an order to reach
// min_version. A waiter is registered before the request checks
// PostgreSQL, so an event published after that check cannot be missed.
type hub struct {
	mu       sync.Mutex
	commands map[string]map[*waiter]struct{}
	orders   map[string]map[*waiter]struct{}
	n        int
}

// waiter receives at most one event on ch (buffered, so publish never
// blocks on a slow request).
type waiter struct {
	ch  chan topics.Event
	min int64
}

func newHub() *hub {
	return &hub{commands: make(map[string]map[*waiter]struct{}), orders: make(map[string]map[*waiter]struct{})}
}

// waitCommand registers for the outcome of commandID. The returned cancel
// must be called (it is idempotent): it is what removes a waiter that timed
// out.
func (h *hub) waitCommand(commandID string) (*waiter, func()) {
	return h.add(h.commands, commandID, 0)
}

// waitOrder registers for an accepted event taking orderID to min or above.
func (h *hub) waitOrder(orderID string, min int64) (*waiter, func()) {
	return h.add(h.orders, orderID, min)
}

func (h *hub) add(m map[string]map[*waiter]struct{}, key string, min int64) (*waiter, func()) {
	w := &waiter{ch: make(chan topics.Event, 1), min: min}
	h.mu.Lock()
	set := m[key]
	if set == nil {
		set = make(map[*waiter]struct{})
		m[key] = set
	}
	set[w] = struct{}{}
	h.n++
	h.mu.Unlock()
	return w, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.remove(m, key, w)
	}
}

// remove must be called with h.mu held.
func (h *hub) remove(m map[string]map[*waiter]struct{}, key string, w *waiter) {
	set := m[key]
	if _, ok := set[w]; !ok {
		return
	}
	delete(set, w)
	h.n--
	if len(set) == 0 {
		delete(m, key)
	}
}

// publish delivers the event whose head is hd to the waiters it satisfies
// and forgets them. full decodes the whole event; it is called once, and
// only when someone waits.
func (h *hub) publish(hd *topics.EventHead, full func() (topics.Event, error)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	type wake struct {
		m   map[string]map[*waiter]struct{}
		key string
		w   *waiter
	}
	var woken []wake
	for w := range h.commands[hd.CommandID] {
		woken = append(woken, wake{h.commands, hd.CommandID, w})
	}
	if hd.Outcome == topics.Accepted {
		for w := range h.orders[hd.OrderID] {
			if hd.Version >= w.min {
				woken = append(woken, wake{h.orders, hd.OrderID, w})
			}
		}
	}
	if len(woken) == 0 {
		return
	}
	ev, err := full()
	if err != nil {
		// Cannot happen: DecodeEventHead accepts only what DecodeEvent does
		// (FuzzEventHead). The waiters would time out.
		return
	}
	for _, k := range woken {
		k.w.ch <- ev
		h.remove(k.m, k.key, k.w)
	}
}

func (h *hub) waiting() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}
