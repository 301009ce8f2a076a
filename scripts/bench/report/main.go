// Command report turns one `make bench` run (a folder of JSON results and
// text files written by scripts/bench.sh) into docs/benchmarks.md and its
// SVG plots. It measures nothing itself.
//
//	report -results .stack/bench/run-123 -docs docs
package main

import (
	"bufio"
	"cmp"
	"flag"
	"fmt"
	"log"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/orderflow/orderflow/scripts/bench/benchkit"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("report: ")
	results := flag.String("results", "", "folder of one run's results")
	docs := flag.String("docs", "docs", "where benchmarks.md and the plots go")
	flag.Parse()
	if err := generate(*results, *docs); err != nil {
		log.Fatal(err)
	}
}

// runData is everything one run left behind.
type runData struct {
	dir    string
	byName map[string]*benchkit.Result
	all    []*benchkit.Result // one per figure: repeated passes merged
	passes []*benchkit.Result // the repeated passes themselves
	// medianOf maps a merged figure's median pass to the figure's name.
	medianOf map[string]string
	machine  [][2]string
	settings [][2]string
}

func generate(dir, docs string) error {
	if dir == "" {
		return fmt.Errorf("-results is required")
	}
	r := &runData{dir: dir, byName: map[string]*benchkit.Result{}, medianOf: map[string]string{}}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return fmt.Errorf("list results: %w", err)
	}
	for _, f := range files {
		res, err := benchkit.ReadResult(f)
		if err != nil {
			return err
		}
		if passRe.MatchString(res.Name) {
			r.passes = append(r.passes, res)
			continue
		}
		r.byName[res.Name] = res
		r.all = append(r.all, res)
	}
	r.mergePasses()
	r.machine = readPairs(filepath.Join(dir, "machine.txt"))
	r.settings = readPairs(filepath.Join(dir, "settings.txt"))
	md := r.markdown()
	if err := os.WriteFile(filepath.Join(docs, "benchmarks.md"), []byte(md), 0o644); err != nil {
		return fmt.Errorf("write doc: %w", err)
	}
	for name, c := range map[string]*chart{"bench-latency.svg": r.latencyChart(), "bench-batch.svg": r.batchChart()} {
		if err := os.WriteFile(filepath.Join(docs, name), []byte(c.svg()), 0o644); err != nil {
			return fmt.Errorf("write plot: %w", err)
		}
	}
	log.Printf("wrote %s/benchmarks.md, bench-latency.svg, bench-batch.svg from %d results", docs, len(r.all))
	return nil
}

// passRe matches a repeated pass of a figure: e2e-5000-r2.
var passRe = regexp.MustCompile(`^(.+)-r(\d+)$`)

// figureName maps the name in a per-run file (cpu-*.txt, metrics-*.txt) to
// the figure it belongs to: a repeated pass becomes its figure's name when it
// is the median pass that stands for the figure, and ok is false for the
// figure's other passes.
func (r *runData) figureName(name string) (figure string, ok bool) {
	if !passRe.MatchString(name) {
		return name, true
	}
	figure, ok = r.medianOf[name]
	return figure, ok
}

// mergePasses turns the repeated passes of each figure into one: the pass
// with the median p99 stands for it, it is sustained when most passes
// were, and the exactly-once counters add up over all passes.
func (r *runData) mergePasses() {
	groups := map[string][]*benchkit.Result{}
	for _, res := range r.passes {
		base := passRe.FindStringSubmatch(res.Name)[1]
		groups[base] = append(groups[base], res)
	}
	for base, ps := range groups {
		slices.SortFunc(ps, func(a, b *benchkit.Result) int { return cmp.Compare(a.Latency.P99, b.Latency.P99) })
		med := ps[len(ps)/2]
		m := *med
		m.Name = base
		m.Notes = maps.Clone(med.Notes)
		if m.Notes == nil {
			m.Notes = map[string]string{}
		}
		m.Missing, m.DupEvents, m.Unexpected = 0, 0, 0
		kept := 0
		var p99s, rates []string
		byPass := slices.Clone(ps)
		slices.SortFunc(byPass, func(a, b *benchkit.Result) int { return cmp.Compare(a.Name, b.Name) })
		for _, p := range byPass {
			if p.Sustained {
				kept++
			}
			m.Missing += p.Missing
			m.DupEvents += p.DupEvents
			m.Unexpected += p.Unexpected
			p99s = append(p99s, ms(p.Latency.P99))
			rates = append(rates, f0(p.Throughput))
		}
		m.Sustained = kept*2 > len(ps)
		m.Notes["passes"] = fmt.Sprintf("median of %d passes (kept up in %d): p99 %s ms; %s/s", len(ps), kept,
			strings.Join(p99s, " / "), strings.Join(rates, " / "))
		r.medianOf[med.Name] = base
		r.byName[base] = &m
		r.all = append(r.all, &m)
	}
}

