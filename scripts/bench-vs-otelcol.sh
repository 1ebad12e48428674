#!/usr/bin/env bash
# Side by side: scrubs and the OpenTelemetry Collector, OTLP/HTTP logs in,
# PHI redacted, OTLP/HTTP out to one vendor (issue 14).
#
#   scripts/bench-vs-otelcol.sh [options]
#
# The collector is built once with the OpenTelemetry Collector Builder
# (`go install go.opentelemetry.io/collector/cmd/builder`, from the Go module
# proxy) into ~/.cache/scrubs-bench/otelcol/VERSION (XDG_CACHE_HOME is
# honoured), outside the repository, and reused while its manifest is
# unchanged. Components, all at the collector release pinned below: OTLP
# receiver (HTTP), transform processor, redaction processor, batch
# processor, OTLP/HTTP exporter. It needs Go >= 1.26 (GO=/path/to/go, else
# `go` on PATH, else /usr/local/go/bin/go).
#
# How the collector redacts: the regexes of the VRL comparison
# (benches/engine.rs `vrl_side::FILTERS`, read from that file at run time, so
# both comparisons use the same 14 rules), one rule per statement or list
# entry, the way collector users write them. Two configurations, each its own
# collector process in the same run (--collector-modes):
#   transform: transform processor, log context, `replace_pattern(body, RE,
#     "[REDACTED:rule]")` and `replace_all_patterns(attributes, "value", RE,
#     "[REDACTED:rule]")` per rule, error_mode ignore; then the batch
#     processor.
#   redaction: redaction processor, `allow_all_keys: true`, the rules as
#     `blocked_values` (this release masks matches in log attributes and in
#     string log bodies), `summary: silent`; then the batch processor.
# The rules have none for person names (a regex cannot tell a name from
# other words), so the collector lets names through by design of its rules.
# Resource and scope attributes carry no PHI in this corpus and are left
# alone. Everything else, on both sides, is at its defaults (both exporters
# gzip their requests). scrubs runs with an OTLP/HTTP source and one
# BAA-covered vendor, the way scripts/bench-sidecar.sh writes its config, and
# no audit fork (the collector has none; bench-sidecar's otlp mode forks
# nothing to Kafka either, --audit-pm 0).
#
# The load: examples/otlp_replay encodes --bodies ExportLogsServiceRequests
# of 512 records once (the same seed for every system, so the same bytes)
# and replays them closed loop over --concurrency connections for --duration
# seconds to each system in turn. --corpus lines (default): the records of
# scripts/bench-sidecar.sh otlp (examples/bench_lines.rs: 2% canary records,
# 10% with one random identifier of 6 kinds, the rest clean); --corpus
# dense: every record a PHI-dense line of the engine bench (benches/common:
# 1 to 3 identifiers of 12 kinds, including cards, MBIs, ICD-10 codes, IPs,
# street addresses and textual dates). Each system runs pinned to core 1
# (`taskset -c 1`); the replayer, the fake vendor (examples/vendor_sink, a
# new one per system) and the sampler run on core 0.
#
# Measured per system:
#   records/s accepted (2xx from the system, over the replay's seconds) and
#     delivered (records at the vendor, over the time from the start of the
#     replay to the last record's arrival);
#   CPU-seconds per million records accepted (/proc/PID/stat utime+stime from
#     the start of the replay until the vendor has everything);
#   idle RSS (VmRSS after --idle seconds ready and unused) and peak RSS
#     (VmHWM at the end);
#   PHI let through: otlp_replay records every PHI value it plants (the
#     random identifiers, the canaries, the canary records'
#     patient.name/patient.phone attributes; a value that also occurs where
#     it was not planted, such as 8 MRN digits inside a hex trace id, is left
#     out), the vendor counts each of them in what it receives (record bodies
#     and attributes), and the share is vendor hits over the planted values
#     in the delivered records (planted in the accepted requests, times
#     delivered / accepted if a system accepted records it did not deliver),
#     overall and by kind.
# The report (OUT/report.txt), a table, and OUT/summary.json give these, the
# ratios scrubs / collector, the machine, the commit and the load average.
#
# Options:
#   --out DIR               results directory (default /tmp/scrubs-bench-vs-otelcol-DATE)
#   --duration S            replay seconds per system (default 60)
#   --concurrency N         replay connections (default 4)
#   --scrubs-rate N         replay to scrubs open loop at N records/s instead of closed
#                           loop (closed loop, scrubs answers 429 when its queue is full
#                           and the replayer, unlike an exporter, retries at once: the
#                           CPU it spends refusing counts against the records accepted)
#   --bodies N              distinct request bodies (default 64)
#   --corpus lines|dense    what the records say (default lines, see above)
#   --idle S                seconds ready and unused before the idle RSS (default 5)
#   --rounds N              run every system N times, alternating (default 1);
#                           the table gives medians (PHI: sums), each run is listed
#   --collector-modes "M.." which collector configurations to run (default "transform redaction")
#   --no-scrubs             run the collector only
#   --no-pin                do not pin processes to cores
#   --no-build              skip the cargo build (the collector is built if missing)
#   --rebuild-collector     build the collector again even if cached
set -euo pipefail
# The whole script is one block, parsed before it runs: editing this file
# while a run is in progress cannot change what that run executes.
{

# The collector release: every component below is pinned to it (the
# builder resolves the v1.67.0 stable modules that go with it). v0.161.0
# is the newest release whose transform processor was known to resolve on
# the project's machines; it builds with Go 1.26.
OTELCOL_VERSION=v0.161.0

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CMDLINE="scripts/bench-vs-otelcol.sh $*"

OUT="" DURATION=60 CONCURRENCY=4 BODIES=64 CORPUS=lines IDLE=5 ROUNDS=1 MODES="transform redaction" SCRUBS_RATE=""
RUN_SCRUBS=1 PIN=1 BUILD=1 REBUILD=0
while [ $# -gt 0 ]; do
    case "$1" in
    --out) OUT=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --concurrency) CONCURRENCY=$2; shift ;;
    --scrubs-rate) SCRUBS_RATE=$2; shift ;;
    --bodies) BODIES=$2; shift ;;
    --corpus) CORPUS=$2; shift ;;
    --idle) IDLE=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --collector-modes) MODES=$2; shift ;;
    --no-scrubs) RUN_SCRUBS=0 ;;
    --no-pin) PIN=0 ;;
    --no-build) BUILD=0 ;;
    --rebuild-collector) REBUILD=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/{s/^# \{0,1\}//;/^set -euo/d;p}' "$0"
        exit 0
        ;;
    *) echo "bench-vs-otelcol: unknown option $1 (--help)" >&2; exit 2 ;;
    esac
    shift
