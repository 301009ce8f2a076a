// Package processor turns commands on orders.commands into state changes in
// PostgreSQL and outcome events on orders.events, exactly once.
//
// One consumer-group member owns each command partition, and one worker
// goroutine per owned partition serialises its orders. A worker takes what
// has arrived, decides each command with the state machine in offset order,
// and commits the whole batch in ONE PostgreSQL transaction: order rows,
// outcome rows, command_id de-duplication, dead letters and the partition's
// next offset. The offset lives in PostgreSQL, not in Kafka, so a crash at
// any point replays into the same result.
//
// Every committed outcome and dead letter also has a per-partition sequence
// number: the outbox. A publisher per partition sends them, in order, in
// Kafka transactions under a transactional id of its own, to the same
// partition number of orders.events and orders.commands.dlq, with the
// sequence number in a header. Taking over a partition fences the previous
// owner in both places (the position row's owner token in PostgreSQL, the
// transactional id's epoch in Kafka); then it reads the last sequence number
// back from the topics and publishes what is missing from PostgreSQL. So each
// command_id has exactly one outcome event for read_committed consumers.
// See docs/design.md.
package processor
