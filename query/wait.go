package query

import (
	"context"
	"time"

	"github.com/orderflow/orderflow/topics"
)

// waitUntil calls check until it reports done or the wait ends. It checks
// once at once, then when the feed delivers an event on notify (passed to
// check; nil otherwise), and every pollInterval in case the feed lags. It returns false when the wait
// ends (timeout, client gone, or the server stopping) without done. check
// errors end the wait.
func (s *Server) waitUntil(ctx context.Context, wait time.Duration, notify <-chan topics.Event, check func(*topics.Event) (bool, error)) (bool, error) {
	if done, err := check(nil); done || err != nil {
		return done, err
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		var got *topics.Event
		select {
		case ev := <-notify:
			got = &ev
			notify = nil // one-shot: from here on the poll carries on
		case <-tick.C:
		case <-timer.C:
			// One last look: the outcome may have committed in the last
			// moments without the feed delivering it yet.
			return check(nil)
		case <-ctx.Done():
			return false, nil
		case <-s.stopping:
			return check(nil)
		}
		if done, err := check(got); done || err != nil {
			return done, err
		}
	}
}
