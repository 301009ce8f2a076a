package benchkit

import (
	"bytes"
	"context"
	"io"
	"net/http"
)

// Post sends body as JSON to url and returns the status code. The response
// body is read to its end and closed, so the connection goes back to hc's
// pool for the next request.
func Post(ctx context.Context, hc *http.Client, url string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res.StatusCode, nil
}
