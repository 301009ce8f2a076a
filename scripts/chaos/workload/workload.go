// Package workload generates the command streams of the chaos run and of the
// reliability tests: order lifecycles interleaved across many orders, with
// retries (a command_id sent again), conflicts (a wrong expected_version, a
// transition the state machine refuses, a second create, an unknown order)
// and malformed records of every kind the contract names. It also predicts
// what the processor must make of them: every command's outcome, every
// order's final state, and how many records end in the DLQ.
//
// The prediction holds because orderflow applies an order's commands in the
// order of their offsets, and one producer writes an order's records (one
// key, one partition) in the order Next returns them. Poison records never
// reuse a command_id, so none of them can pre-empt a valid command.
package workload

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/orderflow/orderflow/processor/machine"
	"github.com/orderflow/orderflow/topics"
)

// Record is one record to produce on the commands topic.
type Record struct {
	Key, Value []byte
	// Kind is "command", "retry", "conflict" or the kind of poison.
	Kind string
}

// Outcome is what a command must come to.
type Outcome struct {
	Outcome string // topics.Accepted or topics.Rejected
	Reason  string // the rejection reason; "" when accepted
}

// OrderState is an order's predicted final state.
type OrderState struct {
	State   machine.State
	Version int64
}

// Expectation is what the processor must make of everything generated so far.
type Expectation struct {
	Records    int            // records generated, valid and not
	Retries    int            // records that repeat a command_id already generated
	Conflicts  int            // commands meant to be rejected
	Poison     int            // malformed records: each must become a dead letter
	PoisonKind map[string]int // of those, by kind
	// Identifiable counts the malformed records whose command_id and
	// order_id can still be read: each gets a rejected outcome
	// (invalid_command).
	Identifiable int
	Accepted     int
	Commands     map[string]Outcome // by command_id, the valid commands only
	Orders       map[string]OrderState
}

// Outcomes is how many outcome rows and events the processor must write.
func (e *Expectation) Outcomes() int { return len(e.Commands) + e.Identifiable }

// Config tunes a Generator. Zero fields take the defaults.
type Config struct {
	Seed uint64
	// Prefix starts every order id, so runs and tests do not share orders.
	Prefix string
	// Active is how many orders are in flight at once: their commands
	// interleave. Default 1000.
	Active int
	// RetryRate and ConflictRate are the chances that a command is a retry
	// or a conflict. Defaults 0.08 and 0.06.
	RetryRate, ConflictRate float64
}

type order struct {
	id      string
	state   machine.State
	version int64
	script  []machine.Action
	n       int
}

// Generator produces records; it is not safe for concurrent use.
type Generator struct {
	cfg    Config
	r      *rand.Rand
	active []*order
	orders int
	recent [][2][]byte // key and value of recent valid commands, to retry
	poison int
	ghosts int
	exp    Expectation
}

// New returns a generator.
func New(cfg Config) *Generator {
	if cfg.Active <= 0 {
		cfg.Active = 1000
	}
	if cfg.RetryRate == 0 {
		cfg.RetryRate = 0.08
	}
	if cfg.ConflictRate == 0 {
		cfg.ConflictRate = 0.06
	}
	g := &Generator{
		cfg: cfg,
		r:   rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), //nolint:gosec // test data, reproducible by seed
		exp: Expectation{PoisonKind: map[string]int{}, Commands: map[string]Outcome{}, Orders: map[string]OrderState{}},
	}
	for range cfg.Active {
		g.active = append(g.active, g.newOrder())
	}
	return g
}

// Expect returns the expectation of everything generated so far.
func (g *Generator) Expect() *Expectation { return &g.exp }

var scripts = []struct {
	weight  int
	actions []machine.Action
}{
	{40, []machine.Action{machine.Create, machine.Pay, machine.Ship, machine.Deliver}},
	{15, []machine.Action{machine.Create, machine.Pay, machine.Ship, machine.Deliver, machine.Return}},
	{10, []machine.Action{machine.Create, machine.Cancel}},
	{10, []machine.Action{machine.Create, machine.Pay, machine.Cancel}},
	{10, []machine.Action{machine.Create, machine.Pay}},
	{15, []machine.Action{machine.Create, machine.Pay, machine.Ship}},
}

