package topics

import (
	"encoding/json"
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

// DecodeEventHead decodes the head of an event. It returns what DecodeEvent
// followed by Head would, for every input (FuzzEventHead checks this), in a
// fraction of the time: encoding/json decodes every field of an Event
// through reflection, while this checks and reads the value in one flat
// scan. Values the scan does not expect (escaped strings in the fields it
// reads, keys an Event does not have, which encoding/json would match
// without regard to case, and anything malformed) go through DecodeEvent,
// which also words the errors.
func DecodeEventHead(value []byte) (EventHead, error) {
	if h, ok := scanHead(value); ok {
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
// scan). The last of duplicated keys wins, as with encoding/json. ok is
// false for anything the scan leaves to DecodeEvent.
func scanHead(b []byte) (h EventHead, ok bool) {
	ok = scanObject(b, func(key []byte, i int) (int, bool) {
		if isLiteral(b, i, "null") {
			switch string(key) {
			case "to_state":
				h.ToState = nil
				return i + 4, true
			case "version", "event_id", "action", "from_state", "reason", "message", "actor",
				"requested_at", "processed_at", "metadata":
				// encoding/json leaves these as they were.
				return i + 4, true
			}
			return 0, false // null in a string encoding/json leaves empty: rare, so not handled
		}
		var ok bool
		switch string(key) {
		case "command_id":
			h.CommandID, i, ok = headString(b, i)
		case "order_id":
			h.OrderID, i, ok = headString(b, i)
		case "outcome":
			h.Outcome, i, ok = headString(b, i)
		case "to_state":
			var s string
			if s, i, ok = headString(b, i); ok {
				h.ToState = &s
			}
		case "version":
			h.Version, i, ok = strictInt(b, i)
		case "event_id", "action", "from_state", "reason", "message", "actor":
			// Not read, but encoding/json refuses a value of another type.
			i, ok = validString(b, i)
		case "requested_at":
			var t time.Time
			i, ok = strictTime(b, i, &t)
		case "processed_at":
			i, ok = strictTime(b, i, &h.ProcessedAt)
		case "metadata": // any JSON value
			end := skipValue(b, i)
			i, ok = end, json.Valid(b[i:end])
		}
		// ok stays false for a key an Event does not have; encoding/json
		// would also match one that differs only in case.
		return i, ok
	})
	return h, ok
}

// headString reads a JSON string without escapes; anything else takes the
// slow path, and so does invalid UTF-8, which encoding/json replaces.
func headString(b []byte, i int) (string, int, bool) {
	s, next, ok := strictString(b, i)
	if !ok || !utf8.Valid(s) {
		return "", 0, false
	}
	return string(s), next, true
}

// validString returns the index after the JSON string at b[i], checking its
// escapes; its contents are not needed.
func validString(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, true
		case c < 0x20:
			return 0, false
		case c == '\\':
			if j+1 >= len(b) {
				return 0, false
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j++
			case 'u':
				if j+5 >= len(b) || !isHex4(b[j+2:j+6]) {
					return 0, false
				}
				j += 5
			default:
				return 0, false
			}
		}
	}
	return 0, false
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
