//! Fail closed (issue 4, scenario 6): an error inside redaction never
//! forwards the raw record to a vendor; the record is dropped and counted in
//! `scrubs_vendor_dropped_total{reason="redaction_failed"}`, the process
//! stays up, and the audit fork (unredacted, to Kafka) still receives its
//! records.
//!
//! `scrubs run` is started as a child process with a file source and an OTLP
//! source, a vendor endpoint that decodes what it receives, and a real Kafka
//! topic. The panic test needs the test-only hook:
//! `cargo test --features fault-injection --test fail_closed` (scripts/test.sh
//! runs it); the limits test runs in every build.
//!
//! Needs the dev broker: `deploy/dev/kafka.sh start` (scripts/test.sh does it).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

// ---------------------------------------------------------------- PHI

/// PHI planted in the input; none may reach the vendor raw.
const CANARIES: &[&str] = &[
    "Maria Gonzalez",
    "219-09-9999",
    "maria.gonzalez@example.com",
    "(415) 555-0132",
    "48291734",
];

fn phi_line(i: usize) -> String {
    format!(
        r#"level=info msg="lookup" patient_name="Maria Gonzalez" ssn=219-09-9999 email=maria.gonzalez@example.com phone=(415) 555-0132 mrn=48291734 i={i}"#
    )
}

fn s(v: &str) -> AnyValue {
    AnyValue {
        value: Some(Value::StringValue(v.to_string())),
    }
}

fn resource_logs(resource: Vec<KeyValue>, records: Vec<LogRecord>) -> ResourceLogs {
    ResourceLogs {
        resource: Some(Resource {
            attributes: resource,
            ..Default::default()
        }),
        scope_logs: vec![ScopeLogs {
            log_records: records,
            ..Default::default()
        }],
        ..Default::default()
    }
}

// ---------------------------------------------------------------- harness