func readPairs(path string) [][2]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }()
	var out [][2]string
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), "=")
		if ok {
			out = append(out, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
		}
	}
	return out
}

func pair(ps [][2]string, k string) string {
	for _, p := range ps {
		if p[0] == k {
			return p[1]
		}
	}
	return ""
}

func readText(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimRight(string(b), "\n")
}

// e2eRates are the end-to-end rate points, ascending.
func (r *runData) e2eRates(prefix string) []*benchkit.Result {
	var out []*benchkit.Result
	re := regexp.MustCompile("^" + regexp.QuoteMeta(prefix) + `(\d+)$`)
	for _, res := range r.all {
		if re.MatchString(res.Name) {
			out = append(out, res)
		}
	}
	slices.SortFunc(out, func(a, b *benchkit.Result) int { return cmp.Compare(a.OfferedRate, b.OfferedRate) })
	return out
}

// maxSustained is the highest offered rate that was sustained.
func maxSustained(rs []*benchkit.Result) *benchkit.Result {
	var best *benchkit.Result
	for _, res := range rs {
		if res.Sustained && (best == nil || res.OfferedRate > best.OfferedRate) {
			best = res
		}
	}
	return best
}

func (r *runData) b2Sizes() []*benchkit.Result {
	var out []*benchkit.Result
	for _, res := range r.all {
		if res.Kind == "b2" || res.Kind == "b2s" {
			out = append(out, res)
		}
	}
	slices.SortFunc(out, func(a, b *benchkit.Result) int { return cmp.Compare(a.BatchSize, b.BatchSize) })
	return out
}

func f0(v float64) string {
	if v == 0 {
		return "–"
	}
	return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
}

func ms(v float64) string {
	switch {
	case v == 0:
		return "–"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case v < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "–"
	}
	return strconv.FormatFloat(a/b, 'f', 2, 64) + "×"
}

func yes(ok bool) string {
	if ok {
		return "**met**"
	}
	return "not met"
}

// describe says in words what a result measured.
func describe(res *benchkit.Result) string {
	switch res.Kind {
	case "e2e":
		s := fmt.Sprintf("orderflow end to end, %s/s offered", f0(res.OfferedRate))
		if passes := res.Notes["passes"]; passes != "" {
			s += "; " + passes
		}
		if pre := res.Notes["preloaded"]; pre != "" && pre != "0" {
			s += ", " + pre + " live orders"
		}
		if parts := res.Notes["partitions"]; parts != "" && parts != "12" {
			s += ", " + parts + " partitions"
		}
		if hot := res.Notes["hot"]; hot != "" && hot != "0" {
			s += ", hot keys (" + hot + " of commands on 1 % of orders)"
		}
		return s
	case "burst":
		return fmt.Sprintf("orderflow burst: drain %d queued commands", res.Sent)
	case "b1":
		return fmt.Sprintf("B1 Kafka relay (EOS), %s/s offered", f0(res.OfferedRate))
	case "b1-burst":
		return fmt.Sprintf("B1 Kafka relay burst: drain %d queued commands", res.Sent)
	case "b2":
		return fmt.Sprintf("B2 processor SQL, batches of %d, %d writers", res.BatchSize, res.Concurrency)
	case "b2s":
		return fmt.Sprintf("B2s processor SQL, 1 transition per transaction, %d writers", res.Concurrency)
	case "ref":
		return fmt.Sprintf("REF REST + optimistic locking, %d clients closed loop", res.Concurrency)
	case "read":
		if res.Name == "read-alone" {
			return fmt.Sprintf("GET /v1/orders/{id} open loop %s/s, no transitions running", f0(res.OfferedRate))
		}
		return fmt.Sprintf("GET /v1/orders/{id} open loop %s/s, while 1,000 transitions/s run", f0(res.OfferedRate))
	}
	return res.Kind
}

// readParts describes the split of a read run into the first reads of an
// order (mostly misses of the API's cache, answered by PostgreSQL) and
// repeats (hits).
func readParts(res *benchkit.Result) string {
	first, repeat := res.Parts[benchkit.PartFirstRead], res.Parts[benchkit.PartRepeatRead]
	if first.Count == 0 && repeat.Count == 0 {
		return ""
	}
	out := fmt.Sprintf(" (first reads of an order, mostly cache misses: %d, p99 %s ms; repeats, cache hits: %d, p99 %s ms",
		first.Count, ms(first.P99), repeat.Count, ms(repeat.P99))
	if lag, ok := res.Parts[benchkit.PartSendLag]; ok {
		out += fmt.Sprintf("; the generator's own delay in sending, counted in: p50 %s, p99 %s ms", ms(lag.P50), ms(lag.P99))
	}
	return out + ")"
}

