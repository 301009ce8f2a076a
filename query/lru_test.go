package query

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/orderflow/orderflow/processor/machine"
)

// keys lists the cached keys, most recently used first, walking the
// recency list both ways and checking that it agrees with the index.
func (c *lru[V]) keys(t testing.TB) []string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var fwd []string
	prev := int32(-1)
	for i := c.head; i >= 0; i = c.ents[i].next {
		e := &c.ents[i]
		if e.prev != prev {
			t.Fatalf("entry %d (%q): prev %d, want %d", i, e.key, e.prev, prev)
		}
		if j, ok := c.index[e.key]; !ok || j != i {
			t.Fatalf("entry %d (%q) indexed at %d, %v", i, e.key, j, ok)
		}
		if len(fwd) > len(c.ents) {
			t.Fatal("the recency list loops")
		}
		fwd = append(fwd, e.key)
		prev = i
	}
	if c.tail != prev {
		t.Fatalf("tail %d, want %d", c.tail, prev)
	}
	if len(fwd) != len(c.index) || len(fwd) != len(c.ents) || len(c.ents) > max(c.max, 0) {
		t.Fatalf("%d listed, %d indexed, %d entries, max %d", len(fwd), len(c.index), len(c.ents), c.max)
	}
	return fwd
}

// refLRU is the model: entries ordered by recency, most recent first.
type refLRU struct {
	max int
	ent []refEntry
}

type refEntry struct {
	key string
	val int
}

func (r *refLRU) find(key string) int {
	return slices.IndexFunc(r.ent, func(e refEntry) bool { return e.key == key })
}

func (r *refLRU) get(key string) (int, bool) {
	i := r.find(key)
	if i < 0 {
		return 0, false
	}
	e := r.ent[i]
	r.ent = slices.Insert(slices.Delete(r.ent, i, i+1), 0, e)
	return e.val, true
}

func (r *refLRU) update(key string, fn func(old int, found bool) (int, bool)) {
	if r.max <= 0 {
		return
	}
	i := r.find(key)
	var old int
	if i >= 0 {
		old = r.ent[i].val
	}
	v, ok := fn(old, i >= 0)
	if !ok {
		return
	}
	if i >= 0 {
		r.ent = slices.Delete(r.ent, i, i+1)
	}
	r.ent = slices.Insert(r.ent, 0, refEntry{key, v})
	if len(r.ent) > r.max {
		r.ent = r.ent[:r.max]
	}
}

func (r *refLRU) keys() []string {
	ks := []string{}
	for _, e := range r.ent {
		ks = append(ks, e.key)
	}
	return ks
}

// TestLRUModel runs random gets and updates, some of which fn refuses,
// against refLRU, comparing every answer, what fn is shown, the length and
// the whole recency order after each step.
func TestLRUModel(t *testing.T) {
	t.Parallel()
	for _, size := range []int{1, 2, 3, 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(uint64(size), 42))
			c, ref := newLRU[int](size), &refLRU{max: size}
			nkeys := 2*size + 2 // enough to evict, few enough to hit
			for step := range 20_000 {
				key := "k" + strconv.Itoa(rng.IntN(nkeys))
				if rng.IntN(3) == 0 {
					v, ok := c.get(key)
					rv, rok := ref.get(key)
					if v != rv || ok != rok {
						t.Fatalf("step %d: get(%s) = %d, %v; want %d, %v", step, key, v, ok, rv, rok)
					}
				} else {
					accept := rng.IntN(4) != 0
					type call struct {
						old   int
						found bool
					}
					var got, want []call
					c.update(key, func(old int, found bool) (int, bool) {
						got = append(got, call{old, found})
						return step, accept
					})
					ref.update(key, func(old int, found bool) (int, bool) {
						want = append(want, call{old, found})
						return step, accept
					})
					if !slices.Equal(got, want) {
						t.Fatalf("step %d: update(%s) called fn with %v, want %v", step, key, got, want)
					}
				}
				if n := c.len(); n != len(ref.ent) {
					t.Fatalf("step %d: len %d, want %d", step, n, len(ref.ent))
				}
				if ks, want := c.keys(t), ref.keys(); !slices.Equal(ks, want) {
					t.Fatalf("step %d: order %v, want %v", step, ks, want)
				}
			}
		})
	}
}

