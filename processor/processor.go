package processor

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/topics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Defaults for Config.
const (
	DefaultGroup         = "orderflow"
	DefaultMaxBatch      = 2000
	DefaultShutdownGrace = 10 * time.Second
	// DefaultSessionTimeout is shorter than Kafka's 45 s: it is how long the
	// partitions of a crashed processor stall before another takes them.
	DefaultSessionTimeout = 10 * time.Second
)

// Config configures a Processor. Zero fields take the defaults above.
type Config struct {
	// KafkaOpts connect to the cluster: seed brokers, SASL, TLS. The
	// processor adds its own consumer and producer options.
	KafkaOpts []kgo.Opt
	Names     topics.Names
	// Group is the consumer group; processors sharing it share the work.
	Group string
	// MaxBatch bounds the records of one PostgreSQL transaction.
	MaxBatch int
	// ShutdownGrace is how long stopping waits for a batch in flight and
	// its events before abandoning them to the next owner.
	ShutdownGrace time.Duration
	// SessionTimeout is the consumer group session timeout.
	SessionTimeout time.Duration
	Logger         *slog.Logger
	// Registerer receives the processor's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Processor is one member of the processing group.
type Processor struct {
	cfg  Config
	pool *pgxpool.Pool
	log  *slog.Logger
	m    *metrics
	id   string // this process, for owner tokens

	cl  *kgo.Client
	adm *kadm.Client

	commits   chan *commitReq // batches for the committers
	gathering sync.Mutex      // held by the committer gathering batches
	pub       *publisher

	mu      sync.Mutex
	workers map[int32]*worker
	ctx     context.Context // the processor's lifetime, parent of workers
}

// New validates cfg and returns a processor; Run starts it.
func New(cfg Config, pool *pgxpool.Pool) (*Processor, error) {
	cfg.Group = cmp.Or(cfg.Group, DefaultGroup)
	cfg.MaxBatch = cmp.Or(cfg.MaxBatch, DefaultMaxBatch)
	cfg.ShutdownGrace = cmp.Or(cfg.ShutdownGrace, DefaultShutdownGrace)
	cfg.SessionTimeout = cmp.Or(cfg.SessionTimeout, DefaultSessionTimeout)
	if cfg.Names.Commands == "" {
		cfg.Names = topics.NewNames("")
	}
	if cfg.MaxBatch < 1 || cfg.MaxBatch > 100000 {
		return nil, fmt.Errorf("processor: MaxBatch %d out of range 1..100000", cfg.MaxBatch)
	}
	if pool == nil {
		return nil, errors.New("processor: nil pool")
	}
	logger := cmp.Or(cfg.Logger, slog.Default())
	host, _ := os.Hostname()
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	return &Processor{
		cfg: cfg, pool: pool, log: logger, m: newMetrics(cfg.Registerer),
		id:      fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(rnd[:])),
		workers: make(map[int32]*worker),
		commits: make(chan *commitReq),
	}, nil
}

// Run consumes until ctx ends, then stops gracefully: each worker finishes
// the batch in hand and publishes its events (within ShutdownGrace), and the
// member leaves the group so its partitions move at once.
func (p *Processor) Run(ctx context.Context) error {
	p.ctx = ctx
	cl, err := kgo.NewClient(append(p.cfg.KafkaOpts,
		kgo.ConsumerGroup(p.cfg.Group),
		kgo.SessionTimeout(p.cfg.SessionTimeout),
		kgo.HeartbeatInterval(p.cfg.SessionTimeout/10),
		kgo.ConsumeTopics(p.cfg.Names.Commands),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		// Upstream producers may write commands in transactions; never
		// act on a command that was aborted.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {}),
		kgo.AdjustFetchOffsetsFn(p.claim),
		kgo.OnPartitionsRevoked(p.revoked),
		kgo.OnPartitionsLost(p.lost),
	)...)
	if err != nil {
		return fmt.Errorf("processor: kafka client: %w", err)
	}
	p.cl = cl
	p.adm = kadm.NewClient(cl)
	// The committers outlive the run context: stopping lets workers finish
	// the batch in hand, so they stop after the workers.
	cctx, stopCommitters := context.WithCancel(context.WithoutCancel(ctx))
	var committing sync.WaitGroup
	for range committers {
		committing.Go(func() { p.runCommitter(cctx) })
	}
	defer func() {
		stopCommitters()
		committing.Wait()
	}()
	// The publisher stops last: stopping workers hand their partitions over
	// once it has published what they committed.
	p.pub = newPublisher(p)
	pctx, stopPublisher := context.WithCancel(context.WithoutCancel(ctx))
	go p.pub.run(pctx)
	defer func() {
		stopPublisher()
		<-p.pub.done
	}()
	p.log.Info("processor started", "group", p.cfg.Group, "topic", p.cfg.Names.Commands, "member", p.id)

	for {
		fs := cl.PollRecords(ctx, 10*p.cfg.MaxBatch)
		if ctx.Err() != nil || fs.IsClientClosed() {
			break
		}
		fs.EachError(func(t string, part int32, err error) {
			p.log.Warn("fetch error", "topic", t, "partition", part, "err", err)
		})
		fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
			if len(ftp.Records) == 0 {
				return
			}
			p.mu.Lock()
			w := p.workers[ftp.Partition]
			p.mu.Unlock()
			if w != nil {
				w.enqueue(ftp.Records)
			}
		})
		cl.AllowRebalance()
	}
	p.stopAll(true)
	cl.CloseAllowingRebalance()
	p.log.Info("processor stopped", "member", p.id)
	return nil
}

