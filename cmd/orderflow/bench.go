package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orderflow/orderflow/scripts/bench/benchkit"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func init() {
	register(command{name: "bench", summary: "drive an open-loop load through Kafka and report throughput and latency", run: runBench})
}

// benchConfig is what `orderflow bench` offers and how it measures.
type benchConfig struct {
	kafka      kafkaConfig
	partitions int
	name       string
	kind       string
	out        string
	quiet      bool

	rate     int
	duration time.Duration
	warmup   time.Duration
	linger   time.Duration
	drain    time.Duration

	burst     int
	readyFile string

	gen benchkit.GenConfig
}

func (c *benchConfig) register(f envFlags) {
	c.kafka.register(f)
	f.Int(&c.partitions, "partitions", "ORDERFLOW_PARTITIONS", topics.DefaultPartitions, "partitions of the topics, if bench creates them")
	fs := f.fs
	fs.StringVar(&c.name, "name", "", "name of this measurement in the result (default: kind and rate)")
	fs.StringVar(&c.kind, "kind", "e2e", "kind of measurement in the result (e2e, b1, ...)")
	fs.StringVar(&c.out, "out", "-", "file for the JSON result (-: stdout)")
	fs.BoolVar(&c.quiet, "quiet", false, "no progress line")
	fs.IntVar(&c.rate, "rate", 1000, "commands per second, sent on a fixed schedule (open loop)")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "how long to send, warm-up included")
	fs.DurationVar(&c.linger, "linger", 10*time.Millisecond, "producer linger of the command producer (franz-go's default is 10ms; the wait is part of the measured latency)")
	fs.DurationVar(&c.warmup, "warmup", 3*time.Second, "first part of the run left out of the figures")
	fs.DurationVar(&c.drain, "drain-timeout", 30*time.Second, "how long to wait for outstanding events after sending")
	fs.IntVar(&c.burst, "burst", 0, "burst mode: send this many commands as fast as possible, then measure how fast events come (start the processor after the ready line)")
	fs.StringVar(&c.readyFile, "ready-file", "", "burst mode: file created once every command is in Kafka")
	fs.IntVar(&c.gen.Orders, "orders", 10000, "orders in flight at once; each finished lifecycle is replaced by a new order")
	fs.Float64Var(&c.gen.Invalid, "invalid", 0.01, "share of commands with an unknown action (dead letter + rejected event)")
	fs.Float64Var(&c.gen.Duplicate, "duplicate", 0.01, "share of commands re-sent with the same command_id (no second event)")
	fs.Float64Var(&c.gen.Conflict, "conflict", 0.01, "share of commands with a stale expected_version (rejected)")
	fs.Float64Var(&c.gen.Hot, "hot", 0, "share of commands sent to a few hot orders (hot-key skew)")
	fs.IntVar(&c.gen.HotOrders, "hot-orders", 0, "how many orders are hot (default 1 % of -orders)")
	fs.IntVar(&c.gen.Preloaded, "preloaded", 0, "orders that already exist in state Created (ids from -preloaded-prefix); lifecycles use them first")
	fs.IntVar(&c.gen.PreloadedFrom, "preloaded-from", 0, "skip this many preloaded orders (runs on one database use disjoint ones)")
	fs.StringVar(&c.gen.PreloadedPrefix, "preloaded-prefix", "live-", "id prefix of preloaded orders, followed by 7 digits")
	fs.Uint64Var(&c.gen.Seed, "seed", 1, "random seed of the generator")
}

func (c *benchConfig) validate() error {
	switch {
	case c.burst == 0 && (c.rate < 1 || c.rate > 1_000_000):
		return fmt.Errorf("-rate %d is not in 1..1000000", c.rate)
	case c.burst == 0 && c.duration <= c.warmup:
		return fmt.Errorf("-duration %v must be longer than -warmup %v", c.duration, c.warmup)
	case c.burst < 0 || c.burst > 50_000_000:
		return fmt.Errorf("-burst %d is not in 0..50000000", c.burst)
	case c.partitions < 1 || c.partitions > 10000:
		return fmt.Errorf("-partitions %d is not in 1..10000", c.partitions)
	}
	return nil
}

