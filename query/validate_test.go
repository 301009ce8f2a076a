package query

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/topics"
)

// TestBadInput covers everything a client can get wrong that is caught
// before PostgreSQL or Kafka is touched: each must be a 4xx with a code,
// never a 500.
func TestBadInput(t *testing.T) {
	t.Parallel()
	s := unitServer(t, Config{})
	long := strings.Repeat("x", topics.MaxIDChars+1)
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"unknown route", "GET", "/v1/nothing", "", 404, CodeNotFound},
		{"trailing slash", "GET", "/v1/orders/", "", 404, CodeNotFound},
		{"wrong method", "DELETE", "/v1/orders/o-1", "", 405, CodeMethodNotAllowed},
		{"long order id", "GET", "/v1/orders/" + long, "", 400, CodeInvalidOrderID},
		{"control char in id", "GET", "/v1/orders/o%01x", "", 400, CodeInvalidOrderID},
		{"long command id", "GET", "/v1/commands/" + long, "", 400, CodeInvalidCommandID},
		{"unknown parameter", "GET", "/v1/orders/o-1?min_verison=3", "", 400, CodeUnknownParameter},
		{"parameter twice", "GET", "/v1/orders/o-1?wait=1s&wait=2s", "", 400, CodeInvalidParameter},
		{"bad query string", "GET", "/v1/orders/o-1?wait=%zz", "", 400, CodeInvalidParameter},
		{"min_version not a number", "GET", "/v1/orders/o-1?min_version=two", "", 400, CodeInvalidParameter},
		{"min_version negative", "GET", "/v1/orders/o-1?min_version=-1", "", 400, CodeInvalidParameter},
		{"wait not a duration", "GET", "/v1/orders/o-1?wait=soon", "", 400, CodeInvalidParameter},
		{"wait without unit", "GET", "/v1/orders/o-1?wait=5", "", 400, CodeInvalidParameter},
		{"wait negative", "GET", "/v1/orders/o-1?wait=-1s", "", 400, CodeInvalidParameter},
		{"wait over max", "GET", "/v1/orders/o-1?wait=31s", "", 400, CodeInvalidParameter},
		{"wait huge", "GET", "/v1/orders/o-1?wait=99999999999h", "", 400, CodeInvalidParameter},
		{"bad state", "GET", "/v1/orders?state=paid", "", 400, CodeInvalidParameter},
		{"limit zero", "GET", "/v1/orders?limit=0", "", 400, CodeInvalidParameter},
		{"limit over max", "GET", "/v1/orders?limit=1001", "", 400, CodeInvalidParameter},
		{"limit not a number", "GET", "/v1/orders?limit=ten", "", 400, CodeInvalidParameter},
		{"cursor not base64", "GET", "/v1/orders?cursor=!!!", "", 400, CodeInvalidCursor},
		{"cursor not json", "GET", "/v1/orders?cursor=aGVsbG8", "", 400, CodeInvalidCursor},
		{"cursor of another state", "GET", "/v1/orders?state=Paid&cursor=" + encodeCursor(listCursor{State: "Created", OrderID: "a"}), "", 400, CodeInvalidCursor},
		{"cursor of history on list", "GET", "/v1/orders?cursor=" + encodeCursor(historyCursor{OrderID: "a", ProcessedAt: time.Now(), Seq: 1}), "", 400, CodeInvalidCursor},
		{"history cursor of another order", "GET", "/v1/orders/o-1/history?cursor=" + encodeCursor(historyCursor{OrderID: "o-2", ProcessedAt: time.Now(), Seq: 1}), "", 400, CodeInvalidCursor},
		{"history limit", "GET", "/v1/orders/o-1/history?limit=-5", "", 400, CodeInvalidParameter},
		{"stats takes no parameters", "GET", "/v1/stats?state=Paid", "", 400, CodeUnknownParameter},
		{"machine format", "GET", "/v1/machine?format=png", "", 400, CodeInvalidParameter},
		{"post wait bad", "POST", "/v1/orders/o-1/commands?wait=forever", `{"action":"pay"}`, 400, CodeInvalidParameter},
		{"post long order id", "POST", "/v1/orders/" + long + "/commands", `{"action":"pay"}`, 400, CodeInvalidOrderID},
		{"post empty", "POST", "/v1/orders/o-1/commands", "", 400, CodeInvalidJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			serve(t, s, tt.method, tt.path, nil, tt.body).expect(t, tt.status, tt.code)
		})
	}
}

