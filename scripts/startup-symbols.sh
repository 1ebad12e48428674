#!/usr/bin/env bash
# Regenerates link/startup-symbols.txt: the functions the `scrubs` binary
# runs from start-up to idle, which build.rs asks the linker to lay out
# together (`--symbol-ordering-file`) so that the idle sidecar keeps few code
# pages resident.
#
#   scripts/startup-symbols.sh [--no-build]
#   scripts/startup-symbols.sh --check [BINARY]   # how much of the list BINARY defines
#
# Builds the release binary (unless --no-build), starts the dev Kafka broker
# if it is not running (stopped again at the end only if started here; its
# topics live only as long as it runs), creates the audit topic
# `scrubs-startup-symbols` if it is missing, and runs `scrubs run` under callgrind
# with the idle configurations of the sidecar benches in one (a file source
# and an OTLP source, the audit fork to Kafka, one vendor that does not
# answer). Once scrubs is ready the
# script asks /healthz, /readyz and /metrics every second for 10 s, as the
# kubelet and Prometheus would, then stops it with SIGINT. Every function of
# the binary that callgrind saw run is written to the list, in callgrind's
# order; symbols the binary does not define are left out.
#
# Rerun it after code changes, not only those that touch start-up: symbols
# that LTO makes local carry a numeric suffix (`box_new_uninit.6315`) that
# shifts with any change, and a listed name that no longer exists is
# skipped by the linker. A stale list makes the idle sidecar larger (20
# shifted names cost 1.1 MiB once) but never breaks a build.
# Needs valgrind, curl, nm and python3. Takes about a minute after the build.
#
# Build the binary alone (`cargo build --release --bin scrubs`, as the image
# build does): built together with examples, tests or benches, it gets the
# dependencies with the features their dev-dependencies add, and every
# generic function instantiated in scrubs is renamed (its hash covers the
# dependencies' builds). The list then matches half the binary's functions
# and the idle sidecar keeps ~2.6 MiB more code resident (15.7 against 13.0
# MiB, OTLP-only configuration, 2026-12-07). `--check` tells: it prints how
# many listed functions BINARY (default target/release/scrubs) defines, and
# the bench scripts record it with their figures.

set -euo pipefail
cd "$(dirname "$0")/.."

build=1
case "${1:-}" in
    --no-build) build=0 ;;
    --check)
        bin=${2:-target/release/scrubs}
        [[ -x $bin ]] || { echo "$0: $bin is missing" >&2; exit 2; }
        command -v nm >/dev/null || { echo "$0: needs nm" >&2; exit 2; }
        listed=$(grep -c . link/startup-symbols.txt)
        defined=$(nm --defined-only "$bin" | awk '{print $3}' | sort -u \
            | comm -12 - <(sort -u link/startup-symbols.txt) | wc -l)
        echo "link/startup-symbols.txt: $defined of $listed listed functions defined by $bin"
        if (( defined < listed )); then
            echo "  stale for this binary: build it alone (cargo build --release --bin scrubs), or regenerate the list after code changes" >&2
        fi
        exit 0
        ;;
    "") ;;
    *) echo "usage: $0 [--no-build | --check [BINARY]]" >&2; exit 2 ;;
esac
for tool in valgrind curl nm python3; do
    command -v "$tool" >/dev/null || { echo "$0: needs $tool" >&2; exit 2; }
done
if [[ $build == 1 ]]; then
    cargo build --release --bin scrubs
fi
bin=target/release/scrubs
[[ -x $bin ]] || { echo "$0: $bin is missing (build it, or drop --no-build)" >&2; exit 2; }

work=$(mktemp -d)
started_broker=0
topic=scrubs-startup-symbols
cleanup() {
    [[ -n "${pid:-}" ]] && kill -9 "$pid" 2>/dev/null || true
    [[ $started_broker == 1 ]] && deploy/dev/kafka.sh stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

if ! deploy/dev/kafka.sh status >/dev/null 2>&1; then
    deploy/dev/kafka.sh start >/dev/null
    started_broker=1
fi
bootstrap=$(deploy/dev/kafka.sh bootstrap | sed 's/^bootstrap=//')
# Fails when the topic exists already, which is as good.
deploy/dev/kafka.sh topic-create "$topic" 1 >/dev/null 2>&1 || true

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
admin=$(free_port)
mkdir -p "$work/logs" "$work/data"
: >"$work/logs/app.log"
cat >"$work/scrubs.yaml" <<EOF
data_dir: $work/data
sources:
  app:
    type: file
    include: ["$work/logs/app.log"]
  otlp:
    type: otlp
    http: { address: "127.0.0.1:$(free_port)" }
    grpc: { address: "127.0.0.1:$(free_port)" }
audit:
  kafka:
    brokers: "$bootstrap"
    topic: $topic
    spool_dir: $work/data/audit
  select:
    fields:
      audit: ["true"]
    key_field: patient_id
vendors:
  - name: idle-vendor
    endpoint: http://127.0.0.1:9
    baa_covered: true
admin:
  address: "127.0.0.1:$admin"
EOF

# MALLOC_ARENA_MAX set here: scrubs re-executes itself to set it otherwise,
# and callgrind would not follow the new image.
MALLOC_ARENA_MAX=2 valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" \
    --compress-strings=no --compress-pos=no --demangle=no \
    "$bin" run --config "$work/scrubs.yaml" 2>"$work/scrubs.log" &
pid=$!
ready=0
for _ in $(seq 240); do
    if curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null; then ready=1; break; fi
    sleep 0.5
done
if [[ $ready == 0 ]]; then
    echo "$0: scrubs did not become ready under callgrind; its log:" >&2
    tail -20 "$work/scrubs.log" >&2
    exit 1
fi
for _ in $(seq 10); do
    for path in healthz readyz metrics; do
        curl -sf "http://127.0.0.1:$admin/$path" >/dev/null || true
    done
    sleep 1
done
kill -INT "$pid"
wait "$pid" || true
pid=

python3 - "$bin" "$work/callgrind.out" link/startup-symbols.txt <<'PY'
import re, subprocess, sys

binary, profile, out = sys.argv[1:]
defined = set()
nm = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True, check=True)
for line in nm.stdout.splitlines():
    parts = line.split()
    if len(parts) == 3 and parts[1] in "tT":
        defined.add(parts[2])
names, seen, obj = [], set(), None
with open(profile, errors="replace") as f:
    for line in f:
        if line.startswith("ob="):
            obj = line[3:].strip()
        elif line.startswith("fn=") and obj and obj.endswith("/scrubs"):
            # callgrind marks recursion levels with a quote and a number.
            name = re.sub(r"'\d+$", "", line[3:].strip())
            if name in defined and name not in seen:
                seen.add(name)
                names.append(name)
if len(names) < 500:
    sys.exit(f"only {len(names)} functions seen: is {binary} the profiled binary?")
with open(out, "w") as f:
    f.write("\n".join(names) + "\n")
print(f"{out}: {len(names)} functions")
PY