func (r *runData) markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	get := func(n string) *benchkit.Result {
		if res := r.byName[n]; res != nil {
			return res
		}
		return &benchkit.Result{}
	}
	e2e := r.e2eRates("e2e-")
	m1 := r.e2eRates("e2e-1m-")
	best := maxSustained(e2e)
	if best == nil {
		best = &benchkit.Result{}
	}
	b1 := get("b1-burst")
	b2 := get("b2-batch-1000")
	ref := get("ref")
	burst := get("burst")

	p("# Benchmarks")
	p("")
	p("<!-- Generated by `make bench` (scripts/bench.sh, scripts/bench/report); edit those, not this file. -->")
	p("")
	p("Everything below comes from one run of `make bench` on %s, which took %s min. Kafka, PostgreSQL,",
		cmp.Or(pair(r.settings, "date"), "?"), cmp.Or(pair(r.settings, "minutes"), "?"))
	p("orderflow and the load generators all share the one machine, as they would on a developer's laptop;")
	p("nothing is tuned beyond what `scripts/stack.sh` sets up (fsync and synchronous_commit stay on).")
	p("The machine is shared with other work, so treat single figures as ±15 %%; ratios from the same run are")
	p("steadier than absolute numbers.")
	p("")
	p("## Machine and versions")
	p("")
	p("| | |")
	p("|---|---|")
	for _, kv := range r.machine {
		p("| %s | %s |", kv[0], kv[1])
	}
	p("")
	p("## Settings")
	p("")
	p("| | |")
	p("|---|---|")
	for _, kv := range r.settings {
		if kv[0] == "date" || kv[0] == "minutes" {
			continue
		}
		p("| %s | %s |", kv[0], kv[1])
	}
	p("")
	p("How each figure is taken:")
	p("")
	p("* **End to end** (`orderflow bench` against `orderflow serve`, a separate process, `--role all`): an open-loop")
	p("  generator sends commands on a fixed schedule with the default producer settings and reads `orders.events`")
	p("  read_committed; latency is event arrival minus the command's *intended* send time (no coordinated")
	p("  omission), in log-linear histograms (<0.8 %% error). A rate is **sustained** when ≥ 95 %% of the offered")
	p("  events arrive within the window and the backlog does not grow. Every run also checks exactly-once: each")
	p("  command id got exactly one event (missing/duplicate columns) with the outcome the generator predicted.")
	p("* **Burst**: commands are loaded while no processor runs, then the processor starts; rate = events / time")
	p("  from first to last event.")
	p("* **B1** (Kafka limit): `scripts/bench/relay`, a franz-go GroupTransactSession that decodes each command and")
	p("  produces an event, offsets and events in one Kafka transaction, no database; driven by the same generator.")
	p("* **B2 / B2s** (PostgreSQL limit): `scripts/bench/pgbatch` calls `store.RunBatch`, the processor's exact SQL,")
	p("  with batches decided by the processor's own code (`processor.Batch`), one writer and one transaction per")
	p("  partition (the processor joins partitions in a transaction; B2 does not), no Kafka; latency is per transaction.")
	p("* **REF**: `scripts/bench/ref`, the seed's design: `POST /orders/{id}/transition` reads the order, checks,")
	p("  updates with a version check and inserts a history row in its own transaction; closed-loop clients.")
	p("* **Reads**: `scripts/bench/readload`, open-loop GETs of existing orders (20,000 sampled from the whole table)")
	p("  while `orderflow bench` offers 1,000/s, then the same with no transitions running (*read-alone*). Each")
	p("  run's first read of an order is mostly a miss of the API's cache (answered by PostgreSQL), a repeat a hit;")
	p("  the goal's row gives the two apart, since their shares depend on how many ids a run reads.")
	p("")

	p("## Goals")
	p("")
	p("| goal | measured | |")
	p("|---|---|---|")
	p("| ≥ 20,000 transitions/s sustained end to end, exactly-once | %s/s sustained (highest rate kept up in most passes); burst drain %s/s | %s |",
		f0(best.OfferedRate), f0(burst.Throughput), yes(best.OfferedRate >= 20000))
	p("| ≥ 0.67 of PostgreSQL alone (B2, batches of 1,000) | %s/s ÷ %s/s = %s | %s |",
		f0(best.Throughput), f0(b2.Throughput), ratio(best.Throughput, b2.Throughput), yes(b2.Throughput > 0 && best.Throughput/b2.Throughput >= 0.67))
	e1k := get("e2e-1000")
	p("| p99 ≤ 25 ms at 1,000/s | p99 %s ms (p50 %s ms) | %s |", ms(e1k.Latency.P99), ms(e1k.Latency.P50), yes(e1k.Latency.Count > 0 && e1k.Latency.P99 <= 25))
	var worst string
	ok100 := true
	upTo := 0.0
	for _, res := range e2e {
		if res.OfferedRate <= 10000 {
			worst += fmt.Sprintf("%s/s: %s ms; ", f0(res.OfferedRate), ms(res.Latency.P99))
			ok100 = ok100 && res.Latency.P99 < 100 && res.Missing == 0
		}
		if res.Latency.P99 < 100 && res.Sustained && (upTo == 0 || res.OfferedRate > upTo) {
			upTo = res.OfferedRate
		}
	}
	p("| p99 < 100 ms up to ≥ 10,000/s | p99 %s highest rate with p99 < 100 ms: %s/s | %s |", worst, f0(upTo), yes(ok100 && upTo >= 10000))
	p("| ≥ 5× the reference design (REF) | %s/s ÷ %s/s = %s | %s |", f0(best.Throughput), f0(ref.Throughput),
		ratio(best.Throughput, ref.Throughput), yes(ref.Throughput > 0 && best.Throughput/ref.Throughput >= 5))
	rd := get("read")
	p("| point reads p99 ≤ 5 ms at 5,000 GET/s during 1,000 transitions/s | p99 %s ms (p50 %s, p99.9 %s), %s errors%s; transitions meanwhile p99 %s ms; the same reads with no transitions running: p99 %s ms | %s |",
		ms(rd.Latency.P99), ms(rd.Latency.P50), ms(rd.Latency.P999), strconv.FormatInt(rd.Errors, 10), readParts(rd),
		ms(get("e2e-read-tx").Latency.P99), ms(get("read-alone").Latency.P99),
		yes(rd.Latency.Count > 0 && rd.Latency.P99 <= 5 && rd.Errors == 0 && rd.Ratio >= 0.95))
	m1k := get("e2e-1m-1000")
	m1best := maxSustained(m1)
	if m1best == nil {
		m1best = &benchkit.Result{}
	}
	p("| 1,000,000 live orders without falling off | at 1,000/s p99 %s ms (vs %s ms); highest sustained %s/s (vs %s/s) | %s |",
		ms(m1k.Latency.P99), ms(e1k.Latency.P99), f0(m1best.OfferedRate), f0(best.OfferedRate),
		yes(m1k.Latency.Count > 0 && m1k.Latency.P99 <= max(25, 1.25*e1k.Latency.P99) && m1best.OfferedRate >= best.OfferedRate*0.8))
	// Exactly-once: never a second event or an unexpected outcome, and
	// nothing missing from a run that kept up (a run that fell behind may
	// still have had commands queued when its drain time ran out).
	eo := true
	for _, res := range append(slices.Clone(r.all), r.passes...) {
		if res.Kind == "e2e" || res.Kind == "burst" {
			eo = eo && res.DupEvents == 0 && res.Unexpected == 0 && (res.Missing == 0 || !res.Sustained)
		}
	}
	p("| exactly-once in every end-to-end run (one event per command id, predicted outcome) | %s | %s |",
		map[bool]string{true: "no missing, duplicate or unexpected event", false: "see the missing/dup columns below"}[eo], yes(eo))
	p("")

	p("## Every figure")
	p("")
	p("Throughput is transitions (outcome events, or committed rows, or answered calls) per second; latencies in ms.")
	p("Ratios compare throughput with B1 = Kafka relay burst drain (%s/s), B2 = processor SQL in batches of 1,000 (%s/s)",
		f0(b1.Throughput), f0(b2.Throughput))
	p("and REF = reference design (%s/s). missing/dup/unexp: commands without their event when the drain time (20-30 s)", f0(ref.Throughput))
	p("ran out, events seen twice, outcomes other than the state machine's (summed over passes).")
	p("")
	p("| run | what | offered/s | achieved/s | kept up | p50 | p90 | p99 | p99.9 | max | ×B1 | ×B2 | ×REF | missing/dup/unexp |")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	order := []string{"e2e", "burst", "b1", "b1-burst", "b2s", "b2", "ref", "read"}
	sorted := slices.Clone(r.all)
	// Plain rate points first, then variants (hot keys, reads, 1M orders).
	variant := func(r *benchkit.Result) int {
		switch {
		case strings.Contains(r.Name, "-p3-"):
			return 4
		case strings.Contains(r.Name, "1m"):
			return 3
		case strings.Contains(r.Name, "read"):
			return 2
		case strings.Contains(r.Name, "hot"):
			return 1
		}
		return 0
	}
	slices.SortStableFunc(sorted, func(a, b *benchkit.Result) int {
		return cmp.Or(cmp.Compare(slices.Index(order, a.Kind), slices.Index(order, b.Kind)), cmp.Compare(variant(a), variant(b)),
			cmp.Compare(a.BatchSize, b.BatchSize), cmp.Compare(a.OfferedRate, b.OfferedRate), cmp.Compare(a.Name, b.Name))
	})
	for _, res := range sorted {
		kept := "yes"
		if !res.Sustained {
			kept = fmt.Sprintf("no (%.0f %%)", res.Ratio*100)
		}
		eo := "–"
		if res.Kind == "e2e" || res.Kind == "burst" || strings.HasPrefix(res.Kind, "b1") {
			eo = fmt.Sprintf("%d/%d/%d", res.Missing, res.DupEvents, res.Unexpected)
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", res.Name, describe(res), f0(res.OfferedRate),
			f0(res.Throughput), kept, ms(res.Latency.P50), ms(res.Latency.P90), ms(res.Latency.P99), ms(res.Latency.P999),
			ms(res.Latency.Max), ratio(res.Throughput, b1.Throughput), ratio(res.Throughput, b2.Throughput),
			ratio(res.Throughput, ref.Throughput), eo)
	}
	p("")
	p("Latency columns mean: end to end for e2e and B1 rate runs (intended send → event received); time in queue for")
	p("burst runs (they are loaded first); BEGIN → COMMIT per transaction for B2/B2s; per HTTP call for REF and reads.")
	p("")
	r.cpuTable(p)
	r.stageTable(p)
	p("## Plots")
	p("")
	p("![End-to-end latency percentiles against offered load](bench-latency.svg)")
	p("")
	p("![Throughput against batch size](bench-batch.svg)")
	p("")
	p("B2 (the processor's SQL without Kafka) against transactions of 1 to %d commands; the horizontal lines are", maxBatch(r.b2Sizes()))
	p("orderflow's sustained end-to-end rate and burst drain rate (batch sizes there follow the load, up to")
	p("ORDERFLOW_MAX_BATCH) and REF.")
	p("")
	p("## Micro-benchmarks")
	p("")
	p("`go test -run '^$' -bench . -benchmem` of the state machine, the codec, the decision and the bench histogram:")
	p("")
	p("```")
	p("%s", readText(filepath.Join(r.dir, "micro.txt")))
	p("```")
	p("")
	p("## Profile of the processor under load")
	p("")
	p("%s", cmp.Or(readText(filepath.Join(r.dir, "profile-note.txt")), "(no profile in this run)"))
	p("")
	for _, prof := range []struct{ file, title string }{{"pprof-cpu", "CPU"}, {"pprof-allocs", "Allocated bytes"}} {
		text := readText(filepath.Join(r.dir, prof.file+".txt"))
		if text == "" {
			continue
		}
		p("**%s by area** (flat, summed over every function of each area):", prof.title)
		p("")
		p("| area | share |")
		p("|---|---|")
		for _, a := range areas(text) {
			p("| %s | %.1f %% |", a.name, a.pct)
		}
		p("")
		if cum := ownStages(readText(filepath.Join(r.dir, prof.file+"-cum.txt"))); cum != "" {
			p("**%s by processor stage** (cumulative, the processor's own functions and the store):", prof.title)
			p("")
			p("```")
			p("%s", cum)
			p("```")
			p("")
		}
		p("<details><summary>%s: top functions (go tool pprof -top)</summary>", prof.title)
		p("")
		p("```")
		p("%s", headLines(text, 35))
		p("```")
		p("")
		p("</details>")
		p("")
	}
	return b.String()
}

