package processor

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff waits between retries of a failing dependency: 50 ms doubling to
// 5 s, with jitter so that workers do not retry in lockstep.
type backoff struct{ next time.Duration }

func newBackoff() *backoff { return &backoff{next: 50 * time.Millisecond} }

// wait sleeps for the next interval; false when ctx ended first.
func (b *backoff) wait(ctx context.Context) bool {
	d := b.next/2 + rand.N(b.next/2+1) //nolint:gosec // jitter needs no cryptographic randomness
	b.next = min(b.next*2, 5*time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
