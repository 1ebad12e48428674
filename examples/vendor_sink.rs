//! A fake OTLP vendor for the whole-process benchmarks
//! (`scripts/bench-sidecar.sh`): an OTLP/HTTP protobuf receiver on
//! 127.0.0.1 that answers every export with 200 and an empty response, and
//! measures what it got.
//!
//! ```text
//! cargo run --release --example vendor_sink -- [--listen 127.0.0.1:0] [--port-file PATH]
//!     [--stats PATH] [--canaries PATH]
//! ```
//!
//! * Accepts `POST /v1/logs`, `/v1/traces` and `/v1/metrics` (protobuf,
//!   gzip or not); counts requests, records (log records, spans, data
//!   points), bytes as received and decoded.
//! * For every log record whose body carries the load generator's trailer
//!   (`run=TAG seq=N gen_ns=T`, or the JSON fields `"run"`, `"seq"`,
//!   `"gen_ns"`; see `examples/bench_lines.rs`), records the latency
//!   receipt time − `gen_ns` in a log-linear histogram (1/64 relative
//!   precision) and the sequence number in a bitmap, per run tag: so it
//!   reports lines received, duplicates and the highest sequence number,
//!   first and last receipt times, and latency percentiles per run.
//! * Searches what it receives for the PHI canaries listed in `--canaries`
//!   (one a line) and counts raw hits: for logs, every log record's body
//!   (without the generator's trailer, whose numbers could spell a canary's
//!   digits) and attributes, and every resource; for traces and metrics,
//!   the whole decoded request. The run and sequence number of the first
//!   100 records with a hit are kept (never their content).
//! * Writes its stats as JSON to `--stats` (atomically, by rename) every
//!   second and at exit (SIGTERM or SIGINT), with a per-second series of
//!   cumulative log records. `GET /stats` returns the same JSON.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aho_corasick::AhoCorasick;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;
use serde_json::json;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Log-linear histogram of microseconds: values below 128 exactly, above
/// that 64 sub-buckets per power of two (under 1.6% relative error).
#[derive(Clone)]
struct Hist {
    counts: Vec<u64>,
    n: u64,
    max: u64,
    sum: u128,
}

const SUB_BITS: u32 = 6;
const LINEAR: u64 = 1 << (SUB_BITS + 1);

impl Hist {
    fn new() -> Hist {
        Hist {
            counts: vec![0; (LINEAR as usize) + 64 * 64],
            n: 0,
            max: 0,
            sum: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < LINEAR {
            return v as usize;
        }
        let e = 63 - v.leading_zeros(); // >= SUB_BITS + 1
        let sub = (v >> (e - SUB_BITS)) & ((1 << SUB_BITS) - 1);
        (LINEAR + u64::from(e - SUB_BITS - 1) * (1 << SUB_BITS) + sub) as usize
    }

    /// The upper bound of a bucket (conservative for percentiles).
    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < LINEAR {
            return i;
        }
        let k = i - LINEAR;
        let e = k / (1 << SUB_BITS) + u64::from(SUB_BITS) + 1;
        let sub = k % (1 << SUB_BITS);
        ((1 << SUB_BITS) + sub + 1) * (1 << (e - u64::from(SUB_BITS))) - 1
    }

    fn record(&mut self, v: u64) {
        let i = Hist::index(v).min(self.counts.len() - 1);
        self.counts[i] += 1;
        self.n += 1;
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    fn percentile(&self, p: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.n as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Hist::value(i).min(self.max);
            }
        }
        self.max
    }

    fn json(&self) -> serde_json::Value {
        let ms = |us: u64| (us as f64 / 1000.0 * 100.0).round() / 100.0;
        json!({
            "count": self.n,
            "mean_ms": if self.n > 0 { ms((self.sum / u128::from(self.n)) as u64) } else { 0.0 },
            "p50_ms": ms(self.percentile(50.0)),
            "p90_ms": ms(self.percentile(90.0)),
            "p99_ms": ms(self.percentile(99.0)),
            "p999_ms": ms(self.percentile(99.9)),
            "max_ms": ms(self.max),
        })
    }
}

/// What arrived for one load-generator run.
struct Run {
    records: u64,
    body_bytes: u64,
    first_recv_ns: u64,
    last_recv_ns: u64,
    max_seq: u64,
    unique: u64,
    dups: u64,
    seen: Vec<u64>,
    latency: Hist,
    /// The worst latency (µs) and the record count per 100 ms of receipt
    /// time since the run's first record: shows whether slow records come
    /// in periodic spikes (a timer, an fsync) or spread evenly (queueing).
    windows: Vec<(u64, u64)>,
}

