package workload

import (
	"testing"

	"github.com/orderflow/orderflow/processor/machine"
	"github.com/orderflow/orderflow/topics"
)

func TestGeneratedRecords(t *testing.T) {
	t.Parallel()
	g := New(Config{Seed: 7, Prefix: "w-", Active: 50})
	kinds := map[string]int{}
	for i := range 5000 {
		var r Record
		if i%5 == 0 {
			r = g.PoisonOf(PoisonKinds[(i/5)%len(PoisonKinds)])
		} else {
			r = g.Next()
		}
		kinds[r.Kind]++
		c, err := topics.DecodeCommand(r.Key, r.Value)
		if err == nil {
			_, err = machine.ParseAction(c.Action)
		}
		poison := r.Kind != "command" && r.Kind != "retry" && r.Kind != "conflict"
		if poison != (err != nil) {
			t.Fatalf("%s record %q: decode error %v", r.Kind, r.Value, err)
		}
	}
	e := g.Expect()
	if e.Records != 5000 || e.Poison != 1000 || kinds["retry"] != e.Retries || kinds["conflict"] != e.Conflicts {
		t.Fatalf("expectation %+v for kinds %v", e, kinds)
	}
	for _, k := range PoisonKinds {
		if e.PoisonKind[k] == 0 {
			t.Errorf("no %s record", k)
		}
	}
	if e.Identifiable == 0 || e.Identifiable == e.Poison {
		t.Errorf("%d of %d malformed records identifiable", e.Identifiable, e.Poison)
	}
	accepted, rejected := 0, 0
	for _, o := range e.Commands {
		if o.Outcome == topics.Accepted {
			accepted++
		} else {
			rejected++
		}
	}
	if accepted != e.Accepted || rejected < e.Conflicts/2 || len(e.Commands)+e.Retries+e.Poison != e.Records {
		t.Fatalf("%d accepted (%d), %d rejected for %d conflicts, %d commands", accepted, e.Accepted, rejected, e.Conflicts, len(e.Commands))
	}
}
