package topics

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits from the public contract.
const (
	MaxValueBytes    = 64 << 10 // a command record's value
	MaxIDChars       = 128      // command_id and order_id
	MaxTextChars     = 256      // actor and reason
	MaxMetadataBytes = 4 << 10  // metadata, encoded
)

// Outcomes of a command.
const (
	Accepted = "accepted"
	Rejected = "rejected"
)

// Command is the value of a record on orders.commands. Action is kept as a
// string here: which actions exist is the state machine's business, and an
// unknown one is rejected by the processor, not by the codec.
type Command struct {
	CommandID       string          `json:"command_id"`
	OrderID         string          `json:"order_id"`
	Action          string          `json:"action"`
	ExpectedVersion *int64          `json:"expected_version,omitempty"`
	Actor           string          `json:"actor,omitempty"`
	Reason          string          `json:"reason,omitempty"`
	Metadata        json.RawMessage `json:"metadata,omitempty"`
	RequestedAt     *time.Time      `json:"requested_at,omitempty"`
}

// Event is the value of a record on orders.events: the outcome of one
// command. Nullable fields are pointers so that they encode as null, as the
// contract shows.
type Event struct {
	EventID     string          `json:"event_id"`
	CommandID   string          `json:"command_id"`
	OrderID     string          `json:"order_id"`
	Action      string          `json:"action"`
	Outcome     string          `json:"outcome"`
	FromState   *string         `json:"from_state"`
	ToState     *string         `json:"to_state"`
	Version     int64           `json:"version"`
	Reason      *string         `json:"reason"`
	Message     *string         `json:"message"`
	Actor       *string         `json:"actor"`
	Metadata    json.RawMessage `json:"metadata"`
	RequestedAt *time.Time      `json:"requested_at"`
	ProcessedAt time.Time       `json:"processed_at"`
}

// ErrInvalidCommand wraps every reason DecodeCommand refuses a record.
var ErrInvalidCommand = errors.New("invalid command")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidCommand, fmt.Sprintf(format, args...))
}

// DecodeCommand decodes and checks a command record. key is the record key,
// which must equal order_id. Every error wraps ErrInvalidCommand and says
// what is wrong in words a producer's developer can act on.
func DecodeCommand(key, value []byte) (Command, error) {
	if len(value) > MaxValueBytes {
		return Command{}, invalid("value is %d bytes, over the %d byte limit", len(value), MaxValueBytes)
	}
	if !utf8.Valid(value) {
		return Command{}, invalid("value is not valid UTF-8")
	}
	// json.Unmarshal takes null for an empty object: a command must be one.
	if t := bytes.TrimLeft(value, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return Command{}, invalid("value is not a command object: it must be a JSON object")
	}
	// The usual command takes the scan; anything unusual, and every error's
	// wording, comes from encoding/json.
	c, ok := scanCommand(value)
	if !ok {
		c = Command{}
		if err := json.Unmarshal(value, &c); err != nil {
			return Command{}, invalid("value is not a command object: %v", err)
		}
	}
	if err := CheckID("command_id", c.CommandID); err != nil {
		return c, err
	}
	if err := CheckID("order_id", c.OrderID); err != nil {
		return c, err
	}
	if c.Action == "" {
		return c, invalid("action is required")
	}
	if !bytes.Equal(key, []byte(c.OrderID)) {
		return c, invalid("record key %q does not equal order_id %q", truncate(string(key), 64), c.OrderID)
	}
	if err := checkText("actor", c.Actor); err != nil {
		return c, err
	}
	if err := checkText("reason", c.Reason); err != nil {
		return c, err
	}
	if c.ExpectedVersion != nil && *c.ExpectedVersion < 0 {
		return c, invalid("expected_version %d is negative", *c.ExpectedVersion)
	}
	if err := CheckMetadata(c.Metadata); err != nil {
		return c, err
	}
	return c, nil
}

// CheckID checks a command_id or order_id: 1 to MaxIDChars characters, none
// of them control characters.
func CheckID(field, s string) error {
	n := utf8.RuneCountInString(s)
	switch {
	case n == 0:
		return invalid("%s is required", field)
	case n > MaxIDChars:
		return invalid("%s is %d characters, over the limit of %d", field, n, MaxIDChars)
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return invalid("%s contains a control or invalid character (%U)", field, r)
		}
	}
	return nil
}

func checkText(field, s string) error {
	if strings.ContainsRune(s, 0) {
		return invalid("%s contains a NUL character", field)
	}
	if n := utf8.RuneCountInString(s); n > MaxTextChars {
		return invalid("%s is %d characters, over the limit of %d", field, n, MaxTextChars)
	}
	return nil
}

// CheckMetadata checks that metadata, when present, is a JSON object of at
// most MaxMetadataBytes.
func CheckMetadata(m json.RawMessage) error {
	if len(m) == 0 || bytes.Equal(m, []byte("null")) {
		return nil
	}
	if len(m) > MaxMetadataBytes {
		return invalid("metadata is %d bytes, over the limit of %d", len(m), MaxMetadataBytes)
	}
	if m[0] != '{' {
		return invalid("metadata must be a JSON object")
	}
	return nil
}

// Identify reads just command_id and order_id from a record that failed
// DecodeCommand, so that the producer can still be answered with a rejected
// event. ok is false when either is missing or itself invalid.
func Identify(value []byte) (commandID, orderID string, ok bool) {
	if len(value) > MaxValueBytes {
		return "", "", false
	}
	var ids struct {
		CommandID string `json:"command_id"`
		OrderID   string `json:"order_id"`
	}
	// A type error elsewhere in the object still fills the fields that did
	// decode, so the error itself is not the test; the checks below are.
	_ = json.Unmarshal(value, &ids)
	if CheckID("command_id", ids.CommandID) != nil || CheckID("order_id", ids.OrderID) != nil {
		return "", "", false
	}
	return ids.CommandID, ids.OrderID, true
}

// EncodeCommand encodes c after checking it as DecodeCommand would, so that
// nothing orderflow sends can land in its own DLQ.
func EncodeCommand(c Command) ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	if _, err := DecodeCommand([]byte(c.OrderID), b); err != nil {
		return nil, err
	}
	return b, nil
}

// EncodeEvent encodes an outcome event. The usual event takes appendEvent;
// anything unusual, and every error, comes from json.Marshal, whose output
// appendEvent matches byte for byte.
func EncodeEvent(e *Event) ([]byte, error) {
	if b, ok := appendEvent(nil, e); ok {
		return b, nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	return b, nil
}

// DecodeEvent decodes an outcome event.
func DecodeEvent(value []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(value, &e); err != nil {
		return e, fmt.Errorf("decode event: %w", err)
	}
	return e, nil
}

// AcceptedEventID is the event_id of the accepted outcome that took order to
// version: stable across retries because the version is.
func AcceptedEventID(orderID string, version int64) string {
	return orderID + "/" + strconv.FormatInt(version, 10)
}

// RejectedEventID is the event_id of a rejected outcome. A command_id has one
// outcome, so it makes the id unique; the order and version keep it readable.
func RejectedEventID(orderID string, version int64, commandID string) string {
	return orderID + "/" + strconv.FormatInt(version, 10) + "/rejected/" + commandID
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
