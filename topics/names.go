package topics

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// DefaultPartitions is the partition count of new topics. Partitions are the
// unit of parallelism: size them for the largest fleet of processors.
const DefaultPartitions = 12

// Names are the three topics of one deployment.
type Names struct {
	Commands string // orders.commands: transition commands keyed by order_id
	Events   string // orders.events: one outcome event per command_id
	DLQ      string // orders.commands.dlq: records that could not be decoded
}

// NewNames returns the topic names under prefix ("" gives the contract's
// defaults; "staging." gives "staging.orders.commands" and so on).
func NewNames(prefix string) Names {
	return Names{
		Commands: prefix + "orders.commands",
		Events:   prefix + "orders.events",
		DLQ:      prefix + "orders.commands.dlq",
	}
}

// All returns the names in a fixed order.
func (n Names) All() []string { return []string{n.Commands, n.Events, n.DLQ} }

// ErrPartitionMismatch means the existing topics do not have the same number
// of partitions. Events and DLQ records of command partition p are written to
// partition p of their topics, so the counts must agree.
var ErrPartitionMismatch = errors.New("topic partition counts disagree")

// Settings for Ensure.
type Settings struct {
	Partitions        int32 // default DefaultPartitions
	ReplicationFactor int16 // default -1: the broker's default
}

// Ensure creates the topics that are missing and checks that all three have
// the same partition count. It returns that count. It refuses (with
// ErrPartitionMismatch) rather than repartitioning: changing the count moves
// orders between partitions and breaks per-order ordering.
func Ensure(ctx context.Context, adm *kadm.Client, names Names, s Settings) (int32, error) {
	parts := cmp.Or(s.Partitions, DefaultPartitions)
	rf := cmp.Or(s.ReplicationFactor, -1)

	details, err := adm.ListTopics(ctx, names.All()...)
	if err != nil {
		return 0, fmt.Errorf("list topics: %w", err)
	}
	var missing []string
	for _, t := range names.All() {
		d, ok := details[t]
		if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			missing = append(missing, t)
			continue
		}
		if d.Err != nil {
			return 0, fmt.Errorf("describe topic %s: %w", t, d.Err)
		}
	}
	if len(missing) > 0 {
		// The events topic is the audit log: keep it, and compact nothing.
		resp, err := adm.CreateTopics(ctx, parts, rf, nil, missing...)
		if err != nil {
			return 0, fmt.Errorf("create topics: %w", err)
		}
		for _, r := range resp.Sorted() {
			if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
				return 0, fmt.Errorf("create topic %s: %w", r.Topic, r.Err)
			}
		}
		if details, err = waitListed(ctx, adm, names); err != nil {
			return 0, err
		}
	}
	counts := make([]string, 0, 3)
	var first int32 = -1
	mismatch := false
	for _, t := range names.All() {
		n := int32(len(details[t].Partitions)) //nolint:gosec // a partition count fits in int32, as Kafka stores it
		counts = append(counts, fmt.Sprintf("%s=%d", t, n))
		if first == -1 {
			first = n
		} else if n != first {
			mismatch = true
		}
	}
	if mismatch {
		return 0, fmt.Errorf("%w: %s", ErrPartitionMismatch, strings.Join(counts, ", "))
	}
	return first, nil
}

// waitListed lists the topics until metadata shows all of them with their
// partitions: creation is asynchronous on the broker.
func waitListed(ctx context.Context, adm *kadm.Client, names Names) (kadm.TopicDetails, error) {
	for {
		details, err := adm.ListTopics(ctx, names.All()...)
		if err == nil {
			ready := true
			for _, t := range names.All() {
				d, ok := details[t]
				if !ok || d.Err != nil || len(d.Partitions) == 0 {
					ready = false
				}
			}
			if ready {
				return details, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for topics: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Record headers orderflow writes.
const (
	// HeaderSeq carries the outbox sequence number of an event or DLQ record
	// within its partition; a restarted publisher reads the last one back to
	// resume without gaps or repeats.
	HeaderSeq = "orderflow-seq"
	// HeaderError says why a record went to the DLQ.
	HeaderError = "orderflow-error"
	// HeaderSourceTopic, HeaderSourcePartition and HeaderSourceOffset say
	// where a DLQ record came from.
	HeaderSourceTopic     = "orderflow-source-topic"
	HeaderSourcePartition = "orderflow-source-partition"
	HeaderSourceOffset    = "orderflow-source-offset"
	// HeaderTruncated is on a DLQ record whose key and value were cut to fit
	// Kafka; it gives their original total size. The dead_letters table in
	// PostgreSQL keeps them whole.
	HeaderTruncated = "orderflow-truncated"
)
