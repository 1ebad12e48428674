//! scrubs' own output stays clean (issue 4, scenario 8): every path is run
//! with PHI-laden input, everything scrubs writes to stderr (its log) is
//! captured, and no PHI value planted in the input may appear in it.
//!
//! * `scrubs redact`: ordinary input, an over-long line, invalid UTF-8 and
//!   NUL bytes, `--stats`, a key file holding PHI-looking text.
//! * `scrubs rules test` on a rule file whose examples fail: the examples
//!   are configuration written by the rule author, not event content, and
//!   the report quotes them on stdout so the author can fix the rule; it
//!   must quote nothing else, and nothing on stderr.
//! * `scrubs validate` and `scrubs run` on a broken configuration with
//!   PHI-looking values in the wrong places: every problem is reported with
//!   its path, the values are withheld.
//! * `scrubs run` at trace and debug level with a file source and an OTLP
//!   source (HTTP and gRPC): PHI in lines, over-long lines, invalid UTF-8,
//!   JSON nested 10,000 levels, PHI in OTLP bodies, attributes, span names
//!   and HTTP/gRPC headers, malformed protobuf and JSON carrying PHI, a
//!   vendor answering 500, 400 and partial success with the PHI echoed in
//!   its error body; the audit topic missing and the broker unreachable.
//!   With `--features fault-injection`, also redaction panics.
//!
//! Needs the dev broker: `deploy/dev/kafka.sh start` (scripts/test.sh does it).

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use support::{
    bootstrap, create_topic, deep_json, free_port, http_get, http_with, kv, metric, phi_line_with,
    s, serve, Audit, Ports, Scrubs, Sidecar,
};

// ---------------------------------------------------------------- PHI

/// Values planted in the input; none may appear in scrubs' own output.
/// Fragments too, in case a message cuts a value.
const CANARIES: &[&str] = &[
    "Maria Gonzalez",
    "Gonzalez",
    "John Smith",
    "219-09-9999",
    "219099999",
    "maria.gonzalez@example.com",
    "(415) 555-0132",
    "415-555-0132",
    "48291734",
    "Qorvath",
];

