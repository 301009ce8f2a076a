package processor

import (
	"context"
	"testing"
	"time"
)

// TestOneCommitterGathersAtATime: a committer waits for the gathering one
// before it takes a batch, so the batches of one fetch are not split
// between the two (one transaction, not two), and once it may gather it
// takes every batch waiting.
func TestOneCommitterGathersAtATime(t *testing.T) {
	p := &Processor{cfg: Config{MaxBatch: 10}, commits: make(chan *commitReq, 4)}
	req := func(n int) *commitReq { return &commitReq{items: make([]item, n)} }

	p.gathering.Lock() // the other committer is gathering
	p.commits <- req(2)
	p.commits <- req(3)
	got := make(chan []*commitReq, 1)
	go func() { got <- p.gather(context.Background()) }()
	// Were it not waiting its turn, it would take both at once.
	time.Sleep(50 * time.Millisecond)
	if n := len(p.commits); n != 2 {
		t.Fatalf("%d of 2 batches left while another committer gathers", n)
	}
	p.gathering.Unlock()
	if reqs := <-got; len(reqs) != 2 {
		t.Fatalf("gathered %d batches, want both", len(reqs))
	}

	// MaxBatch bounds what one gathering takes.
	p.commits <- req(6)
	p.commits <- req(6)
	p.commits <- req(1)
	if reqs := p.gather(context.Background()); len(reqs) != 2 || len(p.commits) != 1 {
		t.Fatalf("gathered %d batches (%d left), want 2 of 12 commands against MaxBatch 10, 1 left", len(reqs), len(p.commits))
	}
}
