//! Visit signals through `scrubs run` (issue 13, items 1–3): a synthetic
//! visit day (3,000 visits) written as container-runtime (CRI) lines to a tailed file and
//! sent as OTLP logs, the telehealth preset mapped to this service's field
//! names, and the derived metrics checked on `/metrics` (exact funnel and
//! connect counts, time-to-connect buckets equal to those computed from the
//! input, a failed crisis hand-off) and in the OTLP metrics export a vendor
//! receives; canaries placed in a label field never reach either.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;
use support::{
    append_lines, http_get, kv, post_proto, s, start_vendor, wait_for, Ports, Scrubs, Sidecar,
};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

const VISITS: u64 = 3000;
/// Seconds from connect attempt to connected, by visit (every tenth visit
/// never connects).
const DELAYS: [f64; 4] = [0.3, 1.5, 4.0, 6.0];
const BUCKETS: [f64; 8] = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0];
const CANARIES: [&str; 3] = [
    "Maria Gonzalez",
    "219-09-9999",
    "maria.gonzalez@example.com",
];

fn connects(v: u64) -> bool {
    !v.is_multiple_of(10)
}

fn delay(v: u64) -> f64 {
    DELAYS[(v % 4) as usize]
}

/// The platform a visit's client runs on; a few carry patient data in
/// that field instead (a logging bug the label check must absorb).
fn platform(v: u64) -> &'static str {
    match v % 50 {
        7 => CANARIES[0],
        17 => CANARIES[1],
        27 => CANARIES[2],
        _ => ["ios", "android", "web"][(v % 3) as usize],
    }
}

/// Unix nanoseconds as RFC 3339 with nanoseconds, by `date` (not scrubs'
/// own formatter), once per second of the day's short span.
fn rfc3339(nanos: u64, cache: &mut std::collections::HashMap<u64, String>) -> String {
    let secs = nanos / 1_000_000_000;
    let whole = cache.entry(secs).or_insert_with(|| {
        let o = std::process::Command::new("date")
            .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%S"])
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    });
    format!("{whole}.{:09}Z", nanos % 1_000_000_000)
}

/// The sum of every series of `name` (any labels) in a Prometheus text.
fn total(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The sum over labels of the `le` bucket of a histogram.
fn bucket(text: &str, name: &str, le: f64) -> u64 {
    let tag = format!("le=\"{le}\"");
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket{{")) && l.contains(&tag))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_visit_day_becomes_exact_signals_without_phi() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (vendor, got) = start_vendor(&rt);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("visit-api.log");
    let ports = Ports::new(vendor);
    let cfg = Sidecar {
        include: log.display().to_string(),
        file: &["format: cri"],
        otlp: Some(&[]),
        extra: "signals:\n  preset: telehealth\n  fields: { event: evt, visit_id: consult_id, platform: client }\n  tuning: { connect_timeout: 8s }\n  export_interval: 1s\n",
        ..Sidecar::default()
    }
    .write(dir.path(), &ports);
    let mut scrubs = Scrubs::start(&cfg, &[]);
    scrubs.wait_ready(ports.admin);

    // Times from now on, so that only a visit that never connects outlives
    // the connect timeout.
    let t0 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut lines = Vec::new();
    let mut seconds = std::collections::HashMap::new();
    let mut line =
        |t: u64, json: String| lines.push(format!("{} stdout F {json}", rfc3339(t, &mut seconds)));
    for v in 0..VISITS {
        let at = t0 + v * 100_000;
        let id = format!("c-{v:05}");
        let p = platform(v);
        for evt in ["scheduled", "checked_in", "waiting_room"] {
            line(at, format!(r#"{{"evt":"{evt}","consult_id":"{id}"}}"#));
        }
        line(
            at,
            format!(r#"{{"evt":"connect_attempt","consult_id":"{id}","client":"{p}"}}"#),
        );
        if connects(v) {
            let end = at + (delay(v) * 1e9) as u64;
            line(
                end,
                format!(r#"{{"evt":"connected","consult_id":"{id}","client":"{p}"}}"#),
            );
            if v % 25 == 1 {
                line(
                    end + 1_000,
                    format!(r#"{{"evt":"call_dropped","consult_id":"{id}","client":"{p}"}}"#),
                );
            }
        }
    }
    // Lines no signal wants, between them.
    line(t0, r#"{"level":"info","msg":"GET /health 200"}"#.into());
    append_lines(&log, &lines);

    // A failed crisis hand-off and two completions, over OTLP.
    let record = |evt: &str, id: &str| LogRecord {
        time_unix_nano: t0,
        body: Some(s("visit event")),
        attributes: vec![kv("evt", s(evt)), kv("consult_id", s(id))],
        ..Default::default()
    };
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    record("crisis_handoff_failed", "c-crisis"),
                    record("completed", "c-00001"),
                    record("completed", "c-00002"),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let (status, _) = post_proto(ports.http, "/v1/logs", &req.encode_to_vec());
    assert_eq!(status, 200);

    let metrics = || {
        http_get(ports.admin, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    };
    let connected = VISITS - VISITS / 10;
    wait_for("the connect timeouts (8 s) and every count", 30, || {
        let m = metrics();
        total(&m, "telehealth_connect_failures_total") == VISITS / 10
            && total(&m, "telehealth_connect_successes_total") == connected
    });
    let m = metrics();
    for stage in ["scheduled", "checked_in", "waiting_room"] {
        assert_eq!(
            total(&m, &format!("telehealth_funnel_{stage}_total")),
            VISITS,
            "{stage}"
        );
    }
    assert_eq!(total(&m, "telehealth_funnel_connected_total"), connected);
    assert_eq!(total(&m, "telehealth_funnel_completed_total"), 2);
    assert_eq!(total(&m, "telehealth_connect_attempts_total"), VISITS);
    let drops = (0..VISITS).filter(|v| connects(*v) && v % 25 == 1).count() as u64;
    assert_eq!(total(&m, "telehealth_call_drops_total"), drops);
    assert_eq!(total(&m, "telehealth_crisis_handoff_failed_total"), 1);
    // The histogram, bucket by bucket, against the input.
    for le in BUCKETS {
        let want = (0..VISITS)
            .filter(|v| connects(*v) && delay(*v) <= le)
            .count() as u64;
        assert_eq!(
            bucket(&m, "telehealth_time_to_connect_seconds", le),
            want,
            "le {le}"
        );
    }
    // Canaries in the label field became `other`, counted; none is shown.
    assert!(total(&m, "scrubs_signal_label_rejected_total") > 0, "{m}");
    for c in CANARIES {
        assert!(!m.contains(c), "{c} on /metrics");
    }

    // The export reaches the vendor as OTLP metrics, without a canary.
    wait_for("the signals' OTLP export at the vendor", 15, || {
        got.lock()
            .unwrap()
            .contains("telehealth_connect_attempts_total")
    });
    let (code, log_text) = scrubs.stop();
    assert_eq!(code, Some(0), "{log_text}");
    let got = got.lock().unwrap();
    for c in CANARIES {
        assert!(!got.contains(c), "{c} reached the vendor");
        assert!(!log_text.contains(c), "{c} in scrubs' own log");
    }
}
