// Package topics owns everything orderflow puts on Kafka: the topic names
// (with a configurable prefix) and partition count, their provisioning with
// kadm, and the command and outcome event types with a strict codec that
// enforces the limits of the public contract (shared/design/CONTRACT.md).
//
// It imports only the standard library and franz-go, so producers written in
// Go can use it without pulling in PostgreSQL or Gin.
package topics
