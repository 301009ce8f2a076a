package benchkit

import (
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/processor/machine"
	"github.com/orderflow/orderflow/topics"
)

// replay applies commands the way the processor does (per order in order,
// first outcome of a command_id stands, unknown actions are invalid) and
// checks each outcome is the one the generator predicted.
func replay(t *testing.T, cmds []Cmd, pre map[string]bool) {
	t.Helper()
	type order struct {
		state   machine.State
		version int64
	}
	orders := map[string]*order{}
	seen := map[string]bool{}
	for _, c := range cmds {
		if seen[c.CommandID] {
			if c.Kind != Duplicate {
				t.Fatalf("command id %s reused by a %v command", c.CommandID, c.Kind)
			}
			continue
		}
		if c.Kind == Duplicate {
			t.Fatalf("duplicate %s of a command never sent", c.CommandID)
		}
		seen[c.CommandID] = true
		o := orders[c.OrderID]
		if o == nil {
			o = &order{}
			if pre[c.OrderID] {
				o.state, o.version = machine.Created, 1
			}
			orders[c.OrderID] = o
		}
		a, err := machine.ParseAction(c.Action)
		if err != nil {
			if c.Kind != Invalid || c.Accepted {
				t.Fatalf("unknown action in %+v", c)
			}
			continue
		}
		var exp *int64
		if c.ExpectedVersion >= 0 {
			exp = &c.ExpectedVersion
		}
		to, rej := machine.Apply(o.state, o.version, a, exp)
		if (rej == nil) != c.Accepted {
			t.Fatalf("%+v: predicted accepted=%v, state machine says %v", c, c.Accepted, rej)
		}
		if rej != nil && c.Kind == Conflict && rej.Reason != machine.ReasonVersionConflict {
			t.Fatalf("%+v: conflict rejected with %s", c, rej.Reason)
		}
		if rej == nil {
			o.state, o.version = to, o.version+1
		}
	}
}

func generate(t *testing.T, cfg GenConfig, n int) []Cmd {
	t.Helper()
	g, err := NewGen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmds := make([]Cmd, n)
	for i := range cmds {
		cmds[i] = g.Next()
	}
	return cmds
}

func TestGenOutcomesMatchStateMachine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  GenConfig
	}{
		{"valid only", GenConfig{Prefix: "a-", Orders: 50}},
		{"mixed", GenConfig{Prefix: "b-", Orders: 200, Invalid: 0.05, Duplicate: 0.05, Conflict: 0.05, Seed: 7}},
		{"hot keys", GenConfig{Prefix: "c-", Orders: 1000, Hot: 0.5, HotOrders: 3, Duplicate: 0.02, Conflict: 0.02}},
		{"one order", GenConfig{Prefix: "d-", Orders: 1, Invalid: 0.1, Duplicate: 0.1, Conflict: 0.1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			replay(t, generate(t, tc.cfg, 20000), nil)
		})
	}
}

func TestGenShares(t *testing.T) {
	t.Parallel()
	const n = 100000
	cmds := generate(t, GenConfig{Prefix: "s-", Orders: 1000, Invalid: 0.02, Duplicate: 0.03, Conflict: 0.05, Seed: 3}, n)
	count := map[Kind]int{}
	actions := map[string]int{}
	for _, c := range cmds {
		count[c.Kind]++
		if c.Kind == Valid {
			actions[c.Action]++
		}
	}
	for k, want := range map[Kind]float64{Invalid: 0.02, Duplicate: 0.03, Conflict: 0.05} {
		got := float64(count[k]) / n
		if got < want*0.8 || got > want*1.2 {
			t.Errorf("%v share %.4f, want about %.2f", k, got, want)
		}
	}
	// Every action of the table shows up, creates most of all.
	for _, a := range machine.Actions() {
		if actions[string(a)] == 0 {
			t.Errorf("no %s command in %d", a, n)
		}
	}
	if actions["create"] < actions["return"]*5 {
		t.Errorf("actions %v: creates should dominate returns", actions)
	}
}

