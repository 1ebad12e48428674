#!/usr/bin/env bash
# Whole-process benchmarks of `scrubs run` on loopback (issues 3 and 4).
#
#   scripts/bench-sidecar.sh tail     [options]   # file -> redact -> Kafka audit + OTLP vendor
#   scripts/bench-sidecar.sh otlp     [options]   # OTLP/HTTP replay -> redact -> vendor
#   scripts/bench-sidecar.sh overload [options]   # 2x the maximum for 5 min (--max or calibrated)
#   scripts/bench-sidecar.sh soak     [options]   # half the maximum for 30 min, RSS every 10 s
#
# Builds the tools, then the release binary alone (`cargo build --release
# --examples`, `cargo build --release --bin scrubs`: the image's build),
# starts the dev Kafka broker if it is not running
# (deploy/dev/kafka.sh; stopped again at the end only if this script started
# it), creates an audit topic of its own (deleted at the end), starts the
# fake vendor (examples/vendor_sink.rs), writes a bench config (file or OTLP
# source, audit to Kafka with the selector `audit: ["true"]`, one BAA-covered
# vendor, every other setting at its default) and starts scrubs pinned to
# core 1 (`taskset -c 1`); the load generator, the vendor and (if started
# here) the broker run on core 0. A sampler reads scrubs' VmRSS, VmHWM and
# CPU time (/proc/PID/stat utime+stime) and a few /metrics gauges every
# second (soak: every 10 s). At the end it checks the audit topic (message
# count = audit lines written; `scrubs audit verify` with --verify), the
# vendor's canary hits (must be 0) and scrubs' drop counters, stops scrubs
# with SIGTERM and prints a report (also in OUT/report.txt, OUT/summary.json).
#
# tail: idle RSS; then a saturation run (--sat-lines lines written as fast as
#   the generator can: scrubs' maximum = lines / (last vendor receipt -
#   generator start)); then runs at --fractions of that maximum for
#   --phase-secs each: lines/s delivered, latency append -> vendor receipt
#   (p50/p99), whether scrubs kept up (the last line arrived within 1 s of
#   the generator stopping), CPU-seconds per GB, peak RSS.
# otlp: --bodies pre-encoded ExportLogsServiceRequests of 512 records,
#   replayed closed loop over --concurrency connections for --duration.
# overload: offered 2 x --max lines/s (tail) or records/s (--source otlp,
#   open loop) for --duration (default 300 s); then waits for the tail to
#   drain. Reports: scrubs up, peak RSS vs the 64 MB budget, audit count,
#   the writer's longest write(2), lag and shed counters.
# soak: --rate (default --max / 2) for --duration (default 1800 s), the file
#   rotated every --rotate-bytes; RSS growth after --warmup (default 120 s):
#   mean of the last minute vs the first minute after warm-up (pass < 10%).
#
# Options:
#   --out DIR            results directory (default /tmp/scrubs-bench-sidecar-MODE-DATE)
#   --duration S         load duration (otlp 60, overload 300, soak 1800)
#   --max N              measured maximum (lines/s; records/s for --source otlp)
#   --rate N             offered rate: soak (lines/s, default max/2); otlp (records/s, open loop; default closed loop)
#   --sat-lines N        lines of the saturation run (tail 3000000; calibration 1500000)
#   --fractions "F ..."  tail: offered rates as fractions of the maximum (default "0.5 0.8 0.9")
#   --rates "R ..."      tail: offered rates in lines/s instead of fractions (--sat-lines 0: no saturation run)
#   --phase-secs S       tail: seconds per offered rate (default 60)
#   --concurrency N      otlp: connections (default 4; overload 32)
#   --bodies N           otlp: distinct bodies (default 64)
#   --source tail|otlp   overload: which path to overload (default tail)
#   --sample S           sampling interval (default 1; soak 10)
#   --warmup S           soak: warm-up excluded from the growth figure (default 120)
#   --rotate-bytes N     rotate the log at N bytes (soak default 1 GiB; else off)
#   --drain-timeout S    longest wait for the vendor to receive every line (default 1200)
#   --audit-pm N         audit lines per mille (default 50 = 5%; otlp default 0)
#   --visit-pm N         tail: visit-event lines per mille (default 0), in the
#                        telehealth preset's default schema (for --extra-config
#                        benches/signals-telehealth.yaml)
#   --extra-config FILE  top-level sections appended to scrubs' config (e.g. signals:)
#   --file-opt "K: V"    an extra setting of the file source (repeatable), e.g. "max_inflight_batches: 16"
#   --vendor-opt "K: V"  an extra setting of the vendor (repeatable), e.g. "batch: { max_records: 512 }"
#   --no-control         overload: skip the control run (the generator alone, nobody reading)
#   --perf               tail, otlp: `perf record -g` on scrubs for 20 s (tail: of the saturation run)
#   --verify             run `scrubs audit verify` on the topic (default for tail)
#   --no-pin             do not pin processes to cores
#   --no-build           skip the cargo build
#   --keep-logs          keep the generated log files (deleted by default)
set -euo pipefail
# The whole script is one block, parsed before it runs: editing this file
# while a run is in progress cannot change what that run executes.
{

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

MODE=${1:-}
case "$MODE" in
tail | otlp | overload | soak) shift ;;
*)
    sed -n '2,/^set -euo/{s/^# \{0,1\}//;/^set -euo/d;p}' "$0" >&2
    exit 2
    ;;
