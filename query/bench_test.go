package query

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/processor/machine"
)

// BenchmarkGetOrder measures GET /v1/orders/{id} over real HTTP on loopback,
// served from the cache (1000 orders, all cached), against the real stack.
// It reports the p50 and p99 latency seen by the clients; the load
// generator shares the CPUs with the server, as wrk would.
//
//	go test -run '^$' -bench GetOrder -benchtime 10s ./query/
func BenchmarkGetOrder(b *testing.B) {
	bb := setup(b)
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%04d", i)
		bb.seedOrder(b, ids[i], machine.Paid, 2, time.Now())
		bb.get(b, "/v1/orders/"+ids[i]).expect(b, 200, "")
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	var mu sync.Mutex
	var all []time.Duration
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var lat []time.Duration
		for pb.Next() {
			start := time.Now()
			res, err := hc.Get(bb.base + "/v1/orders/" + ids[rand.IntN(len(ids))])
			if err != nil {
				b.Error(err)
				return
			}
			_ = res.Body.Close()
			if res.StatusCode != 200 {
				b.Errorf("status %d", res.StatusCode)
				return
			}
			lat = append(lat, time.Since(start))
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	b.StopTimer()
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
		b.ReportMetric(float64(len(all))/b.Elapsed().Seconds(), "req/s")
	}
}
