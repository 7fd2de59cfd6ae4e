#!/usr/bin/env bash
# Run a real single-node Apache Kafka broker (KRaft, broker+controller in one
# process) on 127.0.0.1 for tests. No Docker: Kafka's own jars come from Maven
# Central through `mvn` (deploy/kafka/pom.xml) and are cached between runs.
#
#   local-kafka.sh start                       start (or reuse) the broker, wait until it
#                                              answers, print 127.0.0.1:PORT last
#   local-kafka.sh stop                        stop the broker and remove its state
#   local-kafka.sh pause                       stop the broker, keep its state
#   local-kafka.sh resume                      start a paused broker on its state
#   local-kafka.sh status                      exit 0 when the broker runs
#   local-kafka.sh bootstrap                   print 127.0.0.1:PORT
#   local-kafka.sh create-topic NAME [PARTITIONS] [TOPIC-TOOL ARGS...]
#                                              e.g. create-topic statements 1 --config retention.ms=-1
#   local-kafka.sh list-topics                 list the broker's topics
#
# Environment (all optional):
#   LRS_KAFKA_VERSION          Kafka version (default 4.3.1; needs Java 17+)
#   LRS_KAFKA_PORT             client listener port (default 19092)
#   LRS_KAFKA_CONTROLLER_PORT  KRaft controller port (default 19093)
#   LRS_KAFKA_STATE            state directory (default ${TMPDIR:-/tmp}/lrs-kafka-PORT)
#   LRS_KAFKA_CACHE            jar cache (default ~/.cache/lrs-kafka); jars in CACHE/VERSION/libs
#   LRS_KAFKA_HEAP_OPTS        broker JVM heap (default "-Xms256m -Xmx512m")
#   LRS_KAFKA_START_TIMEOUT    seconds `start` waits for the broker (default 90)
set -euo pipefail

KAFKA_VERSION="${LRS_KAFKA_VERSION:-4.3.1}"
PORT="${LRS_KAFKA_PORT:-19092}"
CONTROLLER_PORT="${LRS_KAFKA_CONTROLLER_PORT:-19093}"
STATE="${LRS_KAFKA_STATE:-${TMPDIR:-/tmp}/lrs-kafka-$PORT}"
STATE="${STATE%/}"
CACHE="${LRS_KAFKA_CACHE:-$HOME/.cache/lrs-kafka}"
LIBS="$CACHE/$KAFKA_VERSION/libs"
HEAP_OPTS="${LRS_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
START_TIMEOUT="${LRS_KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT=30
BOOTSTRAP="127.0.0.1:$PORT"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PID_FILE="$STATE/kafka.pid"
PROPS="$STATE/server.properties"
BROKER_LOG="$STATE/logs/server.log"

die() {
  echo "local-kafka: $*" >&2
  exit 1
}
log() { echo "local-kafka: $*" >&2; }

# --- jars -----------------------------------------------------------------

# Fill $LIBS with kafka_2.13, kafka-tools and their runtime dependencies.
# A `.complete` marker makes a later run skip Maven entirely.
ensure_libs() {
  [[ -f "$LIBS/.complete" ]] && return 0
  command -v mvn >/dev/null || die "mvn is not installed; it is needed once to fetch Kafka $KAFKA_VERSION from Maven Central"
  command -v java >/dev/null || die "java is not installed (Kafka $KAFKA_VERSION needs Java 17 or newer)"
  mkdir -p "$CACHE/$KAFKA_VERSION"
  local tmp mvn_log
  tmp="$(mktemp -d "$CACHE/$KAFKA_VERSION/libs.tmp.XXXXXX")"
  mvn_log="$CACHE/$KAFKA_VERSION/mvn.log"
  log "fetching Apache Kafka $KAFKA_VERSION jars with mvn into $LIBS (once)"
  # The plugin is named in full so that a missing network shows up as a
  # transfer error rather than as "no plugin found for prefix".
  if ! mvn -B -ntp -Dstyle.color=never -f "$HERE/pom.xml" \
    -Dkafka.version="$KAFKA_VERSION" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" \
    >"$mvn_log" 2>&1; then
    rm -rf "$tmp"
    grep -F '[ERROR]' "$mvn_log" | head -n 5 >&2 || true
    if grep -qiE 'could not transfer|transfer failed|unknownhost|unknown host|connect(ion)? (timed out|refused)|network is unreachable|no route to host|offline' "$mvn_log"; then
      die "could not reach Maven Central to download Apache Kafka $KAFKA_VERSION (full log: $mvn_log); the broker needs it, nothing else is substituted"
    fi
    die "mvn failed to fetch Apache Kafka $KAFKA_VERSION from Maven Central (full log: $mvn_log)"
  fi
  if ! ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1; then
    rm -rf "$tmp"
    die "mvn finished but no kafka_2.13 jar arrived (log: $mvn_log)"
  fi
  touch "$tmp/.complete"
  # Publish atomically; another run may have won the race, then keep its copy.
  if ! mv -T "$tmp" "$LIBS" 2>/dev/null; then
    rm -rf "$tmp"
    [[ -f "$LIBS/.complete" ]] || die "could not move the jars into $LIBS"
  fi
}

