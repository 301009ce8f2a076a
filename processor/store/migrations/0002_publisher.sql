-- partition_offsets.publisher is the Kafka transactional id of the producer
-- that publishes the partition's outbox. A processor publishes all its
-- partitions with one producer; whoever claims a partition next fences the
-- producer recorded here before it publishes anything of the partition.
-- NULL: the last owner handed the partition over with everything published.
ALTER TABLE partition_offsets ADD COLUMN publisher text;
