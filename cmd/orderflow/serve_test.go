package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/orderflow/orderflow/processor/verify"
	"github.com/orderflow/orderflow/scripts/testenv"
	"github.com/orderflow/orderflow/topics"
)

// TestScaleOut runs a deployment as operators would scale it: three
// `orderflow serve --role processor` and two `--role api` processes of the
// real binary, against one broker and one database. Commands arrive through
// both API replicas and straight through Kafka, interleaved per order. Then
// the processors' invariants must hold (processor/verify), each API replica
// must read every final state, and every process's /metrics must show the
// operational metrics with values that match what was sent.
func TestScaleOut(t *testing.T) {
	t.Parallel()
	d := newDeployment(t, 6)
	procs := []*servedProc{
		d.spawn(t, "processor-1", "processor"),
		d.spawn(t, "processor-2", "processor"),
		d.spawn(t, "processor-3", "processor"),
	}
	// api-1 counts orders as stuck after a second, api-2 after the default
	// hour: the gauge must follow the setting.
	apis := []*servedProc{
		d.spawn(t, "api-1", "api", "ORDERFLOW_STUCK_AFTER=1s"),
		d.spawn(t, "api-2", "api"),
	}
	for _, p := range append(append([]*servedProc{}, procs...), apis...) {
		p.waitReady(t)
	}
	// All three processors share the partitions before any command: this
	// is a test of running side by side, not of one doing all the work.
	pollMetrics(t, "three processors share the partitions", func() error {
		total := 0.0
		for _, p := range procs {
			owned := metricValue(scrape(t, p), "orderflow_partitions_owned", nil)
			if owned < 1 {
				return fmt.Errorf("%s owns %v partitions", p.name, owned)
			}
			total += owned
		}
		if total != float64(d.partitions) {
			return fmt.Errorf("%v partitions owned in all, want %d", total, d.partitions)
		}
		return nil
	})

	const (
		orders      = 36 // full lifecycle, through both replicas and Kafka
		createdOnly = 4  // left in Created, to be counted as stuck
		malformed   = 3  // straight to the DLQ
	)
	g, ctx := errgroup.WithContext(context.Background())
	for w := range 6 {
		g.Go(func() error {
			for i := w; i < orders; i += 6 {
				if err := d.lifecycle(ctx, i, apis[i%2], apis[(i+1)%2]); err != nil {
					return fmt.Errorf("order %d: %w", i, err)
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		var recs []*kgo.Record
		for i := range createdOnly {
			recs = append(recs, d.command(fmt.Sprintf("idle-%d", i), "create", fmt.Sprintf("idle-%d-create", i)))
		}
		for i := range malformed {
			recs = append(recs, &kgo.Record{Topic: d.names.Commands, Key: fmt.Appendf(nil, "bad-%d", i), Value: []byte("{not json")})
		}
		return d.prod.ProduceSync(ctx, recs...).FirstErr()
	})
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	const outcomes = orders*5 + createdOnly // create, pay, ship, deliver, rejected cancel

	// Consumer lag, as the API replicas measure it, reaches zero on every
	// partition: everything sent was processed.
	for _, a := range apis {
		pollMetrics(t, a.name+": consumer lag drains", func() error {
			fams := scrape(t, a)
			if n := seriesCount(fams, "orderflow_consumer_lag_records"); n != d.partitions {
				return fmt.Errorf("lag has %d partitions, want %d", n, d.partitions)
			}
			if lag := metricValue(fams, "orderflow_consumer_lag_records", nil); lag != 0 {
				return fmt.Errorf("lag %v", lag)
			}
			return nil
		})
	}
	rep := d.verify(t)
	if rep.Outcomes != outcomes || rep.Events != outcomes || rep.DeadLetters != malformed || rep.DLQRecords != malformed {
		t.Fatalf("verify: %s; want %d outcomes and events, %d dead letters", rep.Summary(), outcomes, malformed)
	}

	// Each replica reads every final state (from its own cache or
	// PostgreSQL), and counts the same.
	for _, a := range apis {
		for i := range orders {
			a.wantOrder(t, fmt.Sprintf("order-%d", i), "Delivered", 4)
		}
		for i := range createdOnly {
			a.wantOrder(t, fmt.Sprintf("idle-%d", i), "Created", 1)
		}
	}

	// The processors' metrics add up to what was sent.
	pollMetrics(t, "processor metrics add up", func() error {
		sum := func(name string, labels map[string]string) float64 {
			total := 0.0
			for _, p := range procs {
				total += metricValue(scrape(t, p), name, labels)
			}
			return total
		}
		checks := []struct {
			what      string
			got, want float64
		}{
			{"commands", sum("orderflow_commands_total", nil), outcomes},
			{"accepted creates", sum("orderflow_commands_total", map[string]string{"action": "create", "outcome": "accepted", "reason": ""}), orders + createdOnly},
			{"rejected cancels", sum("orderflow_commands_total", map[string]string{"action": "cancel", "outcome": "rejected", "reason": "invalid_transition"}), orders},
			{"dead letters", sum("orderflow_dead_letters_total", nil), malformed},
			{"latency observations", sum("orderflow_command_latency_seconds", nil), outcomes},
			{"partitions owned", sum("orderflow_partitions_owned", nil), float64(d.partitions)},
			{"outbox pending", sum("orderflow_outbox_pending_events", nil), 0},
		}
		for _, c := range checks {
			if c.got != c.want {
				return fmt.Errorf("%s: %v, want %v", c.what, c.got, c.want)
			}
		}
		// A transaction carries the batches of one or more partitions.
		if batches, txs := sum("orderflow_batch_records", nil), sum("orderflow_batch_transaction_seconds", nil); txs < 1 || txs > batches {
			return fmt.Errorf("%v batches in %v transactions timed", batches, txs)
		}
		if published := sum("orderflow_outbox_published_total", nil); published != outcomes+malformed {
			return fmt.Errorf("published %v, want %v", published, outcomes+malformed)
		}
		return nil
	})
	for _, p := range procs {
		fams := scrape(t, p)
		requireFamilies(t, p.name, fams, "orderflow_commands_total", "orderflow_command_latency_seconds",
			"orderflow_batch_records", "orderflow_batch_transaction_seconds", "orderflow_outbox_committed_seq",
			"orderflow_outbox_published_seq", "orderflow_outbox_pending_events", "orderflow_partition_next_offset")
		// Every outcome carried requested_at (the API stamps it, the test's
		// producer sets it): latency is an end-to-end time, small but not 0.
		if n, s := histogram(fams, "orderflow_command_latency_seconds"); n > 0 && (s <= 0 || s/float64(n) > 60) {
			t.Errorf("%s: mean latency %v s over %d commands", p.name, s/float64(n), n)
		}
		if n, s := histogram(fams, "orderflow_batch_records"); n > 0 && s < float64(n) {
			t.Errorf("%s: %v records in %d batches", p.name, s, n)
		}
		if seriesCount(fams, "orderflow_consumer_lag_records") != 0 {
			t.Errorf("%s: a processor-only process measures lag, but the monitor is the API's by default", p.name)
		}
	}

	// The API replicas' deployment gauges and HTTP metrics.
	for i, a := range apis {
		stuck := map[string]float64{"Created": 0, "Paid": 0, "Shipped": 0, "Delivered": 0}
		if i == 0 { // api-1: stuck after 1 s
			stuck["Created"], stuck["Delivered"] = createdOnly, orders
		}
		pollMetrics(t, a.name+" deployment gauges", func() error {
			fams := scrape(t, a)
			want := map[string]float64{"Created": createdOnly, "Paid": 0, "Shipped": 0, "Delivered": orders, "Cancelled": 0, "Returned": 0}
			for state, n := range want {
				if got := metricValue(fams, "orderflow_orders", map[string]string{"state": state}); got != n {
					return fmt.Errorf("orders %s: %v, want %v", state, got, n)
				}
			}
			for state, n := range stuck {
				if got := metricValue(fams, "orderflow_orders_stuck", map[string]string{"state": state}); got != n {
					return fmt.Errorf("stuck %s: %v, want %v", state, got, n)
				}
			}
			if seriesCount(fams, "orderflow_orders_stuck") != len(stuck) {
				return fmt.Errorf("stuck is measured for %d states, want the %d non-terminal ones", seriesCount(fams, "orderflow_orders_stuck"), len(stuck))
			}
			if got := metricValue(fams, "orderflow_dlq_records", nil); got != malformed {
				return fmt.Errorf("DLQ records %v, want %d", got, malformed)
			}
			if ts := metricValue(fams, "orderflow_monitor_updated_timestamp_seconds", nil); time.Since(time.Unix(int64(ts), 0)) > time.Minute {
				return fmt.Errorf("monitor last updated at %v", ts)
			}
			return nil
		})
		fams := scrape(t, a)
		post := map[string]string{"method": "POST", "route": "/v1/orders/:order_id/commands"}
		// Each replica took, for half of the orders, the create and the pay
		// retry, and for the other half the ship (all 200) and the cancel (409).
		for code, n := range map[string]float64{"200": orders * 3 / 2, "409": orders / 2} {
			post["code"] = code
			if got := metricValue(fams, "orderflow_http_requests_total", post); got != n {
				t.Errorf("%s: %v POST answered %s, want %v", a.name, got, code, n)
			}
		}
		if n, _ := histogram(fams, "orderflow_http_request_duration_seconds"); n == 0 {
			t.Errorf("%s: no HTTP request durations", a.name)
		}
	}

	// What the processes expose after a run is what the docs describe and
	// the dashboard charts.
	exposed := map[string]bool{}
	for _, p := range append(append([]*servedProc{}, procs...), apis...) {
		for name := range scrape(t, p) {
			exposed[name] = true
		}
	}
	checkDocsAndDashboard(t, exposed)
}

// checkDocsAndDashboard checks that docs/operations.md explains every
// orderflow_ metric exposed, and that the Grafana dashboard charts no
// metric that does not exist.
func checkDocsAndDashboard(t *testing.T, exposed map[string]bool) {
	t.Helper()
	ops, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range exposed {
		if strings.HasPrefix(name, "orderflow_") && !strings.Contains(string(ops), "`"+name+"`") {
			t.Errorf("docs/operations.md does not explain %s", name)
		}
	}
	dash, err := os.ReadFile("../../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(dash, &d); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	// Counter vectors without a failure yet have no series to expose.
	mayBeAbsent := map[string]bool{"orderflow_batch_errors_total": true}
	charted := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, name := range metricNameRE.FindAllString(tg.Expr, -1) {
				charted++
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
				if !exposed[name] && !exposed[base] && !mayBeAbsent[name] {
					t.Errorf("dashboard panel %q charts %s, which no process exposes", p.Title, name)
				}
			}
		}
	}
	if charted == 0 {
		t.Error("the dashboard charts nothing")
	}
}

var metricNameRE = regexp.MustCompile(`orderflow_[a-z_]+`)

// deployment is one isolated orderflow deployment of a test: a fresh
// database, topics under a fresh prefix, a Kafka producer and the processes
// serving it.
type deployment struct {
	brokers    string
	dbURL      string
	prefix     string
	names      topics.Names
	partitions int
	prod       *kgo.Client
	pool       *pgxpool.Pool
}

func newDeployment(t *testing.T, partitions int) *deployment {
	t.Helper()
	d := &deployment{
		brokers: strings.Join(testenv.Kafka(t), ","), dbURL: testenv.DatabaseURL(t),
		prefix: testenv.TopicPrefix(t), partitions: partitions,
	}
	d.names = topics.NewNames(d.prefix)
	var err error
	if d.prod, err = kgo.NewClient(kgo.SeedBrokers(testenv.Kafka(t)...), kgo.ProducerLinger(0)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.prod.Close)
	if d.pool, err = pgxpool.New(context.Background(), d.dbURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.pool.Close)
	return d
}

// servedProc is one `orderflow serve` process.
type servedProc struct {
	name string
	base string // http://host:port
	cmd  *exec.Cmd
	done chan struct{}
}

// spawn starts `orderflow serve --role role` for the deployment. Its
// environment is the deployment's only: inherited ORDERFLOW_*, KAFKA_BROKERS
// and DATABASE_URL are dropped, so a developer's shell cannot point a test
// process at another database.
func (d *deployment) spawn(t *testing.T, name, role string, env ...string) *servedProc {
	t.Helper()
	addr := testenv.FreeAddr(t)
	cmd := exec.Command(testenv.OrderflowBinary(t), "serve", "--role", role)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "ORDERFLOW_") && k != "KAFKA_BROKERS" && k != "DATABASE_URL" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env,
		"KAFKA_BROKERS="+d.brokers,
		"DATABASE_URL="+d.dbURL,
		"ORDERFLOW_TOPIC_PREFIX="+d.prefix,
		"ORDERFLOW_GROUP="+d.prefix+"group",
		fmt.Sprintf("ORDERFLOW_PARTITIONS=%d", d.partitions),
		"ORDERFLOW_HTTP_ADDR="+addr,
		"ORDERFLOW_MONITOR_INTERVAL=200ms",
		"ORDERFLOW_LOG_LEVEL=warn",
		"ORDERFLOW_LOG_FORMAT=json",
	)
	cmd.Env = append(cmd.Env, env...)
	logf, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &servedProc{name: name, base: "http://" + addr, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		// SIGTERM: the shutdown path is part of what runs side by side.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Errorf("%s did not stop within 30 s of SIGTERM", name)
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("%s log:\n%s", name, b)
			}
		}
	})
	return p
}

