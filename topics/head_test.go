package topics

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// headSeeds are events as EncodeEvent writes them, the input the fast path
// is for, and inputs that must leave it.
func headSeeds(t testing.TB) [][]byte {
	from, to, actor, reason := "Created", "Paid", "payments-service", `card "declined"`
	at := time.Date(2026, 11, 25, 18, 0, 0, 12_345_000, time.UTC)
	events := []Event{
		{EventID: "order-42/2", CommandID: "c1", OrderID: "order-42", Action: "pay", Outcome: Accepted,
			FromState: &from, ToState: &to, Version: 2, Actor: &actor,
			Metadata: json.RawMessage(`{"payment_id":"p-9","nested":{"q":"a\"}b"}}`), RequestedAt: &at, ProcessedAt: at},
		{EventID: "o/0/rejected/c", CommandID: "c2", OrderID: "o", Action: "ship", Outcome: Rejected,
			Version: 0, Reason: &reason, ProcessedAt: at},
		{CommandID: "c\"3", OrderID: "ö-7", Outcome: Accepted, ToState: &to, Version: 7, ProcessedAt: at},
	}
	var seeds [][]byte
	for i := range events {
		b, err := EncodeEvent(&events[i])
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return append(seeds,
		[]byte(` { "version" : 3 , "to_state" : "Paid" , "to_state" : null, "version": null } `),
		[]byte(`{"Command_ID":"upper case matches in encoding/json"}`),
		[]byte(`{"processed_at":"2026-11-25T18:00:00+01:00","processed_at":null}`),
		[]byte(`{"version":1.0}`), []byte(`{"version":"1"}`), []byte(`{"order_id":null}`),
		[]byte("{\"order_id\":\"\xff\"}"), []byte(`{}`), []byte(`null`), []byte(`[]`), []byte(`{"outcome":1`),
		[]byte(`{"processed_at":"2026-11-25T24:00:00Z"}`), []byte(`{"unknown":1}`),
		[]byte(`{"event_id":{}}`), []byte(`{"requested_at":"yesterday"}`), []byte(`{"metadata":null,"actor":7}`),
		// The scan checks the JSON itself: escapes in fields it skips,
		// numbers, literals, and what follows the object.
		[]byte(`{"reason":"a\u00e9\n\/","message":"\"","version":-0,"metadata":1e5}`),
		[]byte(`{"reason":"\x"}`), []byte(`{"reason":"\u12"}`), []byte("{\"reason\":\"a\tb\"}"),
		[]byte(`{} x`), []byte(`{"version":01}`), []byte(`{"version":-}`), []byte(`{"version":+1}`),
		[]byte(`{"metadata":}`), []byte(`{"metadata":`), []byte(`{"metadata":tru}`), []byte(`{"outcome":"a",}`), []byte(`{"outcome" "a"}`),
	)
}

// TestDecodeEventHead: the head of every seed is what the full decoder
// gives, and events as the processor writes them take the fast path.
func TestDecodeEventHead(t *testing.T) {
	for i, b := range headSeeds(t) {
		checkHead(t, b)
		if i < 2 { // the third has an escaped quote in a field the scan reads
			if _, ok := scanHead(b); !ok {
				t.Errorf("an event as EncodeEvent writes it left the fast path: %s", b)
			}
		}
	}
}

func FuzzEventHead(f *testing.F) {
	for _, b := range headSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, value []byte) { checkHead(t, value) })
}

func checkHead(t *testing.T, value []byte) {
	t.Helper()
	got, gotErr := DecodeEventHead(value)
	e, wantErr := DecodeEvent(value)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("%s: DecodeEventHead error %v, DecodeEvent error %v", value, gotErr, wantErr)
	}
	if wantErr != nil {
		return
	}
	if want := e.Head(); !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\nhead %v\nwant %v", value, got, want)
	}
}

func BenchmarkDecodeEvent(b *testing.B) {
	benchDecode(b, func(v []byte) error { _, err := DecodeEvent(v); return err })
}
func BenchmarkDecodeEventHead(b *testing.B) {
	benchDecode(b, func(v []byte) error { _, err := DecodeEventHead(v); return err })
}

func benchDecode(b *testing.B, decode func([]byte) error) {
	v := headSeeds(b)[0]
	b.ReportAllocs()
	b.SetBytes(int64(len(v)))
	for b.Loop() {
		if err := decode(v); err != nil {
			b.Fatal(err)
		}
	}
}

// String makes test failures readable (ToState is a pointer).
func (h EventHead) String() string {
	to := "<nil>"
	if h.ToState != nil {
		to = *h.ToState
	}
	return fmt.Sprintf("{%s %s %s to=%s v=%d at=%s}", h.CommandID, h.OrderID, h.Outcome, to, h.Version,
		h.ProcessedAt.Format(time.RFC3339Nano))
}
