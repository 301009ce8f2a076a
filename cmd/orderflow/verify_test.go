package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/orderflow/orderflow/processor/verify"
	"github.com/orderflow/orderflow/scripts/testenv"
	"github.com/orderflow/orderflow/topics"
)

// TestVerifyCLI runs `orderflow verify` on a deployment that is clean, then
// on one with an order that no transition explains. (processor/verify's own
// tests cover each violation; this covers the command: flags, output, exit
// status.)
func TestVerifyCLI(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	brokers := testenv.Kafka(t)
	dbURL := testenv.DatabaseURL(t)
	prefix := testenv.TopicPrefix(t)
	if _, err := topics.Ensure(ctx, testenv.KafkaAdmin(t), topics.NewNames(prefix), topics.Settings{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	cli := func(want int, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		args = append([]string{"verify", "--brokers", strings.Join(brokers, ","), "--database-url", dbURL, "--topic-prefix", prefix}, args...)
		if code := run(ctx, args, &out, &errOut); code != want {
			t.Fatalf("orderflow %v: exit %d, want %d\nstdout %s\nstderr %s", args, code, want, out.String(), errOut.String())
		}
		return out.String() + errOut.String()
	}
	migrate := func() {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(ctx, []string{"migrate", "--database-url", dbURL}, &out, &errOut); code != 0 {
			t.Fatalf("migrate: %d %s", code, errOut.String())
		}
	}
	migrate()
	if out := cli(0); !strings.Contains(out, "violations 0") || !strings.Contains(out, "violations by check: fold 0, versions 0") {
		t.Fatalf("clean deployment:\n%s", out)
	}
	var rep verify.Report
	if err := json.Unmarshal([]byte(cli(0, "--json")), &rep); err != nil || !rep.OK() || len(rep.ByCheck) != len(verify.Checks()) {
		t.Fatalf("--json: %+v, %v", rep, err)
	}

	opool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer opool.Close()
	if _, err := opool.Exec(ctx, `INSERT INTO orders VALUES ('o-1', 'Paid', 2, now(), now())`); err != nil {
		t.Fatal(err)
	}
	out := cli(1)
	// An order written behind the processor's back: no transitions, and not
	// in order_counts either.
	for _, want := range []string{"violations 2", "fold 1", "counts 1", "fold: order o-1 is Paid v2 but has no accepted transitions",
		"counts: order_counts has 0 orders in Paid, the orders table 1", "orderflow verify: invariants violated: 2 violations"} {
		if !strings.Contains(out, want) {
			t.Errorf("corrupted deployment: output lacks %q:\n%s", want, out)
		}
	}
	if err := json.Unmarshal([]byte(strings.SplitN(cli(1, "--json", "--wait", "1s"), "orderflow verify:", 2)[0]), &rep); err != nil ||
		rep.ViolationsTotal != 2 || rep.ByCheck[verify.CheckFold] != 1 || rep.ByCheck[verify.CheckCounts] != 1 {
		t.Fatalf("--json on the corrupted deployment: %+v, %v", rep, err)
	}
	cli(2, "--max-violations", "-1")
	cli(2, "stray")
}