impl Run {
    fn new() -> Run {
        Run {
            records: 0,
            body_bytes: 0,
            first_recv_ns: 0,
            last_recv_ns: 0,
            max_seq: 0,
            unique: 0,
            dups: 0,
            seen: Vec::new(),
            latency: Hist::new(),
            windows: Vec::new(),
        }
    }

    fn add(&mut self, seq: Option<u64>, gen_ns: Option<u64>, recv_ns: u64, bytes: usize) {
        self.records += 1;
        self.body_bytes += bytes as u64;
        if self.first_recv_ns == 0 {
            self.first_recv_ns = recv_ns;
        }
        self.last_recv_ns = recv_ns;
        if let Some(s) = seq {
            let (w, b) = ((s / 64) as usize, s % 64);
            if w >= self.seen.len() {
                self.seen.resize((w + 1).max(self.seen.len() * 2), 0);
            }
            if self.seen[w] & (1 << b) != 0 {
                self.dups += 1;
            } else {
                self.seen[w] |= 1 << b;
                self.unique += 1;
            }
            self.max_seq = self.max_seq.max(s);
        }
        if let Some(g) = gen_ns {
            let us = recv_ns.saturating_sub(g) / 1000;
            self.latency.record(us);
            let w = (recv_ns.saturating_sub(self.first_recv_ns) / 100_000_000) as usize;
            if w < 100_000 {
                if w >= self.windows.len() {
                    self.windows.resize(w + 1, (0, 0));
                }
                let slot = &mut self.windows[w];
                slot.0 = slot.0.max(us);
                slot.1 += 1;
            }
        }
    }

    fn json(&self) -> serde_json::Value {
        let secs = (self.last_recv_ns.saturating_sub(self.first_recv_ns)) as f64 / 1e9;
        json!({
            "records": self.records,
            "body_bytes": self.body_bytes,
            "first_recv_ns": self.first_recv_ns,
            "last_recv_ns": self.last_recv_ns,
            "recv_seconds": secs,
            "max_seq": self.max_seq,
            "unique_seq": self.unique,
            "duplicates": self.dups,
            "latency": self.latency.json(),
            "latency_windows_100ms": self
                .windows
                .iter()
                .map(|&(max_us, n)| json!([max_us / 1000, n]))
                .collect::<Vec<_>>(),
        })
    }
}

#[derive(Default)]
struct Stats {
    started_ns: u64,
    requests: BTreeMap<&'static str, u64>,
    records: BTreeMap<&'static str, u64>,
    bytes_wire: u64,
    bytes_decoded: u64,
    decode_errors: u64,
    canary_hits: Vec<u64>,
    canary_hit_records: Vec<(String, Option<u64>)>,
    runs: BTreeMap<String, Run>,
    series: Vec<(f64, u64)>,
}

struct State {
    stats: Mutex<Stats>,
    canaries: Vec<String>,
    ac: Option<AhoCorasick>,
}

impl State {
    fn json(&self) -> String {
        let s = self.stats.lock().unwrap();
        let hits: serde_json::Map<String, serde_json::Value> = self
            .canaries
            .iter()
            .zip(&s.canary_hits)
            .map(|(c, n)| (c.clone(), json!(n)))
            .collect();
        let runs: serde_json::Map<String, serde_json::Value> =
            s.runs.iter().map(|(k, r)| (k.clone(), r.json())).collect();
        json!({
            "now_ns": now_ns(),
            "started_ns": s.started_ns,
            "requests": s.requests,
            "records": s.records,
            "bytes_wire": s.bytes_wire,
            "bytes_decoded": s.bytes_decoded,
            "decode_errors": s.decode_errors,
            "canaries": self.canaries.len(),
            "canary_hits_total": s.canary_hits.iter().sum::<u64>(),
            "canary_hits": hits,
            "canary_hit_records": s.canary_hit_records,
            "runs": runs,
            "series": s.series,
        })
        .to_string()
    }
}

/// The value after `key` in `s`: `key=123` or `"key":123` / `"key":"x"`.
fn field<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(i) = s[from..].find(key) {
        let at = from + i;
        from = at + key.len();
        let before_ok = at == 0 || matches!(b[at - 1], b' ' | b'"' | b',' | b'{');
        if !before_ok {
            continue;
        }
        let mut j = at + key.len();
        if b.get(j) == Some(&b'"') {
            j += 1;
        }
        match b.get(j) {
            Some(b'=') | Some(b':') => j += 1,
            _ => continue,
        }
        if b.get(j) == Some(&b'"') {
            j += 1;
        }
        let end = b[j..]
            .iter()
            .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-'))
            .map_or(b.len(), |p| j + p);
        return Some(&s[j..end]);
    }
    None
}

