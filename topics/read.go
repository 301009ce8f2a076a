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
// marker follows it within the range; one whose marker lies beyond the
// range, or was never written, is dropped as not (yet) committed. So To
// should be a partition's end for ranges that may end inside a
// transaction. kopts connect to the cluster.
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
	// Open transactions' records, per partition and producer id.
	pending := map[int32]map[int64][]*kgo.Record{}
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
			open := pending[r.Partition]
			if open == nil {
				open = map[int64][]*kgo.Record{}
				pending[r.Partition] = open
			}
			switch {
			case r.Attrs.IsControl():
				// A control record's key is version (int16) then type
				// (int16): 0 abort, 1 commit.
				if len(r.Key) >= 4 && r.Key[3] == 1 {
					for _, c := range open[r.ProducerID] {
						fn(c)
					}
				}
				delete(open, r.ProducerID)
			case r.Attrs.IsTransactional():
				open[r.ProducerID] = append(open[r.ProducerID], r)
			default:
				fn(r)
			}
		})
	}
	return nil
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
