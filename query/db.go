package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderflow/orderflow/processor/machine"
	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/topics"
)

// db is the read side of PostgreSQL: every statement the API runs. Each is a
// single indexed lookup or range scan (see the comments on the indexes in
// processor/store/migrations).
type db struct{ pool *pgxpool.Pool }

func (d db) order(ctx context.Context, id string) (snapshot, bool, error) {
	var s snapshot
	var state string
	err := d.pool.QueryRow(ctx,
		`SELECT order_id, state, version, created_at, updated_at FROM orders WHERE order_id = $1`, id).
		Scan(&s.OrderID, &state, &s.Version, &s.CreatedAt, &s.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, false, nil
	}
	if err != nil {
		return s, false, fmt.Errorf("read order: %w", err)
	}
	s.State = machine.State(state)
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	return s, true, nil
}

// orders lists up to limit orders after the order id after ("" for the
// first page), in state when state is not "", ordered by order_id. With a
// state it walks index orders_by_state; without, the primary key.
func (d db) orders(ctx context.Context, state, after string, limit int) ([]snapshot, error) {
	const cols = `SELECT order_id, state, version, created_at, updated_at FROM orders`
	var rows pgx.Rows
	var err error
	if state != "" {
		rows, err = d.pool.Query(ctx, cols+` WHERE state = $1 AND order_id > $2 ORDER BY order_id LIMIT $3`, state, after, limit)
	} else {
		rows, err = d.pool.Query(ctx, cols+` WHERE order_id > $1 ORDER BY order_id LIMIT $2`, after, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (snapshot, error) {
		var s snapshot
		var st string
		err := r.Scan(&s.OrderID, &st, &s.Version, &s.CreatedAt, &s.UpdatedAt)
		s.State, s.CreatedAt, s.UpdatedAt = machine.State(st), s.CreatedAt.UTC(), s.UpdatedAt.UTC()
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	return out, nil
}

// eventColumns are read in the order scanEvent expects; seq comes last and is
// only needed for history cursors.
const eventColumns = `t.event_id, t.command_id, t.order_id, t.action, t.outcome, t.from_state, t.to_state,
	t.version, t.reason, t.message, t.actor, t.metadata, t.requested_at, t.processed_at, t.seq`

// historyRow is an event with the seq that breaks processed_at ties.
type historyRow struct {
	topics.Event
	seq int64
}

func scanEvent(r pgx.CollectableRow) (historyRow, error) {
	var h historyRow
	e := &h.Event
	var meta []byte
	err := r.Scan(&e.EventID, &e.CommandID, &e.OrderID, &e.Action, &e.Outcome, &e.FromState, &e.ToState,
		&e.Version, &e.Reason, &e.Message, &e.Actor, &meta, &e.RequestedAt, &e.ProcessedAt, &h.seq)
	if err != nil {
		return h, err
	}
	// The processor publishes an empty string as null; a row may hold
	// either, and the event read back must equal the one on Kafka.
	for _, p := range []**string{&e.FromState, &e.ToState, &e.Reason, &e.Message, &e.Actor} {
		if *p != nil && **p == "" {
			*p = nil
		}
	}
	e.Metadata = compactJSON(meta)
	e.ProcessedAt = e.ProcessedAt.UTC()
	if e.RequestedAt != nil {
		t := e.RequestedAt.UTC()
		e.RequestedAt = &t
	}
	return h, nil
}

// compactJSON undoes jsonb's output spacing, so metadata read back from
// PostgreSQL has the same compact form as the event on Kafka. (jsonb may
// still order keys differently: compare metadata as JSON, not as bytes.)
func compactJSON(b []byte) json.RawMessage {
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return nil
	}
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return b
	}
	return buf.Bytes()
}

// history returns up to limit outcomes of order id, oldest first, after the
// cursor position when after is not nil. The row comparison walks index
// transitions_by_order (order_id, processed_at, seq).
func (d db) history(ctx context.Context, id string, after *historyCursor, limit int) ([]historyRow, error) {
	q := `SELECT ` + eventColumns + ` FROM transitions t WHERE t.order_id = $1`
	args := []any{id}
	if after != nil {
		q += ` AND (t.processed_at, t.seq) > ($2, $3)`
		args = append(args, after.ProcessedAt, after.Seq)
	}
	q += fmt.Sprintf(` ORDER BY t.processed_at, t.seq LIMIT %d`, limit)
	rows, err := d.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	return out, nil
}

// outcome returns the outcome of a command: commands points at its
// transition row by (topic_partition, seq); the command_id check guards
// against ever serving another command's row.
func (d db) outcome(ctx context.Context, commandID string) (topics.Event, bool, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+eventColumns+`
		FROM commands c JOIN transitions t
		  ON t.topic_partition = c.topic_partition AND t.seq = c.seq AND t.command_id = c.command_id
		WHERE c.command_id = $1`, commandID)
	if err != nil {
		return topics.Event{}, false, fmt.Errorf("read command outcome: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return topics.Event{}, false, fmt.Errorf("read command outcome: %w", err)
	}
	if len(out) == 0 {
		return topics.Event{}, false, nil
	}
	return out[0].Event, true, nil
}

// stats counts orders per state, from the counts batches keep: a few rows,
// however many orders there are.
func (d db) stats(ctx context.Context) (map[string]int64, error) {
	return store.OrderCounts(ctx, d.pool)
}

// ping checks that PostgreSQL answers a query, not just that a pooled
// connection exists.
func (d db) ping(ctx context.Context) error {
	var one int
	if err := d.pool.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}