// cpuTable shows who used the CPUs during each measured window
// (scripts/bench/cpusnap): on a 2-core machine shared by everything, it is
// what says where more throughput would have to come from.
func (r *runData) cpuTable(p func(string, ...any)) {
	files, _ := filepath.Glob(filepath.Join(r.dir, "cpu-*.txt"))
	if len(files) == 0 {
		return
	}
	cols := []string{"kafka", "postgres", "orderflow serve", "load generators", "baselines", "other processes", "idle"}
	p("## Where the CPU goes")
	p("")
	p("Average cores busy during each measured window (of %s), sampled from /proc once a second by", cmp.Or(pair(readPairs(files[0]), "cores"), "2"))
	p("`scripts/bench/cpusnap`. *postgres* is this stack's server (backends of the benchmark databases and the")
	p("shared background processes); *other processes* is everything else on the machine: other people's builds,")
	p("tests and stacks, which this shared machine runs at the same time. *Kafka GC pauses* are the broker's")
	p("stop-the-world collections in the window (count, total ms, from its GC log): G1 uses both cores then, so")
	p("each one stalls everything on the machine.")
	p("")
	p("| run | achieved/s | %s | Kafka GC pauses | CPU µs per transition (kafka + postgres + serve) |", strings.Join(cols, " | "))
	p("|---|---|%s---|---|", strings.Repeat("---|", len(cols)))
	type row struct {
		name, line   string
		order, group int // b1/1M/plain; plain rate points before variants
		rate         float64
	}
	var rows []row
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "cpu-"), ".txt")
		name, ok := r.figureName(name)
		if !ok {
			continue // another pass of a figure: its median pass is shown
		}
		kv := readPairs(f)
		var cells []string
		stack := 0.0
		for _, c := range cols {
			v, _ := strconv.ParseFloat(pair(kv, c), 64)
			cells = append(cells, fmt.Sprintf("%.2f", v))
			if c == "kafka" || c == "postgres" || c == "orderflow serve" {
				stack += v
			}
		}
		rw := row{name: name}
		per := "–"
		achieved := 0.0
		if res := r.byName[name]; res != nil && res.Throughput > 0 {
			rw.rate, achieved = res.OfferedRate, res.Throughput
			per = f0(stack * 1e6 / res.Throughput)
			if res.Kind == "read" {
				per += " per read" // no transitions: the reads alone
			}
		}
		switch {
		case strings.HasPrefix(name, "b1"):
			rw.order = 2
		case strings.Contains(name, "-1m-"):
			rw.order = 1
		case strings.Contains(name, "-p3-"):
			rw.order = 3
		case strings.Contains(name, "hot") || strings.Contains(name, "read"):
			rw.group = 1
		}
		gc := "–"
		if n := pair(kv, "kafka gc pauses"); n != "" {
			pauses, _ := strconv.ParseFloat(pair(kv, "kafka gc pause ms"), 64)
			gc = fmt.Sprintf("%s / %.0f ms", n, pauses)
		}
		rw.line = fmt.Sprintf("| %s | %s | %s | %s | %s |", name, f0(achieved), strings.Join(cells, " | "), gc, per)
		rows = append(rows, rw)
	}
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(cmp.Compare(a.order, b.order), cmp.Compare(a.group, b.group), cmp.Compare(a.rate, b.rate))
	})
	for _, rw := range rows {
		p("%s", rw.line)
	}
	p("")
}

