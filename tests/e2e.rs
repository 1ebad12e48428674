//! End to end: `scrubs run` tails a log file that receives PHI-bearing lines
//! and audit lines and is rotated; the audit lines must arrive in a real
//! Kafka topic exactly once, unredacted, in order per key, with a valid hash
//! chain; the vendor (a real OTLP/HTTP endpoint decoding protobuf) must
//! receive every line, redacted, and nothing raw. A vendor without the BAA
//! flag is refused at validation.
//!
//! Needs the dev broker: `deploy/dev/kafka.sh start` (scripts/test.sh does it).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use scrubs::sinks::audit::verify::{read_topic, verify, RawMessage, TopicReadOptions};

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

/// A vendor endpoint: decodes OTLP/HTTP protobuf log requests and keeps the
/// log bodies it received.
fn start_vendor(rt: &tokio::runtime::Runtime) -> (u16, Arc<Mutex<Vec<String>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let store = bodies.clone();
    rt.spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let store = store.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let store = store.clone();
                    async move {
                        let gzip = req
                            .headers()
                            .get("content-encoding")
                            .is_some_and(|v| v == "gzip");
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let raw = if gzip {
                            let mut out = Vec::new();
                            flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out).unwrap();
                            out
                        } else {
                            body.to_vec()
                        };
                        let export = ExportLogsServiceRequest::decode(&raw[..]).unwrap();
                        let mut got = store.lock().unwrap();
                        for rl in export.resource_logs {
                            for sl in rl.scope_logs {
                                for lr in sl.log_records {
                                    if let Some(Value::StringValue(s)) = lr.body.and_then(|b| b.value) {
                                        got.push(s);
                                    }
                                }
                            }
                        }
                        let ok = opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse::default();
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(ok.encode_to_vec()))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (port, bodies)
}

