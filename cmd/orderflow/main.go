// Command orderflow is the order lifecycle service and its command-line
// tools, in one binary: serve runs the processor and the API, the other
// subcommands operate or query a running deployment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

// command is one subcommand. run gets the arguments after the subcommand's
// name and writes its normal output to out.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, out io.Writer) error
}

// commands is filled by the init functions of the files that implement them,
// so each subcommand lives in a file of its own.
var commands []command

func register(c command) { commands = append(commands, c) }

// errUsage marks errors whose message is a usage text: printed as is, exit 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, out, errOut io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(out)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == args[0] })
	if i < 0 {
		fmt.Fprintf(errOut, "orderflow: unknown command %q\n\n", args[0])
		usage(errOut)
		return 2
	}
	err := commands[i].run(ctx, args[1:], out)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintln(errOut, err)
		return 2
	default:
		fmt.Fprintf(errOut, "orderflow %s: %v\n", args[0], err)
		return 1
	}
}

func usage(w io.Writer) {
	slices.SortFunc(commands, func(a, b command) int { return strings.Compare(a.name, b.name) })
	fmt.Fprintln(w, "orderflow: the order lifecycle service\n\nUsage: orderflow <command> [flags]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'orderflow <command> -h' for a command's flags. Every flag can also be set\nby an environment variable, shown in the flag's help.")
}
