package topics

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"
)

// appendEvent appends e to dst exactly as json.Marshal(e) writes it, without
// reflection and in one allocation at most: at the service's event rate
// json.Marshal was a tenth of the process's CPU. It only takes the events
// that are usual and whose encoding is simple to get right; for anything
// else ok is false, dst is returned as it was, and the caller must use
// json.Marshal, which also words the errors. FuzzEncodeEvent compares the
// two on every input.
func appendEvent(dst []byte, e *Event) (_ []byte, ok bool) {
	if e == nil {
		return dst, false // json.Marshal writes null
	}
	// Check every string and the metadata before growing dst, so that an
	// event that falls back costs no allocation here.
	n := eventFixedLen
	for _, s := range [...]string{e.EventID, e.CommandID, e.OrderID, e.Action, e.Outcome} {
		if !unescaped(s) {
			return dst, false
		}
		n += len(s)
	}
	for _, p := range [...]*string{e.FromState, e.ToState, e.Reason, e.Message, e.Actor} {
		if p == nil {
			n += len("null")
			continue
		}
		if !unescaped(*p) {
			return dst, false
		}
		n += len(*p) + len(`""`)
	}
	if !verbatimMetadata(e.Metadata) {
		return dst, false
	}
	n += max(len(e.Metadata), len("null"))
	if e.RequestedAt == nil {
		n += len("null")
	} else {
		n += maxTimeLen
	}

	b := slices.Grow(dst, n)
	b = append(b, `{"event_id":"`...)
	b = append(b, e.EventID...)
	b = append(b, `","command_id":"`...)
	b = append(b, e.CommandID...)
	b = append(b, `","order_id":"`...)
	b = append(b, e.OrderID...)
	b = append(b, `","action":"`...)
	b = append(b, e.Action...)
	b = append(b, `","outcome":"`...)
	b = append(b, e.Outcome...)
	b = append(b, `","from_state":`...)
	b = appendStringPtr(b, e.FromState)
	b = append(b, `,"to_state":`...)
	b = appendStringPtr(b, e.ToState)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, e.Version, 10)
	b = append(b, `,"reason":`...)
	b = appendStringPtr(b, e.Reason)
	b = append(b, `,"message":`...)
	b = appendStringPtr(b, e.Message)
	b = append(b, `,"actor":`...)
	b = appendStringPtr(b, e.Actor)
	b = append(b, `,"metadata":`...)
	if e.Metadata == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, e.Metadata...)
	}
	b = append(b, `,"requested_at":`...)
	if e.RequestedAt == nil {
		b = append(b, "null"...)
	} else if b, ok = appendTime(b, *e.RequestedAt); !ok {
		return dst, false
	}
	b = append(b, `,"processed_at":`...)
	if b, ok = appendTime(b, e.ProcessedAt); !ok {
		return dst, false
	}
	return append(b, '}'), true
}

// eventFixedLen is the length of the keys and punctuation appendEvent
// writes, and the longest version; maxTimeLen that of a quoted RFC 3339 time
// with nanoseconds and a zone offset, the longest appendTime accepts.
const (
	eventFixedLen = len(`{"event_id":"","command_id":"","order_id":"","action":"","outcome":"",`+
		`"from_state":,"to_state":,"version":,"reason":,"message":,"actor":,"metadata":,`+
		`"requested_at":,"processed_at":}`) + len("-9223372036854775808") + maxTimeLen
	maxTimeLen = len(`"2006-01-02T15:04:05.999999999-07:00"`)
)

// unescapedByte is true for the bytes json.Marshal copies into a string as
// they are: printable ASCII but for the quote and backslash, which it
// escapes, and <, > and &, which it escapes for HTML. It also escapes control
// characters and U+2028/U+2029 and replaces invalid UTF-8; rather than match
// each rule, the fast path leaves every byte outside 0x20..0x7e to it.
var unescapedByte = func() (t [256]bool) {
	for c := 0x20; c <= 0x7e; c++ {
		t[c] = true
	}
	t['"'], t['\\'], t['<'], t['>'], t['&'] = false, false, false, false, false
	return t
}()

func unescaped(s string) bool {
	for i := 0; i < len(s); i++ {
		if !unescapedByte[s[i]] {
			return false
		}
	}
	return true
}

func appendStringPtr(b []byte, p *string) []byte {
	if p == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = append(b, *p...)
	return append(b, '"')
}

// verbatimMetadata reports whether json.Marshal writes m as it is (nil as
// null). An empty but non-nil m is not written: json.Marshal fails ("unexpected
// end of JSON input"). Nor is any m in general: json.Marshal compacts a
// RawMessage, dropping whitespace; escapes <, > and & even inside its
// strings, and U+2028/U+2029; and fails on invalid JSON. So m takes the fast
// path only if valid and without those bytes (nor, for simplicity, spaces
// inside strings, backslashes and non-ASCII).
func verbatimMetadata(m json.RawMessage) bool {
	if m == nil {
		return true
	}
	if len(m) == 0 {
		return false
	}
	for _, c := range m {
		if !verbatimByte[c] {
			return false
		}
	}
	return json.Valid(m)
}

// verbatimByte is true for the bytes verbatimMetadata lets through:
// printable ASCII but for the space, <, >, & and the backslash.
var verbatimByte = func() (t [256]bool) {
	for c := 0x21; c <= 0x7e; c++ {
		t[c] = true
	}
	t['<'], t['>'], t['&'], t['\\'] = false, false, false, false
	return t
}()

// appendTime appends t quoted as time.Time.MarshalJSON writes it. That is
// AppendFormat's RFC 3339 with nanoseconds, but MarshalJSON refuses what RFC
// 3339 cannot write: a year outside [0,9999] and a zone offset of 24 hours
// or more. ok is false for those, so that json.Marshal returns its error.
// A zone offset with seconds is not refused: both truncate it to minutes,
// toward zero (so -30s is written +00:00).
func appendTime(b []byte, t time.Time) (_ []byte, ok bool) {
	b = append(b, '"')
	start := len(b)
	b = t.AppendFormat(b, time.RFC3339Nano)
	// A year outside [0,9999] is written with a minus sign or a fifth digit.
	if b[start+len("2006")] != '-' {
		return b, false
	}
	if b[len(b)-1] != 'Z' {
		zone := b[len(b)-len("-07:00"):]
		// Past 99 hours the sign is further left, so zone[0] is a digit.
		if zone[0] != '+' && zone[0] != '-' || zone[1] > '2' || zone[1] == '2' && zone[2] > '3' {
			return b, false
		}
	}
	return append(b, '"'), true
}
