package processor_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/topics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// privatePG is a PostgreSQL cluster of one test, in a temporary directory:
// the test may crash it without touching the server other tests share.
type privatePG struct {
	bin, dir, data string
	port           int
}

// startPrivatePG creates and starts a cluster with initdb and pg_ctl from
// Debian's PostgreSQL packages; as root it runs them as the postgres user,
// since PostgreSQL refuses to run as root. It skips the test without them.
func startPrivatePG(t *testing.T) *privatePG {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			bins = []string{p}
		} else {
			t.Skip("no initdb: install PostgreSQL's server package (make up does)")
		}
	}
	sort.Strings(bins)
	pg := &privatePG{bin: filepath.Dir(bins[len(bins)-1])}
	dir, err := os.MkdirTemp("", "orderflow-pg-")
	if err != nil {
		t.Fatal(err)
	}
	pg.dir, pg.data = dir, filepath.Join(dir, "data")
	if os.Getuid() == 0 {
		if out, err := exec.Command("chown", "postgres:", dir).CombinedOutput(); err != nil {
			t.Skipf("as root the cluster needs the postgres user: %v %s", err, out)
		}
	}
	t.Cleanup(func() {
		_ = pg.run("pg_ctl", "stop", "-D", pg.data, "-m", "immediate", "-w")
		_ = os.RemoveAll(dir)
	})
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pg.port = l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	if err := pg.run("initdb", "-D", pg.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		t.Fatal(err)
	}
	pg.start(t)
	conn, err := pgx.Connect(context.Background(), pg.url("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "CREATE DATABASE orderflow"); err != nil {
		t.Fatal(err)
	}
	return pg
}

func (pg *privatePG) run(tool string, args ...string) error {
	name := filepath.Join(pg.bin, tool)
	if os.Getuid() == 0 {
		args = append([]string{"-u", "postgres", "--", name}, args...)
		name = "runuser"
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = pg.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", tool, err, out)
	}
	return nil
}

func (pg *privatePG) start(t *testing.T) {
	t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100", pg.port, pg.dir)
	if err := pg.run("pg_ctl", "start", "-D", pg.data, "-l", filepath.Join(pg.dir, "log"), "-w", "-t", "60", "-o", opts); err != nil {
		t.Fatal(err)
	}
}

// crash stops the cluster the way a crash does: no checkpoint, crash
// recovery at the next start.
func (pg *privatePG) crash(t *testing.T) {
	t.Helper()
	if err := pg.run("pg_ctl", "stop", "-D", pg.data, "-m", "immediate", "-w"); err != nil {
		t.Fatal(err)
	}
}

func (pg *privatePG) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", pg.port, db)
}

// probed is a processor process with a known HTTP address.
type probed struct {
	*proc
	addr string
}

// spawnProbed is spawn with /readyz on a known address, logging at info.
func (b *bundle) spawnProbed(t *testing.T, name string) *probed {
	t.Helper()
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return &probed{proc: b.spawn(t, name, "ORDERFLOW_HTTP_ADDR="+addr, "ORDERFLOW_LOG_LEVEL=info"), addr: addr}
}

func (p *probed) ready(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/readyz", nil)
	if err != nil {
		return false
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// logSince reports whether the log has a line matching re after at.
func (p *probed) logSince(at time.Time, re *regexp.Regexp) bool {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return false
	}
	stamp := regexp.MustCompile(`^time=(\S+)`)
	for _, line := range strings.Split(string(b), "\n") {
		m := stamp.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if ts, err := time.Parse(time.RFC3339Nano, m[1]); err == nil && ts.After(at) && re.MatchString(line) {
			return true
		}
	}
	return false
}

// eventually polls cond until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func(context.Context) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for !cond(ctx) {
		if !sleep(ctx, 100*time.Millisecond) {
			t.Fatalf("not within %v: %s", within, what)
		}
	}
}

