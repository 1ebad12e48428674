//! Vendor allow-lists end to end (issue 10, "Defence in depth"): `scrubs
//! run` with two vendors, `acme` with an `allow` block and `full` without,
//! each a real OTLP/HTTP endpoint on 127.0.0.1 that decodes what it gets.
//!
//! * File tail: JSON, logfmt and free-text lines reach `acme` with only the
//!   listed keys' values and `[WITHHELD]` everywhere else (resource
//!   attributes included), reach `full` with every key, and
//!   `scrubs_vendor_values_withheld_total` counts exactly what was replaced.
//! * OTLP in: a logs request (resource, scope and record attributes, a map
//!   body, a JSON string body, a free-text body) and a traces request (span,
//!   event and link attributes).
//!
//! No Kafka needed: there is no audit fork.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tokio::runtime::Runtime;

use support::{free_port, http_get, kv, metric, post_proto, read_body, s, serve, wait_for, Scrubs};

const W: &str = "[WITHHELD]";

/// What one vendor received: each request's path and decompressed body.
type Requests = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// An OTLP/HTTP vendor that keeps every request and answers success.
fn vendor(rt: &Runtime) -> (u16, Requests) {
    let got: Requests = Arc::default();
    let store = got.clone();
    let port = serve(rt, move |req| {
        let store = store.clone();
        async move {
            let path = req.uri().path().to_string();
            let raw = read_body(req).await;
            let reply = if path == "/v1/traces" {
                ExportTraceServiceResponse::default().encode_to_vec()
            } else {
                ExportLogsServiceResponse::default().encode_to_vec()
            };
            store.lock().unwrap().push((path, raw));
            Response::new(Full::new(Bytes::from(reply)))
        }
    });
    (port, got)
}

fn logs_of(got: &Requests) -> Vec<ResourceLogs> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == "/v1/logs")
        .flat_map(|(_, raw)| {
            ExportLogsServiceRequest::decode(&raw[..])
                .unwrap()
                .resource_logs
        })
        .collect()
}

fn spans_of(got: &Requests) -> Vec<ResourceSpans> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == "/v1/traces")
        .flat_map(|(_, raw)| {
            ExportTraceServiceRequest::decode(&raw[..])
                .unwrap()
                .resource_spans
        })
        .collect()
}

fn records(rls: &[ResourceLogs]) -> Vec<LogRecord> {
    rls.iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| s.log_records.clone())
        .collect()
}

fn contains(got: &Requests, needle: &str) -> bool {
    let n = needle.as_bytes();
    got.lock()
        .unwrap()
        .iter()
        .any(|(_, r)| r.windows(n.len()).any(|w| w == n))
}

fn body_text(r: &LogRecord) -> String {
    match r.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        other => panic!("not a string body: {other:?}"),
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> &'a AnyValue {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .unwrap_or_else(|| panic!("no attribute {key}"))
}

fn int(n: i64) -> AnyValue {
    AnyValue {
        value: Some(Value::IntValue(n)),
    }
}

fn map(items: Vec<KeyValue>) -> AnyValue {
    AnyValue {
        value: Some(Value::KvlistValue(KeyValueList { values: items })),
    }
}

fn arr(items: Vec<AnyValue>) -> AnyValue {
    AnyValue {
        value: Some(Value::ArrayValue(ArrayValue { values: items })),
    }
}

struct Run {
    scrubs: Scrubs,
    admin: u16,
    http: u16,
    acme: Requests,
    full: Requests,
    logs: PathBuf,
}

