package topics

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeCommand(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", MaxIDChars+1)
	tests := []struct {
		name  string
		key   string
		value string
		want  string // substring of the error; "" means valid
	}{
		{"full", "o-1", `{"command_id":"c1","order_id":"o-1","action":"pay","expected_version":1,"actor":"a","reason":"r","metadata":{"k":"v"},"requested_at":"2026-11-25T18:00:00.000Z"}`, ""},
		{"minimal", "o-1", `{"command_id":"c1","order_id":"o-1","action":"create"}`, ""},
		{"unknown fields ignored", "o-1", `{"command_id":"c1","order_id":"o-1","action":"create","extra":[1,2]}`, ""},
		{"unicode id", "заказ-1", `{"command_id":"c1","order_id":"заказ-1","action":"create"}`, ""},
		{"not json", "o-1", `{"command_id":`, "not a command object"},
		{"array", "o-1", `[1,2]`, "not a command object"},
		{"null", "o-1", `null`, "must be a JSON object"},
		{"wrong type", "o-1", `{"command_id":"c1","order_id":"o-1","action":"pay","expected_version":"1"}`, "not a command object"},
		{"missing command_id", "o-1", `{"order_id":"o-1","action":"pay"}`, "command_id is required"},
		{"missing order_id", "", `{"command_id":"c1","action":"pay"}`, "order_id is required"},
		{"missing action", "o-1", `{"command_id":"c1","order_id":"o-1"}`, "action is required"},
		{"key mismatch", "o-2", `{"command_id":"c1","order_id":"o-1","action":"pay"}`, "does not equal order_id"},
		{"long id", long, `{"command_id":"c1","order_id":"` + long + `","action":"pay"}`, "over the limit"},
		{"control char", "o\n1", `{"command_id":"c1","order_id":"o\n1","action":"pay"}`, "control"},
		{"long actor", "o-1", `{"command_id":"c1","order_id":"o-1","action":"pay","actor":"` + strings.Repeat("a", 257) + `"}`, "actor is 257"},
		{"metadata not object", "o-1", `{"command_id":"c1","order_id":"o-1","action":"pay","metadata":[1]}`, "JSON object"},
		{"metadata too big", "o-1", `{"command_id":"c1","order_id":"o-1","action":"pay","metadata":{"k":"` + strings.Repeat("m", MaxMetadataBytes) + `"}}`, "metadata is"},
		{"negative version", "o-1", `{"command_id":"c1","order_id":"o-1","action":"pay","expected_version":-1}`, "negative"},
		{"bad time", "o-1", `{"command_id":"c1","order_id":"o-1","action":"pay","requested_at":"yesterday"}`, "not a command object"},
		{"oversize", "o-1", `{"command_id":"c1","order_id":"o-1","action":"pay","reason":"` + strings.Repeat("r", MaxValueBytes) + `"}`, "over the 65536 byte limit"},
		{"invalid utf8", "o-1", "{\"command_id\":\"c\xff\",\"order_id\":\"o-1\",\"action\":\"pay\"}", "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeCommand([]byte(tt.key), []byte(tt.value))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("no error, want one containing %q", tt.want)
			case tt.want != "" && (!errors.Is(err, ErrInvalidCommand) || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %q, want ErrInvalidCommand containing %q", err, tt.want)
			}
		})
	}
}

func TestIdentify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		value string
		ok    bool
	}{
		{`{"command_id":"c1","order_id":"o-1","expected_version":"x"}`, true},
		{`{"command_id":"c1","order_id":"o-1","action":7}`, true},
		{`{"command_id":"c1"}`, false},
		{`{"command_id":"c1","order_id":"o\u0000"}`, false},
		{`garbage`, false},
	}
	for _, tt := range tests {
		c, o, ok := Identify([]byte(tt.value))
		if ok != tt.ok || (ok && (c != "c1" || o != "o-1")) {
			t.Fatalf("Identify(%s) = %q, %q, %v; want ok=%v", tt.value, c, o, ok, tt.ok)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	t.Parallel()
	v := int64(2)
	c := Command{CommandID: "c1", OrderID: "o-1", Action: "ship", ExpectedVersion: &v, Metadata: []byte(`{"a":1}`)}
	b, err := EncodeCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeCommand([]byte("o-1"), b)
	if err != nil {
		t.Fatal(err)
	}
	if got.CommandID != c.CommandID || *got.ExpectedVersion != 2 || string(got.Metadata) != `{"a":1}` {
		t.Fatalf("round trip = %+v", got)
	}
	if _, err := EncodeCommand(Command{OrderID: "o-1", Action: "pay"}); err == nil {
		t.Fatal("EncodeCommand accepted a command without command_id")
	}
	s := "Created"
	e := Event{EventID: AcceptedEventID("o-1", 1), CommandID: "c1", OrderID: "o-1", Outcome: Accepted, ToState: &s, Version: 1}
	eb, err := EncodeEvent(&e)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(eb), `"from_state":null`) || !strings.Contains(string(eb), `"event_id":"o-1/1"`) {
		t.Fatalf("event JSON %s", eb)
	}
	back, err := DecodeEvent(eb)
	if err != nil || back.EventID != e.EventID || *back.ToState != s {
		t.Fatalf("DecodeEvent = %+v, %v", back, err)
	}
}

func FuzzDecodeCommand(f *testing.F) {
	f.Add([]byte("o-1"), []byte(`{"command_id":"c1","order_id":"o-1","action":"pay","metadata":{"k":1}}`))
	f.Add([]byte("o-1"), []byte(`{"command_id":"c1","order_id":"o-1","action":"pay","expected_version":-3}`))
	f.Add([]byte(""), []byte(`[`))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		c, err := DecodeCommand(key, value)
		if err != nil {
			if !errors.Is(err, ErrInvalidCommand) {
				t.Fatalf("error does not wrap ErrInvalidCommand: %v", err)
			}
			Identify(value)
			return
		}
		// Whatever decodes must encode and decode to the same command.
		b, err := EncodeCommand(c)
		if err != nil {
			t.Fatalf("valid command does not re-encode: %v", err)
		}
		if _, err := DecodeCommand(key, b); err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
	})
}

func BenchmarkDecodeCommand(b *testing.B) {
	key := []byte("order-42")
	value := []byte(`{"command_id":"0b8f3c1e-5c7e-4a61-9d7b-2a0f4f7f6d11","order_id":"order-42","action":"pay","expected_version":1,"actor":"payments-service","reason":"card captured","metadata":{"payment_id":"p-9"},"requested_at":"2026-11-25T18:00:00.000Z"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(value)))
	for b.Loop() {
		if _, err := DecodeCommand(key, value); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeEvent(b *testing.B) {
	from, to, actor := "Created", "Paid", "payments-service"
	e := Event{EventID: "order-42/2", CommandID: "0b8f3c1e", OrderID: "order-42", Action: "pay", Outcome: Accepted,
		FromState: &from, ToState: &to, Version: 2, Actor: &actor, Metadata: []byte(`{"payment_id":"p-9"}`)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeEvent(&e); err != nil {
			b.Fatal(err)
		}
	}
}
