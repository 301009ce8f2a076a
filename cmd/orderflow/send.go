package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/orderflow/orderflow/processor/machine"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kgo"
)

func init() {
	register(command{name: "send", summary: "publish one command to the commands topic", run: runSend})
	register(command{name: "tail", summary: "print outcome events as they are published", run: runTail})
}

func runSend(ctx context.Context, args []string, out io.Writer) error {
	var (
		k        kafkaConfig
		c        topics.Command
		expected int
		metadata string
	)
	f := newFlags("send")
	k.register(f)
	f.fs.StringVar(&c.OrderID, "order", "", "order id (required)")
	f.fs.StringVar(&c.Action, "action", "", "create, pay, ship, deliver, cancel or return (required)")
	f.fs.StringVar(&c.CommandID, "command-id", "", "idempotency key (default: a new UUID)")
	f.fs.IntVar(&expected, "expected-version", -1, "reject unless the order is at this version (-1: no check)")
	f.fs.StringVar(&c.Actor, "actor", "cli", "who asks")
	f.fs.StringVar(&c.Reason, "reason", "", "why, for the audit log")
	f.fs.StringVar(&metadata, "metadata", "", "a JSON object kept with the outcome")
	if err := f.parse(args); err != nil {
		return err
	}
	if _, err := machine.ParseAction(c.Action); err != nil {
		return fmt.Errorf("%w: -action: %w", errUsage, err)
	}
	if c.CommandID == "" {
		c.CommandID = uuid.NewString()
	}
	if expected >= 0 {
		v := int64(expected)
		c.ExpectedVersion = &v
	}
	if metadata != "" {
		c.Metadata = json.RawMessage(metadata)
		if !json.Valid(c.Metadata) {
			return fmt.Errorf("%w: -metadata is not valid JSON", errUsage)
		}
	}
	now := time.Now().UTC()
	c.RequestedAt = &now
	value, err := topics.EncodeCommand(c)
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	opts, err := k.opts()
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	r := &kgo.Record{Topic: k.names().Commands, Key: []byte(c.OrderID), Value: value}
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	fmt.Fprintf(out, "sent %s %s (command_id %s) to %s/%d@%d\n", c.Action, c.OrderID, c.CommandID, r.Topic, r.Partition, r.Offset)
	return nil
}

func runTail(ctx context.Context, args []string, out io.Writer) error {
	var (
		k         kafkaConfig
		fromStart bool
		order     string
	)
	f := newFlags("tail")
	k.register(f)
	f.fs.BoolVar(&fromStart, "from-start", false, "print the whole topic, not just new events")
	f.fs.StringVar(&order, "order", "", "only this order's events")
	if err := f.parse(args); err != nil {
		return err
	}
	opts, err := k.opts()
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	start := kgo.NewOffset().AtEnd()
	if fromStart {
		start = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumeTopics(k.names().Events),
		kgo.ConsumeResetOffset(start),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err := fs.Err0(); err != nil {
			return fmt.Errorf("consume: %w", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if order != "" && string(r.Key) != order {
				return
			}
			fmt.Fprintf(out, "%s\n", r.Value)
		})
	}
}