// headLines is the first n lines of pprof's output past its header.
func headLines(text string, n int) string {
	lines := strings.Split(text, "\n")
	return strings.Join(lines[:min(len(lines), n+6)], "\n")
}

// ownStages keeps the rows of a cumulative pprof listing that belong to
// orderflow's processor and store, so the cost of each stage (prepare,
// decide, RunBatch, publish...) shows, callees included.
func ownStages(text string) string {
	var out []string
	for line := range strings.SplitSeq(text, "\n") {
		if i := strings.Index(line, "github.com/orderflow/orderflow/"); i >= 0 && !strings.Contains(line, "scripts/bench") &&
			!strings.Contains(line, ".func") {
			out = append(out, strings.Replace(line, "github.com/orderflow/orderflow/", "", 1))
		}
		if len(out) == 14 {
			break
		}
	}
	if len(out) == 0 {
		return ""
	}
	return "      flat  flat%   sum%        cum   cum%\n" + strings.Join(out, "\n")
}

// promHist is one Prometheus histogram read from a /metrics page.
type promHist struct {
	buckets [][2]float64 // upper bound, cumulative count
	count   float64
	sum     float64
}

// readMetrics reads the unlabelled histograms and counters of a /metrics
// page; labelled series are summed per name.
func readMetrics(path string) map[string]*promHist {
	text := readText(path)
	if text == "" {
		return nil
	}
	out := map[string]*promHist{}
	get := func(name string) *promHist {
		if out[name] == nil {
			out[name] = &promHist{}
		}
		return out[name]
	}
	le := regexp.MustCompile(`le="([^"]+)"`)
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		series, labels, _ := strings.Cut(line[:i], "{")
		switch {
		case strings.HasSuffix(series, "_bucket"):
			m := le.FindStringSubmatch(labels)
			if m == nil {
				continue
			}
			bound, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				continue
			}
			h := get(strings.TrimSuffix(series, "_bucket"))
			h.buckets = append(h.buckets, [2]float64{bound, v})
		case strings.HasSuffix(series, "_count"):
			get(strings.TrimSuffix(series, "_count")).count += v
		case strings.HasSuffix(series, "_sum"):
			get(strings.TrimSuffix(series, "_sum")).sum += v
		default:
			get(series).sum += v // counters and gauges
		}
	}
	return out
}

