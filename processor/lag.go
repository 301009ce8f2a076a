package processor

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kadm"
)

// Lag returns the consumer lag of every partition of the commands topic.
// The processors keep their offsets in PostgreSQL (committed with the data),
// not in Kafka's group offsets, so Kafka's own lag tools show nothing
// useful: lag here is the partition's end offset minus the stored next
// offset. A partition no processor ever claimed lags by everything it holds.
//
// The end offset is the high watermark, so an upstream producer's open
// transaction counts as lag until it ends, and each transaction marker or
// aborted record after a partition's last command counts as one record that
// will never be processed (see docs/operations.md).
func Lag(ctx context.Context, pool *pgxpool.Pool, adm *kadm.Client, commands string) (map[int32]int64, error) {
	ends, err := topics.Ends(ctx, adm, commands)
	if err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, `SELECT topic_partition, next_offset FROM partition_offsets WHERE topic = $1`, commands)
	if err != nil {
		return nil, fmt.Errorf("read positions: %w", err)
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
		return nil, fmt.Errorf("read positions: %w", err)
	}
	out := make(map[int32]int64, len(ends))
	for p, r := range ends {
		out[p] = lag(r, next[p])
	}
	return out, nil
}

// updateLag sets the lag gauge of every commands partition.
func (m *Monitor) updateLag(ctx context.Context, adm *kadm.Client) error {
	lags, err := Lag(ctx, m.pool, adm, m.cfg.Names.Commands)
	if err != nil {
		return err
	}
	for p, n := range lags {
		m.lag.WithLabelValues(strconv.Itoa(int(p))).Set(float64(n))
	}
	return nil
}

// lag is how many records of r lie at or after next. Records already
// deleted by retention (next below the log start) cannot be processed any
// more, so they do not count.
func lag(r topics.Range, next int64) int64 {
	return max(r.To-max(next, r.From), 0)
}