fn phi_line(i: usize) -> String {
    phi_line_with(i, r#" doctor="John Smith""#)
}

fn assert_clean(what: &str, text: &str) {
    for c in CANARIES {
        assert!(
            !text.contains(c),
            "{what}: PHI {c:?} in scrubs' own output:\n{}",
            excerpt(text, c)
        );
    }
}

/// The lines of `text` around the first occurrence of `needle`.
fn excerpt(text: &str, needle: &str) -> String {
    text.lines()
        .filter(|l| l.contains(needle))
        .take(5)
        .map(|l| l.chars().take(600).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

/// [`support::phi_attrs`] and a note that names the doctor and a phone
/// number.
fn phi_attrs() -> Vec<KeyValue> {
    let mut attrs = support::phi_attrs();
    attrs.push(kv("note", s("called John Smith at (415) 555-0132")));
    attrs
}

fn phi_logs(audit: bool) -> ExportLogsServiceRequest {
    let mut attrs = phi_attrs();
    if audit {
        attrs.push(kv("audit", s("true")));
        attrs.push(kv("patient_id", s("p-1")));
    }
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("host.owner", s("Maria Gonzalez"))],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    body: Some(s(
                        "patient Maria Gonzalez SSN 219-09-9999 email maria.gonzalez@example.com",
                    )),
                    severity_text: "INFO".into(),
                    attributes: attrs,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

// ---------------------------------------------------------------- CLI

fn scrubs(args: &[&str], stdin: &[u8]) -> (Option<i32>, Vec<u8>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scrubs"))
        .args(args)
        .env("RUST_LOG", "trace")
        .env("SCRUBS_LOG", "trace")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        out.status.code(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_paths_keep_phi_out_of_stderr() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();

    // redact: ordinary input, with --stats.
    let input: String = (0..50).map(|i| phi_line(i) + "\n").collect();
    let (code, out, err) = scrubs(&["redact", "--stats"], input.as_bytes());
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("rule\t"), "--stats printed counts: {err}");
    assert_clean("redact --stats (stderr)", &err);
    assert_clean("redact (stdout)", &String::from_utf8_lossy(&out));

    // redact: an over-long line, invalid UTF-8, NUL bytes.
    let mut input = Vec::new();
    for i in 0..200 {
        input.extend_from_slice(phi_line(i).as_bytes());
        input.push(b' ');
    }
    input.push(b'\n');
    input.extend_from_slice(b"\xff\xfe patient Maria Gonzalez \x00 ssn 219-09-9999 \xc3\x28\n");
    input.extend_from_slice(deep_json(10_000).as_bytes());
    input.push(b'\n');
    let (code, out, err) = scrubs(&["redact", "--max-line-bytes", "4096", "--stats"], &input);
    assert_eq!(code, Some(0), "{err}");
    assert!(String::from_utf8_lossy(&out).contains("[TRUNCATED:"));
    assert_clean("redact, bad input (stderr)", &err);
    assert_clean("redact, bad input (stdout)", &String::from_utf8_lossy(&out));

    // redact: a key file holding PHI-looking text (too short): refused
    // without quoting it.
    let key = dir.path().join("key");
    std::fs::write(&key, "Maria Gonzalez 219-09-9999").unwrap();
    let (code, out, err) = scrubs(&["redact", "--key-file", key.to_str().unwrap()], b"hello\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(out.is_empty());
    assert!(err.contains("key"), "{err}");
    assert_clean("redact --key-file", &err);

    // rules test: examples that fail. They are quoted on stdout (they are
    // the author's own configuration); stderr stays empty of them, and no
    // other value is quoted.
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        r#"rules:
  - id: test.badge
    description: Badge numbers.
    category: other_identifier
    detector:
      regex: 'BADGE-\d{6}'
    examples:
      redact:
        - "patient Maria Gonzalez without a badge"
        - input: "BADGE-123456"
          output: "John Smith"
      keep:
        - "BADGE-654321 for 219-09-9999"
"#,
    )
    .unwrap();
    let (code, out, err) = scrubs(&["rules", "test", rules.to_str().unwrap()], b"");
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, Some(1), "{out}{err}");
    assert_eq!(out.matches("FAIL ").count(), 3, "{out}");
    assert!(out.contains("rule 'test.badge'") && out.contains("rules.yaml:"));
    assert_clean("rules test (stderr)", &err);
    // Only the examples' own text (and its redaction) is quoted.
    let examples = std::fs::read_to_string(&rules).unwrap();
    for quoted in out.split('"').skip(1).step_by(2) {
        let plain = quoted
            .split(['[', ']'])
            .filter(|p| !p.contains(':') || p.contains(' '))
            .all(|p| p.trim().is_empty() || examples.contains(p.trim()));
        assert!(
            plain,
            "rules test quoted something not in the examples: {quoted:?}"
        );
    }

    // validate / run: a broken configuration with PHI-looking values where
    // they do not belong.
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(
        &cfg,
        r#"data_dir: /nonexistent/scrubs-log-hygiene
sources:
  app:
    type: file
    include: "Maria Gonzalez 219-09-9999"
  app2:
    type: "MRN 48291734"
  otlp:
    type: otlp
    http: { address: "(415) 555-0132" }
    max_request_bytes: "SSN 219-09-9999"
audit:
  kafka:
    brokers: "127.0.0.1:9"
    topic: phi-audit
    spool_dir: /nonexistent/scrubs-log-hygiene/spool
    delivery_timeout: "Maria Gonzalez"
  select:
    fields:
      audit: "219-09-9999"
vendors:
  - name: v1
    endpoint: http://127.0.0.1:9
    baa_covered: "John Smith"
  - name: v2
    endpoint: "maria.gonzalez@example.com"
    baa_covered: true
    batch: { max_wait: "219-09-9999" }
admin:
  address: "maria.gonzalez@example.com"
limits:
  max_record_bytes: "Maria Gonzalez"
shutdown:
  drain_deadline: "48291734s of John Smith"
"#,
    )
    .unwrap();
    for cmd in ["validate", "run"] {
        let (code, out, err) = scrubs(&[cmd, "--config", cfg.to_str().unwrap()], b"");
        assert_eq!(code, Some(2), "{cmd}: {err}");
        let problems: usize = err
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("scrubs: "))
            .and_then(|l| l.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{cmd}: no problem count: {err}"));
        assert!(problems >= 8, "{cmd}: every problem at once: {err}");
        for path in [
            "sources.app:",
            "sources.otlp:",
            "audit:",
            "vendors[0]",
            "limits:",
        ] {
            assert!(err.contains(path), "{cmd}: {path} not named: {err}");
        }
        assert_clean(cmd, &err);
        assert_clean(cmd, &String::from_utf8_lossy(&out));
    }
    // A YAML syntax error quoting nothing but the position; a value that is
    // the wrong type at the top level.
    for text in [
        "sources: \"Maria Gonzalez 219-09-9999\"\n",
        "sources:\n  x: {type: stdin}\nvendors:\n  - name: v\n    batch: { max_records: 219099999999999999999999 }\n",
        "sources:\n  x: {type: stdin}\n  \"Maria Gonzalez\": [unclosed 219-09-9999\n",
    ] {
        std::fs::write(&cfg, text).unwrap();
        let (code, _, err) = scrubs(&["validate", "--config", cfg.to_str().unwrap()], b"");
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("line "), "the position is given: {err}");
        assert_clean("validate (top level)", &err);
    }
    std::fs::write(
        &cfg,
        "sources:\n  x: {type: stdin}\nresource:\n  owner: [\"John Smith\"]\n",
    )
    .unwrap();
    let (code, _, err) = scrubs(&["validate", "--config", cfg.to_str().unwrap()], b"");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("resource"), "{err}");
    assert_clean("validate (resource)", &err);
    eprintln!("log hygiene (CLI): {:?}", t0.elapsed());
}

