// Package machine is the order state machine: the states, the actions and the
// transition table between them, as data. It does no I/O and knows nothing of
// Kafka, PostgreSQL or goroutines, so every (state, action) pair can be tested
// exhaustively and the table can describe itself for docs and the API.
package machine

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// State is an order's lifecycle state. The zero value, None, means the order
// does not exist yet.
type State string

// The states, spelled exactly as in the public contract.
const (
	// None is the state of an order that has not been created.
	None State = ""
	// Created is an order that exists but is not paid.
	Created State = "Created"
	// Paid is an order whose payment was captured.
	Paid State = "Paid"
	// Shipped is an order handed to a carrier.
	Shipped State = "Shipped"
	// Delivered is an order the customer received.
	Delivered State = "Delivered"
	// Cancelled is an order stopped before shipping; terminal.
	Cancelled State = "Cancelled"
	// Returned is a delivered order sent back; terminal.
	Returned State = "Returned"
)

// Action is what a command asks to do to an order.
type Action string

// The actions, spelled exactly as in the public contract.
const (
	// Create makes a new order in state Created.
	Create Action = "create"
	// Pay moves Created to Paid.
	Pay Action = "pay"
	// Ship moves Paid to Shipped.
	Ship Action = "ship"
	// Deliver moves Shipped to Delivered.
	Deliver Action = "deliver"
	// Cancel moves Created or Paid to Cancelled.
	Cancel Action = "cancel"
	// Return moves Delivered to Returned.
	Return Action = "return"
)

// Transition is one row of the table: Action takes an order in From to To.
type Transition struct {
	Action Action `json:"action"`
	From   State  `json:"from"`
	To     State  `json:"to"`
}

// table is the whole machine. Order matters only for the way it describes
// itself; lookups go through the index built in init.
var table = []Transition{
	{Create, None, Created},
	{Pay, Created, Paid},
	{Ship, Paid, Shipped},
	{Deliver, Shipped, Delivered},
	{Cancel, Created, Cancelled},
	{Cancel, Paid, Cancelled},
	{Return, Delivered, Returned},
}

// States lists every real state (None excluded) in lifecycle order.
var states = []State{Created, Paid, Shipped, Delivered, Cancelled, Returned}

// actions lists every action in lifecycle order.
var actions = []Action{Create, Pay, Ship, Deliver, Cancel, Return}

type key struct {
	s State
	a Action
}

var index = func() map[key]State {
	m := make(map[key]State, len(table))
	for _, t := range table {
		m[key{t.From, t.Action}] = t.To
	}
	return m
}()

// Rejection reasons, spelled as in the public contract.
const (
	ReasonInvalidTransition = "invalid_transition"
	ReasonVersionConflict   = "version_conflict"
	ReasonUnknownOrder      = "unknown_order"
	ReasonOrderExists       = "order_exists"
	ReasonInvalidCommand    = "invalid_command"
)

// Rejection says why a command was refused: Reason is one of the Reason*
// constants, Message is for a person.
type Rejection struct {
	Reason  string
	Message string
}

func (r *Rejection) Error() string { return r.Reason + ": " + r.Message }

// ErrUnknownAction is returned by ParseAction for a name that is not an action.
var ErrUnknownAction = errors.New("unknown action")

// ErrUnknownState is returned by ParseState for a name that is not a state.
var ErrUnknownState = errors.New("unknown state")

// States returns every state in lifecycle order.
func States() []State { return slices.Clone(states) }

// Actions returns every action in lifecycle order.
func Actions() []Action { return slices.Clone(actions) }

// Transitions returns the table.
func Transitions() []Transition { return slices.Clone(table) }

// ParseAction returns the action named s.
func ParseAction(s string) (Action, error) {
	a := Action(s)
	if slices.Contains(actions, a) {
		return a, nil
	}
	return "", fmt.Errorf("%w %q", ErrUnknownAction, s)
}

// ParseState returns the state named s.
func ParseState(s string) (State, error) {
	st := State(s)
	if slices.Contains(states, st) {
		return st, nil
	}
	return "", fmt.Errorf("%w %q", ErrUnknownState, s)
}

// Terminal reports whether no action leads out of s.
func (s State) Terminal() bool { return len(Allowed(s)) == 0 && s != None }

// Allowed lists the actions that s accepts, in lifecycle order.
func Allowed(s State) []Action {
	var out []Action
	for _, a := range actions {
		if _, ok := index[key{s, a}]; ok {
			out = append(out, a)
		}
	}
	return out
}

// Apply decides a command. current is the order's state (None when absent),
// version its version (0 when absent), and expected the command's
// expected_version when it has one. It returns the new state, or a
// Rejection saying why not. Checks come in the order a caller finds most
// useful: existence first, then the optimistic-concurrency check, then the
// table.
func Apply(current State, version int64, a Action, expected *int64) (State, *Rejection) {
	switch {
	case a == Create && current != None:
		return current, &Rejection{ReasonOrderExists, fmt.Sprintf("order already exists in state %s", current)}
	case a != Create && current == None:
		return None, &Rejection{ReasonUnknownOrder, fmt.Sprintf("order does not exist; %s needs a created order", a)}
	case expected != nil && *expected != version:
		return current, &Rejection{ReasonVersionConflict, fmt.Sprintf("expected version %d, order is at version %d", *expected, version)}
	}
	to, ok := index[key{current, a}]
	if !ok {
		return current, &Rejection{ReasonInvalidTransition, invalidMessage(current, a)}
	}
	return to, nil
}

func invalidMessage(s State, a Action) string {
	allowed := Allowed(s)
	if len(allowed) == 0 {
		return fmt.Sprintf("cannot %s an order in state %s: the state is terminal", a, s)
	}
	names := make([]string, len(allowed))
	for i, x := range allowed {
		names[i] = string(x)
	}
	return fmt.Sprintf("cannot %s an order in state %s (allowed: %s)", a, s, strings.Join(names, ", "))
}
