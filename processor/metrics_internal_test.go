package processor

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/orderflow/orderflow/processor/store"
	"github.com/orderflow/orderflow/scripts/testenv"
	"github.com/orderflow/orderflow/topics"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestOutboxPending checks the derived backlog gauge: committed minus
// published per partition, left out where nothing was published yet, and
// gone once the partition is forgotten.
func TestOutboxPending(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	m := newMetrics(reg)
	m.committedSeq.WithLabelValues("0").Set(120)
	m.outboxLast.WithLabelValues("0").Set(100)
	m.committedSeq.WithLabelValues("1").Set(7)
	m.outboxLast.WithLabelValues("1").Set(7)
	m.committedSeq.WithLabelValues("2").Set(50) // taken over, nothing published by us yet
	want := func(w map[string]float64) {
		t.Helper()
		fams, err := reg.Gather() // the pedantic registry also checks the collector's consistency
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, f := range fams {
			if f.GetName() != "orderflow_outbox_pending_events" {
				continue
			}
			for _, s := range f.GetMetric() {
				got[s.GetLabel()[0].GetValue()] = s.GetGauge().GetValue()
			}
		}
		if !maps.Equal(got, w) {
			t.Fatalf("pending by partition: %v, want %v", got, w)
		}
	}
	want(map[string]float64{"0": 20, "1": 0})
	m.forgetPartition(0)
	want(map[string]float64{"1": 0})
}

func TestLag(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		r    topics.Range
		next int64
		want int64
	}{
		{"never claimed", topics.Range{From: 0, To: 10}, 0, 10},
		{"caught up", topics.Range{From: 0, To: 10}, 10, 0},
		{"behind", topics.Range{From: 0, To: 10}, 4, 6},
		{"retention deleted unprocessed records", topics.Range{From: 8, To: 10}, 4, 2},
		{"empty after retention", topics.Range{From: 10, To: 10}, 3, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := lag(c.r, c.next); got != c.want {
				t.Fatalf("lag(%+v, %d) = %d, want %d", c.r, c.next, got, c.want)
			}
		})
	}
}

// TestStuckEvery: stuck orders take a scan of orders, so they are counted
// every twelfth of the stuck age, never more often than the other gauges.
func TestStuckEvery(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ interval, stuckAfter, want time.Duration }{
		{10 * time.Second, time.Hour, 5 * time.Minute},
		{10 * time.Minute, time.Hour, 10 * time.Minute},
		{10 * time.Second, time.Second, 10 * time.Second},
	} {
		m := &Monitor{cfg: MonitorConfig{Interval: tt.interval, StuckAfter: tt.stuckAfter}}
		if got := m.stuckEvery(); got != tt.want {
			t.Errorf("interval %v, stuck after %v: every %v, want %v", tt.interval, tt.stuckAfter, got, tt.want)
		}
	}
}

// The stuck gauge keeps its value between scans, however often the other
// gauges are measured, and moves at the next scan.
func TestStuckCountedOnItsOwnCadence(t *testing.T) {
	t.Parallel()
	pool := testenv.Pool(t)
	ctx := context.Background()
	if _, err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	m, err := NewMonitor(MonitorConfig{Interval: time.Second, StuckAfter: time.Hour}, pool)
	if err != nil {
		t.Fatal(err)
	}
	stuckOrder := func(id string) {
		t.Helper()
		if _, err := pool.Exec(ctx, `INSERT INTO orders VALUES ($1, 'Created', 1, now() - interval '2 hours', now() - interval '2 hours')`, id); err != nil {
			t.Fatal(err)
		}
	}
	measure := func(want float64) {
		t.Helper()
		if err := m.updateOrders(ctx); err != nil {
			t.Fatal(err)
		}
		var g dto.Metric
		if err := m.stuck.WithLabelValues("Created").Write(&g); err != nil {
			t.Fatal(err)
		}
		if got := g.GetGauge().GetValue(); got != want {
			t.Fatalf("stuck Created = %v, want %v", got, want)
		}
	}
	stuckOrder("o-1")
	measure(1) // the first measurement scans
	stuckOrder("o-2")
	measure(1) // within stuckEvery: no scan
	m.stuckAt = m.stuckAt.Add(-m.stuckEvery())
	measure(2)
}
