package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"github.com/orderflow/orderflow/query"
	"github.com/orderflow/orderflow/topics"
)

func init() {
	register(command{name: "history", summary: "show an order's outcomes, oldest first (from the API)", run: runHistory})
}

func runHistory(ctx context.Context, args []string, out io.Writer) error {
	var (
		api   apiFlags
		limit int
	)
	f := newFlags("history")
	api.register(f)
	f.fs.IntVar(&limit, "limit", 0, "show at most this many outcomes (0: all)")
	pos, err := parseArgs(f, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || limit < 0 {
		return fmt.Errorf("%w: orderflow history [-limit N] [flags] ORDER_ID", errUsage)
	}
	c, err := api.client()
	if err != nil {
		return err
	}
	var events []topics.Event
	q := url.Values{}
	for {
		q.Set("limit", strconv.Itoa(pageSize(limit, len(events))))
		var page query.HistoryPage
		if err := c.get(ctx, "/v1/orders/"+url.PathEscape(pos[0])+"/history", q, &page); err != nil {
			return notFoundIs(err, fmt.Sprintf("order %q has no history", pos[0]))
		}
		events = append(events, page.Events...)
		if page.NextCursor == nil || (limit > 0 && len(events) >= limit) {
			break
		}
		q.Set("cursor", *page.NextCursor)
	}
	if api.json {
		return printJSON(out, events)
	}
	tw := newTable(out)
	tw.row("VERSION\tOUTCOME\tACTION\tFROM\tTO\tREASON\tPROCESSED\tCOMMAND\n")
	for _, e := range events {
		tw.row("%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Version, e.Outcome, e.Action,
			orDash(e.FromState), orDash(e.ToState), orDash(e.Reason), cliTime(e.ProcessedAt), e.CommandID)
	}
	return tw.flush()
}

// pageSize asks for what is still wanted, in the largest pages the API gives.
func pageSize(limit, have int) int {
	if limit == 0 {
		return query.MaxLimit
	}
	return min(limit-have, query.MaxLimit)
}
