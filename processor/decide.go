package processor

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/orderflow/orderflow/processor/machine"
	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kgo"
)

// item is one command record, decoded before the batch's transaction starts
// so that no JSON work happens while rows are locked.
type item struct {
	offset int64
	key    []byte
	value  []byte
	cmd    topics.Command
	action machine.Action
	// err is set when the record is invalid; commandID and orderID are then
	// what could still be read, or empty.
	err                error
	commandID, orderID string
}

// prepare decodes records and lists the order and command ids the batch
// must read.
func prepare(recs []*kgo.Record) (items []item, orderIDs, commandIDs []string) {
	items = make([]item, len(recs))
	orders := make(map[string]struct{}, len(recs))
	for i, r := range recs {
		it := item{offset: r.Offset, key: r.Key, value: r.Value}
		cmd, err := topics.DecodeCommand(r.Key, r.Value)
		if err == nil {
			it.action, err = machine.ParseAction(cmd.Action)
			if err != nil {
				err = fmt.Errorf("%w: %w", topics.ErrInvalidCommand, err)
			}
		}
		if err != nil {
			it.err = err
			it.commandID, it.orderID, _ = topics.Identify(r.Value)
			it.cmd.Action = cmd.Action
		} else {
			it.cmd, it.commandID, it.orderID = normalise(cmd), cmd.CommandID, cmd.OrderID
		}
		if it.commandID != "" {
			commandIDs = append(commandIDs, it.commandID)
			if _, ok := orders[it.orderID]; !ok {
				orders[it.orderID] = struct{}{}
				orderIDs = append(orderIDs, it.orderID)
			}
		}
		items[i] = it
	}
	return items, orderIDs, commandIDs
}

// normalise cuts what PostgreSQL would change on the way in, so an event
// published from memory equals one rebuilt from its row later.
func normalise(c topics.Command) topics.Command {
	if c.RequestedAt != nil {
		t := c.RequestedAt.UTC().Truncate(time.Microsecond)
		c.RequestedAt = &t
	}
	if string(c.Metadata) == "null" {
		c.Metadata = nil
	}
	return c
}

// orderAcc is an order as the batch has changed it so far.
type orderAcc struct {
	state     machine.State
	version   int64
	read      int64         // version in PostgreSQL before the batch; 0 = absent
	readState machine.State // state in PostgreSQL before the batch
	createdAt time.Time
	changed   bool
}

// decision is a batch's writes plus what to tell the world after commit.
type decision struct {
	writes  store.Writes
	entries []store.Entry // outbox, in seq order
}

