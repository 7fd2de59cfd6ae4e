#!/usr/bin/env bash
# Runs every benchmark behind loadtests/RESULTS.md and writes the load
# tool's JSON reports (and a summary) to $OUT.
#
#   loadtests/bench.sh [all|ceiling|embedded|scale|kafka|ab]
#
# Environment:
#   OUT                 where reports go (default target/bench)
#   BENCH_STATEMENTS    statements imported for the scale runs (default 500000)
#   BENCH_SECONDS       measured seconds of each write run (default 60)
#
# `ab` compares this checkout's build with another (not part of `all`):
#   AB_BASE             the other build's lrs binary (required)
#   AB_ROUNDS           rounds, each running both builds (default 4)
#   AB_SECONDS          measured seconds of each run (default 20)
#   AB_STATEMENTS       statements stored before each run (default 0: a
#                       fresh store with the directories)
#
# Everything listens on 127.0.0.1 only; every process started here is
# stopped by its PID on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WHAT="${1:-all}"
OUT="${OUT:-$ROOT/target/bench}"
N="${BENCH_STATEMENTS:-500000}"
SECONDS_EACH="${BENCH_SECONDS:-60}"
LRS="$ROOT/target/release/lrs"
LOAD="$ROOT/target/release/lrs-load"
KEY=bench
SECRET=bench-secret-0123456789
WORK="$(mktemp -d -t lrs-bench.XXXXXX)"
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ "${KAFKA_STARTED:-0}" == 1 ]]; then bash deploy/kafka/local-kafka.sh stop >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