// TestProcessorsRideOutPostgresOutage crashes the deployment's PostgreSQL (a
// private cluster) in the middle of a load: the processors must stay up,
// say not ready, back off and retry, and one started during the outage
// must wait for PostgreSQL rather than exit; when it is back they must get
// ready and finish the work by themselves, with nothing lost or doubled.
func TestProcessorsRideOutPostgresOutage(t *testing.T) {
	t.Parallel()
	pg := startPrivatePG(t)
	b := setupOn(t, pg.url("orderflow"))
	procs := []*probed{b.spawnProbed(t, "one"), b.spawnProbed(t, "two")}
	eventually(t, time.Minute, "both processors ready", func(ctx context.Context) bool {
		return procs[0].ready(ctx) && procs[1].ready(ctx)
	})
	const orders = 3000
	done := b.lifecycleStream(orders)
	b.waitOutcomes(t, 2000)

	down := time.Now()
	pg.crash(t)
	eventually(t, 30*time.Second, "both processors report not ready on /readyz", func(ctx context.Context) bool {
		return !procs[0].ready(ctx) && !procs[1].ready(ctx)
	})
	retrying := regexp.MustCompile(`retrying|recovering`)
	eventually(t, time.Minute, "both processors retry with backoff", func(context.Context) bool {
		return procs[0].logSince(down, retrying) && procs[1].logSince(down, retrying)
	})
	// A processor that (re)starts during the outage waits for PostgreSQL.
	if err := procs[1].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-procs[1].done
	procs[1] = b.spawnProbed(t, "two-again")
	eventually(t, time.Minute, "the new processor waits for PostgreSQL", func(context.Context) bool {
		return procs[1].logSince(down, regexp.MustCompile(`waiting for PostgreSQL`))
	})
	for _, p := range procs {
		select {
		case <-p.done:
			t.Fatalf("a processor exited while PostgreSQL was down: %v", p.err)
		default:
		}
	}

	pg.start(t)
	eventually(t, 2*time.Minute, "both processors ready again", func(ctx context.Context) bool {
		return procs[0].ready(ctx) && procs[1].ready(ctx)
	})
	streamed(t, done)
	rep := b.waitProcessed(t, 3*time.Minute)
	if rep.Outcomes != orders*4 || rep.Events != orders*4 || rep.CommandsRead != orders*5 {
		t.Fatalf("after the outage: %s; want %d outcomes and events of %d commands", rep.Summary(), orders*4, orders*5)
	}
	b.checkAllDelivered(t, orders)
	for _, p := range procs {
		select {
		case <-p.done:
			t.Fatalf("a processor exited: %v", p.err)
		default:
		}
	}
}

// commitDropper is a TCP proxy to PostgreSQL that, once armed, forwards the
// next COMMIT to the server and then cuts the connection instead of passing
// the server's answer back: the transaction is committed, and the client
// cannot know it. This is what a crash or a network cut at the wrong moment
// does.
type commitDropper struct {
	addr    string
	target  string
	armed   chan struct{} // closed: drop the next commit
	dropped chan struct{} // closed when it did
	once    sync.Once
}

func newCommitDropper(t *testing.T, target string) *commitDropper {
	t.Helper()
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	d := &commitDropper{addr: l.Addr().String(), target: target, armed: make(chan struct{}), dropped: make(chan struct{})}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go d.serve(c)
		}
	}()
	return d
}