func TestPostBodyLimits(t *testing.T) {
	t.Parallel()
	s := unitServer(t, Config{})
	big := `{"action":"pay","reason":"` + strings.Repeat("r", MaxBodyBytes) + `"}`
	serve(t, s, "POST", "/v1/orders/o-1/commands", nil, big).expect(t, 413, CodeBodyTooLarge)
	h := http.Header{"Content-Type": {"text/plain"}}
	serve(t, s, "POST", "/v1/orders/o-1/commands", h, `{"action":"pay"}`).expect(t, 415, CodeUnsupportedMediaType)
	h = http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	// Passes the media type check and fails later, on the action.
	serve(t, s, "POST", "/v1/orders/o-1/commands", h, `{"action":"refund"}`).expect(t, 400, CodeInvalidAction)
}

func TestDecodeCommandBody(t *testing.T) {
	t.Parallel()
	meta := `{"k":"` + strings.Repeat("m", topics.MaxMetadataBytes) + `"}`
	tests := []struct {
		name, body, code string
	}{
		{"minimal", `{"action":"create"}`, ""},
		{"full", `{"command_id":"c-1","order_id":"o-1","action":"pay","expected_version":1,"actor":"a","reason":"r","metadata":{"k":[1, 2]},"requested_at":"2026-11-25T18:00:00.000Z"}`, ""},
		{"nulls are absent", `{"action":"pay","actor":null,"metadata":null,"requested_at":null,"expected_version":null}`, ""},
		{"indented metadata counts compact", `{"action":"pay","metadata":{"k":   "` + strings.Repeat("m", topics.MaxMetadataBytes-10) + `"}}`, ""},
		{"array", `[{"action":"pay"}]`, CodeInvalidJSON},
		{"null", `null`, CodeInvalidJSON},
		{"string", `"pay"`, CodeInvalidJSON},
		{"truncated", `{"action":"pay"`, CodeInvalidJSON},
		{"syntax", `{"action":pay}`, CodeInvalidJSON},
		{"trailing data", `{"action":"pay"} {}`, CodeInvalidJSON},
		{"trailing garbage", `{"action":"pay"}x`, CodeInvalidJSON},
		{"invalid utf8", "{\"action\":\"pay\",\"actor\":\"\xff\"}", CodeInvalidJSON},
		{"unknown field", `{"action":"pay","expected_verison":1}`, CodeUnknownField},
		{"missing action", `{"actor":"a"}`, CodeMissingField},
		{"empty action", `{"action":""}`, CodeMissingField},
		{"unknown action", `{"action":"refund"}`, CodeInvalidAction},
		{"action wrong case", `{"action":"Pay"}`, CodeInvalidAction},
		{"action not string", `{"action":1}`, CodeInvalidField},
		{"order id mismatch", `{"order_id":"o-2","action":"pay"}`, CodeOrderIDMismatch},
		{"empty command id", `{"command_id":"","action":"pay"}`, CodeInvalidCommandID},
		{"long command id", `{"command_id":"` + strings.Repeat("c", 129) + `","action":"pay"}`, CodeInvalidCommandID},
		{"control in command id", `{"command_id":"c\u0007","action":"pay"}`, CodeInvalidCommandID},
		{"version string", `{"action":"pay","expected_version":"1"}`, CodeInvalidField},
		{"version fraction", `{"action":"pay","expected_version":1.5}`, CodeInvalidField},
		{"version negative", `{"action":"pay","expected_version":-1}`, CodeInvalidField},
		{"version overflow", `{"action":"pay","expected_version":99999999999999999999}`, CodeInvalidField},
		{"long actor", `{"action":"pay","actor":"` + strings.Repeat("a", 257) + `"}`, CodeInvalidField},
		{"long reason", `{"action":"pay","reason":"` + strings.Repeat("é", 257) + `"}`, CodeInvalidField},
		{"metadata array", `{"action":"pay","metadata":[1]}`, CodeInvalidField},
		{"metadata string", `{"action":"pay","metadata":"x"}`, CodeInvalidField},
		{"metadata too big", `{"action":"pay","metadata":` + meta + `}`, CodeInvalidField},
		{"requested_at not a time", `{"action":"pay","requested_at":"yesterday"}`, CodeInvalidField},
		{"requested_at a number", `{"action":"pay","requested_at":1700000000}`, CodeInvalidField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd, aerr := decodeCommandBody("o-1", []byte(tt.body))
			switch {
			case tt.code == "" && aerr != nil:
				t.Fatalf("unexpected error %v", aerr)
			case tt.code != "" && aerr == nil:
				t.Fatalf("accepted %+v, want %s", cmd, tt.code)
			case tt.code != "" && (aerr.code != tt.code || aerr.status != http.StatusBadRequest):
				t.Fatalf("error %d %v, want 400 %s", aerr.status, aerr, tt.code)
			case tt.code == "" && cmd.OrderID != "o-1":
				t.Fatalf("order id %q", cmd.OrderID)
			}
		})
	}
	cmd, _ := decodeCommandBody("o-1", []byte(`{"action":"pay","metadata":{ "a" : 1 }}`))
	if string(cmd.Metadata) != `{"a":1}` {
		t.Fatalf("metadata kept as %s, want it compacted", cmd.Metadata)
	}
}

