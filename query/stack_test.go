package query

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/processor/machine"
	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/scripts/testenv"
	"github.com/orderflow/orderflow/topics"
)

// bundle is one running API against the real stack: a fresh database, fresh
// topics, and the server serving on a loopback port.
type bundle struct {
	pool    *pgxpool.Pool
	names   topics.Names
	brokers []string
	cl      *kgo.Client // the server's producer; tests publish with it too
	srv     *Server
	base    string
	key     string // sent as Bearer when set
	http    *http.Client
	stop    func() error // ends Serve (idempotent) and returns its error
}

type option func(*Config)

func setup(t testing.TB, opts ...option) *bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	pool := testenv.Pool(t)
	if _, err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if err := store.EnsurePartitions(ctx, pool, time.Now()); err != nil {
		t.Fatal(err)
	}
	brokers := testenv.Kafka(t)
	names := topics.NewNames(testenv.TopicPrefix(t))
	// A short metadata age: topics.Ensure polls metadata until new topics
	// show, and the default 5s cache would make every setup take 5s.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0), kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if _, err := topics.Ensure(ctx, kadm.NewClient(cl), names, topics.Settings{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Addr: "127.0.0.1:0", Names: names, Brokers: brokers,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(cfg, pool, cl)
	if err != nil {
		t.Fatal(err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancelRun := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(runCtx, ln) }()
	var once sync.Once
	var serveErr error
	stop := func() error {
		once.Do(func() { cancelRun(); serveErr = <-done })
		return serveErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	b := &bundle{pool: pool, names: names, brokers: brokers, cl: cl, srv: srv, base: "http://" + ln.Addr().String(),
		http: &http.Client{Timeout: 40 * time.Second}, stop: stop}
	if len(cfg.APIKeys) > 0 {
		b.key = cfg.APIKeys[0].Secret
	}
	// Ready means the events feed consumes: from then on no event is missed.
	eventually(t, 30*time.Second, "server ready", func() bool {
		return b.get(t, "/readyz").status == http.StatusOK
	})
	return b
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *bundle) do(t testing.TB, method, path, body string) result {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, b.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if b.key != "" {
		req.Header.Set("Authorization", "Bearer "+b.key)
	}
	res, err := b.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{status: res.StatusCode, header: res.Header, body: data}
}

func (b *bundle) get(t testing.TB, path string) result { t.Helper(); return b.do(t, "GET", path, "") }

// seedOrder writes an order row as the processor would.
func (b *bundle) seedOrder(t testing.TB, id string, state machine.State, version int64, at time.Time) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), `INSERT INTO orders (order_id, state, version, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $4)
		ON CONFLICT (order_id) DO UPDATE SET state = $2, version = $3, updated_at = $4`, id, string(state), version, at)
	if err != nil {
		t.Fatal(err)
	}
}

// seedOutcome writes the transition row of ev and its commands row, at
// (partition, seq), as the processor would.
func seedOutcome(ctx context.Context, q execer, ev *topics.Event, partition int32, seq int64) error {
	var meta any
	if len(ev.Metadata) > 0 {
		meta = string(ev.Metadata)
	}
	_, err := q.Exec(ctx, `INSERT INTO transitions (processed_at, topic_partition, source_offset, seq, event_id, command_id,
		order_id, action, outcome, from_state, to_state, version, reason, message, actor, command_reason, metadata, requested_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, NULL, $16::jsonb, $17)`,
		ev.ProcessedAt, partition, seq, seq, ev.EventID, ev.CommandID, ev.OrderID, ev.Action, ev.Outcome,
		ev.FromState, ev.ToState, ev.Version, ev.Reason, ev.Message, ev.Actor, meta, ev.RequestedAt)
	if err != nil {
		return fmt.Errorf("insert transition: %w", err)
	}
	_, err = q.Exec(ctx, `INSERT INTO commands (command_id, order_id, topic_partition, seq, processed_at) VALUES ($1, $2, $3, $4, $5)`,
		ev.CommandID, ev.OrderID, partition, seq, ev.ProcessedAt)
	if err != nil {
		return fmt.Errorf("insert command: %w", err)
	}
	return nil
}

// publishEvent puts ev on the events topic, keyed by order id.
func (b *bundle) publishEvent(t testing.TB, ev *topics.Event) {
	t.Helper()
	v, err := topics.EncodeEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.cl.ProduceSync(context.Background(), &kgo.Record{Topic: b.names.Events, Key: []byte(ev.OrderID), Value: v}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

// acceptedEvent builds the accepted outcome that takes order id to version.
func acceptedEvent(id, commandID string, a machine.Action, from, to machine.State, version int64, at time.Time) *topics.Event {
	ev := &topics.Event{EventID: topics.AcceptedEventID(id, version), CommandID: commandID, OrderID: id, Action: string(a),
		Outcome: topics.Accepted, ToState: ptr(string(to)), Version: version, ProcessedAt: at.UTC().Truncate(time.Microsecond)}
	if from != machine.None {
		ev.FromState = ptr(string(from))
	}
	return ev
}

// ---------------------------------------------------------------------------
// TEST DOUBLE. fakeProcessor stands in for the real processor so that the
// HTTP command path (publish, wait, de-duplication by the API) can be tested
// while the processor is written in parallel. It does what the contract
// says the processor does, simply: decode, de-duplicate by command_id, apply
// the state machine, commit rows in one transaction, then publish the event.
// It is not the processor, proves nothing about it, and ignores orders whose
// id starts with "ignored-" so that tests can see a wait run out.
// ---------------------------------------------------------------------------
func (b *bundle) startFakeProcessor(t *testing.T) {
	t.Helper()
	cons, err := kgo.NewClient(kgo.SeedBrokers(b.brokers...), kgo.ConsumeTopics(b.names.Commands),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; cons.Close() })
	seqs := make(map[int32]int64)
	go func() {
		defer close(done)
		for {
			fetches := cons.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			fetches.EachRecord(func(r *kgo.Record) {
				cmd, err := topics.DecodeCommand(r.Key, r.Value)
				if err != nil || strings.HasPrefix(cmd.OrderID, "ignored-") {
					return
				}
				seqs[r.Partition]++
				ev, err := fakeApply(ctx, b.pool, cmd, r.Partition, seqs[r.Partition], r.Offset)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("fake processor: %v", err)
					}
					return
				}
				if ev == nil {
					return
				}
				v, _ := topics.EncodeEvent(ev)
				rec := &kgo.Record{Topic: b.names.Events, Key: []byte(ev.OrderID), Value: v}
				if err := b.cl.ProduceSync(ctx, rec).FirstErr(); err != nil && ctx.Err() == nil {
					t.Errorf("fake processor: publish: %v", err)
				}
			})
		}
	}()
}