func runBench(ctx context.Context, args []string, out io.Writer) error {
	var c benchConfig
	f := newFlags("bench")
	c.register(f)
	if err := f.parse(args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	kopts, err := c.kafka.opts()
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	// A prefix unique to this run: its commands never collide with an
	// earlier run's in the database, and events of other runs are ignored.
	c.gen.Prefix = "b" + strconv.FormatInt(time.Now().UnixMilli(), 36) + "-"
	gen, err := benchkit.NewGen(c.gen)
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	b, err := newBenchRun(ctx, &c, kopts, gen)
	if err != nil {
		return err
	}
	defer b.close()
	var res benchkit.Result
	if c.burst > 0 {
		res, err = b.runBurst(ctx)
	} else {
		res, err = b.runRate(ctx)
	}
	if err != nil {
		return err
	}
	if c.out == "-" {
		return benchkit.EncodeResult(out, &res)
	}
	return benchkit.WriteResult(c.out, &res)
}

// Per-command flags in the tracker.
const (
	flagExpectAccepted = 1 << iota
	flagReceived
)

// entry tracks one command id: when it was meant to be sent and whether
// its event came. at is nanoseconds since the run's start plus one, so zero
// means "not sent yet"; it is stored after the flags, so a reader that sees
// it sees them.
type entry struct {
	at    atomic.Int64
	flags atomic.Uint32
}

// benchRun is one run: the producer, the event consumer and what they
// share.
type benchRun struct {
	cfg   *benchConfig
	gen   *benchkit.Gen
	names topics.Names
	prod  *kgo.Client
	cons  *kgo.Client
	start time.Time

	entries []entry

	sent        atomic.Int64 // records produced (duplicates included)
	expected    atomic.Int64 // command ids sent: each must get one event
	produceErrs atomic.Int64
	received    atomic.Int64
	dupEvents   atomic.Int64
	unexpected  atomic.Int64
	foreign     atomic.Int64 // events of this run's prefix that were never sent
	accepted    atomic.Int64
	rejected    atomic.Int64
	lastRecv    atomic.Int64 // ns since start
	firstRecv   atomic.Int64 // ns since start, +1

	mu       sync.Mutex
	hist     benchkit.Histogram // measured commands, the result
	interval benchkit.Histogram // since the last progress line
	// inWindow counts events received in [warmup, duration) by receive
	// time, for throughput.
	inWindow int64
	from, to int64 // the window, ns since start
}

func newBenchRun(ctx context.Context, c *benchConfig, kopts []kgo.Opt, gen *benchkit.Gen) (*benchRun, error) {
	names := c.kafka.names()
	n := c.burst
	if n == 0 {
		n = int(float64(c.rate)*c.duration.Seconds()) + 1
	}
	b := &benchRun{cfg: c, gen: gen, names: names, entries: make([]entry, n)}

	admCl, err := kgo.NewClient(append(kopts, kgo.MetadataMinAge(100*time.Millisecond))...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	// The topics as serve would make them, so a burst can be loaded before
	// any processor ever ran; a mismatch with existing topics is an error.
	if _, err := topics.Ensure(ctx, adm, names, topics.Settings{Partitions: int32(c.partitions)}); err != nil { //nolint:gosec // validated range
		return nil, err
	}
	// Consume events from the current ends: only this run's matter.
	ends, err := adm.ListEndOffsets(ctx, names.Events)
	if err != nil {
		return nil, fmt.Errorf("list event offsets: %w", err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("list event offsets: %w", err)
	}
	start := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) { start[o.Partition] = kgo.NewOffset().At(o.Offset) })
	b.cons, err = kgo.NewClient(append(kopts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{names.Events: start}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka consumer: %w", err)
	}
	// The producer settings any upstream service gets by default
	// (idempotent, acks=all, 10 ms linger, murmur2 keys), as `send` uses;
	// -linger changes the linger only.
	b.prod, err = kgo.NewClient(append(kopts, kgo.DefaultProduceTopic(names.Commands), kgo.ProducerLinger(c.linger))...)
	if err != nil {
		b.cons.Close()
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	return b, nil
}

func (b *benchRun) close() {
	b.prod.Close()
	b.cons.Close()
}

// send produces the generator's next command, meant to go at intended
// (ns since start).
func (b *benchRun) send(ctx context.Context, intended int64) {
	c := b.gen.Next()
	if c.Kind != benchkit.Duplicate && int(c.Seq) < len(b.entries) {
		e := &b.entries[c.Seq]
		if c.Accepted {
			e.flags.Store(flagExpectAccepted)
		}
		e.at.Store(intended + 1)
		b.expected.Add(1)
	}
	v := benchkit.AppendJSON(make([]byte, 0, 200), &c, "bench", b.start.Add(time.Duration(intended)))
	b.sent.Add(1)
	b.prod.Produce(ctx, &kgo.Record{Key: []byte(c.OrderID), Value: v}, func(_ *kgo.Record, err error) {
		if err != nil {
			b.produceErrs.Add(1)
		}
	})
}

var (
	keyCommandID = []byte(`"command_id":"`)
	keyOutcome   = []byte(`"outcome":"`)
)

// eventFields reads command_id and outcome from an event without a full
// JSON decode: at 30,000 events/s the bench would otherwise take CPU from
// what it measures. It falls back to the codec for anything unusual.
func eventFields(v []byte) (commandID string, accepted, ok bool) {
	i := bytes.Index(v, keyCommandID)
	o := bytes.Index(v, keyOutcome)
	if i >= 0 && o >= 0 && o+len(keyOutcome) < len(v) {
		rest := v[i+len(keyCommandID):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 && bytes.IndexByte(rest[:j], '\\') < 0 {
			return string(rest[:j]), v[o+len(keyOutcome)] == 'a', true
		}
	}
	ev, err := topics.DecodeEvent(v)
	if err != nil {
		return "", false, false
	}
	return ev.CommandID, ev.Outcome == topics.Accepted, true
}

// consume reads events until ctx ends, matching each to its command.
func (b *benchRun) consume(ctx context.Context) {
	for {
		fs := b.cons.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		now := int64(time.Since(b.start))
		b.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			id, accepted, ok := eventFields(r.Value)
			if !ok {
				return
			}
			seq, ok := benchkit.ParseCommandID(b.cfg.gen.Prefix, id)
			if !ok {
				return // another run's event
			}
			if seq < 0 || int(seq) >= len(b.entries) {
				b.foreign.Add(1)
				return
			}
			e := &b.entries[seq]
			at := e.at.Load()
			if at == 0 {
				b.foreign.Add(1)
				return
			}
			fl := e.flags.Load()
			if fl&flagReceived != 0 {
				b.dupEvents.Add(1) // exactly-once broken: say so
				return
			}
			e.flags.Store(fl | flagReceived)
			if accepted != (fl&flagExpectAccepted != 0) {
				b.unexpected.Add(1)
			}
			if accepted {
				b.accepted.Add(1)
			} else {
				b.rejected.Add(1)
			}
			at--
			lat := now - at
			if at >= b.from {
				b.hist.RecordValue(lat)
			}
			b.interval.RecordValue(lat)
			if now >= b.from && now < b.to {
				b.inWindow++
			}
			b.received.Add(1)
			b.firstRecv.CompareAndSwap(0, now+1)
			b.lastRecv.Store(now)
		})
		b.mu.Unlock()
	}
}

// progress prints a status line every second until ctx ends.
func (b *benchRun) progress(ctx context.Context) {
	if b.cfg.quiet {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastSent, lastRecv int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sent, recv := b.sent.Load(), b.received.Load()
		b.mu.Lock()
		p99 := b.interval.Quantile(0.99)
		b.interval.Reset()
		b.mu.Unlock()
		fmt.Fprintf(os.Stderr, "bench %5.0fs  sent %7d/s  events %7d/s  outstanding %7d  p99 %8.1fms  errors %d\n",
			time.Since(b.start).Seconds(), sent-lastSent, recv-lastRecv, b.expected.Load()-recv,
			float64(p99)/1e6, b.produceErrs.Load()+b.dupEvents.Load()+b.unexpected.Load())
		lastSent, lastRecv = sent, recv
	}
}

// runRate sends at a fixed rate for the duration, then waits for the
// outstanding events.
func (b *benchRun) runRate(ctx context.Context) (benchkit.Result, error) {
	c := b.cfg
	b.start = time.Now()
	b.from, b.to = int64(c.warmup), int64(c.duration)
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { b.consume(cctx) })
	wg.Go(func() { b.progress(cctx) })

	// The schedule, not the sender, decides when each command is due: its
	// latency counts from then, so a sender (or producer) that falls behind
	// shows up as latency instead of hiding it (no coordinated omission).
	perCmd := float64(time.Second) / float64(c.rate)
	total := len(b.entries) - 1
	var backlogFrom int64 = -1
	i := 0
	for i < total && ctx.Err() == nil {
		now := time.Since(b.start)
		for i < total {
			due := int64(float64(i) * perCmd)
			if due > int64(now) {
				break
			}
			b.send(ctx, due)
			i++
		}
		if backlogFrom < 0 && now >= c.warmup {
			backlogFrom = b.expected.Load() - b.received.Load()
		}
		time.Sleep(time.Millisecond)
	}
	sendEnd := time.Since(b.start)
	backlogTo := b.expected.Load() - b.received.Load()
	if err := b.prod.Flush(ctx); err != nil {
		return benchkit.Result{}, fmt.Errorf("flush: %w", err)
	}
	drained := b.waitDrain(ctx, c.drain)
	stop()
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return benchkit.Result{}, fmt.Errorf("bench: %w", err)
	}

	// Commands whose event never came count at the time we gave up (a
	// floor), so a lossy run cannot show a better tail than it had.
	end := int64(time.Since(b.start))
	var missing, expectedInWindow int64
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.entries {
		e := &b.entries[i]
		at := e.at.Load() - 1
		if at < 0 {
			continue
		}
		if at >= b.from {
			expectedInWindow++
		}
		if e.flags.Load()&flagReceived == 0 {
			missing++
			if at >= b.from {
				b.hist.RecordValue(end - at)
			}
		}
	}
	window := (time.Duration(b.to - b.from)).Seconds()
	res := b.result()
	res.OfferedRate = float64(c.rate)
	res.Seconds = window
	res.Throughput = float64(b.inWindow) / window
	// Offered events per second: duplicates get none.
	if offered := float64(expectedInWindow) / window; offered > 0 {
		res.Ratio = res.Throughput / offered
	}
	res.Missing = missing
	res.BacklogGrowth = backlogTo - max(backlogFrom, 0)
	res.DrainSeconds = drained.Seconds()
	res.Sustained = res.Ratio >= 0.95 && float64(res.BacklogGrowth) <= 0.05*float64(expectedInWindow) &&
		sendEnd < c.duration+time.Second
	if res.Name == "" {
		res.Name = fmt.Sprintf("%s-%d", c.kind, c.rate)
	}
	return res, nil
}