log() { printf '\n== %s\n' "$*" >&2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits (at most 120 s) until URL answers 200.
wait_ready() {
  local url="$1" deadline=$((SECONDS + 120))
  until curl -fsS -o /dev/null "$url"; do
    ((SECONDS < deadline)) || { echo "no answer from $url" >&2; exit 1; }
    sleep 0.2
  done
}

# Waits until the server's projections have applied the whole log (a fresh
# store starts by projecting the 200,000-learner directory, and a scenario
# that outruns the projections leaves a backlog) and the writer and the
# projections have built their filters of ids (each a scan, a few seconds a
# million, on a core the measurement would otherwise have), so no
# measurement includes work left over from before it.
wait_caught_up() {
  local url="$1" deadline=$((SECONDS + 600))
  until curl -fsS "$url/metrics" | awk '/^lrs_projection_lag_events/ { if ($NF != 0) behind = 1; seen = 1 }
      /^lrs_statement_id_filter_ready/ { if ($NF != 1) behind = 1 }
      /^lrs_id_filters_building/ { if ($NF != 0) behind = 1 }
      END { exit !(seen && !behind) }'; do
    ((SECONDS < deadline)) || { echo "the projections of $url never caught up" >&2; exit 1; }
    sleep 0.5
  done
}

# Starts a command in the background: `start VAR command...` puts its PID in
# VAR and in PIDS, for `cleanup`. (Not `$(start ...)`: a command
# substitution is a subshell, so the process would not be this shell's child
# to wait for, and PIDS would not hold it.)
start() {
  local -n started_pid="$1"
  shift
  "$@" >>"$WORK/services.log" 2>&1 &
  started_pid=$!
  PIDS+=("$!")
}

stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

run_load() {
  local name="$1"
  shift
  log "$name"
  # --disk-of: what the disk holding the stores wrote, by every process.
  "$LOAD" run --key "$KEY" --secret "$SECRET" --json "$OUT/$name.json" --disk-of "$WORK" "$@" | tee "$OUT/$name.txt"
}

# A fresh store with the bench credential and the generated directories.
prepare_store() {
  local dir="$1"
  "$LRS" credentials add --data-dir "$dir" --name bench --key "$KEY" --secret "$SECRET" --scopes all --organisations "*" >/dev/null
  "$LRS" organisations import --data-dir "$dir" "$WORK/organisations.csv" >/dev/null
  "$LRS" learners import --data-dir "$dir" "$WORK/learners.csv" >/dev/null
}

serve() {
  local dir="$1" port
  port="$(free_port)"
  start SERVER_PID "$LRS" serve --listen "127.0.0.1:$port" --data-dir "$dir"
  SERVER_URL="http://127.0.0.1:$port"
  wait_ready "$SERVER_URL/health"
  wait_caught_up "$SERVER_URL"
}

ceiling() {
  local port pid url
  port="$(free_port)"
  start pid "$LOAD" trivial-server --listen "127.0.0.1:$port"
  url="http://127.0.0.1:$port"
  wait_ready "$url/"
  run_load ceiling-batch100 --url "$url" --scenario batch --batch-size 100 --concurrency 4 --duration 20s
  run_load ceiling-single64 --url "$url" --scenario single --concurrency 64 --duration 20s
  run_load ceiling-open5000 --url "$url" --scenario single --concurrency 64 --rate 5000 --duration 20s
  stop "$pid"
}

embedded() {
  local dir="$WORK/embedded"
  prepare_store "$dir"
  serve "$dir"
  run_load embedded-batch100 --url "$SERVER_URL" --scenario batch --batch-size 100 --concurrency 4 \
    --duration "${SECONDS_EACH}s" --server-pid "$SERVER_PID" --seed 11
  wait_caught_up "$SERVER_URL"
  run_load embedded-batch500 --url "$SERVER_URL" --scenario batch --batch-size 500 --concurrency 2 \
    --duration 30s --server-pid "$SERVER_PID" --seed 12
  wait_caught_up "$SERVER_URL"
  run_load embedded-single64 --url "$SERVER_URL" --scenario single --concurrency 64 \
    --duration "${SECONDS_EACH}s" --server-pid "$SERVER_PID" --seed 13
  wait_caught_up "$SERVER_URL"
  run_load embedded-open5000 --url "$SERVER_URL" --scenario single --concurrency 256 --rate 5000 \
    --duration 30s --server-pid "$SERVER_PID" --seed 14
  # Half of what the closed-loop run above sustained.
  local half
  half="$(python3 -c "import json; print(max(1, int(json.load(open('$OUT/embedded-single64.json'))['statements_per_s'] / 2)))")"
  wait_caught_up "$SERVER_URL"
  run_load embedded-open-half --url "$SERVER_URL" --scenario single --concurrency 256 --rate "$half" \
    --duration 30s --server-pid "$SERVER_PID" --seed 15
  stop "$SERVER_PID"
  du -sb "$dir" | tee "$OUT/embedded-disk.txt"
}

scale() {
  local dir="$WORK/scale" file="$WORK/statements.ndjson"
  log "generate $N statements"
  "$LOAD" generate --seed 21 --statements "$N" --learners 200000 --organisations 300 --out "$file" \
    --directories "$WORK/scale-directories"
  cp "$WORK/scale-directories/"*.csv "$WORK/"
  prepare_store "$dir"
  # `lrs learners import` only appends the directories to the log; an empty
  # import projects them, so the timed import below measures statements only.
  log "project the directories (200,000 learners)"
  : >"$WORK/empty.ndjson"
  /usr/bin/time -f "directories projected in %e s" "$LRS" import "$WORK/empty.ndjson" --data-dir "$dir" --quiet \
    2>&1 | tee "$OUT/directories.txt"
  log "import $N statements"
  /usr/bin/time -v "$LRS" import "$file" --data-dir "$dir" --quiet 2>"$OUT/import-time.txt" | tee "$OUT/import.txt"
  grep -E "Elapsed|Maximum resident" "$OUT/import-time.txt" | tee -a "$OUT/import.txt"
  { echo "json_bytes $(stat -c %s "$file")"; du -sb "$dir"/log "$dir"/views "$dir"/hub "$dir"; } | tee "$OUT/disk.txt"
  serve "$dir"
  echo "opened: $(grep VmRSS "/proc/$SERVER_PID/status")" | tee "$OUT/opened.txt"
  # Readers alone, asking about what the import stored (--skip: the reads
  # follow the generator past the N statements imported), twice: the first
  # right after the start (cold), the second with the caches they filled
  # (warm). Then readers and writers together. Each skips the N statements
  # imported: without it the writes would be those statements again, which
  # the store answers as repeats without writing them.
  local pass
  for pass in cold warm; do
    run_load "scale-reads-$pass" --url "$SERVER_URL" --scenario reads --concurrency 4 --duration 60s \
      --learners 200000 --organisations 300 --seed 21 --skip "$N" --server-pid "$SERVER_PID"
  done
  run_load scale-mixed --url "$SERVER_URL" --scenario mixed --concurrency 8 --duration 60s \
    --learners 200000 --organisations 300 --seed 21 --skip "$N" --server-pid "$SERVER_PID"
  stop "$SERVER_PID"
  # Last, with the server stopped: the replay of everything stored (the
  # import's statements and the mixed load's) into fresh projections, which
  # needs about as much free disk as the projections take.
  log "replay (lrs verify replays the whole log into fresh projections)"
  /usr/bin/time -v "$LRS" verify --data-dir "$dir" 2>"$OUT/replay-time.txt" | tee "$OUT/replay.txt"
  grep -E "Elapsed|Maximum resident" "$OUT/replay-time.txt" | tee -a "$OUT/replay.txt"
}

kafka() {
  log "Kafka: local broker, one projection, two ingest, one query front"
  KAFKA_STARTED=1
  local bootstrap topic dir pp ip1 ip2 qp
  bootstrap="$(bash deploy/kafka/local-kafka.sh start | tail -1)"
  topic="lrs.bench.$$.$RANDOM"
  "$LRS" topics create --kafka "$bootstrap" --topic "$topic" --replication-factor 1 >/dev/null
  dir="$WORK/projection"
  "$LRS" credentials add --data-dir "$dir" --name bench --key "$KEY" --secret "$SECRET" --scopes all --organisations "*" >/dev/null
  pp="$(free_port)"; ip1="$(free_port)"; ip2="$(free_port)"; qp="$(free_port)"
  local projection ingest1 ingest2 query
  start projection "$LRS" project --kafka "$bootstrap" --topic "$topic" --data-dir "$dir" --listen "127.0.0.1:$pp"
  wait_ready "http://127.0.0.1:$pp/health"
  start ingest1 "$LRS" ingest --kafka "$bootstrap" --topic "$topic" --data-dir "$dir" --listen "127.0.0.1:$ip1" \
    --projection "http://127.0.0.1:$pp"
  start ingest2 "$LRS" ingest --kafka "$bootstrap" --topic "$topic" --data-dir "$dir" --listen "127.0.0.1:$ip2" \
    --projection "http://127.0.0.1:$pp"
  start query "$LRS" query --listen "127.0.0.1:$qp" --projection "http://127.0.0.1:$pp" \
    --ingest "http://127.0.0.1:$ip1,http://127.0.0.1:$ip2"
  wait_ready "http://127.0.0.1:$ip1/health"
  wait_ready "http://127.0.0.1:$ip2/health"
  wait_ready "http://127.0.0.1:$qp/health"
  local url="http://127.0.0.1:$qp"
  run_load kafka-batch100 --url "$url" --scenario batch --batch-size 100 --concurrency 4 --duration "${SECONDS_EACH}s" \
    --server-pid "$projection" --seed 31 --load-directories
  wait_caught_up "http://127.0.0.1:$pp"
  run_load kafka-single64 --url "$url" --scenario single --concurrency 64 --duration 30s --server-pid "$projection" --seed 32
  local half
  half="$(python3 -c "import json; print(max(1, int(json.load(open('$OUT/kafka-single64.json'))['statements_per_s'] / 2)))")"
  wait_caught_up "http://127.0.0.1:$pp"
  run_load kafka-open-half --url "$url" --scenario single --concurrency 256 --rate "$half" --duration 30s \
    --server-pid "$projection" --seed 33
  wait_caught_up "http://127.0.0.1:$pp"
  run_load kafka-mixed --url "$url" --scenario mixed --concurrency 8 --duration 30s --server-pid "$projection" --seed 34
  stop "$query"; stop "$ingest1"; stop "$ingest2"; stop "$projection"
}

# Two builds side by side: the write rows' scenarios (batches of 100 at 4
# connections, single POSTs at 64), run by AB_BASE's build and this
# checkout's in turn, the order swapped each round (AB BA AB ...), each run
# on its own copy of one store. The machine's speed changes from hour to
# hour and, within one, from run to run by a tenth or more: only builds
# alternated at the same hour compare, and only over rounds.
ab() {
  local base="${AB_BASE:?AB_BASE: the lrs binary of the build to compare with}"
  local rounds="${AB_ROUNDS:-4}" seconds="${AB_SECONDS:-20}" statements="${AB_STATEMENTS:-0}"
  local template="$WORK/ab-template" mine="$LRS"
  [[ -x "$base" ]] || { echo "AB_BASE=$base is not an executable" >&2; exit 2; }
  echo "base build $base" | tee -a "$OUT/machine.txt"
  # The store every run starts from, made by the base build (a build that
  # reads an older store's layout rebuilds its views before it is measured).
  if ((statements > 0)); then
    log "the store both builds start from: $statements statements"
    "$LOAD" generate --seed 21 --statements "$statements" --learners 200000 --organisations 300 \
      --out "$WORK/ab.ndjson" --directories "$WORK/ab-directories" >/dev/null
    cp "$WORK/ab-directories/"*.csv "$WORK/"
  fi
  LRS="$base" prepare_store "$template"
  if ((statements > 0)); then
    "$base" import "$WORK/ab.ndjson" --data-dir "$template" --quiet
    rm -f "$WORK/ab.ndjson"
  fi
  local round order build binary dir scenario
  local -A scenarios=(
    [batch100]="--scenario batch --batch-size 100 --concurrency 4 --seed 12"
    [single64]="--scenario single --concurrency 64 --seed 13"
  )
  for ((round = 1; round <= rounds; round++)); do
    if ((round % 2)); then order="base new"; else order="new base"; fi
    for build in $order; do
      if [[ "$build" == base ]]; then binary="$base"; else binary="$mine"; fi
      for scenario in batch100 single64; do
        dir="$WORK/ab-store"
        rm -rf "$dir"
        cp -r "$template" "$dir"
        # The copy reaches the disk before the run, not during it.
        sync
        LRS="$binary" serve "$dir"
        # shellcheck disable=SC2086 # the scenario's arguments, split on purpose
        run_load "ab-$scenario-$build-$round" --url "$SERVER_URL" --server-pid "$SERVER_PID" \
          --duration "${seconds}s" ${scenarios[$scenario]}
        stop "$SERVER_PID"
        rm -rf "$dir"
      done
    done
  done
  python3 - "$OUT" "$rounds" <<'PY' | tee "$OUT/ab.txt"
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
for scenario in ("batch100", "single64"):
    runs = {build: [json.load(open(f"{out}/ab-{scenario}-{build}-{r}.json")) for r in range(1, rounds + 1)]
            for build in ("base", "new")}
    rate = {build: [run["statements_per_s"] for run in runs[build]] for build in runs}
    mean = {build: sum(rate[build]) / rounds for build in rate}
    ahead = sum(new > base for new, base in zip(rate["new"], rate["base"]))
    print(f"{scenario}: this build {mean['new']:,.0f} against {mean['base']:,.0f} statements/s "
          f"({mean['new'] / mean['base']:.2f} x), ahead in {ahead} of {rounds} rounds")
    for build in ("new", "base"):
        p99 = [run["latency_us"]["p99"] / 1000 for run in runs[build]]
        cpu = [run["server"]["cpu_percent_mean"] for run in runs[build] if run.get("server")]
        print(f"  {build:4}  " + " / ".join(f"{r:,.0f}" for r in rate[build])
              + f" statements/s, p99 {min(p99):.1f}-{max(p99):.1f} ms"
              + (f", server CPU {min(cpu):.0f}-{max(cpu):.0f} %" if cpu else ""))
PY
}

mkdir -p "$OUT"
log "build (release)"
cargo build --release --locked -p lrs -p lrs-load
"$LOAD" generate --seed 1 --statements 0 --learners 200000 --organisations 300 --directories "$WORK" >/dev/null
{
  echo "commit $(git rev-parse --short HEAD)"
  echo "machine $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  date -u +"date %Y-%m-%dT%H:%M:%SZ"
} | tee "$OUT/machine.txt"
case "$WHAT" in
  ceiling) ceiling ;;
  embedded) embedded ;;
  scale) scale ;;
  kafka) kafka ;;
  all) ceiling; embedded; scale; kafka ;;
  ab) ab ;;
  *) echo "usage: $0 [all|ceiling|embedded|scale|kafka|ab]" >&2; exit 2 ;;
esac
log "reports in $OUT"
