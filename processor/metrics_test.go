package processor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/orderflow/orderflow/processor"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestMonitor checks the deployment gauges against a real broker and
// database: lag counts commands before any processor ran (no stored
// position yet) and drains to zero once one runs; orders per state, stuck
// orders and dead letters follow what was processed.
func TestMonitor(t *testing.T) {
	t.Parallel()
	b := setup(t)
	reg := prometheus.NewRegistry()
	mon, err := processor.NewMonitor(processor.MonitorConfig{
		KafkaOpts: b.kopts, Names: b.names, Interval: 100 * time.Millisecond, StuckAfter: time.Second,
		Registerer: reg, Logger: testLogger(),
	}, b.pool)
	if err != nil {
		t.Fatal(err)
	}
	runInBackground(t, "monitor", mon.Run)

	const orders = 8
	var recs []*kgo.Record
	for i := range orders {
		recs = append(recs, b.command(cmdSpec{id: id("c-%d", i), order: id("o-%d", i), action: "create"}))
	}
	recs = append(recs, &kgo.Record{Topic: b.names.Commands, Key: []byte("bad"), Value: []byte("not json")})
	b.send(t, recs...)
	poll(t, reg, "lag before processing", func(g gathered) error {
		if n := len(g["orderflow_consumer_lag_records"]); n != testPartitions {
			return fmt.Errorf("lag of %d partitions, want %d", n, testPartitions)
		}
		if lag := g.sum("orderflow_consumer_lag_records", nil); lag != orders+1 {
			return fmt.Errorf("lag %v, want %d", lag, orders+1)
		}
		return nil
	})

	b.start(t)
	poll(t, reg, "gauges after processing", func(g gathered) error {
		checks := []struct {
			what      string
			got, want float64
		}{
			{"lag", g.sum("orderflow_consumer_lag_records", nil), 0},
			{"Created", g.sum("orderflow_orders", map[string]string{"state": "Created"}), orders},
			{"all orders", g.sum("orderflow_orders", nil), orders},
			{"stuck Created", g.sum("orderflow_orders_stuck", map[string]string{"state": "Created"}), orders},
			{"dead letters", g.sum("orderflow_dlq_records", nil), 1},
			{"states", float64(len(g["orderflow_orders"])), 6},
			{"non-terminal states", float64(len(g["orderflow_orders_stuck"])), 4},
		}
		for _, c := range checks {
			if c.got != c.want {
				return fmt.Errorf("%s: %v, want %v", c.what, c.got, c.want)
			}
		}
		if g.sum("orderflow_monitor_updated_timestamp_seconds", nil) == 0 {
			return fmt.Errorf("never updated")
		}
		return nil
	})
}

// gathered is a registry's series by family name.
type gathered map[string][]*dto.Metric

func gather(t *testing.T, reg *prometheus.Registry) gathered {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	g := gathered{}
	for _, f := range fams {
		g[f.GetName()] = f.GetMetric()
	}
	return g
}

// sum adds the values of the series whose labels include labels.
func (g gathered) sum(name string, labels map[string]string) float64 {
	total := 0.0
next:
	for _, m := range g[name] {
		for k, v := range labels {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == k && l.GetValue() == v)
			}
			if !found {
				continue next
			}
		}
		total += m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	return total
}

// poll retries check on fresh gathers until it passes or 30 s are over.
func poll(t *testing.T, reg *prometheus.Registry, what string, check func(gathered) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		err := check(gather(t, reg))
		if err == nil {
			return
		}
		if !sleep(ctx, 50*time.Millisecond) {
			t.Fatalf("%s: %v", what, err)
		}
	}
}
