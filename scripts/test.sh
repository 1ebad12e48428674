#!/usr/bin/env bash
# Runs the whole test suite against a real Kafka broker: starts the dev
# broker (deploy/dev/kafka.sh, official jars from Maven Central), runs
# `cargo test`, and stops the broker whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

export SCRUBS_KAFKA_PORT="${SCRUBS_KAFKA_PORT:-19092}"
export SCRUBS_KAFKA_BOOTSTRAP="${SCRUBS_KAFKA_BOOTSTRAP:-127.0.0.1:${SCRUBS_KAFKA_PORT}}"

started=0
if ! deploy/dev/kafka.sh status >/dev/null 2>&1; then
    deploy/dev/kafka.sh start
    started=1
fi
cleanup() {
    if [ "$started" = 1 ]; then
        deploy/dev/kafka.sh stop || true
    fi
}
trap cleanup EXIT

cargo test "$@"
cargo test --features fault-injection --test fail_closed "$@"
