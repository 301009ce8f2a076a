package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/scripts/bench/benchkit"
)

// The CPU table shows the broker's GC pauses from cpusnap's file, and a
// dash for a window measured without the GC log.
func TestCPUTableShowsKafkaGCPauses(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("cpu-e2e-1000.txt", "kafka = 0.40\npostgres = 0.20\ncores = 2\nkafka gc pauses = 3\nkafka gc pause ms = 41.6\n")
	write("cpu-read-alone.txt", "kafka = 0.01\ncores = 2\n")
	r := &runData{dir: dir, byName: map[string]*benchkit.Result{
		"e2e-1000":   {Name: "e2e-1000", Kind: "e2e", OfferedRate: 1000, Throughput: 990},
		"read-alone": {Name: "read-alone", Kind: "read", OfferedRate: 5000, Throughput: 5000},
	}}
	var b strings.Builder
	r.cpuTable(func(format string, a ...any) { b.WriteString(strings.TrimSpace(fmt.Sprintf(format, a...)) + "\n") })
	var e2e, read string
	for line := range strings.Lines(b.String()) {
		switch {
		case strings.HasPrefix(line, "| e2e-1000 |"):
			e2e = line
		case strings.HasPrefix(line, "| read-alone |"):
			read = line
		}
	}
	if !strings.Contains(e2e, "| 3 / 42 ms |") {
		t.Errorf("e2e-1000 row %q lacks its 3 pauses, 42 ms", e2e)
	}
	if !strings.Contains(read, "| – |") {
		t.Errorf("read-alone row %q: want – where no GC log was read", read)
	}
}