esac
CMDLINE="scripts/bench-sidecar.sh $MODE $*"

OUT="" DURATION="" MAX="" RATE="" RATES="" SAT_LINES="" FRACTIONS="0.5 0.8 0.9" PHASE_SECS=60
CONCURRENCY="" BODIES=64 SOURCE=tail SAMPLE="" WARMUP=120 ROTATE_BYTES="" DRAIN_TIMEOUT=1200
PERF=0 VERIFY="" PIN=1 BUILD=1 KEEP_LOGS=0 AUDIT_PM="" VISIT_PM=0 EXTRA_CONFIG="" FILE_OPTS=() VENDOR_OPTS=() CONTROL=1
while [ $# -gt 0 ]; do
    case "$1" in
    --out) OUT=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --max) MAX=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --sat-lines) SAT_LINES=$2; shift ;;
    --fractions) FRACTIONS=$2; shift ;;
    --rates) RATES=$2; shift ;;
    --phase-secs) PHASE_SECS=$2; shift ;;
    --concurrency) CONCURRENCY=$2; shift ;;
    --bodies) BODIES=$2; shift ;;
    --source) SOURCE=$2; shift ;;
    --sample) SAMPLE=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --rotate-bytes) ROTATE_BYTES=$2; shift ;;
    --drain-timeout) DRAIN_TIMEOUT=$2; shift ;;
    --audit-pm) AUDIT_PM=$2; shift ;;
    --visit-pm) VISIT_PM=$2; shift ;;
    --extra-config) EXTRA_CONFIG=$2; shift ;;
    --file-opt) FILE_OPTS+=("$2"); shift ;;
    --vendor-opt) VENDOR_OPTS+=("$2"); shift ;;
    --no-control) CONTROL=0 ;;
    --perf) PERF=1 ;;
    --verify) VERIFY=1 ;;
    --no-pin) PIN=0 ;;
    --no-build) BUILD=0 ;;
    --keep-logs) KEEP_LOGS=1 ;;
    *) echo "bench-sidecar: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
case "$SOURCE" in tail | otlp) ;; *) echo "bench-sidecar: --source tail|otlp" >&2; exit 2 ;; esac
case "$MODE" in
otlp) DURATION=${DURATION:-60} ;;
overload) DURATION=${DURATION:-300} ;;
soak) DURATION=${DURATION:-1800}; SAMPLE=${SAMPLE:-10}; ROTATE_BYTES=${ROTATE_BYTES:-1073741824} ;;
esac
SAMPLE=${SAMPLE:-1}
ROTATE_BYTES=${ROTATE_BYTES:-0}
if [ -z "$VERIFY" ]; then
    if [ "$MODE" = tail ] || [ "$MODE" = otlp ]; then VERIFY=1; else VERIFY=0; fi
fi
if [ "$MODE" = overload ] && [ "$SOURCE" = otlp ]; then CONCURRENCY=${CONCURRENCY:-32}; fi
CONCURRENCY=${CONCURRENCY:-4}
if [ -z "$AUDIT_PM" ]; then
    if [ "$MODE" = otlp ] || [ "$SOURCE" = otlp ]; then AUDIT_PM=0; else AUDIT_PM=50; fi
fi

for tool in curl jq python3; do
    command -v "$tool" >/dev/null || { echo "bench-sidecar: $tool is required" >&2; exit 2; }
done
if [ "$PIN" = 1 ] && { ! command -v taskset >/dev/null || [ "$(nproc)" -lt 2 ]; }; then
    echo "bench-sidecar: taskset missing or one core: not pinning" >&2
    PIN=0
fi
if [ "$PIN" = 1 ]; then
    ON_SUT=(taskset -c 1)
    ON_GEN=(taskset -c 0)
else
    ON_SUT=()
    ON_GEN=()
fi

