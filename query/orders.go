package query

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/orderflow/orderflow/processor/machine"
	"github.com/orderflow/orderflow/topics"
)

// Order is the answer of GET /v1/orders/{order_id} and an item of a listing.
type Order struct {
	OrderID        string           `json:"order_id"`
	State          machine.State    `json:"state"`
	Version        int64            `json:"version"`
	CreatedAt      time.Time        `json:"created_at"`
	UpdatedAt      time.Time        `json:"updated_at"`
	AllowedActions []machine.Action `json:"allowed_actions"`
}

// OrderPage is the answer of GET /v1/orders. NextCursor is null on the last
// page.
type OrderPage struct {
	Orders     []Order `json:"orders"`
	NextCursor *string `json:"next_cursor"`
}

// HistoryPage is the answer of GET /v1/orders/{order_id}/history: outcome
// events, oldest first. NextCursor is null on the last page.
type HistoryPage struct {
	Events     []topics.Event `json:"events"`
	NextCursor *string        `json:"next_cursor"`
}

// Stats is the answer of GET /v1/stats. Counts has every state, zeros
// included.
type Stats struct {
	Counts map[string]int64 `json:"counts"`
	Total  int64            `json:"total"`
}

func (sn snapshot) order() Order {
	allowed := machine.Allowed(sn.State)
	if allowed == nil {
		allowed = []machine.Action{} // terminal: [] rather than null
	}
	return Order{OrderID: sn.OrderID, State: sn.State, Version: sn.Version,
		CreatedAt: sn.CreatedAt, UpdatedAt: sn.UpdatedAt, AllowedActions: allowed}
}

// readOrder returns the order at version min or above when the cache has
// it, else what PostgreSQL has (filling the cache). A cache entry below min
// is not trusted to be current: the cache may lag PostgreSQL by the event
// publish delay, and min_version is how a client closes that gap.
func (s *Server) readOrder(ctx context.Context, id string, min int64) (snapshot, bool, error) {
	if sn, ok := s.orders.get(id); ok && sn.Version >= min {
		s.metrics.cache.WithLabelValues("orders", "hit").Inc()
		return sn, true, nil
	}
	s.metrics.cache.WithLabelValues("orders", "miss").Inc()
	s.orders.beginFill(id)
	sn, found, err := s.db.order(ctx, id)
	s.orders.endFill(id, sn, found && err == nil)
	return sn, found, err
}

// getOrder serves GET /v1/orders/{order_id}[?min_version=N][&wait=2s].
// Without min_version a cache hit answers; with it, the order must have
// reached version N. With wait and no min_version, it waits for the order
// to exist.
func (s *Server) getOrder(c *gin.Context) {
	id, aerr := pathID(c, "order_id", CodeInvalidOrderID)
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	q, aerr := params(c, "min_version", "wait")
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	minVersion, aerr := parseVersion(q, "min_version")
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	wait, aerr := parseWait(q, s.cfg.MaxWait)
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	ctx := c.Request.Context()
	target := max(minVersion, 1) // "exists" is version 1

	var sn snapshot
	var found bool
	check := func(*topics.Event) (bool, error) {
		var err error
		sn, found, err = s.readOrder(ctx, id, target)
		return found && sn.Version >= target, err
	}
	var notify <-chan topics.Event
	if wait > 0 {
		// Registered before the first check, so an event that lands between
		// the check and the wait still wakes this request.
		w, cancel := s.hub.waitOrder(id, target)
		defer cancel()
		notify = w.ch
	}
	done, err := s.waitUntil(ctx, wait, notify, check)
	switch {
	case err != nil:
		s.unavailable(c, "PostgreSQL", err)
	case done:
		writeJSON(c, http.StatusOK, sn.order())
	case !found:
		writeError(c, newError(http.StatusNotFound, CodeOrderNotFound, "order %q does not exist", id))
	default:
		writeError(c, newError(http.StatusPreconditionFailed, CodeVersionNotReached,
			"order %q is at version %d, below min_version %d", id, sn.Version, minVersion))
	}
}

