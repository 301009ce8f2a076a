package benchkit

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketBounds(t *testing.T) {
	t.Parallel()
	// Every value lands in a bucket whose upper bound is at or above it and
	// within the promised relative error, and buckets are monotonic.
	prev := -1
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 1000, 12345, 1 << 20, 999_999_999, 1 << 40, 1<<62 + 12345} {
		i := bucket(v)
		if i < prev {
			t.Fatalf("bucket(%d) = %d, below the previous %d", v, i, prev)
		}
		prev = i
		u := upper(i)
		if u < v {
			t.Fatalf("upper(bucket(%d)) = %d, below the value", v, u)
		}
		if float64(u-v) > float64(v)/subCount+1 {
			t.Fatalf("upper(bucket(%d)) = %d, more than 1/%d above", v, u, subCount)
		}
		if i > 0 && upper(i-1) >= v {
			t.Fatalf("value %d also fits bucket %d (upper %d)", v, i-1, upper(i-1))
		}
	}
}

func TestQuantilesMatchSorted(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]int64, 100_000)
	for i := range vals {
		// Log-normal-ish latencies from 10 µs to seconds.
		vals[i] = int64(10_000 * (1 + r.ExpFloat64()*r.ExpFloat64()*50))
		h.RecordValue(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(q*float64(len(vals)))-1]
		got := int64(h.Quantile(q))
		if got < exact || float64(got-exact) > float64(exact)/subCount+1 {
			t.Errorf("Quantile(%v) = %d, exact %d", q, got, exact)
		}
	}
	if h.Max() != time.Duration(vals[len(vals)-1]) || h.Min() != time.Duration(vals[0]) {
		t.Errorf("min/max = %v/%v, want %v/%v", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
	}
	if h.Quantile(1) != h.Max() {
		t.Errorf("Quantile(1) = %v, want max %v", h.Quantile(1), h.Max())
	}
}

func TestSmallCounts(t *testing.T) {
	t.Parallel()
	var h Histogram
	if h.Quantile(0.99) != 0 || h.Summary().Count != 0 {
		t.Fatal("empty histogram reports values")
	}
	for _, ms := range []int{1, 2, 3, 4, 100} {
		h.Record(time.Duration(ms) * time.Millisecond)
	}
	// With 5 values, p50 is the 3rd and p99 the 5th (the outlier must show).
	if got := h.Quantile(0.5); got < 3*time.Millisecond || got > 3*time.Millisecond+3*time.Millisecond/subCount {
		t.Errorf("p50 = %v, want about 3ms", got)
	}
	if got := h.Quantile(0.99); got != 100*time.Millisecond {
		t.Errorf("p99 = %v, want 100ms (the max)", got)
	}
	if got := h.Mean(); got != 22*time.Millisecond {
		t.Errorf("mean = %v, want 22ms", got)
	}
	h.RecordValue(-5)
	if h.Min() != 0 {
		t.Errorf("negative value recorded as %v, want 0", h.Min())
	}
}

func TestMerge(t *testing.T) {
	t.Parallel()
	var a, b, all Histogram
	for i := range 1000 {
		v := time.Duration(i) * time.Microsecond
		all.Record(v)
		if i%2 == 0 {
			a.Record(v)
		} else {
			b.Record(v * 1) // b grows its own buckets
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{})
	if m.Summary() != all.Summary() {
		t.Fatalf("merged %+v, want %+v", m.Summary(), all.Summary())
	}
	m.Reset()
	if m.Count() != 0 || m.Quantile(0.5) != 0 {
		t.Fatal("Reset left values")
	}
}

func BenchmarkRecord(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	v := int64(1)
	for b.Loop() {
		h.RecordValue(v)
		v = v*31 + 7&(1<<34-1)
	}
}
