package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"

	"github.com/orderflow/orderflow/processor"
	"github.com/twmb/franz-go/pkg/kadm"
)

// killLoop SIGKILLs a random processor every killMin..killMax and starts it
// again shortly after, until ctx ends.
func (d *driver) killLoop(ctx context.Context) {
	rnd := rand.New(rand.NewPCG(d.cfg.seed, 2)) //nolint:gosec // a fault schedule
	for {
		wait := d.cfg.killMin + time.Duration(rnd.Int64N(int64(d.cfg.killMax-d.cfg.killMin)+1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		d.faultMu.Lock()
		if ctx.Err() == nil {
			d.killOne(ctx, "kill")
		}
		d.faultMu.Unlock()
	}
}

// killOne SIGKILLs a random running processor and starts it again.
func (d *driver) killOne(ctx context.Context, kind string) string {
	var running []*proc
	for _, p := range d.sup.procs {
		if d.sup.running(p) {
			running = append(running, p)
		}
	}
	if len(running) == 0 {
		d.fail("%s: no processor is running", kind)
		return ""
	}
	p := running[d.rnd.IntN(len(running))]
	if _, err := d.sup.signal(p, syscall.SIGKILL, 10*time.Second); err != nil {
		d.fail("%s %s: %v", kind, p.name, err)
		return p.name
	}
	d.mu.Lock()
	d.res.Faults.Kills++
	d.mu.Unlock()
	d.event(kind, "SIGKILL "+p.name)
	// Down for a moment: long enough that the group sees the member go
	// silent, as after a real crash and reschedule.
	select {
	case <-ctx.Done():
	case <-time.After(200*time.Millisecond + time.Duration(d.rnd.Int64N(int64(1300*time.Millisecond)))):
	}
	if err := d.sup.start(p); err != nil {
		d.fail("restart %s: %v", p.name, err)
	}
	d.event("restart", "started "+p.name+" again")
	return p.name
}

// outages crashes Kafka once and PostgreSQL once, when the load has gone a
// third and two thirds of the way.
func (d *driver) outages(ctx context.Context) {
	total := int64(d.cfg.commands + d.cfg.poison)
	plan := []struct {
		at           float64
		service      string
		stop         string
		killDuringIt bool
	}{
		{0.35, "kafka", d.cfg.kafkaStop, false},
		// A processor that starts while PostgreSQL is down must wait for
		// it, not exit.
		{0.65, "postgresql", d.cfg.pgStop, true},
	}
	for _, o := range plan {
		for d.produced.Load() < int64(o.at*float64(total)) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
		// Once begun, an outage runs to its end (the service back up)
		// even if the phase ends meanwhile.
		d.faultMu.Lock()
		d.outage(d.ctx, o.service, o.stop, o.killDuringIt)
		d.faultMu.Unlock()
	}
}

func (d *driver) outage(ctx context.Context, service, stop string, killDuringIt bool) {
	o := outage{Service: service}
	exitsBefore := len(d.sup.unexpectedExits())
	o.DownAt = time.Now().UTC()
	if err := d.shell(ctx, "stop "+service, stop); err != nil {
		d.fail("%v", err)
		return
	}
	d.event("outage", service+" crashed")
	notReady := func(ctx context.Context, p *proc) bool { return !ready(ctx, p) }
	took, err := d.sup.waitAll(ctx, 30*time.Second, "reporting not ready", notReady)
	o.AllNotReadyAfter = took.Round(time.Millisecond).String()
	if err != nil {
		d.fail("%s down: %v", service, err)
	} else {
		d.event("not-ready", fmt.Sprintf("every processor reports not ready on /readyz, %v after %s went down", took.Round(time.Millisecond), service))
	}
	if killDuringIt {
		o.RestartedDuringOutage = d.killOne(ctx, "kill-during-outage")
	}
	// Hold the service down for the outage; exits meanwhile are counted once
	// it is back.
	select {
	case <-ctx.Done():
	case <-time.After(d.cfg.outage - time.Since(o.DownAt)):
	}
	o.UpStartedAt = time.Now().UTC()
	if err := d.shell(ctx, "start "+service, d.cfg.stackUp); err != nil {
		d.fail("%v", err)
		return
	}
	o.UpAt = time.Now().UTC()
	d.event("recovered", fmt.Sprintf("%s answers again (down %v)", service, o.UpAt.Sub(o.DownAt).Round(time.Millisecond)))
	o.ExitedDuringOutage = len(d.sup.unexpectedExits()) - exitsBefore
	if o.ExitedDuringOutage > 0 {
		d.fail("%d processors exited by themselves while %s was down", o.ExitedDuringOutage, service)
	}
	took, err = d.sup.waitAll(ctx, 3*time.Minute, "ready", ready)
	o.AllReadyAfter = took.Round(time.Millisecond).String()
	if err != nil {
		d.fail("%s back: %v", service, err)
	} else {
		d.event("ready", fmt.Sprintf("every processor ready again %v after %s answered", took.Round(time.Millisecond), service))
	}
	// Resumed: a batch commits after the service came back.
	start := time.Now()
	for {
		var n int
		err := d.pool.QueryRow(ctx, `SELECT count(*) FROM transitions WHERE processed_at > $1`, o.UpAt).Scan(&n)
		if err == nil && n > 0 {
			o.ResumedAfter = time.Since(o.UpAt).Round(time.Millisecond).String()
			d.event("resumed", fmt.Sprintf("commands commit again %v after %s answered", time.Since(o.UpAt).Round(time.Millisecond), service))
			break
		}
		if time.Since(start) > 3*time.Minute || ctx.Err() != nil {
			d.fail("nothing committed within 3 minutes of %s coming back", service)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.mu.Lock()
	d.res.Outages = append(d.res.Outages, o)
	d.mu.Unlock()
}

// rollingRestart stops each processor in turn with SIGTERM, as a deploy
// does, starts it again and waits until it is ready before the next.
func (d *driver) rollingRestart(ctx context.Context) error {
	pause := func(t time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(t):
			return nil
		}
	}
	if err := pause(5 * time.Second); err != nil {
		return err
	}
	for _, p := range d.sup.procs {
		start := time.Now()
		st, err := d.sup.signal(p, syscall.SIGTERM, 40*time.Second)
		if err != nil {
			return err
		}
		if !st.Success() {
			d.fail("%s ended with %v on SIGTERM", p.name, st)
		}
		stopped := time.Since(start)
		if err := d.sup.start(p); err != nil {
			return err
		}
		took, err := d.sup.waitAll(ctx, 2*time.Minute, "ready", ready)
		if err != nil {
			return err
		}
		d.mu.Lock()
		d.res.Faults.GracefulRestarts++
		d.mu.Unlock()
		d.event("rolling", fmt.Sprintf("%s stopped in %v (SIGTERM), ready again %v after its start",
			p.name, stopped.Round(time.Millisecond), took.Round(time.Millisecond)))
		if err := pause(5 * time.Second); err != nil {
			return err
		}
	}
	return nil
}

// drain waits until the stored position of every partition is the end of
// the commands topic. A failed measurement means not drained yet: it is
// tried again, and reported if the wait runs out.
func (d *driver) drain(ctx context.Context, within time.Duration) error {
	start := time.Now()
	adm := kadm.NewClient(d.prod)
	var lastErr error
	for {
		behind, err := d.behind(ctx, adm)
		switch {
		case err != nil:
			if lastErr == nil {
				d.log.Warn("drain: measuring the lag failed; retrying", "err", err)
			}
		case behind == 0:
			d.event("drained", fmt.Sprintf("every command consumed, %v after the load ended", time.Since(start).Round(time.Millisecond)))
			return nil
		}
		lastErr = err
		if time.Since(start) > within {
			if lastErr != nil {
				return fmt.Errorf("commands still unconsumed %v after the load ended (last measurement: %w)", within, lastErr)
			}
			return fmt.Errorf("commands still unconsumed %v after the load ended", within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// behind is how many records of the commands topic lie past the stored
// positions, summed over the partitions.
func (d *driver) behind(ctx context.Context, adm *kadm.Client) (int64, error) {
	lags, err := processor.Lag(ctx, d.pool, adm, d.names.Commands)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, n := range lags {
		sum += n
	}
	return sum, nil
}
