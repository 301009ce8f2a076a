package query

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
)

// Readiness is the answer of /readyz: each check is "ok" or what failed.
type Readiness struct {
	Status string            `json:"status"` // "ready" or "not_ready"
	Checks map[string]string `json:"checks"`
	Error  *ErrorDetail      `json:"error,omitempty"`
}

// healthz is liveness: the process serves HTTP. It checks nothing else, so a
// database outage never gets the API restarted in a loop.
func (s *Server) healthz(c *gin.Context) {
	writeJSON(c, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 only when PostgreSQL and Kafka answer, the events feed
// consumes, and Config.Ready (the processor's check) passes. Each check gets
// readyTimeout; they run in parallel so the probe takes the slowest one.
func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
	defer cancel()
	checks := map[string]func(context.Context) error{
		"postgres": s.private("postgres", s.db.ping),
		"kafka":    s.private("kafka", s.producer.Ping),
		"events_feed": func(context.Context) error {
			if !s.feedStarted() {
				return errors.New("not consuming " + s.names.Events + " yet")
			}
			return nil
		},
	}
	if s.cfg.Ready != nil {
		checks["processor"] = s.cfg.Ready
	}
	out := Readiness{Status: "ready", Checks: make(map[string]string, len(checks))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, check := range checks {
		wg.Go(func() {
			res := "ok"
			if err := check(ctx); err != nil {
				res = err.Error()
			}
			mu.Lock()
			out.Checks[name] = res
			mu.Unlock()
		})
	}
	wg.Wait()
	var failed []string
	for name, res := range out.Checks {
		if res != "ok" {
			failed = append(failed, name)
		}
	}
	if len(failed) == 0 {
		writeJSON(c, http.StatusOK, out)
		return
	}
	sort.Strings(failed)
	s.log.Debug("not ready", "checks", out.Checks)
	out.Status = "not_ready"
	out.Error = &ErrorDetail{Code: CodeNotReady, Message: "not ready: " + strings.Join(failed, ", ")}
	writeJSON(c, http.StatusServiceUnavailable, out)
}

// private hides a dependency's error from the unauthenticated probe (it can
// name hosts and ports) and logs it instead.
func (s *Server) private(name string, check func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		err := check(ctx)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, context.DeadlineExceeded):
			s.log.Warn("readiness check timed out", "check", name, "timeout", readyTimeout)
			return errors.New("timed out")
		default:
			s.log.Warn("readiness check failed", "check", name, "err", err)
			return errors.New("unreachable (the server log has the error)")
		}
	}
}