/// Where the load generator's trailer (` run=..` or `,"run":..`) starts in a
/// body, or its length.
fn trailer_start(b: &str) -> usize {
    match (b.rfind(" run="), b.rfind(",\"run\":")) {
        (Some(x), Some(y)) => x.max(y),
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => b.len(),
    }
}

fn gunzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len() * 4);
    flate2::read::GzDecoder::new(body).read_to_end(&mut out)?;
    Ok(out)
}

fn handle(state: &State, path: &str, gzip: bool, body: Bytes) -> Result<Vec<u8>, String> {
    let recv = now_ns();
    let raw: Vec<u8>;
    let data: &[u8] = if gzip {
        raw = gunzip(&body).map_err(|e| format!("gzip: {e}"))?;
        &raw
    } else {
        &body
    };
    let mut hits: Vec<u64> = vec![0; state.canaries.len()];
    // Which records carried a canary: (run, seq), never the content.
    let mut hit_records: Vec<(String, Option<u64>)> = Vec::new();
    let search = |bytes: &[u8], hits: &mut [u64]| -> bool {
        let mut any = false;
        if let Some(ac) = &state.ac {
            for m in ac.find_overlapping_iter(bytes) {
                hits[m.pattern().as_usize()] += 1;
                any = true;
            }
        }
        any
    };
    // (run tag, [(seq, gen_ns, body bytes)]), one group per stretch of
    // consecutive records of the same run.
    type Item = (Option<u64>, Option<u64>, usize);
    let mut per_run: Vec<(String, Vec<Item>)> = Vec::new();
    let (signal, records, response) = match path {
        "/v1/logs" => {
            let req = ExportLogsServiceRequest::decode(data).map_err(|e| e.to_string())?;
            let mut n = 0u64;
            for rl in &req.resource_logs {
                if let Some(r) = &rl.resource {
                    if search(&r.encode_to_vec(), &mut hits) {
                        hit_records.push(("(resource)".into(), None));
                    }
                }
                for sl in &rl.scope_logs {
                    for lr in &sl.log_records {
                        n += 1;
                        // Every string of the record, the body without the
                        // generator's trailer (its sequence numbers could
                        // spell a canary's digits).
                        let body = match lr.body.as_ref().and_then(|b| b.value.as_ref()) {
                            Some(Value::StringValue(b)) => Some(b.as_str()),
                            _ => None,
                        };
                        let mut hit = false;
                        match body {
                            Some(b) => {
                                let end = trailer_start(b);
                                hit |= search(&b.as_bytes()[..end], &mut hits);
                            }
                            None => {
                                if let Some(v) = &lr.body {
                                    hit |= search(&v.encode_to_vec(), &mut hits);
                                }
                            }
                        }
                        for kv in &lr.attributes {
                            hit |= search(&kv.encode_to_vec(), &mut hits);
                        }
                        hit |= search(lr.event_name.as_bytes(), &mut hits);
                        if hit {
                            let run = body.and_then(|b| field(b, "run")).unwrap_or("?");
                            let seq = body
                                .and_then(|b| field(b, "seq"))
                                .and_then(|v| v.parse().ok());
                            if hit_records.len() < 100 {
                                hit_records.push((run.to_string(), seq));
                            }
                        }
                        let Some(b) = body else {
                            continue;
                        };
                        let Some(run) = field(b, "run") else {
                            continue;
                        };
                        let seq = field(b, "seq").and_then(|v| v.parse().ok());
                        let gen = field(b, "gen_ns").and_then(|v| v.parse().ok());
                        match per_run.last_mut() {
                            Some((r, items)) if r == run => items.push((seq, gen, b.len())),
                            _ => per_run.push((run.to_string(), vec![(seq, gen, b.len())])),
                        }
                    }
                }
            }
            (
                "logs",
                n,
                opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse::default()
                    .encode_to_vec(),
            )
        }
        "/v1/traces" => {
            if search(data, &mut hits) {
                hit_records.push(("(traces request)".into(), None));
            }
            let req = ExportTraceServiceRequest::decode(data).map_err(|e| e.to_string())?;
            let n = req
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len() as u64)
                .sum();
            (
                "traces",
                n,
                opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::default()
                    .encode_to_vec(),
            )
        }
        "/v1/metrics" => {
            if search(data, &mut hits) {
                hit_records.push(("(metrics request)".into(), None));
            }
            let req = ExportMetricsServiceRequest::decode(data).map_err(|e| e.to_string())?;
            let mut n = 0u64;
            for m in req
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
            {
                n += match &m.data {
                    Some(Data::Gauge(g)) => g.data_points.len(),
                    Some(Data::Sum(s)) => s.data_points.len(),
                    Some(Data::Histogram(h)) => h.data_points.len(),
                    Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
                    Some(Data::Summary(s)) => s.data_points.len(),
                    None => 0,
                } as u64;
            }
            (
                "metrics",
                n,
                opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse::default()
                    .encode_to_vec(),
            )
        }
        _ => return Err(format!("unknown path {path}")),
    };
    let mut s = state.stats.lock().unwrap();
    *s.requests.entry(signal).or_default() += 1;
    *s.records.entry(signal).or_default() += records;
    s.bytes_wire += body.len() as u64;
    s.bytes_decoded += data.len() as u64;
    for (i, h) in hits.iter().enumerate() {
        s.canary_hits[i] += h;
    }
    for r in hit_records {
        if s.canary_hit_records.len() < 100 {
            s.canary_hit_records.push(r);
        }
    }
    for (run, items) in per_run {
        let r = s.runs.entry(run).or_insert_with(Run::new);
        for (seq, gen, len) in items {
            r.add(seq, gen, recv, len);
        }
    }
    Ok(response)
}

