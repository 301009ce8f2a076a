package processor

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/orderflow/orderflow/processor/store"
	"github.com/twmb/franz-go/pkg/kgo"
)

// worker owns one command partition: it is the only goroutine anywhere that
// decides commands of the partition's orders, so deciding in offset order is
// enough for per-order order.
type worker struct {
	p     *Processor
	owner store.Owner
	pos   store.Position

	in     chan []*kgo.Record
	quit   chan struct{} // closed: finish the batch in hand, then stop
	ctx    context.Context
	cancel context.CancelFunc // abandon the batch in hand now
	done   chan struct{}

	pauseMu sync.Mutex // orders pause and resume calls with the flag
	paused  bool
}

// queueLen is how many fetches may wait for a worker; past half of it the
// partition's fetching is paused so that one slow partition cannot block
// the poll loop that feeds the others.
const queueLen = 64

func (w *worker) run() {
	defer close(w.done)
	pub := w.p.pub
	select {
	case pub.in <- pubMsg{kind: pubAdd, owner: w.owner}:
	case <-w.ctx.Done():
		return
	}
	defer w.handOver()
	var pending []*kgo.Record
	for {
		if len(pending) == 0 {
			select {
			case <-w.quit:
				return
			case <-w.ctx.Done():
				return
			case recs := <-w.in:
				pending = recs
			}
		}
		// A batch is whatever has arrived, up to MaxBatch: one command at
		// low load, so latency stays low; many at high load, so one
		// transaction carries them.
	gather:
		for len(pending) < w.p.cfg.MaxBatch {
			select {
			case recs := <-w.in:
				pending = append(pending, recs...)
			default:
				break gather
			}
		}
		w.resumeIfDrained()
		n := min(len(pending), w.p.cfg.MaxBatch)
		if !w.commit(pending[:n]) {
			return
		}
		pending = pending[n:]
	}
}

// commit runs one batch until it commits; false when the worker must stop
// (fenced, or told to stop). The batch goes to the shared committers; after
// a failure it is retried in a transaction of its own, so that a batch that
// PostgreSQL refuses holds up its own partition only.
func (w *worker) commit(recs []*kgo.Record) bool {
	items, orderIDs, commandIDs := prepare(recs)
	part := store.Part{Owner: w.owner, OrderIDs: orderIDs, CommandIDs: commandIDs}
	b := newBackoff()
	alone := false
	for {
		var (
			d   decision
			err error
		)
		if alone {
			d, err = w.commitAlone(items, part)
		} else {
			d, err = w.commitShared(items, part)
		}
		if err == nil {
			w.committed(items, d)
			select {
			case w.p.pub.in <- pubMsg{kind: pubEntries, owner: w.owner, entries: d.entries}:
			case <-w.ctx.Done():
				return false // committed; the next owner publishes it
			}
			return true
		}
		switch {
		case errors.Is(err, store.ErrFenced):
			w.p.m.batchErrors.WithLabelValues("fenced").Inc()
			w.p.log.Info("partition claimed by another member; stopping its worker", "partition", w.owner.Partition)
			return false
		case w.ctx.Err() != nil:
			return false
		case isNoPartition(err):
			// The month has no transitions partition yet (the clock moved
			// past the ones made ahead): make them and retry at once.
			if perr := store.EnsurePartitions(w.ctx, w.p.pool, time.Now()); perr != nil {
				w.p.log.Warn("create partitions", "err", perr)
			}
		default:
			w.p.m.batchErrors.WithLabelValues("retried").Inc()
			w.p.log.Warn("batch failed; retrying", "partition", w.owner.Partition, "records", len(recs), "err", err)
		}
		alone = true
		if !b.wait(w.ctx) {
			return false
		}
	}
}

// handOver waits, within the shutdown grace, until the publisher has sent
// everything the worker committed and released the partition. An abandoned
// worker does not wait: its partition is someone else's already.
func (w *worker) handOver() {
	pub := w.p.pub
	if w.ctx.Err() != nil {
		pub.drop(w.owner)
		return
	}
	t := time.NewTimer(w.p.cfg.ShutdownGrace)
	defer t.Stop()
	done := make(chan struct{})
	select {
	case pub.in <- pubMsg{kind: pubRelease, owner: w.owner, done: done}:
	case <-t.C:
		pub.drop(w.owner)
		return
	case <-w.ctx.Done():
		pub.drop(w.owner)
		return
	}
	select {
	case <-done:
	case <-t.C:
		pub.drop(w.owner)
	case <-w.ctx.Done():
		pub.drop(w.owner)
	}
}

func (w *worker) committed(items []item, d decision) {
	w.pos = d.writes.Position
	m := w.p.m
	part := strconv.Itoa(int(w.owner.Partition))
	m.nextOffset.WithLabelValues(part).Set(float64(w.pos.NextOffset))
	m.committedSeq.WithLabelValues(part).Set(float64(w.pos.NextSeq - 1))
	m.batchSize.Observe(float64(len(items)))
	m.deadLetters.Add(float64(len(d.writes.DeadLetters)))
	now := time.Now()
	for i := range d.writes.Outcomes {
		o := &d.writes.Outcomes[i]
		m.commands.WithLabelValues(o.Action, o.Outcome, o.Reason).Inc()
		if o.RequestedAt != nil {
			m.latency.Observe(now.Sub(*o.RequestedAt).Seconds())
		}
	}
	if dup := len(items) - len(d.writes.DeadLetters) - countValid(d.writes.Outcomes); dup > 0 {
		m.duplicates.Add(float64(dup))
	}
}

// countValid counts outcomes of decodable commands (rejected invalid
// commands also have a dead letter).
func countValid(os []store.Outcome) int {
	n := 0
	for i := range os {
		if os[i].Reason != "invalid_command" {
			n++
		}
	}
	return n
}

func (w *worker) resumeIfDrained() {
	w.pauseMu.Lock()
	defer w.pauseMu.Unlock()
	if w.paused && len(w.in) == 0 {
		w.paused = false
		w.p.cl.ResumeFetchPartitions(map[string][]int32{w.owner.Topic: {w.owner.Partition}})
	}
}

// enqueue hands a fetch to the worker; the poll loop calls it.
func (w *worker) enqueue(recs []*kgo.Record) {
	w.pauseMu.Lock()
	if !w.paused && len(w.in) >= queueLen/2 {
		w.paused = true
		w.p.cl.PauseFetchPartitions(map[string][]int32{w.owner.Topic: {w.owner.Partition}})
	}
	w.pauseMu.Unlock()
	select {
	case w.in <- recs:
	case <-w.done:
	}
}

func isNoPartition(err error) bool {
	var pgErr *pgconn.PgError
	// 23514: "no partition of relation found for row".
	return errors.As(err, &pgErr) && pgErr.Code == "23514"
}