OUT=${OUT:-/tmp/scrubs-bench-sidecar-$MODE-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/logs"
W=$OUT
exec > >(tee -a "$W/run.log") 2>&1

log() { printf '%s bench-sidecar: %s\n' "$(date +%H:%M:%S)" "$*"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
now_ns() { date +%s%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
meta() { printf '%s=%s\n' "$1" "$2" >>"$W/meta.env"; }

: >"$W/meta.env"
meta mode "$MODE"
meta command "$CMDLINE"
meta started "$(date -Is)"
meta nproc "$(nproc)"
meta cpu "$(lscpu | sed -n 's/^Model name: *//p')"
meta mem "$(free -g | awk '/^Mem:/{print $2}') GiB"
meta kernel "$(uname -r)"
meta rustc "$(rustc --version 2>/dev/null || echo '?')"
meta git "$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')"
meta pinned "$PIN"
meta audit_pm "$AUDIT_PM"
meta visit_pm "$VISIT_PM"
meta extra_config "${EXTRA_CONFIG:-none}"
meta file_opts "${FILE_OPTS[*]:-}"
meta vendor_opts "${VENDOR_OPTS[*]:-}"
meta clk_tck "$(getconf CLK_TCK)"
meta sample "$SAMPLE"
meta load_start "$(loadavg)"

if [ "$BUILD" = 1 ]; then
    # The binary alone, after the tools: built with them it would get the
    # dependencies' dev features, another start-up list match and ~2.6 MiB
    # more resident code than the image's binary (scripts/startup-symbols.sh).
    log "building (cargo build --release --examples; cargo build --release --bin scrubs)"
    cargo build --release --quiet --examples
    cargo build --release --quiet --bin scrubs
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# Private copies: other builds may replace target/release while this runs.
mkdir -p "$W/bin"
cp "$TARGET_DIR/release/scrubs" "$W/bin/scrubs"
for t in loadgen vendor_sink otlp_replay bench_kafka bench_lines; do
    cp "$TARGET_DIR/release/examples/$t" "$W/bin/$t"
done
BIN=$W/bin/scrubs
EX=$W/bin
meta binary "target/release/scrubs built $(date -r "$TARGET_DIR/release/scrubs" -Is)"
# Whether the start-up list matches this binary: a stale one shows as
# idle memory (see scripts/startup-symbols.sh).
STARTUP_LIST=$("$ROOT/scripts/startup-symbols.sh" --check "$BIN" 2>/dev/null | sed 's/ defined by .*//')
meta startup_list "$STARTUP_LIST"
log "start-up list: $STARTUP_LIST"

# The broker: SCRUBS_KAFKA_BOOTSTRAP, else this checkout's dev broker
# (deploy/dev/kafka.sh; its port is known once it runs, below).
BROKERS=${SCRUBS_KAFKA_BOOTSTRAP:-}
BROKER_STARTED=0
SCRUBS_PID="" VENDOR_PID="" SAMPLER_PID="" TOPIC=""

cleanup() {
    set +e
    for p in "$SAMPLER_PID" "$SCRUBS_PID" "$VENDOR_PID"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    if [ -n "$TOPIC" ]; then
        "$EX/bench_kafka" delete "$BROKERS" "$TOPIC" >/dev/null 2>&1
    fi
    if [ "$BROKER_STARTED" = 1 ]; then
        log "stopping the broker this script started"
        deploy/dev/kafka.sh stop >/dev/null 2>&1
    fi
    if [ "$KEEP_LOGS" = 0 ]; then
        rm -rf "$W/logs" "$W/data" "$W/bin"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- broker and topic -------------------------------------------------------
if ! deploy/dev/kafka.sh status >/dev/null 2>&1; then
    log "starting the dev broker"
    deploy/dev/kafka.sh start >/dev/null
    BROKER_STARTED=1
    if [ "$PIN" = 1 ]; then
        taskset -a -p -c 0 "$(deploy/dev/kafka.sh pid)" >/dev/null || true
        meta broker "started here, pinned to core 0"
    else
        meta broker "started here"
    fi
else
    bpid=$(deploy/dev/kafka.sh pid 2>/dev/null || echo "")
    bcpus=$(awk '/^Cpus_allowed_list/ {print $2}' "/proc/$bpid/status" 2>/dev/null || echo "?")
    meta broker "already running, not started here (not pinned or stopped by this script; its CPUs: ${bcpus:-?})"
fi
if [ -z "$BROKERS" ]; then
    BROKERS=$(deploy/dev/kafka.sh bootstrap)
    BROKERS=${BROKERS#bootstrap=}
fi
meta brokers "$BROKERS"
TOPIC=scrubs-bench-$MODE-$$-$(date +%s)
"$EX/bench_kafka" create "$BROKERS" "$TOPIC" 3
meta topic "$TOPIC"

# ---- vendor -----------------------------------------------------------------
"$EX/bench_lines" --canaries >"$W/canaries.txt"
"${ON_GEN[@]}" "$EX/vendor_sink" --port-file "$W/vendor.port" --stats "$W/vendor.json" \
    --canaries "$W/canaries.txt" 2>>"$W/vendor.log" &
VENDOR_PID=$!
for _ in $(seq 100); do [ -s "$W/vendor.port" ] && break; sleep 0.1; done
VPORT=$(cat "$W/vendor.port")

# ---- scrubs -----------------------------------------------------------------
APORT=$(free_port)
OPORT=$(free_port)
ADMIN=127.0.0.1:$APORT
LOG=$W/logs/app.log
: >"$LOG"
USE_OTLP=0
if [ "$MODE" = otlp ] || { [ "$MODE" = overload ] && [ "$SOURCE" = otlp ]; }; then USE_OTLP=1; fi
{
    echo "# Written by scripts/bench-sidecar.sh: every setting not named here is at its default."
    echo "data_dir: $W/data"
    echo "sources:"
    if [ "$USE_OTLP" = 1 ]; then
        echo "  otlp:"
        echo "    type: otlp"
        echo "    http: { address: \"127.0.0.1:$OPORT\" }"
        echo "    grpc: null"
    else
        echo "  app:"
        echo "    type: file"
        echo "    include: [\"$LOG\"]"
        for o in "${FILE_OPTS[@]}"; do echo "    $o"; done
    fi
    cat <<EOF
audit:
  kafka:
    brokers: "$BROKERS"
    topic: $TOPIC
    spool_dir: $W/data/audit
    check_topic_config: false
  select:
    fields:
      audit: ["true"]
    key_field: patient_id
vendors:
  - name: bench-vendor
    endpoint: http://127.0.0.1:$VPORT
    baa_covered: true
EOF
    for o in "${VENDOR_OPTS[@]}"; do echo "    $o"; done
    cat <<EOF
admin:
  address: "$ADMIN"
EOF
    if [ -n "$EXTRA_CONFIG" ]; then cat "$EXTRA_CONFIG"; fi
} >"$W/scrubs.yaml"

"$BIN" validate --config "$W/scrubs.yaml" >/dev/null
"${ON_SUT[@]}" "$BIN" run --config "$W/scrubs.yaml" 2>"$W/scrubs.log" &
SCRUBS_PID=$!
meta scrubs_pid "$SCRUBS_PID"
ready=0
for _ in $(seq 600); do
    if curl -sf "http://$ADMIN/readyz" >/dev/null 2>&1; then ready=1; break; fi
    kill -0 "$SCRUBS_PID" 2>/dev/null || break
    sleep 0.1
done
if [ "$ready" != 1 ]; then
    log "scrubs did not become ready; its log:"
    tail -20 "$W/scrubs.log"
    exit 1
fi

cpu_ticks() { awk '{print $14 + $15}' "/proc/$SCRUBS_PID/stat"; }
status_kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$SCRUBS_PID/status"; }
metrics() { curl -s --max-time 5 "http://$ADMIN/metrics"; }
msum() { awk -v re="^$1" '$0 ~ re {s += $NF} END {printf "%.0f", s}'; }

sampler() {
    echo "t_ns rss_kb hwm_kb cpu_ticks lag_bytes vendor_dropped vendor_queue_bytes spool_bytes otlp_refused vendor_records sink_cpu_ticks" >"$W/samples.tsv"
    while kill -0 "$SCRUBS_PID" 2>/dev/null; do
        local m rss hwm cpu
        rss=$(status_kb VmRSS 2>/dev/null) || break
        hwm=$(status_kb VmHWM 2>/dev/null) || break
        cpu=$(cpu_ticks 2>/dev/null) || break
        m=$(metrics || true)
        echo "$(now_ns) $rss $hwm $cpu $(msum scrubs_file_lag_bytes <<<"$m") $(msum scrubs_vendor_dropped_total <<<"$m") $(msum scrubs_vendor_queue_bytes <<<"$m") $(msum scrubs_audit_spool_bytes <<<"$m") $(msum scrubs_otlp_refused_total <<<"$m") $(jq -r '.records.logs // 0' "$W/vendor.json" 2>/dev/null || echo 0) $(awk '{print $14 + $15}' "/proc/$VENDOR_PID/stat" 2>/dev/null || echo 0)" >>"$W/samples.tsv"
        sleep "$SAMPLE"
    done
}
if [ "$PIN" = 1 ]; then
    sampler &
    SAMPLER_PID=$!
    taskset -a -p -c 0 "$SAMPLER_PID" >/dev/null || true
else
    sampler &
    SAMPLER_PID=$!
fi

# Idle RSS: ready, nothing to do.
sleep 5
meta idle_rss_kb "$(status_kb VmRSS)"
meta idle_cpu_ticks "$(cpu_ticks)"
log "scrubs ready (pid $SCRUBS_PID, pinned=$PIN), idle RSS $(status_kb VmRSS) kB, load $(loadavg)"

echo "tag kind offered start_ns gen_end_ns done_ns cpu_start cpu_done delivered load_start load_end" >"$W/phases.tsv"

vendor_run() { jq -r --arg t "$1" ".runs[\$t].$2 // 0" "$W/vendor.json" 2>/dev/null || echo 0; }

# Waits until the vendor has every line of run $1 ($2 lines); gives up
# after $3 s, or when nothing new arrived for $STALL s (lines dropped).
STALL=30
wait_delivered() {
    local tag=$1 want=$2 limit=$3 t0=$SECONDS got last=-1 since=$SECONDS
    while :; do
        got=$(vendor_run "$tag" unique_seq)
        [ "${got:-0}" -ge "$want" ] && return 0
        if ! kill -0 "$SCRUBS_PID" 2>/dev/null; then
            log "scrubs is gone"
            return 1
        fi
        if [ "$got" != "$last" ]; then
            last=$got
            since=$SECONDS
        elif [ $((SECONDS - since)) -ge "$STALL" ]; then
            log "run $tag: nothing new at the vendor for ${STALL}s: $got of $want lines arrived"
            return 1
        fi
        [ $((SECONDS - t0)) -ge "$limit" ] && return 1
        sleep 0.5
    done
}

# One load-generator run, then the wait for its delivery.
#   gen_phase TAG KIND OFFERED_RATE [loadgen args...]
gen_phase() {
    local tag=$1 kind=$2 offered=$3
    shift 3
    local l0 c0 s0 lines ok
    l0=$(loadavg)
    c0=$(cpu_ticks)
    s0=$(now_ns)
    log "run $tag: offered ${offered} lines/s ($*), load $l0"
    "${ON_GEN[@]}" "$EX/loadgen" --out "$LOG" --tag "$tag" --seed "$RANDOM$RANDOM" \
        --audit-pm "$AUDIT_PM" --visit-pm "$VISIT_PM" --report "$W/gen-$tag.json" "$@" >/dev/null
    local ge
    ge=$(now_ns)
    lines=$(jq -r .lines "$W/gen-$tag.json")
    ok=1
    wait_delivered "$tag" "$lines" "$DRAIN_TIMEOUT" || ok=0
    echo "$tag $kind $offered $s0 $ge $(now_ns) $c0 $(cpu_ticks) $ok ${l0// /,} $(loadavg | tr ' ' ,)" >>"$W/phases.tsv"
    log "run $tag: $lines lines written at $(jq -r '.rate_lines_s|floor' "$W/gen-$tag.json") lines/s; vendor got $(vendor_run "$tag" unique_seq) (p99 $(vendor_run "$tag" latency.p99_ms) ms)"
}

# perf: `perf record -g` on scrubs for 20 s, starting 8 s from now.
PERF_PID=""
perf_start() {
    if [ "$PERF" = 1 ] && command -v perf >/dev/null; then
        (
            sleep 8
            "${ON_GEN[@]}" perf record ${PERF_CALLGRAPH:--g} -F 499 -p "$SCRUBS_PID" -o "$W/perf.data" -- sleep 20 >/dev/null 2>"$W/perf.log"
        ) &
        PERF_PID=$!
    fi
}
perf_finish() {
    if [ -n "$PERF_PID" ]; then
        wait "$PERF_PID" || true
        PERF_PID=""
        perf report -i "$W/perf.data" --no-children --stdio --percent-limit 0.5 --sort dso,symbol -g none 2>/dev/null |
            awk '$1 ~ /%$/ {sub(/[ \t]+-[ \t]+-[ \t]*$/, ""); print}' | head -50 >"$W/perf-self.txt" || true
    fi
}

# Saturation: as fast as the generator writes; returns scrubs' rate in $SAT_RATE.
saturate() {
    local tag=$1 n=$2
    perf_start
    gen_phase "$tag" sat max --rate 0 --lines "$n" --duration 3600
    perf_finish
    local start last
    start=$(awk -v t="$tag" '$1 == t {print $4}' "$W/phases.tsv")
    last=$(vendor_run "$tag" last_recv_ns)
    SAT_RATE=$(awk -v n="$n" -v a="$start" -v b="$last" 'BEGIN { printf "%d", n / ((b - a) / 1e9) }')
    meta "sat_rate_$tag" "$SAT_RATE"
    log "saturation: scrubs delivered $n lines at $SAT_RATE lines/s"
}

case "$MODE" in
tail)
    SAT_RATE=0
    if [ "${SAT_LINES:-3000000}" != 0 ]; then
        saturate sat "${SAT_LINES:-3000000}"
    fi
    if [ -z "$RATES" ]; then
        for f in $FRACTIONS; do
            RATES="$RATES $(awk -v m="$SAT_RATE" -v f="$f" 'BEGIN { printf "%d", m * f }')"
        done
    fi
    i=0
    for r in $RATES; do
        i=$((i + 1))
        gen_phase "r${i}" rate "$r" --rate "$r" --duration "$PHASE_SECS"
    done
    ;;
otlp)
    l0=$(loadavg)
    c0=$(cpu_ticks)
    s0=$(now_ns)
    rq=0
    [ -n "$RATE" ] && rq=$(awk -v m="$RATE" 'BEGIN { printf "%.2f", m / 512 }')
    log "replaying OTLP: $BODIES bodies x 512 records, $CONCURRENCY connections, ${DURATION}s, ${RATE:-closed loop} records/s, load $l0"
    perf_start
    "${ON_GEN[@]}" "$EX/otlp_replay" --url "http://127.0.0.1:$OPORT/v1/logs" --bodies "$BODIES" \
        --records 512 --concurrency "$CONCURRENCY" --duration "$DURATION" --rate "$rq" \
        --audit-pm "$AUDIT_PM" --report "$W/replay.json" >/dev/null
    perf_finish
    ge=$(now_ns)
    acc=$(jq -r .records_accepted "$W/replay.json")
    for _ in $(seq 60); do
        [ "$(jq -r '.records.logs // 0' "$W/vendor.json")" -ge "$acc" ] && break
        sleep 0.5
    done
    echo "otlp otlp ${RATE:-max} $s0 $ge $(now_ns) $c0 $(cpu_ticks) 1 ${l0// /,} $(loadavg | tr ' ' ,)" >>"$W/phases.tsv"
    ;;
overload)
    if [ -z "$MAX" ]; then
        if [ "$SOURCE" = otlp ]; then
            echo "bench-sidecar: overload --source otlp needs --max RECORDS_PER_S" >&2
            exit 2
        fi
        saturate cal "${SAT_LINES:-1500000}"
        MAX=$SAT_RATE
    fi
    meta max "$MAX"
    if [ "$SOURCE" = tail ]; then
        r=$((MAX * 2))
        if [ "$CONTROL" = 1 ]; then
            # The same writer, same rate, into a file nobody reads: its
            # write(2) times are the baseline for "never blocked".
            log "control: the generator alone at $r lines/s for 60 s (nobody reading), load $(loadavg)"
            "${ON_GEN[@]}" "$EX/loadgen" --out "$W/logs/control.log" --tag control --rate "$r" \
                --duration 60 --audit-pm "$AUDIT_PM" --report "$W/control.json" >/dev/null
            rm -f "$W/logs/control.log"
            meta control_load "$(loadavg)"
        fi
        gen_phase over overload "$r" --rate "$r" --duration "$DURATION" --rotate-bytes "$ROTATE_BYTES"
    else
        # Open loop: 2 x max records/s in requests of 512 records.
        rq=$(awk -v m="$MAX" 'BEGIN { printf "%.2f", 2 * m / 512 }')
        l0=$(loadavg)
        c0=$(cpu_ticks)
        s0=$(now_ns)
        log "OTLP overload: $rq requests/s (2 x $MAX records/s), $CONCURRENCY connections, ${DURATION}s"
        "${ON_GEN[@]}" "$EX/otlp_replay" --url "http://127.0.0.1:$OPORT/v1/logs" --bodies "$BODIES" \
            --records 512 --concurrency "$CONCURRENCY" --duration "$DURATION" --rate "$rq" \
            --audit-pm "$AUDIT_PM" --report "$W/replay.json" >/dev/null
        ge=$(now_ns)
        sleep 5
        echo "over otlp_overload $((MAX * 2)) $s0 $ge $(now_ns) $c0 $(cpu_ticks) 1 ${l0// /,} $(loadavg | tr ' ' ,)" >>"$W/phases.tsv"
    fi
    ;;
soak)
    if [ -z "$RATE" ]; then
        if [ -z "$MAX" ]; then
            saturate cal "${SAT_LINES:-1500000}"
            MAX=$SAT_RATE
        fi
        RATE=$((MAX / 2))
    fi
    meta max "${MAX:-}"
    meta soak_rate "$RATE"
    meta soak_start_ns "$(now_ns)"
    gen_phase soak soak "$RATE" --rate "$RATE" --duration "$DURATION" --rotate-bytes "$ROTATE_BYTES"
    ;;
esac

# ---- end: state, audit, shutdown -----------------------------------------------
meta alive_at_end "$(kill -0 "$SCRUBS_PID" 2>/dev/null && echo yes || echo no)"
meta healthz_at_end "$(curl -s -o /dev/null -w '%{http_code}' "http://$ADMIN/healthz" || echo none)"
sleep 2
metrics >"$W/metrics-final.txt" || true
meta hwm_kb "$(status_kb VmHWM || echo 0)"
meta end_rss_kb "$(status_kb VmRSS || echo 0)"
meta load_end "$(loadavg)"
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""

# Audit: every audit line written must be in the topic, once.
sleep 3
meta audit_expected "$(cat "$W"/gen-*.json "$W"/replay.json 2>/dev/null | jq -s 'map((.audit_lines // 0) + (.audit_records_accepted // 0)) | add // 0')"
meta audit_in_kafka "$("$EX/bench_kafka" count "$BROKERS" "$TOPIC" || echo error)"
if [ "$VERIFY" = 1 ]; then
    log "scrubs audit verify on $TOPIC"
    "$BIN" audit verify --brokers "$BROKERS" --topic "$TOPIC" --timeout 15s >"$W/verify.txt" 2>&1 || true
    meta audit_verify "$(tail -1 "$W/verify.txt")"
fi

# SIGTERM: drain and exit 0.
t0=$(now_ns)
kill -TERM "$SCRUBS_PID"
code=0
wait "$SCRUBS_PID" || code=$?
meta exit_code "$code"
meta shutdown_ms "$((($(now_ns) - t0) / 1000000))"
SCRUBS_PID=""
kill -TERM "$VENDOR_PID" 2>/dev/null || true
wait "$VENDOR_PID" 2>/dev/null || true
VENDOR_PID=""
grep -E '^scrubs_(audit_delivery_latency_seconds_(bucket|count)|queue_depth|vendor_dropped|vendor_records|vendor_retries|source_nacks|otlp_refused|otlp_requests|otlp_rejected|audit_events|audit_records|audit_spool|file_lag|records_in|file_truncated|source_truncated)' \
    "$W/metrics-final.txt" >"$W/metrics-drops.txt" || true
meta phi_in_scrubs_log "$(grep -cF -f "$W/canaries.txt" "$W/scrubs.log" || true)"

python3 - "$W" "$WARMUP" <<'PY' | tee "$W/report.txt"
import json, os, sys
W, warmup = sys.argv[1], float(sys.argv[2])
meta = {}
for line in open(os.path.join(W, "meta.env")):
    k, _, v = line.rstrip("\n").partition("=")
    meta[k] = v
clk = float(meta.get("clk_tck", 100))
vendor = json.load(open(os.path.join(W, "vendor.json")))
phases = []
rows = [l.split() for l in open(os.path.join(W, "phases.tsv"))][1:]
for r in rows:
    phases.append(dict(tag=r[0], kind=r[1], offered=r[2], start=int(r[3]), gen_end=int(r[4]),
                       done=int(r[5]), cpu0=float(r[6]), cpu1=float(r[7]), delivered=r[8] == "1",
                       load0=r[9].replace(",", " "), load1=r[10].replace(",", " ")))
samples = []
srows = [l.split() for l in open(os.path.join(W, "samples.tsv"))]
for r in srows[1:]:
    try:
        samples.append([float(x) for x in r])
    except ValueError:
        pass
S = dict(mode=meta["mode"], meta=meta, phases=[])
out = []
p = out.append
p(f"== scrubs sidecar bench: {meta['mode']} ==")
p(f"command: {meta['command']}")
p(f"binary: {meta.get('binary')}")
p(f"machine: {meta['nproc']} cores, {meta['cpu']}, {meta['mem']}, kernel {meta['kernel']}, {meta['rustc']}, scrubs {meta['git']}")
p(f"pinning: {'scrubs on core 1; generator, vendor, sampler on core 0' if meta['pinned'] == '1' else 'none'}; broker: {meta.get('broker')}")
if meta.get("file_opts"):
    p(f"file source settings besides the defaults: {meta['file_opts']}")
p(f"audit lines: {meta.get('audit_pm')} per mille")
p(f"load average: start {meta['load_start']}, end {meta['load_end']}")
mb = lambda kb: float(kb) / 1024
p(f"RSS: idle {mb(meta['idle_rss_kb']):.1f} MiB, peak (VmHWM) {mb(meta['hwm_kb']):.1f} MiB, max sampled {max([s[1] for s in samples] or [0]) / 1024:.1f} MiB, at end {mb(meta['end_rss_kb']):.1f} MiB")

def window_rate(t0, t1):
    # vendor log records/s between two times (ns), from its per-second series
    ser = vendor.get("series", [])
    pts = [(t, n) for t, n in ser if t0 / 1e9 <= t <= t1 / 1e9]
    if len(pts) < 2:
        return None
    return (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])

