package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/processor/machine"
	"github.com/orderflow/orderflow/topics"
)

// CommandPending is the 202 answer of POST /v1/orders/{order_id}/commands:
// the command is on orders.commands, its outcome not known yet. Poll
// GET /v1/commands/{command_id} (the Location header) for it.
type CommandPending struct {
	CommandID string `json:"command_id"`
	Status    string `json:"status"` // always "pending"
}

// commandBody is the POST body: a command without order_id (which may be
// present if it equals the path). Pointers and raw messages tell an absent
// field from a zero one and let each field be checked with a precise message.
type commandBody struct {
	CommandID       *string         `json:"command_id"`
	OrderID         *string         `json:"order_id"`
	Action          *string         `json:"action"`
	ExpectedVersion *int64          `json:"expected_version"`
	Actor           *string         `json:"actor"`
	Reason          *string         `json:"reason"`
	Metadata        json.RawMessage `json:"metadata"`
	RequestedAt     json.RawMessage `json:"requested_at"`
}

// decodeCommandBody decodes and checks a POST body for the order orderID
// (already checked). CommandID is "" when the body has none; the caller
// generates one. It is stricter than topics.DecodeCommand (unknown fields
// are refused: a misspelt expected_version must not be silently dropped),
// so whatever it accepts encodes with topics.EncodeCommand and can never
// land in the DLQ; FuzzDecodeCommandBody checks that.
func decodeCommandBody(orderID string, body []byte) (topics.Command, *apiError) {
	var cmd topics.Command
	trimmed := bytes.TrimSpace(body)
	switch {
	case len(trimmed) == 0:
		return cmd, badRequest(CodeInvalidJSON, `the body is empty; send a command object such as {"action":"pay"}`)
	case trimmed[0] != '{':
		return cmd, badRequest(CodeInvalidJSON, "the body must be a JSON object")
	case !utf8.Valid(body):
		return cmd, badRequest(CodeInvalidJSON, "the body is not valid UTF-8")
	}
	var b commandBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return cmd, jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return cmd, badRequest(CodeInvalidJSON, "the body has data after the command object")
	}

	if b.OrderID != nil && *b.OrderID != orderID {
		return cmd, badRequest(CodeOrderIDMismatch, "order_id %q in the body differs from %q in the path", truncate(*b.OrderID, 140), orderID)
	}
	cmd.OrderID = orderID
	if b.CommandID != nil {
		if err := topics.CheckID("command_id", *b.CommandID); err != nil {
			return cmd, badRequest(CodeInvalidCommandID, "%s (omit command_id to have one generated)", contractMessage(err))
		}
		cmd.CommandID = *b.CommandID
	}
	if b.Action == nil || *b.Action == "" {
		return cmd, badRequest(CodeMissingField, "action is required: one of %s", actionList())
	}
	a, err := machine.ParseAction(*b.Action)
	if err != nil {
		return cmd, badRequest(CodeInvalidAction, "action %q is not one of %s", truncate(*b.Action, 32), actionList())
	}
	cmd.Action = string(a)
	if b.ExpectedVersion != nil {
		if *b.ExpectedVersion < 0 {
			return cmd, badRequest(CodeInvalidField, "expected_version %d is negative", *b.ExpectedVersion)
		}
		cmd.ExpectedVersion = b.ExpectedVersion
	}
	for _, f := range []struct {
		name string
		v    *string
		dst  *string
	}{{"actor", b.Actor, &cmd.Actor}, {"reason", b.Reason, &cmd.Reason}} {
		if f.v == nil {
			continue
		}
		if n := utf8.RuneCountInString(*f.v); n > topics.MaxTextChars {
			return cmd, badRequest(CodeInvalidField, "%s is %d characters, over the limit of %d", f.name, n, topics.MaxTextChars)
		}
		*f.dst = *f.v
	}
	if len(b.Metadata) > 0 && !bytes.Equal(b.Metadata, []byte("null")) {
		// Measured compact, as it travels: indentation is not the client's
		// data and must not count against the 4 KiB.
		var buf bytes.Buffer
		if err := json.Compact(&buf, b.Metadata); err != nil {
			return cmd, badRequest(CodeInvalidField, "metadata is not valid JSON")
		}
		if err := topics.CheckMetadata(buf.Bytes()); err != nil {
			return cmd, badRequest(CodeInvalidField, "%s", contractMessage(err))
		}
		cmd.Metadata = buf.Bytes()
	}
	if len(b.RequestedAt) > 0 && !bytes.Equal(b.RequestedAt, []byte("null")) {
		t, ok := parseTime(b.RequestedAt)
		if !ok {
			return cmd, badRequest(CodeInvalidField, "requested_at must be an RFC 3339 time such as 2026-11-25T18:00:00.000Z")
		}
		cmd.RequestedAt = &t
	}
	return cmd, nil
}

