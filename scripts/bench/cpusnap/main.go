// Command cpusnap measures who uses the CPUs during one benchmark window:
// this stack's Kafka, this stack's PostgreSQL (backends of the benchmark
// databases plus the shared background processes), orderflow serve, the
// load generators, and everything else on the machine (other people's
// work). On a 2-core machine that shares everything, this says what is in
// the way of more throughput. It samples /proc once a second and writes
// average cores per group as key=value lines. Given the broker's GC log, it
// also counts the broker's stop-the-world pauses in the window: with both
// cores in the collector, a pause stalls everything on the machine.
//
//	cpusnap -bin .stack/bench/run-1/bin -kafka-pid 123 -postmaster-pid 456 -kafka-gc-log .stack/kafka/logs/gc.log \
//		-skip 3s -duration 17s -out cpu-e2e-5000.txt
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("cpusnap: ")
	var (
		bin, dbPrefix, out string
		gcLog              string
		kafkaPid, pgPid    int
		skip, duration     time.Duration
	)
	flag.StringVar(&bin, "bin", "", "folder of the benchmark's binaries (orderflow, relay, ...)")
	flag.IntVar(&kafkaPid, "kafka-pid", 0, "pid of the stack's Kafka broker")
	flag.IntVar(&pgPid, "postmaster-pid", 0, "pid of the stack's PostgreSQL postmaster")
	flag.StringVar(&dbPrefix, "db-prefix", "orderflow_bench", "backends of databases with this prefix count as the benchmark's")
	flag.DurationVar(&skip, "skip", 0, "wait this long before measuring (the run's warm-up)")
	flag.DurationVar(&duration, "duration", 10*time.Second, "how long to measure")
	flag.StringVar(&gcLog, "kafka-gc-log", "", "the broker's GC log (-Xlog:gc with the time decorator), for its pauses in the window")
	flag.StringVar(&out, "out", "-", "result file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	s := sampler{bin: bin, kafka: kafkaPid, postmaster: pgPid, dbPrefix: dbPrefix, last: map[int]procTicks{}, sum: map[string]float64{}}
	select {
	case <-time.After(skip):
	case <-ctx.Done():
		return
	}
	start := time.Now()
	busy0, total0 := machineTicks()
	s.sample(true)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	deadline := time.After(duration)
loop:
	for {
		select {
		case <-t.C:
			s.sample(false)
		case <-deadline:
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	s.sample(false)
	busy1, total1 := machineTicks()
	end := time.Now()
	secs := end.Sub(start).Seconds()
	cores := float64(total1-total0) / float64(ticksPerSec) / secs // online CPUs, as /proc/stat sees them
	var b strings.Builder
	known := 0.0
	for _, g := range []string{"kafka", "postgres", "orderflow serve", "load generators", "baselines"} {
		v := s.sum[g] / ticksPerSec / secs
		known += v
		fmt.Fprintf(&b, "%s = %.2f\n", g, v)
	}
	used := float64(busy1-busy0) / ticksPerSec / secs
	fmt.Fprintf(&b, "other processes = %.2f\n", max(used-known, 0))
	fmt.Fprintf(&b, "idle = %.2f\n", max(cores-used, 0))
	fmt.Fprintf(&b, "cores = %.0f\n", cores)
	if gcLog != "" {
		if n, ms, err := gcPauses(gcLog, start, end); err != nil {
			log.Printf("kafka gc log: %v", err)
		} else {
			fmt.Fprintf(&b, "kafka gc pauses = %d\nkafka gc pause ms = %.1f\n", n, ms)
		}
	}
	if out == "-" || out == "" {
		fmt.Print(b.String())
		return
	}
	if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
		log.Print(err)
		t.Stop()
		os.Exit(1) //nolint:gocritic // nothing else is deferred that matters
	}
}

// ticksPerSec is USER_HZ, 100 on every Linux this runs on.
const ticksPerSec = 100

type procTicks struct {
	ticks uint64
	group string
}

type sampler struct {
	bin        string
	kafka      int
	postmaster int
	dbPrefix   string
	last       map[int]procTicks
	sum        map[string]float64
}

// sample adds every process's ticks since the previous sample to its
// group. A process seen for the first time counts from its start only when
// it started after measuring began (first is false), so long-running ones
// count just the window.
func (s *sampler) sample(first bool) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	seen := map[int]bool{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ticks, ppid, ok := stat(pid)
		if !ok {
			continue
		}
		seen[pid] = true
		prev, known := s.last[pid]
		if !known {
			prev = procTicks{group: s.group(pid, ppid)}
			if first {
				prev.ticks = ticks
			}
		}
		if prev.group != "" && ticks >= prev.ticks {
			s.sum[prev.group] += float64(ticks - prev.ticks)
		}
		s.last[pid] = procTicks{ticks: ticks, group: prev.group}
	}
	for pid := range s.last {
		if !seen[pid] {
			delete(s.last, pid)
		}
	}
}

