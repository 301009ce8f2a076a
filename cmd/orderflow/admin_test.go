package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/scripts/testenv"
	"github.com/orderflow/orderflow/topics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	url := testenv.DatabaseURL(t)
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"migrate", "--database-url", url}, &out, &errOut); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "applied 0001_init") {
		t.Fatalf("first migrate said %q", out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"migrate", "--database-url", url}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "up to date") {
		t.Fatalf("second migrate: exit %d, %q", code, out.String())
	}
}

func TestTopicsAndSendCommands(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	brokers := strings.Join(testenv.Kafka(t), ",")
	prefix := testenv.TopicPrefix(t)
	var out, errOut bytes.Buffer
	if code := run(ctx, []string{"topics", "--brokers", brokers, "--topic-prefix", prefix, "--partitions", "2"}, &out, &errOut); code != 0 {
		t.Fatalf("topics: exit %d: %s", code, errOut.String())
	}
	if got := strings.Count(out.String(), "2 partitions"); got != 3 {
		t.Fatalf("topics printed %q", out.String())
	}
	code := run(ctx, []string{"send", "--brokers", brokers, "--topic-prefix", prefix, "--order", "cli-1", "--action", "create",
		"--command-id", "cli-cmd-1", "--metadata", `{"k":"v"}`}, &out, &errOut)
	if code != 0 {
		t.Fatalf("send: exit %d: %s", code, errOut.String())
	}
	// Bad input is a usage error (exit 2) and sends nothing.
	for _, args := range [][]string{
		{"--order", "cli-1", "--action", "teleport"},
		{"--order", "", "--action", "pay"},
		{"--order", "cli-1", "--action", "pay", "--metadata", "[1]"},
	} {
		errOut.Reset()
		if code := run(ctx, append([]string{"send", "--brokers", brokers, "--topic-prefix", prefix}, args...), &out, &errOut); code != 2 {
			t.Errorf("send %v: exit %d (%s), want 2", args, code, errOut.String())
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.Kafka(t)...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	names := topics.NewNames(prefix)
	ends, err := topics.Ends(ctx, kadm.NewClient(cl), names.Commands)
	if err != nil {
		t.Fatal(err)
	}
	var got []topics.Command
	err = topics.ReadCommitted(ctx, []kgo.Opt{kgo.SeedBrokers(testenv.Kafka(t)...)}, names.Commands, ends, func(r *kgo.Record) {
		c, err := topics.DecodeCommand(r.Key, r.Value)
		if err != nil {
			t.Errorf("sent record does not decode: %v", err)
		}
		got = append(got, c)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].CommandID != "cli-cmd-1" || got[0].Action != "create" || string(got[0].Metadata) != `{"k":"v"}` {
		t.Fatalf("commands topic holds %+v", got)
	}
}