// FuzzDecodeCommandBody checks that the POST body decoder never panics, and
// that whatever it accepts the Kafka codec accepts too: a command sent over
// HTTP can never land in the DLQ.
func FuzzDecodeCommandBody(f *testing.F) {
	f.Add("o-1", []byte(`{"action":"pay","expected_version":1,"metadata":{"k":1}}`))
	f.Add("order/42", []byte(`{"command_id":"c","order_id":"order/42","action":"create","requested_at":"2026-11-25T18:00:00Z"}`))
	f.Add("o-1", []byte(`{"action":"pay","actor":null,"metadata":null}`))
	f.Add("o-1", []byte(`[`))
	f.Add("o-1", []byte(`{"action":"ship","requested_at":"0000-01-01T00:00:00+01:00"}`))
	f.Add("o-1", []byte(`{"action":"ship","requested_at":"9999-12-31T23:59:59.999999999-23:59"}`))
	f.Fuzz(func(t *testing.T, orderID string, body []byte) {
		if topics.CheckID("order_id", orderID) != nil {
			return // the path check runs first
		}
		cmd, aerr := decodeCommandBody(orderID, body)
		if aerr != nil {
			if aerr.status != http.StatusBadRequest || aerr.code == "" || aerr.message == "" {
				t.Fatalf("bad error %+v", aerr)
			}
			return
		}
		if cmd.CommandID == "" {
			cmd.CommandID = "generated"
		}
		b, err := topics.EncodeCommand(cmd)
		if err != nil {
			t.Fatalf("accepted body %q does not encode: %v", body, err)
		}
		back, err := topics.DecodeCommand([]byte(orderID), b)
		if err != nil || back.Action != cmd.Action || !bytes.Equal(back.Metadata, cmd.Metadata) {
			t.Fatalf("round trip of %q: %+v, %v", body, back, err)
		}
	})
}

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	lc := listCursor{State: "Paid", OrderID: "order/42 é"}
	got, err := decodeListCursor(encodeCursor(lc), "Paid")
	if err != nil || got != lc {
		t.Fatalf("list cursor round trip = %+v, %v", got, err)
	}
	at := time.Date(2026, 11, 25, 18, 0, 0, 123456000, time.UTC)
	hc := historyCursor{OrderID: "o-1", ProcessedAt: at, Seq: 7}
	h, err := decodeHistoryCursor(encodeCursor(hc), "o-1")
	if err != nil || !h.ProcessedAt.Equal(at) || h.Seq != 7 {
		t.Fatalf("history cursor round trip = %+v, %v", h, err)
	}
	for _, bad := range []string{"", "e30", "eyJzIjoiUGFpZCJ9", encodeCursor(map[string]any{"s": "Paid", "k": "a", "x": 1}), strings.Repeat("A", maxCursorChars+1)} {
		if _, err := decodeListCursor(bad, "Paid"); err == nil {
			t.Errorf("decodeListCursor(%q) accepted", bad)
		}
	}
}

// FuzzDecodeCursor checks that no cursor string panics the decoders and
// that whatever decodes re-encodes to a cursor that decodes the same.
func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(listCursor{State: "Paid", OrderID: "o-1"}))
	f.Add(encodeCursor(historyCursor{OrderID: "o-1", ProcessedAt: time.Unix(1, 0), Seq: 3}))
	f.Add("!!")
	f.Fuzz(func(t *testing.T, s string) {
		if c, err := decodeListCursor(s, "Paid"); err == nil {
			again, err := decodeListCursor(encodeCursor(c), "Paid")
			if err != nil || again != c {
				t.Fatalf("list cursor %q: re-decode %+v, %v", s, again, err)
			}
		}
		if c, err := decodeHistoryCursor(s, "o-1"); err == nil {
			again, err := decodeHistoryCursor(encodeCursor(c), "o-1")
			if err != nil || !again.ProcessedAt.Equal(c.ProcessedAt) || again.Seq != c.Seq {
				t.Fatalf("history cursor %q: re-decode %+v, %v", s, again, err)
			}
		}
	})
}

