// Command relay is baseline B1, the Kafka limit: a franz-go
// consume-transform-produce loop with Kafka's own exactly-once (a
// GroupTransactSession: the consumed offsets commit in the same Kafka
// transaction as the produced events) and no database. It reads commands
// from <prefix>orders.commands, decodes each with the processor's codec and
// writes an outcome event (accepted, or rejected when invalid) to the same
// partition of <prefix>orders.events, so `orderflow bench` can drive and
// measure it exactly as it measures the processor.
//
//	relay -brokers 127.0.0.1:19092 -topic-prefix bench1.b1.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/orderflow/orderflow/processor/machine"
	"github.com/orderflow/orderflow/scripts/bench/benchkit"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() { benchkit.Main("relay", run) }

func run(ctx context.Context) error {
	var (
		brokers, prefix string
		partitions      int
		deletePrefix    string
	)
	flag.StringVar(&brokers, "brokers", cmp.Or(os.Getenv("KAFKA_BROKERS"), "127.0.0.1:19092"), "Kafka bootstrap brokers")
	flag.StringVar(&prefix, "topic-prefix", "b1.", "topic prefix")
	flag.IntVar(&partitions, "partitions", topics.DefaultPartitions, "partitions of the topics it creates")
	flag.StringVar(&deletePrefix, "delete-topics", "", "instead of relaying, delete every topic whose name starts with this prefix")
	flag.Parse()
	if deletePrefix != "" {
		return deleteTopics(ctx, brokers, deletePrefix)
	}
	names := topics.NewNames(prefix)
	seeds := kgo.SeedBrokers(strings.Split(brokers, ",")...)

	adm, err := kgo.NewClient(seeds, kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	_, err = topics.Ensure(ctx, kadm.NewClient(adm), names, topics.Settings{Partitions: int32(partitions)})
	adm.Close()
	if err != nil {
		return err
	}
	sess, err := kgo.NewGroupTransactSession(seeds,
		kgo.ConsumerGroup("relay."+prefix),
		kgo.ConsumeTopics(names.Commands),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.TransactionalID("relay."+prefix),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
	)
	if err != nil {
		return fmt.Errorf("kafka session: %w", err)
	}
	defer sess.Close()
	log.Printf("relaying %s -> %s", names.Commands, names.Events)
	for {
		fs := sess.PollRecords(ctx, 20000)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) { log.Printf("fetch %s/%d: %v", t, p, err) })
		if fs.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		now := time.Now().UTC()
		fs.EachRecord(func(r *kgo.Record) {
			v, err := event(r, now)
			if err != nil {
				return
			}
			sess.Produce(ctx, &kgo.Record{Topic: names.Events, Partition: r.Partition, Key: r.Key, Value: v}, nil)
		})
		committed, err := sess.End(ctx, kgo.TryCommit)
		if err != nil && ctx.Err() == nil {
			log.Printf("end transaction (committed=%v): %v", committed, err)
		}
	}
}

// event is the outcome event the relay publishes for a command: the codec
// work of the processor without its state.
func event(r *kgo.Record, now time.Time) ([]byte, error) {
	c, err := topics.DecodeCommand(r.Key, r.Value)
	ev := topics.Event{CommandID: c.CommandID, OrderID: c.OrderID, Action: c.Action, Outcome: topics.Accepted,
		RequestedAt: c.RequestedAt, ProcessedAt: now}
	if err != nil {
		id, order, ok := topics.Identify(r.Value)
		if !ok {
			return nil, err
		}
		reason, msg := machine.ReasonInvalidCommand, err.Error()
		ev.CommandID, ev.OrderID, ev.Outcome, ev.Reason, ev.Message = id, order, topics.Rejected, &reason, &msg
	}
	ev.EventID = topics.AcceptedEventID(ev.OrderID, 1)
	return topics.EncodeEvent(&ev)
}

// deleteTopics removes a benchmark run's topics so runs do not pile up
// gigabytes in the local broker.
func deleteTopics(ctx context.Context, brokers, prefix string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	list, err := adm.ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	var doomed []string
	for _, t := range list.Names() {
		if strings.HasPrefix(t, prefix) {
			doomed = append(doomed, t)
		}
	}
	if len(doomed) == 0 {
		return nil
	}
	if _, err := adm.DeleteTopics(ctx, doomed...); err != nil {
		return fmt.Errorf("delete topics: %w", err)
	}
	log.Printf("deleted %d topics under %s", len(doomed), prefix)
	return nil
}
