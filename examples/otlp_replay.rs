//! Replays pre-encoded OTLP/HTTP log exports for the whole-process
//! benchmarks (`scripts/bench-sidecar.sh`).
//!
//! ```text
//! cargo run --release --example otlp_replay -- --url http://127.0.0.1:4318/v1/logs
//!     [--bodies 64] [--records 512] [--concurrency 4] [--duration 60] [--rate REQ_PER_S]
//!     [--audit-pm 0] [--canary-pm 20] [--dense-pm 100] [--gzip] [--seed N] [--report PATH]
//!     [--phi-list PATH] [--phi-kinds PATH] [--corpus lines|dense]
//! ```
//!
//! It first encodes `--bodies` `ExportLogsServiceRequest`s of `--records`
//! log records each: one resource (service, host, pod attributes), one
//! scope, and records with the lines of `examples/bench_lines.rs` as bodies
//! (without the load generator's trailer), severities, timestamps, trace and
//! span ids and HTTP/user attributes. Canary records also carry
//! `patient.name` / `patient.phone` attributes with the PHI canaries; with
//! `--audit-pm`, audit records carry `audit=true` and `patient_id`.
//! With `--corpus dense`, every body is instead a PHI-dense line of the
//! engine bench (`benches/common`: 1 to 3 identifiers of 12 kinds a line),
//! and no record carries PHI attributes.
//!
//! Then it POSTs them, round robin, over `--concurrency` HTTP/1.1
//! keep-alive connections for `--duration` seconds: closed loop (each
//! connection sends its next request when the last one is answered), or,
//! with `--rate`, open loop at that many requests a second in total (a
//! request whose slot comes while all connections are busy is sent late and
//! counted in `late`). Non-2xx answers are counted by status and not
//! retried: with scrubs they are its load shedding (429, 503).
//!
//! At exit it prints (and writes to `--report`) one JSON object: requests
//! by status, records sent and accepted (2xx minus partial-success
//! rejections), records/s, request latency percentiles.
//!
//! With `--phi-list`, it writes every distinct PHI value planted in the
//! bodies (the dense lines' random identifiers, the canaries, the canary
//! attributes) to that file, one a line, for `vendor_sink --canaries`
//! (`--phi-kinds`: the same values as `kind<TAB>value`), and the report
//! says how many planted values the accepted requests carried (`phi`),
//! counted the way the vendor sink counts what it receives (overlapping
//! matches), so that the share of them reaching the vendor is hits over
//! planted (`scripts/bench-vs-otelcol.sh`).

#[path = "bench_lines.rs"]
mod lines;

#[path = "../benches/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::json;

struct Args {
    url: String,
    bodies: usize,
    records: usize,
    concurrency: usize,
    duration: Duration,
    rate: f64,
    mix: lines::Mix,
    /// Bodies from the engine bench's PHI-dense lines instead of
    /// `bench_lines`.
    dense_corpus: bool,
    gzip: bool,
    seed: u64,
    report: Option<PathBuf>,
    phi_list: Option<PathBuf>,
    phi_kinds: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        url: "http://127.0.0.1:4318/v1/logs".into(),
        bodies: 64,
        records: 512,
        concurrency: 4,
        duration: Duration::from_secs(60),
        rate: 0.0,
        mix: lines::Mix {
            audit: 0,
            ..lines::Mix::default()
        },
        gzip: false,
        dense_corpus: false,
        seed: 0x07_1F,
        report: None,
        phi_list: None,
        phi_kinds: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--gzip" {
            a.gzip = true;
            continue;
        }
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        let num = |v: &str| v.parse::<f64>().map_err(|e| format!("{k}: {e}"));
        match k.as_str() {
            "--url" => a.url = v,
            "--bodies" => a.bodies = num(&v)?.max(1.0) as usize,
            "--records" => a.records = num(&v)?.max(1.0) as usize,
            "--concurrency" => a.concurrency = num(&v)?.max(1.0) as usize,
            "--duration" => a.duration = Duration::from_secs_f64(num(&v)?),
            "--rate" => a.rate = num(&v)?,
            "--audit-pm" => a.mix.audit = num(&v)? as u64,
            "--canary-pm" => a.mix.canary = num(&v)? as u64,
            "--dense-pm" => a.mix.dense = num(&v)? as u64,
            "--seed" => a.seed = num(&v)? as u64,
            "--corpus" => {
                a.dense_corpus = match v.as_str() {
                    "lines" => false,
                    "dense" => true,
                    _ => return Err("--corpus: lines or dense".into()),
                }
            }
            "--report" => a.report = Some(v.into()),
            "--phi-list" => a.phi_list = Some(v.into()),
            "--phi-kinds" => a.phi_kinds = Some(v.into()),
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.mix.audit + a.mix.canary + a.mix.dense > 1000 {
        return Err("--audit-pm + --canary-pm + --dense-pm must not exceed 1000".into());
    }
    Ok(a)
}

fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

const SERVICES: &[&str] = &["visit-api", "scheduler", "intake-api", "notifier"];
const ROUTES: &[&str] = &[
    "/api/v1/visits/{id}",
    "/api/v1/appointments",
    "/api/v1/providers/{id}/availability",
    "/api/v2/sessions/{id}/refresh",
];

fn rand_bytes(rng: &mut lines::Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.below(256) as u8).collect()
}

/// The PHI values planted in a body, with their kinds.
type Planted = Vec<(&'static str, String)>;

/// One export request of `n` records, how many of them are audit-grade, and
/// the PHI values planted in it (if the generator records them).
fn make_body(
    gen: &mut lines::Gen,
    mut dense: Option<&mut common::LineGen>,
    n: usize,
    b: usize,
) -> (ExportLogsServiceRequest, u64, Planted) {
    let mut audit = 0;
    let mut planted = Vec::new();
    let svc = SERVICES[b % SERVICES.len()];
    let pod = format!("{svc}-7d9f8c6b5-{:05x}", gen.rng().below(1 << 20));
    let resource = Resource {
        attributes: vec![
            kv("service.name", s(svc)),
            kv("service.version", s("2.14.3")),
            kv("deployment.environment", s("production")),
            kv("host.name", s("ip-10-0-12-34.ec2.internal")),
            kv("k8s.namespace.name", s("telehealth")),
            kv("k8s.pod.name", s(&pod)),
        ],
        ..Default::default()
    };
    let base_ns: u64 = 1_732_348_800_000_000_000 + b as u64 * 1_000_000_000;
    let mut text = Vec::with_capacity(256);
    let mut records = Vec::with_capacity(n);
    for i in 0..n {
        text.clear();
        let kind = match dense.as_deref_mut() {
            Some(d) => {
                d.line(common::Kind::Dense, &mut text);
                planted.extend(d.take_planted());
                lines::Kind::Dense
            }
            None => {
                let kind = gen.body(&mut text);
                planted.extend(gen.take_planted());
                kind
            }
        };
        let body = String::from_utf8(text.clone()).expect("ascii lines");
        let rng = gen.rng();
        let (sev, sev_text) = match rng.below(10) {
            0 => (17, "ERROR"),
            1..=2 => (13, "WARN"),
            _ => (9, "INFO"),
        };
        let mut attrs = vec![
            kv(
                "http.request.method",
                s(["GET", "POST", "PUT"][rng.below(3) as usize]),
            ),
            kv(
                "http.route",
                s(ROUTES[rng.below(ROUTES.len() as u64) as usize]),
            ),
            kv(
                "http.response.status_code",
                Value::IntValue([200, 200, 201, 404, 500][rng.below(5) as usize]),
            ),
            kv("user.id", s(&format!("usr_{:010x}", rng.below(1 << 40)))),
            kv("code.function", s("handle_request")),
        ];
        match kind {
            lines::Kind::Canary => {
                attrs.push(kv("patient.name", s("Beatriz Okonkwo")));
                attrs.push(kv("patient.phone", s("(415) 555-0132")));
                planted.push(("name", "Beatriz Okonkwo".into()));
                planted.push(("phone", "(415) 555-0132".into()));
            }
            lines::Kind::Audit => {
                audit += 1;
                attrs.push(kv("audit", s("true")));
                attrs.push(kv("patient_id", s(&format!("p-{:04}", rng.below(1000)))));
            }
            _ => {}
        }
        let t = base_ns + i as u64 * 1_000_000;
        records.push(LogRecord {
            time_unix_nano: t,
            observed_time_unix_nano: t + 250_000,
            severity_number: sev,
            severity_text: sev_text.into(),
            body: Some(AnyValue {
                value: Some(Value::StringValue(body)),
            }),
            attributes: attrs,
            flags: 1,
            trace_id: rand_bytes(rng, 16),
            span_id: rand_bytes(rng, 8),
            ..Default::default()
        });
    }
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "com.example.telehealth".into(),
                    version: "1.0.0".into(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (req, audit, planted)
}

/// Planted PHI values counted in each encoded body, by kind.
struct PhiCount {
    kinds: Vec<&'static str>,
    /// `per_body[b][k]`: matches of kind `kinds[k]` in body `b`.
    per_body: Vec<Vec<u64>>,
    /// Distinct values counted.
    values: usize,
    /// Distinct values left out because they also occur where they were
    /// not planted.
    left_out: usize,
}

/// Writes the distinct planted values (`--phi-list`, `--phi-kinds`) and
/// counts them in every encoded body with overlapping matches, as
/// `vendor_sink` counts its canaries in what it receives.
///
/// A value that also occurs where it was not planted (8 random digits of
/// an MRN inside a hex trace id, a value inside another) would be counted
/// at the vendor whatever a system redacts, so it is left out of the list:
/// only values found exactly as often as they were planted are kept.
fn count_planted(args: &Args, planted: &[Planted], encoded: &[Vec<u8>]) -> PhiCount {
    // value -> (kind, times planted)
    let mut by_value: BTreeMap<&str, (&'static str, u64)> = BTreeMap::new();
    for (kind, value) in planted.iter().flatten() {
        by_value.entry(value.as_str()).or_insert((kind, 0)).1 += 1;
    }
    let candidates: Vec<&str> = by_value.keys().copied().collect();
    let ac = aho_corasick::AhoCorasick::new(&candidates).expect("planted values");
    let mut found = vec![0u64; candidates.len()];
    for body in encoded {
        for m in ac.find_overlapping_iter(body) {
            found[m.pattern().as_usize()] += 1;
        }
    }
    let values: Vec<&str> = candidates
        .iter()
        .zip(&found)
        .filter(|(v, n)| by_value[*v].1 == **n)
        .map(|(v, _)| *v)
        .collect();
    let mut kinds: Vec<&'static str> = values.iter().map(|v| by_value[v].0).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let kind_of: Vec<usize> = values
        .iter()
        .map(|v| kinds.binary_search(&by_value[v].0).expect("kind listed"))
        .collect();
    let write = |path: &Option<PathBuf>, text: String| {
        if let Some(p) = path {
            if let Err(e) = std::fs::write(p, text) {
                eprintln!("otlp_replay: {}: {e}", p.display());
                std::process::exit(1);
            }
        }
    };
    write(
        &args.phi_list,
        values.iter().map(|v| format!("{v}\n")).collect(),
    );
    write(
        &args.phi_kinds,
        values
            .iter()
            .map(|v| format!("{}\t{v}\n", by_value[v].0))
            .collect(),
    );
    let ac = aho_corasick::AhoCorasick::new(&values).expect("planted values");
    let per_body = encoded
        .iter()
        .map(|body| {
            let mut n = vec![0u64; kinds.len()];
            for m in ac.find_overlapping_iter(body) {
                n[kind_of[m.pattern().as_usize()]] += 1;
            }
            n
        })
        .collect();
    PhiCount {
        kinds,
        per_body,
        values: values.len(),
        left_out: candidates.len() - values.len(),
    }
}

#[derive(Default)]
struct Tally {
    status: BTreeMap<u16, u64>,
    errors: u64,
    late: u64,
    records_sent: u64,
    records_accepted: u64,
    records_rejected: u64,
    audit_accepted: u64,
    /// Planted PHI values in the accepted records, by kind (a request
    /// accepted in part counts its share).
    phi_accepted: Vec<f64>,
    latency_us: Vec<u32>,
}

struct Shared {
    bodies: Vec<Bytes>,
    audit: Vec<u64>,
    phi: Option<PhiCount>,
    records: usize,
    gzip: bool,
    host: String,
    path: String,
    rate: f64,
    start: Instant,
    end: Instant,
    slot: AtomicU64,
    next_body: AtomicU64,
    stop: AtomicBool,
    tally: Mutex<Tally>,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(sh: &Shared) -> Option<Sender> {
    let tcp = tokio::net::TcpStream::connect(&sh.host).await.ok()?;
    let _ = tcp.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Some(sender)
}

async fn worker(sh: Arc<Shared>) {
    let mut sender: Option<Sender> = None;
    loop {
        if sh.stop.load(Ordering::Relaxed) || Instant::now() >= sh.end {
            return;
        }
        if sh.rate > 0.0 {
            let k = sh.slot.fetch_add(1, Ordering::Relaxed);
            let at = sh.start + Duration::from_secs_f64(k as f64 / sh.rate);
            if at >= sh.end {
                return;
            }
            let now = Instant::now();
            if at > now {
                tokio::time::sleep_until(at.into()).await;
            } else if now - at > Duration::from_millis(100) {
                sh.tally.lock().unwrap().late += 1;
            }
        }
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            sender = connect(&sh).await;
            if sender.is_none() {
                sh.tally.lock().unwrap().errors += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        }
        let s = sender.as_mut().expect("connected");
        if s.ready().await.is_err() {
            sender = None;
            continue;
        }
        let i = sh.next_body.fetch_add(1, Ordering::Relaxed) as usize % sh.bodies.len();
        let mut req = Request::post(sh.path.as_str())
            .header("host", sh.host.as_str())
            .header("content-type", "application/x-protobuf");
        if sh.gzip {
            req = req.header("content-encoding", "gzip");
        }
        let req = req.body(Full::new(sh.bodies[i].clone())).expect("request");
        let t = Instant::now();
        let res = s.send_request(req).await;
        let (status, body) = match res {
            Ok(r) => {
                let status = r.status().as_u16();
                match r.into_body().collect().await {
                    Ok(b) => (status, b.to_bytes()),
                    Err(_) => (status, Bytes::new()),
                }
            }
            Err(_) => {
                sh.tally.lock().unwrap().errors += 1;
                sender = None;
                continue;
            }
        };
        let us = t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        let rejected = if (200..300).contains(&status) {
            ExportLogsServiceResponse::decode(&body[..])
                .ok()
                .and_then(|r| r.partial_success)
                .map_or(0, |p| p.rejected_log_records.max(0) as u64)
        } else {
            0
        };
        let mut t = sh.tally.lock().unwrap();
        *t.status.entry(status).or_default() += 1;
        t.records_sent += sh.records as u64;
        if (200..300).contains(&status) {
            t.records_accepted += sh.records as u64 - rejected.min(sh.records as u64);
            t.records_rejected += rejected;
            t.audit_accepted += sh.audit[i];
            if let Some(phi) = &sh.phi {
                let share = (sh.records as u64 - rejected.min(sh.records as u64)) as f64
                    / sh.records as f64;
                t.phi_accepted.resize(phi.kinds.len(), 0.0);
                for (k, n) in phi.per_body[i].iter().enumerate() {
                    t.phi_accepted[k] += *n as f64 * share;
                }
            }
        }
        t.latency_us.push(us);
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("otlp_replay: {e}");
            std::process::exit(2);
        }
    };
    let Some(rest) = args.url.strip_prefix("http://") else {
        eprintln!("otlp_replay: --url must be http://HOST:PORT/PATH");
        std::process::exit(2);
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest.to_string(), "/v1/logs".to_string()),
    };

    let t0 = Instant::now();
    let mut gen = lines::Gen::new(args.seed, args.mix);
    let mut dense = args.dense_corpus.then(|| common::LineGen::new(args.seed));
    if args.phi_list.is_some() || args.phi_kinds.is_some() {
        gen.record_planted();
        if let Some(d) = &mut dense {
            d.record_planted();
        }
    }
    let mut raw_bytes = 0usize;
    let mut audit = Vec::with_capacity(args.bodies);
    let mut planted = Vec::with_capacity(args.bodies);
    let encoded: Vec<Vec<u8>> = (0..args.bodies)
        .map(|b| {
            let (req, n, p) = make_body(&mut gen, dense.as_mut(), args.records, b);
            audit.push(n);
            planted.push(p);
            let enc = req.encode_to_vec();
            raw_bytes += enc.len();
            enc
        })
        .collect();
    let phi = (args.phi_list.is_some() || args.phi_kinds.is_some())
        .then(|| count_planted(&args, &planted, &encoded));
    let bodies: Vec<Bytes> = encoded
        .into_iter()
        .map(|enc| {
            if args.gzip {
                let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                z.write_all(&enc).expect("gzip");
                Bytes::from(z.finish().expect("gzip"))
            } else {
                Bytes::from(enc)
            }
        })
        .collect();
    let wire_bytes: usize = bodies.iter().map(Bytes::len).sum();
    eprintln!(
        "otlp_replay: {} bodies of {} records encoded in {:.1}s, {} bytes each on average ({} on the wire)",
        bodies.len(),
        args.records,
        t0.elapsed().as_secs_f64(),
        raw_bytes / bodies.len(),
        wire_bytes / bodies.len()
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let start = Instant::now();
    let sh = Arc::new(Shared {
        bodies,
        audit,
        phi,
        records: args.records,
        gzip: args.gzip,
        host,
        path,
        rate: args.rate,
        start,
        end: start + args.duration,
        slot: AtomicU64::new(0),
        next_body: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        tally: Mutex::new(Tally::default()),
    });
    rt.block_on(async {
        let tasks: Vec<_> = (0..args.concurrency)
            .map(|_| tokio::spawn(worker(sh.clone())))
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let t = sh.tally.lock().unwrap();
    let mut lat = t.latency_us.clone();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * lat.len() as f64).ceil() as usize;
        f64::from(lat[i.clamp(1, lat.len()) - 1]) / 1000.0
    };
    let requests: u64 = t.status.values().sum();
    let ok: u64 = t
        .status
        .iter()
        .filter(|(s, _)| (200..300).contains(*s))
        .map(|(_, n)| n)
        .sum();
    let status: BTreeMap<String, u64> = t.status.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let report = json!({
        "url": args.url,
        "bodies": args.bodies,
        "records_per_body": args.records,
        "body_bytes_avg": raw_bytes / args.bodies,
        "wire_bytes_avg": wire_bytes / args.bodies,
        "gzip": args.gzip,
        "corpus": if args.dense_corpus { "dense" } else { "lines" },
        "concurrency": args.concurrency,
        "rate_requests_s": args.rate,
        "seconds": secs,
        "requests": requests,
        "requests_2xx": ok,
        "non_2xx": requests - ok,
        "status": status,
        "transport_errors": t.errors,
        "late": t.late,
        "records_sent": t.records_sent,
        "records_accepted": t.records_accepted,
        "records_rejected_partial": t.records_rejected,
        "audit_records_accepted": t.audit_accepted,
        "phi": sh.phi.as_ref().map(|phi| {
            let accepted: serde_json::Map<String, serde_json::Value> = phi
                .kinds
                .iter()
                .enumerate()
                .map(|(k, kind)| {
                    (kind.to_string(), json!(t.phi_accepted.get(k).copied().unwrap_or(0.0).round()))
                })
                .collect();
            json!({
                "values": phi.values,
                "values_left_out": phi.left_out,
                "planted_per_body_avg": phi.per_body.iter().flatten().sum::<u64>() as f64
                    / phi.per_body.len() as f64,
                "accepted_by_kind": accepted,
                "accepted_total": (t.phi_accepted.iter().sum::<f64>() + 0.0).round(),
            })
        }),
        "offered_records_s": t.records_sent as f64 / secs,
        "accepted_records_s": t.records_accepted as f64 / secs,
        "accepted_mb_s": (ok as f64 * (raw_bytes / args.bodies) as f64) / secs / 1e6,
        "latency_ms": {
            "p50": pct(50.0),
            "p90": pct(90.0),
            "p99": pct(99.0),
            "max": pct(100.0),
        },
    });
    let text = report.to_string();
    println!("{text}");
    if let Some(p) = &args.report {
        if let Err(e) = std::fs::write(p, format!("{text}\n")) {
            eprintln!("otlp_replay: {}: {e}", p.display());
            std::process::exit(1);
        }
    }
}
