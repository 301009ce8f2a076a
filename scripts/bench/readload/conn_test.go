package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestGetter(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"order_id":"o-1"}`)
		case "/missing":
			http.Error(w, "no such order", http.StatusNotFound)
		case "/close":
			w.Header().Set("Connection", "close")
			fmt.Fprint(w, "bye")
		case "/chunked":
			w.(http.Flusher).Flush() // no Content-Length: the body is chunked
			fmt.Fprint(w, "x")
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	g, err := newGetter(srv.URL, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	ctx := context.Background()
	for _, c := range []struct {
		path   string
		status int
	}{{"/ok", 200}, {"/missing", 404}, {"/ok", 200}, {"/close", 200}, {"/ok", 200}} {
		status, err := g.get(ctx, c.path)
		if err != nil || status != c.status {
			t.Fatalf("GET %s = %d, %v; want %d", c.path, status, err, c.status)
		}
	}
	// The first three share a connection; /close ends it, so /ok opens a second.
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections opened, want 2", n)
	}

	// A keep-alive connection the server closed while idle is opened again.
	srv.CloseClientConnections()
	if status, err := g.get(ctx, "/ok"); err != nil || status != 200 {
		t.Errorf("GET after the server closed the idle connection = %d, %v", status, err)
	}

	// An interrupted run fails what is still queued at once.
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := g.get(canceled, "/ok"); !errors.Is(err, context.Canceled) {
		t.Errorf("GET after the context ended: err = %v, want context.Canceled", err)
	}

	if _, err := g.get(ctx, "/chunked"); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("chunked answer: err = %v, want a clear refusal", err)
	}

	for _, bad := range []string{"https://x:1", "127.0.0.1:80", "http://"} {
		if _, err := newGetter(bad, time.Second); err == nil {
			t.Errorf("newGetter(%q) accepted", bad)
		}
	}
}
