package processor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// errPublisherFenced means the partition's new owner fenced this process's
// producer; the publisher starts again under a new transactional id.
var errPublisherFenced = errors.New("publisher fenced by a newer owner of a partition")

// maxHeld bounds the outbox entries the publisher holds in memory; past it,
// workers wait to hand over more, which slows consumption instead of memory
// growing without bound while Kafka is away.
const maxHeld = 50000

// maxTxnRecords bounds the records of one Kafka transaction.
const maxTxnRecords = 20000

// outboxPageSize is how many entries a catch-up reads from PostgreSQL at once.
const outboxPageSize = 5000

type pubKind int

const (
	pubAdd     pubKind = iota // a worker took over the partition
	pubEntries                // a committed batch's outbox entries
	pubRelease                // the worker stopped: hand the partition over
)

// pubMsg is what a worker tells the publisher. One channel carries all of a
// worker's messages, so the publisher sees them in the order they were sent.
type pubMsg struct {
	kind    pubKind
	owner   store.Owner
	entries []store.Entry
	done    chan struct{} // pubRelease: closed once handed over or dropped
}

// pubPart is the publisher's view of one partition. pending always holds
// the seqs right after last, without gaps: last+1, last+2, ...
type pubPart struct {
	owner   store.Owner
	ready   bool // registered under the current producer, the previous one fenced, last read back
	catchUp bool // PostgreSQL may hold committed seqs past what pending holds
	last    int64
	pending []store.Entry
	release chan struct{} // non-nil: hand over once everything is published
}

// high is the highest seq held or published.
func (pp *pubPart) high() int64 {
	if n := len(pp.pending); n > 0 {
		return pp.pending[n-1].Seq
	}
	return pp.last
}

// add appends entries that continue pending. Entries already held are
// skipped; entries past a gap (a batch whose COMMIT succeeded but whose
// reply was lost, so its worker handed nothing over) are left to the
// catch-up, which reads them, in order, from PostgreSQL.
func (pp *pubPart) add(es []store.Entry) {
	hi := pp.high()
	i := 0
	for i < len(es) && es[i].Seq <= hi {
		i++
	}
	es = es[i:]
	if len(es) == 0 {
		return
	}
	if pp.catchUp || es[0].Seq != hi+1 {
		pp.catchUp = true
		return
	}
	pp.pending = append(pp.pending, es...)
}

// publisher sends the outbox of every partition this process owns to Kafka:
// in seq order per partition, many partitions in one Kafka transaction of one
// transactional producer, and never a seq twice (see the package doc). One
// goroutine runs it; workers talk to it through in and drop.
type publisher struct {
	p    *Processor
	in   chan pubMsg
	done chan struct{}

	dropMu sync.Mutex
	drops  []store.Owner
	wake   chan struct{}

	parts map[int32]*pubPart
	held  int // entries in all pending lists
	// Two producers take turns, one transaction each: a transaction that
	// starts right after the previous one of the same producer waits
	// while Kafka writes that one's commit markers, one of the other
	// producer does not. txnID is the base of their two ids, .0 and .1;
	// it is what partitions record, and a fence covers both.
	cls    [2]*kgo.Client
	turn   int
	txnID  string
	gen    int
	fenced map[string]bool // other producers' ids this process fenced
}

func newPublisher(p *Processor) *publisher {
	return &publisher{
		p: p, in: make(chan pubMsg, 64), done: make(chan struct{}), wake: make(chan struct{}, 1),
		parts: make(map[int32]*pubPart), fenced: make(map[string]bool),
	}
}

// drop forgets a partition at once, published or not: its worker was
// abandoned, or handing it over took too long. The next owner fences this
// producer and publishes the rest from PostgreSQL.
func (pb *publisher) drop(o store.Owner) {
	pb.dropMu.Lock()
	pb.drops = append(pb.drops, o)
	pb.dropMu.Unlock()
	select {
	case pb.wake <- struct{}{}:
	default:
	}
}

// run publishes until ctx ends.
func (pb *publisher) run(ctx context.Context) {
	defer close(pb.done)
	defer pb.closeProducers()
	b := newBackoff()
	for {
		err := pb.step(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			b = newBackoff()
			continue
		}
		if errors.Is(err, errPublisherFenced) {
			pb.p.log.Info("publisher fenced by a partition's new owner; starting again under a new transactional id", "txn_id", pb.txnID)
		} else {
			pb.p.m.publishErrors.Inc()
			pb.p.log.Warn("publisher failed; recovering", "txn_id", pb.txnID, "err", err)
		}
		pb.reset()
		if !b.wait(ctx) {
			return
		}
	}
}

