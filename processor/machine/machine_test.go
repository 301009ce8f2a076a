package machine

import (
	"strings"
	"testing"
)

// want is the contract's table written out independently of table, so a
// change to either shows up here.
var want = map[State]map[Action]State{
	None:      {Create: Created},
	Created:   {Pay: Paid, Cancel: Cancelled},
	Paid:      {Ship: Shipped, Cancel: Cancelled},
	Shipped:   {Deliver: Delivered},
	Delivered: {Return: Returned},
	Cancelled: {},
	Returned:  {},
}

func TestEveryStateActionPair(t *testing.T) {
	t.Parallel()
	for _, s := range append([]State{None}, States()...) {
		for _, a := range Actions() {
			t.Run(string(s)+"/"+string(a), func(t *testing.T) {
				t.Parallel()
				version := int64(3)
				if s == None {
					version = 0
				}
				got, rej := Apply(s, version, a, nil)
				to, ok := want[s][a]
				switch {
				case ok && rej != nil:
					t.Fatalf("Apply(%q, %q) rejected (%v), want %q", s, a, rej, to)
				case ok && got != to:
					t.Fatalf("Apply(%q, %q) = %q, want %q", s, a, got, to)
				case !ok && rej == nil:
					t.Fatalf("Apply(%q, %q) = %q, want a rejection", s, a, got)
				case !ok:
					wantReason := ReasonInvalidTransition
					if s == None {
						wantReason = ReasonUnknownOrder
					} else if a == Create {
						wantReason = ReasonOrderExists
					}
					if rej.Reason != wantReason {
						t.Fatalf("Apply(%q, %q) reason %q, want %q", s, a, rej.Reason, wantReason)
					}
					if got != s {
						t.Fatalf("rejected Apply(%q, %q) changed state to %q", s, a, got)
					}
				}
			})
		}
	}
}

func TestVersionConflict(t *testing.T) {
	t.Parallel()
	ptr := func(v int64) *int64 { return &v }
	tests := []struct {
		name     string
		state    State
		version  int64
		action   Action
		expected *int64
		reason   string
	}{
		{"match", Created, 1, Pay, ptr(1), ""},
		{"stale", Created, 2, Pay, ptr(1), ReasonVersionConflict},
		{"ahead", Paid, 2, Ship, ptr(7), ReasonVersionConflict},
		{"create expects zero", None, 0, Create, ptr(0), ""},
		{"create expects one", None, 0, Create, ptr(1), ReasonVersionConflict},
		{"exists wins over conflict", Paid, 2, Create, ptr(5), ReasonOrderExists},
		{"conflict wins over invalid", Delivered, 4, Pay, ptr(1), ReasonVersionConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, rej := Apply(tt.state, tt.version, tt.action, tt.expected)
			got := ""
			if rej != nil {
				got = rej.Reason
			}
			if got != tt.reason {
				t.Fatalf("reason %q, want %q", got, tt.reason)
			}
		})
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, a := range Actions() {
		if got, err := ParseAction(string(a)); err != nil || got != a {
			t.Fatalf("ParseAction(%q) = %q, %v", a, got, err)
		}
	}
	for _, s := range States() {
		if got, err := ParseState(string(s)); err != nil || got != s {
			t.Fatalf("ParseState(%q) = %q, %v", s, got, err)
		}
	}
	for _, bad := range []string{"", "Pay", "refund", "created"} {
		if _, err := ParseAction(bad); err == nil {
			t.Fatalf("ParseAction(%q) succeeded", bad)
		}
		if _, err := ParseState(bad); err == nil {
			t.Fatalf("ParseState(%q) succeeded", bad)
		}
	}
}

func TestTerminalAndAllowed(t *testing.T) {
	t.Parallel()
	for s, acts := range want {
		if got := len(Allowed(s)); got != len(acts) {
			t.Fatalf("Allowed(%q) has %d actions, want %d", s, got, len(acts))
		}
		if s != None && s.Terminal() != (len(acts) == 0) {
			t.Fatalf("%q.Terminal() = %v", s, s.Terminal())
		}
	}
}

func TestDescriptions(t *testing.T) {
	t.Parallel()
	m := Mermaid()
	for _, line := range []string{"stateDiagram-v2", "[*] --> Created: create", "Paid --> Cancelled: cancel", "Returned --> [*]"} {
		if !strings.Contains(m, line) {
			t.Fatalf("Mermaid() lacks %q:\n%s", line, m)
		}
	}
	d := DOT()
	if !strings.Contains(d, `Delivered -> Returned [label="return"]`) || !strings.HasPrefix(d, "digraph") {
		t.Fatalf("DOT() unexpected:\n%s", d)
	}
	desc := Describe()
	if len(desc.Transitions) != 7 || len(desc.Terminal) != 2 || desc.Initial != Created {
		t.Fatalf("Describe() = %+v", desc)
	}
	if !strings.Contains(Text(), "(absent)") {
		t.Fatal("Text() lacks the create row")
	}
}

func BenchmarkApply(b *testing.B) {
	exp := int64(1)
	b.ReportAllocs()
	for b.Loop() {
		if _, rej := Apply(Created, 1, Pay, &exp); rej != nil {
			b.Fatal(rej)
		}
	}
}