// decide applies the state machine to items in offset order against snap.
// It is a pure function: the same records and snapshot give the same
// decision, which is what makes a replay after a crash land on the same
// result.
func decide(items []item, snap store.Snapshot, now time.Time) decision {
	var d decision
	pos := snap.Position
	orders := make(map[string]*orderAcc, len(snap.Orders))
	get := func(id string) *orderAcc {
		if a, ok := orders[id]; ok {
			return a
		}
		a := &orderAcc{}
		if s, ok := snap.Orders[id]; ok {
			a.state, a.version, a.read, a.createdAt = machine.State(s.State), s.Version, s.Version, s.CreatedAt
			a.readState = a.state
		}
		orders[id] = a
		return a
	}
	// Most items become one outcome each: sizing for them up front saves
	// the slice from being copied as it grows (outcomes are large).
	d.writes.Outcomes = make([]store.Outcome, 0, len(items))
	seen := snap.Seen
	var touched []string
	for i := range items {
		it := &items[i]
		if it.offset < pos.NextOffset {
			continue // delivered again after a seek; already committed
		}
		pos.NextOffset = it.offset + 1
		if it.err != nil {
			d.writes.DeadLetters = append(d.writes.DeadLetters, store.DeadLetter{
				Seq: pos.NextSeq, Offset: it.offset, Key: it.key, Value: it.value,
				Error: storable(it.err.Error()), ProcessedAt: now,
			})
			d.entries = append(d.entries, store.Entry{Seq: pos.NextSeq, DeadLetter: &d.writes.DeadLetters[len(d.writes.DeadLetters)-1]})
			pos.NextSeq++
			if it.commandID == "" || seen[it.commandID] {
				continue
			}
			seen[it.commandID] = true
			a := get(it.orderID)
			o := outcome(it, a, pos.NextSeq, now)
			o.Action = storable(shortAction(it.cmd.Action))
			o.Outcome, o.Reason, o.Message = topics.Rejected, machine.ReasonInvalidCommand, storable(it.err.Error())
			o.EventID = topics.RejectedEventID(it.orderID, a.version, it.commandID)
			d.writes.Outcomes = append(d.writes.Outcomes, o)
			pos.NextSeq++
			continue
		}
		if seen[it.commandID] {
			continue // a retry: the first outcome stands, nothing is emitted
		}
		seen[it.commandID] = true
		a := get(it.orderID)
		o := outcome(it, a, pos.NextSeq, now)
		to, rej := machine.Apply(a.state, a.version, it.action, it.cmd.ExpectedVersion)
		if rej != nil {
			o.Outcome, o.Reason, o.Message = topics.Rejected, rej.Reason, rej.Message
			o.EventID = topics.RejectedEventID(it.orderID, a.version, it.commandID)
		} else {
			if a.state == machine.None {
				a.createdAt = now
			}
			if !a.changed {
				touched = append(touched, it.orderID)
			}
			a.state, a.changed = to, true
			a.version++
			o.Outcome, o.ToState, o.Version = topics.Accepted, string(to), a.version
			o.EventID = topics.AcceptedEventID(it.orderID, a.version)
		}
		d.writes.Outcomes = append(d.writes.Outcomes, o)
		pos.NextSeq++
	}
	d.writes.Orders = make([]store.OrderWrite, 0, len(touched))
	for _, id := range touched {
		a := orders[id]
		d.writes.Orders = append(d.writes.Orders, store.OrderWrite{
			OrderID: id, State: string(a.state), Version: a.version, PrevVersion: a.read, PrevState: string(a.readState),
			CreatedAt: a.createdAt, UpdatedAt: now,
		})
	}
	d.writes.Position = pos
	// Merge outcomes into the outbox list in seq order; dead letters are
	// already there.
	merged := make([]store.Entry, 0, len(d.entries)+len(d.writes.Outcomes))
	j := 0
	for i := range d.writes.Outcomes {
		o := &d.writes.Outcomes[i]
		for j < len(d.entries) && d.entries[j].Seq < o.Seq {
			merged = append(merged, d.entries[j])
			j++
		}
		merged = append(merged, store.Entry{Seq: o.Seq, Outcome: o})
	}
	d.entries = append(merged, d.entries[j:]...)
	return d
}

// outcome fills the fields every outcome of it shares; the caller sets the
// verdict.
func outcome(it *item, a *orderAcc, seq int64, now time.Time) store.Outcome {
	o := store.Outcome{
		Seq: seq, Offset: it.offset, CommandID: it.commandID, OrderID: it.orderID,
		Action: string(it.action), FromState: string(a.state), Version: a.version,
		Actor: it.cmd.Actor, CommandReason: it.cmd.Reason, RequestedAt: it.cmd.RequestedAt,
		ProcessedAt: now,
	}
	if len(it.cmd.Metadata) > 0 {
		o.Metadata = json.RawMessage(it.cmd.Metadata)
	}
	return o
}

// shortAction keeps an invalid command's action for the audit row only when
// it is short printable text.
func shortAction(a string) string {
	if utf8.RuneCountInString(a) > 32 {
		return ""
	}
	for _, r := range a {
		if !unicode.IsPrint(r) {
			return ""
		}
	}
	return a
}

// storable makes s safe for a PostgreSQL text column, which refuses NUL and
// invalid UTF-8; a record must never be able to wedge its partition.
func storable(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\\0")
}