// reset abandons the producer. The next step makes a new one, under a new
// transactional id, and prepares every partition again: the last
// transaction's fate is unknown, so each reads back what reached the topics.
func (pb *publisher) reset() {
	pb.closeProducers()
	for _, pp := range pb.parts {
		pp.ready = false
	}
}

// step waits for work if there is none, takes in what else is waiting, and
// publishes it in one transaction.
func (pb *publisher) step(ctx context.Context) error {
	pb.applyDrops()
	if !pb.hasWork() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-pb.in:
			pb.handle(m)
		case <-pb.wake:
			pb.applyDrops()
		}
		// The workers of one committed transaction hand their entries
		// over one after another: yield once so that they are all in
		// before the transaction is cut, one Kafka transaction for them.
		runtime.Gosched()
	}
	for pb.held < maxHeld {
		select {
		case m := <-pb.in:
			pb.handle(m)
			continue
		default:
		}
		break
	}
	if !pb.hasWork() {
		return nil
	}
	if pb.cls[0] == nil {
		if err := pb.newProducers(ctx); err != nil {
			return err
		}
	}
	for _, pp := range pb.sorted() {
		if !pp.ready {
			if err := pb.prepare(ctx, pp); err != nil {
				return err
			}
		}
	}
	// prepare may have forgotten partitions: list them again, once.
	ps := pb.sorted()
	for _, pp := range ps {
		if err := pb.catchUp(ctx, pp); err != nil {
			return err
		}
	}
	if err := pb.publish(ctx, ps); err != nil {
		return err
	}
	return pb.handOver(ctx, ps)
}

func (pb *publisher) hasWork() bool {
	for _, pp := range pb.parts {
		if !pp.ready || pp.catchUp || len(pp.pending) > 0 || pp.release != nil {
			return true
		}
	}
	return false
}

// sorted lists the partitions in partition order, so that work is done in
// the same order every time.
func (pb *publisher) sorted() []*pubPart {
	ps := make([]*pubPart, 0, len(pb.parts))
	for _, pp := range pb.parts {
		ps = append(ps, pp)
	}
	slices.SortFunc(ps, func(a, b *pubPart) int { return cmp.Compare(a.owner.Partition, b.owner.Partition) })
	return ps
}

func (pb *publisher) handle(m pubMsg) {
	part := m.owner.Partition
	pp := pb.parts[part]
	switch m.kind {
	case pubAdd:
		if pp != nil {
			pb.forget(pp) // an earlier claim of ours; it is fenced by this one
		}
		pb.parts[part] = &pubPart{owner: m.owner, catchUp: true}
	case pubEntries:
		if pp == nil || pp.owner != m.owner {
			return // a claim that was dropped
		}
		n := len(pp.pending)
		pp.add(m.entries)
		pb.held += len(pp.pending) - n
	case pubRelease:
		if pp == nil || pp.owner != m.owner {
			close(m.done)
			return
		}
		pp.release = m.done
	}
}

func (pb *publisher) applyDrops() {
	pb.dropMu.Lock()
	drops := pb.drops
	pb.drops = nil
	pb.dropMu.Unlock()
	for _, o := range drops {
		if pp := pb.parts[o.Partition]; pp != nil && pp.owner == o {
			pb.forget(pp)
		}
	}
}

func (pb *publisher) forget(pp *pubPart) {
	pb.held -= len(pp.pending)
	delete(pb.parts, pp.owner.Partition)
	pb.p.m.outboxLast.DeleteLabelValues(strconv.Itoa(int(pp.owner.Partition)))
	if pp.release != nil {
		close(pp.release)
	}
}