func (s *sampler) group(pid, ppid int) string {
	if pid == s.kafka {
		return "kafka"
	}
	cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	args := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
	if s.postmaster != 0 && (pid == s.postmaster || ppid == s.postmaster) {
		// "postgres: user db host(port) state" for backends; background
		// processes (WAL writer, checkpointer...) serve every database.
		f := strings.Fields(args[0])
		if len(f) >= 3 && f[0] == "postgres:" && !strings.Contains(f[2], "(") && !isAux(f[1]) {
			if strings.HasPrefix(f[2], s.dbPrefix) {
				return "postgres"
			}
			return ""
		}
		return "postgres"
	}
	if s.bin == "" {
		return ""
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil || filepath.Dir(exe) != filepath.Clean(s.bin) {
		return ""
	}
	switch name := filepath.Base(exe); {
	case name == "orderflow" && slices.Contains(args, "serve"):
		return "orderflow serve"
	case name == "profile":
		return "orderflow serve" // the processor, in-process
	case name == "orderflow" || name == "readload":
		return "load generators"
	case name == "cpusnap":
		return ""
	default:
		return "baselines"
	}
}

func isAux(word string) bool {
	switch word {
	case "checkpointer", "background", "walwriter", "autovacuum", "logical", "archiver", "stats", "startup", "walreceiver", "walsender":
		return true
	}
	return false
}

// stat returns a process's user+system ticks and its parent.
func stat(pid int) (uint64, int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// The command name is in parentheses and may hold spaces: split after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, false
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return ut + st, ppid, true
}

// machineTicks returns busy and total ticks of all CPUs from /proc/stat.
func machineTicks() (busy, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)[1:]
	for i, v := range f {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i >= 8 {
			break // guest time is already in user
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// gcPauses counts the stop-the-world pauses that a JVM's -Xlog:gc log
// records as ending in [from, to), and sums their length. A line looks like
//
//	[2026-11-26T07:40:01.123+0000][12.345s] GC(12) Pause Young (Normal) (G1 Evacuation Pause) 300M->50M(1024M) 9.876ms
//
// (the concurrent phases of G1 are logged as "Concurrent ...", not counted).
func gcPauses(path string, from, to time.Time) (n int, ms float64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		at, d, ok := parsePause(line)
		if ok && !at.Before(from) && at.Before(to) {
			n++
			ms += d
		}
	}
	return n, ms, nil
}

// parsePause reads the end time and the milliseconds of a pause line.
func parsePause(line string) (time.Time, float64, bool) {
	if !strings.HasPrefix(line, "[") || !strings.Contains(line, " Pause ") {
		return time.Time{}, 0, false
	}
	stamp, _, ok := strings.Cut(line[1:], "]")
	if !ok {
		return time.Time{}, 0, false
	}
	at, err := time.Parse("2006-01-02T15:04:05.000-0700", stamp)
	if err != nil {
		return time.Time{}, 0, false
	}
	f := strings.Fields(line)
	last := f[len(f)-1]
	if !strings.HasSuffix(last, "ms") {
		return time.Time{}, 0, false
	}
	d, err := strconv.ParseFloat(strings.TrimSuffix(last, "ms"), 64)
	if err != nil {
		return time.Time{}, 0, false
	}
	return at, d, true
}
