package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func init() {
	register(command{name: "migrate", summary: "apply the PostgreSQL schema migrations", run: runMigrate})
	register(command{name: "topics", summary: "create the Kafka topics and check their partitions", run: runTopics})
}

func runMigrate(ctx context.Context, args []string, out io.Writer) error {
	var db dbConfig
	f := newFlags("migrate")
	db.register(f)
	if err := f.parse(args); err != nil {
		return err
	}
	pool, err := db.open(ctx, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	applied, err := store.Migrate(ctx, pool)
	if err != nil {
		return err
	}
	if err := store.EnsurePartitions(ctx, pool, time.Now()); err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(out, "schema is up to date")
	}
	for _, a := range applied {
		fmt.Fprintln(out, "applied", a)
	}
	return nil
}

func runTopics(ctx context.Context, args []string, out io.Writer) error {
	var (
		k          kafkaConfig
		partitions int
	)
	f := newFlags("topics")
	k.register(f)
	f.Int(&partitions, "partitions", "ORDERFLOW_PARTITIONS", topics.DefaultPartitions, "partitions of topics created")
	if err := f.parse(args); err != nil {
		return err
	}
	opts, err := k.opts()
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	cl, err := kgo.NewClient(append(opts, kgo.MetadataMinAge(100*time.Millisecond))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	n, err := topics.Ensure(ctx, kadm.NewClient(cl), k.names(), topics.Settings{Partitions: int32(partitions)}) //nolint:gosec // small
	if err != nil {
		return err
	}
	for _, t := range k.names().All() {
		fmt.Fprintf(out, "%s\t%d partitions\n", t, n)
	}
	return nil
}
