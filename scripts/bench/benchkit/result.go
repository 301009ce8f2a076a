package benchkit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// Result is one measurement, as every driver prints it (one JSON object)
// and the report reads it back. Fields that do not apply stay zero.
type Result struct {
	// Name identifies the measurement in the report (e.g. "e2e-5000").
	Name string `json:"name"`
	// Kind is e2e, burst, b1, b1-burst, b2, ref or read.
	Kind string `json:"kind"`

	OfferedRate float64 `json:"offered_rate,omitempty"` // commands (or requests) per second
	Seconds     float64 `json:"seconds"`                // length of the measured window
	// Throughput is transitions (outcome events, or rows, or requests)
	// per second achieved in the window.
	Throughput float64 `json:"throughput"`
	// Ratio is Throughput over what was offered (1.0: kept up).
	Ratio float64 `json:"ratio,omitempty"`
	// Sustained: kept up (Ratio >= 0.95) without a growing backlog.
	Sustained bool    `json:"sustained"`
	Latency   Latency `json:"latency"`

	Sent          int64   `json:"sent,omitempty"`
	Expected      int64   `json:"expected,omitempty"`
	Received      int64   `json:"received,omitempty"`
	Missing       int64   `json:"missing,omitempty"`
	DupEvents     int64   `json:"duplicate_events,omitempty"`
	Unexpected    int64   `json:"unexpected_outcomes,omitempty"`
	Accepted      int64   `json:"accepted,omitempty"`
	Rejected      int64   `json:"rejected,omitempty"`
	Errors        int64   `json:"errors,omitempty"`
	BacklogGrowth int64   `json:"backlog_growth,omitempty"`
	DrainSeconds  float64 `json:"drain_seconds,omitempty"`
	BatchSize     int     `json:"batch_size,omitempty"`
	Concurrency   int     `json:"concurrency,omitempty"`
	// Notes are free-form settings worth showing (partitions, shares...).
	Notes map[string]string `json:"notes,omitempty"`
	// Parts are the latencies of named subsets of the measured requests
	// (readload: PartFirstRead, PartRepeatRead, PartSendLag).
	Parts map[string]Latency `json:"parts,omitempty"`
}

// The parts of a read result, named once for readload and the report.
const (
	PartFirstRead  = "first read of an order" // the run's first read of it: mostly a cache miss
	PartRepeatRead = "repeat read"            // read before in the run: a cache hit
	PartSendLag    = "send lag"               // due time to sending: the generator's own delay, inside the latency
)

// EncodeResult writes r as indented JSON to w.
func EncodeResult(w io.Writer, r *Result) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}

// WriteResult writes r as indented JSON to path, or to stdout when path is
// "" or "-".
func WriteResult(path string, r *Result) error {
	if path == "" || path == "-" {
		return EncodeResult(os.Stdout, r)
	}
	var b bytes.Buffer
	if err := EncodeResult(&b, r); err != nil {
		return err
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}

// ReadResult reads a file written by WriteResult.
func ReadResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read result: %w", err)
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read result %s: %w", path, err)
	}
	return &r, nil
}
