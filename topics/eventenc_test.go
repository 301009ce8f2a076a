package topics

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// encSeed is one FuzzEncodeEvent input, named so the seeds read as events.
type encSeed struct {
	eventID, commandID, orderID, action, outcome string
	from, to, reason, message, actor             string
	nils                                         uint8 // nilFrom...nilMetadata
	version                                      int64
	metadata                                     []byte
	reqSec, reqNsec, procSec, procNsec           int64
	zone                                         int32 // offset east of UTC, in seconds
}

// Bits of encSeed.nils: which pointers, and whether the metadata, are nil.
const (
	nilFrom uint8 = 1 << iota
	nilTo
	nilReason
	nilMessage
	nilActor
	nilRequested
	nilMetadata
	allNil = 1<<7 - 1
)

func (s encSeed) add(f *testing.F) {
	f.Add(s.eventID, s.commandID, s.orderID, s.action, s.outcome, s.from, s.to, s.reason, s.message, s.actor,
		s.nils, s.version, s.metadata, s.reqSec, s.reqNsec, s.procSec, s.procNsec, s.zone)
}

func buildEvent(s encSeed) Event {
	ptr := func(bit uint8, v string) *string {
		if s.nils&bit != 0 {
			return nil
		}
		return &v
	}
	zone := time.FixedZone("", int(s.zone))
	e := Event{EventID: s.eventID, CommandID: s.commandID, OrderID: s.orderID, Action: s.action, Outcome: s.outcome,
		FromState: ptr(nilFrom, s.from), ToState: ptr(nilTo, s.to), Version: s.version,
		Reason: ptr(nilReason, s.reason), Message: ptr(nilMessage, s.message), Actor: ptr(nilActor, s.actor),
		Metadata: json.RawMessage(s.metadata), ProcessedAt: time.Unix(s.procSec, s.procNsec).In(zone)}
	// The fuzzer may hand over nil or empty bytes; json.Marshal tells them
	// apart (null or an error), so the seed says which.
	if s.nils&nilMetadata != 0 {
		e.Metadata = nil
	} else if e.Metadata == nil {
		e.Metadata = json.RawMessage{}
	}
	if s.nils&nilRequested == 0 {
		at := time.Unix(s.reqSec, s.reqNsec).In(zone)
		e.RequestedAt = &at
	}
	return e
}

// ordinarySeed is an accepted event as the processor writes it.
func ordinarySeed() encSeed {
	at := time.Date(2026, 11, 25, 18, 0, 0, 12_000_000, time.UTC)
	return encSeed{eventID: "order-42/2", commandID: "0b8f3c1e-5c7e-4a61-9d7b-2a0f4f7f6d11", orderID: "order-42",
		action: "pay", outcome: Accepted, from: "Created", to: "Paid", actor: "payments-service",
		nils: nilReason | nilMessage, version: 2, metadata: []byte(`{"payment_id":"p-9","n":[1,2.5e3,true,null]}`),
		reqSec: at.Unix() - 3, reqNsec: 500, procSec: at.Unix(), procNsec: int64(at.Nanosecond())}
}

