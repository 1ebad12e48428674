//! The probes and the drain, against a running `scrubs run`:
//!
//! * with the vendor and Kafka both unreachable, `/readyz` answers 200 (a
//!   vendor outage must not take the pod out of service; the audit path
//!   accepts through the spool) and `/healthz` stays 200 while the vendor
//!   lane waits for the vendor longer than the stall timeout; SIGTERM then
//!   ends the process within `shutdown.drain_deadline` plus a small slack,
//!   with exit code 0 and what could not be sent counted in the log;
//! * a pipeline that stops making progress (redaction hangs, through the
//!   `fault-injection` hook `SCRUBS_FAULT_REDACT_STALL`) turns `/healthz`
//!   to 503 while `/readyz` stays 200.
//!
//! The stall test needs `cargo test --features fault-injection --test probes`
//! (scripts/test.sh runs it so).

mod support;

use std::time::{Duration, Instant};

use support::{append_lines, free_port, http_get, metric, wait_for, Audit, Ports, Scrubs, Sidecar};

fn metrics(admin: u16) -> String {
    http_get(admin, "/metrics").map(|r| r.1).unwrap_or_default()
}

#[test]
fn vendor_and_kafka_down_ready_alive_and_drained_within_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    // Nothing listens on either port.
    let ports = Ports::new(free_port());
    let cfg = Sidecar {
        include: log.display().to_string(),
        audit: Some(Audit {
            brokers: format!("127.0.0.1:{}", free_port()),
            topic: "scrubs-probes",
            kafka: &["check_topic_config: false", "delivery_timeout: 1s"],
        }),
        // Continues the `admin` section, which `extra` follows.
        extra: "  stall_timeout: 2s\n",
        drain_deadline: "6s",
        ..Sidecar::default()
    }
    .write(dir.path(), &ports);
    let t0 = Instant::now();
    let mut scrubs = Scrubs::start(&cfg, &[]);
    scrubs.wait_ready(ports.admin);
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "ready took {:?} with the vendor and Kafka down",
        t0.elapsed()
    );

    let lines: Vec<String> = (0..40)
        .map(|i| {
            if i % 4 == 0 {
                format!(r#"{{"audit":"true","patient_id":"p-{i}","action":"chart.view"}}"#)
            } else {
                format!("level=info msg=\"visit connected\" i={i}")
            }
        })
        .collect();
    append_lines(&log, &lines);
    wait_for("audit events in the spool", 60, || {
        metric(&metrics(ports.admin), "scrubs_audit_spool_bytes") > 0
    });
    // The vendor lane now waits for a vendor that never answers, longer
    // than the stall timeout: that is not a stall, and not unreadiness.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(http_get(ports.admin, "/readyz").unwrap().0, 200);
    let (code, body) = http_get(ports.admin, "/healthz").unwrap();
    assert_eq!(code, 200, "{body}");

    let t = Instant::now();
    let (code, log) = scrubs.stop();
    let took = t.elapsed();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        took < Duration::from_millis(6_000 + 1_500),
        "SIGTERM took {took:?} with a 6 s drain deadline"
    );
    let summary = log
        .lines()
        .find(|l| l.contains("stopped with data not delivered"))
        .unwrap_or_else(|| panic!("no drain summary in the log:\n{log}"));
    assert!(summary.contains("\"in_time\":true"), "{summary}");
    let spool: u64 = summary
        .split("\"audit_spool_bytes\":")
        .nth(1)
        .and_then(|r| r.split([',', '}']).next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(spool > 0, "{summary}");
    let file: u64 = summary
        .split("\"file_bytes_not_delivered\":")
        .nth(1)
        .and_then(|r| r.split([',', '}']).next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        file > 0,
        "the vendor lane's lines are undelivered: {summary}"
    );
    eprintln!("SIGTERM to exit: {took:?}; {summary}");
}

#[cfg(feature = "fault-injection")]
#[test]
fn a_stalled_pipeline_fails_healthz_but_not_readyz() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (vendor, received) = support::start_vendor(&rt);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let ports = Ports::new(vendor);
    let cfg = Sidecar {
        include: log.display().to_string(),
        extra: "  stall_timeout: 2s\n",
        ..Sidecar::default()
    }
    .write(dir.path(), &ports);
    let mut scrubs = Scrubs::start(&cfg, &[("SCRUBS_FAULT_REDACT_STALL", "HANG-HERE")]);
    scrubs.wait_ready(ports.admin);
    append_lines(&log, ["first line"]);
    wait_for("the first line at the vendor", 60, || {
        received.lock().unwrap().logs.len() == 1
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(http_get(ports.admin, "/healthz").unwrap().0, 200, "idle");

    append_lines(&log, ["this line HANG-HERE never finishes"]);
    let t = Instant::now();
    wait_for("/healthz to fail", 30, || {
        http_get(ports.admin, "/healthz").is_some_and(|r| r.0 == 503)
    });
    let took = t.elapsed();
    assert!(took >= Duration::from_secs(2), "{took:?}");
    let (_, body) = http_get(ports.admin, "/healthz").unwrap();
    assert!(body.starts_with("unhealthy: no progress"), "{body}");
    assert!(!body.contains("HANG-HERE"));
    // Readiness is about the sources and the audit path, not liveness.
    assert_eq!(http_get(ports.admin, "/readyz").unwrap().0, 200);
    assert!(scrubs.alive());
}
