package topics

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// FuzzEventRoundTrip feeds arbitrary bytes to DecodeEvent: it must never
// panic, and whatever decodes must encode and decode again to the same event
// (audit consumers re-publish events; a lossy codec would change them).
func FuzzEventRoundTrip(f *testing.F) {
	from, to, actor := "Created", "Paid", "payments-service"
	at := time.Date(2026, 11, 25, 18, 0, 0, 12_000_000, time.UTC)
	seed := Event{EventID: "order-42/2", CommandID: "c1", OrderID: "order-42", Action: "pay", Outcome: Accepted,
		FromState: &from, ToState: &to, Version: 2, Actor: &actor, Metadata: json.RawMessage(`{"payment_id":"p-9"}`),
		RequestedAt: &at, ProcessedAt: at}
	b, err := EncodeEvent(&seed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"event_id":"o/0/rejected/c","outcome":"rejected","reason":"invalid_command","from_state":null,"metadata":null,"version":0}`))
	f.Add([]byte(`{"metadata":[1,{"a":"\u0000"}],"requested_at":"2026-11-25T18:00:00+01:00"}`))
	f.Add([]byte(`{"version":-9223372036854775808,"processed_at":"0001-01-01T00:00:00Z"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"event_id":1}`))
	f.Add([]byte("{\"order_id\":\"\xff\"}"))
	f.Fuzz(func(t *testing.T, value []byte) {
		e, err := DecodeEvent(value)
		if err != nil {
			return
		}
		enc, err := EncodeEvent(&e)
		if err != nil {
			// Only a time outside what RFC 3339 can write may fail.
			if (e.RequestedAt == nil || validYear(*e.RequestedAt)) && validYear(e.ProcessedAt) {
				t.Fatalf("decoded event does not encode: %v (%+v)", err, e)
			}
			return
		}
		back, err := DecodeEvent(enc)
		if err != nil {
			t.Fatalf("encoded event does not decode: %v\n%s", err, enc)
		}
		again, err := EncodeEvent(&back)
		if err != nil {
			t.Fatalf("second encode: %v", err)
		}
		if !bytes.Equal(enc, again) {
			t.Fatalf("encode is not stable:\n%s\n%s", enc, again)
		}
		if back.EventID != e.EventID || back.Version != e.Version || !back.ProcessedAt.Equal(e.ProcessedAt) ||
			(back.ToState == nil) != (e.ToState == nil) {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", e, back)
		}
	})
}

func validYear(t time.Time) bool { return t.Year() >= 0 && t.Year() <= 9999 }

// FuzzIdentify checks that Identify, which reads ids out of records that
// failed to decode, never panics and only returns ids that CheckID accepts.
func FuzzIdentify(f *testing.F) {
	f.Add([]byte(`{"command_id":"c1","order_id":"o-1","expected_version":"x"}`))
	f.Add([]byte(`{"command_id":"c1","order_id":"o\u0001"}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, value []byte) {
		c, o, ok := Identify(value)
		if !ok {
			if c != "" || o != "" {
				t.Fatalf("not ok but ids %q %q", c, o)
			}
			return
		}
		if CheckID("command_id", c) != nil || CheckID("order_id", o) != nil {
			t.Fatalf("Identify returned ids CheckID refuses: %q %q", c, o)
		}
	})
}
