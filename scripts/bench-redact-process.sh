#!/usr/bin/env bash
# Whole-process throughput and peak memory of `scrubs redact`.
#
#   scripts/bench-redact-process.sh [MEGABYTES] [RUNS]
#
# Builds the release binary and the corpus generator, writes deterministic
# corpora of MEGABYTES (decimal, default 100) -- mixed (one PHI-dense line in
# ten), clean and dense -- then runs
#
#   /usr/bin/time -v target/release/scrubs redact < FILE > /dev/null
#
# RUNS times (default 3) each, unpinned and pinned to one core with
# `taskset -c 0`, and prints MB/s (file bytes / wall time) and peak RSS
# ("Maximum resident set size") for every run, then the median.
# Environment: BENCH_DIR (default ${TMPDIR:-/tmp}/scrubs-bench) holds the
# corpora; KINDS (default "mixed clean dense") picks the corpora.
set -euo pipefail

MB=${1:-100}
RUNS=${2:-3}
KINDS=${KINDS:-mixed clean dense}
DIR=${BENCH_DIR:-${TMPDIR:-/tmp}/scrubs-bench}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

if ! [ -x /usr/bin/time ]; then
    echo "installing GNU time" >&2
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq >/dev/null && apt-get install -y -qq time >/dev/null
    else
        sudo apt-get update -qq >/dev/null && sudo apt-get install -y -qq time >/dev/null
    fi
fi
command -v taskset >/dev/null || echo "taskset not found: skipping the one-core runs" >&2

# The binary alone, as the image builds it (with an example it would get the
# dependencies' dev features: see scripts/startup-symbols.sh).
cargo build --release --quiet --example gen_corpus
cargo build --release --quiet --bin scrubs
BIN=$ROOT/target/release/scrubs
GEN=$ROOT/target/release/examples/gen_corpus
mkdir -p "$DIR"

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-7s %-6s %4s %9s %10s %8s\n' corpus cpus run MB/s "peak RSS" seconds

# One run: prints "MBPS RSS_MB SECONDS".
measure() {
    local file=$1
    shift
    local log bytes secs rss
    log=$(mktemp)
    "$@" /usr/bin/time -v "$BIN" redact <"$file" >/dev/null 2>"$log"
    bytes=$(stat -c %s "$file")
    # "Elapsed (wall clock) time (h:mm:ss or m:ss): 0:01.23"
    secs=$(sed -n 's/.*Elapsed (wall clock) time[^:]*: *//p' "$log" |
        awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): *//p' "$log")
    rm -f "$log"
    awk -v b="$bytes" -v s="$secs" -v r="$rss" 'BEGIN { printf "%.1f %.1f %.2f\n", b / s / 1e6, r / 1024, s }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

for kind in $KINDS; do
    file=$DIR/$kind-${MB}MB.log
    if ! [ -s "$file" ] || [ "$(stat -c %s "$file")" -lt $((MB * 1000000)) ]; then
        "$GEN" "$kind" "$MB" "$file"
    fi
    for pin in both one; do
        if [ $pin = one ]; then
            command -v taskset >/dev/null || continue
            wrap=(taskset -c 0)
        else
            wrap=(env)
        fi
        # Warm the page cache so that the first run does not read the disk.
        cat "$file" >/dev/null
        results=()
        for run in $(seq 1 "$RUNS"); do
            read -r mbps rss secs < <(measure "$file" "${wrap[@]}")
            results+=("$mbps $rss")
            printf '%-7s %-6s %4s %9s %8s MB %8s\n' "$kind" "$pin" "$run" "$mbps" "$rss" "$secs"
        done
        m=$(printf '%s\n' "${results[@]}" | awk '{ print $1 }' | median)
        r=$(printf '%s\n' "${results[@]}" | awk '{ print $2 }' | sort -n | tail -1)
        printf '%-7s %-6s %4s %9s %8s MB   (median MB/s, max peak RSS)\n' "$kind" "$pin" med "$m" "$r"
    done
done
