// Command profile runs the processor in-process (processor.New(...).Run,
// exactly what `orderflow serve --role processor` runs) and records CPU and
// allocation profiles with runtime/pprof while an external load generator
// (`orderflow bench`) drives it. It needs no pprof endpoint in serve.
//
//	profile -topic-prefix bench1. -group bench1 -settle 8s -seconds 20 -out-dir results/
//	go tool pprof -top results/cpu.pprof
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/scripts/bench/benchkit"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() { benchkit.Main("profile", run) }

func run(ctx context.Context) error {
	var (
		brokers, prefix, group, db, outDir string
		partitions, maxBatch               int
		settle, seconds                    time.Duration
	)
	flag.StringVar(&brokers, "brokers", cmp.Or(os.Getenv("KAFKA_BROKERS"), "127.0.0.1:19092"), "Kafka bootstrap brokers")
	flag.StringVar(&prefix, "topic-prefix", "", "topic prefix")
	flag.StringVar(&group, "group", processor.DefaultGroup, "consumer group")
	flag.StringVar(&db, "db", os.Getenv("DATABASE_URL"), "PostgreSQL URL")
	flag.IntVar(&partitions, "partitions", topics.DefaultPartitions, "partitions of topics it creates")
	flag.IntVar(&maxBatch, "max-batch", processor.DefaultMaxBatch, "most commands in one transaction")
	flag.DurationVar(&settle, "settle", 8*time.Second, "time for the group to form before profiling starts")
	flag.DurationVar(&seconds, "seconds", 20*time.Second, "how long to profile")
	flag.StringVar(&outDir, "out-dir", ".", "where cpu.pprof and allocs.pprof go")
	flag.Parse()

	pool, err := benchkit.OpenPool(ctx, db, partitions+8)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := store.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := store.EnsurePartitions(ctx, pool, time.Now()); err != nil {
		return err
	}
	kopts := []kgo.Opt{kgo.SeedBrokers(strings.Split(brokers, ",")...), kgo.ClientID("orderflow-profile")}
	names := topics.NewNames(prefix)
	adm, err := kgo.NewClient(append(kopts, kgo.MetadataMinAge(100*time.Millisecond))...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	_, err = topics.Ensure(ctx, kadm.NewClient(adm), names, topics.Settings{Partitions: int32(partitions)})
	adm.Close()
	if err != nil {
		return err
	}
	p, err := processor.New(processor.Config{
		KafkaOpts: kopts, Names: names, Group: group, MaxBatch: maxBatch,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}, pool)
	if err != nil {
		return err
	}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- p.Run(pctx) }()

	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return ctx.Err()
	}
	// Allocation samples from here on only: the allocs profile is
	// cumulative, so count from a clean point.
	runtime.MemProfileRate = 64 << 10
	cpu, err := os.Create(filepath.Join(outDir, "cpu.pprof"))
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		_ = cpu.Close()
		return fmt.Errorf("cpu profile: %w", err)
	}
	log.Printf("profiling for %v", seconds)
	select {
	case <-time.After(seconds):
	case <-ctx.Done():
	}
	pprof.StopCPUProfile()
	if err := cpu.Close(); err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	allocs, err := os.Create(filepath.Join(outDir, "allocs.pprof"))
	if err != nil {
		return fmt.Errorf("allocs profile: %w", err)
	}
	if err := pprof.Lookup("allocs").WriteTo(allocs, 0); err != nil {
		_ = allocs.Close()
		return fmt.Errorf("allocs profile: %w", err)
	}
	if err := allocs.Close(); err != nil {
		return fmt.Errorf("allocs profile: %w", err)
	}
	log.Printf("wrote %s and %s; processing on until stopped", cpu.Name(), allocs.Name())
	// Keep processing until told to stop, so the load that drove the
	// profile drains and its run stays complete.
	<-ctx.Done()
	stop()
	if err := <-errc; err != nil {
		return fmt.Errorf("processor: %w", err)
	}
	return nil
}
