#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time, one after the
# other, and prints a table of executions, crashes and exit status.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    (default 60 s, all)
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz
# --locked`). The first build compiles librdkafka and takes several minutes.
#
# Each target reads its committed seeds in fuzz/corpus/<target>/ and keeps
# what libFuzzer adds in fuzz/target/corpus/<target>/ (git-ignored), so the
# seed corpus stays small and each run starts where the last one stopped.
# A crash, timeout or out-of-memory input is written to
# fuzz/artifacts/<target>/; the table counts the ones this run wrote. Each
# target is one libFuzzer process on one core (-jobs=1 -workers=1 in spirit:
# libFuzzer's own -jobs mode would send its output to fuzz-N.log files),
# niced, because the machines this runs on are shared.
#
# libFuzzer stops a target at its first crash. With FUZZ_KEEP_GOING=1 it
# runs in fork mode instead (-fork=1, still one fuzzing process) and goes
# on after crashes, timeouts and out-of-memory inputs until the time is up,
# so that one known crash does not hide the next.
#
# Exit status: 0 when no target crashed, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
if [ $# -gt 0 ]; then
    shift
fi
case "$secs" in
    '' | *[!0-9]*)
        echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
        exit 2
        ;;
esac
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=(redact_line structured rules_yaml otlp_decode simd_masks)
fi

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "scripts/fuzz.sh: cargo-fuzz is missing; install it with: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

nice -n 10 cargo +nightly fuzz build

logs=fuzz/target/fuzz-logs
mkdir -p "$logs"
rows=()
failed=0
for t in "${targets[@]}"; do
    work="fuzz/target/corpus/$t"
    artifacts="fuzz/artifacts/$t"
    mkdir -p "$work" "$artifacts"
    stamp="$logs/$t.start"
    touch "$stamp"
    log="$logs/$t.log"
    echo "== $t: ${secs}s (log: $log)"
    status=0
    started=$SECONDS
    # -timeout: an input that takes more than 30 s is a hang, kept as a
    # timeout-* artifact. -rss_limit_mb is libFuzzer's default, written out
    # so that an out-of-memory input is reported, not the machine's problem.
    extra=()
    if [ "${FUZZ_KEEP_GOING:-0}" = 1 ]; then
        extra=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    fi
    nice -n 10 cargo +nightly fuzz run "$t" "$work" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 \
        -print_final_stats=1 "${extra[@]}" >"$log" 2>&1 || status=$?
    # Executions: libFuzzer's final statistics, or failing those (a crash
    # before the end) the last "#N" progress line; in fork mode the
    # parent's last "#N: cov: ..." line, which counts every job.
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    if [ "${FUZZ_KEEP_GOING:-0}" = 1 ]; then
        # Only the parent's lines: a crashed job's own log is copied in too.
        execs=$(sed -n 's/^#\([0-9][0-9]*\): cov: .*/\1/p' "$log" | tail -n 1)
    elif [ -z "$execs" ]; then
        execs=$(sed -n 's/^#\([0-9][0-9]*\)[[:space:]].*/\1/p' "$log" | tail -n 1)
    fi
    elapsed=$((SECONDS - started))
    crashes=$(find "$artifacts" -type f -newer "$stamp" | wc -l)
    if [ "$crashes" -gt 0 ] || [ "$status" -ne 0 ]; then
        failed=1
        find "$artifacts" -type f -newer "$stamp" | sed 's/^/   new artifact: /'
        grep -m 3 -E "panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer" "$log" | sed 's/^/   /' || true
    fi
    rows+=("$(printf '%-14s %8s %14s %8s %7s' "$t" "${elapsed}s" "${execs:-?}" "$crashes" "$status")")
done

echo
# time: wall-clock seconds of the run (less than asked when a crash stopped
# it, a little more in fork mode, which lets the last job finish).
printf '%-14s %8s %14s %8s %7s\n' target time executions crashes status
for r in "${rows[@]}"; do
    echo "$r"
done
exit "$failed"