func (g *Generator) newOrder() *order {
	g.orders++
	w := g.r.IntN(100)
	for _, s := range scripts {
		if w < s.weight {
			return &order{id: fmt.Sprintf("%s%d", g.cfg.Prefix, g.orders), script: s.actions}
		}
		w -= s.weight
	}
	panic("workload: script weights do not add up to 100")
}

// Next returns the next record of the valid stream: a command, a retry of
// an earlier one, or a conflict.
func (g *Generator) Next() Record {
	g.exp.Records++
	if len(g.recent) > 0 && g.r.Float64() < g.cfg.RetryRate {
		kv := g.recent[g.r.IntN(len(g.recent))]
		g.exp.Retries++
		return Record{Key: kv[0], Value: kv[1], Kind: "retry"}
	}
	if g.r.Float64() < g.cfg.ConflictRate {
		return g.conflict()
	}
	i := g.r.IntN(len(g.active))
	o := g.active[i]
	a := o.script[0]
	o.script = o.script[1:]
	var expected *int64
	if a != machine.Create && g.r.IntN(2) == 0 {
		v := o.version
		expected = &v
	}
	rec := g.command(o, a, expected, "command")
	if len(o.script) == 0 {
		g.active[i] = g.newOrder()
	}
	return rec
}

// conflict returns a command the state machine must reject.
func (g *Generator) conflict() Record {
	g.exp.Conflicts++
	o := g.active[g.r.IntN(len(g.active))]
	switch {
	case o.state == machine.None || g.r.IntN(8) == 0:
		// An order nobody created.
		g.ghosts++
		ghost := &order{id: fmt.Sprintf("%sghost-%d", g.cfg.Prefix, g.ghosts)}
		return g.command(ghost, machine.Pay, nil, "conflict")
	case g.r.IntN(3) == 0:
		return g.command(o, machine.Create, nil, "conflict")
	case g.r.IntN(2) == 0:
		wrong := o.version + 1 + int64(g.r.IntN(3))
		return g.command(o, o.script[0], &wrong, "conflict")
	default:
		// An action the current state does not allow (always exists:
		// create is never allowed on an existing order).
		for {
			a := machine.Actions()[g.r.IntN(len(machine.Actions()))]
			if _, rej := machine.Apply(o.state, o.version, a, nil); rej != nil {
				return g.command(o, a, nil, "conflict")
			}
		}
	}
}

// command encodes one command of o and predicts its outcome.
func (g *Generator) command(o *order, a machine.Action, expected *int64, kind string) Record {
	o.n++
	now := time.Now().UTC()
	c := topics.Command{
		CommandID: fmt.Sprintf("%s-%d", o.id, o.n), OrderID: o.id, Action: string(a), ExpectedVersion: expected,
		Actor: "chaos", RequestedAt: &now,
	}
	if g.r.IntN(4) == 0 {
		c.Reason = "réason ✓ " + fmt.Sprint(g.r.IntN(1000))
		c.Metadata = json.RawMessage(fmt.Sprintf(`{"n": %d, "tags": ["a", "ß"], "nested": {"ok": true}}`, g.r.IntN(1e6)))
	}
	v, err := topics.EncodeCommand(c)
	if err != nil {
		panic(fmt.Sprintf("workload: generated an invalid command: %v", err))
	}
	to, rej := machine.Apply(o.state, o.version, a, expected)
	if rej != nil {
		g.exp.Commands[c.CommandID] = Outcome{Outcome: topics.Rejected, Reason: rej.Reason}
	} else {
		o.state = to
		o.version++
		g.exp.Accepted++
		g.exp.Commands[c.CommandID] = Outcome{Outcome: topics.Accepted}
		g.exp.Orders[o.id] = OrderState{State: o.state, Version: o.version}
	}
	kv := [2][]byte{[]byte(o.id), v}
	if len(g.recent) < 4096 {
		g.recent = append(g.recent, kv)
	} else {
		g.recent[g.r.IntN(len(g.recent))] = kv
	}
	return Record{Key: kv[0], Value: kv[1], Kind: kind}
}
