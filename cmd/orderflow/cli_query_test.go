package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/query"
	"github.com/orderflow/orderflow/scripts/testenv"
)

// TestQueryCLI runs get, history, list and machine against a real query API
// (its handler over a fresh database; no events feed is needed for reads).
func TestQueryCLI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Pool(t)
	if _, err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if err := store.EnsurePartitions(ctx, pool, time.Now()); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	for i, id := range []string{"cli/1", "cli-2", "cli-3"} {
		if _, err := pool.Exec(ctx, `INSERT INTO orders VALUES ($1, $2, 2, $3, $3)`, id, []string{"Paid", "Paid", "Created"}[i], at); err != nil {
			t.Fatal(err)
		}
	}
	for i, a := range []string{"create", "pay"} {
		_, err := pool.Exec(ctx, `INSERT INTO transitions (processed_at, topic_partition, source_offset, seq, event_id, command_id,
			order_id, action, outcome, from_state, to_state, version) VALUES ($1, 0, $2, $2, $3, $4, 'cli/1', $5, 'accepted', $6, $7, $2)`,
			at.Add(time.Duration(i)*time.Second), i+1, "cli/1/"+a, "cmd-"+a, a, []any{nil, "Created"}[i], []string{"Created", "Paid"}[i])
		if err != nil {
			t.Fatal(err)
		}
	}
	producer, err := kgo.NewClient(kgo.SeedBrokers(testenv.Kafka(t)...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	key := query.Key{Secret: "cli-test-key-0123456789", Scope: query.ScopeRead} //nolint:gosec // G101: a test key
	srv, err := query.New(query.Config{APIKeys: []query.Key{key}}, pool, producer)
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(srv.Handler())
	t.Cleanup(api.Close)
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("cli-test-key-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--api", api.URL, "--api-key-file", keyFile}

	cli := func(want int, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(ctx, args, &out, &errOut); code != want {
			t.Fatalf("orderflow %v: exit %d, want %d; stderr %s", args, code, want, errOut.String())
		}
		return out.String() + errOut.String()
	}
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{append([]string{"get", "cli/1"}, flags...), []string{"order    cli/1", "state    Paid", "allowed  ship, cancel"}},
		{append([]string{"history"}, append(flags, "cli/1")...), []string{"VERSION", "accepted  create", "cmd-pay"}},
		{append([]string{"list", "--state", "Paid"}, flags...), []string{"cli-2", "cli/1"}},
		{append([]string{"list", "--limit", "1"}, flags...), []string{"cli-2", "(more: add -cursor "}},
		{[]string{"machine", "--format", "dot"}, []string{"digraph orders"}},
	} {
		out := cli(0, tt.args...)
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("orderflow %v:\n%s\nlacks %q", tt.args, out, w)
			}
		}
	}
	var o query.Order
	if err := json.Unmarshal([]byte(cli(0, append([]string{"get", "--json", "cli-3"}, flags...)...)), &o); err != nil || o.Version != 2 {
		t.Fatalf("get --json: %+v, %v", o, err)
	}
	var page query.OrderPage
	if err := json.Unmarshal([]byte(cli(0, append([]string{"list", "--json", "--state", "Created"}, flags...)...)), &page); err != nil || len(page.Orders) != 1 {
		t.Fatalf("list --json: %+v, %v", page, err)
	}
	if out := cli(1, append([]string{"get", "nope"}, flags...)...); !strings.Contains(out, `order "nope" not found`) {
		t.Fatalf("get nope: %s", out)
	}
	if out := cli(1, "get", "--api", api.URL, "cli/1"); !strings.Contains(out, "unauthorized") {
		t.Fatalf("get without key: %s", out)
	}
	cli(2, append([]string{"list", "--state", "paid"}, flags...)...)
	cli(2, "get")
	cli(2, "machine", "--format", "png")
}