# --- processes ------------------------------------------------------------

# Print the broker's PID when the pid file names a live process that is our
# kafka.Kafka with this state directory's server.properties.
broker_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(<"$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  local cmdline
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *kafka.Kafka*"$PROPS"* ]] || return 1
  echo "$pid"
}

# Run one Kafka command-line tool from the cached classpath, quiet logging.
run_tool() {
  java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    -cp "$LIBS/*" "$@"
}

# Admin-client settings so a probe against a not-yet-ready broker gives up fast.
write_client_props() {
  cat >"$STATE/client.properties" <<EOF
request.timeout.ms=5000
default.api.timeout.ms=8000
EOF
}

topic_tool() {
  [[ -f "$STATE/client.properties" ]] || die "no broker state in $STATE; run '$0 start' first"
  run_tool org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$BOOTSTRAP" --command-config "$STATE/client.properties" "$@"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

fail_start() {
  log "$1"
  if [[ -f "$BROKER_LOG" ]]; then
    log "last lines of $BROKER_LOG:"
    tail -n 40 "$BROKER_LOG" >&2 || true
  fi
  if [[ -s "$STATE/kafka.out" ]]; then
    log "broker stdout/stderr ($STATE/kafka.out):"
    tail -n 20 "$STATE/kafka.out" >&2 || true
  fi
  exit 1
}

# Poll until the broker lists topics, the process dies, or the deadline passes.
wait_ready() {
  local pid="$1" deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    kill -0 "$pid" 2>/dev/null || fail_start "the broker (pid $pid) exited during start"
    if port_open "$PORT" && topic_tool --list >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.5
  done
  fail_start "the broker did not answer on $BOOTSTRAP within ${START_TIMEOUT}s"
}

write_server_props() {
  cat >"$PROPS" <<EOF
# Single-node KRaft broker for tests, written by local-kafka.sh.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$STATE/data
num.partitions=1
auto.create.topics.enable=false
# One replica of everything, and small internal topics so first use is quick.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
}

# Runs in a background subshell and becomes the broker (exec keeps the PID).
# Inherited descriptors above stderr are closed first, so the detached broker
# never holds a caller's pipe (or our lock) open.
launch_broker() {
  local fd
  for fd in /proc/self/fd/*; do
    fd="${fd##*/}"
    if ((fd > 2)); then eval "exec ${fd}>&-" 2>/dev/null || true; fi
  done
  local -a heap
  read -r -a heap <<<"$HEAP_OPTS"
  exec setsid nohup java "${heap[@]}" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dorg.slf4j.simpleLogger.logFile="$BROKER_LOG" \
    -Dorg.slf4j.simpleLogger.showDateTime=true \
    -Dorg.slf4j.simpleLogger.dateTimeFormat="yyyy-MM-dd'T'HH:mm:ss.SSS" \
    -cp "$LIBS/*" kafka.Kafka "$PROPS" \
    >"$STATE/kafka.out" 2>&1 </dev/null
}

# Serialise start/stop for one state directory (the lock lives beside it,
# because stop removes the directory itself).
take_lock() {
  mkdir -p "$(dirname "$STATE")"
  exec 9>"$STATE.lock"
  flock -w $((START_TIMEOUT + STOP_TIMEOUT)) 9 || die "another local-kafka.sh holds $STATE.lock"
}

