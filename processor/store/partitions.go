package store

import (
	"context"
	"errors"
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

// RegisterPublisher records txnID as the producer that publishes o's
// partition and returns the one recorded before it ("" for none), which the
// caller must fence before publishing anything of the partition. ErrFenced
// means o lost its claim.
func RegisterPublisher(ctx context.Context, pool *pgxpool.Pool, o Owner, txnID string) (prev string, err error) {
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var p *string
		err := tx.QueryRow(ctx, `SELECT publisher FROM partition_offsets
			WHERE topic = $1 AND topic_partition = $2 AND owner = $3 FOR UPDATE`, o.Topic, o.Partition, o.Token).Scan(&p)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrFenced
		}
		if err != nil {
			return fmt.Errorf("register publisher of %s/%d: %w", o.Topic, o.Partition, err)
		}
		if p != nil {
			prev = *p
		}
		if _, err := tx.Exec(ctx, `UPDATE partition_offsets SET publisher = $4
			WHERE topic = $1 AND topic_partition = $2 AND owner = $3`, o.Topic, o.Partition, o.Token, txnID); err != nil {
			return fmt.Errorf("register publisher of %s/%d: %w", o.Topic, o.Partition, err)
		}
		return nil
	})
	return prev, err
}

// ReleasePublisher clears txnID's record for o's partition: its owner hands
// the partition over with everything published, so the next owner has no
// producer to fence. It changes nothing if o lost the claim meanwhile.
func ReleasePublisher(ctx context.Context, pool *pgxpool.Pool, o Owner, txnID string) error {
	_, err := pool.Exec(ctx, `UPDATE partition_offsets SET publisher = NULL
		WHERE topic = $1 AND topic_partition = $2 AND owner = $3 AND publisher = $4`, o.Topic, o.Partition, o.Token, txnID)
	if err != nil {
		return fmt.Errorf("release publisher of %s/%d: %w", o.Topic, o.Partition, err)
	}
	return nil
}