// claim runs after the group assigned partitions and before fetching starts:
// it claims each new partition in PostgreSQL (fencing its previous owner),
// starts its worker, and makes fetching start at the offset PostgreSQL
// holds. It retries a failing database until the session ends, so a
// partition is never consumed from a position it did not claim.
func (p *Processor) claim(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	parts := offsets[p.cfg.Names.Commands]
	for part := range parts {
		owner := store.Owner{Topic: p.cfg.Names.Commands, Partition: part, Token: p.id + "/" + strconv.FormatInt(time.Now().UnixNano(), 36)}
		b := newBackoff()
		var pos store.Position
		for {
			var err error
			if pos, err = store.Claim(ctx, p.pool, owner); err == nil {
				break
			}
			p.log.Warn("claim partition failed; retrying", "partition", part, "err", err)
			if !b.wait(ctx) {
				return offsets, fmt.Errorf("claim partition %d: %w", part, ctx.Err())
			}
		}
		p.start(owner, pos)
		parts[part] = kgo.NewOffset().At(pos.NextOffset).WithEpoch(-1)
	}
	return offsets, nil
}

func (p *Processor) start(owner store.Owner, pos store.Position) {
	// Not a child of the run context: stopping is graceful, driven by stop.
	ctx, cancel := context.WithCancel(context.WithoutCancel(p.ctx))
	w := &worker{
		p: p, owner: owner, pos: pos,
		in: make(chan []*kgo.Record, queueLen), quit: make(chan struct{}), ctx: ctx, cancel: cancel, done: make(chan struct{}),
	}
	p.mu.Lock()
	if old := p.workers[owner.Partition]; old != nil {
		// Assigned again before the old worker was stopped: it is fenced
		// already by the new claim; stop it without waiting for it.
		old.cancel()
	}
	p.workers[owner.Partition] = w
	p.m.owned.Set(float64(len(p.workers)))
	p.mu.Unlock()
	part := strconv.Itoa(int(owner.Partition))
	p.m.committedSeq.WithLabelValues(part).Set(float64(pos.NextSeq - 1))
	p.m.nextOffset.WithLabelValues(part).Set(float64(pos.NextOffset))
	p.log.Debug("partition assigned", "partition", owner.Partition, "next_offset", pos.NextOffset, "next_seq", pos.NextSeq)
	go w.run()
}

// revoked stops the workers of partitions leaving this member; each finishes
// its batch in hand first, so the next owner starts where it ended.
func (p *Processor) revoked(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	p.stop(lost[p.cfg.Names.Commands], true)
}

// lost stops workers at once: the partitions may already be someone else's,
// and the fences make sure nothing of ours commits after that.
func (p *Processor) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	p.stop(lost[p.cfg.Names.Commands], false)
}

func (p *Processor) stop(parts []int32, graceful bool) {
	var ws []*worker
	p.mu.Lock()
	for _, part := range parts {
		if w := p.workers[part]; w != nil {
			ws = append(ws, w)
			delete(p.workers, part)
		}
	}
	p.m.owned.Set(float64(len(p.workers)))
	p.mu.Unlock()
	for _, w := range ws {
		if graceful {
			close(w.quit)
			t := time.AfterFunc(p.cfg.ShutdownGrace, w.cancel)
			<-w.done
			t.Stop()
		} else {
			w.cancel()
			<-w.done
		}
		w.cancel()
		p.m.forgetPartition(w.owner.Partition)
	}
}

func (p *Processor) stopAll(graceful bool) {
	p.mu.Lock()
	parts := make([]int32, 0, len(p.workers))
	for part := range p.workers {
		parts = append(parts, part)
	}
	p.mu.Unlock()
	p.stop(parts, graceful)
}

// Ready reports whether PostgreSQL and Kafka answer; /readyz serves it. Its
// error starts with the dependency's name and says nothing more.
func (p *Processor) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := p.pool.Ping(ctx); err != nil {
		p.log.Warn("readiness: PostgreSQL does not answer", "err", err)
		return errUnreachable("postgresql")
	}
	if p.cl == nil {
		return errors.New("kafka: not connected yet")
	}
	if err := p.cl.Ping(ctx); err != nil {
		p.log.Warn("readiness: Kafka does not answer", "err", err)
		return errUnreachable("kafka")
	}
	return nil
}

// errUnreachable names a dependency that does not answer, and only that:
// readiness is served without auth, and the driver's error can name hosts
// and users. The log has the error.
func errUnreachable(dep string) error {
	return fmt.Errorf("%s: unreachable (the log has the error)", dep)
}
