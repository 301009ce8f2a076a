package topics

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

// Commands as producers write them must take the scan, or it buys nothing.
func TestScanCommandTakesUsualCommands(t *testing.T) {
	for _, value := range []string{
		`{"command_id":"c1","order_id":"o-1","action":"create"}`,
		`{"command_id":"0b8f3c1e","order_id":"order-42","action":"pay","expected_version":1,"actor":"payments-service","reason":"card captured","metadata":{"payment_id":"p-9","n":[1,2]},"requested_at":"2026-11-25T18:00:00.000Z"}`,
		` { "command_id" : "c1" , "order_id" : "Bestellung-ü", "action" : "cancel", "expected_version" : null, "requested_at": null } `,
		`{"command_id":"c1","order_id":"o-1","action":"ship","expected_version":-0,"actor":null}`,
		`{}`,
	} {
		got, ok := scanCommand([]byte(value))
		if !ok {
			t.Errorf("scan refused %s", value)
			continue
		}
		var want Command
		if err := json.Unmarshal([]byte(value), &want); err != nil {
			t.Fatalf("%s: %v", value, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\nscan      %+v\nUnmarshal %+v", value, got, want)
		}
	}
}

// The scan leaves to encoding/json what it would get wrong or word badly.
func TestScanCommandRefuses(t *testing.T) {
	for _, value := range []string{
		`{"command_id":"c\"1","order_id":"o","action":"pay"}`, // escape
		`{"Command_ID":"c1","order_id":"o","action":"pay"}`,   // case: encoding/json matches it
		`{"command_id":"c1","command_id":"c2"}`,               // repeated key
		`{"metadata":null}`, `{"metadata":[1]}`, `{"metadata":{"a":}}`,
		`{"expected_version":01}`, `{"expected_version":1.0}`, `{"expected_version":1e3}`, `{"expected_version":+1}`,
		`{"expected_version":99999999999999999999}`, `{"expected_version":"1"}`,
		`{"requested_at":"yesterday"}`, `{"requested_at":5}`,
		`{"action":true}`, `{"action":nul}`, `{"action":"pay"`, `{"action":"pay"} x`, `{"action":"pay",}`,
		"{\"action\":\"p\tay\"}", `{"unknown":1}`,
	} {
		if c, ok := scanCommand([]byte(value)); ok {
			t.Errorf("scan took %s as %+v", value, c)
		}
	}
}

// FuzzScanCommand checks that where the scan decodes a command, json.Unmarshal
// decodes the same input without error to the same command.
func FuzzScanCommand(f *testing.F) {
	f.Add([]byte(`{"command_id":"c1","order_id":"o-1","action":"pay","expected_version":3,"metadata":{"k":"}"},"requested_at":"2026-11-25T18:00:00+01:00"}`))
	f.Add([]byte(`{"command_id":"c1","order_id":"o-1","action":"pay","expected_version":-9223372036854775808}`))
	f.Add([]byte(` {"actor":null,"reason":"","metadata":{"a":{"b":[1,"\u0000"]}}} `))
	f.Add([]byte(`{"requested_at":"2026-11-25T18:00:00.123456789Z"}`))
	f.Add([]byte(`{"expected_version":-0}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, value []byte) {
		if !utf8.Valid(value) {
			return // DecodeCommand refuses these before either decoder runs
		}
		got, ok := scanCommand(value)
		if !ok {
			return
		}
		var want Command
		if err := json.Unmarshal(value, &want); err != nil {
			t.Fatalf("scan took %q, json.Unmarshal refuses it: %v", value, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\nscan      %+v\nUnmarshal %+v", value, got, want)
		}
	})
}