// parseTime reads a JSON string holding an RFC 3339 time.
func parseTime(raw json.RawMessage) (time.Time, bool) {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// jsonError maps a decoding error to the code the client can act on.
func jsonError(err error) *apiError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return badRequest(CodeInvalidJSON, "the body is not valid JSON (at byte %d): %v", syn.Offset, err)
	case errors.As(err, &typ) && typ.Field != "":
		return badRequest(CodeInvalidField, "%s must be %s, not a JSON %s", typ.Field, jsonTypeName(typ.Type.Kind().String()), typ.Value)
	case errors.As(err, &typ):
		return badRequest(CodeInvalidJSON, "the body must be a JSON object, not a JSON %s", typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return badRequest(CodeInvalidJSON, "the body ends in the middle of the JSON object")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return badRequest(CodeUnknownField, "unknown field %s: a command has command_id, action, expected_version, actor, reason, metadata, requested_at", field)
	default:
		return badRequest(CodeInvalidJSON, "the body is not a command object: %v", err)
	}
}

func jsonTypeName(kind string) string {
	switch kind {
	case "int64":
		return "an integer"
	case "string", "ptr":
		return "a string"
	default:
		return "a " + kind
	}
}

// contractMessage strips the "invalid command: " prefix topics puts on its
// errors; over HTTP the code already says that.
func contractMessage(err error) string {
	return strings.TrimPrefix(err.Error(), topics.ErrInvalidCommand.Error()+": ")
}

