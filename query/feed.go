package query

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/topics"
)

// The events feed keeps the cache fresh and wakes waiting requests. It reads
// orders.events with isolation level read_committed, so it only ever sees
// outcomes whose Kafka transaction committed, and the processor publishes an
// outcome only after its PostgreSQL transaction committed: whatever the feed
// applies is already in the read model.
//
// It has no consumer group: every API replica reads every partition. It
// starts at each partition's last stable offset when it starts (older state
// is in PostgreSQL), listed explicitly rather than left to an "at end" reset,
// so that the moment the feed is ready is known: from then on no committed
// event is missed, which /readyz reports.

// feedRetryMax caps the wait between attempts to start the feed.
const feedRetryMax = 5 * time.Second

func (s *Server) runFeed(ctx context.Context) {
	var cl *kgo.Client
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, feedRetryMax) {
		var err error
		cl, err = s.startFeed(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("events feed: cannot start; retrying", "topic", s.names.Events, "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
	defer cl.Close()
	s.feedReadyOnce.Do(func() { close(s.feedReady) })
	s.log.Debug("events feed started", "topic", s.names.Events)

	var lastLogged time.Time
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			// kgo retries by itself; say so now and then, not per fetch.
			if !errors.Is(err, context.Canceled) && time.Since(lastLogged) > 10*time.Second {
				lastLogged = time.Now()
				s.log.Warn("events feed: fetch failed", "topic", topic, "partition", p, "err", err)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			// Only the head is decoded here, at the processor's full rate;
			// the whole event only when a waiter or a lookup wants it.
			h, err := topics.DecodeEventHead(r.Value)
			if err != nil || h.CommandID == "" || h.OrderID == "" {
				s.metrics.events.WithLabelValues("invalid").Inc()
				s.log.Debug("events feed: skipping a record that is not an outcome event",
					"partition", r.Partition, "offset", r.Offset, "err", err)
				return
			}
			s.apply(&h, r.Value)
		})
	}
}

// startFeed lists where each partition's committed records end and builds a
// client that consumes from there.
func (s *Server) startFeed(ctx context.Context) (*kgo.Client, error) {
	listCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// ListCommittedOffsets is the last stable offset: an event in a
	// transaction still open now lies after it and will be read once it
	// commits; the high watermark would skip it.
	listed, err := kadm.NewClient(s.producer).ListCommittedOffsets(listCtx, s.names.Events)
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	parts := make(map[int32]kgo.Offset)
	for p, o := range listed[s.names.Events] {
		if o.Err != nil {
			return nil, fmt.Errorf("list offsets of %s partition %d: %w", s.names.Events, p, o.Err)
		}
		parts[p] = kgo.NewOffset().At(o.Offset)
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("topic %s has no partitions", s.names.Events)
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(s.brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.names.Events: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}
	cl, err := kgo.NewClient(append(opts, s.cfg.ConsumerOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("events feed client: %w", err)
	}
	return cl, nil
}

// apply is the one place committed outcomes enter the API: cache first, then
// waiters, so that a woken request finds the cache already current. value is
// the whole event, whose head is h; it is copied, since the fetch it came in
// is not ours to keep.
func (s *Server) apply(h *topics.EventHead, value []byte) {
	s.metrics.events.WithLabelValues("applied").Inc()
	if !h.ProcessedAt.IsZero() {
		s.metrics.eventDelay.Observe(max(time.Since(h.ProcessedAt).Seconds(), 0))
	}
	ev := &lazyEvent{raw: bytes.Clone(value)}
	s.outcomes.put(h.CommandID, ev)
	s.orders.apply(h)
	s.hub.publish(h, ev.event)
}

// feedStarted reports whether the feed consumes.
func (s *Server) feedStarted() bool {
	select {
	case <-s.feedReady:
		return true
	default:
		return false
	}
}
