package processor

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kadm"
)

// updateLag sets the consumer lag of every commands partition. The
// processors keep their offsets in PostgreSQL (committed with the data), not
// in Kafka's group offsets, so Kafka's own lag tools show nothing useful:
// lag here is the partition's end offset minus the stored next offset. A
// partition no processor ever claimed lags by everything it holds.
//
// The end offset is the high watermark, so an upstream producer's open
// transaction counts as lag until it ends, and each transaction marker or
// aborted record after a partition's last command counts as one record that
// will never be processed (see docs/operations.md).
func (m *Monitor) updateLag(ctx context.Context, adm *kadm.Client) error {
	ends, err := topics.Ends(ctx, adm, m.cfg.Names.Commands)
	if err != nil {
		return err
	}
	rows, err := m.pool.Query(ctx, `SELECT topic_partition, next_offset FROM partition_offsets WHERE topic = $1`, m.cfg.Names.Commands)
	if err != nil {
		return fmt.Errorf("read positions: %w", err)
	}
	next := map[int32]int64{}
	var (
		part   int32
		offset int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&part, &offset}, func() error {
		next[part] = offset
		return nil
	}); err != nil {
		return fmt.Errorf("read positions: %w", err)
	}
	for p, r := range ends {
		m.lag.WithLabelValues(strconv.Itoa(int(p))).Set(float64(lag(r, next[p])))
	}
	return nil
}

// lag is how many records of r lie at or after next. Records already
// deleted by retention (next below the log start) cannot be processed any
// more, so they do not count.
func lag(r topics.Range, next int64) int64 {
	return max(r.To-max(next, r.From), 0)
}
