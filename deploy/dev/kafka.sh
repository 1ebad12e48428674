#!/usr/bin/env bash
# deploy/dev/kafka.sh — a real single-node Apache Kafka broker (KRaft, combined
# broker+controller) for tests and local runs, built from the official Apache
# Kafka jars on Maven Central (no tarball download needed).
#
# Usage:
#   deploy/dev/kafka.sh fetch                       # resolve jars into the cache (once)
#   deploy/dev/kafka.sh start                       # fetch, format, launch, wait; prints bootstrap=HOST:PORT
#   deploy/dev/kafka.sh status                      # exit 0 if running
#   deploy/dev/kafka.sh topic-create NAME [PARTITIONS] [extra TopicCommand args...]
#   deploy/dev/kafka.sh bootstrap                   # print bootstrap=HOST:PORT of the running broker
#   deploy/dev/kafka.sh pid                         # print the running broker's pid
#   deploy/dev/kafka.sh stop                        # TERM (then KILL), remove the data dir
#
# Each checkout has its own broker: the state dir defaults to one per
# checkout, and the ports, when not given, are chosen free at `start` and
# recorded in the state dir, so that `bootstrap`, `status` and `stop` (and the
# tests, through `bootstrap`) find them. Two checkouts running tests at once
# never share, or stop, one broker.
#
# Environment (all optional):
#   SCRUBS_KAFKA_VERSION          Kafka version                      (default: 4.3.1)
#   SCRUBS_KAFKA_HOME             jar cache; jars go in $it/lib      (default: $HOME/.cache/scrubs-kafka)
#   SCRUBS_KAFKA_STATE            pid/log/config/ports dir           (default: ${TMPDIR:-/tmp}/scrubs-kafka-<checkout hash>)
#   SCRUBS_KAFKA_PORT             PLAINTEXT listener, 127.0.0.1 only (default: a free port chosen at start)
#   SCRUBS_KAFKA_CONTROLLER_PORT  KRaft CONTROLLER listener          (default: a free port chosen at start)
#   SCRUBS_KAFKA_HEAP_OPTS        broker JVM heap                    (default: -Xmx512m -Xms128m)
#   SCRUBS_KAFKA_START_TIMEOUT    seconds to wait for readiness      (default: 90)
#   SCRUBS_KAFKA_STOP_TIMEOUT     seconds between TERM and KILL      (default: 30)
#   SCRUBS_KAFKA_AUTO_CREATE      auto.create.topics.enable          (default: false)
#   JAVA_HOME / JAVA              java to use (17+ required by Kafka 4.x brokers)
#
# The data dir (KRaft metadata + topic logs) is a fresh `mktemp -d` per start,
# with a random cluster id; `stop` deletes it. Nothing survives a stop.

set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"

KAFKA_VERSION="${SCRUBS_KAFKA_VERSION:-4.3.1}"
KAFKA_HOME="${SCRUBS_KAFKA_HOME:-$HOME/.cache/scrubs-kafka}"
LIB="$KAFKA_HOME/lib"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
CHECKOUT_ID="$(printf '%s' "$REPO_ROOT" | cksum | cut -d' ' -f1)"
STATE="${SCRUBS_KAFKA_STATE:-${TMPDIR:-/tmp}/scrubs-kafka-$CHECKOUT_ID}"
HOST=127.0.0.1
PORTS_FILE="$STATE/ports"
# Given ports win; otherwise the ones the running broker's `start` recorded.
PORT="${SCRUBS_KAFKA_PORT:-}"
CONTROLLER_PORT="${SCRUBS_KAFKA_CONTROLLER_PORT:-}"
if [[ -f "$PORTS_FILE" ]]; then
  read -r RECORDED_PORT RECORDED_CONTROLLER_PORT <"$PORTS_FILE" || true
  PORT="${PORT:-${RECORDED_PORT:-}}"
  CONTROLLER_PORT="${CONTROLLER_PORT:-${RECORDED_CONTROLLER_PORT:-}}"
fi
HEAP_OPTS="${SCRUBS_KAFKA_HEAP_OPTS:--Xmx512m -Xms128m}"
START_TIMEOUT="${SCRUBS_KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${SCRUBS_KAFKA_STOP_TIMEOUT:-30}"
AUTO_CREATE="${SCRUBS_KAFKA_AUTO_CREATE:-false}"

