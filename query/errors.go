package query

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
)

// Error codes a client can get in {"error": {"code", "message"}}. Each one
// names one thing the client can act on; docs/api.md lists them with their
// statuses.
const (
	CodeInvalidJSON          = "invalid_json"           // 400: body is not one JSON object
	CodeUnknownField         = "unknown_field"          // 400: body has a field the API does not know
	CodeInvalidField         = "invalid_field"          // 400: a body field has the wrong type or breaks a limit
	CodeMissingField         = "missing_field"          // 400: a required body field is absent
	CodeInvalidAction        = "invalid_action"         // 400: action is not one of the machine's actions
	CodeOrderIDMismatch      = "order_id_mismatch"      // 400: body order_id differs from the path
	CodeInvalidOrderID       = "invalid_order_id"       // 400: order id breaks the contract's limits
	CodeInvalidCommandID     = "invalid_command_id"     // 400: command id breaks the contract's limits
	CodeInvalidParameter     = "invalid_parameter"      // 400: a query parameter value is malformed or out of range
	CodeUnknownParameter     = "unknown_parameter"      // 400: a query parameter the endpoint does not take
	CodeInvalidCursor        = "invalid_cursor"         // 400: cursor is malformed or belongs to another query
	CodeUnauthorized         = "unauthorized"           // 401: no key, or an unknown one
	CodeForbidden            = "forbidden"              // 403: the key's scope does not allow this
	CodeNotFound             = "not_found"              // 404: no such route
	CodeOrderNotFound        = "order_not_found"        // 404: no such order
	CodeCommandNotFound      = "command_not_found"      // 404: no outcome for this command id (unknown or pending)
	CodeMethodNotAllowed     = "method_not_allowed"     // 405
	CodeVersionNotReached    = "version_not_reached"    // 412: order exists below min_version
	CodeBodyTooLarge         = "body_too_large"         // 413: body over MaxBodyBytes
	CodeUnsupportedMediaType = "unsupported_media_type" // 415: body is not application/json
	CodeCommandIDReused      = "command_id_reused"      // 422: command id already used for another order or action
	CodeInternal             = "internal"               // 500: a bug; the request id is in the logs
	CodeUnavailable          = "unavailable"            // 503: PostgreSQL or Kafka did not answer
	CodeNotReady             = "not_ready"              // 503: /readyz found a dependency down
)

// ErrorBody is the JSON of every error answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody: a stable code for programs and a
// message for people.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// apiError is an error that knows its HTTP answer. Handlers return it from
// helpers so that every failure path ends in the same JSON shape.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func newError(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func badRequest(code, format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, code, format, args...)
}

// unavailable wraps a dependency failure. The cause goes to the log, not the
// client: it can name hosts and SQL, which are nobody's business outside.
func (s *Server) unavailable(c *gin.Context, what string, err error) {
	s.log.Warn("dependency failed", "what", what, "err", err, "request_id", requestID(c))
	writeError(c, newError(http.StatusServiceUnavailable, CodeUnavailable, "%s is unavailable; retry later", what))
}

func writeError(c *gin.Context, e *apiError) {
	if e.status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="orderflow"`)
	}
	writeJSON(c, e.status, ErrorBody{Error: ErrorDetail{Code: e.code, Message: e.message}})
	c.Abort()
}

// writeJSON writes v without HTML escaping: metadata such as "a&b" must come
// back as sent, not as "a\u0026b".
func writeJSON(c *gin.Context, status int, v any) {
	b, err := marshal(v)
	if err != nil {
		// Only a bug can get here (all response types marshal); answering
		// with a half-written body would be worse than a clean 500.
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"response encoding failed"}}` + "\n")
	}
	c.Data(status, "application/json; charset=utf-8", b)
}

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	return buf.Bytes(), nil
}