fn bootstrap() -> String {
    std::env::var("SCRUBS_KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:19092".into())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What the vendor endpoint received, decompressed and decoded.
#[derive(Default)]
struct Received {
    /// Every request body, decompressed (raw protobuf): canaries are
    /// searched in these bytes, so no field escapes the check.
    raw: Vec<Vec<u8>>,
    logs: Vec<LogRecord>,
    spans: Vec<Span>,
    data_points: usize,
}

impl Received {
    fn contains(&self, needle: &str) -> bool {
        let n = needle.as_bytes();
        self.raw.iter().any(|r| r.windows(n.len()).any(|w| w == n))
    }
}

/// An OTLP/HTTP vendor endpoint decoding logs, traces and metrics.
fn start_vendor(rt: &tokio::runtime::Runtime) -> (u16, Arc<Mutex<Received>>) {
    let got = Arc::new(Mutex::new(Received::default()));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let store = got.clone();
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let store = store.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let gzip = req
                            .headers()
                            .get("content-encoding")
                            .is_some_and(|v| v == "gzip");
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let raw = if gzip {
                            let mut out = Vec::new();
                            flate2::read::GzDecoder::new(&body[..])
                                .read_to_end(&mut out)
                                .unwrap();
                            out
                        } else {
                            body.to_vec()
                        };
                        let mut g = store.lock().unwrap();
                        let reply = match path.as_str() {
                            "/v1/logs" => {
                                let r = ExportLogsServiceRequest::decode(&raw[..]).unwrap();
                                for rl in r.resource_logs {
                                    for sl in rl.scope_logs {
                                        g.logs.extend(sl.log_records);
                                    }
                                }
                                ExportLogsServiceResponse::default().encode_to_vec()
                            }
                            "/v1/traces" => {
                                let r = ExportTraceServiceRequest::decode(&raw[..]).unwrap();
                                for rs in r.resource_spans {
                                    for ss in rs.scope_spans {
                                        g.spans.extend(ss.spans);
                                    }
                                }
                                ExportTraceServiceResponse::default().encode_to_vec()
                            }
                            _ => {
                                let r = ExportMetricsServiceRequest::decode(&raw[..]).unwrap();
                                for rm in r.resource_metrics {
                                    for sm in rm.scope_metrics {
                                        for m in sm.metrics {
                                            if let Some(Data::Gauge(ga)) = m.data {
                                                g.data_points += ga.data_points.len();
                                            }
                                        }
                                    }
                                }
                                ExportMetricsServiceResponse::default().encode_to_vec()
                            }
                        };
                        g.raw.push(raw);
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                            reply,
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (port, got)
}

fn create_topic(rt: &tokio::runtime::Runtime, name: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin client");
    let topic = NewTopic::new(name, 1, TopicReplication::Fixed(1)).set("min.insync.replicas", "1");
    let res = rt
        .block_on(admin.create_topics(
            &[topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
        ))
        .unwrap_or_else(|e| {
            panic!(
                "cannot reach Kafka at {} ({e}); run deploy/dev/kafka.sh start",
                bootstrap()
            )
        });
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
}

struct Ports {
    vendor: u16,
    admin: u16,
    http: u16,
    grpc: u16,
}

fn write_config(dir: &Path, logs: &Path, topic: &str, p: &Ports) -> PathBuf {
    let cfg = format!(
        r#"
data_dir: {data}
sources:
  app:
    type: file
    include: ["{logs}/*.log"]
    poll_interval: 50ms
    max_line_bytes: 128KiB
  otlp:
    type: otlp
    http: {{ address: "127.0.0.1:{http}" }}
    grpc: {{ address: "127.0.0.1:{grpc}" }}
audit:
  kafka:
    brokers: "{brokers}"
    topic: {topic}
    spool_dir: {data}/audit
    check_topic_config: false
  select:
    fields:
      audit: ["true"]
    key_field: patient_id
vendors:
  - name: test-vendor
    endpoint: http://127.0.0.1:{vendor}
    baa_covered: true
    batch: {{ max_wait: 50ms }}
admin:
  address: "127.0.0.1:{admin}"
shutdown:
  drain_deadline: 10s
"#,
        data = dir.join("data").display(),
        logs = logs.display(),
        brokers = bootstrap(),
        http = p.http,
        grpc = p.grpc,
        vendor = p.vendor,
        admin = p.admin,
    );
    let path = dir.join("scrubs.yaml");
    std::fs::write(&path, cfg).unwrap();
    path
}

/// A running `scrubs run` whose stderr is collected by a thread (so that a
/// chatty log never blocks it on a full pipe).
struct Scrubs {
    child: Child,
    stderr: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Scrubs {
    fn start(cfg: &Path, env: &[(&str, &str)]) -> Scrubs {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_scrubs"));
        cmd.args(["run", "--config", cfg.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Scrubs {
            child,
            stderr,
            reader: Some(reader),
        }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn wait_ready(&mut self, admin: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(admin, "/readyz").is_none_or(|r| r.0 != 200) {
            assert!(
                self.alive(),
                "scrubs exited: {}",
                String::from_utf8_lossy(&self.stderr.lock().unwrap())
            );
            assert!(Instant::now() < deadline, "scrubs never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM; the exit code and everything written to stderr.
    fn stop(mut self) -> (Option<i32>, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(30);
        let mut code = None;
        while Instant::now() < end {
            if let Some(s) = self.child.try_wait().unwrap() {
                code = s.code();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if code.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let err = String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned();
        (code, err)
    }
}

impl Drop for Scrubs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 exchange: status and body.
fn http(port: u16, method: &str, path: &str, ct: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let end = out.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status = std::str::from_utf8(&out[..end])
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()?;
    Some((status, out[end + 4..].to_vec()))
}

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http(port, "GET", path, "text/plain", b"")
        .map(|(c, b)| (c, String::from_utf8_lossy(&b).into_owned()))
}

fn post_proto(port: u16, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    http(port, "POST", path, "application/x-protobuf", body).expect("OTLP answers")
}

fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------- tests

/// Records past the engine's limits are cut, placeheld or refused, never
/// forwarded raw: a line over the file source's `max_line_bytes` with PHI
/// before, across and after the cut; a JSON line nested 10,000 levels with
/// PHI under keys at the bottom; an OTLP body nested past the walk's depth
/// limit with PHI at the leaf.
#[test]
fn records_over_the_engine_limits_never_leave_raw() {
    let t0 = Instant::now();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("scrubs-fail-closed-limits-{}", std::process::id());
    create_topic(&rt, &topic);
    let (vendor, got) = start_vendor(&rt);
    let ports = Ports {
        vendor,
        admin: free_port(),
        http: free_port(),
        grpc: free_port(),
    };
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join("app.log");
    std::fs::write(&log, "").unwrap();
    let cfg = write_config(dir.path(), &logs, &topic, &ports);
    let mut scrubs = Scrubs::start(&cfg, &[]);
    scrubs.wait_ready(ports.admin);

    let max_line = 128 * 1024;
    // PHI every ~200 bytes over 3x the limit: before, across and after the cut.
    let mut long = String::new();
    let mut i = 0;
    while long.len() < 3 * max_line {
        long.push_str(&phi_line(i));
        long.push(' ');
        i += 1;
    }
    let deep = format!(
        "{}{}{}",
        r#"{"a":"#.repeat(10_000),
        r#"{"patient_name":"Maria Gonzalez","ssn":"219-09-9999","email":"maria.gonzalez@example.com","mrn":"48291734"}"#,
        "}".repeat(10_000)
    );
    assert!(deep.len() < max_line);
    std::fs::write(&log, format!("{long}\n{deep}\nlast line ok\n")).unwrap();

    // 40 arrays: past the walk's 32 levels, within prost's decoding limit.
    let mut nested = s("patient Maria Gonzalez SSN 219-09-9999 mrn 48291734");
    for _ in 0..40 {
        nested = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue {
                values: vec![nested],
            })),
        };
    }
    let req = ExportLogsServiceRequest {
        resource_logs: vec![resource_logs(
            vec![],
            vec![LogRecord {
                body: Some(nested),
                ..Default::default()
            }],
        )],
    };
    let (code, body) = post_proto(ports.http, "/v1/logs", &req.encode_to_vec());
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));

    wait_for("4 records at the vendor", 30, || {
        got.lock().unwrap().logs.len() >= 4
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(scrubs.alive());
    {
        let g = got.lock().unwrap();
        assert_eq!(g.logs.len(), 4);
        let bodies: Vec<String> = g
            .logs
            .iter()
            .filter_map(|l| match l.body.as_ref()?.value.as_ref()? {
                Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        // The long line was cut (and says so), not forwarded whole.
        let cut = bodies
            .iter()
            .find(|b| b.contains("[TRUNCATED:"))
            .expect("the long line, marked truncated");
        assert!(cut.len() < long.len() / 2, "{} bytes", cut.len());
        for c in CANARIES {
            assert!(!g.contains(c), "{c} reached the vendor raw");
        }
        assert!(g.contains("[REDACTED:DEPTH]"), "the OTLP depth placeholder");
    }
    let (code, stderr) = scrubs.stop();
    assert_eq!(code, Some(0), "{stderr}");
    for c in CANARIES {
        assert!(!stderr.contains(c), "{c} in scrubs' log");
    }
    eprintln!("fail closed (limits): {:?}", t0.elapsed());
}

/// The redaction-panic test: needs the test-only hook of the
/// `fault-injection` feature.
#[cfg(feature = "fault-injection")]
mod hook {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::KeyValueList;
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    fn kv(k: &str, v: AnyValue) -> KeyValue {
        KeyValue {
            key: k.to_string(),
            value: Some(v),
            key_strindex: 0,
        }
    }

    fn phi_attrs() -> Vec<KeyValue> {
        vec![
            kv("patient.name", s("Maria Gonzalez")),
            kv("patient.ssn", s("219-09-9999")),
            kv("email", s("maria.gonzalez@example.com")),
            kv("mrn", s("48291734")),
        ]
    }

    fn log_record(body: &str, attrs: Vec<KeyValue>) -> LogRecord {
        LogRecord {
            time_unix_nano: 1_700_000_000_000_000_000,
            body: Some(s(body)),
            attributes: attrs,
            ..Default::default()
        }
    }

    /// The payloads of every message in the topic.
    fn read_audit(topic: &str) -> Vec<serde_json::Value> {
        use scrubs::sinks::audit::verify::{read_topic, TopicReadOptions};
        let mut out = Vec::new();
        read_topic(
            &TopicReadOptions {
                brokers: bootstrap(),
                topic: topic.to_string(),
                properties: Vec::new(),
                idle_timeout: Duration::from_secs(5),
            },
            |_, _, _, value| {
                if let Some(v) = value {
                    out.push(serde_json::from_slice(v).expect("audit JSON"));
                }
            },
        )
        .expect("read the audit topic");
        out
    }

    /// A series' value in Prometheus text (0 if absent).
    fn metric(text: &str, series: &str) -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The marker that makes redaction panic (test-only hook).
    const MARKER: &str = "ZZFAULT91";

    fn has_marker(b: &[u8]) -> bool {
        b.windows(MARKER.len()).any(|w| w == MARKER.as_bytes())
    }

    #[test]
    fn a_panic_inside_redaction_drops_the_record_and_nothing_raw_leaves() {
        let t0 = Instant::now();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let topic = format!("scrubs-fail-closed-{}", std::process::id());
        create_topic(&rt, &topic);
        let (vendor, got) = start_vendor(&rt);
        let ports = Ports {
            vendor,
            admin: free_port(),
            http: free_port(),
            grpc: free_port(),
        };
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let log = logs.join("app.log");
        std::fs::write(&log, "").unwrap();
        let cfg = write_config(dir.path(), &logs, &topic, &ports);
        let mut scrubs = Scrubs::start(&cfg, &[("SCRUBS_FAULT_REDACT_PANIC", MARKER)]);
        scrubs.wait_ready(ports.admin);

        // --- File source: every 7th line carries the marker; two audit lines,
        // one of them with the marker.
        const LINES: usize = 60;
        let mut text = String::new();
        let mut file_marked = 0;
        for i in 0..LINES {
            let mut l = phi_line(i);
            if i % 7 == 3 {
                l.push_str(&format!(" tag={MARKER}"));
                file_marked += 1;
            }
            text.push_str(&l);
            text.push('\n');
        }
        let audit_lines = [
        format!(
            r#"{{"audit":"true","patient_id":"p-1","patient_name":"Maria Gonzalez","ssn":"219-09-9999","tag":"{MARKER}","n":"file-marked"}}"#
        ),
        r#"{"audit":"true","patient_id":"p-2","patient_name":"Maria Gonzalez","ssn":"219-09-9999","n":"file-clean"}"#.to_string(),
    ];
        for l in &audit_lines {
            text.push_str(l);
            text.push('\n');
            // Audit lines also go, scrubbed, to the vendors.
            if l.contains(MARKER) {
                file_marked += 1;
            }
        }
        let file_clean = LINES + audit_lines.len() - file_marked;
        std::fs::write(&log, text).unwrap();

        // --- OTLP logs: marker in a body, in an attribute, in an audit-grade
        // record, and in a resource attribute (the whole resource goes).
        let mut marked_attrs = phi_attrs();
        marked_attrs.push(kv("note", s(&format!("see {MARKER}"))));
        let mut audit_marked = phi_attrs();
        audit_marked.push(kv("audit", s("true")));
        audit_marked.push(kv("patient_id", s("p-3")));
        audit_marked.push(kv("tag", s(MARKER)));
        let nested_marker = AnyValue {
            value: Some(Value::KvlistValue(KeyValueList {
                values: vec![kv("inner", s(&format!("x {MARKER} y")))],
            })),
        };
        let logs_req = ExportLogsServiceRequest {
            resource_logs: vec![
                resource_logs(
                    vec![kv("service.name", s("intake"))],
                    vec![
                        log_record("patient Maria Gonzalez SSN 219-09-9999 ok-1", phi_attrs()),
                        log_record(&format!("{MARKER} patient Maria Gonzalez"), phi_attrs()),
                        log_record("patient Maria Gonzalez ok-2", marked_attrs),
                        log_record("audit access Maria Gonzalez", audit_marked),
                        LogRecord {
                            body: Some(nested_marker),
                            ..log_record("", phi_attrs())
                        },
                        log_record("email maria.gonzalez@example.com ok-3", phi_attrs()),
                    ],
                ),
                resource_logs(
                    vec![kv("host.note", s(MARKER))],
                    vec![
                        log_record("patient Maria Gonzalez in-marked-resource-1", phi_attrs()),
                        log_record("patient Maria Gonzalez in-marked-resource-2", phi_attrs()),
                    ],
                ),
            ],
        };
        // Marked records: by their own content, or by their resource's.
        let (mut otlp_logs_marked, mut otlp_logs_clean) = (0, 0);
        for rl in &logs_req.resource_logs {
            let resource_marked = has_marker(&rl.resource.as_ref().unwrap().encode_to_vec());
            for lr in &rl.scope_logs[0].log_records {
                if resource_marked || has_marker(&lr.encode_to_vec()) {
                    otlp_logs_marked += 1;
                } else {
                    otlp_logs_clean += 1;
                }
            }
        }
        let (code, body) = post_proto(ports.http, "/v1/logs", &logs_req.encode_to_vec());
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
        let resp = ExportLogsServiceResponse::decode(&body[..]).unwrap();
        let rejected = resp.partial_success.map_or(0, |p| p.rejected_log_records);
        assert_eq!(rejected, otlp_logs_marked as i64, "partial success");

        // --- OTLP traces: one span named with the marker, one clean.
        let span = |name: &str| Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: name.to_string(),
            attributes: phi_attrs(),
            ..Default::default()
        };
        let traces_req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: None,
                scope_spans: vec![ScopeSpans {
                    spans: vec![
                        span("GET /patients"),
                        span(&format!("GET /{MARKER}/Maria Gonzalez")),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let (code, body) = post_proto(ports.http, "/v1/traces", &traces_req.encode_to_vec());
        assert_eq!(code, 200);
        let resp = ExportTraceServiceResponse::decode(&body[..]).unwrap();
        let spans = &traces_req.resource_spans[0].scope_spans[0].spans;
        let spans_marked = spans
            .iter()
            .filter(|sp| has_marker(&sp.encode_to_vec()))
            .count();
        let spans_clean = spans.len() - spans_marked;
        assert_eq!(
            resp.partial_success.map_or(0, |p| p.rejected_spans),
            spans_marked as i64
        );

        // --- OTLP metrics: a gauge whose two data points carry the marker.
        let gauge = |name: &str, points: Vec<NumberDataPoint>| Metric {
            name: name.to_string(),
            data: Some(Data::Gauge(Gauge {
                data_points: points,
            })),
            ..Default::default()
        };
        let point = |attrs: Vec<KeyValue>| NumberDataPoint {
            attributes: attrs,
            ..Default::default()
        };
        let metrics_req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: None,
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![
                        gauge("queue.depth", vec![point(phi_attrs())]),
                        gauge(
                            "visits",
                            vec![
                                point(vec![kv("who", s(&format!("{MARKER} Maria Gonzalez")))]),
                                point(phi_attrs()),
                            ],
                        ),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let (code, body) = post_proto(ports.http, "/v1/metrics", &metrics_req.encode_to_vec());
        assert_eq!(code, 200);
        let resp = ExportMetricsServiceResponse::decode(&body[..]).unwrap();
        // A metric whose redaction fails goes whole: all its data points count.
        let (mut points_marked, mut points_clean) = (0, 0);
        for m in &metrics_req.resource_metrics[0].scope_metrics[0].metrics {
            let Some(Data::Gauge(g)) = &m.data else {
                unreachable!()
            };
            if has_marker(&m.encode_to_vec()) {
                points_marked += g.data_points.len();
            } else {
                points_clean += g.data_points.len();
            }
        }
        assert_eq!(
            resp.partial_success.map_or(0, |p| p.rejected_data_points),
            points_marked as i64
        );

        // The vendor gets every clean record.
        let want_logs = file_clean + otlp_logs_clean;
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let g = got.lock().unwrap();
            if g.logs.len() >= want_logs
                && g.spans.len() >= spans_clean
                && g.data_points >= points_clean
            {
                break;
            }
            assert!(
            Instant::now() < end,
            "vendor has {} logs (want {want_logs}), {} spans, {} points; metrics: {:?}; log: {}",
            g.logs.len(),
            g.spans.len(),
            g.data_points,
            http_get(ports.admin, "/metrics").map(|m| m.1),
            String::from_utf8_lossy(&scrubs.stderr.lock().unwrap())
        );
            drop(g);
            std::thread::sleep(Duration::from_millis(100));
        }
        // And every redaction failure is counted.
        let failed_total = (file_marked + otlp_logs_marked + spans_marked + points_marked) as u64;
        let series =
            r#"scrubs_vendor_dropped_total{vendor="test-vendor",reason="redaction_failed"}"#;
        wait_for("the redaction_failed count", 10, || {
            http_get(ports.admin, "/metrics").is_some_and(|m| metric(&m.1, series) >= failed_total)
        });
        std::thread::sleep(Duration::from_millis(500));
        let metrics = http_get(ports.admin, "/metrics").unwrap().1;
        assert_eq!(metric(&metrics, series), failed_total, "{metrics}");

        // The process is up and healthy after the panics.
        assert!(scrubs.alive(), "scrubs died");
        assert_eq!(http_get(ports.admin, "/healthz").map(|r| r.0), Some(200));

        {
            let g = got.lock().unwrap();
            assert_eq!(g.logs.len(), want_logs, "log records at the vendor");
            assert_eq!(g.spans.len(), spans_clean, "spans at the vendor");
            assert_eq!(g.data_points, points_clean, "data points at the vendor");
            assert!(!g.contains(MARKER), "a marker record reached the vendor");
            for c in CANARIES {
                assert!(!g.contains(c), "{c} reached the vendor raw");
            }
        }

        // The audit fork is unaffected: both file audit lines and the OTLP
        // audit record reached Kafka, unredacted, the marked ones included.
        let mut audit = Vec::new();
        wait_for("3 audit records in Kafka", 30, || {
            audit = read_audit(&topic);
            audit.len() >= 3
        });
        assert_eq!(audit.len(), 3, "{audit:?}");
        let texts: Vec<String> = audit.iter().map(|v| v["record"].to_string()).collect();
        for t in &texts {
            assert!(t.contains("Maria Gonzalez"), "audit is unredacted: {t}");
        }
        assert_eq!(texts.iter().filter(|t| t.contains(MARKER)).count(), 2);
        assert!(texts.iter().any(|t| t.contains("file-clean")));

        let (code, stderr) = scrubs.stop();
        assert_eq!(code, Some(0), "exit on SIGTERM: {stderr}");
        // Each panic is reported, without the record.
        assert!(stderr.contains("panicked"), "{stderr}");
        assert!(
            !stderr.contains(MARKER),
            "the marker in scrubs' log: {stderr}"
        );
        for c in CANARIES {
            assert!(!stderr.contains(c), "{c} in scrubs' log");
        }
        eprintln!("fail closed (panics): {:?}", t0.elapsed());
    }
}