func (p *servedProc) waitReady(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("%s exited before it was ready", p.name)
	default:
	}
	waitReady(t, p.base+"/readyz")
}

// lifecycle takes order i from create to delivered through two API
// replicas and Kafka, one command at a time: each is acknowledged (the API's
// wait, or the broker's ack) before the next is sent, so all land in the
// order's partition in this order. It also retries the pay through an API
// (the recorded outcome must come back) and sends a cancel that must be
// rejected.
func (d *deployment) lifecycle(ctx context.Context, i int, a, b *servedProc) error {
	order := fmt.Sprintf("order-%d", i)
	id := func(action string) string { return fmt.Sprintf("%s-%s", order, action) }
	steps := []struct {
		via    *servedProc // nil: straight to Kafka
		action string
		status int
		state  string
	}{
		{a, "create", http.StatusOK, "Created"},
		{nil, "pay", 0, ""},
		{b, "ship", http.StatusOK, "Shipped"},
		{a, "pay", http.StatusOK, "Paid"}, // the retry: the first outcome stands
		{nil, "deliver", 0, ""},
		{b, "cancel", http.StatusConflict, ""},
	}
	for _, s := range steps {
		if s.via == nil {
			if err := d.prod.ProduceSync(ctx, d.command(order, s.action, id(s.action))).FirstErr(); err != nil {
				return fmt.Errorf("produce %s: %w", s.action, err)
			}
			continue
		}
		status, ev, err := s.via.post(ctx, order, id(s.action), s.action)
		if err != nil {
			return err
		}
		if status != s.status || (s.state != "" && ev.ToState == nil) || (s.state != "" && *ev.ToState != s.state) {
			return fmt.Errorf("%s through %s: %d %+v, want %d to %q", s.action, s.via.name, status, ev, s.status, s.state)
		}
	}
	return nil
}

