package processor_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orderflow/orderflow/scripts/testenv"
	"github.com/twmb/franz-go/pkg/kgo"
)

// proc is an `orderflow serve --role processor` process of the bundle's
// deployment.
type proc struct {
	cmd  *exec.Cmd
	log  string        // path of its output
	done chan struct{} // closed when the process has exited
	err  error         // how it exited; read after done
}

// spawn starts a processor process; env is added to its environment last,
// so it overrides the settings here (os/exec keeps the last value of a key).
func (b *bundle) spawn(t *testing.T, name string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(testenv.OrderflowBinary(t), "serve", "--role", "processor")
	cmd.Env = append(os.Environ(),
		"KAFKA_BROKERS="+strings.Join(testenv.Kafka(t), ","),
		"DATABASE_URL="+b.dbURL,
		"ORDERFLOW_TOPIC_PREFIX="+strings.TrimSuffix(b.names.Commands, "orders.commands"),
		"ORDERFLOW_GROUP="+b.group,
		fmt.Sprintf("ORDERFLOW_PARTITIONS=%d", testPartitions),
		"ORDERFLOW_HTTP_ADDR=127.0.0.1:0",
		"ORDERFLOW_MAX_BATCH=500",
		"ORDERFLOW_LOG_LEVEL=warn",
	)
	cmd.Env = append(cmd.Env, env...)
	logPath := filepath.Join(t.TempDir(), name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); _ = logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			if out, err := os.ReadFile(logPath); err == nil {
				t.Logf("%s log:\n%s", name, out)
			}
		}
	})
	return p
}

// lifecycleStream produces n orders × (create, pay, pay again, ship, deliver)
// in paced chunks, so that faults land in the middle of it. It produces on
// a goroutine of its own, which must not call t.Fatal: done gives nil once
// all is produced, or the error that stopped it.
func (b *bundle) lifecycleStream(orders int) (done <-chan error) {
	ch := make(chan error, 1)
	go func() {
		ch <- func() error {
			steps := []string{"create", "pay", "pay", "ship", "deliver"}
			for _, action := range steps {
				var recs []*kgo.Record
				for o := range orders {
					cid := id("%d-%s", o, action) // the second pay repeats the first's id: a retry
					recs = append(recs, b.command(cmdSpec{id: cid, order: id("order-%d", o), action: action}))
					if len(recs) == 1000 {
						if err := b.produce(recs...); err != nil {
							return err
						}
						recs = recs[:0]
						time.Sleep(20 * time.Millisecond) // pacing, not synchronisation
					}
				}
				if err := b.produce(recs...); err != nil {
					return err
				}
			}
			return nil
		}()
	}()
	return ch
}

// streamed waits for a lifecycleStream to end and fails the test if it
// could not produce everything.
func streamed(t *testing.T, done <-chan error) {
	t.Helper()
	if err := <-done; err != nil {
		t.Fatalf("lifecycle stream: %v", err)
	}
}

func (b *bundle) waitOutcomes(t *testing.T, atLeast int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		var n int
		if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM transitions`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n >= atLeast {
			return
		}
		if !sleep(ctx, 20*time.Millisecond) {
			t.Fatalf("only %d outcomes, waited for %d", n, atLeast)
		}
	}
}

func (b *bundle) checkAllDelivered(t *testing.T, orders int) {
	t.Helper()
	var n int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM orders WHERE state = 'Delivered' AND version = 4`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != orders {
		t.Fatalf("%d of %d orders Delivered at version 4", n, orders)
	}
}

func TestKilledProcessorLosesAndDoublesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const orders = 4000 // × 5 = 20,000 commands
	first := b.spawn(t, "first")
	done := b.lifecycleStream(orders)
	b.waitOutcomes(t, 4000)
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.done
	b.spawn(t, "second")
	streamed(t, done)
	rep := b.waitProcessed(t, 3*time.Minute)
	if rep.Outcomes != orders*4 || rep.Events != orders*4 || rep.CommandsRead != orders*5 {
		t.Fatalf("after SIGKILL: %s; want %d outcomes and events of %d commands", rep.Summary(), orders*4, orders*5)
	}
	b.checkAllDelivered(t, orders)
}

func TestSecondProcessorTakesOverStoppedOne(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const orders = 2000
	one := b.spawn(t, "one")
	b.spawn(t, "two")
	done := b.lifecycleStream(orders)
	b.waitOutcomes(t, 2000)
	if err := one.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-one.done:
		if one.err != nil {
			t.Fatalf("processor one did not stop cleanly on SIGTERM: %v", one.err)
		}
	case <-time.After(time.Minute):
		t.Fatal("processor one did not stop within a minute of SIGTERM")
	}
	streamed(t, done)
	rep := b.waitProcessed(t, 3*time.Minute)
	if rep.Outcomes != orders*4 || rep.Events != orders*4 {
		t.Fatalf("after takeover: %s", rep.Summary())
	}
	b.checkAllDelivered(t, orders)
}