// newProducers starts the two producers under transactional ids never
// used before and initialises them at once. Only then is their base id
// recorded for partitions (prepare), so a successor that fences the recorded
// ids always fences these producers' one and only initialisation; the
// client's own later re-inits pass the current epoch and fail once fenced.
func (pb *publisher) newProducers(ctx context.Context) error {
	pb.gen++
	cfg := pb.p.cfg
	pb.txnID = fmt.Sprintf("%s.%s.%s.%d", cfg.Group, cfg.Names.Events, pb.p.id, pb.gen)
	for i := range pb.cls {
		id := producerID(pb.txnID, i)
		cl, err := kgo.NewClient(append(cfg.KafkaOpts,
			kgo.TransactionalID(id),
			kgo.TransactionTimeout(30*time.Second),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerLinger(0),
			// CONCURRENT_TRANSACTIONS is retried after 20 ms by default,
			// most of a transaction's latency here.
			kgo.ConcurrentTransactionsBackoff(2*time.Millisecond),
		)...)
		if err != nil {
			pb.closeProducers()
			return fmt.Errorf("producer client: %w", err)
		}
		pb.cls[i] = cl
		if _, _, err := cl.ProducerID(ctx); err != nil {
			pb.closeProducers()
			return fmt.Errorf("initialise producer %s: %w", id, err)
		}
	}
	pb.turn = 0
	return nil
}

// producerID is the transactional id of producer i of a publisher whose
// base id is base.
func producerID(base string, i int) string { return base + "." + strconv.Itoa(i) }

func (pb *publisher) closeProducers() {
	for i, cl := range pb.cls {
		if cl != nil {
			cl.Close()
			pb.cls[i] = nil
		}
	}
}

// prepare makes this producer the only one for pp's partition: it records
// the producer's transactional id in PostgreSQL, fences the one recorded
// before (which also aborts its open transaction), then reads the highest seq
// back from the events and DLQ partitions. A partition whose claim was lost
// is forgotten.
func (pb *publisher) prepare(ctx context.Context, pp *pubPart) error {
	prev, err := store.RegisterPublisher(ctx, pb.p.pool, pp.owner, pb.txnID)
	if errors.Is(err, store.ErrFenced) {
		pb.forget(pp)
		return nil
	}
	if err != nil {
		return err
	}
	if prev != "" && prev != pb.txnID && !pb.fenced[prev] {
		for i := range pb.cls {
			if err := fence(ctx, pb.cls[0], producerID(prev, i)); err != nil {
				return err
			}
		}
		pb.fenced[prev] = true
	}
	names := pb.p.cfg.Names
	last, err := lastSeq(ctx, pb.p.adm, pb.p.cfg.KafkaOpts, pp.owner.Partition, names.Events, names.DLQ)
	if err != nil {
		return err
	}
	// What reached the topics may be more than what this process knew
	// had (a commit whose reply was lost), never less.
	i := 0
	for i < len(pp.pending) && pp.pending[i].Seq <= last {
		i++
	}
	pb.held -= i
	pp.pending = pp.pending[i:] // still gap-free: pending held last+1, last+2, ...
	pp.last = max(pp.last, last)
	pp.ready, pp.catchUp = true, true
	pb.p.m.outboxLast.WithLabelValues(strconv.Itoa(int(pp.owner.Partition))).Set(float64(pp.last))
	return nil
}

// catchUp reads committed entries past what pp holds from PostgreSQL, a page
// at a time: after a takeover, a reset, or a gap.
func (pb *publisher) catchUp(ctx context.Context, pp *pubPart) error {
	if !pp.catchUp || !pp.ready || len(pp.pending) >= outboxPageSize {
		return nil
	}
	hi := pp.high()
	page, err := store.OutboxPage(ctx, pb.p.pool, pp.owner.Partition, hi, 1<<62, outboxPageSize)
	if err != nil {
		return err
	}
	if len(page) > 0 && page[0].Seq != hi+1 {
		return fmt.Errorf("outbox of partition %d lacks seqs %d..%d", pp.owner.Partition, hi+1, page[0].Seq-1)
	}
	pp.pending = append(pp.pending, page...)
	pb.held += len(page)
	pp.catchUp = len(page) == outboxPageSize
	return nil
}

