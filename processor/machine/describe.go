package machine

import (
	"fmt"
	"strings"
)

// Description is the machine as data, the shape GET /v1/machine serves.
type Description struct {
	States      []State      `json:"states"`
	Initial     State        `json:"initial"`
	Terminal    []State      `json:"terminal"`
	Actions     []Action     `json:"actions"`
	Transitions []Transition `json:"transitions"`
}

// Describe returns the whole machine as data.
func Describe() Description {
	d := Description{States: States(), Initial: Created, Actions: Actions(), Transitions: Transitions()}
	for _, s := range states {
		if s.Terminal() {
			d.Terminal = append(d.Terminal, s)
		}
	}
	return d
}

// Mermaid renders the machine as a Mermaid stateDiagram; the README's state
// diagram is this output, so docs cannot drift from the table.
func Mermaid() string {
	var b strings.Builder
	b.WriteString("stateDiagram-v2\n")
	for _, t := range table {
		from := string(t.From)
		if t.From == None {
			from = "[*]"
		}
		fmt.Fprintf(&b, "    %s --> %s: %s\n", from, t.To, t.Action)
	}
	for _, s := range states {
		if s.Terminal() {
			fmt.Fprintf(&b, "    %s --> [*]\n", s)
		}
	}
	return b.String()
}

// DOT renders the machine for Graphviz.
func DOT() string {
	var b strings.Builder
	b.WriteString("digraph orders {\n    rankdir=LR;\n    start [shape=point];\n")
	for _, s := range states {
		shape := "ellipse"
		if s.Terminal() {
			shape = "doublecircle"
		}
		fmt.Fprintf(&b, "    %s [shape=%s];\n", s, shape)
	}
	for _, t := range table {
		from := string(t.From)
		if t.From == None {
			from = "start"
		}
		fmt.Fprintf(&b, "    %s -> %s [label=%q];\n", from, t.To, t.Action)
	}
	b.WriteString("}\n")
	return b.String()
}

// Text renders the table as aligned plain text for terminals.
func Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s  %-10s  %s\n", "ACTION", "FROM", "TO")
	for _, t := range table {
		from := string(t.From)
		if t.From == None {
			from = "(absent)"
		}
		fmt.Fprintf(&b, "%-8s  %-10s  %s\n", t.Action, from, t.To)
	}
	return b.String()
}
