package main

import (
	"context"
	"fmt"
	"io"

	"github.com/orderflow/orderflow/processor/machine"
)

func init() {
	register(command{name: "machine", summary: "print the order state machine (text, mermaid, dot or json)", run: runMachine})
}

// runMachine works offline: the machine is compiled into the binary, the
// same table the processor applies and GET /v1/machine serves.
func runMachine(_ context.Context, args []string, out io.Writer) error {
	var format string
	var asJSON bool
	f := newFlags("machine")
	f.fs.StringVar(&format, "format", "text", "text, mermaid, dot or json")
	f.fs.BoolVar(&asJSON, "json", false, "same as -format json")
	pos, err := parseArgs(f, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("%w: orderflow machine [-format text|mermaid|dot|json]", errUsage)
	}
	if asJSON {
		format = "json"
	}
	var text string
	switch format {
	case "text":
		text = machine.Text()
	case "mermaid":
		text = machine.Mermaid()
	case "dot":
		text = machine.DOT()
	case "json":
		return printJSON(out, machine.Describe())
	default:
		return fmt.Errorf("%w: -format %q is not text, mermaid, dot or json", errUsage, format)
	}
	if _, err := io.WriteString(out, text); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