// ---------------------------------------------------------------- harness

/// How the vendor answers.
#[derive(Clone)]
enum Answer {
    Ok,
    Status(u16, String),
    PartialSuccess(String),
}

/// A vendor endpoint whose answer can be changed; counts requests with
/// records in them.
fn start_vendor(rt: &tokio::runtime::Runtime) -> (u16, Arc<Mutex<Answer>>, Arc<Mutex<usize>>) {
    let answer = Arc::new(Mutex::new(Answer::Ok));
    let requests = Arc::new(Mutex::new(0usize));
    let (a, n) = (answer.clone(), requests.clone());
    let port = serve(rt, move |req| {
        let (a, n) = (a.clone(), n.clone());
        async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            if !body.is_empty() {
                *n.lock().unwrap() += 1;
            }
            let answer = a.lock().unwrap().clone();
            match answer {
                Answer::Ok => Response::new(Full::new(Bytes::from(
                    ExportLogsServiceResponse::default().encode_to_vec(),
                ))),
                Answer::Status(code, text) => {
                    let mut r = Response::new(Full::new(Bytes::from(text)));
                    *r.status_mut() = StatusCode::from_u16(code).unwrap();
                    r
                }
                Answer::PartialSuccess(msg) => Response::new(Full::new(Bytes::from(
                    ExportLogsServiceResponse {
                        partial_success: Some(ExportLogsPartialSuccess {
                            rejected_log_records: 1,
                            error_message: msg,
                        }),
                    }
                    .encode_to_vec(),
                ))),
            }
        }
    });
    (port, answer, requests)
}