async fn serve_conn(state: Arc<State>, stream: tokio::net::TcpStream) {
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let state = state.clone();
        async move {
            let path = req.uri().path().to_string();
            if req.method() == Method::GET && path == "/stats" {
                return Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                    state.json(),
                ))));
            }
            let gzip = req
                .headers()
                .get("content-encoding")
                .is_some_and(|v| v == "gzip");
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    let mut r = Response::new(Full::new(Bytes::new()));
                    *r.status_mut() = StatusCode::BAD_REQUEST;
                    return Ok(r);
                }
            };
            match handle(&state, &path, gzip, body) {
                Ok(resp) => {
                    let mut r = Response::new(Full::new(Bytes::from(resp)));
                    r.headers_mut().insert(
                        "content-type",
                        hyper::header::HeaderValue::from_static("application/x-protobuf"),
                    );
                    Ok(r)
                }
                Err(e) => {
                    state.stats.lock().unwrap().decode_errors += 1;
                    let mut r = Response::new(Full::new(Bytes::from(e)));
                    *r.status_mut() = if path.starts_with("/v1/") {
                        StatusCode::BAD_REQUEST
                    } else {
                        StatusCode::NOT_FOUND
                    };
                    Ok(r)
                }
            }
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

fn write_stats(state: &State, path: &Option<PathBuf>) {
    let Some(path) = path else { return };
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, state.json()).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

struct Args {
    listen: SocketAddr,
    port_file: Option<PathBuf>,
    stats: Option<PathBuf>,
    canaries: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        port_file: None,
        stats: None,
        canaries: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--listen" => a.listen = v()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--port-file" => a.port_file = Some(v()?.into()),
            "--stats" => a.stats = Some(v()?.into()),
            "--canaries" => a.canaries = Some(v()?.into()),
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if !a.listen.ip().is_loopback() {
        return Err("--listen must be a loopback address".into());
    }
    Ok(a)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("vendor_sink: {e}");
            eprintln!(
                "usage: vendor_sink [--listen 127.0.0.1:0] [--port-file P] [--stats P] [--canaries P]"
            );
            std::process::exit(2);
        }
    };
    let canaries: Vec<String> = match &args.canaries {
        Some(p) => std::fs::read_to_string(p)
            .unwrap_or_else(|e| {
                eprintln!("vendor_sink: {}: {e}", p.display());
                std::process::exit(2)
            })
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        None => Vec::new(),
    };
    let ac = (!canaries.is_empty()).then(|| AhoCorasick::new(&canaries).expect("canaries"));
    let state = Arc::new(State {
        stats: Mutex::new(Stats {
            started_ns: now_ns(),
            canary_hits: vec![0; canaries.len()],
            ..Default::default()
        }),
        canaries,
        ac,
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .unwrap_or_else(|e| {
                eprintln!("vendor_sink: bind {}: {e}", args.listen);
                std::process::exit(1)
            });
        let addr = listener.local_addr().expect("local addr");
        if let Some(p) = &args.port_file {
            std::fs::write(p, format!("{}\n", addr.port())).expect("port file");
        }
        eprintln!("vendor_sink: listening on {addr}");
        let st = state.clone();
        let stats_path = args.stats.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                {
                    let mut s = st.stats.lock().unwrap();
                    let logs = s.records.get("logs").copied().unwrap_or(0);
                    s.series.push((now_ns() as f64 / 1e9, logs));
                }
                write_stats(&st, &stats_path);
            }
        });
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                if let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_conn(st.clone(), stream));
                }
            }
        });
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("signal");
        let mut int = signal(SignalKind::interrupt()).expect("signal");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        write_stats(&state, &args.stats);
        eprintln!("vendor_sink: stopped");
    });
}