/// Starts `scrubs run` with a file source on `dir/logs/*.log`, an OTLP
/// source, and the two vendors; `allow` is the body of acme's `allow:`.
fn start(rt: &Runtime, dir: &Path, allow: &str) -> Run {
    let (acme_port, acme) = vendor(rt);
    let (full_port, full) = vendor(rt);
    let (admin, http, grpc) = (free_port(), free_port(), free_port());
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let cfg = format!(
        r#"data_dir: {data}
sources:
  app:
    type: file
    include: ["{logs}/*.log"]
    poll_interval: 50ms
  otlp:
    type: otlp
    http: {{ address: "127.0.0.1:{http}" }}
    grpc: {{ address: "127.0.0.1:{grpc}" }}
resource:
  service.name: visit-api
vendors:
  - name: acme
    endpoint: http://127.0.0.1:{acme_port}
    baa_covered: true
    batch: {{ max_wait: 50ms }}
    allow:
{allow}
  - name: full
    endpoint: http://127.0.0.1:{full_port}
    baa_covered: true
    batch: {{ max_wait: 50ms }}
admin:
  address: "127.0.0.1:{admin}"
shutdown:
  drain_deadline: 10s
"#,
        data = dir.join("data").display(),
        logs = logs.display(),
    );
    let path = dir.join("scrubs.yaml");
    std::fs::write(&path, cfg).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scrubs"))
        .args(["validate", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "validate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut scrubs = Scrubs::start(&path, &[]);
    scrubs.wait_ready(admin);
    Run {
        scrubs,
        admin,
        http,
        acme,
        full,
        logs,
    }
}

fn withheld_series(signal: &str) -> String {
    format!(r#"scrubs_vendor_values_withheld_total{{vendor="acme",signal="{signal}"}}"#)
}

#[test]
fn file_tail_json_and_logfmt_lines_keep_only_allowed_keys() {
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = start(
        &rt,
        dir.path(),
        "      keys: [level, msg, duration_ms, http.status_code, service.name, scrubs.source]",
    );
    let json = r#"{"level":"info","msg":"visit joined","duration_ms":412,"patient":{"name":"Maria Gonzalez","ward":"east-4"},"http":{"status_code":200,"route":"/visits/77"}}"#;
    let logfmt = r#"level=warn msg="slow query" user=u_77 table=visits duration_ms=950"#;
    let text = "connection reset by peer";
    std::fs::write(
        run.logs.join("app.log"),
        format!("{json}\n{logfmt}\n{text}\n"),
    )
    .unwrap();

    wait_for("both vendors to get 3 records", 30, || {
        records(&logs_of(&run.acme)).len() >= 3 && records(&logs_of(&run.full)).len() >= 3
    });
    let acme = logs_of(&run.acme);
    let got: Vec<String> = records(&acme).iter().map(body_text).collect();
    assert_eq!(
        got,
        [
            r#"{"level":"info","msg":"visit joined","duration_ms":412,"patient":{"name":"[WITHHELD]","ward":"[WITHHELD]"},"http":{"status_code":200,"route":"[WITHHELD]"}}"#,
            r#"level=warn msg="slow query" user=[WITHHELD] table=[WITHHELD] duration_ms=950"#,
            W,
        ]
    );
    // Resource attributes are filtered by the same list: the configured
    // service.name and scrubs.source pass, the file path does not.
    for rl in &acme {
        let attrs = &rl.resource.as_ref().unwrap().attributes;
        assert_eq!(attr(attrs, "service.name"), &s("visit-api"));
        assert_eq!(attr(attrs, "scrubs.source"), &s("app"));
        assert_eq!(attr(attrs, "log.file.path"), &s(W));
    }
    for needle in [
        "Maria",
        "east-4",
        "/visits/77",
        "u_77",
        "visits ",
        "reset",
        "app.log",
    ] {
        assert!(!contains(&run.acme, needle), "{needle} reached acme");
    }

    // The vendor without a list gets every key, as the engine left it.
    let full = logs_of(&run.full);
    let bodies: Vec<String> = records(&full).iter().map(body_text).collect();
    assert!(bodies[0].contains(r#""ward":"east-4""#), "{}", bodies[0]);
    assert!(
        bodies[0].contains(r#""route":"/visits/77""#),
        "{}",
        bodies[0]
    );
    assert!(!bodies[0].contains("Maria Gonzalez"), "{}", bodies[0]);
    assert!(bodies[1].contains("table=visits"), "{}", bodies[1]);
    assert_eq!(bodies[2], text);
    assert!(!contains(&run.full, W));
    assert!(contains(&run.full, "app.log"));

    // Counted exactly: 3 in the JSON line, 2 in the logfmt line, the free
    // text line, and the file path of each resource sent.
    let want = 3 + 2 + 1 + acme.len() as u64;
    let m = http_get(run.admin, "/metrics").unwrap().1;
    assert_eq!(metric(&m, &withheld_series("logs")), want, "{m}");
    assert!(
        !m.contains(r#"scrubs_vendor_values_withheld_total{vendor="full""#),
        "{m}"
    );
    let (code, _) = run.scrubs.stop();
    assert_eq!(code, Some(0));
}

#[test]
fn otlp_logs_and_traces_keep_only_allowed_keys() {
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = start(
        &rt,
        dir.path(),
        "      keys: [service.name, level, msg, http.*]\n      unstructured: keep",
    );
    let resource = || {
        Some(Resource {
            attributes: vec![
                kv("service.name", s("checkout")),
                kv("host.name", s("node-17")),
            ],
            ..Default::default()
        })
    };
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "visits".into(),
                    attributes: vec![kv("lib.flag", s("blue-9"))],
                    ..Default::default()
                }),
                log_records: vec![
                    LogRecord {
                        body: Some(map(vec![
                            kv("level", s("error")),
                            kv("msg", s("payment failed")),
                            kv(
                                "patient",
                                map(vec![kv("mrn", s("48291734")), kv("ward", s("east-4"))]),
                            ),
                            kv("http", map(vec![kv("status_code", int(502))])),
                        ])),
                        attributes: vec![
                            kv("http.status_code", int(502)),
                            kv("user.id", s("u-19")),
                            kv("tags", arr(vec![s("tag-one"), s("tag-two")])),
                        ],
                        ..Default::default()
                    },
                    LogRecord {
                        body: Some(s(r#"{"level":"info","hint":"see runbook"}"#)),
                        ..Default::default()
                    },
                    LogRecord {
                        body: Some(s("cache warmed")),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let traces = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    name: "GET /visits".into(),
                    attributes: vec![
                        kv("http.method", s("GET")),
                        kv("db.statement", s("select * from visits")),
                    ],
                    events: vec![span::Event {
                        name: "retry".into(),
                        attributes: vec![kv("attempt", int(2))],
                        ..Default::default()
                    }],
                    links: vec![span::Link {
                        trace_id: vec![3; 16],
                        span_id: vec![4; 8],
                        attributes: vec![kv("link.kind", s("follows-7"))],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    assert_eq!(
        post_proto(run.http, "/v1/logs", &logs.encode_to_vec()).0,
        200
    );
    assert_eq!(
        post_proto(run.http, "/v1/traces", &traces.encode_to_vec()).0,
        200
    );
    wait_for("both vendors to get logs and spans", 30, || {
        [&run.acme, &run.full]
            .iter()
            .all(|v| records(&logs_of(v)).len() >= 3 && !spans_of(v).is_empty())
    });

    let acme = logs_of(&run.acme);
    assert_eq!(acme.len(), 1);
    let rl = &acme[0];
    assert_eq!(
        rl.resource.as_ref().unwrap().attributes,
        vec![kv("service.name", s("checkout")), kv("host.name", s(W))]
    );
    let sl = &rl.scope_logs[0];
    assert_eq!(sl.scope.as_ref().unwrap().name, "visits");
    assert_eq!(
        sl.scope.as_ref().unwrap().attributes,
        vec![kv("lib.flag", s(W))]
    );
    let r = &sl.log_records;
    assert_eq!(
        r[0].body,
        Some(map(vec![
            kv("level", s("error")),
            kv("msg", s("payment failed")),
            kv("patient", map(vec![kv("mrn", s(W)), kv("ward", s(W))])),
            kv("http", map(vec![kv("status_code", int(502))])),
        ]))
    );
    assert_eq!(
        r[0].attributes,
        vec![
            kv("http.status_code", int(502)),
            kv("user.id", s(W)),
            kv("tags", arr(vec![s(W), s(W)])),
        ]
    );
    assert_eq!(body_text(&r[1]), r#"{"level":"info","hint":"[WITHHELD]"}"#);
    // unstructured: keep
    assert_eq!(body_text(&r[2]), "cache warmed");

    let spans = spans_of(&run.acme);
    assert_eq!(
        spans[0].resource.as_ref().unwrap().attributes,
        vec![kv("service.name", s("checkout")), kv("host.name", s(W))]
    );
    let sp = &spans[0].scope_spans[0].spans[0];
    assert_eq!(sp.name, "GET /visits");
    assert_eq!(
        sp.attributes,
        vec![kv("http.method", s("GET")), kv("db.statement", s(W))]
    );
    assert_eq!(sp.events[0].attributes, vec![kv("attempt", s(W))]);
    assert_eq!(sp.links[0].attributes, vec![kv("link.kind", s(W))]);
    for needle in [
        "node-17",
        "blue-9",
        "east-4",
        "u-19",
        "tag-one",
        "see runbook",
        "select",
        "follows-7",
    ] {
        assert!(!contains(&run.acme, needle), "{needle} reached acme");
    }

    // The vendor without a list gets them all.
    for needle in [
        "node-17",
        "blue-9",
        "east-4",
        "u-19",
        "tag-one",
        "see runbook",
        "select",
        "follows-7",
    ] {
        assert!(contains(&run.full, needle), "{needle} missing at full");
    }
    assert!(!contains(&run.full, W));

    // Logs: host.name, lib.flag, mrn, ward, user.id, two tags, hint = 8.
    // Traces: host.name, db.statement, attempt, link.kind = 4.
    let m = http_get(run.admin, "/metrics").unwrap().1;
    assert_eq!(metric(&m, &withheld_series("logs")), 8, "{m}");
    assert_eq!(metric(&m, &withheld_series("traces")), 4, "{m}");
    assert_eq!(metric(&m, &withheld_series("metrics")), 0, "{m}");
    let (code, _) = run.scrubs.stop();
    assert_eq!(code, Some(0));
}

#[test]
fn validate_names_a_bad_allow_block_by_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scrubs.yaml");
    std::fs::write(
        &path,
        format!(
            r#"data_dir: {}
sources:
  app: {{ type: stdin }}
vendors:
  - name: acme
    endpoint: http://127.0.0.1:4318
    baa_covered: true
    allow: {{ keys: [] }}
  - name: other
    endpoint: http://127.0.0.1:4318
    baa_covered: true
    allow: {{ keys: [level, "http*"] }}
"#,
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scrubs"))
        .args([
            "validate",
            "--no-environment",
            "--config",
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("vendors[0].allow.keys: empty"), "{err}");
    assert!(err.contains("vendors[1].allow.keys[1]: bad glob"), "{err}");
}
