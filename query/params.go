package query

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/orderflow/orderflow/topics"
)

// Limits of query parameters.
const (
	// DefaultLimit and MaxLimit bound the page size of listings.
	DefaultLimit = 100
	MaxLimit     = 1000
	// DefaultMaxWait is the longest ?wait= a request may ask for.
	DefaultMaxWait = 30 * time.Second
)

// params returns the query parameters after checking that each is one the
// endpoint takes and appears once: a typo such as ?min_verison=3 must fail
// loudly, not silently turn read-your-writes off.
func params(c *gin.Context, allowed ...string) (url.Values, *apiError) {
	q, err := url.ParseQuery(c.Request.URL.RawQuery)
	if err != nil {
		return nil, badRequest(CodeInvalidParameter, "the query string is malformed: %v", err)
	}
	for name, vals := range q {
		if !slices.Contains(allowed, name) {
			if len(allowed) == 0 {
				return nil, badRequest(CodeUnknownParameter, "unknown query parameter %q: this endpoint takes none", name)
			}
			return nil, badRequest(CodeUnknownParameter, "unknown query parameter %q: this endpoint takes %s", name, strings.Join(allowed, ", "))
		}
		if len(vals) > 1 {
			return nil, badRequest(CodeInvalidParameter, "query parameter %q is given %d times", name, len(vals))
		}
	}
	return q, nil
}

// parseWait reads ?wait= as a Go duration ("2s", "500ms"); absent means 0.
// Over max is refused rather than cut short, so a client never believes it
// waited longer than it did.
func parseWait(q url.Values, max time.Duration) (time.Duration, *apiError) {
	s, ok := q["wait"]
	if !ok {
		return 0, nil
	}
	d, err := time.ParseDuration(s[0])
	switch {
	case err != nil:
		return 0, badRequest(CodeInvalidParameter, "wait %q is not a duration such as 2s or 500ms", truncate(s[0], 32))
	case d < 0:
		return 0, badRequest(CodeInvalidParameter, "wait %s is negative", d)
	case d > max:
		return 0, badRequest(CodeInvalidParameter, "wait %s is over the maximum of %s", d, max)
	}
	return d, nil
}

// parseLimit reads ?limit=, 1 to MaxLimit, default DefaultLimit.
func parseLimit(q url.Values) (int, *apiError) {
	s, ok := q["limit"]
	if !ok {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(s[0])
	if err != nil || n < 1 || n > MaxLimit {
		return 0, badRequest(CodeInvalidParameter, "limit %q must be an integer from 1 to %d", truncate(s[0], 32), MaxLimit)
	}
	return n, nil
}

// parseVersion reads a non-negative integer parameter such as min_version.
func parseVersion(q url.Values, name string) (int64, *apiError) {
	s, ok := q[name]
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseInt(s[0], 10, 64)
	if err != nil || n < 0 {
		return 0, badRequest(CodeInvalidParameter, "%s %q must be a non-negative integer", name, truncate(s[0], 32))
	}
	return n, nil
}

// pathID reads and checks an id from the path against the contract's limits.
func pathID(c *gin.Context, name, code string) (string, *apiError) {
	id := c.Param(name)
	if err := topics.CheckID(name, id); err != nil {
		return "", badRequest(code, "%s", strings.TrimPrefix(err.Error(), topics.ErrInvalidCommand.Error()+": "))
	}
	return id, nil
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
