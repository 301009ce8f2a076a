package main

import (
	"os"
	"runtime/debug"
	"testing"
)

// TestGCPercent: serve's GC target applies only when the operator did not
// set GOGC.
func TestGCPercent(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	env, had := os.LookupEnv("GOGC")
	t.Cleanup(func() {
		if had {
			_ = os.Setenv("GOGC", env)
		} else {
			_ = os.Unsetenv("GOGC")
		}
	})

	_ = os.Unsetenv("GOGC")
	setGCPercent()
	if got := debug.SetGCPercent(100); got != serveGOGC {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, serveGOGC)
	}

	_ = os.Setenv("GOGC", "100") // what the runtime applied at start
	setGCPercent()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC=100: GC percent %d, want the operator's 100", got)
	}
}
