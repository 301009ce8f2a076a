package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/orderflow/orderflow/processor/verify"
)

func init() {
	register(command{name: "verify", summary: "check the invariants across PostgreSQL and the topics", run: runVerify})
}

// errViolations makes verify exit 1 when an invariant does not hold.
var errViolations = errors.New("invariants violated")

func runVerify(ctx context.Context, args []string, out io.Writer) error {
	var (
		k       kafkaConfig
		db      dbConfig
		asJSON  bool
		maxList int
		wait    time.Duration
	)
	f := newFlags("verify")
	k.register(f)
	db.register(f)
	f.fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.fs.IntVar(&maxList, "max-violations", 1000, "list at most this many violations (0: all); all are counted")
	f.fs.DurationVar(&wait, "wait", 0, "wait up to this long for the processors to consume every command and publish "+
		"every outcome before judging (verify right after a run: events trail their commit)")
	if err := f.parse(args); err != nil {
		return err
	}
	if f.fs.NArg() > 0 {
		return fmt.Errorf("%w: verify takes no arguments, got %q", errUsage, f.fs.Args())
	}
	if maxList < 0 || wait < 0 {
		return fmt.Errorf("%w: -max-violations and -wait must not be negative", errUsage)
	}
	kopts, err := k.opts()
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	pool, err := db.open(ctx, 2)
	if err != nil {
		return err
	}
	defer pool.Close()

	deadline := time.Now().Add(wait)
	var rep *verify.Report
	for {
		rep, err = verify.Run(ctx, pool, kopts, k.names(), maxList)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		// A run that just ended has commands in flight and events behind
		// their commit; both settle by themselves, violations do not.
		if (rep.OK() && rep.Unconsumed == 0) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("verify: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
	if asJSON {
		if err := printJSON(out, rep); err != nil {
			return err
		}
	} else if err := printReport(out, rep); err != nil {
		return err
	}
	if !rep.OK() {
		return fmt.Errorf("%w: %d violations", errViolations, rep.ViolationsTotal)
	}
	return nil
}

func printReport(out io.Writer, rep *verify.Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", rep.Summary())
	checks := make([]string, 0, len(rep.ByCheck))
	for _, c := range verify.Checks() {
		checks = append(checks, fmt.Sprintf("%s %d", c, rep.ByCheck[c]))
	}
	fmt.Fprintf(&b, "violations by check: %s\n", strings.Join(checks, ", "))
	if rep.Unconsumed > 0 {
		fmt.Fprintf(&b, "note: %d offsets of the commands topic are not consumed yet; verify judges what was\n", rep.Unconsumed)
	}
	for _, v := range rep.Violations {
		fmt.Fprintf(&b, "  %s\n", v)
	}
	if n := rep.ViolationsTotal - len(rep.Violations); n > 0 {
		fmt.Fprintf(&b, "  ... and %d more (-max-violations)\n", n)
	}
	if _, err := io.WriteString(out, b.String()); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