// command is a command record as an upstream producer would send it.
func (d *deployment) command(order, action, commandID string) *kgo.Record {
	now := time.Now().UTC()
	v, err := topics.EncodeCommand(topics.Command{CommandID: commandID, OrderID: order, Action: action, Actor: "test", RequestedAt: &now})
	if err != nil {
		panic(err) // a fixed, valid command
	}
	return &kgo.Record{Topic: d.names.Commands, Key: []byte(order), Value: v}
}

// post sends a command through the API and waits for its outcome.
func (p *servedProc) post(ctx context.Context, order, commandID, action string) (int, topics.Event, error) {
	var ev topics.Event
	body := fmt.Sprintf(`{"command_id":%q,"action":%q,"actor":"test"}`, commandID, action)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/v1/orders/"+order+"/commands?wait=5s", strings.NewReader(body))
	if err != nil {
		return 0, ev, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, ev, fmt.Errorf("POST %s through %s: %w", action, p.name, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&ev); err != nil {
		return resp.StatusCode, ev, fmt.Errorf("POST %s through %s: %d: %w", action, p.name, resp.StatusCode, err)
	}
	return resp.StatusCode, ev, nil
}

// wantOrder reads an order through the replica, waiting (read-your-writes)
// for the version, and checks its state.
func (p *servedProc) wantOrder(t *testing.T, order, state string, version int64) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/v1/orders/%s?min_version=%d&wait=5s", p.base, order, version))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		State   string `json:"state"`
		Version int64  `json:"version"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK || got.State != state || got.Version != version {
		t.Fatalf("%s reads %s: %d %+v (%v), want %s v%d", p.name, order, resp.StatusCode, got, err, state, version)
	}
}

// verify waits until processor/verify finds the deployment sound (events
// may trail their commit by a Kafka transaction) and returns its report.
func (d *deployment) verify(t *testing.T) *verify.Report {
	t.Helper()
	kopts := []kgo.Opt{kgo.SeedBrokers(testenv.Kafka(t)...)}
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		rep, err := verify.Run(ctx, d.pool, kopts, d.names, 20)
		cancel()
		if err == nil && rep.OK() {
			return rep
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			t.Fatalf("verify: %s\n%s", rep.Summary(), strings.Join(rep.Violations, "\n"))
		}
		time.Sleep(200 * time.Millisecond) // polling a condition under a deadline
	}
}

// scrape reads a process's /metrics in the Prometheus text format.
func scrape(t *testing.T, p *servedProc) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(p.base + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", p.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape %s: %d %s", p.name, resp.StatusCode, b)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", p.name, err)
	}
	return fams
}

// metricValue sums the samples of a family whose labels include labels: a
// counter's or gauge's value, a histogram's count of observations.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	total := 0.0
	for _, m := range matching(fams, name, labels) {
		switch {
		case m.GetCounter() != nil:
			total += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			total += m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		case m.GetUntyped() != nil:
			total += m.GetUntyped().GetValue()
		}
	}
	return total
}

// histogram returns a histogram family's observation count and sum, over
// all its series.
func histogram(fams map[string]*dto.MetricFamily, name string) (uint64, float64) {
	var (
		n   uint64
		sum float64
	)
	for _, m := range matching(fams, name, nil) {
		n += m.GetHistogram().GetSampleCount()
		sum += m.GetHistogram().GetSampleSum()
	}
	return n, sum
}

func seriesCount(fams map[string]*dto.MetricFamily, name string) int {
	return len(matching(fams, name, nil))
}

func matching(fams map[string]*dto.MetricFamily, name string, labels map[string]string) []*dto.Metric {
	var out []*dto.Metric
	f := fams[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

func requireFamilies(t *testing.T, who string, fams map[string]*dto.MetricFamily, names ...string) {
	t.Helper()
	for _, n := range names {
		if fams[n] == nil {
			t.Errorf("%s: /metrics has no %s", who, n)
		}
	}
}

// pollMetrics retries check until it passes or a minute is over: metrics
// settle a scrape or a monitor tick after the state they describe.
func pollMetrics(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition under a deadline
	}
}