// FuzzEncodeEvent checks that EncodeEvent writes exactly what json.Marshal
// writes, and fails exactly when it fails: consumers compare and hash event
// values, so a fast path that differed in one byte would change them.
func FuzzEncodeEvent(f *testing.F) {
	ord := ordinarySeed()
	ord.add(f)
	with := func(change func(*encSeed)) encSeed {
		s := ordinarySeed()
		change(&s)
		return s
	}
	seeds := []encSeed{
		// A rejected event: every pointer and the metadata nil.
		{eventID: "o/0/rejected/c", commandID: "c", orderID: "o", action: "ship", outcome: Rejected, nils: allNil},
		// Empty strings, all null; then empty, non-nil metadata: an error.
		{nils: allNil},
		{},
		// HTML characters, escaped by json.Marshal in strings and metadata.
		with(func(s *encSeed) { s.reason = "a<b>&c" }),
		with(func(s *encSeed) { s.nils = 0; s.message = "<script>" }),
		with(func(s *encSeed) { s.metadata = []byte(`{"html":"<b>&amp;</b>"}`) }),
		// Control characters, quotes and backslashes.
		with(func(s *encSeed) { s.eventID = "a\x00b\tc\nd\x1f\x7f" }),
		with(func(s *encSeed) { s.actor = `say "hi" \ bye` }),
		with(func(s *encSeed) { s.metadata = []byte(`{"q":"a\"b\\c\u0041\n"}`) }),
		// Invalid UTF-8, U+2028/U+2029 and other non-ASCII.
		with(func(s *encSeed) { s.orderID = "o\xff\xfe-\xc3" }),
		with(func(s *encSeed) { s.from = "line\u2028sep\u2029para" }),
		with(func(s *encSeed) { s.to = "Bezahlt é ✓ 🙂" }),
		with(func(s *encSeed) { s.metadata = []byte("{\"a\":\"\u2028\xff\"}") }),
		// Metadata that json.Marshal compacts, refuses, or takes as it is.
		with(func(s *encSeed) { s.metadata = []byte(` { "a" : [ 1 , 2 ] } `) }),
		with(func(s *encSeed) { s.metadata = []byte("{\"a\":\"x y\"}") }),
		with(func(s *encSeed) { s.metadata = []byte("{\n\t\"a\":1\r\n}") }),
		with(func(s *encSeed) { s.metadata = []byte(`{"a":`) }),
		with(func(s *encSeed) { s.metadata = []byte(`{"a":1}}`) }),
		with(func(s *encSeed) { s.metadata = []byte(`nul`) }),
		with(func(s *encSeed) { s.metadata = []byte(`null`) }),
		with(func(s *encSeed) { s.metadata = []byte(`"str"`) }),
		with(func(s *encSeed) { s.metadata = []byte(`-0.5E+10`) }),
		with(func(s *encSeed) { s.metadata = []byte(`01`) }),
		with(func(s *encSeed) { s.metadata = []byte{} }),
		with(func(s *encSeed) { s.nils |= nilMetadata }),
		// Versions at the ends of int64.
		with(func(s *encSeed) { s.version = -1 << 63 }),
		with(func(s *encSeed) { s.version = 1<<63 - 1 }),
		// Times: years 0, 9999, 10000 and negative; no and many nanoseconds;
		// zone offsets with seconds, of 23:59 and of 24 hours and more.
		with(func(s *encSeed) { s.procSec, s.procNsec = yearStart(0), 0 }),
		with(func(s *encSeed) { s.procSec, s.procNsec = yearStart(10000)-1, 999_999_999 }),
		with(func(s *encSeed) { s.procSec = yearStart(10000) }),
		with(func(s *encSeed) { s.reqSec = yearStart(-1) }),
		with(func(s *encSeed) { s.procSec = yearStart(-10000) }),
		with(func(s *encSeed) { s.procSec, s.zone = yearStart(0), -1 }),
		with(func(s *encSeed) { s.procSec, s.zone = yearStart(10000)-1, 1 }),
		with(func(s *encSeed) { s.procNsec = 1 }),
		with(func(s *encSeed) { s.zone = 3600 + 60 + 1 }),
		with(func(s *encSeed) { s.zone = -30 }),
		with(func(s *encSeed) { s.zone = -90 }),
		with(func(s *encSeed) { s.zone = -(5*3600 + 30*60) }),
		with(func(s *encSeed) { s.zone = 24*3600 - 60 }),
		with(func(s *encSeed) { s.zone = 24*3600 - 1 }),
		with(func(s *encSeed) { s.zone = 24 * 3600 }),
		with(func(s *encSeed) { s.zone = -24 * 3600 }),
		with(func(s *encSeed) { s.zone = 100 * 3600 }),
		with(func(s *encSeed) { s.zone = -1 << 31 }),
		with(func(s *encSeed) { s.procSec = 1<<63 - 1 }),
		with(func(s *encSeed) { s.reqSec, s.reqNsec = -1<<63, -1<<63 }),
	}
	for _, s := range seeds {
		s.add(f)
	}
	f.Fuzz(func(t *testing.T, eventID, commandID, orderID, action, outcome, from, to, reason, message, actor string,
		nils uint8, version int64, metadata []byte, reqSec, reqNsec, procSec, procNsec int64, zone int32) {
		e := buildEvent(encSeed{eventID, commandID, orderID, action, outcome, from, to, reason, message, actor,
			nils, version, metadata, reqSec, reqNsec, procSec, procNsec, zone})
		want, werr := json.Marshal(&e)
		got, gerr := EncodeEvent(&e)
		switch {
		case werr != nil && gerr == nil:
			t.Fatalf("json.Marshal fails (%v) but EncodeEvent wrote\n%s", werr, got)
		case werr == nil && gerr != nil:
			t.Fatalf("EncodeEvent fails (%v) but json.Marshal wrote\n%s", gerr, want)
		case werr != nil:
			if gerr.Error() != "encode event: "+werr.Error() {
				t.Fatalf("EncodeEvent's error %q is not json.Marshal's %q", gerr, werr)
			}
		case !bytes.Equal(got, want):
			t.Fatalf("EncodeEvent differs from json.Marshal:\n got %s\nwant %s", got, want)
		}
		// appendEvent appends to what dst holds, and leaves it be when it
		// falls back.
		prefix := []byte("prefix")
		b, ok := appendEvent(prefix, &e)
		if ok && (werr != nil || !bytes.Equal(b, append(prefix, want...))) {
			t.Fatalf("appendEvent after a prefix wrote\n%s\nwant prefix%s (json.Marshal error %v)", b, want, werr)
		}
		if !ok && string(b) != "prefix" {
			t.Fatalf("appendEvent fell back but changed dst to %q", b)
		}
	})
}

