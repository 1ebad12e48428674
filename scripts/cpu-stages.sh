#!/usr/bin/env bash
# Splits a `perf record --call-graph dwarf` profile of `scrubs run` into the
# stages of a record's way through it, by inclusive time (the share of
# samples with a stage's entry function anywhere on the stack):
#
#   scripts/cpu-stages.sh PERF_DATA
#
# Record one with the OTLP bench:
#
#   PERF_CALLGRAPH="--call-graph dwarf,16384" scripts/bench-sidecar.sh otlp --perf --duration 40
#   scripts/cpu-stages.sh /tmp/scrubs-bench-sidecar-otlp-*/perf.data
#
# Stages (a function pattern each; they do not nest in one another, so the
# shares add up, and "other" is the rest: the async runtime, HTTP, sockets,
# the allocator outside these stages, the kernel):
#
#   gunzip       inflating a gzipped request
#   decode       protobuf (or JSON) request → OTLP structs
#   walk         the OTLP walker around the engine (attributes, keys, copies)
#   engine       detection and rewriting of each string
#   encode       OTLP structs → protobuf for the vendor
#   gzip         compressing the vendor's request
#   audit        audit events: classification, Kafka
#   signals      visit signals
#
# "walk" is the walker's inclusive time minus the engine's.
set -euo pipefail
data=${1:?usage: scripts/cpu-stages.sh PERF_DATA}
command -v perf >/dev/null || { echo "cpu-stages.sh: perf is not installed" >&2; exit 2; }

# Children (inclusive) percentage per symbol, one line each: "PCT SYMBOL".
perf report -i "$data" --children --stdio --sort symbol -g none --percent-limit 0.05 2>/dev/null |
    awk '$1 ~ /%$/ && $2 ~ /%$/ { c = $1; sub(/%/, "", c); $1 = $2 = $3 = ""; sub(/^ +/, ""); print c "\t" $0 }' |
    python3 -c '
import re, sys
rows = [l.rstrip("\n").split("\t", 1) for l in sys.stdin if "\t" in l]
rows = [(float(p), s) for p, s in rows]
def top(pattern):
    """The largest inclusive share among the symbols matching pattern: the
    outermost entry of that stage (inner ones are part of it)."""
    r = re.compile(pattern)
    return max((p for p, s in rows if r.search(s)), default=0.0)
stages = {
    "gunzip": top(r"sources::otlp::http::gunzip"),
    "decode": top(r"sources::otlp::http::decode\b|sources::otlp::grpc::.*decode"),
    "walk": top(r"redact::otlp::redact_(logs|spans|metrics)_with_stats|pipeline::route::.*redact_resources"),
    "engine": top(r"Engine>::detect_line") + top(r"Engine>::rewrite"),
    "encode": top(r"sinks::otlp::.*Measured.*::new|sinks::otlp::.*encode"),
    "gzip": top(r"sinks::otlp::transport::.*(gzip|compress|prepare)|flate2::.*GzEncoder"),
    "audit": top(r"pipeline::classify::|sinks::audit::"),
    "signals": top(r"signals::.*observe"),
}
stages["walk"] = max(0.0, stages["walk"] - stages["engine"])
total = sum(stages.values())
for k, v in stages.items():
    print(f"{k:<8} {v:6.1f}%")
print("%-8s %6.1f%%" % ("other", max(0.0, 100 - total)))
'
