package workload

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/orderflow/orderflow/processor/machine"
	"github.com/orderflow/orderflow/topics"
)

// PoisonKinds lists the kinds of malformed record Poison makes, each a way
// the contract says a record can be bad.
var PoisonKinds = []string{
	"random_bytes",   // arbitrary bytes, mostly invalid UTF-8
	"truncated_json", // a command cut short
	"huge_value",     // over the 64 KiB limit
	"wrong_type",     // a field of the wrong JSON type
	"control_in_id",  // a control character in order_id or command_id
	"key_mismatch",   // the record key is not the order_id
	"missing_field",  // no command_id, order_id or action
	"unknown_action", // an action the state machine does not have
	"nul_in_text",    // a NUL in actor or reason
	"not_an_object",  // JSON, but not an object
	"overlong",       // an id, actor or metadata over its limit
	"invalid_utf8",   // a JSON string with invalid UTF-8
	"deep_nesting",   // metadata nested past the JSON decoder's depth limit
	"tombstone",      // no value at all
	"binary_key",     // a key of NUL and invalid bytes
}

// Poison returns a malformed record of a random kind, keyed by an order in
// flight so that it lands between valid commands of the same partition. Its
// command_id, when it has one, is used by nothing else.
func (g *Generator) Poison() Record {
	kind := PoisonKinds[g.r.IntN(len(PoisonKinds))]
	return g.PoisonOf(kind)
}

// PoisonOf returns a malformed record of the given kind.
func (g *Generator) PoisonOf(kind string) Record {
	for {
		g.poison++
		key, value := g.poisonOf(kind)
		cmd, err := topics.DecodeCommand(key, value)
		if err == nil {
			_, err = machine.ParseAction(cmd.Action)
		}
		if err == nil {
			continue // random bytes that happen to be a command: never in practice, but then not poison
		}
		g.exp.Records++
		g.exp.Poison++
		g.exp.PoisonKind[kind]++
		if _, _, ok := topics.Identify(value); ok {
			g.exp.Identifiable++
		}
		return Record{Key: key, Value: value, Kind: kind}
	}
}

func (g *Generator) poisonOf(kind string) (key, value []byte) {
	order := g.active[g.r.IntN(len(g.active))].id
	cid := fmt.Sprintf("%spoison-%d", g.cfg.Prefix, g.poison)
	key = []byte(order)
	obj := func(fields string) []byte {
		return fmt.Appendf(nil, `{"command_id":%s,"order_id":%s,"action":"pay"%s}`, js(cid), js(order), fields)
	}
	switch kind {
	case "random_bytes":
		b := make([]byte, 1+g.r.IntN(512))
		for i := range b {
			b[i] = byte(g.r.UintN(256))
		}
		return key, b
	case "truncated_json":
		full := obj(`,"actor":"chaos","metadata":{"a":[1,2,3]}`)
		return key, full[:1+g.r.IntN(len(full)-1)]
	case "huge_value":
		return key, obj(fmt.Sprintf(`,"reason":"%s"`, strings.Repeat("h", topics.MaxValueBytes+g.r.IntN(4096))))
	case "wrong_type":
		return key, obj([]string{
			`,"expected_version":"one"`, `,"expected_version":1.5`, `,"metadata":[1]`,
			`,"requested_at":"yesterday"`, `,"actor":{"name":"x"}`, `,"expected_version":true`,
		}[g.r.IntN(6)])
	case "control_in_id":
		bad := order + string([]rune{'\x01', '\n', '\x7f', '\u0085', '\x1b'}[g.r.IntN(5)])
		if g.r.IntN(2) == 0 {
			return []byte(bad), fmt.Appendf(nil, `{"command_id":%s,"order_id":%s,"action":"pay"}`, js(cid), js(bad))
		}
		return key, fmt.Appendf(nil, `{"command_id":%s,"order_id":%s,"action":"pay"}`, js(cid+"\t"), js(order))
	case "key_mismatch":
		other := g.active[g.r.IntN(len(g.active))].id + "-other"
		return []byte(other), obj("")
	case "missing_field":
		return key, []byte([]string{
			fmt.Sprintf(`{"order_id":%s,"action":"pay"}`, js(order)),
			fmt.Sprintf(`{"command_id":%s,"action":"pay"}`, js(cid)),
			fmt.Sprintf(`{"command_id":%s,"order_id":%s}`, js(cid), js(order)),
			fmt.Sprintf(`{"command_id":"","order_id":%s,"action":"pay"}`, js(order)),
		}[g.r.IntN(4)])
	case "unknown_action":
		return key, fmt.Appendf(nil, `{"command_id":%s,"order_id":%s,"action":%s}`, js(cid), js(order),
			js([]string{"teleport", "PAY", "pay ", "refund", "\u202epay"}[g.r.IntN(5)]))
	case "nul_in_text":
		return key, obj([]string{`,"actor":"a\u0000b"`, `,"reason":"\u0000"`}[g.r.IntN(2)])
	case "not_an_object":
		return key, []byte([]string{`[1,2,3]`, `"pay"`, `null`, `42`, `true`, ``, ` `}[g.r.IntN(7)])
	case "overlong":
		return key, obj([]string{
			`,"actor":"` + strings.Repeat("a", topics.MaxTextChars+1) + `"`,
			`,"metadata":{"m":"` + strings.Repeat("m", topics.MaxMetadataBytes) + `"}`,
			`,"reason":"` + strings.Repeat("é", topics.MaxTextChars+1) + `"`,
		}[g.r.IntN(3)])
	case "invalid_utf8":
		return key, obj(`,"actor":"` + string([]byte{0xff, 0xfe, 0xc3}) + `"`)
	case "deep_nesting":
		n := 10001 + g.r.IntN(20000)
		return key, obj(`,"metadata":{"x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`)
	case "tombstone":
		return key, nil
	case "binary_key":
		return []byte{0, 0xff, 0xfe, '\n', 0}, obj("")
	default:
		panic("workload: unknown poison kind " + kind)
	}
}

// js is s as a JSON string.
func js(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}
