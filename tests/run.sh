#!/usr/bin/env bash
# Runs every test of the project: unit, integration, the log contract suite
# (embedded and Kafka), the crash-restart tests, and the xAPI HTTP suite
# twice: against the embedded store and against a Kafka deployment (two
# ingest replicas, one projection, two query replicas), and the browser
# tests of the pages (tests/browser/run.sh: installs Debian's chromium and
# the npm packages it needs). Every step runs even when an earlier one
# failed; the exit status is non-zero if any did. Called by .ci/run.
#
# The Kafka tests need a real broker: deploy/kafka/local-kafka.sh fetches
# Apache Kafka with Maven (cached under ~/.cache/lrs-kafka) and starts a
# single-node KRaft broker on 127.0.0.1; it is stopped when this script
# ends, pass or fail.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in cargo java mvn; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "$tool is required (cargo: https://rustup.rs; java 17+ and mvn: your package manager)" >&2
        exit 1
    fi
done

export LRS_KAFKA_PORT="${LRS_KAFKA_PORT:-19092}"
export LRS_KAFKA_CONTROLLER_PORT="${LRS_KAFKA_CONTROLLER_PORT:-19093}"
broker_started=""
stop_broker() {
    if [[ -n "$broker_started" ]]; then
        ./deploy/kafka/local-kafka.sh stop >/dev/null || true
    fi
}
trap stop_broker EXIT

started=$(date +%s)
LRS_TEST_KAFKA="$(./deploy/kafka/local-kafka.sh start | tail -n 1)"
broker_started=yes
export LRS_TEST_KAFKA
echo "Kafka broker ready at $LRS_TEST_KAFKA after $(( $(date +%s) - started )) s"

status=0
cargo test --workspace --locked --all-targets --no-fail-fast || status=1

started=$(date +%s)
LRS_TEST_DEPLOYMENT=kafka cargo test --workspace --locked --no-fail-fast --test api || status=1
echo "xAPI suite on Kafka took $(( $(date +%s) - started )) s"

tests/browser/run.sh || status=1
exit "$status"

