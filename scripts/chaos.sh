#!/usr/bin/env bash
# chaos.sh runs the chaos test (`make chaos`): three processor processes under a load of
# 200,000 commands plus 10,000 malformed records, a SIGKILL of a random processor every
# few seconds, one crash and restart of the Kafka broker and one of PostgreSQL, then a
# rolling restart under 1,000 records/s, then `orderflow verify`. The Go driver is
# scripts/chaos (its -h lists the knobs); docs/reliability.md explains what it checks.
#
#   scripts/chaos.sh [driver flags]   run it, e.g. scripts/chaos.sh -commands 50000 -poison 2000
#   scripts/chaos.sh down             stop the private chaos stack
#   scripts/chaos.sh reset            stop it and delete its data
#
# It crashes Kafka and PostgreSQL, so it runs on a stack of its own: state in
# .stack-chaos/ (CHAOS_STACK_DIR), Kafka on 29092/29093 and PostgreSQL on 25432
# (CHAOS_KAFKA_PORT, CHAOS_KAFKA_CONTROLLER_PORT, CHAOS_PG_PORT), never the shared
# default stack. The stack is stopped at the end unless CHAOS_KEEP_STACK=1. Each run
# gets a database and topics of its own; its logs, results.json and report.md are in
# .stack-chaos/runs/<run>/.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

export ORDERFLOW_STACK_DIR=${CHAOS_STACK_DIR:-$REPO_ROOT/.stack-chaos}
export KAFKA_PORT=${CHAOS_KAFKA_PORT:-29092}
export KAFKA_CONTROLLER_PORT=${CHAOS_KAFKA_CONTROLLER_PORT:-29093}
export PG_PORT=${CHAOS_PG_PORT:-25432}
# A broker killed under load recovers every partition's log at start: on 2 busy cores that
# has taken over stack.sh's default 90 s.
export KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-300}
# `make chaos` exports the default stack's addresses; stack.sh would take them for
# external services and leave ours alone, and the processors must not see them.
unset KAFKA_BROKERS DATABASE_URL ORDERFLOW_KAFKA_BROKERS ORDERFLOW_DATABASE_URL ORDERFLOW_HTTP_ADDR ORDERFLOW_TOPIC_PREFIX ORDERFLOW_GROUP

die() { printf 'chaos: error: %s\n' "$*" >&2; exit 1; }

[[ $ORDERFLOW_STACK_DIR != "$REPO_ROOT/.stack" ]] || die "CHAOS_STACK_DIR is the shared stack's folder; chaos crashes its services"
for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$PG_PORT"; do
	case $port in 19092 | 19093 | 15432) die "port $port is the shared stack's; chaos crashes its services" ;; esac
done

STACK=scripts/stack.sh
case ${1:-} in
down) exec "$STACK" down ;;
reset) exec "$STACK" reset ;;
esac

PG_BIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
[[ -n $PG_BIN ]] || PG_BIN=$(dirname "$(command -v pg_ctl)")
as_pg=""
[[ $(id -u) -eq 0 ]] && as_pg="runuser -u postgres --"

# The faults, as commands the driver runs. Kafka is killed with SIGKILL (no controlled
# shutdown: it recovers its logs at the next start); PostgreSQL is stopped in immediate
# mode (no checkpoint: crash recovery from the WAL at the next start).
# The broker's log is set aside first: stack.sh looks for "Kafka Server started" past the
# log's old end, which a log that rolled over meanwhile (it is chatty under this load)
# no longer has.
kafka_log=$ORDERFLOW_STACK_DIR/kafka/logs/server.log
kafka_stop="pid=\$(cat '$ORDERFLOW_STACK_DIR/kafka/kafka.pid') && kill -KILL \"\$pid\" && while kill -0 \"\$pid\" 2>/dev/null; do sleep 0.1; done; mv -f '$kafka_log' '$kafka_log.crashed'"
pg_stop="$as_pg '$PG_BIN/pg_ctl' stop -D '$ORDERFLOW_STACK_DIR/pg/data' -m immediate -w"
stack_up="'$REPO_ROOT/$STACK' up"

cleanup() {
	if [[ ${CHAOS_KEEP_STACK:-} != 1 ]]; then
		"$STACK" down || true
	fi
}
trap cleanup EXIT

echo "chaos: private stack in ${ORDERFLOW_STACK_DIR#"$REPO_ROOT"/} (Kafka $KAFKA_PORT, PostgreSQL $PG_PORT)"
"$STACK" up
# Binaries of its own: bin/ is shared with whoever runs `make build` meanwhile.
BIN=$ORDERFLOW_STACK_DIR/bin
go build -o "$BIN/orderflow" ./cmd/orderflow
go build -o "$BIN/chaos" ./scripts/chaos

"$BIN/chaos" \
	-brokers "127.0.0.1:$KAFKA_PORT" \
	-admin-url "postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable" \
	-bin "$BIN/orderflow" \
	-out "$ORDERFLOW_STACK_DIR/runs" \
	-stack-up "$stack_up" \
	-kafka-stop "$kafka_stop" \
	-pg-stop "$pg_stop" \
	"$@"