fn create_topic(rt: &tokio::runtime::Runtime, name: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin client");
    let topic = NewTopic::new(name, 3, TopicReplication::Fixed(1)).set("min.insync.replicas", "1");
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

fn write_config(
    dir: &Path,
    log: &Path,
    topic: &str,
    vendor_port: u16,
    admin_port: u16,
) -> std::path::PathBuf {
    let cfg = format!(
        r#"
data_dir: {data}
sources:
  app:
    type: file
    include: ["{log}"]
    poll_interval: 50ms
    rotate_wait: 2s
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
    endpoint: http://127.0.0.1:{vendor_port}
    baa_covered: true
    batch: {{ max_wait: 50ms }}
admin:
  address: "127.0.0.1:{admin_port}"
shutdown:
  drain_deadline: 10s
"#,
        data = dir.join("data").display(),
        log = log.display(),
        brokers = bootstrap(),
    );
    let path = dir.join("scrubs.yaml");
    std::fs::write(&path, cfg).unwrap();
    path
}

fn audit_line(i: usize) -> String {
    format!(
        r#"{{"audit":"true","patient_id":"p-{}","action":"chart.view","patient_name":"Maria Gonzalez","ssn":"219-09-9999","i":{i}}}"#,
        i % 4
    )
}

fn phi_line(i: usize) -> String {
    format!(
        r#"level=info msg="lookup" patient_name="John Smith" dob=1985-03-14 call 415-555-0132 i={i}"#
    )
}

#[test]
fn tail_rotate_audit_to_kafka_and_scrubbed_to_vendor() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("scrubs-e2e-{}", std::process::id());
    create_topic(&rt, &topic);
    let (vendor_port, bodies) = start_vendor(&rt);
    let admin_port = free_port();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let cfg = write_config(dir.path(), &log, &topic, vendor_port, admin_port);

    let mut child = Command::new(env!("CARGO_BIN_EXE_scrubs"))
        .args(["run", "--config", cfg.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Wait until scrubs is ready (sources open, sinks healthy): a file
    // renamed out of the glob before scrubs ever saw it cannot be tailed.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !try_http_get(admin_port, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 200")) {
        assert!(Instant::now() < deadline, "scrubs never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Write 400 lines, every 5th an audit line, rotating by rename halfway.
    const N: usize = 400;
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    for i in 0..N {
        if i == N / 2 {
            // Rotate while the writer keeps going, as logrotate does, once the
            // tail has had a poll to see the file.
            f.flush().unwrap();
            std::thread::sleep(Duration::from_millis(300));
            drop(f);
            std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
            f = std::fs::File::create(&log).unwrap();
        }
        let line = if i % 5 == 0 {
            audit_line(i)
        } else {
            phi_line(i)
        };
        writeln!(f, "{line}").unwrap();
        if i % 50 == 0 {
            f.flush().unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    f.flush().unwrap();

    // The vendor receives every line (audit lines too, scrubbed).
    let deadline = Instant::now() + Duration::from_secs(60);
    while bodies.lock().unwrap().len() < N && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }

    // /metrics answers and counts what was read.
    let metrics = http_get(admin_port, "/metrics");
    assert!(
        metrics.contains("scrubs_records_in_total{source=\"app\"} 400"),
        "{metrics}"
    );

    // SIGTERM: drain, flush, exit 0.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = wait_timeout(&mut child, Duration::from_secs(30));
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(
        status,
        Some(0),
        "scrubs did not exit 0 on SIGTERM: {stderr}"
    );

    // Nothing raw reached the vendor; every line arrived exactly once.
    let got = bodies.lock().unwrap().clone();
    for raw in [
        "John Smith",
        "Maria Gonzalez",
        "219-09-9999",
        "415-555-0132",
        "1985-03-14",
    ] {
        assert!(
            !got.iter().any(|b| b.contains(raw)),
            "{raw} reached the vendor"
        );
    }
    let mut seen = BTreeMap::new();
    for b in &got {
        let i: usize = b
            .rsplit(['=', ':'])
            .next()
            .and_then(|t| t.trim_end_matches('}').parse().ok())
            .unwrap_or_else(|| panic!("no line number in {b}"));
        *seen.entry(i).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), N, "lines missing at the vendor");
    assert!(seen.values().all(|&c| c == 1), "duplicates at the vendor");

    // Kafka: every audit line exactly once, unredacted, in order per key,
    // with a valid chain.
    let mut messages = Vec::new();
    read_topic(
        &TopicReadOptions {
            brokers: bootstrap(),
            topic: topic.clone(),
            properties: Vec::new(),
            idle_timeout: Duration::from_secs(10),
        },
        |partition, offset, key, value| {
            messages.push(RawMessage {
                partition,
                offset,
                key: key.map(<[u8]>::to_vec),
                payload: value.map(<[u8]>::to_vec),
            })
        },
    )
    .unwrap();
    assert_eq!(messages.len(), N / 5, "audit events in Kafka");
    let report = verify(&messages, None);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let mut per_key: BTreeMap<Vec<u8>, Vec<(i32, i64, usize)>> = BTreeMap::new();
    for m in &messages {
        let v: serde_json::Value = serde_json::from_slice(m.payload.as_deref().unwrap()).unwrap();
        let line = v["record"]["line"].as_str().unwrap();
        assert!(
            line.contains("Maria Gonzalez") && line.contains("219-09-9999"),
            "audit must be unredacted: {line}"
        );
        let rec: serde_json::Value = serde_json::from_str(line).unwrap();
        let i = rec["i"].as_u64().unwrap() as usize;
        per_key
            .entry(m.key.clone().unwrap())
            .or_default()
            .push((m.partition, m.offset, i));
    }
    for (key, mut v) in per_key {
        let partitions: std::collections::BTreeSet<i32> = v.iter().map(|x| x.0).collect();
        assert_eq!(partitions.len(), 1, "one key, one partition: {key:?}");
        v.sort_by_key(|x| x.1);
        assert!(
            v.windows(2).all(|w| w[0].2 < w[1].2),
            "order per key {key:?}: {v:?}"
        );
    }

    // scrubs' own stderr never carries the PHI it handled.
    for raw in ["John Smith", "Maria Gonzalez", "219-09-9999"] {
        assert!(!stderr.contains(raw), "{raw} in scrubs' log");
    }
}

#[test]
fn a_vendor_without_baa_is_refused_at_validation() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("scrubs.yaml");
    std::fs::write(
        &cfg,
        "sources:\n  in: {type: stdin}\nvendors:\n  - name: cheap-logs-inc\n    endpoint: http://127.0.0.1:9\n",
    )
    .unwrap();
    for cmd in ["validate", "run"] {
        let out = Command::new(env!("CARGO_BIN_EXE_scrubs"))
            .args([cmd, "--config", cfg.to_str().unwrap()])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(
            err.contains("cheap-logs-inc") && err.contains("baa_covered"),
            "{cmd}: {err}"
        );
    }
}

fn http_get(port: u16, path: &str) -> String {
    try_http_get(port, path).expect("admin endpoint answers")
}

fn try_http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn wait_timeout(child: &mut std::process::Child, t: Duration) -> Option<i32> {
    let end = Instant::now() + t;
    while Instant::now() < end {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}