for ph in phases:
    if ph["kind"] in ("otlp", "otlp_overload"):
        continue
    g = json.load(open(os.path.join(W, f"gen-{ph['tag']}.json")))
    run = vendor["runs"].get(ph["tag"], {})
    lat = run.get("latency", {})
    lines, byts = g["lines"], g["bytes"]
    last = run.get("last_recv_ns", 0) or ph["done"]
    span = (last - ph["start"]) / 1e9
    cpu = (ph["cpu1"] - ph["cpu0"]) / clk
    wall = (ph["done"] - ph["start"]) / 1e9
    drain = (last - g["end_ns"]) / 1e9
    steady = window_rate(ph["start"] + 5e9, min(g["end_ns"], last) - 1e9) if ph["kind"] != "sat" else \
        window_rate(ph["start"] + 5e9, last - 2e9)
    lag = [s[4] for s in samples if ph["start"] <= s[0] <= ph["done"]]
    d = dict(tag=ph["tag"], kind=ph["kind"], offered=ph["offered"], lines=lines, bytes=byts,
             avg_line=g["avg_line_bytes"], gen_rate=g["rate_lines_s"], gen_seconds=g["seconds"],
             received=run.get("unique_seq", 0), duplicates=run.get("duplicates", 0),
             delivered_rate=lines / span if span > 0 else 0, delivered_mb_s=byts / span / 1e6 if span > 0 else 0,
             steady_rate=steady, drain_s=drain, kept_up=ph["delivered"] and drain <= 1.0,
             cpu_s=cpu, cpu_util=cpu / wall if wall > 0 else 0, cpu_s_per_gb=cpu / (byts / 1e9) if byts else 0,
             latency=lat, write_us=g["write_us"], writes_over_10ms=g["writes_over_10ms"],
             max_lag_mb=max(lag or [0]) / 1e6, rotations=g.get("rotations", 0),
             audit_lines=g["audit_lines"], load=f"{ph['load0']} -> {ph['load1']}")
    S["phases"].append(d)
    p("")
    p(f"-- run {d['tag']} ({d['kind']}), offered {d['offered']} lines/s, load {d['load']}")
    p(f"   generator: {lines} lines, {byts / 1e6:.0f} MB (avg {d['avg_line']:.0f} B/line) in {d['gen_seconds']:.1f}s = {d['gen_rate']:.0f} lines/s; "
      f"write(2) max {d['write_us']['max'] / 1000:.2f} ms, p99.9 {d['write_us']['p999'] / 1000:.2f} ms, {d['writes_over_10ms']} over 10 ms")
    p(f"   vendor: {d['received']} of {lines} lines ({d['duplicates']} duplicates); delivered {d['delivered_rate']:.0f} lines/s = {d['delivered_mb_s']:.1f} MB/s"
      + (f" (steady {d['steady_rate']:.0f}/s)" if d['steady_rate'] else "") + f"; last line {d['drain_s']:.2f}s after the generator stopped; kept up: {'n/a (saturation)' if d['kind'] == 'sat' else 'yes' if d['kept_up'] else 'no'}")
    p(f"   latency append -> vendor: p50 {lat.get('p50_ms')} ms, p90 {lat.get('p90_ms')} ms, p99 {lat.get('p99_ms')} ms, p99.9 {lat.get('p999_ms')} ms, max {lat.get('max_ms')} ms")
    p(f"   scrubs CPU: {cpu:.1f} s over {wall:.1f} s ({d['cpu_util'] * 100:.0f}% of a core), {d['cpu_s_per_gb']:.1f} CPU-s/GB, "
      f"{lines / cpu if cpu else 0:.0f} lines per CPU-second; max file lag {d['max_lag_mb']:.1f} MB")

