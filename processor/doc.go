// Package processor turns commands on orders.commands into state changes in
// PostgreSQL and outcome events on orders.events, exactly once.
//
// One consumer-group member owns each command partition, and one worker
// goroutine per owned partition serialises its orders. A worker takes what
// has arrived and hands the batch to a committer, which takes every batch
// waiting at that moment, of any partitions, into ONE PostgreSQL
// transaction: for each partition it decides the commands with the state
// machine in offset order and writes order rows, outcome rows, command_id
// de-duplication, dead letters and the partition's next offset. The offset
// lives in PostgreSQL, not in Kafka, so a crash at any point replays into
// the same result. A partition whose claim was lost is left out of the
// transaction; a batch whose shared transaction failed is retried in one of
// its own, so a batch PostgreSQL refuses holds up its own partition only.
//
// Every committed outcome and dead letter also has a per-partition sequence
// number: the outbox. One publisher per process sends the outboxes of all
// its partitions, each in seq order, in Kafka transactions that never
// overlap, of two transactional producers taking turns (a producer's next
// transaction waits for the markers of its last), to the same partition
// number of orders.events and
// orders.commands.dlq, with the sequence number in a header. Taking over a
// partition fences the previous owner in both places: in PostgreSQL the
// position row's owner token; in Kafka the producers whose transactional
// ids that row records, as the new owner's publisher records its own there
// and then initialises the old ones, which bumps their epoch and aborts
// their open transaction. Then the publisher reads the last sequence number back
// from the topics and publishes what is missing from PostgreSQL. So each
// command_id has exactly one outcome event for read_committed consumers.
// See docs/design.md.
package processor
