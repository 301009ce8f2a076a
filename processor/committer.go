package processor

import (
	"context"
	"runtime"
	"time"

	"github.com/orderflow/orderflow/processor/store"
)

// A committer runs the batches that workers hand it. It takes every batch
// waiting at that moment, of any partitions, into ONE PostgreSQL
// transaction: at low load a dozen quiet partitions then cost one commit
// (one WAL flush) instead of a dozen, and at high load batches are large
// anyway. A few committers run at once so that one transaction's commit
// overlaps the next one's reads and writes.

// commitReq is one partition's batch waiting for a committer.
type commitReq struct {
	w     *worker
	items []item
	part  store.Part
	done  chan commitRes // buffered: the committer never waits for the worker
}

type commitRes struct {
	d   decision
	err error
}

// committers is how many transactions may be in flight at once.
const committers = 2

// runCommitter serves p.commits until ctx ends.
func (p *Processor) runCommitter(ctx context.Context) {
	for {
		reqs := p.gather(ctx)
		if reqs == nil {
			return
		}
		p.commitAll(ctx, reqs)
	}
}

// gather waits for a batch and takes with it every batch waiting then, up
// to MaxBatch commands. One committer gathers at a time: were both waiting,
// the batches of one fetch would go one to each, two transactions where
// one does. Before taking the waiting batches it yields once, so that the
// workers the same fetch woke can hand theirs over.
func (p *Processor) gather(ctx context.Context) []*commitReq {
	p.gathering.Lock()
	defer p.gathering.Unlock()
	var first *commitReq
	select {
	case <-ctx.Done():
		return nil
	case first = <-p.commits:
	}
	runtime.Gosched()
	reqs, n := []*commitReq{first}, len(first.items)
	for n < p.cfg.MaxBatch {
		select {
		case r := <-p.commits:
			reqs = append(reqs, r)
			n += len(r.items)
		default:
			return reqs
		}
	}
	return reqs
}

// commitAll runs reqs in one transaction and answers each of them.
func (p *Processor) commitAll(ctx context.Context, reqs []*commitReq) {
	parts := make([]store.Part, len(reqs))
	for i, r := range reqs {
		parts[i] = r.part
	}
	ds := make([]decision, len(reqs))
	now := store.Now()
	start := time.Now()
	fenced, err := store.RunBatches(ctx, p.pool, parts, func(i int, s store.Snapshot) (store.Writes, error) {
		r := reqs[i]
		if s.Position.NextOffset != r.w.pos.NextOffset {
			// Our own position row moved under us: only a second claim
			// by this owner token could do it.
			p.log.Warn("position moved", "partition", r.part.Owner.Partition, "want", r.w.pos.NextOffset, "have", s.Position.NextOffset)
		}
		ds[i] = decide(r.items, s, now)
		return ds[i].writes, nil
	})
	if err == nil {
		p.m.txSeconds.Observe(time.Since(start).Seconds())
	}
	for i, r := range reqs {
		switch {
		case err != nil:
			r.done <- commitRes{err: err}
		case fenced[i]:
			r.done <- commitRes{err: store.ErrFenced}
		default:
			r.done <- commitRes{d: ds[i]}
		}
	}
}

// commitShared hands a batch to the committers and waits for its result.
// When ctx ends first the batch may still commit; that is safe, as the
// owner token fences it once the partition has a new owner, and whoever
// publishes the partition next reads its outbox from PostgreSQL.
func (w *worker) commitShared(items []item, part store.Part) (decision, error) {
	r := w.request(items, part)
	select {
	case w.p.commits <- r:
	case <-w.ctx.Done():
		return decision{}, w.ctx.Err()
	}
	select {
	case res := <-r.done:
		return res.d, res.err
	case <-w.ctx.Done():
		return decision{}, w.ctx.Err()
	}
}

// commitAlone runs the batch in a transaction of its own, on the worker's
// goroutine: the retry after a shared transaction failed.
func (w *worker) commitAlone(items []item, part store.Part) (decision, error) {
	r := w.request(items, part)
	w.p.commitAll(w.ctx, []*commitReq{r})
	res := <-r.done
	return res.d, res.err
}

func (w *worker) request(items []item, part store.Part) *commitReq {
	return &commitReq{w: w, items: items, part: part, done: make(chan commitRes, 1)}
}