// delta is what a histogram counted between two pages.
func delta(a, b *promHist) *promHist {
	if b == nil {
		return nil
	}
	d := &promHist{count: b.count, sum: b.sum, buckets: slices.Clone(b.buckets)}
	if a != nil {
		d.count -= a.count
		d.sum -= a.sum
		for i := range d.buckets {
			if i < len(a.buckets) && a.buckets[i][0] == d.buckets[i][0] {
				d.buckets[i][1] -= a.buckets[i][1]
			}
		}
	}
	return d
}

// quantile is the upper bound of the bucket holding quantile q: a
// histogram's buckets (powers of two here) are all it knows.
func (h *promHist) quantile(q float64) float64 {
	if h == nil || h.count <= 0 {
		return 0
	}
	for _, b := range h.buckets {
		if b[1] >= q*h.count {
			return b[0]
		}
	}
	return math.Inf(1)
}

// stageTable splits end-to-end latency into the processor's stages, from
// serve's own histograms before and after each run: how many PostgreSQL and
// Kafka transactions it took, how long each took, and how long a command
// waited from requested_at to its commit. It is what says which stage a
// latency goal is lost in.
func (r *runData) stageTable(p func(string, ...any)) {
	files, _ := filepath.Glob(filepath.Join(r.dir, "metrics-*-1.txt"))
	if len(files) == 0 {
		return
	}
	type row struct {
		order int
		rate  float64
		line  string
	}
	var rows []row
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "metrics-"), "-1.txt")
		name, ok := r.figureName(name)
		if !ok {
			continue
		}
		res := r.byName[name]
		if res == nil {
			continue
		}
		before := readMetrics(strings.TrimSuffix(f, "-1.txt") + "-0.txt")
		after := readMetrics(f)
		h := func(n string) *promHist { return delta(before[n], after[n]) }
		batches := h("orderflow_batch_records")
		tx := h("orderflow_batch_transaction_seconds")
		pub := h("orderflow_outbox_publish_seconds")
		lat := h("orderflow_command_latency_seconds")
		// A PostgreSQL transaction carries the batches of every partition
		// waiting at that moment: count transactions, not batches.
		if batches == nil || tx == nil || tx.count <= 0 {
			continue
		}
		secs := 0.0
		if d, err := strconv.ParseFloat(res.Notes["duration_s"], 64); err == nil {
			secs = d
		}
		perSec := func(n float64) string {
			if secs <= 0 {
				return "–"
			}
			return f0(n / secs)
		}
		msq := func(x *promHist, q float64) string { return ms(x.quantile(q) * 1000) }
		o := 0
		switch {
		case strings.Contains(name, "-1m-"):
			o = 2
		case strings.Contains(name, "-p3-"):
			o = 3
		case strings.Contains(name, "hot") || strings.Contains(name, "read"):
			o = 1
		}
		rows = append(rows, row{o, res.OfferedRate, fmt.Sprintf("| %s | %s | %s | %.1f | %s | ≤ %s / ≤ %s | ≤ %s / ≤ %s | ≤ %s / ≤ %s | %s / %s |",
			name, f0(res.Throughput), perSec(tx.count), batches.sum/tx.count, perSec(pub.count),
			msq(tx, 0.5), msq(tx, 0.99), msq(pub, 0.5), msq(pub, 0.99),
			msq(lat, 0.5), msq(lat, 0.99), ms(res.Latency.P50), ms(res.Latency.P99))})
	}
	if len(rows) == 0 {
		return
	}
	slices.SortFunc(rows, func(a, b row) int { return cmp.Or(cmp.Compare(a.order, b.order), cmp.Compare(a.rate, b.rate)) })
	p("## Where the latency goes")
	p("")
	p("From `orderflow serve`'s own Prometheus histograms, read before and after each run (whole run, warm-up and")
	p("drain included; bucket bounds are powers of two, so quantiles are upper bounds). *requested → commit* is a")
	p("command's `requested_at` (its intended send time) to the commit of its PostgreSQL transaction; the rest of")
	p("the end-to-end time is the Kafka transaction that publishes the event and the consumer's fetch.")
	p("")
	p("| run | achieved/s | PG transactions/s (≈) | commands per transaction | Kafka transactions/s (≈) | PG transaction p50 / p99 ms | Kafka transaction p50 / p99 ms | requested → commit p50 / p99 ms | end to end p50 / p99 ms |")
	p("|---|---|---|---|---|---|---|---|---|")
	for _, rw := range rows {
		p("%s", rw.line)
	}
	p("")
}

