package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orderflow/orderflow/query"
)

// apiFlags are the flags of the subcommands that talk to a running query
// API (get, history, list).
type apiFlags struct {
	url     string
	key     string
	keyFile string
	json    bool
	timeout time.Duration
	f       envFlags // where each value came from, known after parse
}

func (a *apiFlags) register(f envFlags) {
	a.f = f
	f.String(&a.url, "api", "ORDERFLOW_API_URL", defaultAPIURL(), "base URL of the orderflow API")
	f.Secret(&a.key, "api-key", "ORDERFLOW_API_KEY", "API key with scope read, sent as a Bearer token")
	f.String(&a.keyFile, "api-key-file", "ORDERFLOW_API_KEY_FILE", "", "file whose first line is the API key")
	f.fs.BoolVar(&a.json, "json", false, "print the API's JSON instead of text")
	f.fs.DurationVar(&a.timeout, "timeout", 40*time.Second, "give up on the API after this long")
}

// defaultAPIURL is where `orderflow serve` listens on this machine by
// default: $ORDERFLOW_HTTP_ADDR, with a wildcard host made loopback.
func defaultAPIURL() string {
	addr := os.Getenv("ORDERFLOW_HTTP_ADDR")
	if addr == "" {
		return "http://127.0.0.1:8080"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// apiClient is a small client of the query API for the CLI.
type apiClient struct {
	base *url.URL
	key  string
	hc   *http.Client
}

func (a *apiFlags) client() (*apiClient, error) {
	u, err := url.Parse(strings.TrimRight(a.url, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: -api ($ORDERFLOW_API_URL) %q is not an http(s) URL", errUsage, a.url)
	}
	key := a.key
	if a.keyFile != "" {
		// The key itself only comes from the environment (a secret on the
		// command line shows in ps). A key file given on the command line
		// wins over it, as flags win over the environment; both in the
		// environment leave no way to tell which was meant.
		if a.key != "" && !a.f.given("api-key-file") {
			return nil, fmt.Errorf("%w: $ORDERFLOW_API_KEY and $ORDERFLOW_API_KEY_FILE are both set: set only one, or give -api-key-file to use the file", errUsage)
		}
		b, err := os.ReadFile(a.keyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: -api-key-file ($ORDERFLOW_API_KEY_FILE): %w", errUsage, err)
		}
		key, _, _ = strings.Cut(strings.TrimSpace(string(b)), "\n")
		key = strings.TrimSpace(key)
	}
	return &apiClient{base: u, key: key, hc: &http.Client{Timeout: a.timeout}}, nil
}

// remoteError is an error answer of the API.
type remoteError struct {
	status  int
	code    string
	message string
}

func (e *remoteError) Error() string {
	if e.code == "" {
		return fmt.Sprintf("API answered %d %s", e.status, http.StatusText(e.status))
	}
	return fmt.Sprintf("%s (%s, HTTP %d)", e.message, e.code, e.status)
}

// get fetches path (segments already escaped) with query q into out.
func (c *apiClient) get(ctx context.Context, path string, q url.Values, out any) error {
	u := *c.base
	u.RawPath = u.Path + path
	u.Path, _ = url.PathUnescape(u.RawPath)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("call the API at %s: %w", c.base, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read the API's answer: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		e := &remoteError{status: res.StatusCode}
		var eb query.ErrorBody
		if json.Unmarshal(body, &eb) == nil {
			e.code, e.message = eb.Error.Code, eb.Error.Message
		}
		return e
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decode the API's answer: %w", err)
	}
	return nil
}

// parseArgs parses flags wherever they appear among the positional
// arguments ("get o-1 --json" as well as "get --json o-1"), which Go's flag
// package alone does not.
func parseArgs(f envFlags, args []string) ([]string, error) {
	if err := f.parse(args); err != nil {
		return nil, err
	}
	var pos []string
	for rest := f.fs.Args(); len(rest) > 0; rest = f.fs.Args() {
		pos = append(pos, rest[0])
		if err := f.fs.Parse(rest[1:]); err != nil {
			return nil, err
		}
	}
	return pos, f.checkSecrets()
}

// table writes aligned columns; the first write error is kept and returned
// by flush, so callers need not check every row.
type table struct {
	tw  *tabwriter.Writer
	err error
}

func newTable(out io.Writer) *table { return &table{tw: tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)} }

func (t *table) row(format string, args ...any) {
	if t.err == nil {
		_, t.err = fmt.Fprintf(t.tw, format, args...)
	}
}

func (t *table) flush() error {
	if t.err == nil {
		t.err = t.tw.Flush()
	}
	if t.err != nil {
		return fmt.Errorf("write: %w", t.err)
	}
	return nil
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// cliTime formats times for people: UTC, to the millisecond.
func cliTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000Z") }

func orDash(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return *s
}

// notFoundIs rewrites a 404 of the API into a plain sentence.
func notFoundIs(err error, msg string) error {
	var re *remoteError
	if errors.As(err, &re) && re.status == http.StatusNotFound {
		return errors.New(msg)
	}
	return err
}