fn write_config(dir: &Path, logs: &Path, brokers: &str, topic: &str, p: &Ports) -> PathBuf {
    Sidecar {
        include: format!("{}/*.log", logs.display()),
        file: &["max_line_bytes: 16KiB"],
        otlp: Some(&[]),
        audit: Some(Audit {
            brokers: brokers.to_string(),
            topic,
            kafka: &["check_topic_config: true", "delivery_timeout: 2s"],
        }),
        vendor: &["retry: { initial_backoff: 20ms, max_backoff: 100ms, max_elapsed: 600ms }"],
        drain_deadline: "5s",
        ..Sidecar::default()
    }
    .write(dir, p)
}

/// `scrubs run` logging at `level`, stdout collected with stderr (a trace
/// log must never block it on a full pipe, and `run` writes nothing to
/// stdout that the check should miss).
fn start_scrubs(cfg: &Path, level: &str) -> Scrubs {
    #[allow(unused_mut)]
    let mut env = vec![
        ("RUST_LOG", level),
        ("SCRUBS_LOG", level),
        ("RUST_BACKTRACE", "1"),
    ];
    #[cfg(feature = "fault-injection")]
    env.push(("SCRUBS_FAULT_REDACT_PANIC", FAULT_MARKER));
    Scrubs::start_capturing_stdout(cfg, &env)
}

const PROTO: &str = "application/x-protobuf";
const JSON: &str = "application/json";

fn post(port: u16, path: &str, ct: &str, body: &[u8]) -> u16 {
    http_with(
        port,
        "POST",
        path,
        &[
            ("Content-Type", ct),
            ("X-Patient", "Maria Gonzalez 219-09-9999"),
            ("User-Agent", "intake/1.0 (John Smith)"),
        ],
        body,
    )
    .expect("OTLP answers")
    .0
}