func TestLRUOff(t *testing.T) {
	t.Parallel()
	for _, size := range []int{0, -1} {
		c := newLRU[int](size)
		for range 3 {
			c.update("a", func(int, bool) (int, bool) {
				t.Fatal("fn called on a cache that holds nothing")
				return 1, true
			})
		}
		if v, ok := c.get("a"); ok || v != 0 {
			t.Fatalf("max %d: get = %d, %v", size, v, ok)
		}
		if c.len() != 0 || len(c.keys(t)) != 0 {
			t.Fatalf("max %d: len %d", size, c.len())
		}
	}
}

// TestLRUEvictedIsFreed: the arena must not keep an evicted value alive.
func TestLRUEvictedIsFreed(t *testing.T) {
	c := newLRU[*lazyEvent](2)
	put := func(key string, ev *lazyEvent) {
		c.update(key, func(*lazyEvent, bool) (*lazyEvent, bool) { return ev, true })
	}
	evicted := &lazyEvent{raw: make([]byte, 64)}
	w := weak.Make(evicted)
	put("a", evicted)
	evicted = nil
	put("b", &lazyEvent{})
	put("c", &lazyEvent{}) // evicts a
	runtime.GC()
	if w.Value() != nil {
		t.Fatal("the evicted value is still reachable")
	}
	if _, ok := c.get("a"); ok {
		t.Fatal("a is still cached")
	}
}

// TestLRUAllocs: a full cache allocates nothing to insert (evicting) or to
// read.
func TestLRUAllocs(t *testing.T) {
	const size = 1000
	c := newLRU[snapshot](size)
	keys := make([]string, 2*size)
	for i := range keys {
		keys[i] = "order-" + strconv.Itoa(i)
	}
	val := snap("x", 1)
	set := func(snapshot, bool) (snapshot, bool) { return val, true }
	i := 0
	next := func() string {
		k := keys[i]
		if i++; i == len(keys) {
			i = 0
		}
		return k
	}
	// Fill, then evict everything once, so that the map has settled.
	for range 2 * len(keys) {
		c.update(next(), set)
	}
	if n := testing.AllocsPerRun(5*size, func() { c.update(next(), set) }); n != 0 {
		t.Errorf("an insert into a full cache allocates %v times", n)
	}
	hit := keys[(i+len(keys)-1)%len(keys)] // the one just inserted
	if n := testing.AllocsPerRun(1000, func() {
		if _, ok := c.get(hit); !ok {
			t.Fatal("miss")
		}
	}); n != 0 {
		t.Errorf("a get allocates %v times", n)
	}
	if c.len() != size {
		t.Fatalf("len %d", c.len())
	}
}

// TestLRUConcurrent is for the race detector.
func TestLRUConcurrent(t *testing.T) {
	t.Parallel()
	c := newLRU[int](8)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for n := range 2000 {
				key := strconv.Itoa((g*7 + n) % 20)
				if n%3 == 0 {
					c.get(key)
					continue
				}
				c.update(key, func(old int, found bool) (int, bool) { return old + 1, n%5 != 0 })
			}
		})
	}
	wg.Wait()
	if ks := c.keys(t); len(ks) != 8 || c.len() != 8 {
		t.Fatalf("%d keys listed, len %d", len(ks), c.len())
	}
}

// BenchmarkLRUUpdate is the feed's steady state: a full order cache of the
// default size, every event inserting an order it does not hold and so
// evicting the least recently used one. Keys are built beforehand, as the
// feed's come decoded from the event.
//
//	go test -run '^$' -bench LRU -benchmem -count 5 ./query/
func BenchmarkLRUUpdate(b *testing.B) {
	const size = DefaultCacheSize
	c := newLRU[snapshot](size)
	// Twice the size, cycled: a key comes back size inserts after it was
	// evicted, so every update is an insert that evicts.
	keys := make([]string, 2*size)
	for i := range keys {
		keys[i] = "order-" + strconv.Itoa(i)
	}
	val := snapshot{State: machine.Paid, Version: 1, CreatedAt: time.Unix(1, 0), UpdatedAt: time.Unix(1, 0)}
	set := func(snapshot, bool) (snapshot, bool) { return val, true }
	// Fill and evict everything once: the feed runs for hours, so measure
	// a cache whose map has settled, not its first pass.
	for _, k := range keys {
		c.update(k, set)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.update(keys[i], set)
		if i++; i == len(keys) {
			i = 0
		}
	}
	b.StopTimer()
	if c.len() != size {
		b.Fatalf("len %d, want %d", c.len(), size)
	}
}
