package topics

import (
	"encoding/json"
	"strconv"
	"time"
)

// scanCommand decodes a command the way json.Unmarshal would, for the
// values producers write: a flat object of the Command's own keys, each at
// most once, strings without escapes, metadata an object. It checks the
// JSON as it goes, so it needs neither json.Valid nor reflection; at the
// processor's full rate json.Unmarshal was the largest single cost of
// reading a command. ok is false for anything else (escapes, null metadata,
// repeated keys, keys that differ from the Command's only in case, which
// encoding/json would still match, and every malformed value): the caller
// then decodes with json.Unmarshal, which also words the error.
// b must be valid UTF-8, as DecodeCommand checks first: json.Unmarshal
// replaces invalid bytes, this scan copies them. FuzzScanCommand checks that
// both decoders agree on every such input.
func scanCommand(b []byte) (c Command, ok bool) {
	var seen uint8
	ok = scanObject(b, func(key []byte, i int) (int, bool) {
		var bit uint8
		var ok bool
		switch string(key) {
		case "command_id":
			bit = 1 << 0
			i, ok = stringField(b, i, &c.CommandID)
		case "order_id":
			bit = 1 << 1
			i, ok = stringField(b, i, &c.OrderID)
		case "action":
			bit = 1 << 2
			i, ok = stringField(b, i, &c.Action)
		case "actor":
			bit = 1 << 3
			i, ok = stringField(b, i, &c.Actor)
		case "reason":
			bit = 1 << 4
			i, ok = stringField(b, i, &c.Reason)
		case "expected_version":
			bit = 1 << 5
			c.ExpectedVersion, i, ok = versionField(b, i)
		case "metadata":
			bit = 1 << 6
			c.Metadata, i, ok = metadataField(b, i)
		case "requested_at":
			bit = 1 << 7
			c.RequestedAt, i, ok = timeField(b, i)
		}
		if !ok || seen&bit != 0 {
			return 0, false
		}
		seen |= bit
		return i, true
	})
	return c, ok
}

// scanObject walks a JSON object that is all of b (white space around it
// aside), checking the syntax around its members. member reads the value of
// key that starts at b[i] (i < len(b) always) and returns the index after
// it; ok false from it, or anything but an object, ends the walk with false.
func scanObject(b []byte, member func(key []byte, i int) (next int, ok bool)) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	for {
		key, next, ok := strictString(b, i)
		if !ok {
			return false
		}
		i = skipSpace(b, next)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		if i = skipSpace(b, i+1); i >= len(b) {
			return false
		}
		if i, ok = member(key, i); !ok {
			return false
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case '}':
			return skipSpace(b, i+1) == len(b)
		case ',':
			i = skipSpace(b, i+1)
		default:
			return false
		}
	}
}

// strictString returns the contents of the JSON string at b[i] and the
// index after it, when it has no escapes and no control characters (which
// JSON forbids inside strings).
func strictString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// isLiteral reports whether b[i:] starts with the literal lit followed by a
// byte that may end a value.
func isLiteral(b []byte, i int, lit string) bool {
	end := i + len(lit)
	return end <= len(b) && string(b[i:end]) == lit && (end == len(b) || endsValue(b[end]))
}

func endsValue(c byte) bool { return c == ',' || c == '}' || isSpace(c) }

// stringField reads a string field; null leaves it empty, as json.Unmarshal
// does.
func stringField(b []byte, i int, dst *string) (int, bool) {
	if isLiteral(b, i, "null") {
		return i + 4, true
	}
	s, next, ok := strictString(b, i)
	if ok {
		*dst = string(s)
	}
	return next, ok
}

// versionField reads expected_version: null, or an integer.
func versionField(b []byte, i int) (*int64, int, bool) {
	if isLiteral(b, i, "null") {
		return nil, i + 4, true
	}
	v, next, ok := strictInt(b, i)
	if !ok {
		return nil, 0, false
	}
	return &v, next, true
}

// strictInt reads an integer written as JSON writes one: no sign but '-', no
// leading zeros, no fraction or exponent (which json.Unmarshal refuses for
// an int64), within int64's range (json.Unmarshal's error says so).
func strictInt(b []byte, i int) (int64, int, bool) {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	digits := j
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	if j == digits || (b[digits] == '0' && j > digits+1) || (j < len(b) && !endsValue(b[j])) {
		return 0, 0, false
	}
	v, err := strconv.ParseInt(string(b[i:j]), 10, 64)
	return v, j, err == nil
}

// metadataField reads metadata when it is an object; json.Unmarshal keeps
// such a value's bytes as they are.
func metadataField(b []byte, i int) (json.RawMessage, int, bool) {
	if b[i] != '{' {
		return nil, 0, false
	}
	end := skipValue(b, i)
	if !json.Valid(b[i:end]) {
		return nil, 0, false
	}
	return append(json.RawMessage(nil), b[i:end]...), end, true
}

// timeField reads requested_at: null, or a time.
func timeField(b []byte, i int) (*time.Time, int, bool) {
	if isLiteral(b, i, "null") {
		return nil, i + 4, true
	}
	t := new(time.Time)
	next, ok := strictTime(b, i, t)
	return t, next, ok
}

// strictTime reads a time string without escapes into t with time.Time's own
// UnmarshalJSON, which is what json.Unmarshal calls, so both accept the same
// times.
func strictTime(b []byte, i int, t *time.Time) (int, bool) {
	_, next, ok := strictString(b, i)
	if !ok || t.UnmarshalJSON(b[i:next]) != nil {
		return 0, false
	}
	return next, true
}
