package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/orderflow/orderflow/processor/verify"
	"github.com/orderflow/orderflow/scripts/testenv"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestServeEndToEnd runs `orderflow serve` (processor and API in one
// process, as `make run` does) against the real broker and PostgreSQL and
// drives it over HTTP only: what a POST with wait answers must be the event
// the processor published, retries must not transition twice, and a read
// with min_version must see the caller's own write.
func TestServeEndToEnd(t *testing.T) {
	brokers := strings.Join(testenv.Kafka(t), ",")
	dbURL := testenv.DatabaseURL(t)
	prefix := testenv.TopicPrefix(t)
	addr := testenv.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"serve", "--brokers", brokers, "--database-url", dbURL, "--topic-prefix", prefix,
			"--group", prefix + "group", "--partitions", "3", "--http-addr", addr}, io.Discard, &logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-exited:
			if code != 0 {
				t.Errorf("serve exited with %d:\n%s", code, logs.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop within 30 s of its context ending")
		}
	})
	base := "http://" + addr
	waitReady(t, base+"/readyz")
	// serve sets its GC target when the operator did not (setGCPercent).
	if _, set := os.LookupEnv("GOGC"); !set {
		if got := debug.SetGCPercent(serveGOGC); got != serveGOGC {
			t.Errorf("serve left the GC target at %d, want %d", got, serveGOGC)
		}
	}

	post := func(order, body string) (int, topics.Event) {
		t.Helper()
		resp, err := http.Post(base+"/v1/orders/"+order+"/commands?wait=10s", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ev topics.Event
		if err := json.NewDecoder(resp.Body).Decode(&ev); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, ev
	}
	code, created := post("e2e-1", `{"command_id":"e2e-create","action":"create","actor":"test"}`)
	if code != http.StatusOK || created.Outcome != topics.Accepted || created.Version != 1 {
		t.Fatalf("create: %d %+v", code, created)
	}
	var pays []topics.Event
	for range 3 { // one command, retried: one transition
		code, ev := post("e2e-1", `{"command_id":"e2e-pay","action":"pay","expected_version":1,"metadata":{"payment":"p-1"}}`)
		if code != http.StatusOK {
			t.Fatalf("pay: %d %+v", code, ev)
		}
		pays = append(pays, ev)
	}
	for _, ev := range pays[1:] {
		if ev.EventID != pays[0].EventID || !ev.ProcessedAt.Equal(pays[0].ProcessedAt) {
			t.Fatalf("a retry got another outcome: %+v vs %+v", ev, pays[0])
		}
	}
	code, rejected := post("e2e-1", `{"command_id":"e2e-deliver","action":"deliver"}`)
	if code != http.StatusConflict || rejected.Outcome != topics.Rejected || *rejected.Reason != "invalid_transition" {
		t.Fatalf("deliver from Paid: %d %+v", code, rejected)
	}

	// Read your writes: the accepted pay made version 2.
	resp, err := http.Get(base + "/v1/orders/e2e-1?min_version=2&wait=5s")
	if err != nil {
		t.Fatal(err)
	}
	var order struct {
		State   string `json:"state"`
		Version int64  `json:"version"`
	}
	err = json.NewDecoder(resp.Body).Decode(&order)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || order.State != "Paid" || order.Version != 2 {
		t.Fatalf("GET after pay: %d %+v %v", resp.StatusCode, order, err)
	}

	// What HTTP answered is what Kafka carries, and the deployment is sound.
	kopts := []kgo.Opt{kgo.SeedBrokers(testenv.Kafka(t)...)}
	names := topics.NewNames(prefix)
	// The API may answer from PostgreSQL before the publisher's Kafka
	// transaction lands: read until all three events are there.
	var onKafka map[string]topics.Event
	for deadline := time.Now().Add(60 * time.Second); ; {
		onKafka = readEvents(t, kopts, names)
		if len(onKafka) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, ev := range []topics.Event{created, pays[0], rejected} {
		got, ok := onKafka[ev.CommandID]
		if !ok {
			t.Fatalf("no event on Kafka for %s", ev.CommandID)
		}
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(ev)
		if !bytes.Equal(a, b) {
			t.Fatalf("HTTP answered\n%s\nKafka carries\n%s", b, a)
		}
	}
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	rep, err := verify.Run(context.Background(), pool, kopts, names, 10)
	for deadline := time.Now().Add(30 * time.Second); (err != nil || !rep.OK()) && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		rep, err = verify.Run(context.Background(), pool, kopts, names, 10)
	}
	if err != nil || !rep.OK() || rep.Outcomes != 3 || rep.Events != 3 {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 60 s (last: %v)", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readEvents(t *testing.T, kopts []kgo.Opt, names topics.Names) map[string]topics.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := topics.Ends(ctx, kadm.NewClient(cl), names.Events)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]topics.Event{}
	err = topics.ReadCommitted(ctx, kopts, names.Events, ends, func(r *kgo.Record) {
		ev, err := topics.DecodeEvent(r.Value)
		if err != nil {
			t.Errorf("event: %v", err)
		}
		out[ev.CommandID] = ev
	})
	if err != nil {
		t.Fatal(fmt.Errorf("read events: %w", err))
	}
	return out
}