func yearStart(year int) int64 { return time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC).Unix() }

// TestAppendEventFastPath checks which events take the fast path, so that one
// that always fell back, which FuzzEncodeEvent would pass, fails here.
func TestAppendEventFastPath(t *testing.T) {
	with := func(change func(*encSeed)) encSeed {
		s := ordinarySeed()
		change(&s)
		return s
	}
	tests := []struct {
		name string
		seed encSeed
		fast bool
	}{
		{"accepted", ordinarySeed(), true},
		{"rejected, all null", encSeed{eventID: "o/0/rejected/c", commandID: "c", orderID: "o", action: "ship",
			outcome: Rejected, reason: "invalid_transition", message: "cannot ship an order in state Created",
			nils: allNil &^ (nilReason | nilMessage)}, true},
		{"zone offset with seconds", with(func(s *encSeed) { s.zone = -(3600 + 61) }), true},
		{"year 0", with(func(s *encSeed) { s.procSec = yearStart(0) }), true},
		{"HTML in a reason", with(func(s *encSeed) { s.nils = 0; s.reason = "a&b" }), false},
		{"non-ASCII actor", with(func(s *encSeed) { s.actor = "José" }), false},
		{"spaces in metadata", with(func(s *encSeed) { s.metadata = []byte(`{"a": 1}`) }), false},
		{"invalid metadata", with(func(s *encSeed) { s.metadata = []byte(`{"a":1`) }), false},
		{"empty metadata", with(func(s *encSeed) { s.metadata = []byte{} }), false},
		{"year 10000", with(func(s *encSeed) { s.procSec = yearStart(10000) }), false},
		{"negative year requested", with(func(s *encSeed) { s.reqSec = yearStart(-1) }), false},
		{"zone offset of 24h", with(func(s *encSeed) { s.zone = 24 * 3600 }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := buildEvent(tt.seed)
			b, ok := appendEvent(nil, &e)
			if ok != tt.fast {
				t.Fatalf("fast path taken: %v, want %v", ok, tt.fast)
			}
			if !ok {
				return
			}
			want, err := json.Marshal(&e)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, want) {
				t.Fatalf("got  %s\nwant %s", b, want)
			}
		})
	}
	if _, ok := appendEvent(nil, nil); ok {
		t.Error("a nil event took the fast path; json.Marshal writes null")
	}
}

// TestEncodeEventAllocs checks that the fast path sizes its buffer once.
func TestEncodeEventAllocs(t *testing.T) {
	e := buildEvent(ordinarySeed())
	if n := testing.AllocsPerRun(100, func() {
		if _, err := EncodeEvent(&e); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Errorf("EncodeEvent allocates %v times, want 1", n)
	}
}
