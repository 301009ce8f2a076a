package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/orderflow/orderflow/topics"
)

func TestEventFields(t *testing.T) {
	t.Parallel()
	s := func(v string) *string { return &v }
	now := time.Now()
	for _, tc := range []struct {
		name     string
		ev       topics.Event
		accepted bool
	}{
		{"accepted", topics.Event{EventID: "o/1", CommandID: "b1-c7", OrderID: "o", Action: "create", Outcome: topics.Accepted, ToState: s("Created"), Version: 1, ProcessedAt: now}, true},
		{"rejected", topics.Event{EventID: "o/1/rejected/b1-c8", CommandID: "b1-c8", OrderID: "o", Action: "ship", Outcome: topics.Rejected, Reason: s("invalid_transition"), Message: s(`say "no"`), ProcessedAt: now}, false},
		// A command id that needs escaping takes the codec's path.
		{"escaped id", topics.Event{CommandID: `a"b\c`, OrderID: "o", Outcome: topics.Accepted, ProcessedAt: now}, true},
		// Metadata that mentions the field names must not confuse it.
		{"tricky metadata", topics.Event{CommandID: "b1-c9", OrderID: "o", Outcome: topics.Rejected, Metadata: json.RawMessage(`{"x":"\"command_id\":\"zzz"}`), ProcessedAt: now}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, err := topics.EncodeEvent(&tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			id, accepted, ok := eventFields(v)
			if !ok || id != tc.ev.CommandID || accepted != tc.accepted {
				t.Fatalf("eventFields(%s) = %q, %v, %v; want %q, %v", v, id, accepted, ok, tc.ev.CommandID, tc.accepted)
			}
		})
	}
	if _, _, ok := eventFields([]byte("not json")); ok {
		t.Fatal("eventFields accepted garbage")
	}
}

func TestBenchConfigValidate(t *testing.T) {
	t.Parallel()
	ok := benchConfig{rate: 1000, duration: 30 * time.Second, warmup: 3 * time.Second, partitions: 12}
	if err := ok.validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	burst := benchConfig{burst: 1000, partitions: 12}
	if err := burst.validate(); err != nil {
		t.Fatalf("burst config refused: %v", err)
	}
	for name, mod := range map[string]func(*benchConfig){
		"zero rate":         func(c *benchConfig) { c.rate = 0 },
		"warmup too long":   func(c *benchConfig) { c.warmup = c.duration },
		"negative burst":    func(c *benchConfig) { c.burst = -1 },
		"zero partitions":   func(c *benchConfig) { c.partitions = 0 },
		"absurd rate":       func(c *benchConfig) { c.rate = 5_000_000 },
		"absurd partitions": func(c *benchConfig) { c.partitions = 20000 },
	} {
		c := ok
		mod(&c)
		if err := c.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestBenchFlags(t *testing.T) {
	t.Setenv("ORDERFLOW_TOPIC_PREFIX", "x.")
	var c benchConfig
	f := newFlags("bench")
	c.register(f)
	if err := f.parse([]string{"-rate", "2500", "-hot", "0.3", "-duplicate", "0", "-preloaded", "1000"}); err != nil {
		t.Fatal(err)
	}
	if c.rate != 2500 || c.gen.Hot != 0.3 || c.gen.Duplicate != 0 || c.gen.Invalid != 0.01 || c.gen.Preloaded != 1000 {
		t.Fatalf("parsed %+v", c)
	}
	if got := c.kafka.names().Events; got != "x.orders.events" {
		t.Fatalf("events topic %q, want the prefix from the environment", got)
	}
}