# --- commands -------------------------------------------------------------

cmd_start() {
  take_lock
  ensure_libs
  local pid
  if pid="$(broker_pid)"; then
    wait_ready "$pid"
    echo "$BOOTSTRAP"
    return 0
  fi
  # Nothing of ours runs: refuse ports held by someone else, then start clean.
  port_open "$PORT" && die "127.0.0.1:$PORT is already in use by another process"
  port_open "$CONTROLLER_PORT" && die "127.0.0.1:$CONTROLLER_PORT is already in use by another process"
  remove_state
  mkdir -p "$STATE/logs" "$STATE/data"
  write_server_props
  write_client_props

  # Format the KRaft storage with a fresh cluster id (22 chars of base64url;
  # passed with "=" because it may begin with "-").
  local cluster_id
  cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  if ! run_tool kafka.tools.StorageTool format --cluster-id="$cluster_id" -c "$PROPS" \
    >"$STATE/logs/format.log" 2>&1; then
    tail -n 20 "$STATE/logs/format.log" >&2 || true
    die "formatting the KRaft storage failed (log: $STATE/logs/format.log)"
  fi

  # Start detached in its own session; logs go to a file in the state dir.
  launch_broker &
  pid=$!
  echo "$pid" >"$PID_FILE"
  log "broker pid $pid, state $STATE, log $BROKER_LOG"
  wait_ready "$pid"
  echo "$BOOTSTRAP"
}

# Remove the state directory, but only one that this script made.
remove_state() {
  [[ -d "$STATE" ]] || return 0
  [[ -n "$STATE" && "$STATE" != "/" ]] || die "refusing to remove state directory '$STATE'"
  if [[ -f "$PROPS" || -f "$PID_FILE" ]]; then
    rm -rf "$STATE"
  elif ! rmdir "$STATE" 2>/dev/null; then
    die "$STATE exists but was not made by local-kafka.sh; remove it or set LRS_KAFKA_STATE"
  fi
}

# TERM the broker (KILL after STOP_TIMEOUT); its state stays.
terminate_broker() {
  local pid
  if pid="$(broker_pid)"; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "broker pid $pid ignored TERM for ${STOP_TIMEOUT}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    log "stopped broker pid $pid"
  fi
}

cmd_stop() {
  take_lock
  terminate_broker
  remove_state
}

# Stop the broker but keep its data, to test clients while it is away.
cmd_pause() {
  take_lock
  terminate_broker
}

# Start a paused broker again on its data.
cmd_resume() {
  take_lock
  ensure_libs
  local pid
  if ! pid="$(broker_pid)"; then
    [[ -f "$PROPS" ]] || die "no paused broker in $STATE; run '$0 start'"
    launch_broker &
    pid=$!
    echo "$pid" >"$PID_FILE"
    log "broker pid $pid resumed on $STATE"
  fi
  wait_ready "$pid"
  echo "$BOOTSTRAP"
}

cmd_status() {
  local pid
  if pid="$(broker_pid)"; then
    echo "running: pid $pid, bootstrap $BOOTSTRAP, state $STATE"
  else
    echo "not running (state $STATE)"
    return 1
  fi
}

cmd_create_topic() {
  [[ $# -ge 1 && "$1" != -* ]] || die "usage: $0 create-topic NAME [PARTITIONS] [TopicCommand args...]"
  local name="$1" partitions=1
  shift
  if [[ $# -ge 1 && "$1" =~ ^[0-9]+$ ]]; then
    partitions="$1"
    shift
  fi
  ensure_libs
  broker_pid >/dev/null || die "no broker runs for $STATE; run '$0 start' first"
  topic_tool --create --topic "$name" --partitions "$partitions" --replication-factor 1 "$@"
}

cmd_list_topics() {
  ensure_libs
  broker_pid >/dev/null || die "no broker runs for $STATE; run '$0 start' first"
  topic_tool --list
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  pause) cmd_pause ;;
  resume) cmd_resume ;;
  status) cmd_status ;;
  bootstrap) echo "$BOOTSTRAP" ;;
  create-topic)
    shift
    cmd_create_topic "$@"
    ;;
  list-topics) cmd_list_topics ;;
  *) usage ;;
esac
