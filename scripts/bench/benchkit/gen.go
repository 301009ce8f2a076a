package benchkit

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/orderflow/orderflow/processor/machine"
)

// Kind is what a generated command is meant to exercise.
type Kind uint8

// The kinds of command the generator mixes.
const (
	// Valid is the next step of the order's lifecycle, with the right
	// expected_version: it is accepted.
	Valid Kind = iota
	// Invalid names an action that does not exist: a dead letter plus a
	// rejected event with reason invalid_command.
	Invalid
	// Duplicate re-sends an earlier command of the same order, byte for
	// byte: it changes nothing and gets no second event.
	Duplicate
	// Conflict is the next step with a stale expected_version: rejected
	// with reason version_conflict.
	Conflict
)

func (k Kind) String() string {
	switch k {
	case Valid:
		return "valid"
	case Invalid:
		return "invalid"
	case Duplicate:
		return "duplicate"
	case Conflict:
		return "conflict"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// InvalidAction is the action name invalid commands carry.
const InvalidAction = "teleport"

// GenConfig shapes the load. Shares are fractions of all commands sent.
type GenConfig struct {
	// Prefix starts every order and command id, so that runs sharing
	// topics or a database never collide (e.g. "r1712345-").
	Prefix string
	// Orders is how many orders are in flight at once; a finished
	// lifecycle is replaced by a new order. Default 10,000.
	Orders int
	// Invalid, Duplicate and Conflict are the shares of those kinds.
	Invalid, Duplicate, Conflict float64
	// Hot is the share of commands that go to the first HotOrders slots
	// (hot-key skew: many commands of few orders in one batch).
	Hot       float64
	HotOrders int // default 1 % of Orders, at least 1
	// Preloaded orders exist already (state Created, version 1, ids from
	// PreloadedID); new lifecycles take them, spread over the whole range,
	// before creating new ones.
	Preloaded       int
	PreloadedPrefix string
	// PreloadedFrom skips that many preloaded orders (in the generator's
	// visiting order), so successive runs on one database use disjoint ones.
	PreloadedFrom int
	Seed          uint64
}

// PreloadedID is the id of the i-th preloaded order.
func PreloadedID(prefix string, i int) string { return fmt.Sprintf("%s%07d", prefix, i) }

// Cmd is one generated command. Seq numbers the command_id: a Duplicate
// carries the Seq of the command it repeats.
type Cmd struct {
	Seq             int64
	CommandID       string
	OrderID         string
	Action          string
	ExpectedVersion int64 // -1: none
	Kind            Kind
	// Accepted is the outcome the state machine must give, given that the
	// commands of one order are applied in the order they were generated.
	Accepted bool
}

// The lifecycles new orders follow, with their weights out of 10:
// mostly delivered, some returned or cancelled.
var lifecycles = []struct {
	weight int
	path   []machine.Action
}{
	{7, []machine.Action{machine.Create, machine.Pay, machine.Ship, machine.Deliver}},
	{1, []machine.Action{machine.Create, machine.Pay, machine.Ship, machine.Deliver, machine.Return}},
	{1, []machine.Action{machine.Create, machine.Cancel}},
	{1, []machine.Action{machine.Create, machine.Pay, machine.Cancel}},
}

type slot struct {
	orderID string
	path    []machine.Action
	step    int
	state   machine.State
	version int64
}

// Gen generates commands. It models every order's state, so it knows each
// command's outcome in advance. Not safe for concurrent use.
type Gen struct {
	cfg       GenConfig
	rnd       *rand.Rand
	slots     []slot
	nextOrder int64
	nextSeq   int64
	preUsed   int
	preStride int
	recent    []Cmd // ring of the last recentLen commands, for duplicates
	recentAt  int
}

// recentLen is how far back a duplicate may reach.
const recentLen = 1024

// NewGen checks cfg and returns a generator.
func NewGen(cfg GenConfig) (*Gen, error) {
	cfg.Orders = cmp.Or(cfg.Orders, 10000)
	if cfg.Orders < 1 {
		return nil, fmt.Errorf("orders %d: want at least 1", cfg.Orders)
	}
	for _, s := range []float64{cfg.Invalid, cfg.Duplicate, cfg.Conflict, cfg.Hot} {
		if s < 0 || s > 1 {
			return nil, fmt.Errorf("share %v not in 0..1", s)
		}
	}
	if cfg.Invalid+cfg.Duplicate+cfg.Conflict > 0.9 {
		return nil, errors.New("invalid + duplicate + conflict shares over 0.9 leave no lifecycle to drive")
	}
	cfg.HotOrders = cmp.Or(cfg.HotOrders, max(1, cfg.Orders/100))
	cfg.HotOrders = min(cfg.HotOrders, cfg.Orders)
	// A load needs repeatable, not secret, randomness.
	rnd := rand.New(rand.NewPCG(cfg.Seed, 0x0dde7f10)) //nolint:gosec // see above
	g := &Gen{cfg: cfg, rnd: rnd, slots: make([]slot, cfg.Orders)}
	if cfg.Preloaded > 0 {
		// A stride coprime to the count visits every preloaded order once,
		// scattered over the id range (and so over the index), with no
		// memory of which were used.
		g.preStride = cfg.Preloaded/2 + 1
		for gcd(g.preStride, cfg.Preloaded) != 1 {
			g.preStride++
		}
	}
	g.preUsed = max(cfg.PreloadedFrom, 0)
	for i := range g.slots {
		g.renew(&g.slots[i])
	}
	return g, nil
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func (g *Gen) renew(s *slot) {
	if g.preUsed < g.cfg.Preloaded {
		idx := int((int64(g.preUsed) * int64(g.preStride)) % int64(g.cfg.Preloaded))
		g.preUsed++
		*s = slot{orderID: PreloadedID(g.cfg.PreloadedPrefix, idx), path: g.pickPath(), step: 1, state: machine.Created, version: 1}
		return
	}
	g.nextOrder++
	*s = slot{orderID: g.cfg.Prefix + "o" + strconv.FormatInt(g.nextOrder, 10), path: g.pickPath()}
}

func (g *Gen) pickPath() []machine.Action {
	n := g.rnd.IntN(10)
	for _, l := range lifecycles {
		if n < l.weight {
			return l.path
		}
		n -= l.weight
	}
	return lifecycles[0].path
}

// CommandID is the command_id of sequence number seq under prefix.
func CommandID(prefix string, seq int64) string { return prefix + "c" + strconv.FormatInt(seq, 10) }

// ParseCommandID returns the sequence number of a command_id made by
// CommandID with the same prefix.
func ParseCommandID(prefix, id string) (int64, bool) {
	if len(id) <= len(prefix)+1 || id[:len(prefix)] != prefix || id[len(prefix)] != 'c' {
		return 0, false
	}
	n, err := strconv.ParseInt(id[len(prefix)+1:], 10, 64)
	return n, err == nil
}

// Next returns the next command.
func (g *Gen) Next() Cmd {
	i := g.rnd.IntN(len(g.slots))
	if g.cfg.Hot > 0 && g.rnd.Float64() < g.cfg.Hot {
		i = g.rnd.IntN(g.cfg.HotOrders)
	}
	s := &g.slots[i]
	r := g.rnd.Float64()
	switch {
	case r < g.cfg.Duplicate:
		if len(g.recent) > 0 {
			// A retry of a recent command, as a producer that timed out
			// sends: any order, one the processor has probably seen.
			d := g.recent[g.rnd.IntN(len(g.recent))]
			d.Kind = Duplicate
			return d
		}
		// Nothing sent yet to repeat: send a lifecycle step instead.
	case r < g.cfg.Duplicate+g.cfg.Invalid:
		return g.emit(s, Cmd{Action: InvalidAction, ExpectedVersion: -1, Kind: Invalid})
	case r < g.cfg.Duplicate+g.cfg.Invalid+g.cfg.Conflict:
		a := s.path[s.step]
		// Off by more than one, so it can never be right by accident.
		return g.emit(s, Cmd{Action: string(a), ExpectedVersion: s.version + 3, Kind: Conflict})
	}
	a := s.path[s.step]
	c := Cmd{Action: string(a), ExpectedVersion: -1, Kind: Valid, Accepted: true}
	if a != machine.Create {
		c.ExpectedVersion = s.version
	}
	to, rej := machine.Apply(s.state, s.version, a, nil)
	if rej != nil {
		// The paths follow the table, so this is a bug in the generator.
		panic(fmt.Sprintf("benchkit: lifecycle step %s from %s rejected: %v", a, s.state, rej))
	}
	c = g.emit(s, c)
	s.state, s.version, s.step = to, s.version+1, s.step+1
	if s.step == len(s.path) {
		g.renew(s)
	}
	return c
}

func (g *Gen) emit(s *slot, c Cmd) Cmd {
	c.Seq = g.nextSeq
	g.nextSeq++
	c.CommandID = CommandID(g.cfg.Prefix, c.Seq)
	c.OrderID = s.orderID
	if len(g.recent) < recentLen {
		g.recent = append(g.recent, c)
	} else {
		g.recent[g.recentAt] = c
		g.recentAt = (g.recentAt + 1) % recentLen
	}
	return c
}

// AppendJSON appends c as a command record value (the public contract's
// JSON), with requested_at set to at. Ids are ASCII letters, digits and
// '-', so they need no escaping; writing it by hand keeps the load
// generator's own CPU use small on a machine it shares with what it
// measures.
func AppendJSON(b []byte, c *Cmd, actor string, at time.Time) []byte {
	b = append(b, `{"command_id":"`...)
	b = append(b, c.CommandID...)
	b = append(b, `","order_id":"`...)
	b = append(b, c.OrderID...)
	b = append(b, `","action":"`...)
	b = append(b, c.Action...)
	b = append(b, '"')
	if c.ExpectedVersion >= 0 {
		b = append(b, `,"expected_version":`...)
		b = strconv.AppendInt(b, c.ExpectedVersion, 10)
	}
	b = append(b, `,"actor":"`...)
	b = append(b, actor...)
	b = append(b, `","requested_at":"`...)
	b = at.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}
