package topics

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Range is the offsets [From, To) of one partition.
type Range struct{ From, To int64 }

// ReadCommitted calls fn with every committed data record of topic in the
// given partition ranges, in offset order per partition, and returns when
// every range has been read to its end.
//
// It reads uncommitted and filters itself rather than asking the broker for
// read_committed: a read_committed fetch skips aborted records, so a range
// that ends in one would never be seen to end. Here every offset is seen,
// and a transactional record is passed on only when its producer's commit
// marker follows it within the range, and only after every record before it
// is decided (offset order, as read_committed). A record whose marker lies
// beyond the range, or was never written, is dropped as not (yet)
// committed, and so are the records after it. So To should be a
// partition's end for ranges that may end inside a transaction. kopts
// connect to the cluster.
func ReadCommitted(ctx context.Context, kopts []kgo.Opt, topic string, ranges map[int32]Range, fn func(*kgo.Record)) error {
	start := make(map[int32]kgo.Offset, len(ranges))
	left := make(map[int32]int64, len(ranges))
	for p, r := range ranges {
		if r.To > r.From {
			start[p] = kgo.NewOffset().At(r.From)
			left[p] = r.To
		}
	}
	if len(start) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(kopts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return fmt.Errorf("read %s: %w", topic, err)
	}
	defer cl.Close()
	// Per partition, the records read and not yet passed on, in offset
	// order: a record is passed on once it and every record before it are
	// decided, as a read_committed consumer gets them. Transactions of
	// different producers interleave in a partition, and their markers
	// need not come in the order of their records.
	queued := map[int32]*readQueue{}
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read %s: %w", topic, err)
		}
		for _, fe := range fs.Errors() {
			if !kerr.IsRetriable(fe.Err) {
				return fmt.Errorf("read %s/%d: %w", topic, fe.Partition, fe.Err)
			}
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			if r.Offset == end-1 {
				delete(left, r.Partition)
			}
			q := queued[r.Partition]
			if q == nil {
				q = &readQueue{open: map[int64][]*queuedRecord{}}
				queued[r.Partition] = q
			}
			q.add(r, fn)
		})
	}
	return nil
}

// queuedRecord is a data record waiting for its transaction's outcome, or
// for the records before it.
type queuedRecord struct {
	r                  *kgo.Record
	decided, committed bool
}

// readQueue holds one partition's records until they can be passed on in
// offset order.
type readQueue struct {
	recs []*queuedRecord
	open map[int64][]*queuedRecord // undecided records per producer id
}

func (q *readQueue) add(r *kgo.Record, fn func(*kgo.Record)) {
	switch {
	case r.Attrs.IsControl():
		// A control record's key is version (int16) then type (int16):
		// 0 abort, 1 commit.
		commit := len(r.Key) >= 4 && r.Key[3] == 1
		for _, qr := range q.open[r.ProducerID] {
			qr.decided, qr.committed = true, commit
		}
		delete(q.open, r.ProducerID)
	case r.Attrs.IsTransactional():
		qr := &queuedRecord{r: r}
		q.recs = append(q.recs, qr)
		q.open[r.ProducerID] = append(q.open[r.ProducerID], qr)
	default:
		q.recs = append(q.recs, &queuedRecord{r: r, decided: true, committed: true})
	}
	i := 0
	for i < len(q.recs) && q.recs[i].decided {
		if q.recs[i].committed {
			fn(q.recs[i].r)
		}
		i++
	}
	q.recs = q.recs[i:]
}

// Ends returns the start and end offsets of every partition of topic.
func Ends(ctx context.Context, adm *kadm.Client, topic string) (map[int32]Range, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("start offsets of %s: %w", topic, err)
	}
	out := make(map[int32]Range)
	var ferr error
	ends.Each(func(o kadm.ListedOffset) {
		s, ok := starts.Lookup(topic, o.Partition)
		switch {
		case o.Err != nil:
			ferr = fmt.Errorf("end offset of %s/%d: %w", topic, o.Partition, o.Err)
		case !ok || s.Err != nil:
			ferr = fmt.Errorf("start offset of %s/%d unknown", topic, o.Partition)
		default:
			out[o.Partition] = Range{From: s.Offset, To: o.Offset}
		}
	})
	return out, ferr
}
