package topics

import (
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"
)

// EventHead is the part of an outcome event that a read model needs: whose
// command it was, which order it moved, and where to. A reader that follows
// orders.events at the processor's full rate (the API's feed) decodes this
// much of every event and the rest only when someone asks for it.
type EventHead struct {
	CommandID   string
	OrderID     string
	Outcome     string
	ToState     *string
	Version     int64
	ProcessedAt time.Time
}

// Head returns e's head.
func (e *Event) Head() EventHead {
	return EventHead{CommandID: e.CommandID, OrderID: e.OrderID, Outcome: e.Outcome,
		ToState: e.ToState, Version: e.Version, ProcessedAt: e.ProcessedAt}
}

// errSlowPath sends a well-formed event that the scan below does not handle
// to the full decoder.
var errSlowPath = errors.New("not on the fast path")

// DecodeEventHead decodes the head of an event. It returns what DecodeEvent
// followed by Head would, for every input (FuzzEventHead checks this), in a
// fraction of the time: encoding/json decodes every field of an Event
// through reflection, while this checks and reads the value in one flat
// scan. Values the scan does not expect (escaped strings in the fields it
// reads, keys an Event does not have, which encoding/json would match
// without regard to case, and anything malformed) go through DecodeEvent,
// which also words the errors.
func DecodeEventHead(value []byte) (EventHead, error) {
	if h, err := scanHead(value); err == nil {
		return h, nil
	}
	e, err := DecodeEvent(value)
	if err != nil {
		return EventHead{}, err
	}
	return e.Head(), nil
}

// scanHead reads the head fields of a flat object, as EncodeEvent writes
// it, checking the JSON as it goes (json.Valid first cost as much as the
// scan). The last of duplicated keys wins, as with encoding/json.
func scanHead(b []byte) (EventHead, error) {
	var h EventHead
	ok := scanObject(b, func(key []byte, i int) (int, bool) {
		var err error
		switch string(key) {
		case "command_id":
			h.CommandID, i, err = headString(b, i)
		case "order_id":
			h.OrderID, i, err = headString(b, i)
		case "outcome":
			h.Outcome, i, err = headString(b, i)
		case "to_state":
			h.ToState = nil
			if isLiteral(b, i, "null") {
				i += 4
				break
			}
			var s string
			s, i, err = headString(b, i)
			h.ToState = &s
		case "version":
			if isLiteral(b, i, "null") {
				i += 4
				break
			}
			var ok bool
			if h.Version, i, ok = strictInt(b, i); !ok {
				err = errSlowPath
			}
		case "event_id", "action", "from_state", "reason", "message", "actor":
			// Not read, but encoding/json refuses a value of another type.
			if isLiteral(b, i, "null") {
				i += 4
			} else {
				i, err = validString(b, i)
			}
		case "requested_at":
			var t time.Time
			i, err = headTime(b, i, &t)
		case "processed_at":
			i, err = headTime(b, i, &h.ProcessedAt)
		case "metadata": // any JSON value
			if i >= len(b) {
				err = errSlowPath
				break
			}
			end := skipValue(b, i)
			if !json.Valid(b[i:end]) {
				err = errSlowPath
			}
			i = end
		default:
			// A key an Event does not have; encoding/json would also match
			// one that differs only in case.
			err = errSlowPath
		}
		return i, err == nil
	})
	if !ok {
		return h, errSlowPath
	}
	return h, nil
}

// headString reads a JSON string without escapes; anything else (null
// included, which encoding/json leaves as the zero value) takes the slow
// path, and so does invalid UTF-8, which encoding/json replaces.
func headString(b []byte, i int) (string, int, error) {
	s, next, ok := strictString(b, i)
	if !ok || !utf8.Valid(s) {
		return "", 0, errSlowPath
	}
	return string(s), next, nil
}

// headTime reads a time with time.Time's own UnmarshalJSON, which is what
// encoding/json calls, so both accept the same times; null leaves t alone.
func headTime(b []byte, i int, t *time.Time) (int, error) {
	if isLiteral(b, i, "null") {
		return i + 4, nil
	}
	_, next, ok := strictString(b, i)
	if !ok || t.UnmarshalJSON(b[i:next]) != nil {
		return 0, errSlowPath
	}
	return next, nil
}

// validString returns the index after the JSON string at b[i], checking its
// escapes; its contents are not needed.
func validString(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, errSlowPath
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, nil
		case c < 0x20:
			return 0, errSlowPath
		case c == '\\':
			if j+1 >= len(b) {
				return 0, errSlowPath
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j++
			case 'u':
				if j+5 >= len(b) || !isHex4(b[j+2:j+6]) {
					return 0, errSlowPath
				}
				j += 5
			default:
				return 0, errSlowPath
			}
		}
	}
	return 0, errSlowPath
}

func isHex4(b []byte) bool {
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}

// skipValue returns the index just past the valid JSON value at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	default: // number, true, false, null
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && !isSpace(b[i]) {
			i++
		}
		return i
	}
}

// skipString returns the index just past the string starting at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