func (d *commitDropper) serve(client net.Conn) {
	defer client.Close()
	var dialer net.Dialer
	server, err := dialer.DialContext(context.Background(), "tcp", d.target)
	if err != nil {
		return
	}
	defer server.Close()
	var mu sync.Mutex
	cut := false // the next answer from the server is the commit's
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				select {
				case <-d.armed:
					if bytes.Contains(bytes.ToLower(buf[:n]), []byte("commit")) {
						d.once.Do(func() { mu.Lock(); cut = true; mu.Unlock() })
					}
				default:
				}
				if _, werr := server.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				_ = server.Close()
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := server.Read(buf)
		mu.Lock()
		drop := cut
		mu.Unlock()
		if drop {
			close(d.dropped)
			return // both connections close: the answer never arrives
		}
		if n > 0 {
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestAmbiguousCommitLosesNoEvent guards a bug the chaos run found when
// PostgreSQL crashed: a batch whose COMMIT reaches the server but whose
// answer does not (the connection dies) is committed, yet the worker sees an
// error and retries. The retry finds the position already past the batch
// ("position moved" in the log), decides nothing, and hands the publisher
// nothing. The publisher used to step over the committed outcomes for good
// (verify: "has an outcome row but no event"); now entries past a gap switch
// the partition to catch-up, which reads the missing ones from PostgreSQL.
func TestAmbiguousCommitLosesNoEvent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u, err := url.Parse(b.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	drop := newCommitDropper(t, u.Host)
	u.Host = drop.addr
	pool, err := pgxpool.New(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	reg := prometheus.NewRegistry()
	b.startWith(t, pool, func(c *processor.Config) { c.Registerer = reg })

	b.send(t, b.command(cmdSpec{id: "a1", order: "A", action: "create"}))
	b.waitProcessed(t, time.Minute)
	close(drop.armed)
	b.send(t, b.command(cmdSpec{id: "a2", order: "A", action: "pay"}))
	select {
	case <-drop.dropped:
	case <-time.After(time.Minute):
		t.Fatal("no commit went through the proxy within a minute")
	}
	b.send(t, b.command(cmdSpec{id: "a3", order: "A", action: "ship"}))
	rep := b.waitProcessed(t, 30*time.Second)
	if rep.Events != 3 {
		t.Fatalf("verify: %s", rep.Summary())
	}
	// The dropped answer was a batch's: its worker saw the error and retried.
	if n := gather(t, reg).sum("orderflow_batch_errors_total", map[string]string{"kind": "retried"}); n < 1 {
		t.Fatalf("%v batches retried; the dropped commit was no batch's", n)
	}
}

// TestRefusedEventIsNotSkipped guards a bug in the publisher: it produced a
// transaction's records and relied on Flush for errors, but Flush reports
// none (franz-go: it only waits). When Kafka refuses a record (here the
// events topic's max.message.bytes is lowered, as an operator might;
// MessageTooLarge, InvalidRecord and the like fail a batch without failing
// the producer) while it takes another of the same transaction (a DLQ
// record), the transaction committed without it and the event was lost for
// good. ProduceSync(...).FirstErr() now aborts such a transaction, and the
// publisher recovers and retries until Kafka takes the record.
func TestRefusedEventIsNotSkipped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	reg := prometheus.NewRegistry()
	b.startWith(t, b.pool, func(c *processor.Config) { c.Registerer = reg })

	b.send(t, b.command(cmdSpec{id: "r1", order: "R", action: "create"}))
	b.waitProcessed(t, time.Minute)

	adm := kadm.NewClient(b.prod)
	limit := func(v *string) {
		t.Helper()
		op := kadm.SetConfig
		if v == nil {
			op = kadm.DeleteConfig
		}
		resp, err := adm.AlterTopicConfigs(context.Background(), []kadm.AlterConfig{{Op: op, Name: "max.message.bytes", Value: v}}, b.names.Events)
		if err == nil {
			_, err = resp.On(b.names.Events, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	small := "1024"
	limit(&small)
	eventually(t, 30*time.Second, "the events topic takes the new limit", func(ctx context.Context) bool {
		cs, err := adm.DescribeTopicConfigs(ctx, b.names.Events)
		if err != nil {
			return false
		}
		c, err := cs.On(b.names.Events, nil)
		if err != nil {
			return false
		}
		for _, kv := range c.Configs {
			if kv.Key == "max.message.bytes" && kv.Value != nil && *kv.Value == small {
				return true
			}
		}
		return false
	})
	attempts := func(context.Context) float64 {
		g := gather(t, reg)
		return g.sum("orderflow_outbox_published_total", nil) + g.sum("orderflow_outbox_publish_errors_total", nil)
	}
	before := attempts(context.Background())
	pay := b.command(cmdSpec{id: "r2", order: "R", action: "pay"})
	var c topics.Command
	if err := json.Unmarshal(pay.Value, &c); err != nil {
		t.Fatal(err)
	}
	noise := make([]byte, 2500) // incompressible: the limit is on compressed batches
	if _, err := rand.Read(noise); err != nil {
		t.Fatal(err)
	}
	c.Metadata = json.RawMessage(`{"note":"` + base64.StdEncoding.EncodeToString(noise) + `"}`)
	var err error
	if pay.Value, err = json.Marshal(c); err != nil {
		t.Fatal(err)
	}
	// With a dead letter in the same batch, the transaction has a record
	// Kafka takes (on the DLQ) beside the one it refuses.
	b.send(t, &kgo.Record{Topic: b.names.Commands, Key: []byte("R"), Value: []byte("not json")}, pay)
	// The publisher has tried to publish the pay's event (and failed, or
	// believed it succeeded) before the topic takes it again.
	eventually(t, 30*time.Second, "the publisher tries the refused event", func(ctx context.Context) bool {
		return attempts(ctx) > before
	})
	limit(nil)
	rep := b.waitProcessed(t, 30*time.Second)
	if rep.Events != 2 || rep.DLQRecords != 1 {
		t.Fatalf("verify: %s", rep.Summary())
	}
	// A normal publish passes the checks above too: Kafka must have refused.
	if n := gather(t, reg).sum("orderflow_outbox_publish_errors_total", nil); n < 1 {
		t.Fatalf("%v failed publisher transactions; Kafka never refused the event", n)
	}
}
