package processor

import (
	"time"

	"github.com/orderflow/orderflow/processor/store"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Batch is one partition's command records, decoded and ready to decide:
// what a worker hands to a committer. It is exported for the PostgreSQL
// baseline (scripts/bench/pgbatch), which runs the processor's own decisions
// through store.RunBatch without Kafka, so that it measures exactly the
// statements the processor runs.
type Batch struct {
	// OrderIDs and CommandIDs are what the batch's transaction reads.
	OrderIDs, CommandIDs []string
	items                []item
}

// NewBatch decodes records as a worker does.
func NewBatch(recs []*kgo.Record) Batch {
	items, orderIDs, commandIDs := prepare(recs)
	return Batch{OrderIDs: orderIDs, CommandIDs: commandIDs, items: items}
}

// Decide applies the state machine to the batch against a snapshot, as a
// committer does, and returns what to write.
func (b Batch) Decide(s store.Snapshot, now time.Time) store.Writes {
	return decide(b.items, s, now).writes
}
