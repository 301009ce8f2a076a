// Package benchkit holds what every orderflow benchmark driver shares: a
// log-bucketed latency histogram (HDR-style, bounded relative error), the
// command generator that drives orders through their lifecycles, and the
// JSON result format that scripts/bench.sh collects into docs/benchmarks.md.
//
// It lives under scripts/ because it is measuring equipment, not part of the
// service; `orderflow bench` imports it so that the end-to-end run and the
// baselines (which are separate programs) offer exactly the same load and
// summarise latency exactly the same way.
package benchkit
