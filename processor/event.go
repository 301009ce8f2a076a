package processor

import (
	"strconv"

	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EventFromOutcome is the outcome event of a transitions row. The publisher
// uses it on rows held in memory and on rows read back from PostgreSQL, and
// verify uses it to compare rows with events, so all three agree.
func EventFromOutcome(o *store.Outcome) topics.Event {
	e := topics.Event{
		EventID:     o.EventID,
		CommandID:   o.CommandID,
		OrderID:     o.OrderID,
		Action:      o.Action,
		Outcome:     o.Outcome,
		FromState:   ptr(o.FromState),
		ToState:     ptr(o.ToState),
		Version:     o.Version,
		Reason:      ptr(o.Reason),
		Message:     ptr(o.Message),
		Actor:       ptr(o.Actor),
		Metadata:    o.Metadata,
		ProcessedAt: o.ProcessedAt.UTC(),
	}
	if o.RequestedAt != nil {
		t := o.RequestedAt.UTC()
		e.RequestedAt = &t
	}
	return e
}

func ptr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// maxDeadLetterBytes bounds the key and value of a DLQ record, well under
// Kafka's default 1 MB message limit.
const maxDeadLetterBytes = 512 << 10

// records turns outbox entries into the Kafka records that publish them, to
// partition p of the events or DLQ topic.
func records(names topics.Names, p int32, entries []store.Entry, sourceTopic string) ([]*kgo.Record, error) {
	out := make([]*kgo.Record, 0, len(entries))
	for _, en := range entries {
		seq := kgo.RecordHeader{Key: topics.HeaderSeq, Value: []byte(strconv.FormatInt(en.Seq, 10))}
		if o := en.Outcome; o != nil {
			ev := EventFromOutcome(o)
			v, err := topics.EncodeEvent(&ev)
			if err != nil {
				return nil, err
			}
			out = append(out, &kgo.Record{Topic: names.Events, Partition: p, Key: []byte(o.OrderID), Value: v,
				Headers: []kgo.RecordHeader{seq}})
			continue
		}
		d := en.DeadLetter
		hs := []kgo.RecordHeader{
			seq,
			{Key: topics.HeaderError, Value: []byte(d.Error)},
			{Key: topics.HeaderSourceTopic, Value: []byte(sourceTopic)},
			{Key: topics.HeaderSourcePartition, Value: []byte(strconv.Itoa(int(p)))},
			{Key: topics.HeaderSourceOffset, Value: []byte(strconv.FormatInt(d.Offset, 10))},
		}
		key, value := d.Key, d.Value
		// A record that just fit the commands topic would not fit the DLQ
		// with our headers, and a record Kafka refuses would stop the
		// process's publisher, every partition of it, for good.
		// PostgreSQL keeps it whole.
		if len(key)+len(value) > maxDeadLetterBytes {
			hs = append(hs, kgo.RecordHeader{Key: topics.HeaderTruncated, Value: []byte(strconv.Itoa(len(key) + len(value)))})
			key = key[:min(len(key), 1024)]
			value = value[:maxDeadLetterBytes-len(key)]
		}
		out = append(out, &kgo.Record{Topic: names.DLQ, Partition: p, Key: key, Value: value, Headers: hs})
	}
	return out, nil
}
