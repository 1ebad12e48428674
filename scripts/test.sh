#!/usr/bin/env bash
# Runs the whole test suite against a real Kafka broker: starts this
# checkout's dev broker (deploy/dev/kafka.sh, official jars from Maven
# Central; its own state dir, and a free port unless SCRUBS_KAFKA_PORT is
# set), runs `cargo test` with SCRUBS_KAFKA_BOOTSTRAP pointing at it, and
# stops the broker whatever happens (if this script started it). The tests
# that need a cargo feature (fault-injection, fuzzing) run in a second pass.
#
# With SCRUBS_KAFKA_BOOTSTRAP already set, that broker is used and none is
# started.
set -euo pipefail
cd "$(dirname "$0")/.."

started=0
if [ -z "${SCRUBS_KAFKA_BOOTSTRAP:-}" ]; then
    if ! deploy/dev/kafka.sh status >/dev/null 2>&1; then
        started=1
        deploy/dev/kafka.sh start >/dev/null
    fi
    SCRUBS_KAFKA_BOOTSTRAP="$(deploy/dev/kafka.sh bootstrap)"
    SCRUBS_KAFKA_BOOTSTRAP="${SCRUBS_KAFKA_BOOTSTRAP#bootstrap=}"
fi
export SCRUBS_KAFKA_BOOTSTRAP
echo "test.sh: Kafka broker at SCRUBS_KAFKA_BOOTSTRAP=$SCRUBS_KAFKA_BOOTSTRAP" >&2
cleanup() {
    if [ "$started" = 1 ]; then
        deploy/dev/kafka.sh stop || true
    fi
}
trap cleanup EXIT

# Graphviz's `dot` renders `scrubs audit flowmap --format svg`:
# tests/flowmap.rs checks the picture when it is installed, and the error
# naming what to install otherwise. Installed from Debian's packages where
# this user may.
if ! command -v dot >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; fi
    if [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; then
        { $sudo apt-get install -y -qq graphviz || { $sudo apt-get update -qq && $sudo apt-get install -y -qq graphviz; }; } >/dev/null 2>&1 ||
            echo "test.sh: could not install graphviz; the SVG check tests the error instead" >&2
    fi
fi

cargo test "$@"
cargo test --features "fault-injection fuzzing" --test fail_closed --test probes --test fuzz_regressions "$@"
