#!/usr/bin/env bash
# stack.sh runs the real local stack orderflow is developed and tested against:
# Apache Kafka (one KRaft node, from the official jars on Maven Central, run with the
# machine's Java) and a project-local PostgreSQL cluster. No Docker needed.
#
#   scripts/stack.sh up           start both (no-op when they already answer)
#   scripts/stack.sh down         stop both (safe when nothing runs)
#   scripts/stack.sh status       one line per service; exit 3 if one is not running
#   scripts/stack.sh env          export lines for eval: eval "$(scripts/stack.sh env)"
#   scripts/stack.sh logs [kafka|pg] [-f]
#   scripts/stack.sh reset        down, then delete the data (keeps the Kafka jars)
#   scripts/stack.sh db-reset     drop and recreate the local `orderflow` database
#   scripts/stack.sh kafka-fetch  only fetch the Kafka jars (e.g. to warm a CI cache)
#
# Everything lives under one git-ignored folder, .stack/ at the repo root
# (ORDERFLOW_STACK_DIR overrides it). Ports: KAFKA_PORT, KAFKA_CONTROLLER_PORT, PG_PORT,
# ORDERFLOW_HTTP_PORT. Everything binds to 127.0.0.1 only.
#
# External services: when DATABASE_URL (or KAFKA_BROKERS) is set to something other
# than what this script would print, that service is left alone and passed through.
set -euo pipefail

# The one place the Kafka version is pinned. docker-compose.yml must use the same tag
# (scripts/compose_test.go checks it).
KAFKA_VERSION=4.1.2
# Kafka's pom brings no logging backend; log4j2 is what the Kafka distribution uses.
LOG4J_VERSION=2.24.3
# Kafka 4.1's pom still resolves slf4j-api 1.7, which cannot see the slf4j2 provider
# that log4j-slf4j2-impl registers, so the broker would log nothing. slf4j 2 is
# API-compatible with 1.7 callers.
SLF4J_VERSION=2.0.17
# A fixed cluster id (base64url of the 16 bytes "orderflow-local1") keeps `format`
# idempotent and the data dir recognisable.
KAFKA_CLUSTER_ID=b3JkZXJmbG93LWxvY2FsMQ

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_DIR=${ORDERFLOW_STACK_DIR:-$REPO_ROOT/.stack}
KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19093}
PG_PORT=${PG_PORT:-15432}
ORDERFLOW_HTTP_PORT=${ORDERFLOW_HTTP_PORT:-8080}
# The JVM settings Kafka's own start scripts use (kafka-server-start.sh sets the
# heap, kafka-run-class.sh the collector), as the apache/kafka image in
# docker-compose.yml gets them. A heap that may shrink to a few hundred MB
# leaves G1 a young generation of ~40 MB once the broker has run for a while:
# after a `make bench` it collected every 0.56 s, ~10 ms each with both cores,
# a stall that every request in flight on the machine then waited out.
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms1g -Xmx1g}
KAFKA_JVM_PERFORMANCE_OPTS=${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent}
# Cold JVM start plus storage recovery on 2 cores takes ~10 s; 90 s means "broken".
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
PG_START_TIMEOUT=${PG_START_TIMEOUT:-60}

KAFKA_DIR=$STACK_DIR/kafka
KAFKA_LIBS=$KAFKA_DIR/libs
KAFKA_PID_FILE=$KAFKA_DIR/kafka.pid
PG_DIR=$STACK_DIR/pg
PG_DATA=$PG_DIR/data
PG_SOCKET_DIR=$PG_DIR/run
PG_LOG=$PG_DIR/log/postgres.log

LOCAL_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
LOCAL_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/orderflow?sslmode=disable"

