package topics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/orderflow/orderflow/scripts/testenv"
	"github.com/orderflow/orderflow/topics"
)

func TestNames(t *testing.T) {
	t.Parallel()
	n := topics.NewNames("staging.")
	if n.Commands != "staging.orders.commands" || n.Events != "staging.orders.events" || n.DLQ != "staging.orders.commands.dlq" {
		t.Fatalf("names %+v", n)
	}
	if d := topics.NewNames(""); d.Commands != "orders.commands" {
		t.Fatalf("default names %+v", d)
	}
}

func TestEnsureCreatesAndRefusesMismatch(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := testenv.KafkaAdmin(t)

	names := topics.NewNames(testenv.TopicPrefix(t))
	n, err := topics.Ensure(ctx, adm, names, topics.Settings{Partitions: 3})
	if err != nil || n != 3 {
		t.Fatalf("create: %d, %v", n, err)
	}
	// Existing topics keep their count; a second call asks for another and
	// gets what is there.
	if n, err := topics.Ensure(ctx, adm, names, topics.Settings{Partitions: 5}); err != nil || n != 3 {
		t.Fatalf("ensure again: %d, %v", n, err)
	}

	// Events with a different partition count than commands: refuse.
	bad := topics.NewNames(testenv.TopicPrefix(t))
	if _, err := adm.CreateTopic(ctx, 2, -1, nil, bad.Events); err != nil {
		t.Fatal(err)
	}
	_, err = topics.Ensure(ctx, adm, bad, topics.Settings{Partitions: 4})
	if !errors.Is(err, topics.ErrPartitionMismatch) {
		t.Fatalf("mismatch: %v, want ErrPartitionMismatch", err)
	}
}
