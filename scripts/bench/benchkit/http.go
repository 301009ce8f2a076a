package benchkit

import (
	"bytes"
	"context"
	"io"
	"net/http"
)

// Do sends one HTTP request and returns its status code. A non-nil body is
// sent as JSON. The response body is read to its end and closed, so the
// connection goes back to hc's pool for the next request.
func Do(ctx context.Context, hc *http.Client, method, url string, body []byte) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res.StatusCode, nil
}