// postCommand serves POST /v1/orders/{order_id}/commands[?wait=5s].
//
// The order of steps is what makes retries and waits safe:
//  1. with wait, register for the command's outcome first;
//  2. look the command_id up (cache, then PostgreSQL): a known outcome is
//     answered at once and nothing is published again;
//  3. publish to orders.commands (key order_id), synchronously;
//  4. wait for the outcome event, polling PostgreSQL as a safety net.
//
// An outcome that commits after step 2 is published after it commits, so
// the registration of step 1 catches it; one that committed before, step 2
// finds.
func (s *Server) postCommand(c *gin.Context) {
	orderID, aerr := pathID(c, "order_id", CodeInvalidOrderID)
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	q, aerr := params(c, "wait")
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	wait, aerr := parseWait(q, s.cfg.MaxWait)
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	if ct := c.GetHeader("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			writeError(c, newError(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, "the body must be application/json, not %q", truncate(ct, 64)))
			return
		}
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(c, newError(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "the body is over the limit of %d bytes", MaxBodyBytes))
			return
		}
		writeError(c, badRequest(CodeInvalidJSON, "the body could not be read"))
		return
	}
	cmd, aerr := decodeCommandBody(orderID, body)
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	generated := cmd.CommandID == ""
	if generated {
		cmd.CommandID = uuid.NewString()
	}
	if cmd.RequestedAt == nil {
		// The processor measures end-to-end latency from requested_at;
		// the moment the API received the command is the honest start.
		now := time.Now().UTC().Truncate(time.Millisecond)
		cmd.RequestedAt = &now
	}
	value, err := topics.EncodeCommand(cmd)
	if err != nil {
		// decodeCommandBody is stricter than the codec, so this is a bug.
		s.log.Error("a checked command does not encode", "err", err, "request_id", requestID(c))
		writeError(c, newError(http.StatusInternalServerError, CodeInternal, "internal error (request id %s)", requestID(c)))
		return
	}
	ctx := c.Request.Context()

	var notify <-chan topics.Event
	if wait > 0 {
		w, cancel := s.hub.waitCommand(cmd.CommandID)
		defer cancel()
		notify = w.ch
	}
	if !generated { // a fresh UUID cannot have an outcome yet
		ev, found, err := s.lookupOutcome(ctx, cmd.CommandID)
		if err != nil {
			s.unavailable(c, "PostgreSQL", err)
			return
		}
		if found {
			s.answerOutcome(c, cmd, ev)
			return
		}
	}
	rec := &kgo.Record{Topic: s.names.Commands, Key: []byte(cmd.OrderID), Value: value}
	if err := s.producer.ProduceSync(ctx, rec).FirstErr(); err != nil {
		s.unavailable(c, "Kafka", err)
		return
	}
	if wait > 0 {
		var ev topics.Event
		done, err := s.waitUntil(ctx, wait, notify, func(got *topics.Event) (bool, error) {
			if got != nil {
				ev = *got
				return true, nil
			}
			var found bool
			var err error
			ev, found, err = s.lookupOutcome(ctx, cmd.CommandID)
			return found, err
		})
		if err != nil {
			s.unavailable(c, "PostgreSQL", err)
			return
		}
		if done {
			s.answerOutcome(c, cmd, ev)
			return
		}
	}
	c.Header("Location", "/v1/commands/"+url.PathEscape(cmd.CommandID))
	writeJSON(c, http.StatusAccepted, CommandPending{CommandID: cmd.CommandID, Status: "pending"})
}

// answerOutcome answers with an outcome: 200 accepted, 409 rejected, the
// event as the body. An outcome of another order or action under the same
// command_id means the client reused an id, which must not pass for success.
func (s *Server) answerOutcome(c *gin.Context, cmd topics.Command, ev topics.Event) {
	if ev.OrderID != cmd.OrderID || ev.Action != cmd.Action {
		writeError(c, newError(http.StatusUnprocessableEntity, CodeCommandIDReused,
			"command_id %q was already used for %s on order %q; use a new command_id", cmd.CommandID, ev.Action, ev.OrderID))
		return
	}
	status := http.StatusOK
	if ev.Outcome != topics.Accepted {
		status = http.StatusConflict
	}
	writeJSON(c, status, ev)
}

// lookupOutcome finds a command's outcome in the cache, else PostgreSQL.
func (s *Server) lookupOutcome(ctx context.Context, commandID string) (topics.Event, bool, error) {
	if ev, ok := s.outcomes.get(commandID); ok {
		s.metrics.cache.WithLabelValues("outcomes", "hit").Inc()
		return ev, true, nil
	}
	s.metrics.cache.WithLabelValues("outcomes", "miss").Inc()
	ev, found, err := s.db.outcome(ctx, commandID)
	if found {
		s.outcomes.put(commandID, &lazyEvent{ev: &ev})
	}
	return ev, found, err
}

// getCommand serves GET /v1/commands/{command_id}: the outcome event,
// accepted or rejected, or 404 while unknown or pending.
func (s *Server) getCommand(c *gin.Context) {
	id, aerr := pathID(c, "command_id", CodeInvalidCommandID)
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	if _, aerr := params(c); aerr != nil {
		writeError(c, aerr)
		return
	}
	ev, found, err := s.lookupOutcome(c.Request.Context(), id)
	switch {
	case err != nil:
		s.unavailable(c, "PostgreSQL", err)
	case !found:
		writeError(c, newError(http.StatusNotFound, CodeCommandNotFound, "no outcome for command %q: unknown, or not processed yet", id))
	default:
		writeJSON(c, http.StatusOK, ev)
	}
}
