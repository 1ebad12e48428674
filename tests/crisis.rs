//! The crisis lane (issue 13, item 4): records of a crisis hand-off are
//! never shed. With the vendor down long enough that the file lane skips
//! its lines (`lag_limit.max_failing`), ordinary lines are skipped and
//! counted, and the crisis lines still reach the vendor, redacted, once it
//! answers again; every crisis line is in the audit topic, unredacted,
//! although the audit selector does not select it; and they are counted on
//! their own.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use support::{
    append_lines, audit_messages, bootstrap, create_topic, http_get, metric, slow_vendor,
    unique_topic, wait_for, Audit, Ports, Scrubs, Sidecar,
};

const CRISES: usize = 5;

fn ordinary(i: usize) -> String {
    format!(r#"{{"evt":"page_view","path":"/home","i":{i}}}"#)
}

/// A crisis line: a 988 hand-off (the last one failed), with a patient's
/// name that must not reach the vendor.
fn crisis(i: usize) -> String {
    let evt = if i + 1 == CRISES {
        "crisis_handoff_failed"
    } else {
        "crisis_988_handoff"
    };
    format!(
        r#"{{"evt":"{evt}","consult_id":"c-{i}","patient_name":"Maria Gonzalez","crisis_n":{i}}}"#
    )
}

#[test]
fn crisis_records_are_delivered_and_audited_while_the_lane_skips() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let topic = unique_topic("crisis");
    create_topic(&rt, &topic, 1);
    let vendor = slow_vendor(&rt, Duration::from_millis(10));
    vendor.down.store(true, Ordering::Relaxed);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let ports = Ports::new(vendor.port);
    let cfg = Sidecar {
        include: log.display().to_string(),
        audit: Some(Audit {
            brokers: bootstrap(),
            topic: &topic,
            kafka: &["check_topic_config: false"],
        }),
        vendor: &[
            "retry: { initial_backoff: 50ms, max_backoff: 200ms, max_elapsed: 1s }",
            "lag_limit: { max_failing: 1s }",
        ],
        extra: "signals:\n  preset: telehealth\n  fields: { event: evt, visit_id: consult_id }\n  export_interval: 0s\n",
        ..Sidecar::default()
    }
    .write(dir.path(), &ports);
    let mut scrubs = Scrubs::start(&cfg, &[]);
    scrubs.wait_ready(ports.admin);
    let metrics = || {
        http_get(ports.admin, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    };
    let skipped = |m: &str| {
        metric(
            m,
            r#"scrubs_vendor_dropped_total{vendor="test-vendor",reason="vendor_lag_limit"}"#,
        )
    };

    // The vendor fails past max_failing: the lane starts skipping.
    let mut i = 0;
    wait_for("the lane to skip for the failing vendor", 30, || {
        append_lines(&log, (i..i + 20).map(ordinary));
        i += 20;
        std::thread::sleep(Duration::from_millis(200));
        skipped(&metrics()) > 0
    });
    // Crisis lines among ordinary ones, while it skips.
    let mut lines: Vec<String> = Vec::new();
    for c in 0..CRISES {
        lines.extend((i..i + 10).map(ordinary));
        i += 10;
        lines.push(crisis(c));
    }
    append_lines(&log, &lines);
    wait_for("the crisis lines to be read", 20, || {
        metric(&metrics(), r#"scrubs_crisis_records_total{source="app"}"#) == CRISES as u64
    });
    // The lane skips through them (it catches up without the vendor): the
    // crisis records are queued for the vendor all the same.
    wait_for("the lane to skip through the crisis lines", 20, || {
        let m = metrics();
        metric(
            &m,
            r#"scrubs_vendor_lag_bytes{source="app",vendor="test-vendor"}"#,
        ) == 0
            && metric(
                &m,
                r#"scrubs_vendor_crisis_records_total{vendor="test-vendor"}"#,
            ) == CRISES as u64
    });
    let first_ordinary_with_crises = i - 10 * CRISES;

    // The vendor answers again: the crisis records it was sent arrive.
    vendor.down.store(false, Ordering::Relaxed);
    wait_for("every crisis record at the vendor", 60, || {
        let got = vendor.got.lock().unwrap();
        (0..CRISES).all(|c| {
            got.bodies
                .iter()
                .any(|b| b.contains(&format!("\"crisis_n\":{c}")))
        })
    });
    let m = metrics();
    assert_eq!(
        metric(
            &m,
            r#"scrubs_vendor_crisis_records_total{vendor="test-vendor"}"#
        ),
        CRISES as u64
    );
    assert_eq!(
        metric(&m, "telehealth_crisis_handoff_failed_total"),
        1,
        "{m}"
    );
    // The ordinary lines around them were skipped, not delivered.
    {
        let got = vendor.got.lock().unwrap();
        for n in first_ordinary_with_crises..i {
            assert!(
                !got.bodies
                    .iter()
                    .any(|b| b.contains(&format!("\"i\":{n}}}"))),
                "ordinary line {n} was delivered although the lane skipped"
            );
        }
    }
    let (code, log_text) = scrubs.stop();
    assert_eq!(code, Some(0), "{log_text}");
    {
        let got = vendor.got.lock().unwrap();
        assert!(
            !got.contains("Maria Gonzalez"),
            "a crisis record left unredacted"
        );
    }

    // Audited in full: every crisis line, raw, although `audit: "true"`
    // (the test selector) is not on them.
    let audited: Vec<String> = audit_messages(&topic, Duration::from_secs(5))
        .into_iter()
        .filter_map(|m| m.payload)
        .map(|p| String::from_utf8(p).unwrap())
        .collect();
    for c in 0..CRISES {
        assert!(
            audited
                .iter()
                .any(|a| a.contains(&format!("\\\"crisis_n\\\":{c}"))
                    && a.contains("Maria Gonzalez")),
            "crisis line {c} not audited in full"
        );
    }
}

/// Over OTLP: a crisis record in an admitted request is marked, audited in
/// full although no audit attribute selects it, and reaches a vendor that
/// was down for three times `retry.max_elapsed` when it came.
#[test]
fn an_otlp_crisis_record_outlives_the_retry_budget_and_is_audited() {
    use prost::Message;
    use support::post_proto;

    let rt = tokio::runtime::Runtime::new().unwrap();
    let topic = unique_topic("crisis-otlp");
    create_topic(&rt, &topic, 1);
    let vendor = slow_vendor(&rt, Duration::from_millis(10));
    vendor.down.store(true, Ordering::Relaxed);
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::new(vendor.port);
    let cfg = Sidecar {
        include: dir.path().join("none.log").display().to_string(),
        otlp: Some(&[]),
        audit: Some(Audit {
            brokers: bootstrap(),
            topic: &topic,
            kafka: &["check_topic_config: false"],
        }),
        vendor: &["retry: { initial_backoff: 50ms, max_backoff: 200ms, max_elapsed: 1s }"],
        extra: "signals:\n  preset: telehealth\n  fields: { event: evt, visit_id: consult_id }\n  export_interval: 0s\n",
        ..Sidecar::default()
    }
    .write(dir.path(), &ports);
    let mut scrubs = Scrubs::start(&cfg, &[]);
    scrubs.wait_ready(ports.admin);

    let req = otlp_request(&[("page_view", 1), ("crisis_escalation", 2), ("page_view", 3)]);
    let (status, _) = post_proto(ports.http, "/v1/logs", &req.encode_to_vec());
    assert_eq!(status, 200);
    let metrics = || {
        http_get(ports.admin, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    };
    // Down for three times the retry budget.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        metric(
            &metrics(),
            r#"scrubs_vendor_crisis_records_total{vendor="test-vendor"}"#
        ) == 1
    );
    vendor.down.store(false, Ordering::Relaxed);
    wait_for("the crisis record at the vendor", 20, || {
        let got = vendor.got.lock().unwrap();
        got.logs
            .iter()
            .any(|l| l.attributes.iter().any(|a| a.key == "scrubs.crisis"))
    });
    let m = metrics();
    assert_eq!(
        metric(&m, r#"scrubs_crisis_records_total{source="otlp"}"#),
        1
    );
    let (code, log_text) = scrubs.stop();
    assert_eq!(code, Some(0), "{log_text}");
    {
        let got = vendor.got.lock().unwrap();
        // Records merged into the crisis record's request ride along with
        // it; none is there twice.
        assert!(got.logs.len() <= 3, "{}", got.logs.len());
        assert!(!got.contains("Maria Gonzalez"));
    }
    let audited: Vec<String> = audit_messages(&topic, Duration::from_secs(5))
        .into_iter()
        .filter_map(|m| m.payload)
        .map(|p| String::from_utf8(p).unwrap())
        .collect();
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert!(audited[0].contains("crisis_escalation") && audited[0].contains("Maria Gonzalez"));
}

/// An OTLP logs request of one record per `(event, n)`, each with a body
/// naming a patient and the visit key `consult_id`.
fn otlp_request(
    records: &[(&str, i64)],
) -> opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use support::{kv, s};

    let record = |&(evt, n): &(&str, i64)| LogRecord {
        body: Some(s("visit event for Maria Gonzalez")),
        attributes: vec![
            kv("evt", s(evt)),
            kv("consult_id", s("c-1")),
            kv(
                "n",
                AnyValue {
                    value: Some(Value::IntValue(n)),
                },
            ),
        ],
        ..Default::default()
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: records.iter().map(record).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A vendor that is down fills its queue past half, and scrubs asks OTLP
/// clients to wait (429). A request carrying a crisis record was refused
/// with the rest until this was fixed, and a client that gives up after a
/// few 429s would have lost it; now it is admitted (counted), while an
/// ordinary request is still refused, and its crisis record reaches the
/// vendor once the vendor answers.
#[test]
fn an_otlp_request_with_a_crisis_record_is_admitted_while_the_vendor_is_congested() {
    use prost::Message;
    use support::post_proto;

    let rt = tokio::runtime::Runtime::new().unwrap();
    let vendor = slow_vendor(&rt, Duration::from_millis(10));
    vendor.down.store(true, Ordering::Relaxed);
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::new(vendor.port);
    let cfg = Sidecar {
        include: dir.path().join("none.log").display().to_string(),
        otlp: Some(&[]),
        vendor: &[
            "queue: { max_batches: 4 }",
            "retry: { initial_backoff: 50ms, max_backoff: 200ms, max_elapsed: 60s }",
        ],
        extra: "signals:\n  preset: telehealth\n  fields: { event: evt, visit_id: consult_id }\n  export_interval: 0s\n",
        ..Sidecar::default()
    }
    .write(dir.path(), &ports);
    let mut scrubs = Scrubs::start(&cfg, &[]);
    scrubs.wait_ready(ports.admin);
    let send = |records: &[(&str, i64)]| {
        post_proto(
            ports.http,
            "/v1/logs",
            &otlp_request(records).encode_to_vec(),
        )
        .0
    };

    // Ordinary requests, each its own batch, until the queue is over half
    // full and the vendor congested.
    let mut refused = false;
    for n in 0..200 {
        let status = send(&[("page_view", n)]);
        if status == 429 {
            refused = true;
            break;
        }
        assert_eq!(status, 200);
        std::thread::sleep(Duration::from_millis(80));
    }
    assert!(refused, "the vendor never became congested");
    assert_eq!(
        send(&[("page_view", 1000), ("crisis_988_handoff", 1001)]),
        200
    );
    assert_eq!(send(&[("page_view", 1002)]), 429);
    let metrics = || {
        http_get(ports.admin, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    };
    let m = metrics();
    assert_eq!(
        metric(
            &m,
            r#"scrubs_otlp_crisis_admitted_total{reason="vendor_backpressure"}"#
        ),
        1
    );
    assert_eq!(
        metric(&m, r#"scrubs_crisis_records_total{source="otlp"}"#),
        1
    );

    vendor.down.store(false, Ordering::Relaxed);
    wait_for("the crisis record at the vendor", 30, || {
        let got = vendor.got.lock().unwrap();
        got.logs.iter().any(|l| {
            use opentelemetry_proto::tonic::common::v1::any_value::Value;
            let has = |key: &str, want: &dyn Fn(&Option<Value>) -> bool| {
                l.attributes
                    .iter()
                    .any(|a| a.key == key && want(&a.value.as_ref().and_then(|v| v.value.clone())))
            };
            has("scrubs.crisis", &|_| true) && has("n", &|v| *v == Some(Value::IntValue(1001)))
        })
    });
    let (code, log_text) = scrubs.stop();
    assert_eq!(code, Some(0), "{log_text}");
    assert!(!vendor.got.lock().unwrap().contains("Maria Gonzalez"));
}
