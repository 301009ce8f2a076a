package processor_test

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/scripts/chaos/workload"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kgo"
)

// reasonOf is what the DLQ reason of each kind of malformed record says
// (any of the phrases).
var reasonOf = map[string][]string{
	"random_bytes":   {"UTF-8", "not a command object"},
	"truncated_json": {"not a command object"},
	"huge_value":     {"byte limit"},
	"wrong_type":     {"not a command object", "metadata must be a JSON object"},
	"control_in_id":  {"control or invalid character"},
	"key_mismatch":   {"does not equal order_id"},
	"missing_field":  {"is required"},
	"unknown_action": {"unknown action"},
	"nul_in_text":    {"NUL"},
	"not_an_object":  {"not a command object"},
	"overlong":       {"over the limit"},
	"invalid_utf8":   {"UTF-8"},
	"deep_nesting":   {"not a command object"},
	"tombstone":      {"not a command object"},
	"binary_key":     {"does not equal order_id"},
}

// TestPoisonNeverBlocks mixes 10,000 malformed records of every kind into a
// valid load, keyed by the same orders so they sit between valid commands
// of the same partitions: every one must end in the DLQ with the reason for
// its kind, and every valid order must still reach the state the load
// predicts.
func TestPoisonNeverBlocks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(t)
	gen := workload.New(workload.Config{Seed: uint64(time.Now().UnixNano()), Prefix: "poison-test-", Active: 400})
	r := rand.New(rand.NewPCG(1, 2))
	const valid, poison = 12000, 10000
	var recs []*kgo.Record
	kinds := map[*kgo.Record]string{}
	for v, p := 0, 0; v < valid || p < poison; {
		if p < poison && (v == valid || r.IntN(valid+poison) < poison) {
			kind := workload.PoisonKinds[p%len(workload.PoisonKinds)]
			w := gen.PoisonOf(kind)
			rec := &kgo.Record{Topic: b.names.Commands, Key: w.Key, Value: w.Value}
			kinds[rec] = kind
			recs = append(recs, rec)
			p++
			continue
		}
		w := gen.Next()
		recs = append(recs, &kgo.Record{Topic: b.names.Commands, Key: w.Key, Value: w.Value})
		v++
	}
	for i := 0; i < len(recs); i += 2000 {
		b.send(t, recs[i:min(i+2000, len(recs))]...)
	}
	type at struct {
		p   int32
		off int64
	}
	kindAt := map[at]string{}
	for rec, kind := range kinds {
		kindAt[at{rec.Partition, rec.Offset}] = kind
	}

	rep := b.waitProcessed(t, 3*time.Minute)
	exp := gen.Expect()
	if rep.DeadLetters != poison || rep.DLQRecords != poison || rep.CommandsRead != len(recs) || rep.Outcomes != exp.Outcomes() {
		t.Fatalf("verify: %s; want %d dead letters and DLQ records, %d commands read, %d outcomes",
			rep.Summary(), poison, len(recs), exp.Outcomes())
	}
	checkPrediction(t, b, exp)

	seen := map[string]int{}
	b.readTopic(t, b.names.DLQ, func(rec *kgo.Record) {
		var (
			reason string
			off    int64 = -1
		)
		for _, h := range rec.Headers {
			switch h.Key {
			case topics.HeaderError:
				reason = string(h.Value)
			case topics.HeaderSourceOffset:
				// Unparsable, it stays -1: no malformed record's offset.
				if n, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil {
					off = n
				}
			}
		}
		kind, ok := kindAt[at{rec.Partition, off}]
		if !ok {
			t.Errorf("DLQ record %d/%d names source offset %d, which is no malformed record", rec.Partition, rec.Offset, off)
			return
		}
		seen[kind]++
		found := false
		for _, phrase := range reasonOf[kind] {
			found = found || strings.Contains(reason, phrase)
		}
		if !found && seen[kind] <= 3 {
			t.Errorf("%s: DLQ reason %q says none of %q", kind, reason, reasonOf[kind])
		}
	})
	for _, kind := range workload.PoisonKinds {
		if seen[kind] != exp.PoisonKind[kind] || seen[kind] == 0 {
			t.Errorf("%s: %d in the DLQ, %d sent", kind, seen[kind], exp.PoisonKind[kind])
		}
	}
	t.Logf("%s; malformed by kind %v", rep.Summary(), exp.PoisonKind)
}

// TestDeadLetterAtTheRecordSizeLimit guards a bug these tests found, fixed
// in 2aa319d: a command record close to Kafka's 1 MB record limit is a valid
// Kafka record, but its DLQ copy (the same bytes plus five headers) was not,
// and the dead letter never reached the DLQ (verify: "dead letter p/o is on
// the DLQ 0 times"). The DLQ record is now cut to fit, with header
// orderflow-truncated; PostgreSQL keeps it whole. That it was lost silently
// rather than retried is the publisher bug TestRefusedEventIsNotSkipped
// shows.
func TestDeadLetterAtTheRecordSizeLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.start(t)
	big := `{"command_id":"big-1","order_id":"L","action":"pay","reason":"` + strings.Repeat("b", 999_700) + `"}`
	b.send(t,
		b.command(cmdSpec{id: "l1", order: "L", action: "create"}),
		&kgo.Record{Topic: b.names.Commands, Key: []byte("L"), Value: []byte(big)},
		b.command(cmdSpec{id: "l2", order: "L", action: "pay"}),
	)
	rep := b.waitProcessed(t, 30*time.Second)
	if rep.DeadLetters != 1 || rep.DLQRecords != 1 {
		t.Fatalf("verify: %s", rep.Summary())
	}
	if s, v := b.order(t, "L"); s != "Paid" || v != 2 {
		t.Fatalf("order L is %s v%d, want Paid v2", s, v)
	}
}
