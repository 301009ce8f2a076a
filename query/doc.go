// Package query is orderflow's HTTP API (Gin): reads of the order read model
// in PostgreSQL, commands over HTTP, and the OpenAPI document, metrics and
// health endpoints. shared/design/CONTRACT.md is its contract; docs/api.md
// is its manual.
//
// # Reads and the cache
//
// Point reads (GET /v1/orders/{id}) are served from an in-process LRU cache
// of order snapshots (Config.CacheSize entries), falling back to PostgreSQL.
// The cache is filled from PostgreSQL on a miss and kept fresh by the events
// feed: a client without a consumer group that reads orders.events with
// isolation level read_committed, starting at the last stable offset when
// the server starts. The processor publishes an event only after the
// PostgreSQL transaction holding the outcome committed, and inside a Kafka
// transaction, so the feed only ever applies outcomes that are committed in
// both places. A cached order is only ever replaced by a higher version.
//
// Staleness bound: a cache hit can lag PostgreSQL by the time from the
// processor's commit to the event reaching this replica (the outbox publish
// delay plus one fetch; milliseconds when healthy, measured by the
// orderflow_query_event_delay_seconds histogram). If the feed is down the lag
// is unbounded for orders already cached, and /readyz says so. A client that
// needs its own write reflected passes min_version=N (the version its
// accepted command produced): an entry below N is never served, PostgreSQL
// is read instead, and with wait the request waits for version N. That is
// read-your-writes, whatever replica answers.
//
// # Commands
//
// POST /v1/orders/{id}/commands publishes the command to orders.commands
// keyed by order id, exactly as any producer would (topics.EncodeCommand).
// command_id is the idempotency key: the handler first looks it up (recent
// outcomes, then the commands table) and answers a known outcome without
// publishing again; the processor de-duplicates whatever still gets through.
// With ?wait the handler registers for the outcome before publishing, so it
// cannot miss it, and answers 200 (accepted) or 409 (rejected) with the
// event, or 202 when the wait ends first.
//
// # Auth
//
// API keys (see LoadKeys) have scope read or write; write implies read.
// Keys are compared as SHA-256 digests in constant time. Without keys the
// server refuses any listen address but loopback.
package query
