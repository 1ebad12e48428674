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

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use support::{
    bootstrap, create_topic, phi_line, post_proto, s, start_vendor, wait_for, Audit, Ports,
    Received, Scrubs, Sidecar, CANARIES,
};

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

fn write_config(dir: &Path, logs: &Path, topic: &str, p: &Ports) -> PathBuf {
    Sidecar {
        include: format!("{}/*.log", logs.display()),
        file: &["max_line_bytes: 128KiB"],
        otlp: Some(&[]),
        audit: Some(Audit {
            brokers: bootstrap(),
            topic,
            kafka: &["check_topic_config: false"],
        }),
        ..Sidecar::default()
    }
    .write(dir, p)
}

/// One `scrubs run` on the configuration above, ready, with its vendor and
/// its audit topic. Fields drop in order: the process goes before the
/// runtime that serves its vendor and before its directory.
struct Launched {
    scrubs: Scrubs,
    got: Arc<Mutex<Received>>,
    ports: Ports,
    /// Read by the fault-injection test only.
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    topic: String,
    /// The (empty) log file the file source tails.
    log: PathBuf,
    _dir: tempfile::TempDir,
    _rt: tokio::runtime::Runtime,
}

/// Starts `scrubs run` with `env` on a new topic named after `name`, and
/// waits until it is ready.
fn launch(name: &str, env: &[(&str, &str)]) -> Launched {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("{name}-{}", std::process::id());
    create_topic(&rt, &topic, 1);
    let (vendor, got) = start_vendor(&rt);
    let ports = Ports::new(vendor);
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join("app.log");
    std::fs::write(&log, "").unwrap();
    let cfg = write_config(dir.path(), &logs, &topic, &ports);
    let mut scrubs = Scrubs::start(&cfg, env);
    scrubs.wait_ready(ports.admin);
    Launched {
        scrubs,
        got,
        ports,
        topic,
        log,
        _dir: dir,
        _rt: rt,
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
    let Launched {
        _rt,
        _dir,
        log,
        ports,
        got,
        mut scrubs,
        ..
    } = launch("scrubs-fail-closed-limits", &[]);

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
        // The long line was cut (and says so), not forwarded whole.
        let cut = g
            .bodies
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
    use crate::support::{audit_messages, http_get, kv, metric, phi_attrs};
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
    use opentelemetry_proto::tonic::collector::metrics::v1::{
        ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use opentelemetry_proto::tonic::common::v1::KeyValueList;
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };
    use opentelemetry_proto::tonic::trace::v1::Span;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    fn log_record(body: &str, attrs: Vec<KeyValue>) -> LogRecord {
        LogRecord {
            time_unix_nano: 1_700_000_000_000_000_000,
            body: Some(s(body)),
            attributes: attrs,
            ..Default::default()
        }
    }

    /// The marker that makes redaction panic (test-only hook).
    const MARKER: &str = "ZZFAULT91";

    fn has_marker(b: &[u8]) -> bool {
        b.windows(MARKER.len()).any(|w| w == MARKER.as_bytes())
    }

    #[test]
    fn a_panic_inside_redaction_drops_the_record_and_nothing_raw_leaves() {
        let t0 = Instant::now();
        let Launched {
            _rt,
            _dir,
            log,
            topic,
            ports,
            got,
            mut scrubs,
        } = launch(
            "scrubs-fail-closed",
            &[("SCRUBS_FAULT_REDACT_PANIC", MARKER)],
        );

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
            scrubs.log()
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
            audit = audit_messages(&topic, Duration::from_secs(5))
                .into_iter()
                .filter_map(|m| m.payload)
                .map(|p| serde_json::from_slice::<serde_json::Value>(&p).expect("audit JSON"))
                .collect();
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
