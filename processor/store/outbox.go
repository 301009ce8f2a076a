package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Entry is one committed outbox record of a partition: an outcome to publish
// on the events topic or a dead letter for the DLQ, in Seq order.
type Entry struct {
	Seq        int64
	Outcome    *Outcome
	DeadLetter *DeadLetter
}

// OutboxPage returns up to limit entries of partition with after < seq <
// before, in seq order. A publisher that restarts reads what it has not yet
// published from here; in steady state it publishes from memory instead.
func OutboxPage(ctx context.Context, pool *pgxpool.Pool, partition int32, after, before int64, limit int) ([]Entry, error) {
	// Both reads must see one snapshot: under READ COMMITTED each statement
	// takes its own, and a batch committing between them would leave a gap
	// that the publisher would step over for good.
	var entries []Entry
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		entries, err = outboxPage(ctx, tx, partition, after, before, limit)
		return err
	})
	return entries, err
}

func outboxPage(ctx context.Context, tx pgx.Tx, partition int32, after, before int64, limit int) ([]Entry, error) {
	b := &pgx.Batch{}
	b.Queue(noSeqScans)
	b.Queue(`SELECT seq, source_offset, event_id, command_id, order_id, action, outcome,
			coalesce(from_state, ''), coalesce(to_state, ''), version, coalesce(reason, ''), coalesce(message, ''),
			coalesce(actor, ''), coalesce(command_reason, ''), metadata::text, requested_at, processed_at
		FROM transitions WHERE topic_partition = $1 AND seq > $2 AND seq < $3 ORDER BY seq LIMIT $4`,
		partition, after, before, limit)
	b.Queue(`SELECT seq, source_offset, record_key, record_value, error, processed_at
		FROM dead_letters WHERE topic_partition = $1 AND seq > $2 AND seq < $3 ORDER BY seq LIMIT $4`,
		partition, after, before, limit)
	res := tx.SendBatch(ctx, b)
	defer res.Close()

	if _, err := res.Exec(); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	rows, err := res.Query()
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	var outs []Outcome
	for rows.Next() {
		var (
			o    Outcome
			meta *string
		)
		if err := rows.Scan(&o.Seq, &o.Offset, &o.EventID, &o.CommandID, &o.OrderID, &o.Action, &o.Outcome,
			&o.FromState, &o.ToState, &o.Version, &o.Reason, &o.Message, &o.Actor, &o.CommandReason,
			&meta, &o.RequestedAt, &o.ProcessedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		if meta != nil {
			o.Metadata = []byte(*meta)
		}
		outs = append(outs, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	rows, err = res.Query()
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	dls, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeadLetter, error) {
		var d DeadLetter
		err := r.Scan(&d.Seq, &d.Offset, &d.Key, &d.Value, &d.Error, &d.ProcessedAt)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	// Merge the two seq-ordered lists, and stop at the lower of the two last
	// seqs when either list was cut by limit, so that no gap is returned.
	entries := make([]Entry, 0, len(outs)+len(dls))
	cut := int64(-1)
	if len(outs) == limit {
		cut = outs[len(outs)-1].Seq
	}
	if len(dls) == limit && (cut < 0 || dls[len(dls)-1].Seq < cut) {
		cut = dls[len(dls)-1].Seq
	}
	i, j := 0, 0
	for i < len(outs) || j < len(dls) {
		var e Entry
		if j >= len(dls) || (i < len(outs) && outs[i].Seq < dls[j].Seq) {
			e = Entry{Seq: outs[i].Seq, Outcome: &outs[i]}
			i++
		} else {
			e = Entry{Seq: dls[j].Seq, DeadLetter: &dls[j]}
			j++
		}
		if cut >= 0 && e.Seq > cut {
			break
		}
		entries = append(entries, e)
	}
	return entries, res.Close()
}

// Now is the processing time of a batch: UTC and cut to the microsecond that
// PostgreSQL keeps, so that an event built from memory and one rebuilt from
// the row are the same.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
