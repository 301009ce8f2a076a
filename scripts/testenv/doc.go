// Package testenv gives integration tests the real Kafka broker and PostgreSQL server
// they run against, and isolates tests that share them.
//
// Endpoints come from the environment first: KAFKA_BROKERS and DATABASE_URL, which
// `make test` exports after `make up` (scripts/stack.sh starts both natively, no Docker
// needed). When a variable is unset and a Docker engine answers, testenv starts the same
// images docker-compose.yml uses, once per test binary; the Ryuk reaper of
// testcontainers-go removes them when the binary exits. Without either, a test is
// skipped on a laptop and fails in CI (CI=true), so a misconfigured pipeline can never
// pass by skipping everything.
//
// Isolation: [DatabaseURL] and [Pool] hand each caller a database of its own, dropped
// when the test ends; [TopicPrefix] gives each caller a unique topic name prefix. Tests
// built on them may run with t.Parallel.
package testenv
