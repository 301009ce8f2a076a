package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/orderflow/orderflow/query"
)

func init() {
	register(command{name: "get", summary: "show one order (from the API)", run: runGet})
}

func runGet(ctx context.Context, args []string, out io.Writer) error {
	var (
		api        apiFlags
		minVersion int64
		wait       time.Duration
	)
	f := newFlags("get")
	api.register(f)
	f.fs.Int64Var(&minVersion, "min-version", 0, "answer only once the order has reached this version")
	f.fs.DurationVar(&wait, "wait", 0, "how long the API may wait for -min-version (or for the order to exist)")
	pos, err := parseArgs(f, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: orderflow get [flags] ORDER_ID", errUsage)
	}
	c, err := api.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	if minVersion > 0 {
		q.Set("min_version", strconv.FormatInt(minVersion, 10))
	}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	var o query.Order
	if err := c.get(ctx, "/v1/orders/"+url.PathEscape(pos[0]), q, &o); err != nil {
		return notFoundIs(err, fmt.Sprintf("order %q not found", pos[0]))
	}
	if api.json {
		return printJSON(out, o)
	}
	allowed := make([]string, len(o.AllowedActions))
	for i, a := range o.AllowedActions {
		allowed[i] = string(a)
	}
	tw := newTable(out)
	tw.row("order\t%s\n", o.OrderID)
	tw.row("state\t%s\n", o.State)
	tw.row("version\t%d\n", o.Version)
	tw.row("created\t%s\n", cliTime(o.CreatedAt))
	tw.row("updated\t%s\n", cliTime(o.UpdatedAt))
	if len(allowed) == 0 {
		tw.row("allowed\t(none: %s is terminal)\n", o.State)
	} else {
		tw.row("allowed\t%s\n", strings.Join(allowed, ", "))
	}
	return tw.flush()
}
