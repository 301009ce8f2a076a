package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// MonthsAhead is how many months of transitions partitions exist beyond the
// current one. The processor re-ensures them daily and whenever an insert
// finds no partition, so a long-running process never writes into a gap.
const MonthsAhead = 2

// EnsurePartitions creates the monthly partitions of transitions from the
// month of from (minus one, for clocks that lag) through MonthsAhead months
// after it. It is idempotent.
func EnsurePartitions(ctx context.Context, pool *pgxpool.Pool, from time.Time) error {
	from = from.UTC()
	start := time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -1, 0)
	// IF NOT EXISTS is not safe against a concurrent creator (two
	// processors starting together): serialise them with the migration lock.
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return fmt.Errorf("create partitions: take lock: %w", err)
		}
		for i := 0; i <= MonthsAhead+1; i++ {
			lo := start.AddDate(0, i, 0)
			hi := lo.AddDate(0, 1, 0)
			name := fmt.Sprintf("transitions_%04d_%02d", lo.Year(), int(lo.Month()))
			sql := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF transitions FOR VALUES FROM ('%s') TO ('%s')`,
				name, lo.Format(time.RFC3339), hi.Format(time.RFC3339))
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("create partition %s: %w", name, err)
			}
		}
		return nil
	})
}
