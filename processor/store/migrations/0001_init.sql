-- orderflow schema, version 1.
--
-- orders is the current state, one row per order, written only by the
-- processor that owns the order's partition. transitions is the append-only
-- audit log of every outcome, accepted or rejected, partitioned by month.
-- commands de-duplicates command_id and points at its outcome.
-- dead_letters keeps records that could not be decoded. partition_offsets
-- holds each command partition's next offset and outbox sequence, committed
-- in the same transaction as the data: that is what makes effects exactly-once.

CREATE TABLE orders (
    order_id   text        PRIMARY KEY,
    state      text        NOT NULL,
    version    bigint      NOT NULL CHECK (version >= 1),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Listing by state pages through (state, order_id).
CREATE INDEX orders_by_state ON orders (state, order_id);

CREATE TABLE transitions (
    processed_at    timestamptz NOT NULL,
    topic_partition integer     NOT NULL,
    source_offset   bigint      NOT NULL,
    seq             bigint      NOT NULL,
    event_id        text        NOT NULL,
    command_id      text        NOT NULL,
    order_id        text        NOT NULL,
    action          text        NOT NULL,
    outcome         text        NOT NULL CHECK (outcome IN ('accepted', 'rejected')),
    from_state      text,
    to_state        text,
    version         bigint      NOT NULL,
    reason          text,
    message         text,
    actor           text,
    command_reason  text,
    metadata        json,   -- json, not jsonb: events rebuilt from a row must match the bytes first sent
    requested_at    timestamptz
) PARTITION BY RANGE (processed_at);

-- History of one order, oldest first; seq breaks ties within a batch.
CREATE INDEX transitions_by_order ON transitions (order_id, processed_at, seq);
-- The outbox: what a partition committed after a given sequence number.
CREATE INDEX transitions_by_seq ON transitions (topic_partition, seq);

CREATE TABLE commands (
    command_id      text        PRIMARY KEY,
    order_id        text        NOT NULL,
    topic_partition integer     NOT NULL,
    seq             bigint      NOT NULL,
    processed_at    timestamptz NOT NULL
);

CREATE TABLE dead_letters (
    topic_partition integer     NOT NULL,
    source_offset   bigint      NOT NULL,
    seq             bigint      NOT NULL,
    record_key      bytea,
    record_value    bytea,
    error           text        NOT NULL,
    processed_at    timestamptz NOT NULL,
    PRIMARY KEY (topic_partition, source_offset)
);

CREATE INDEX dead_letters_by_seq ON dead_letters (topic_partition, seq);

CREATE TABLE partition_offsets (
    topic           text        NOT NULL,
    topic_partition integer     NOT NULL,
    next_offset     bigint      NOT NULL,
    next_seq        bigint      NOT NULL,
    owner           text        NOT NULL,
    claimed_at      timestamptz NOT NULL,
    PRIMARY KEY (topic, topic_partition)
);
