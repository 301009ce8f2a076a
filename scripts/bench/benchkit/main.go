package benchkit

import (
	"context"
	"log"
	"os/signal"
	"syscall"
)

// Main is the main function of a benchmark program called name: it logs
// with the prefix "name: " and no timestamps, runs run with a context that
// SIGINT or SIGTERM cancels (so that a stopped program can shut down
// cleanly), and when run fails logs the error and exits with status 1.
func Main(name string, run func(context.Context) error) {
	log.SetFlags(0)
	log.SetPrefix(name + ": ")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		log.Fatal(err)
	}
}