func maxBatch(rs []*benchkit.Result) int {
	n := 0
	for _, r := range rs {
		n = max(n, r.BatchSize)
	}
	return n
}

type area struct {
	name string
	pct  float64
}

// areaOf names the part of the system a function belongs to.
func areaOf(fn string) string {
	switch {
	case strings.HasPrefix(fn, "github.com/jackc/"):
		return "pgx (PostgreSQL protocol, encoding)"
	case strings.HasPrefix(fn, "github.com/twmb/franz-go"):
		return "franz-go (Kafka client)"
	case strings.HasPrefix(fn, "github.com/klauspost/") || strings.HasPrefix(fn, "github.com/pierrec/"):
		return "compression"
	case strings.HasPrefix(fn, "github.com/orderflow/"):
		return "orderflow's own code"
	case strings.HasPrefix(fn, "encoding/json") || strings.HasPrefix(fn, "unicode/utf8") || strings.HasPrefix(fn, "unicode."):
		return "encoding/json and UTF-8 checks"
	case strings.HasPrefix(fn, "github.com/prometheus/"):
		return "Prometheus metrics"
	case strings.HasPrefix(fn, "syscall.") || strings.HasPrefix(fn, "internal/runtime/syscall") || strings.HasPrefix(fn, "internal/poll") ||
		strings.HasPrefix(fn, "net."):
		return "system calls (network I/O)"
	case strings.HasPrefix(fn, "runtime.") && (strings.Contains(fn, "gc") || strings.Contains(fn, "scan") || strings.Contains(fn, "mark") ||
		strings.Contains(fn, "sweep") || strings.Contains(fn, "malloc") || strings.Contains(fn, "alloc") || strings.Contains(fn, "heap") ||
		strings.Contains(fn, "span") || strings.Contains(fn, "greyobject") || strings.Contains(fn, "wbBuf") || strings.Contains(fn, "memclr")):
		return "Go runtime: allocation and GC"
	case strings.HasPrefix(fn, "runtime.") || strings.HasPrefix(fn, "internal/runtime") || strings.HasPrefix(fn, "sync."):
		return "Go runtime: scheduler, locks, other"
	case strings.HasPrefix(fn, "time.") || strings.HasPrefix(fn, "strconv.") || strings.HasPrefix(fn, "fmt.") ||
		strings.HasPrefix(fn, "strings.") || strings.HasPrefix(fn, "bytes.") || strings.HasPrefix(fn, "hash/") || strings.HasPrefix(fn, "crypto/"):
		return "standard library (time, strconv, fmt, strings...)"
	}
	return "other"
}