// publish sends what the ready partitions hold in one Kafka transaction.
func (pb *publisher) publish(ctx context.Context, ps []*pubPart) error {
	type took struct {
		pp *pubPart
		n  int
	}
	var (
		recs  []*kgo.Record
		taken []took
	)
	names := pb.p.cfg.Names
	for _, pp := range ps {
		if !pp.ready || len(pp.pending) == 0 || len(recs) >= maxTxnRecords {
			continue
		}
		n := min(len(pp.pending), maxTxnRecords-len(recs))
		rs, err := records(names, pp.owner.Partition, pp.pending[:n], names.Commands)
		if err != nil {
			return err
		}
		recs = append(recs, rs...)
		taken = append(taken, took{pp, n})
	}
	if len(recs) == 0 {
		return nil
	}
	start := time.Now()
	// Transactions never overlap: the next starts once this one is
	// committed, so each partition's records stay in seq order.
	cl := pb.cls[pb.turn]
	pb.turn = 1 - pb.turn
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	// ProduceSync reports every record's error: a transaction must not
	// commit with one record refused and the others in.
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		abort(ctx, cl)
		return classify(fmt.Errorf("produce: %w", err))
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		abort(ctx, cl)
		return classify(fmt.Errorf("commit transaction: %w", err))
	}
	for _, t := range taken {
		t.pp.last = t.pp.pending[t.n-1].Seq
		t.pp.pending = t.pp.pending[t.n:]
		pb.held -= t.n
		pb.p.m.outboxLast.WithLabelValues(strconv.Itoa(int(t.pp.owner.Partition))).Set(float64(t.pp.last))
	}
	pb.p.m.published.Add(float64(len(recs)))
	pb.p.m.publishSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// handOver releases the partitions whose workers stopped once everything
// they committed is out: clearing the record of this producer spares the
// next owner a fence, which would also abort this process's transaction for
// the partitions it keeps.
func (pb *publisher) handOver(ctx context.Context, ps []*pubPart) error {
	for _, pp := range ps {
		if pp.release == nil || !pp.ready || pp.catchUp || len(pp.pending) > 0 {
			continue
		}
		if err := store.ReleasePublisher(ctx, pb.p.pool, pp.owner, pb.txnID); err != nil {
			return err
		}
		pb.forget(pp)
	}
	return nil
}

func abort(ctx context.Context, cl *kgo.Client) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = cl.AbortBufferedRecords(actx)
	_ = cl.EndTransaction(actx, kgo.TryAbort)
}

func classify(err error) error {
	if errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
		return fmt.Errorf("%w: %w", errPublisherFenced, err)
	}
	return err
}

// fence initialises the transactional id's producer, which bumps its epoch:
// a producer of an earlier owner can no longer write, and its open
// transaction is aborted by the coordinator.
func fence(ctx context.Context, cl *kgo.Client, txnID string) error {
	b := newBackoff()
	for {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID = &txnID
		req.TransactionTimeoutMillis = 30000
		req.ProducerID, req.ProducerEpoch = -1, -1
		resp, err := req.RequestWith(ctx, cl)
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		if err == nil {
			return nil
		}
		if !kerr.IsRetriable(err) && !errors.Is(err, kerr.ConcurrentTransactions) {
			return fmt.Errorf("fence transactional id %s: %w", txnID, err)
		}
		if !b.wait(ctx) {
			return fmt.Errorf("fence transactional id %s: %w", txnID, ctx.Err())
		}
	}
}

// lastSeq returns the highest outbox seq already in partition p of the given
// topics (0 when none). It reads committed records backwards from the end in
// growing windows until it finds one.
func lastSeq(ctx context.Context, adm *kadm.Client, kopts []kgo.Opt, p int32, ts ...string) (int64, error) {
	var best int64
	for _, t := range ts {
		ends, err := topics.Ends(ctx, adm, t)
		if err != nil {
			return 0, err
		}
		r, ok := ends[p]
		if !ok {
			return 0, fmt.Errorf("partition %s/%d not found", t, p)
		}
		// Read from ever earlier points to the end (never to a point in
		// the middle, where a transaction's marker could lie beyond it)
		// until a committed record turns up.
		for window := int64(64); ; window *= 8 {
			lo := max(r.From, r.To-window)
			var (
				seq   int64
				found bool
			)
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := topics.ReadCommitted(rctx, kopts, t, map[int32]topics.Range{p: {From: lo, To: r.To}}, func(rec *kgo.Record) {
				if v, ok := seqOf(rec); ok {
					seq, found = max(seq, v), true
				}
			})
			cancel()
			if err != nil {
				return 0, err
			}
			if found {
				best = max(best, seq)
			}
			if found || lo == r.From {
				break
			}
		}
	}
	return best, nil
}

// seqOf returns the outbox seq header of an event or DLQ record.
func seqOf(r *kgo.Record) (int64, bool) {
	for _, h := range r.Headers {
		if h.Key == topics.HeaderSeq {
			v, err := strconv.ParseInt(string(h.Value), 10, 64)
			return v, err == nil
		}
	}
	return 0, false
}
