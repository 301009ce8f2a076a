package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// getter sends GET requests over one keep-alive HTTP/1.1 connection, one at
// a time, and reads each whole answer. It exists because the load generator
// shares the machine with what it measures: net/http's client spent about
// 65 µs of CPU per request here (two goroutine hand-offs per request on top
// of the system calls), a third of a core at 5,000 GET/s, taken from the
// server under test. getter writes one request and reads one answer on the
// calling goroutine, which is all a closed loop per connection needs.
//
// It understands what orderflow's API sends: a status line, headers, and a
// body of Content-Length bytes. Anything else (chunked bodies, no length)
// is an error, not a guess.
type getter struct {
	addr, host string
	timeout    time.Duration
	conn       net.Conn
	r          *bufio.Reader
	req        []byte
}

func newGetter(base string, timeout time.Duration) (*getter, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("parse -url: %w", err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("-url %q: want http://host:port", base)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return &getter{addr: addr, host: u.Host, timeout: timeout}, nil
}

// get requests path and returns the answer's status code. A connection
// that the server closed while idle is opened again and the request resent
// once, as net/http does for idempotent requests.
func (g *getter) get(ctx context.Context, path string) (int, error) {
	reused := g.conn != nil
	status, err := g.roundTrip(ctx, path)
	if err != nil && reused && (errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)) {
		status, err = g.roundTrip(ctx, path)
	}
	return status, err
}

func (g *getter) roundTrip(ctx context.Context, path string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err // interrupted: the queued requests fail at once
	}
	if g.conn == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", g.addr)
		if err != nil {
			return 0, err // net.OpError names the address
		}
		g.conn, g.r = c, bufio.NewReaderSize(c, 4096)
	}
	g.req = append(g.req[:0], "GET "...)
	g.req = append(g.req, path...)
	g.req = append(g.req, " HTTP/1.1\r\nHost: "...)
	g.req = append(g.req, g.host...)
	g.req = append(g.req, "\r\nUser-Agent: readload\r\n\r\n"...)
	_ = g.conn.SetDeadline(time.Now().Add(g.timeout))
	if _, err := g.conn.Write(g.req); err != nil {
		g.close()
		return 0, fmt.Errorf("write request: %w", err)
	}
	status, keep, err := g.readAnswer()
	if err != nil || !keep {
		g.close()
	}
	return status, err
}

// readAnswer reads one response: its status, and whether the connection
// may carry the next request.
func (g *getter) readAnswer() (status int, keep bool, err error) {
	line, err := g.line()
	if err != nil {
		return 0, false, fmt.Errorf("read status line: %w", err)
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	length := -1
	keep = true
	for {
		h, err := g.line()
		if err != nil {
			return 0, false, fmt.Errorf("read header: %w", err)
		}
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("bad header line %q", h)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return 0, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return 0, false, fmt.Errorf("transfer-encoding %q is not supported", value)
		case bytes.EqualFold(name, []byte("Connection")) && bytes.EqualFold(value, []byte("close")):
			keep = false
		}
	}
	if length < 0 {
		return 0, false, errors.New("answer without Content-Length")
	}
	if _, err := g.r.Discard(length); err != nil {
		return 0, false, fmt.Errorf("read body: %w", err)
	}
	return status, keep, nil
}

// line reads one header line without its CRLF.
func (g *getter) line() ([]byte, error) {
	l, err := g.r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(l, "\r\n"), nil
}

func (g *getter) close() {
	if g.conn != nil {
		_ = g.conn.Close()
		g.conn, g.r = nil, nil
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}