fn wait_metric(s: &mut Scrubs, admin: u16, series: &str, at_least: u64) {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let m = http_get(admin, "/metrics").map(|r| r.1).unwrap_or_default();
        if metric(&m, series) >= at_least {
            return;
        }
        assert!(s.alive(), "scrubs exited: {}", s.log());
        assert!(
            Instant::now() < end,
            "timed out waiting for {series} >= {at_least}:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(feature = "fault-injection")]
const FAULT_MARKER: &str = "ZZFAULT91";

/// A gRPC export over raw HTTP/2 with a PHI-bearing header and `payload`
/// as the message; returns the grpc-status.
async fn grpc_export(port: u16, payload: &[u8]) -> Option<String> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .ok()?;
    tokio::spawn(conn);
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    let req = hyper::Request::post(format!(
        "http://127.0.0.1:{port}/opentelemetry.proto.collector.logs.v1.LogsService/Export"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header("x-patient", "Maria Gonzalez 219-09-9999")
    .body(Full::new(Bytes::from(frame)))
    .ok()?;
    let resp = send.send_request(req).await.ok()?;
    if let Some(s) = resp.headers().get("grpc-status") {
        return Some(s.to_str().ok()?.to_string());
    }
    let body = resp.into_body().collect().await.ok()?;
    body.trailers()
        .and_then(|t| t.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

// ---------------------------------------------------------------- run

/// Everything the file source and the OTLP receiver can be fed, with PHI.
fn feed(rt: &tokio::runtime::Runtime, logs: &Path, ports: &Ports) {
    // File: PHI lines, an audit line, an over-long line, invalid UTF-8 and
    // NUL bytes, deep JSON, a binary file in the glob.
    let mut data = Vec::new();
    for i in 0..20 {
        data.extend_from_slice(phi_line(i).as_bytes());
        data.push(b'\n');
    }
    data.extend_from_slice(
        br#"{"audit":"true","patient_id":"p-9","patient_name":"Maria Gonzalez","ssn":"219-09-9999"}"#,
    );
    data.push(b'\n');
    for i in 0..200 {
        data.extend_from_slice(phi_line(i).as_bytes());
        data.push(b' ');
    }
    data.push(b'\n');
    data.extend_from_slice(b"\xff\xfe patient Maria Gonzalez \x00\x00 ssn 219-09-9999 \xc3\x28\n");
    data.extend_from_slice(deep_json(2_000).as_bytes());
    data.push(b'\n');
    #[cfg(feature = "fault-injection")]
    data.extend_from_slice(format!("{} {FAULT_MARKER}\n", phi_line(99)).as_bytes());
    std::fs::write(logs.join("app.log"), &data).unwrap();
    let mut bin: Vec<u8> = (0..=255u8).cycle().take(64 * 1024).collect();
    bin.extend_from_slice(b"Maria Gonzalez 219-09-9999\0\0\x01");
    std::fs::write(logs.join("blob.log"), bin).unwrap();

    // OTLP/HTTP: good requests (audit-grade too), then bad ones carrying PHI.
    assert_eq!(
        post(
            ports.http,
            "/v1/logs",
            PROTO,
            &phi_logs(false).encode_to_vec()
        ),
        200
    );
    assert_eq!(
        post(
            ports.http,
            "/v1/logs",
            PROTO,
            &phi_logs(true).encode_to_vec()
        ),
        200
    );
    let traces = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    name: "GET /patients/Maria Gonzalez/ssn/219-09-9999".into(),
                    attributes: phi_attrs(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    assert_eq!(
        post(ports.http, "/v1/traces", PROTO, &traces.encode_to_vec()),
        200
    );
    let json = serde_json::to_vec(&phi_logs(false)).unwrap();
    assert_eq!(post(ports.http, "/v1/logs", JSON, &json), 200);

    let mut garbage = phi_logs(false).encode_to_vec();
    garbage.truncate(garbage.len() - 7);
    garbage.extend_from_slice(b"\xff\xff\xff Maria Gonzalez 219-09-9999");
    assert_eq!(post(ports.http, "/v1/logs", PROTO, &garbage), 400);
    let bad_json: &[&[u8]] = &[
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"Maria Gonzalez 219-09-9999"}]}]}]}"#,
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"Maria Gonzalez 219-09-9999"}"#,
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":"Maria Gonzalez 219-09-9999"}]}]}]}"#,
        br#"{"resourceLogs":[{"resource":{"attributes":[{"key":"owner","value":{"intValue":"Maria Gonzalez"}}]}}]}"#,
    ];
    for b in bad_json {
        assert_eq!(
            post(ports.http, "/v1/logs", JSON, b),
            400,
            "{}",
            String::from_utf8_lossy(b)
        );
    }
    // Unknown JSON fields are ignored (OTLP/JSON rules), whatever they hold.
    let unknown = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"Maria Gonzalez":"219-09-9999"}}]}]}]}"#;
    assert_eq!(post(ports.http, "/v1/logs", JSON, unknown), 200);
    assert_eq!(
        post(
            ports.http,
            "/v1/logs",
            "text/plain",
            b"patient Maria Gonzalez 219-09-9999"
        ),
        415
    );
    assert_eq!(
        post(
            ports.http,
            "/v1/patients/Maria-Gonzalez-219-09-9999",
            PROTO,
            b""
        ),
        404
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"Maria Gonzalez 219-09-9999 not protobuf")
        .unwrap();
    let gz = gz.finish().unwrap();
    let r = http_with(
        ports.http,
        "POST",
        "/v1/logs",
        &[("Content-Type", PROTO), ("Content-Encoding", "gzip")],
        &gz,
    )
    .unwrap();
    assert_eq!(r.0, 400);
    let r = http_with(
        ports.http,
        "POST",
        "/v1/logs",
        &[("Content-Type", PROTO), ("Content-Encoding", "gzip")],
        b"Maria Gonzalez 219-09-9999 not gzip",
    )
    .unwrap();
    assert_eq!(r.0, 400);

    // OTLP/gRPC: a good export and a malformed one, both with PHI.
    let good = rt.block_on(grpc_export(ports.grpc, &phi_logs(false).encode_to_vec()));
    assert_eq!(good.as_deref(), Some("0"));
    let bad = rt.block_on(grpc_export(ports.grpc, &garbage));
    assert_eq!(bad.as_deref(), Some("3"));
}