// topLine matches a row of `go tool pprof -top`: flat flat% sum% cum cum% name.
var topLine = regexp.MustCompile(`^\s*\S+\s+([\d.]+)%\s+[\d.]+%\s+\S+\s+[\d.]+%\s+(.+)$`)

// areas sums flat percentages of pprof's -top output by area.
func areas(text string) []area {
	sum := map[string]float64{}
	for line := range strings.SplitSeq(text, "\n") {
		m := topLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		pct, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			continue
		}
		sum[areaOf(strings.TrimSpace(m[2]))] += pct
	}
	var out []area
	for k, v := range sum {
		out = append(out, area{k, math.Round(v*10) / 10})
	}
	// Equal shares in name order: map order would shuffle them between runs.
	slices.SortFunc(out, func(a, b area) int { return cmp.Or(cmp.Compare(b.pct, a.pct), cmp.Compare(a.name, b.name)) })
	return out
}

func (r *runData) latencyChart() *chart {
	c := &chart{title: "orderflow end to end: latency against offered load", xLabel: "offered commands/s",
		yLabel: "latency, ms (log)", yLog: true}
	colors := []string{"#1b9e77", "#7570b3", "#d95f02", "#e7298a"}
	for i, q := range []string{"p50", "p90", "p99", "p99.9"} {
		s := series{name: q, color: colors[i]}
		for _, res := range r.e2eRates("e2e-") {
			l := res.Latency
			s.pts = append(s.pts, [2]float64{res.OfferedRate, []float64{l.P50, l.P90, l.P99, l.P999}[i]})
		}
		c.series = append(c.series, s)
	}
	// The p99 of the variants, dashed, against the plain runs' quantiles.
	for _, v := range []struct{ prefix, name, color string }{
		{"e2e-1m-", "p99, 1M orders", "#d95f02"},
		{"e2e-p3-", "p99, 3 partitions", "#e7298a"},
		{"b1-", "p99, B1 relay", "#666666"},
	} {
		m := r.e2eRates(v.prefix)
		if len(m) == 0 {
			continue
		}
		s := series{name: v.name, color: v.color, dashed: true}
		for _, res := range m {
			s.pts = append(s.pts, [2]float64{res.OfferedRate, res.Latency.P99})
		}
		c.series = append(c.series, s)
	}
	return c
}

func (r *runData) batchChart() *chart {
	c := &chart{title: "Throughput against batch size", xLabel: "commands per PostgreSQL transaction (log)",
		yLabel: "transitions/s", xLog: true}
	sizes := r.b2Sizes()
	s := series{name: "B2 processor SQL", color: "#1b9e77"}
	lo, hi := 1.0, 2000.0
	for _, res := range sizes {
		s.pts = append(s.pts, [2]float64{float64(res.BatchSize), res.Throughput})
		hi = max(hi, float64(res.BatchSize))
	}
	c.series = append(c.series, s)
	flat := func(name, color string, v float64) {
		if v > 0 {
			c.series = append(c.series, series{name: name, color: color, dashed: true, pts: [][2]float64{{lo, v}, {hi, v}}})
		}
	}
	if best := maxSustained(r.e2eRates("e2e-")); best != nil {
		flat("e2e sustained", "#d95f02", best.Throughput)
	}
	if b := r.byName["burst"]; b != nil {
		flat("e2e burst drain", "#e7298a", b.Throughput)
	}
	if ref := r.byName["ref"]; ref != nil {
		flat("REF", "#666666", ref.Throughput)
	}
	return c
}
