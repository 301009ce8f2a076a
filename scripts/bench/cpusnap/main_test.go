package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Pauses are counted by the time they ended, inside the window only, and
// concurrent phases and other lines are not pauses.
func TestGCPauses(t *testing.T) {
	log := `[2026-11-26T07:40:00.900+0000][10.000s] GC(1) Pause Young (Normal) (G1 Evacuation Pause) 300M->50M(1024M) 4.000ms
[2026-11-26T07:40:01.100+0000][10.200s] GC(2) Pause Young (Normal) (G1 Evacuation Pause) 300M->51M(1024M) 9.876ms
[2026-11-26T07:40:01.200+0000][10.300s] GC(3) Concurrent Mark Cycle 25.000ms
[2026-11-26T07:40:01.300+0000][10.400s] GC(3) Pause Remark 60M->60M(1024M) 1.124ms
[2026-11-26T07:40:01.400+0000][10.500s] Using G1
[2026-11-26T07:40:02.000+0000][11.100s] GC(4) Pause Young (Normal) (G1 Evacuation Pause) 300M->50M(1024M) 7.000ms
garbage line
`
	path := filepath.Join(t.TempDir(), "gc.log")
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 11, 26, 7, 40, 1, 0, time.UTC)
	n, ms, err := gcPauses(path, from, from.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 || ms < 10.99 || ms > 11.01 {
		t.Errorf("got %d pauses, %.3f ms; want 2 pauses, 11.000 ms (GC(2) and the remark)", n, ms)
	}
	if _, _, err := gcPauses(filepath.Join(t.TempDir(), "none"), from, from); err == nil {
		t.Error("a missing log gave no error")
	}
}