func TestGenHotKeysConcentrate(t *testing.T) {
	t.Parallel()
	top := func(cmds []Cmd) float64 {
		per := map[string]int{}
		for _, c := range cmds {
			per[c.OrderID]++
		}
		// Orders with a full lifecycle's worth of commands (4+) in the
		// first 2,000 commands: only hot slots get that many that fast.
		busy := 0
		for _, n := range per {
			if n >= 4 {
				busy += n
			}
		}
		return float64(busy) / float64(len(cmds))
	}
	cold := top(generate(t, GenConfig{Prefix: "h-", Orders: 10000}, 2000))
	hot := top(generate(t, GenConfig{Prefix: "h-", Orders: 10000, Hot: 0.5, HotOrders: 10}, 2000))
	if hot < 0.3 || cold > 0.05 {
		t.Errorf("share of commands on busy orders: hot %.2f (want > 0.3), uniform %.2f (want < 0.05)", hot, cold)
	}
}

func TestGenPreloaded(t *testing.T) {
	t.Parallel()
	const n = 1000
	cfg := GenConfig{Prefix: "p-", Orders: 100, Preloaded: n, PreloadedPrefix: "live-"}
	cmds := generate(t, cfg, 5000)
	pre := map[string]bool{}
	for i := range n {
		pre[PreloadedID("live-", i)] = true
	}
	used := map[string]bool{}
	for _, c := range cmds {
		if c.Action == "create" && pre[c.OrderID] {
			t.Fatalf("create sent for preloaded order %s", c.OrderID)
		}
		if pre[c.OrderID] {
			used[c.OrderID] = true
		}
	}
	if len(used) < n/2 {
		t.Errorf("only %d of %d preloaded orders used", len(used), n)
	}
	replay(t, cmds, pre)

	// Once every preloaded order has had its lifecycle, new ones start with
	// create: a run longer than the preload goes on.
	const few = 20
	small := generate(t, GenConfig{Prefix: "q-", Orders: 10, Preloaded: few, PreloadedPrefix: "few-"}, 2000)
	prefew := map[string]bool{}
	for i := range few {
		prefew[PreloadedID("few-", i)] = true
	}
	usedFew, created := map[string]bool{}, map[string]bool{}
	for _, c := range small {
		switch {
		case prefew[c.OrderID]:
			usedFew[c.OrderID] = true
		case c.Action == "create":
			created[c.OrderID] = true
		}
	}
	if len(usedFew) != few || len(created) == 0 {
		t.Errorf("%d of %d preloaded orders used, then %d new orders created; want all, then some", len(usedFew), few, len(created))
	}
	replay(t, small, prefew)
}

func TestAppendJSONDecodes(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 25, 18, 0, 0, 123456789, time.UTC)
	for _, c := range generate(t, GenConfig{Prefix: "j-", Orders: 10, Invalid: 0.2, Conflict: 0.2, Duplicate: 0.2}, 500) {
		v := AppendJSON(nil, &c, "bench", at)
		got, err := topics.DecodeCommand([]byte(c.OrderID), v)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if got.CommandID != c.CommandID || got.Action != c.Action || !got.RequestedAt.Equal(at) {
			t.Fatalf("%s decoded as %+v", v, got)
		}
		if (c.ExpectedVersion >= 0) != (got.ExpectedVersion != nil) || (got.ExpectedVersion != nil && *got.ExpectedVersion != c.ExpectedVersion) {
			t.Fatalf("%s: expected_version %v, want %d", v, got.ExpectedVersion, c.ExpectedVersion)
		}
	}
}

func TestCommandIDRoundTrip(t *testing.T) {
	t.Parallel()
	for _, seq := range []int64{0, 1, 99, 1 << 40} {
		got, ok := ParseCommandID("run7-", CommandID("run7-", seq))
		if !ok || got != seq {
			t.Errorf("ParseCommandID(CommandID(%d)) = %d, %v", seq, got, ok)
		}
	}
	for _, id := range []string{"", "run7-", "run7-c", "run8-c1", "run7-x1", "run7-c1x", strings.Repeat("z", 40)} {
		if _, ok := ParseCommandID("run7-", id); ok {
			t.Errorf("ParseCommandID(%q) accepted", id)
		}
	}
}

func TestNewGenRejects(t *testing.T) {
	t.Parallel()
	for _, cfg := range []GenConfig{{Orders: -1}, {Invalid: 1.5}, {Invalid: 0.5, Duplicate: 0.5}, {Hot: -0.1}} {
		if _, err := NewGen(cfg); err == nil {
			t.Errorf("NewGen(%+v) accepted", cfg)
		}
	}
}