// listOrders serves GET /v1/orders[?state=Paid][&limit=N][&cursor=C],
// ordered by order_id.
func (s *Server) listOrders(c *gin.Context) {
	q, aerr := params(c, "state", "limit", "cursor")
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	state := ""
	if v, ok := q["state"]; ok {
		st, err := machine.ParseState(v[0])
		if err != nil {
			writeError(c, badRequest(CodeInvalidParameter, "state %q is not one of %s", truncate(v[0], 32), stateList()))
			return
		}
		state = string(st)
	}
	limit, aerr := parseLimit(q)
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	after := ""
	if v, ok := q["cursor"]; ok {
		cur, err := decodeListCursor(v[0], state)
		if err != nil {
			writeError(c, badRequest(CodeInvalidCursor, "%v", err))
			return
		}
		after = cur.OrderID
	}
	rows, err := s.db.orders(c.Request.Context(), state, after, limit+1)
	if err != nil {
		s.unavailable(c, "PostgreSQL", err)
		return
	}
	page := OrderPage{Orders: make([]Order, 0, min(len(rows), limit))}
	if len(rows) > limit {
		rows = rows[:limit]
		next := encodeCursor(listCursor{State: state, OrderID: rows[len(rows)-1].OrderID})
		page.NextCursor = &next
	}
	for _, r := range rows {
		page.Orders = append(page.Orders, r.order())
	}
	writeJSON(c, http.StatusOK, page)
}

// history serves GET /v1/orders/{order_id}/history[?limit=N][&cursor=C].
// An order id that never had an outcome is a 404; one whose only outcomes
// were rejections (say, pay before create) has a history.
func (s *Server) history(c *gin.Context) {
	id, aerr := pathID(c, "order_id", CodeInvalidOrderID)
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	q, aerr := params(c, "limit", "cursor")
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	limit, aerr := parseLimit(q)
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	var after *historyCursor
	if v, ok := q["cursor"]; ok {
		cur, err := decodeHistoryCursor(v[0], id)
		if err != nil {
			writeError(c, badRequest(CodeInvalidCursor, "%v", err))
			return
		}
		after = &cur
	}
	rows, err := s.db.history(c.Request.Context(), id, after, limit+1)
	if err != nil {
		s.unavailable(c, "PostgreSQL", err)
		return
	}
	if len(rows) == 0 && after == nil {
		writeError(c, newError(http.StatusNotFound, CodeOrderNotFound, "order %q has no history", id))
		return
	}
	page := HistoryPage{Events: make([]topics.Event, 0, min(len(rows), limit))}
	if len(rows) > limit {
		rows = rows[:limit]
		last := rows[len(rows)-1]
		next := encodeCursor(historyCursor{OrderID: id, ProcessedAt: last.ProcessedAt, Seq: last.seq})
		page.NextCursor = &next
	}
	for _, r := range rows {
		page.Events = append(page.Events, r.Event)
	}
	writeJSON(c, http.StatusOK, page)
}

// stats serves GET /v1/stats.
func (s *Server) stats(c *gin.Context) {
	if _, aerr := params(c); aerr != nil {
		writeError(c, aerr)
		return
	}
	counts, err := s.db.stats(c.Request.Context())
	if err != nil {
		s.unavailable(c, "PostgreSQL", err)
		return
	}
	out := Stats{Counts: make(map[string]int64, len(counts))}
	for _, st := range machine.States() {
		out.Counts[string(st)] = 0
	}
	for st, n := range counts {
		out.Counts[st] = n
		out.Total += n
	}
	writeJSON(c, http.StatusOK, out)
}

func stateList() string {
	names := make([]string, 0, 6)
	for _, s := range machine.States() {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}

func actionList() string {
	names := make([]string, 0, 6)
	for _, a := range machine.Actions() {
		names = append(names, string(a))
	}
	return strings.Join(names, ", ")
}