for ph in phases:
    if ph["kind"] not in ("otlp", "otlp_overload"):
        continue
    rp = json.load(open(os.path.join(W, "replay.json")))
    cpu = (ph["cpu1"] - ph["cpu0"]) / clk
    wall = (ph["gen_end"] - ph["start"]) / 1e9
    acc = rp["records_accepted"]
    steady = window_rate(ph["start"] + 5e9, ph["gen_end"] - 1e9)
    d = dict(tag=ph["tag"], kind=ph["kind"], replay=rp, cpu_s=cpu, cpu_util=cpu / wall,
             cpu_s_per_m_records=cpu / (acc / 1e6) if acc else 0,
             cpu_s_per_gb=cpu / (rp["requests_2xx"] * rp["body_bytes_avg"] / 1e9) if acc else 0,
             vendor_records=vendor["records"].get("logs", 0), vendor_steady_rate=steady,
             load=f"{ph['load0']} -> {ph['load1']}")
    S["phases"].append(d)
    p("")
    p(f"-- OTLP {ph['kind']}: {rp['concurrency']} connections, {rp['records_per_body']} records/request, "
      f"{rp['body_bytes_avg']} B/request ({rp['body_bytes_avg'] / rp['records_per_body']:.0f} B/record), load {d['load']}")
    p(f"   requests {rp['requests']} ({rp['status']}), transport errors {rp['transport_errors']}, late {rp['late']}")
    p(f"   offered {rp['offered_records_s']:.0f} records/s, accepted {rp['accepted_records_s']:.0f} records/s ({rp['accepted_mb_s']:.1f} MB/s of protobuf); "
      f"vendor received {d['vendor_records']} records" + (f", steady {steady:.0f}/s" if steady else ""))
    p(f"   request latency p50 {rp['latency_ms']['p50']:.1f} ms, p99 {rp['latency_ms']['p99']:.1f} ms, max {rp['latency_ms']['max']:.1f} ms")
    p(f"   scrubs CPU: {cpu:.1f} s over {wall:.1f} s ({d['cpu_util'] * 100:.0f}% of a core), {d['cpu_s_per_m_records']:.2f} CPU-s per million records, "
      f"{acc / cpu if cpu else 0:.0f} records per CPU-second, {d['cpu_s_per_gb']:.1f} CPU-s/GB")