// FuzzParams checks the query-string decoders: any query string gets an
// answer below 500, never a panic.
func FuzzParams(f *testing.F) {
	s := unitServer(f, Config{})
	f.Add("min_version=3&wait=2s")
	f.Add("wait=1h")
	f.Add("limit=5&cursor=x&state=Paid")
	f.Add("format=dot")
	f.Add("min_version=1")
	f.Fuzz(func(t *testing.T, rawQuery string) {
		// Valid parameters get as far as PostgreSQL, which is down: 503.
		for _, path := range []string{"/v1/machine", "/v1/orders", "/v1/orders/o-1", "/v1/orders/o-1/history", "/v1/stats"} {
			req := &http.Request{Method: "GET", URL: &url.URL{Path: path, RawQuery: rawQuery}, Header: http.Header{}, Body: http.NoBody}
			req = req.WithContext(t.Context())
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code >= 500 && rec.Code != 503 {
				t.Fatalf("%s?%s: status %d %s", path, rawQuery, rec.Code, rec.Body)
			}
		}
	})
}

func TestErrorsAreJSON(t *testing.T) {
	t.Parallel()
	s := unitServer(t, Config{})
	s.engine.GET("/test/panic", func(*gin.Context) { panic("boom") })
	r := serve(t, s, "GET", "/test/panic", nil, "")
	r.expect(t, 500, CodeInternal)
	if !strings.Contains(string(r.body), r.header.Get("X-Request-ID")) {
		t.Fatalf("500 does not name the request id: %s", r.body)
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	s := unitServer(t, Config{})
	r := serve(t, s, "GET", "/healthz", http.Header{"X-Request-Id": {"abc-123"}}, "")
	if got := r.header.Get("X-Request-ID"); got != "abc-123" {
		t.Fatalf("X-Request-ID %q, want the client's", got)
	}
	r = serve(t, s, "GET", "/healthz", http.Header{"X-Request-Id": {"bad id\x01"}}, "")
	if got := r.header.Get("X-Request-ID"); len(got) != 36 {
		t.Fatalf("X-Request-ID %q, want a generated UUID", got)
	}
}

func TestMachineEndpoint(t *testing.T) {
	t.Parallel()
	s := unitServer(t, Config{})
	var d struct {
		States      []string          `json:"states"`
		Transitions []json.RawMessage `json:"transitions"`
	}
	serve(t, s, "GET", "/v1/machine", nil, "").decode(t, &d)
	if len(d.States) != 6 || len(d.Transitions) != 7 {
		t.Fatalf("machine JSON %+v", d)
	}
	for format, want := range map[string]string{"mermaid": "stateDiagram-v2", "dot": "digraph", "text": "ACTION"} {
		r := serve(t, s, "GET", "/v1/machine?format="+format, nil, "")
		if r.status != 200 || !strings.Contains(string(r.body), want) {
			t.Fatalf("format %s: %d %s", format, r.status, r.body)
		}
	}
}

func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	s := unitServer(t, Config{})
	serve(t, s, "GET", "/v1/machine", nil, "")
	serve(t, s, "GET", "/v1/orders/x?bogus=1", nil, "")
	serve(t, s, "GET", "/no/such/path", nil, "")
	body := string(serve(t, s, "GET", "/metrics", nil, "").body)
	for _, want := range []string{
		`orderflow_http_requests_total{code="200",method="GET",route="/v1/machine"} 1`,
		`orderflow_http_requests_total{code="400",method="GET",route="/v1/orders/:order_id"} 1`,
		`orderflow_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`orderflow_http_request_duration_seconds_bucket{method="GET",route="/v1/machine"`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestParseWaitMax(t *testing.T) {
	t.Parallel()
	s := unitServer(t, Config{MaxWait: 2 * time.Second})
	serve(t, s, "GET", "/v1/orders/o-1?wait=3s", nil, "").expect(t, 400, CodeInvalidParameter)
	if _, err := newServer(Config{MaxWait: -time.Second}, nil, nil); err == nil {
		t.Fatal("negative MaxWait accepted")
	}
	var aerr *apiError
	if !errors.As(error(badRequest("x", "y")), &aerr) {
		t.Fatal("apiError is not an error")
	}
}

// TestReadyzDown: with PostgreSQL and Kafka unreachable /readyz is a 503
// naming each failed check, without the addresses in the errors.
func TestReadyzDown(t *testing.T) {
	t.Parallel()
	s := unitServer(t, Config{})
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	s.producer = cl
	r := serve(t, s, "GET", "/readyz", nil, "")
	var rd Readiness
	r.decode(t, &rd)
	if r.status != 503 || rd.Status != "not_ready" || rd.Error == nil || rd.Error.Code != CodeNotReady ||
		rd.Error.Message != "not ready: events_feed, kafka, postgres" {
		t.Fatalf("readyz %d %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), "127.0.0.1") {
		t.Fatalf("readyz leaks addresses: %s", r.body)
	}
	serve(t, s, "GET", "/healthz", nil, "").expect(t, 200, "")
}
