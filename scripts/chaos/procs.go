package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one `orderflow serve --role processor` process slot: it is started,
// killed and restarted many times over a run.
type proc struct {
	name string
	addr string // its HTTP address: /readyz

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{} // closed when the current process exited
	expected bool          // the driver stopped it on purpose
	starts   int
}

// supervisor runs the processor slots and notices any exit it did not cause:
// a processor must never exit by itself, whatever fails around it.
type supervisor struct {
	d     *driver
	procs []*proc
	env   []string

	mu         sync.Mutex
	unexpected []string
}

func newSupervisor(d *driver, env []string) *supervisor {
	s := &supervisor{d: d, env: env}
	for i := range d.cfg.processors {
		s.procs = append(s.procs, &proc{
			name: fmt.Sprintf("p%d", i+1),
			addr: fmt.Sprintf("127.0.0.1:%d", d.cfg.httpBase+i),
		})
	}
	return s
}

// start starts p's next process.
func (s *supervisor) start(p *proc) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s is still running", p.name)
		}
	}
	p.starts++
	logf, err := os.OpenFile(filepath.Join(s.d.runDir, p.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("log of %s: %w", p.name, err)
	}
	fmt.Fprintf(logf, "\n==== start %d of %s at %s ====\n", p.starts, p.name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(s.d.cfg.bin, "serve", "--role", "processor")
	cmd.Env = append(append([]string{}, s.env...), "ORDERFLOW_HTTP_ADDR="+p.addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.expected = cmd, done, false
	go func() {
		err := cmd.Wait()
		_ = logf.Close()
		p.mu.Lock()
		expected := p.expected
		p.mu.Unlock()
		close(done)
		if !expected {
			s.exitedByItself(p, err)
		}
	}()
	return nil
}

// exitedByItself records the exit and starts the slot again, so one failure
// does not end the run; the run fails at the end.
func (s *supervisor) exitedByItself(p *proc, err error) {
	msg := fmt.Sprintf("%s exited by itself at %s: %v", p.name, time.Now().UTC().Format(time.RFC3339Nano), err)
	s.mu.Lock()
	s.unexpected = append(s.unexpected, msg)
	s.mu.Unlock()
	s.d.event("unexpected-exit", msg)
	if s.d.ctx.Err() != nil {
		return
	}
	time.Sleep(time.Second) // not a crash loop of our own making
	if err := s.start(p); err != nil {
		s.d.event("error", err.Error())
	}
}

func (s *supervisor) unexpectedExits() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.unexpected...)
}

// signal sends sig to p's process and waits for it to exit, at most within;
// it returns how the process ended.
func (s *supervisor) signal(p *proc, sig syscall.Signal, within time.Duration) (*os.ProcessState, error) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	if cmd == nil || done == nil {
		p.mu.Unlock()
		return nil, fmt.Errorf("%s never started", p.name)
	}
	select {
	case <-done:
		p.mu.Unlock()
		return nil, fmt.Errorf("%s is not running", p.name)
	default:
	}
	p.expected = true
	p.mu.Unlock()
	if err := cmd.Process.Signal(sig); err != nil {
		return nil, fmt.Errorf("signal %s: %w", p.name, err)
	}
	select {
	case <-done:
	case <-time.After(within):
		_ = cmd.Process.Kill()
		<-done
		return nil, fmt.Errorf("%s did not exit within %v of %v", p.name, within, sig)
	}
	return cmd.ProcessState, nil
}

func (s *supervisor) running(p *proc) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stopAll stops every process gracefully; it is also the cleanup on error.
func (s *supervisor) stopAll(within time.Duration) []string {
	var (
		mu   sync.Mutex
		errs []string
		wg   sync.WaitGroup
	)
	for _, p := range s.procs {
		if !s.running(p) {
			continue
		}
		wg.Go(func() {
			st, err := s.signal(p, syscall.SIGTERM, within)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err.Error())
			case !st.Success():
				errs = append(errs, fmt.Sprintf("%s ended with %v after SIGTERM", p.name, st))
			}
		})
	}
	wg.Wait()
	return errs
}

var readyClient = &http.Client{Timeout: 3 * time.Second}

// ready asks p's /readyz; a process that does not answer is not ready.
func ready(ctx context.Context, p *proc) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/readyz", nil)
	if err != nil {
		return false
	}
	res, err := readyClient.Do(req)
	if err != nil {
		return false
	}
	_ = res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// waitAll polls until cond holds for every running process, and returns how
// long that took.
func (s *supervisor) waitAll(ctx context.Context, within time.Duration, what string, cond func(context.Context, *proc) bool) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(within)
	for {
		all := true
		for _, p := range s.procs {
			if s.running(p) && !cond(ctx, p) {
				all = false
				break
			}
		}
		if all {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			var names []string
			for _, p := range s.procs {
				if s.running(p) && !cond(ctx, p) {
					names = append(names, p.name)
				}
			}
			return time.Since(start), fmt.Errorf("not %s within %v: %s", what, within, strings.Join(names, ", "))
		}
		select {
		case <-ctx.Done():
			return time.Since(start), fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