// fakeApply commits one command and returns its event, or nil for a
// duplicate command_id (which, as the contract says, emits nothing).
func fakeApply(ctx context.Context, pool *pgxpool.Pool, cmd topics.Command, partition int32, seq, offset int64) (*topics.Event, error) {
	var ev *topics.Event
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var dup bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM commands WHERE command_id = $1)`, cmd.CommandID).Scan(&dup); err != nil || dup {
			return err
		}
		var state string
		var version int64
		err := tx.QueryRow(ctx, `SELECT state, version FROM orders WHERE order_id = $1 FOR UPDATE`, cmd.OrderID).Scan(&state, &version)
		if err != nil && err != pgx.ErrNoRows { //nolint:errorlint // pgx returns the sentinel itself
			return err
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		to, rej := machine.Apply(machine.State(state), version, machine.Action(cmd.Action), cmd.ExpectedVersion)
		e := &topics.Event{CommandID: cmd.CommandID, OrderID: cmd.OrderID, Action: cmd.Action, Version: version,
			Metadata: cmd.Metadata, RequestedAt: cmd.RequestedAt, ProcessedAt: now}
		if state != "" {
			e.FromState = ptr(state)
		}
		if cmd.Actor != "" {
			e.Actor = ptr(cmd.Actor)
		}
		if rej != nil {
			e.Outcome, e.Reason, e.Message = topics.Rejected, &rej.Reason, &rej.Message
			e.EventID = topics.RejectedEventID(cmd.OrderID, version, cmd.CommandID)
		} else {
			e.Outcome, e.ToState, e.Version = topics.Accepted, ptr(string(to)), version+1
			e.EventID = topics.AcceptedEventID(cmd.OrderID, e.Version)
			if _, err := tx.Exec(ctx, `INSERT INTO orders (order_id, state, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
				ON CONFLICT (order_id) DO UPDATE SET state = $2, version = $3, updated_at = $4`, cmd.OrderID, string(to), e.Version, now); err != nil {
				return err
			}
		}
		if err := seedOutcome(ctx, tx, e, partition, seq); err != nil {
			return err
		}
		ev = e
		return nil
	})
	return ev, err
}

// execer is a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// eventsOf reads the whole events topic and returns the events of
// commandID, rereading for up to 10 s while there are none: an outcome is
// published after it commits, and the API may answer from PostgreSQL before
// the event is on the topic.
func (b *bundle) eventsOf(t testing.TB, commandID string) []topics.Event {
	t.Helper()
	var evs []topics.Event
	eventually(t, 10*time.Second, "an event of "+commandID, func() bool {
		evs = b.scan(t, b.names.Events, func(r *kgo.Record) (topics.Event, bool) {
			ev, err := topics.DecodeEvent(r.Value)
			return ev, err == nil && ev.CommandID == commandID
		})
		return len(evs) > 0
	})
	return evs
}

// commandsOf counts the records on the commands topic carrying commandID.
func (b *bundle) commandsOf(t testing.TB, commandID string) int {
	t.Helper()
	return len(b.scan(t, b.names.Commands, func(r *kgo.Record) (topics.Event, bool) {
		return topics.Event{}, bytes.Contains(r.Value, []byte(`"command_id":"`+commandID+`"`))
	}))
}

// scan reads a topic from the start to its current end. topics.Ends fails
// on a partition whose end it could not list, where counting it as empty
// would report no events.
func (b *bundle) scan(t testing.TB, topic string, keep func(*kgo.Record) (topics.Event, bool)) []topics.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ends, err := topics.Ends(ctx, kadm.NewClient(b.cl), topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []topics.Event
	err = topics.ReadCommitted(ctx, []kgo.Opt{kgo.SeedBrokers(b.brokers...)}, topic, ends, func(r *kgo.Record) {
		if ev, ok := keep(r); ok {
			out = append(out, ev)
		}
	})
	if err != nil {
		t.Fatalf("scan %s: %v", topic, err)
	}
	return out
}

// sameEvent compares two events as JSON values (jsonb may reorder metadata
// keys, which is not a difference).
func sameEvent(t testing.TB, a, b topics.Event) {
	t.Helper()
	norm := func(e topics.Event) any {
		raw, _ := json.Marshal(e)
		var v any
		_ = json.Unmarshal(raw, &v)
		return v
	}
	ja, _ := json.Marshal(norm(a))
	jb, _ := json.Marshal(norm(b))
	if !bytes.Equal(ja, jb) {
		t.Fatalf("events differ:\n%s\n%s", ja, jb)
	}
}

func esc(s string) string { return url.PathEscape(s) }