// waitDrain waits until every command sent has its event, or timeout; it
// returns how long it waited.
func (b *benchRun) waitDrain(ctx context.Context, timeout time.Duration) time.Duration {
	start := time.Now()
	for time.Since(start) < timeout && ctx.Err() == nil {
		if b.received.Load() >= b.expected.Load() {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// runBurst loads the commands first, then measures how fast the processor
// (started after the ready line) turns them into events.
func (b *benchRun) runBurst(ctx context.Context) (benchkit.Result, error) {
	c := b.cfg
	b.start = time.Now()
	b.from, b.to = 0, 1<<62
	loadStart := time.Now()
	for i := 0; i < c.burst && ctx.Err() == nil; i++ {
		b.send(ctx, int64(time.Since(b.start)))
	}
	if err := b.prod.Flush(ctx); err != nil {
		return benchkit.Result{}, fmt.Errorf("flush: %w", err)
	}
	if n := b.produceErrs.Load(); n > 0 {
		return benchkit.Result{}, fmt.Errorf("burst: %d commands failed to produce", n)
	}
	fmt.Fprintf(os.Stderr, "bench: ready: %d commands loaded in %.1fs; start the processor\n", c.burst, time.Since(loadStart).Seconds())
	if c.readyFile != "" {
		if err := os.WriteFile(c.readyFile, []byte("ready\n"), 0o644); err != nil { //nolint:gosec // a marker file
			return benchkit.Result{}, fmt.Errorf("ready file: %w", err)
		}
	}
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { b.consume(cctx) })
	wg.Go(func() { b.progress(cctx) })
	// Wait for the first event (the processor has to start), then until
	// all came or none came for drain-timeout.
	for ctx.Err() == nil && b.received.Load() < b.expected.Load() {
		if b.firstRecv.Load() == 0 {
			// The processor is not up yet; give up only if it never is.
			if time.Since(loadStart) > 5*time.Minute {
				break
			}
		} else if time.Duration(int64(time.Since(b.start))-b.lastRecv.Load()) > c.drain {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return benchkit.Result{}, fmt.Errorf("bench: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	res := b.result()
	first, last := b.firstRecv.Load()-1, b.lastRecv.Load()
	if res.Received > 1 && last > first {
		res.Seconds = time.Duration(last - first).Seconds()
		res.Throughput = float64(res.Received-1) / res.Seconds
	}
	res.Ratio = float64(res.Received) / float64(max(res.Expected, 1))
	res.Missing = res.Expected - res.Received
	res.Sustained = res.Missing == 0
	if res.Name == "" {
		res.Name = fmt.Sprintf("%s-burst-%d", c.kind, c.burst)
	}
	return res, nil
}

// result fills what both modes report; the caller holds mu.
func (b *benchRun) result() benchkit.Result {
	c := b.cfg
	return benchkit.Result{
		Name: c.name, Kind: c.kind, Latency: b.hist.Summary(),
		Sent: b.sent.Load(), Expected: b.expected.Load(), Received: b.received.Load(),
		DupEvents: b.dupEvents.Load(), Unexpected: b.unexpected.Load() + b.foreign.Load(),
		Accepted: b.accepted.Load(), Rejected: b.rejected.Load(), Errors: b.produceErrs.Load(),
		Notes: map[string]string{
			"topics":     b.names.Commands,
			"partitions": strconv.Itoa(c.partitions),
			"orders":     strconv.Itoa(c.gen.Orders),
			"invalid":    strconv.FormatFloat(c.gen.Invalid, 'g', -1, 64),
			"duplicate":  strconv.FormatFloat(c.gen.Duplicate, 'g', -1, 64),
			"conflict":   strconv.FormatFloat(c.gen.Conflict, 'g', -1, 64),
			"hot":        strconv.FormatFloat(c.gen.Hot, 'g', -1, 64),
			"preloaded":  strconv.Itoa(c.gen.Preloaded),
			"warmup_s":   strconv.FormatFloat(c.warmup.Seconds(), 'g', -1, 64),
			"duration_s": strconv.FormatFloat(c.duration.Seconds(), 'g', -1, 64),
		},
	}
}