done
case "$CORPUS" in lines | dense) ;; *) echo "bench-vs-otelcol: --corpus lines|dense" >&2; exit 2 ;; esac
for m in $MODES; do
    case "$m" in transform | redaction) ;; *) echo "bench-vs-otelcol: unknown collector mode $m (transform, redaction)" >&2; exit 2 ;; esac
done

for tool in curl jq python3; do
    command -v "$tool" >/dev/null || { echo "bench-vs-otelcol: $tool is required" >&2; exit 2; }
done
if [ "$PIN" = 1 ] && { ! command -v taskset >/dev/null || [ "$(nproc)" -lt 2 ]; }; then
    echo "bench-vs-otelcol: taskset missing or one core: not pinning" >&2
    PIN=0
fi
if [ "$PIN" = 1 ]; then
    ON_SUT=(taskset -c 1)
    ON_GEN=(taskset -c 0)
else
    ON_SUT=()
    ON_GEN=()
fi

OUT=${OUT:-/tmp/scrubs-bench-vs-otelcol-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
W=$(cd "$OUT" && pwd)
exec > >(tee -a "$W/run.log") 2>&1

log() { printf '%s bench-vs-otelcol: %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { log "error: $*"; exit 1; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
now_ns() { date +%s%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
meta() { printf '%s=%s\n' "$1" "$2" >>"$W/meta.env"; }

: >"$W/meta.env"
meta command "$CMDLINE"
meta started "$(date -Is)"
meta nproc "$(nproc)"
meta cpu "$(lscpu | sed -n 's/^Model name: *//p')"
meta mem "$(free -g | awk '/^Mem:/{print $2}') GiB"
meta kernel "$(uname -r)"
meta rustc "$(rustc --version 2>/dev/null || echo '?')"
meta git "$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src examples 2>/dev/null || echo ' (src or examples modified)')"
meta pinned "$PIN"
meta duration "$DURATION"
meta concurrency "$CONCURRENCY"
meta bodies "$BODIES"
meta corpus "$CORPUS"
meta rounds "$ROUNDS"
meta scrubs_rate "${SCRUBS_RATE:-closed loop}"
meta clk_tck "$(getconf CLK_TCK)"
meta otelcol_version "$OTELCOL_VERSION"
meta load_start "$(loadavg)"

# ---- the collector: built once, outside the repository ----------------------
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/scrubs-bench/otelcol
CDIR=$CACHE/$OTELCOL_VERSION
OTELCOL=$CDIR/dist/otelcol-scrubs-bench
MANIFEST=$(
    cat <<EOF
# Written by scripts/bench-vs-otelcol.sh (the scrubs repository).
dist:
  name: otelcol-scrubs-bench
  description: OpenTelemetry Collector for the scrubs side-by-side bench
  output_path: ./dist
receivers:
  - gomod: go.opentelemetry.io/collector/receiver/otlpreceiver $OTELCOL_VERSION
processors:
  - gomod: go.opentelemetry.io/collector/processor/batchprocessor $OTELCOL_VERSION
  - gomod: github.com/open-telemetry/opentelemetry-collector-contrib/processor/transformprocessor $OTELCOL_VERSION
  - gomod: github.com/open-telemetry/opentelemetry-collector-contrib/processor/redactionprocessor $OTELCOL_VERSION
exporters:
  - gomod: go.opentelemetry.io/collector/exporter/otlphttpexporter $OTELCOL_VERSION
EOF
)
build_collector() {
    [ -x "$GO" ] || command -v "$GO" >/dev/null || die "no Go toolchain (set GO=/path/to/go); the collector is built from the Go module proxy"
    local gover
    gover=$("$GO" env GOVERSION 2>/dev/null) || die "$GO env GOVERSION failed"
    # The collector release needs Go 1.26 (its go.mod says go 1.26.0).
    if ! printf '%s\n' "$gover" | awk -F'[go.]+' '{ exit !($2 > 1 || ($2 == 1 && $3 >= 26)) }'; then
        die "$gover is too old: the collector $OTELCOL_VERSION needs Go >= 1.26 (GO=/path/to/go, or GOTOOLCHAIN)"
    fi
    mkdir -p "$CDIR"
    log "building the collector $OTELCOL_VERSION with $gover in $CDIR (once; 10-20 min on 2 cores)"
    GOBIN=$CACHE/bin nice -n 10 "$GO" install "go.opentelemetry.io/collector/cmd/builder@$OTELCOL_VERSION" \
        >"$CDIR/build.log" 2>&1 || { tail -20 "$CDIR/build.log"; die "go install of the collector builder failed (log: $CDIR/build.log)"; }
    printf '%s\n' "$MANIFEST" >"$CDIR/manifest.yaml"
    rm -f "$OTELCOL"
    (cd "$CDIR" && PATH="$("$GO" env GOROOT)/bin:$PATH" nice -n 10 "$CACHE/bin/builder" --config manifest.yaml) \
        >>"$CDIR/build.log" 2>&1 || { tail -20 "$CDIR/build.log"; die "the collector build failed (log: $CDIR/build.log)"; }
    [ -x "$OTELCOL" ] || die "the builder left no binary at $OTELCOL (log: $CDIR/build.log)"
}
if [ "${#MODES}" -gt 0 ]; then
    if [ "$REBUILD" = 1 ] || [ ! -x "$OTELCOL" ] || [ "$(cat "$CDIR/manifest.yaml" 2>/dev/null)" != "$MANIFEST" ]; then
        build_collector
    else
        log "the collector $OTELCOL_VERSION is cached: $OTELCOL"
    fi
    meta otelcol_binary "$OTELCOL ($(date -r "$OTELCOL" -Is))"
    meta go "$("$GO" env GOVERSION 2>/dev/null || echo '?')"
fi

# ---- scrubs and the tools ---------------------------------------------------
if [ "$BUILD" = 1 ]; then
    # The binary alone, after the tools: built with them it would get the
    # dependencies' dev features, another start-up list match and ~2.6 MiB
    # more resident code than the image's binary (scripts/startup-symbols.sh).
    log "building (cargo build --release --examples; cargo build --release --bin scrubs)"
    cargo build --release --quiet --examples
    cargo build --release --quiet --bin scrubs
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
for f in scrubs examples/vendor_sink examples/otlp_replay; do
    [ -x "$TARGET_DIR/release/$f" ] \
        || die "$TARGET_DIR/release/$f is missing: run without --no-build (CARGO_TARGET_DIR as for the build)"
done
# Private copies: other builds may replace target/release while this runs.
mkdir -p "$W/bin"
cp "$TARGET_DIR/release/scrubs" "$W/bin/scrubs"
for t in vendor_sink otlp_replay; do
    cp "$TARGET_DIR/release/examples/$t" "$W/bin/$t"
done
BIN=$W/bin/scrubs
EX=$W/bin
meta scrubs_binary "target/release/scrubs built $(date -r "$TARGET_DIR/release/scrubs" -Is)"
# Whether the start-up list matches this binary: a stale one shows as
# idle memory (see scripts/startup-symbols.sh).
STARTUP_LIST=$("$ROOT/scripts/startup-symbols.sh" --check "$BIN" 2>/dev/null | sed 's/ defined by .*//')
meta startup_list "$STARTUP_LIST"
log "start-up list: $STARTUP_LIST"

SUT_PID="" VENDOR_PID="" SAMPLER_PID=""
stop() {
    local p
    for p in "$@"; do
        [ -n "$p" ] || continue
        kill -TERM "$p" 2>/dev/null || continue
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
}
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    set +e
    stop "$SAMPLER_PID" "$SUT_PID" "$VENDOR_PID"
    rm -rf "${W:?}/bin" "${W:?}/data"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the planted PHI values -------------------------------------------------
# A replay of no seconds encodes the bodies and writes the list of planted
# values without sending anything; every real replay encodes the same bodies.
REPLAY_ARGS=(--bodies "$BODIES" --records 512 --concurrency "$CONCURRENCY" --audit-pm 0 --corpus "$CORPUS")
"$EX/otlp_replay" --url http://127.0.0.1:9/v1/logs "${REPLAY_ARGS[@]}" --duration 0 \
    --phi-list "$W/phi-values.txt" --phi-kinds "$W/phi-kinds.tsv" >"$W/replay-dry.json" 2>"$W/replay-dry.log" \
    || die "otlp_replay could not encode the bodies (log: $W/replay-dry.log)"
log "planted PHI: $(jq -r .phi.values "$W/replay-dry.json") distinct values in $BODIES bodies," \
    "$(jq -r .phi.planted_per_body_avg "$W/replay-dry.json") a body; left out: $(jq -r .phi.values_left_out "$W/replay-dry.json") that also occur where not planted"
meta phi_values "$(jq -r .phi.values "$W/replay-dry.json")"
meta phi_values_left_out "$(jq -r .phi.values_left_out "$W/replay-dry.json")"

# The rules of the VRL comparison, from benches/engine.rs.
python3 - "$ROOT/benches/engine.rs" >"$W/filters.tsv" <<'PY'
import re, sys
src = open(sys.argv[1]).read()
block = src[src.index("pub const FILTERS"):]
block = block[:block.index("];")]
rules = re.findall(r'\(\s*"(\w+)",\s*r"([^"]*)",?\s*\)', block)
if len(rules) < 10:
    sys.exit(f"found only {len(rules)} rules in vrl_side::FILTERS")
for name, rx in rules:
    print(f"{name}\t{rx}")
PY
log "collector rules: $(wc -l <"$W/filters.tsv") regexes from benches/engine.rs vrl_side::FILTERS"

# ---- one system -------------------------------------------------------------
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SUT_PID/stat"; }
status_kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$SUT_PID/status"; }

start_vendor() {
    local dir=$1
    rm -f "$dir/vendor.port"
    "${ON_GEN[@]}" "$EX/vendor_sink" --port-file "$dir/vendor.port" --stats "$dir/vendor.json" \
        --canaries "$W/phi-values.txt" 2>>"$dir/vendor.log" &
    VENDOR_PID=$!
    for _ in $(seq 100); do [ -s "$dir/vendor.port" ] && break; sleep 0.1; done
    [ -s "$dir/vendor.port" ] || die "the fake vendor did not start (log: $dir/vendor.log)"
    VPORT=$(cat "$dir/vendor.port")
}

write_scrubs_config() {
    local dir=$1 oport=$2 aport=$3
    cat >"$dir/config.yaml" <<EOF
# Written by scripts/bench-vs-otelcol.sh: every setting not named here is at its default.
data_dir: $W/data/scrubs
sources:
  otlp:
    type: otlp
    http: { address: "127.0.0.1:$oport" }
    grpc: null
vendors:
  - name: bench-vendor
    endpoint: http://127.0.0.1:$VPORT
    baa_covered: true
admin:
  address: "127.0.0.1:$aport"
EOF
}

write_collector_config() {
    local dir=$1 oport=$2 mode=$3
    python3 - "$W/filters.tsv" "$mode" "$oport" "$VPORT" >"$dir/config.yaml" <<'PY'
import sys
filters, mode, oport, vport = sys.argv[1:]
rules = [l.rstrip("\n").split("\t", 1) for l in open(filters) if l.strip()]
# `$$` is the collector's escape for `$` (its config expands `${...}`); a
# regex `$$` would still mean `$`, so this is safe either way.
def conf(rx):
    return rx.replace("$", "$$")
def yaml_sq(s):
    return "'" + s.replace("'", "''") + "'"
def ottl(rx):
    # OTTL string literals are Go-quoted: backslashes and quotes escaped.
    return '"' + conf(rx).replace("\\", "\\\\").replace('"', '\\"') + '"'
out = ["# Written by scripts/bench-vs-otelcol.sh: the rules of benches/engine.rs vrl_side::FILTERS.",
       "receivers:", "  otlp:", "    protocols:", "      http:", f"        endpoint: 127.0.0.1:{oport}",
       "processors:", "  batch: {}"]
if mode == "transform":
    out += ["  transform/phi:", "    error_mode: ignore", "    log_statements:", "      - context: log",
            "        statements:"]
    for name, rx in rules:
        out.append("          - " + yaml_sq(f'replace_pattern(body, {ottl(rx)}, "[REDACTED:{name}]")'))
    for name, rx in rules:
        out.append("          - " + yaml_sq(f'replace_all_patterns(attributes, "value", {ottl(rx)}, "[REDACTED:{name}]")'))
    proc = "transform/phi"
else:
    out += ["  redaction/phi:", "    allow_all_keys: true", "    summary: silent", "    blocked_values:"]
    for name, rx in rules:
        out.append(f"      - {yaml_sq(conf(rx))}  # {name}")
    proc = "redaction/phi"
out += ["exporters:", "  otlp_http:", f"    endpoint: http://127.0.0.1:{vport}",
        "service:", "  telemetry:", "    logs: { level: warn }", "    metrics: { level: none }",
        "  pipelines:", "    logs:", "      receivers: [otlp]", f"      processors: [{proc}, batch]",
        "      exporters: [otlp_http]"]
print("\n".join(out))
PY
}

# run_system NAME DIR: starts a vendor and NAME (scrubs, otelcol-transform,
# otelcol-redaction) on core 1, measures idle RSS, replays, waits for the
# vendor to have every accepted record, stops both; results in DIR.
run_system() {
    local name=$1 dir=$2 oport ready=0 url
    mkdir -p "$dir"
    start_vendor "$dir"
    oport=$(free_port)
    url=http://127.0.0.1:$oport/v1/logs
    case "$name" in
    scrubs)
        local aport
        aport=$(free_port)
        write_scrubs_config "$dir" "$oport" "$aport"
        "$BIN" validate --config "$dir/config.yaml" >/dev/null || die "scrubs rejected its bench config"
        "${ON_SUT[@]}" "$BIN" run --config "$dir/config.yaml" 2>"$dir/stderr.log" &
        SUT_PID=$!
        for _ in $(seq 600); do
            if curl -sf "http://127.0.0.1:$aport/readyz" >/dev/null 2>&1; then ready=1; break; fi
            kill -0 "$SUT_PID" 2>/dev/null || break
            sleep 0.1
        done
        ;;
    otelcol-*)
        write_collector_config "$dir" "$oport" "${name#otelcol-}"
        "$OTELCOL" validate --config "$dir/config.yaml" >"$dir/validate.log" 2>&1 \
            || { cat "$dir/validate.log"; die "the collector rejected its config $dir/config.yaml"; }
        "${ON_SUT[@]}" "$OTELCOL" --config "$dir/config.yaml" 2>"$dir/stderr.log" &
        SUT_PID=$!
        # Ready when an empty export request is answered 200.
        for _ in $(seq 600); do
            if [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/x-protobuf' \
                --data-binary '' "$url" 2>/dev/null)" = 200 ]; then
                ready=1
                break
            fi
            kill -0 "$SUT_PID" 2>/dev/null || break
            sleep 0.1
        done
        ;;
    esac
    if [ "$ready" != 1 ]; then
        tail -20 "$dir/stderr.log"
        die "$name did not become ready (log: $dir/stderr.log)"
    fi
    local version
    if [ "$name" = scrubs ]; then version=$("$BIN" --version 2>/dev/null || echo scrubs); else version=$("$OTELCOL" --version 2>/dev/null || echo otelcol); fi

    # Idle: ready, nothing to do.
    sleep "$IDLE"
    local idle_rss idle_hwm
    idle_rss=$(status_kb VmRSS)
    idle_hwm=$(status_kb VmHWM)

    (
        echo "t_ns rss_kb hwm_kb cpu_ticks"
        while kill -0 "$SUT_PID" 2>/dev/null; do
            echo "$(now_ns) $(status_kb VmRSS 2>/dev/null || echo 0) $(status_kb VmHWM 2>/dev/null || echo 0) $(cpu_ticks 2>/dev/null || echo 0)"
            sleep 1
        done
    ) >"$dir/samples.tsv" &
    SAMPLER_PID=$!
    if [ "$PIN" = 1 ]; then taskset -a -p -c 0 "$SAMPLER_PID" >/dev/null || true; fi

    local l0 c0 s0 ge acc got last=-1 since=$SECONDS rate=()
    if [ "$name" = scrubs ] && [ -n "$SCRUBS_RATE" ]; then
        rate=(--rate "$(awk -v r="$SCRUBS_RATE" 'BEGIN { printf "%.3f", r / 512 }')")
    fi
    l0=$(loadavg)
    c0=$(cpu_ticks)
    s0=$(now_ns)
    log "$name: ready (pid $SUT_PID), idle RSS $idle_rss kB; replaying ${DURATION}s, load $l0"
    "${ON_GEN[@]}" "$EX/otlp_replay" --url "$url" "${REPLAY_ARGS[@]}" "${rate[@]}" --duration "$DURATION" \
        --phi-list "$dir/phi-values.txt" --report "$dir/replay.json" >/dev/null 2>"$dir/replay.log" \
        || die "otlp_replay failed against $name (log: $dir/replay.log)"
    ge=$(now_ns)
    cmp -s "$dir/phi-values.txt" "$W/phi-values.txt" || die "the replay's planted values differ from the dry run's"
    acc=$(jq -r .records_accepted "$dir/replay.json")
    # Delivered: the vendor has every accepted record, or nothing new came
    # for 10 s (records accepted and then lost), or 120 s passed.
    while :; do
        got=$(jq -r '.records.logs // 0' "$dir/vendor.json" 2>/dev/null || echo 0)
        [ "${got:-0}" -ge "$acc" ] && break
        if [ "$got" != "$last" ]; then last=$got; since=$SECONDS; fi
        [ $((SECONDS - since)) -ge 10 ] && { log "$name: the vendor stopped at $got of $acc accepted records"; break; }
        sleep 0.2
    done
    local done_ns c1 hwm
    done_ns=$(now_ns)
    c1=$(cpu_ticks)
    hwm=$(status_kb VmHWM)
    stop "$SAMPLER_PID"
    SAMPLER_PID=""
    stop "$SUT_PID"
    SUT_PID=""
    sleep 1.5 # the vendor writes its stats every second
    stop "$VENDOR_PID"
    VENDOR_PID=""
    cat >"$dir/phase.env" <<EOF
name=$name
version=$version
idle_rss_kb=$idle_rss
idle_hwm_kb=$idle_hwm
hwm_kb=$hwm
start_ns=$s0
gen_end_ns=$ge
done_ns=$done_ns
cpu0=$c0
cpu1=$c1
load_start=$l0
load_end=$(loadavg)
EOF
    log "$name: accepted $acc records, vendor $(jq -r '.records.logs // 0' "$dir/vendor.json"), PHI hits $(jq -r .canary_hits_total "$dir/vendor.json"), peak RSS $hwm kB, load $(loadavg)"
}

SYSTEMS=()
if [ "$RUN_SCRUBS" = 1 ]; then SYSTEMS+=(scrubs); fi
for m in $MODES; do SYSTEMS+=("otelcol-$m"); done
[ "${#SYSTEMS[@]}" -gt 0 ] || die "nothing to run"
meta systems "${SYSTEMS[*]}"
for r in $(seq "$ROUNDS"); do
    for s in "${SYSTEMS[@]}"; do
        [ "$ROUNDS" = 1 ] || log "round $r of $ROUNDS: $s"
        run_system "$s" "$W/r$r/$s"
    done
done
meta load_end "$(loadavg)"

# ---- report -----------------------------------------------------------------
python3 - "$W" "$ROUNDS" "${SYSTEMS[@]}" <<'PY' | tee "$W/report.txt"
import json, os, statistics, sys
W, rounds, systems = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def env(path):
    d = {}
    for line in open(path):
        k, _, v = line.rstrip("\n").partition("=")
        d[k] = v
    return d
meta = env(os.path.join(W, "meta.env"))
clk = float(meta.get("clk_tck", 100))
kind_of = {}
for line in open(os.path.join(W, "phi-kinds.tsv")):
    k, _, v = line.rstrip("\n").partition("\t")
    kind_of[v] = k
def one(d):
    ph = env(os.path.join(d, "phase.env"))
    rp = json.load(open(os.path.join(d, "replay.json")))
    vd = json.load(open(os.path.join(d, "vendor.json")))
    acc = rp["records_accepted"]
    dlv = vd["records"].get("logs", 0)
    start, gen_end, done = int(ph["start_ns"]), int(ph["gen_end_ns"]), int(ph["done_ns"])
    # When the last record arrived: the vendor's per-second series.
    series_first = [t for t, n in vd.get("series", []) if n >= dlv]
    last_t = min(series_first) if series_first else done / 1e9
    span = max(last_t - start / 1e9, 1e-9)
    cpu = (float(ph["cpu1"]) - float(ph["cpu0"])) / clk
    planted = rp["phi"]["accepted_by_kind"]
    scale = min(dlv / acc, 1.0) if acc else 0.0
    hits_kind = {}
    for v, n in vd.get("canary_hits", {}).items():
        hits_kind[kind_of.get(v, "?")] = hits_kind.get(kind_of.get(v, "?"), 0) + n
    planted_dlv = {k: n * scale for k, n in planted.items()}
    tot_p = sum(planted_dlv.values())
    tot_h = vd["canary_hits_total"]
    return dict(
        version=ph["version"], records_accepted=acc, records_delivered=dlv,
        requests=rp["requests"], status=rp["status"], transport_errors=rp["transport_errors"],
        accepted_records_s=rp["accepted_records_s"], delivered_records_s=dlv / span,
        replay_seconds=rp["seconds"], latency_ms=rp["latency_ms"],
        cpu_s=cpu, cpu_s_per_m_records=cpu / (acc / 1e6) if acc else None,
        cpu_util=cpu / max((done - start) / 1e9, 1e-9),
        idle_rss_kb=int(ph["idle_rss_kb"]), peak_rss_kb=int(ph["hwm_kb"]),
        phi_planted=round(tot_p), phi_let_through=tot_h,
        phi_share=tot_h / tot_p if tot_p else None,
        phi_by_kind={k: dict(planted=round(planted_dlv[k]), let_through=hits_kind.get(k, 0),
                             share=hits_kind.get(k, 0) / planted_dlv[k] if planted_dlv[k] else None)
                     for k in sorted(planted_dlv)},
        load=f"{ph['load_start']} -> {ph['load_end']}",
    )
runs = {s: [one(os.path.join(W, f"r{i}", s)) for i in range(1, rounds + 1)] for s in systems}
# Each system's figure: the median of its runs; PHI: summed over the runs.
res = {}
for s in systems:
    rs = runs[s]
    med = lambda k: statistics.median([r[k] for r in rs if r[k] is not None]) if any(r[k] is not None for r in rs) else None
    tot_p = sum(r["phi_planted"] for r in rs)
    tot_h = sum(r["phi_let_through"] for r in rs)
    kinds = sorted({k for r in rs for k in r["phi_by_kind"]})
    by_kind = {}
    for k in kinds:
        pl = sum(r["phi_by_kind"].get(k, {}).get("planted", 0) for r in rs)
        lt = sum(r["phi_by_kind"].get(k, {}).get("let_through", 0) for r in rs)
        by_kind[k] = dict(planted=pl, let_through=lt, share=lt / pl if pl else None)
    res[s] = dict(version=rs[0]["version"], runs=len(rs),
                  **{k: med(k) for k in ("accepted_records_s", "delivered_records_s", "cpu_s_per_m_records",
                                         "cpu_util", "idle_rss_kb", "peak_rss_kb")},
                  records_accepted=sum(r["records_accepted"] for r in rs),
                  records_delivered=sum(r["records_delivered"] for r in rs),
                  phi_planted=tot_p, phi_let_through=tot_h, phi_share=tot_h / tot_p if tot_p else None,
                  phi_by_kind=by_kind)
out = []
p = out.append
p("== scrubs vs the OpenTelemetry Collector: OTLP/HTTP logs -> PHI redaction -> OTLP/HTTP vendor ==")
p(f"command: {meta['command']}")
p(f"machine: {meta['nproc']} cores, {meta['cpu']}, {meta['mem']}, kernel {meta['kernel']}; {meta['rustc']}; scrubs {meta['git']}; "
  f"collector {meta.get('otelcol_version')} ({meta.get('go', '?')})")
p(f"pinning: {'each system on core 1; replay, vendor, sampler on core 0' if meta['pinned'] == '1' else 'none'}; "
  f"load: {meta['bodies']} bodies x 512 records (corpus {meta['corpus']}), {meta['concurrency']} connections, closed loop, {meta['duration']} s per system"
  + (f", {rounds} rounds (medians; PHI summed)" if rounds > 1 else "")
  + (f"; scrubs open loop at {meta['scrubs_rate']} records/s" if meta.get("scrubs_rate", "closed loop") != "closed loop" else ""))
p(f"planted PHI: {meta.get('phi_values')} distinct values ({meta.get('phi_values_left_out')} left out: they also occur where not planted)")
p(f"load average: start {meta['load_start']}, end {meta['load_end']}")
p("")
hdr = ["", "accepted rec/s", "delivered rec/s", "CPU-s / M rec", "core used", "idle RSS MiB", "peak RSS MiB", "PHI let through"]
rows = []
for s in systems:
    r = res[s]
    rows.append([s, f"{r['accepted_records_s']:,.0f}", f"{r['delivered_records_s']:,.0f}",
                 f"{r['cpu_s_per_m_records']:.2f}" if r["cpu_s_per_m_records"] else "-",
                 f"{r['cpu_util'] * 100:.0f}%",
                 f"{r['idle_rss_kb'] / 1024:.1f}", f"{r['peak_rss_kb'] / 1024:.1f}",
                 f"{r['phi_let_through']:,} / {r['phi_planted']:,} = {r['phi_share'] * 100:.2f}%" if r["phi_share"] is not None else "-"])
w = [max(len(str(x[i])) for x in [hdr] + rows) for i in range(len(hdr))]
p(" | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)))
p("-+-".join("-" * x for x in w))
for row in rows:
    p(" | ".join(str(c).rjust(w[i]) if i else str(c).ljust(w[i]) for i, c in enumerate(row)))
p("")
for s in systems:
    r = res[s]
    p(f"-- {s} ({r['version']})")
    for i, x in enumerate(runs[s], 1):
        p(f"   run {i}: load {x['load']}; requests {x['requests']} {x['status']}, transport errors {x['transport_errors']}; "
          f"accepted {x['records_accepted']:,} records in {x['replay_seconds']:.1f}s ({x['accepted_records_s']:,.0f}/s), "
          f"delivered {x['records_delivered']:,} ({x['delivered_records_s']:,.0f}/s); request latency p50 {x['latency_ms']['p50']:.1f} ms, "
          f"p99 {x['latency_ms']['p99']:.1f} ms; CPU {x['cpu_s']:.1f} s = {x['cpu_s_per_m_records']:.2f} CPU-s/M "
          f"({x['cpu_util'] * 100:.0f}% of a core from the replay's start to the last delivery); RSS idle {x['idle_rss_kb'] / 1024:.1f}, "
          f"peak {x['peak_rss_kb'] / 1024:.1f} MiB; PHI {x['phi_let_through']:,}/{x['phi_planted']:,}")
    p("   PHI let through by kind: " + ", ".join(
        f"{k} {v['let_through']:,}/{v['planted']:,}" + (f" ({v['share'] * 100:.1f}%)" if v["share"] is not None else "")
        for k, v in r["phi_by_kind"].items()))
ratios = {}
if "scrubs" in res:
    sc = res["scrubs"]
    for s in systems:
        if s == "scrubs":
            continue
        o = res[s]
        q = lambda a, b: a / b if b else None
        ratios[s] = dict(
            cpu_per_record=q(o["cpu_s_per_m_records"], sc["cpu_s_per_m_records"]),
            accepted_records_s=q(sc["accepted_records_s"], o["accepted_records_s"]),
            delivered_records_s=q(sc["delivered_records_s"], o["delivered_records_s"]),
            idle_rss=q(o["idle_rss_kb"], sc["idle_rss_kb"]),
            peak_rss=q(o["peak_rss_kb"], sc["peak_rss_kb"]),
            phi_share=q(o["phi_share"] or 0, sc["phi_share"] or 0),
        )
    p("")
    p("ratios (collector / scrubs for costs and PHI let through; scrubs / collector for records/s):")
    fmt = lambda x: f"{x:.1f}x" if x is not None else "n/a (scrubs let none through)"
    for s, r in ratios.items():
        p(f"   vs {s}: CPU per record {fmt(r['cpu_per_record'])}, accepted records/s {fmt(r['accepted_records_s'])}, "
          f"delivered records/s {fmt(r['delivered_records_s'])}, idle RSS {fmt(r['idle_rss'])}, peak RSS {fmt(r['peak_rss'])}, "
          f"PHI share let through {fmt(r['phi_share'])}")
json.dump(dict(meta=meta, systems=res, runs=runs, ratios=ratios), open(os.path.join(W, "summary.json"), "w"), indent=1)
print("\n".join(out))
print(f"\nresults: {W} (summary.json, report.txt, each system's config and logs)")
PY
exit 0
}