PID_FILE="$STATE/kafka.pid"
LOG_FILE="$STATE/kafka.log"
DATADIR_FILE="$STATE/datadir"
SERVER_PROPS="$STATE/server.properties"
BROKER_LOG4J="$STATE/log4j2-broker.properties"
TOOLS_LOG4J="$STATE/log4j2-tools.properties"
CLIENT_PROPS="$STATE/client.properties"
LIB_MARKER="$LIB/.scrubs-kafka-version"
BOOTSTRAP="$HOST:$PORT"

if [[ -n "${JAVA:-}" ]]; then :
elif [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then JAVA="$JAVA_HOME/bin/java"
else JAVA=java
fi

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
  exit 2
}

# Exclusive lock on file $2, held on fd $1 until this script exits
# (flock(1) where available, e.g. Linux; no locking without it).
take_lock() {
  local fd="$1" file="$2"
  mkdir -p "$(dirname "$file")"
  eval "exec $fd>\"\$file\""
  if command -v flock >/dev/null 2>&1; then
    flock -w 600 "$fd" || die "timed out waiting for lock $file"
  fi
}

check_java() {
  command -v "$JAVA" >/dev/null 2>&1 || die "java not found (set JAVA_HOME or JAVA); Kafka $KAFKA_VERSION needs Java 17+"
  local v major
  v="$("$JAVA" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')"
  major="${v%%.*}"
  [[ "$major" == 1 ]] && major="$(echo "$v" | cut -d. -f2)"
  if [[ "$major" =~ ^[0-9]+$ ]] && (( major < 17 )); then
    die "java $v is too old: Kafka $KAFKA_VERSION brokers need Java 17+"
  fi
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# A port nobody listens on, below Linux's ephemeral range (32768-60999) so
# that outgoing connections do not take it meanwhile; never $1.
free_port() {
  local p tries=0
  while (( tries++ < 500 )); do
    p=$(( 20000 + RANDOM % 12000 ))
    [[ "$p" == "${1:-}" ]] && continue
    port_open "$p" || { echo "$p"; return 0; }
  done
  die "found no free port between 20000 and 32000"
}

# True if $1 is a live process whose command line is our broker.
is_our_broker() {
  local pid="$1" args
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/cmdline" ]]; then
    args="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
  else
    args="$(ps -p "$pid" -o args= 2>/dev/null || true)"
  fi
  [[ "$args" == *kafka.Kafka* && "$args" == *"$SERVER_PROPS"* ]]
}

running_pid() {
  local pid
  [[ -f "$PID_FILE" ]] || return 1
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  is_our_broker "$pid" || return 1
  echo "$pid"
}

# Remove the data dir recorded by the last start, but only if it looks like ours.
remove_datadir() {
  local d
  [[ -f "$DATADIR_FILE" ]] || return 0
  d="$(cat "$DATADIR_FILE")"
  if [[ -n "$d" && "$(basename "$d")" == scrubs-kafka-data.* && -d "$d" ]]; then
    rm -rf -- "$d"
  fi
  rm -f "$DATADIR_FILE"
}

tail_log() {
  if [[ -f "$LOG_FILE" ]]; then
    log "last 50 lines of $LOG_FILE:"
    tail -n 50 "$LOG_FILE" >&2
  else
    log "(no broker log at $LOG_FILE)"
  fi
}

# java for the short-lived CLI tools (small heap, fast start, quiet logging),
# as a command that timeout(1) can run: tool_java [timeout-secs] CLASS ARGS...
tool_java() {
  local secs=0
  [[ "$1" =~ ^[0-9]+$ ]] && { secs="$1"; shift; }
  local cmd=("$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
             -Dlog4j2.configurationFile="$TOOLS_LOG4J" -cp "$LIB/*" "$@")
  if (( secs > 0 )) && command -v timeout >/dev/null 2>&1; then
    timeout "$secs" "${cmd[@]}"
  else
    "${cmd[@]}"
  fi
}

write_tool_configs() {
  mkdir -p "$STATE"
  cat >"$TOOLS_LOG4J" <<'EOF'
# log4j2 config for the Kafka CLI tools run by kafka.sh: warnings to stderr.
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = STDERR
EOF
  cat >"$CLIENT_PROPS" <<'EOF'
# AdminClient settings for kafka.sh's TopicCommand calls: fail fast, not after minutes.
request.timeout.ms=10000
default.api.timeout.ms=20000
EOF
}

cmd_fetch() {
  if [[ -f "$LIB_MARKER" && "$(cat "$LIB_MARKER")" == "$KAFKA_VERSION" ]]; then
    log "Kafka $KAFKA_VERSION jars already in $LIB"
    return 0
  fi
  take_lock 8 "$KAFKA_HOME/.fetch.lock"
  # Another process may have finished the fetch while we waited for the lock.
  if [[ -f "$LIB_MARKER" && "$(cat "$LIB_MARKER")" == "$KAFKA_VERSION" ]]; then
    log "Kafka $KAFKA_VERSION jars already in $LIB"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found: needed once to fetch the Kafka jars from Maven Central"
  [[ -f "$POM" ]] || die "missing $POM"
  local tmp="$KAFKA_HOME/lib.tmp.$$"
  rm -rf -- "$tmp"
  mkdir -p "$tmp"
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIB ..."
  local t0=$SECONDS
  # (sed strips the stray ANSI resets Maven 3.8 prints even with -B -q.)
  if ! mvn -B -q -Dstyle.color=never -f "$POM" -Dkafka.version="$KAFKA_VERSION" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1 \
      | sed -e $'s/\033\\[[0-9;]*m//g' -e '/^[[:space:]]*$/d' >&2; then
    rm -rf -- "$tmp"
    die "mvn could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (and kafka-tools); see the Maven errors above"
  fi
  ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 \
    || { rm -rf -- "$tmp"; die "fetch finished but kafka_2.13-$KAFKA_VERSION.jar is missing from $tmp"; }
  echo "$KAFKA_VERSION" >"$tmp/.scrubs-kafka-version"
  rm -rf -- "$LIB"
  mv -- "$tmp" "$LIB"
  log "fetched $(ls "$LIB"/*.jar | wc -l | tr -d ' ') jars ($(du -sh "$LIB" | cut -f1)) in $((SECONDS - t0))s"
}

write_broker_configs() {
  local data="$1"
  cat >"$SERVER_PROPS" <<EOF
# Written by deploy/dev/kafka.sh — single-node KRaft dev/test broker. Do not use in production.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT

log.dirs=$data/logs
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=$AUTO_CREATE

# Internal topics: one replica, few partitions (fast first consumer-group join).
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  cat >"$BROKER_LOG4J" <<'EOF'
# log4j2 config for the kafka.sh broker: everything to stdout, which kafka.sh sends to kafka.log.
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = info
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.clients.name = org.apache.kafka.clients
logger.clients.level = warn
EOF
}

# Is the broker serving admin requests? (lists topics through the real listener)
broker_ready() {
  local secs="${1:-30}"
  tool_java "$secs" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$BOOTSTRAP" --command-config "$CLIENT_PROPS" --list >/dev/null 2>>"$LOG_FILE"
}

cmd_start() {
  mkdir -p "$STATE"
  take_lock 9 "$STATE/.lock"

  local pid
  if pid="$(running_pid)"; then
    log "already running (pid $pid)"
    echo "bootstrap=$BOOTSTRAP"
    return 0
  fi
  # Stale leftovers of a broker that died or was killed without `stop`.
  rm -f "$PID_FILE" "$PORTS_FILE"
  remove_datadir

  # Ports not given are chosen now (a recorded pair belonged to a broker
  # that is gone) and recorded for `bootstrap`, `status` and `stop`.
  [[ -n "${SCRUBS_KAFKA_PORT:-}" ]] || PORT="$(free_port)"
  [[ -n "${SCRUBS_KAFKA_CONTROLLER_PORT:-}" ]] || CONTROLLER_PORT="$(free_port "$PORT")"
  BOOTSTRAP="$HOST:$PORT"

  for p in "$PORT" "$CONTROLLER_PORT"; do
    if port_open "$p"; then
      die "something else is already listening on $HOST:$p (not a broker started by this script with SCRUBS_KAFKA_STATE=$STATE); stop it or set SCRUBS_KAFKA_PORT / SCRUBS_KAFKA_CONTROLLER_PORT"
    fi
  done

  check_java
  cmd_fetch
  write_tool_configs

  local t0=$SECONDS data cluster_id
  data="$(mktemp -d "${TMPDIR:-/tmp}/scrubs-kafka-data.XXXXXX")"
  echo "$data" >"$DATADIR_FILE"
  # Random KRaft cluster id: 16 random bytes, base64url without padding (like
  # `kafka-storage random-uuid`, which also never starts one with '-').
  cluster_id="-"
  while [[ "$cluster_id" == -* ]]; do
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  done
  write_broker_configs "$data"

  [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.prev"
  : >"$LOG_FILE"

  if ! tool_java kafka.tools.StorageTool format --ignore-formatted \
        --cluster-id "$cluster_id" --config "$SERVER_PROPS" >>"$LOG_FILE" 2>&1; then
    tail_log
    remove_datadir
    die "formatting KRaft storage in $data failed"
  fi

  # fds 8/9 (the fetch/start locks) are closed for the broker so it does not keep them.
  nohup "$JAVA" $HEAP_OPTS \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$BROKER_LOG4J" -Dkafka.logs.dir="$STATE" \
    -cp "$LIB/*" kafka.Kafka "$SERVER_PROPS" \
    </dev/null >>"$LOG_FILE" 2>&1 8>&- 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  echo "$PORT $CONTROLLER_PORT" >"$PORTS_FILE"
  log "broker starting (pid $pid, data $data, log $LOG_FILE)"

  local deadline=$((SECONDS + START_TIMEOUT))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail_log
      rm -f "$PID_FILE" "$PORTS_FILE"
      remove_datadir
      die "broker exited during startup"
    fi
    local left=$((deadline - SECONDS))
    (( left < 5 )) && left=5
    if port_open "$PORT" && grep -q 'Kafka Server started' "$LOG_FILE" && broker_ready "$left"; then
      break
    fi
    if (( SECONDS >= deadline )); then
      tail_log
      log "broker not ready after ${START_TIMEOUT}s; stopping it"
      cmd_stop_locked >/dev/null 2>&1 || true
      die "Kafka broker did not come up on $BOOTSTRAP within ${START_TIMEOUT}s"
    fi
    sleep 0.5
  done
  log "broker ready in $((SECONDS - t0))s"
  echo "bootstrap=$BOOTSTRAP"
}

cmd_stop_locked() {
  local pid
  if pid="$(running_pid)"; then
    log "stopping broker (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "broker did not exit within ${STOP_TIMEOUT}s of SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    log "stopped"
  else
    log "not running"
  fi
  rm -f "$PID_FILE" "$PORTS_FILE"
  remove_datadir
}

cmd_stop() {
  mkdir -p "$STATE"
  take_lock 9 "$STATE/.lock"
  cmd_stop_locked
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    echo "running pid=$pid bootstrap=$BOOTSTRAP data=$(cat "$DATADIR_FILE" 2>/dev/null || echo '?') log=$LOG_FILE"
    return 0
  fi
  echo "not running"
  return 1
}

cmd_topic_create() {
  [[ $# -ge 1 ]] || die "usage: kafka.sh topic-create NAME [PARTITIONS] [extra TopicCommand args...]"
  local name="$1" partitions="${2:-1}"
  shift; [[ $# -gt 0 ]] && shift
  [[ "$partitions" =~ ^[0-9]+$ ]] || die "PARTITIONS must be a number, got '$partitions'"
  running_pid >/dev/null || die "broker not running (run: $0 start)"
  write_tool_configs
  tool_java 60 org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$BOOTSTRAP" --command-config "$CLIENT_PROPS" \
    --create --if-not-exists --topic "$name" \
    --partitions "$partitions" --replication-factor 1 "$@" \
    || die "creating topic '$name' failed"
}

main() {
  [[ $# -ge 1 ]] || usage
  local cmd="$1"; shift
  case "$cmd" in
    fetch)        cmd_fetch ;;
    start)        cmd_start ;;
    stop)         cmd_stop ;;
    status)       cmd_status ;;
    bootstrap)    running_pid >/dev/null || die "broker not running (SCRUBS_KAFKA_STATE=$STATE; run: $0 start)"
                  echo "bootstrap=$BOOTSTRAP" ;;
    pid)          running_pid || die "broker not running (SCRUBS_KAFKA_STATE=$STATE)" ;;
    topic-create) cmd_topic_create "$@" ;;
    -h|--help|help) usage ;;
    *) log "unknown command: $cmd"; usage ;;
  esac
}

main "$@"