/// `scrubs run` at `level` through every source path and every vendor
/// answer; the log must carry none of the PHI.
fn run_paths_at(level: &str) {
    let t0 = Instant::now();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("scrubs-log-hygiene-{level}-{}", std::process::id());
    create_topic(&rt, &topic, 1);
    let (vendor, answer, requests) = start_vendor(&rt);
    let ports = Ports::new(vendor);
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let cfg = write_config(dir.path(), &logs, &bootstrap(), &topic, &ports);
    let mut scrubs = start_scrubs(&cfg, level);
    scrubs.wait_http(ports.admin, "/readyz");

    feed(&rt, &logs, &ports);
    wait_metric(
        &mut scrubs,
        ports.admin,
        r#"scrubs_vendor_records_total{vendor="test-vendor",signal="logs",result="sent"}"#,
        20,
    );

    // The vendor fails with the PHI echoed back: 500 (retried, then given
    // up), 400 (refused), partial success with a PHI error message.
    let echo = "invalid record: patient Maria Gonzalez ssn 219-09-9999 mrn 48291734";
    let dropped = |reason: &str| {
        format!(r#"scrubs_vendor_dropped_total{{vendor="test-vendor",reason="{reason}"}}"#)
    };
    for (a, series) in [
        (Answer::Status(500, echo.into()), dropped("retry_exhausted")),
        (Answer::Status(400, echo.into()), dropped("rejected_400")),
        (
            Answer::PartialSuccess(echo.into()),
            dropped("partial_rejected"),
        ),
    ] {
        *answer.lock().unwrap() = a;
        assert_eq!(
            post(
                ports.http,
                "/v1/logs",
                PROTO,
                &phi_logs(false).encode_to_vec()
            ),
            200
        );
        wait_metric(&mut scrubs, ports.admin, &series, 1);
    }
    *answer.lock().unwrap() = Answer::Ok;
    assert!(*requests.lock().unwrap() > 0);

    // SIGHUP with PHI in the wrong place of the new configuration: rejected
    // and logged, the value withheld.
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!("{good}limits:\n  max_record_bytes: \"Maria Gonzalez 219-09-9999\"\n"),
    )
    .unwrap();
    Command::new("kill")
        .args(["-HUP", &scrubs.child.id().to_string()])
        .status()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while !scrubs.log().contains("configuration rejected") {
        assert!(Instant::now() < end, "SIGHUP not logged: {}", scrubs.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(&cfg, good).unwrap();
    assert!(scrubs.alive());

    let (code, log) = scrubs.stop();
    assert_eq!(code, Some(0), "exit on SIGTERM");
    assert!(log.contains("vendor refused a batch"), "the 400 was logged");
    if level == "trace" {
        assert!(log.contains("TRACE"), "trace logging was on");
    }
    assert_clean(&format!("scrubs run at {level}"), &log);
    #[cfg(feature = "fault-injection")]
    {
        // The record whose redaction panicked: reported, not quoted.
        assert!(log.contains("panicked"), "the fault hook fired");
        assert!(!log.contains(FAULT_MARKER), "the marked record in the log");
    }
    eprintln!(
        "log hygiene (run, {level}): {:?}, {} bytes of log",
        t0.elapsed(),
        log.len()
    );
}

#[test]
fn run_at_trace_keeps_phi_out_of_the_log() {
    run_paths_at("trace");
}

#[test]
fn run_at_debug_keeps_phi_out_of_the_log() {
    run_paths_at("debug");
}

/// The audit path failing: a topic that does not exist, and a broker that
/// cannot be reached. Audit records (unredacted) wait in the spool; the log
/// says why without quoting them.
#[test]
fn kafka_failures_keep_phi_out_of_the_log() {
    let t0 = Instant::now();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (vendor, _answer, _requests) = start_vendor(&rt);
    let unreachable = format!("127.0.0.1:{}", free_port());
    let missing = format!("scrubs-log-hygiene-missing-{}", std::process::id());
    for (brokers, topic) in [(bootstrap(), missing.as_str()), (unreachable, "phi-audit")] {
        let dir = tempfile::tempdir().unwrap();
        let ports = Ports::new(vendor);
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let cfg = write_config(dir.path(), &logs, &brokers, topic, &ports);
        let mut scrubs = start_scrubs(&cfg, "debug");
        scrubs.wait_http(ports.admin, "/healthz");
        // Not ready (the audit sink is unhealthy): wait for the receiver.
        let end = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", ports.http)).is_err() {
            assert!(scrubs.alive(), "scrubs exited: {}", scrubs.log());
            assert!(Instant::now() < end, "the OTLP receiver never listened");
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut text = String::new();
        for i in 0..5 {
            text.push_str(&format!(
                r#"{{"audit":"true","patient_id":"p-{i}","patient_name":"Maria Gonzalez","ssn":"219-09-9999","mrn":"48291734"}}"#
            ));
            text.push('\n');
        }
        std::fs::write(logs.join("app.log"), text).unwrap();
        // An OTLP audit record: answered once durable (spooled).
        let code = post(
            ports.http,
            "/v1/logs",
            PROTO,
            &phi_logs(true).encode_to_vec(),
        );
        assert!(code == 200 || code == 503, "{code}");
        wait_metric(
            &mut scrubs,
            ports.admin,
            r#"scrubs_records_in_total{source="app"}"#,
            5,
        );
        // The audit records could not reach Kafka and were spooled.
        wait_metric(
            &mut scrubs,
            ports.admin,
            r#"scrubs_audit_events_total{result="spooled"}"#,
            1,
        );
        assert!(scrubs.alive());
        let (_, log) = scrubs.stop();
        assert!(
            log.contains("spooled locally"),
            "the failure was logged: {log}"
        );
        assert_clean(&format!("Kafka failure ({brokers} {topic})"), &log);
    }
    eprintln!("log hygiene (Kafka failures): {:?}", t0.elapsed());
}

/// Regression: `Scratch` derived `Debug` over its buffers, which hold the
/// raw line, URL-decoded values and the rewritten line, so a `{:?}` of it
/// in a log or a panic message would have printed event content.
#[test]
fn scratch_debug_shows_no_event_content() {
    let engine = scrubs::Engine::builtin().expect("the built-in pack compiles");
    let mut scratch = engine.scratch();
    let line = "GET /lookup?name=Maria%20Gonzalez&ssn=219-09-9999 patient Maria Gonzalez";
    let out = engine.redact_str(&mut scratch, line).into_owned();
    assert_ne!(
        out, line,
        "the line must have been redacted for the test to mean anything"
    );
    let shown = format!("{scratch:?}");
    for canary in ["Maria", "Gonzalez", "219-09-9999", "lookup", "REDACTED"] {
        assert!(
            !shown.contains(canary),
            "Scratch's Debug shows {canary:?}: {shown}"
        );
        // A byte buffer's derived Debug prints its bytes as numbers.
        let as_bytes = format!("{:?}", canary.as_bytes());
        let as_bytes = as_bytes.trim_matches(|c| c == '[' || c == ']');
        assert!(
            !shown.contains(as_bytes),
            "Scratch's Debug shows the bytes of {canary:?}: {shown}"
        );
    }
}
