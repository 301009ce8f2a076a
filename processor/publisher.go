package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// errPublisherFenced means a newer owner of the partition took over its
// transactional id; this publisher must stop.
var errPublisherFenced = errors.New("publisher fenced by a newer owner of the partition")

// errWorkerDone means the worker stopped and everything it handed over was
// published.
var errWorkerDone = errors.New("worker done")

// publisher sends one partition's outbox to Kafka in seq order, each batch in
// one Kafka transaction, and never sends a seq twice (see the package doc).
type publisher struct {
	partition int32
	names     topics.Names
	txnID     string
	kopts     []kgo.Opt
	pool      *pgxpool.Pool
	adm       *kadm.Client
	log       *slog.Logger
	m         *metrics

	in   chan []store.Entry
	done chan struct{}
	err  error // why it stopped; read after done is closed

	cl   *kgo.Client
	last int64 // highest seq known to be in the topics
}

// run publishes until ctx ends or it is fenced.
func (pb *publisher) run(ctx context.Context) {
	defer close(pb.done)
	defer func() {
		if pb.cl != nil {
			pb.cl.Close()
		}
	}()
	backoff := newBackoff()
	for {
		err := pb.recover(ctx)
		if err == nil {
			err = pb.loop(ctx)
		}
		if ctx.Err() != nil || errors.Is(err, errWorkerDone) {
			return
		}
		if errors.Is(err, errPublisherFenced) {
			pb.err = err
			pb.log.Info("publisher stopped: partition taken over", "partition", pb.partition)
			return
		}
		pb.m.publishErrors.Inc()
		pb.log.Warn("publisher failed; recovering", "partition", pb.partition, "err", err)
		if pb.cl != nil {
			pb.cl.Close()
			pb.cl = nil
		}
		if !backoff.wait(ctx) {
			return
		}
	}
}

// loop publishes what the worker hands over. Entries at or below last were
// already published by a recovery and are skipped.
func (pb *publisher) loop(ctx context.Context) error {
	for {
		var entries []store.Entry
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-pb.in:
			if !ok {
				return errWorkerDone
			}
			entries = e
		}
		// Take whatever else is waiting: one transaction for all of it.
	more:
		for len(entries) < 20000 {
			select {
			case e, ok := <-pb.in:
				if !ok {
					break more
				}
				entries = append(entries, e...)
			default:
				break more
			}
		}
		if err := pb.publish(ctx, entries); err != nil {
			return err
		}
	}
}

// publish sends the entries with seq > last in one transaction. A gap
// between last and the first entry (a batch whose COMMIT succeeded but whose
// reply was lost, so the worker handed nothing over for it) is filled from
// PostgreSQL first: seqs are published in order and none is stepped over.
func (pb *publisher) publish(ctx context.Context, entries []store.Entry) error {
	i := 0
	for i < len(entries) && entries[i].Seq <= pb.last {
		i++
	}
	entries = entries[i:]
	if len(entries) == 0 {
		return nil
	}
	if first := entries[0].Seq; first > pb.last+1 {
		var missing []store.Entry
		for after := pb.last; after < first-1; {
			page, err := store.OutboxPage(ctx, pb.pool, pb.partition, after, first, 5000)
			if err != nil {
				return err
			}
			if len(page) == 0 {
				return fmt.Errorf("outbox of partition %d lacks seqs %d..%d", pb.partition, after+1, first-1)
			}
			missing = append(missing, page...)
			after = page[len(page)-1].Seq
		}
		entries = append(missing, entries...)
	}
	recs, err := records(pb.names, pb.partition, entries, pb.names.Commands)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := pb.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	// ProduceSync reports every record's error: a transaction must not
	// commit with one record refused and the others in.
	if err := pb.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		pb.abort(ctx)
		return classify(fmt.Errorf("produce: %w", err))
	}
	if err := pb.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		pb.abort(ctx)
		return classify(fmt.Errorf("commit transaction: %w", err))
	}
	pb.last = entries[len(entries)-1].Seq
	pb.m.published.Add(float64(len(recs)))
	pb.m.publishSeconds.Observe(time.Since(start).Seconds())
	pb.m.outboxLast.WithLabelValues(strconv.Itoa(int(pb.partition))).Set(float64(pb.last))
	return nil
}

func (pb *publisher) abort(ctx context.Context) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = pb.cl.AbortBufferedRecords(actx)
	_ = pb.cl.EndTransaction(actx, kgo.TryAbort)
}

func classify(err error) error {
	if errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
		return fmt.Errorf("%w: %w", errPublisherFenced, err)
	}
	return err
}

// recover makes this publisher the only one for its partition and publishes
// everything committed that the topics lack: it fences earlier producers of
// the transactional id (which also aborts their open transaction), reads the
// highest seq back from the events and DLQ partitions, then sends the rest
// from PostgreSQL.
func (pb *publisher) recover(ctx context.Context) error {
	start := time.Now()
	cl, err := kgo.NewClient(append(pb.kopts,
		kgo.TransactionalID(pb.txnID),
		kgo.TransactionTimeout(30*time.Second),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
	)...)
	if err != nil {
		return fmt.Errorf("producer client: %w", err)
	}
	pb.cl = cl
	if err := fence(ctx, cl, pb.txnID); err != nil {
		return err
	}
	last, err := lastSeq(ctx, pb.adm, pb.kopts, pb.partition, pb.names.Events, pb.names.DLQ)
	if err != nil {
		return err
	}
	pb.last = last
	pb.m.outboxLast.WithLabelValues(strconv.Itoa(int(pb.partition))).Set(float64(last))
	for {
		page, err := store.OutboxPage(ctx, pb.pool, pb.partition, pb.last, 1<<62, 5000)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		if err := pb.publish(ctx, page); err != nil {
			return err
		}
	}
	pb.log.Debug("publisher recovered", "partition", pb.partition, "last_seq", pb.last, "took", time.Since(start))
	return nil
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
