package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"github.com/orderflow/orderflow/processor/machine"
	"github.com/orderflow/orderflow/query"
)

func init() {
	register(command{name: "list", summary: "list orders, optionally in one state (from the API)", run: runList})
}

func runList(ctx context.Context, args []string, out io.Writer) error {
	var (
		api    apiFlags
		state  string
		limit  int
		cursor string
	)
	f := newFlags("list")
	api.register(f)
	f.fs.StringVar(&state, "state", "", "only orders in this state (Created, Paid, Shipped, Delivered, Cancelled, Returned)")
	f.fs.IntVar(&limit, "limit", query.DefaultLimit, "show at most this many orders (0: all)")
	f.fs.StringVar(&cursor, "cursor", "", "continue a listing where a previous one stopped")
	pos, err := parseArgs(f, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || limit < 0 {
		return fmt.Errorf("%w: orderflow list [-state STATE] [-limit N] [-cursor C] [flags]", errUsage)
	}
	if state != "" {
		if _, err := machine.ParseState(state); err != nil {
			return fmt.Errorf("%w: -state: %w", errUsage, err)
		}
	}
	c, err := api.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	result := query.OrderPage{Orders: []query.Order{}}
	next := &cursor
	for {
		if *next != "" {
			q.Set("cursor", *next)
		}
		q.Set("limit", strconv.Itoa(pageSize(limit, len(result.Orders))))
		var page query.OrderPage
		if err := c.get(ctx, "/v1/orders", q, &page); err != nil {
			return err
		}
		result.Orders = append(result.Orders, page.Orders...)
		next = page.NextCursor
		if next == nil || (limit > 0 && len(result.Orders) >= limit) {
			break
		}
	}
	result.NextCursor = next
	if api.json {
		return printJSON(out, result)
	}
	tw := newTable(out)
	tw.row("ORDER\tSTATE\tVERSION\tUPDATED\n")
	for _, o := range result.Orders {
		tw.row("%s\t%s\t%d\t%s\n", o.OrderID, o.State, o.Version, cliTime(o.UpdatedAt))
	}
	if next != nil {
		tw.row("(more: add -cursor %s)\n", *next)
	}
	return tw.flush()
}