log() { printf '%s\n' "$*" >&2; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

# An inherited DATABASE_URL equal to our own (e.g. after `eval "$(make -s env)"`) must
# not turn the local cluster off, so only a different value counts as external.
pg_external() { [[ -n ${DATABASE_URL:-} && ${DATABASE_URL} != "$LOCAL_DATABASE_URL" ]]; }
kafka_external() { [[ -n ${KAFKA_BROKERS:-} && ${KAFKA_BROKERS} != "$LOCAL_KAFKA_BROKERS" ]]; }

is_root() { [[ $(id -u) -eq 0 ]]; }

# apt_install installs Debian packages on a machine that lacks them (fresh CI runner).
# Non-interactive so it can never hang on a prompt.
apt_install() {
	local sudo=()
	if ! is_root; then
		command -v sudo >/dev/null 2>&1 || die "missing $*; install them with apt-get (needs root)"
		sudo=(sudo -n)
	fi
	log "stack: installing $* with apt-get (first run on this machine)"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Wrap a value in single quotes so `eval` never word-splits or globs it (URLs hold '?').
shell_quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# ---------------------------------------------------------------------------- Kafka

ensure_java() {
	if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
		apt_install default-jre-headless maven
	fi
}

# The jars Kafka 4.1 needs for kafka.tools.StorageTool (format) and kafka.Kafka (server).
# kafka_2.13's pom brings them transitively today; checking by name turns a future pom
# change into a clear error instead of a ClassNotFoundException in the log.
KAFKA_REQUIRED_JARS=(
	kafka_2.13 kafka-clients kafka-server kafka-server-common kafka-metadata kafka-raft
	kafka-storage kafka-storage-api kafka-group-coordinator kafka-group-coordinator-api
	kafka-transaction-coordinator kafka-share-coordinator kafka-coordinator-common
	scala-library jackson-databind log4j-core log4j-slf4j2-impl slf4j-api
)

kafka_libs_current() {
	[[ -f $KAFKA_LIBS/.versions && $(cat "$KAFKA_LIBS/.versions") == "$KAFKA_VERSION $LOG4J_VERSION $SLF4J_VERSION" ]]
}

# kafka_fetch copies the jars from Maven's cache (~/.m2, filled from Maven Central on
# the first run) into .stack/kafka/libs. It copies into a temp dir and renames, so an
# interrupted fetch never leaves a half-filled classpath behind.
kafka_fetch() {
	kafka_libs_current && return 0
	ensure_java
	local start=$SECONDS tmp=$KAFKA_DIR/libs.tmp
	log "kafka: fetching Apache Kafka $KAFKA_VERSION jars with mvn (cached in ~/.m2 after the first run)"
	rm -rf "$tmp"
	mkdir -p "$KAFKA_DIR"
	# Maven's output is noise unless it fails; then it is the diagnosis.
	mvn -q -B -Dstyle.color=never -f "$REPO_ROOT/scripts/kafka/pom.xml" \
		-Dkafka.version="$KAFKA_VERSION" -Dlog4j.version="$LOG4J_VERSION" -Dslf4j.version="$SLF4J_VERSION" \
		dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >"$KAFKA_DIR/mvn.log" 2>&1 ||
		{ cat "$KAFKA_DIR/mvn.log" >&2; die "kafka: mvn could not fetch the jars (is Maven Central reachable?)"; }
	local jar
	for jar in "${KAFKA_REQUIRED_JARS[@]}"; do
		compgen -G "$tmp/$jar-[0-9]*.jar" >/dev/null || die "kafka: $jar is missing from the fetched jars; add it to scripts/kafka/pom.xml"
	done
	echo "$KAFKA_VERSION $LOG4J_VERSION $SLF4J_VERSION" >"$tmp/.versions"
	rm -rf "$KAFKA_LIBS"
	mv "$tmp" "$KAFKA_LIBS"
	log "kafka: fetched $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars in $((SECONDS - start)) s"
}

# Written on every `up`, so changed ports take effect at the next start.
kafka_write_config() {
	mkdir -p "$KAFKA_DIR/config" "$KAFKA_DIR/logs" "$KAFKA_DIR/data"
	cat >"$KAFKA_DIR/config/server.properties" <<EOF
# Generated by scripts/stack.sh on every start; edit the script, not this file.
# One node that is both broker and controller (KRaft), bound to loopback only.
process.roles=broker,controller
node.id=1
# A static voter set: the controller port lives in config, not in the formatted
# metadata, so a changed KAFKA_CONTROLLER_PORT needs no reformat.
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DIR/data
# The contract's default partition count; topics are created by the app (kadm), never
# by a typo in a consumer.
num.partitions=12
auto.create.topics.enable=false
# A single node cannot hold more than one replica of the internal topics.
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests join groups constantly; the 3 s production delay would only slow them down.
group.initial.rebalance.delay.ms=0
# A transaction (v2) that writes a partition while the previous transaction's
# commit markers are still being written is retried by the broker after this
# wait. The default 20 ms was most of orderflow's end-to-end latency, since
# its publisher starts the next transaction right after the last one.
add.partitions.to.txn.retry.backoff.ms=1
EOF
	cat >"$KAFKA_DIR/config/log4j2.properties" <<EOF
# Generated by scripts/stack.sh. Broker logs go to $KAFKA_DIR/logs/server.log.
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = $KAFKA_DIR/logs/server.log
appender.file.filePattern = $KAFKA_DIR/logs/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
EOF
}

kafka_pid() {
	local pid
	[[ -f $KAFKA_PID_FILE ]] || return 1
	pid=$(<"$KAFKA_PID_FILE")
	# Matching the command line guards against a recycled pid after a reboot.
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
	echo "$pid"
}

# kafka_answers sends a Kafka ApiVersions v0 request over bash's /dev/tcp and checks the
# reply carries our correlation id and error code 0: the broker really speaks Kafka,
# not just accepts connections. Needs no Kafka client tools.
kafka_answers() {
	local reply
	reply=$(
		exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT" || exit 1
		# size=15, api_key=18 (ApiVersions), version=0, correlation_id=1, client_id="stack"
		printf '\x00\x00\x00\x0f\x00\x12\x00\x00\x00\x00\x00\x01\x00\x05stack' >&3
		timeout 5 head -c 10 <&3 | od -An -tx1 | tr -d ' \n'
	) 2>/dev/null || return 1
	# 4 bytes size (any), then correlation id 00000001, then error code 0000.
	[[ ${reply:8:12} == 000000010000 ]]
}

kafka_format() {
	if [[ -f $KAFKA_DIR/data/meta.properties ]]; then
		return 0
	fi
	log "kafka: formatting storage in $KAFKA_DIR/data (cluster id $KAFKA_CLUSTER_ID)"
	java -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$KAFKA_DIR/config/log4j2.properties" \
		kafka.tools.StorageTool format --ignore-formatted -t "$KAFKA_CLUSTER_ID" \
		-c "$KAFKA_DIR/config/server.properties" >"$KAFKA_DIR/logs/format.log" 2>&1 ||
		{ cat "$KAFKA_DIR/logs/format.log" >&2; die "kafka: storage format failed"; }
}

kafka_up() {
	if kafka_external; then
		log "kafka: external (KAFKA_BROKERS=$KAFKA_BROKERS), not starting one"
		return 0
	fi
	local pid
	if pid=$(kafka_pid) && kafka_answers; then
		log "kafka: already running (pid $pid) on $LOCAL_KAFKA_BROKERS"
		return 0
	fi
	if [[ -n ${pid:-} ]]; then
		# Alive but not answering: hung or still starting. Restart from a known state.
		log "kafka: pid $pid does not answer on $LOCAL_KAFKA_BROKERS, restarting it"
		kafka_down
	fi
	if port_open "$KAFKA_PORT" || port_open "$KAFKA_CONTROLLER_PORT"; then
		die "kafka: port $KAFKA_PORT or $KAFKA_CONTROLLER_PORT is taken by another process (docker compose?); set KAFKA_PORT/KAFKA_CONTROLLER_PORT or stop it"
	fi
	kafka_fetch
	kafka_write_config
	kafka_format

	local server_log=$KAFKA_DIR/logs/server.log offset=0
	# Only log lines written by this start count as readiness.
	[[ -f $server_log ]] && offset=$(stat -c %s "$server_log")
	# setsid: own session, so Ctrl-C on `make run` or a closed terminal does not kill
	# the broker. 9>&-: the broker must not inherit (and hold) our stack lock.
	# shellcheck disable=SC2086 # the *_OPTS are lists of JVM flags
	setsid nohup java $KAFKA_HEAP_OPTS $KAFKA_JVM_PERFORMANCE_OPTS -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
		-Xlog:gc:file="$KAFKA_DIR/logs/gc.log":time,uptime:filecount=2,filesize=20M \
		-Dlog4j2.configurationFile="$KAFKA_DIR/config/log4j2.properties" -Dkafka.logs.dir="$KAFKA_DIR/logs" \
		-cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_DIR/config/server.properties" \
		>"$KAFKA_DIR/logs/stdout.log" 2>&1 </dev/null 9>&- &
	pid=$!
	echo "$pid" >"$KAFKA_PID_FILE"

	local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
	# Not grep -q: it exits at the first match, and under pipefail the SIGPIPE that tail
	# then gets (once the new log is over a pipe's buffer) fails the test for good.
	until port_open "$KAFKA_PORT" && tail -c "+$((offset + 1))" "$server_log" 2>/dev/null | grep 'Kafka Server started' >/dev/null && kafka_answers; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 30 "$KAFKA_DIR/logs/stdout.log" "$server_log" >&2 2>/dev/null || true
			rm -f "$KAFKA_PID_FILE"
			die "kafka: the broker exited during start (logs above, full ones in $KAFKA_DIR/logs)"
		fi
		if ((SECONDS >= deadline)); then
			tail -n 30 "$KAFKA_DIR/logs/stdout.log" "$server_log" >&2 2>/dev/null || true
			die "kafka: not ready on $LOCAL_KAFKA_BROKERS after ${KAFKA_START_TIMEOUT}s (pid $pid still running; logs above)"
		fi
		sleep 0.5
	done
	log "kafka: started Apache Kafka $KAFKA_VERSION from jars in ${KAFKA_LIBS#"$REPO_ROOT"/} (pid $pid) on $LOCAL_KAFKA_BROKERS"
}

kafka_down() {
	kafka_external && return 0
	local pid
	if ! pid=$(kafka_pid); then
		rm -f "$KAFKA_PID_FILE"
		log "kafka: not running"
		return 0
	fi
	# SIGTERM runs Kafka's controlled shutdown, which flushes logs and avoids a slow
	# recovery on the next start.
	kill -TERM "$pid"
	local deadline=$((SECONDS + 60))
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			log "kafka: pid $pid ignored SIGTERM for 60 s, killing it"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.2
	done
	rm -f "$KAFKA_PID_FILE"
	log "kafka: stopped (pid $pid)"
}

kafka_status() {
	local pid
	if kafka_external; then
		echo "kafka:    external  KAFKA_BROKERS=$KAFKA_BROKERS"
	elif pid=$(kafka_pid) && kafka_answers; then
		echo "kafka:    running   $LOCAL_KAFKA_BROKERS  pid $pid  Apache Kafka $KAFKA_VERSION"
	elif [[ -n ${pid:-} ]]; then
		echo "kafka:    starting or hung  pid $pid, no answer on $LOCAL_KAFKA_BROKERS"
		return 1
	else
		echo "kafka:    stopped"
		return 1
	fi
}

# ------------------------------------------------------------------------ PostgreSQL

PG_BIN=
find_pg_bin() {
	local dir
	# Debian keeps the server binaries (initdb, pg_ctl, postgres) out of PATH, one dir
	# per major version; take the newest.
	dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
	if [[ -n $dir && -x $dir/initdb ]]; then
		PG_BIN=$dir
	elif command -v initdb >/dev/null 2>&1; then
		PG_BIN=$(dirname "$(readlink -f "$(command -v initdb)")")
	else
		return 1
	fi
}

ensure_pg_bin() {
	[[ -n $PG_BIN ]] && return 0
	find_pg_bin && return 0
	apt_install postgresql
	find_pg_bin || die "postgresql was installed but initdb is still not found"
}

# initdb and pg_ctl refuse to run as root, so as root the cluster belongs to the
# `postgres` system user (Debian's package creates it).
as_pg() {
	if is_root; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

pg_prepare_dirs() {
	mkdir -p "$PG_DIR" "$PG_SOCKET_DIR" "$(dirname "$PG_LOG")"
	if is_root; then
		id -u postgres >/dev/null 2>&1 ||
			useradd --system --user-group --home-dir "$PG_DIR" --shell /usr/sbin/nologin postgres
		chown postgres: "$PG_DIR" "$PG_SOCKET_DIR" "$(dirname "$PG_LOG")"
		runuser -u postgres -- test -w "$PG_DIR" ||
			die "postgres: user 'postgres' cannot reach $PG_DIR (a parent dir is not traversable); set ORDERFLOW_STACK_DIR to a path under /tmp or /work"
	fi
}

pg_running() { [[ -f $PG_DATA/postmaster.pid ]] && as_pg "$PG_BIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1; }
# -U: without it pg_isready logs in as the Unix user, and the server logs a FATAL each poll.
pg_answers() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -t 2; }
psql_admin() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }

pg_init() {
	[[ -f $PG_DATA/PG_VERSION ]] && return 0
	log "postgres: creating a cluster in $PG_DATA ($("$PG_BIN/postgres" --version))"
	# trust: a loopback-only throwaway dev cluster; C locale: works on machines without
	# generated locales and sorts like the CI machine.
	as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --locale=C >"$PG_DIR/log/initdb.log" 2>&1 ||
		{ cat "$PG_DIR/log/initdb.log" >&2; die "postgres: initdb failed"; }
	echo "include_if_exists = 'orderflow.conf'" >>"$PG_DATA/postgresql.conf"
}

# Written on every `up`; read at server start.
pg_write_config() {
	cat >"$PG_DATA/orderflow.conf" <<EOF
# Generated by scripts/stack.sh on every start; edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCKET_DIR'
# Tests create a database each, and bench runs many writers.
max_connections = 200
shared_buffers = 256MB
work_mem = 16MB
# Fewer checkpoints under bench load. fsync and synchronous_commit stay on: the
# benchmarks measure real durable commits.
max_wal_size = 2GB
checkpoint_timeout = 15min
# No replicas here, so minimal WAL.
wal_level = minimal
max_wal_senders = 0
log_min_messages = warning
log_line_prefix = '%m [%p] %d '
EOF
	is_root && chown postgres: "$PG_DATA/orderflow.conf"
	return 0
}

pg_up() {
	if pg_external; then
		log "postgres: external (DATABASE_URL is set), not starting one"
		return 0
	fi
	ensure_pg_bin
	if pg_running && pg_answers; then
		log "postgres: already running on 127.0.0.1:$PG_PORT"
		return 0
	fi
	pg_prepare_dirs
	pg_init
	pg_write_config
	if pg_running; then
		# Running but not answering on our port: started with another PG_PORT, or stuck.
		log "postgres: running but not answering on 127.0.0.1:$PG_PORT, restarting it"
		as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w >/dev/null
	fi
	port_open "$PG_PORT" && die "postgres: port $PG_PORT is taken by another process; set PG_PORT or stop it"
	# pg_ctl removes a stale postmaster.pid left by a crash by itself. 9>&-: the
	# postmaster must not inherit (and hold) our stack lock.
	as_pg "$PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$PG_LOG" -w -t "$PG_START_TIMEOUT" >/dev/null 9>&- ||
		{ tail -n 30 "$PG_LOG" >&2 || true; die "postgres: did not start (log above)"; }
	local deadline=$((SECONDS + PG_START_TIMEOUT))
	until pg_answers; do
		((SECONDS < deadline)) || die "postgres: not ready on 127.0.0.1:$PG_PORT after ${PG_START_TIMEOUT}s"
		sleep 0.2
	done
	if [[ -z $(psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'orderflow'") ]]; then
		psql_admin -d postgres -c 'CREATE DATABASE orderflow'
	fi
	log "postgres: started $("$PG_BIN/postgres" --version | awk '{print $3}') from $PG_BIN on 127.0.0.1:$PG_PORT (data in ${PG_DATA#"$REPO_ROOT"/})"
}

pg_down() {
	pg_external && return 0
	# No binaries means nothing was ever started here; do not install them just to stop.
	if ! find_pg_bin || ! pg_running; then
		log "postgres: not running"
		return 0
	fi
	as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w >/dev/null
	log "postgres: stopped"
}

# pg_db_reset empties the app database without touching the test databases or Kafka.
# Only ever the local cluster: an external DATABASE_URL may hold data that matters.
pg_db_reset() {
	pg_external && die "postgres: DATABASE_URL points at an external server; refusing to drop its database"
	ensure_pg_bin
	pg_answers || die "postgres: not running; run scripts/stack.sh up first"
	# FORCE: a running `orderflow serve` would otherwise block the drop.
	psql_admin -d postgres -c 'DROP DATABASE IF EXISTS orderflow WITH (FORCE)' -c 'CREATE DATABASE orderflow'
	log "postgres: database orderflow dropped and recreated on 127.0.0.1:$PG_PORT"
}

pg_status() {
	if pg_external; then
		echo "postgres: external  DATABASE_URL is set"
	elif find_pg_bin && pg_running && pg_answers; then
		echo "postgres: running   127.0.0.1:$PG_PORT  $("$PG_BIN/postgres" --version | awk '{print $3}')  data ${PG_DATA#"$REPO_ROOT"/}"
	else
		echo "postgres: stopped"
		return 1
	fi
}

# ---------------------------------------------------------------------------- main

# up/down/reset take a lock so two `make` runs at once do not start two brokers.
lock() {
	mkdir -p "$STACK_DIR"
	exec 9>"$STACK_DIR/.lock"
	flock -w 300 9 || die "another stack.sh holds $STACK_DIR/.lock"
}

cmd_env() {
	local brokers=${KAFKA_BROKERS:-$LOCAL_KAFKA_BROKERS} db=$LOCAL_DATABASE_URL
	pg_external && db=$DATABASE_URL
	echo "export KAFKA_BROKERS=$(shell_quote "$brokers")"
	echo "export DATABASE_URL=$(shell_quote "$db")"
	echo "export ORDERFLOW_HTTP_ADDR=$(shell_quote "127.0.0.1:$ORDERFLOW_HTTP_PORT")"
}

cmd_logs() {
	local which=all follow=()
	for arg in "$@"; do
		case $arg in
		kafka | pg) which=$arg ;;
		-f) follow=(-F) ;;
		*) die "usage: stack.sh logs [kafka|pg] [-f]" ;;
		esac
	done
	local files=()
	[[ $which != pg ]] && files+=("$KAFKA_DIR/logs/server.log" "$KAFKA_DIR/logs/stdout.log")
	[[ $which != kafka ]] && files+=("$PG_LOG")
	tail -n 50 "${follow[@]}" "${files[@]}" 2>/dev/null || true
}

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

main() {
	local cmd=${1:-help}
	shift || true
	case $cmd in
	up)
		lock
		kafka_up
		pg_up
		;;
	down)
		lock
		kafka_down
		pg_down
		;;
	status)
		local rc=0
		kafka_status || rc=3
		pg_status || rc=3
		return "$rc"
		;;
	env) cmd_env ;;
	logs) cmd_logs "$@" ;;
	reset)
		lock
		kafka_down
		pg_down
		# The jars stay: they are a cache, not state.
		rm -rf "$KAFKA_DIR/data" "$KAFKA_DIR/logs" "$KAFKA_DIR/config" "$PG_DIR"
		log "stack: data deleted from $STACK_DIR (Kafka jars kept)"
		;;
	db-reset) pg_db_reset ;;
	kafka-fetch)
		lock
		kafka_fetch
		;;
	help | -h | --help) usage ;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
