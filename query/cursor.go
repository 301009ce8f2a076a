package query

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/orderflow/orderflow/topics"
)

// Cursors are opaque to clients: base64url (no padding) of a small JSON
// object holding the last key of the page served. Paging resumes strictly
// after that key (keyset pagination), so rows inserted while a client pages
// never shift a page: nothing is served twice and nothing that existed
// throughout is skipped. A cursor also names the query it belongs to (the
// state, or the order), so using it with another query is an error rather
// than a silently wrong page.

// maxCursorChars bounds what the decoder looks at; real cursors are a few
// hundred characters at most (order ids are at most 128 characters).
const maxCursorChars = 2048

// listCursor resumes GET /v1/orders after OrderID, within State ("" for all
// states).
type listCursor struct {
	State   string `json:"s"`
	OrderID string `json:"k"`
}

// historyCursor resumes an order's history after (ProcessedAt, Seq), the
// key of index transitions_by_order.
type historyCursor struct {
	OrderID     string    `json:"o"`
	ProcessedAt time.Time `json:"t"`
	Seq         int64     `json:"q"`
}

func encodeCursor(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode cursor: %v", err)) // the cursor types always marshal
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor decodes strictly: one JSON object with known fields only.
func decodeCursor(s string, v any) error {
	if len(s) > maxCursorChars {
		return fmt.Errorf("cursor is %d characters, longer than any this API hands out", len(s))
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return fmt.Errorf("cursor is not one this API handed out (not base64url)")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil || dec.More() {
		return fmt.Errorf("cursor is not one this API handed out")
	}
	return nil
}

func decodeListCursor(s string, state string) (listCursor, error) {
	var c listCursor
	if err := decodeCursor(s, &c); err != nil {
		return c, err
	}
	if c.State != state {
		return c, fmt.Errorf("cursor belongs to a listing of state %q, not %q", c.State, state)
	}
	if err := topics.CheckID("cursor order id", c.OrderID); err != nil {
		return c, fmt.Errorf("cursor is not one this API handed out")
	}
	return c, nil
}

func decodeHistoryCursor(s string, orderID string) (historyCursor, error) {
	var c historyCursor
	if err := decodeCursor(s, &c); err != nil {
		return c, err
	}
	if c.OrderID != orderID {
		return c, fmt.Errorf("cursor belongs to the history of another order")
	}
	if c.ProcessedAt.IsZero() || c.Seq < 0 {
		return c, fmt.Errorf("cursor is not one this API handed out")
	}
	return c, nil
}