cp = os.path.join(W, "control.json")
if os.path.exists(cp):
    c = json.load(open(cp))
    p("")
    p(f"-- control: the generator alone (nobody reading) at {c['offered_rate']:.0f} lines/s for {c['seconds']:.0f}s, load {meta.get('control_load')}: "
      f"{c['rate_lines_s']:.0f} lines/s; write(2) max {c['write_us']['max'] / 1000:.2f} ms, p99.9 {c['write_us']['p999'] / 1000:.2f} ms, {c['writes_over_10ms']} over 10 ms")
    S["control"] = c

if meta["mode"] == "soak" and samples:
    t0 = int(meta["soak_start_ns"])
    t_end = phases[-1]["gen_end"]
    post = [s for s in samples if t0 + warmup * 1e9 <= s[0] <= t_end]
    first = [s[1] for s in post if s[0] <= t0 + (warmup + 60) * 1e9]
    last = [s[1] for s in post if s[0] >= t_end - 60e9]
    if first and last:
        b, e = sum(first) / len(first), sum(last) / len(last)
        mx = max(s[1] for s in post)
        growth, growth_max = (e - b) / b * 100, (mx - b) / b * 100
        S["soak"] = dict(baseline_kb=b, final_kb=e, max_kb=mx, growth_pct=growth, max_growth_pct=growth_max,
                         samples=len(post), passed=growth < 10)
        p("")
        p(f"-- soak RSS after {warmup:.0f}s warm-up ({len(post)} samples every {meta.get('sample', '10')}s): first minute {b / 1024:.1f} MiB, "
          f"last minute {e / 1024:.1f} MiB: growth {growth:+.1f}% (max sample {mx / 1024:.1f} MiB, {growth_max:+.1f}%) -> {'PASS' if growth < 10 else 'FAIL'} (< 10%)")

p("")
exp, got = meta.get("audit_expected"), meta.get("audit_in_kafka")
p(f"audit: {got} messages in Kafka for {exp} audit lines written -> {'complete' if exp == got else 'MISMATCH'}"
  + (f"; verify: {meta['audit_verify']}" if meta.get("audit_verify") else ""))
p(f"vendor: {vendor['records']} records, {vendor['requests']} requests, {vendor['bytes_wire'] / 1e6:.0f} MB on the wire, "
  f"{vendor['bytes_decoded'] / 1e6:.0f} MB decoded, decode errors {vendor['decode_errors']}")
if samples and len(samples[0]) > 10:
    vs = (samples[-1][10] - samples[0][10]) / clk
    vw = (samples[-1][0] - samples[0][0]) / 1e9
    p(f"fake vendor (examples/vendor_sink, core 0): {vs:.1f} CPU-s over {vw:.0f}s ({vs / vw * 100:.0f}% of a core)")
p(f"raw PHI canaries at the vendor: {vendor['canary_hits_total']} ({'OK' if vendor['canary_hits_total'] == 0 else 'LEAK'}); "
  f"canaries in scrubs' own log: {meta.get('phi_in_scrubs_log')}")
p(f"scrubs: alive at end {meta['alive_at_end']}, /healthz {meta['healthz_at_end']}, SIGTERM exit {meta['exit_code']} after {meta['shutdown_ms']} ms")
if samples:
    p(f"max sampled: file lag {max(s[4] for s in samples) / 1e6:.1f} MB, vendor queue {max(s[6] for s in samples) / 1e6:.1f} MB, "
      f"audit spool {max(s[7] for s in samples) / 1e6:.1f} MB; vendor drops {max(s[5] for s in samples):.0f}, OTLP refused {max(s[8] for s in samples):.0f}")
drops = open(os.path.join(W, "metrics-drops.txt")).read().strip()
p("metrics at the end (drops, lag, audit, OTLP):")
for l in drops.splitlines():
    p("   " + l)
for f in ("perf-self.txt",):
    fp = os.path.join(W, f)
    if os.path.exists(fp) and os.path.getsize(fp):
        p(f"perf (self time, top symbols) in {fp}:")
        for l in open(fp).read().splitlines()[:25]:
            p("   " + l.strip())
S["rss"] = dict(idle_kb=float(meta["idle_rss_kb"]), hwm_kb=float(meta["hwm_kb"]), end_kb=float(meta["end_rss_kb"]))
S["audit"] = dict(expected=exp, in_kafka=got, verify=meta.get("audit_verify"))
S["canary_hits"] = vendor["canary_hits_total"]
json.dump(S, open(os.path.join(W, "summary.json"), "w"), indent=1)
print("\n".join(out))
print(f"\nresults: {W}")
PY
exit 0
}
