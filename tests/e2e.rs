//! End to end: `scrubs run` tails a log file that receives PHI-bearing lines
//! and audit lines and is rotated; the audit lines must arrive in a real
//! Kafka topic exactly once, unredacted, in order per key, with a valid hash
//! chain; the vendor (a real OTLP/HTTP endpoint decoding protobuf) must
//! receive every line, redacted, and nothing raw. A vendor without the BAA
//! flag is refused at validation.
//!
//! Needs the dev broker: `deploy/dev/kafka.sh start` (scripts/test.sh does it).

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use scrubs::sinks::audit::verify::verify;
use support::{
    audit_messages, bootstrap, create_topic, http_get, start_vendor, Audit, Ports, Scrubs, Sidecar,
};

fn write_config(dir: &Path, log: &Path, topic: &str, p: &Ports) -> PathBuf {
    Sidecar {
        include: log.display().to_string(),
        file: &["rotate_wait: 2s"],
        audit: Some(Audit {
            brokers: bootstrap(),
            topic,
            kafka: &["check_topic_config: false"],
        }),
        ..Sidecar::default()
    }
    .write(dir, p)
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
    create_topic(&rt, &topic, 3);
    let (vendor, received) = start_vendor(&rt);
    let ports = Ports::new(vendor);
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let cfg = write_config(dir.path(), &log, &topic, &ports);
    let mut scrubs = Scrubs::start(&cfg, &[]);

    // Wait until scrubs is ready (sources open, sinks healthy): a file
    // renamed out of the glob before scrubs ever saw it cannot be tailed.
    scrubs.wait_ready(ports.admin);

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
    while received.lock().unwrap().bodies.len() < N && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }

    // /metrics answers and counts what was read. The audit lane counts the
    // source's records at its own pace (it may be behind the vendor's lane
    // while the producer connects: readiness does not wait for Kafka).
    let deadline = Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        let metrics = http_get(ports.admin, "/metrics")
            .expect("admin endpoint answers")
            .1;
        if metrics.contains("scrubs_records_in_total{source=\"app\"} 400")
            || Instant::now() > deadline
        {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        metrics.contains("scrubs_records_in_total{source=\"app\"} 400"),
        "{metrics}"
    );

    // SIGTERM: drain, flush, exit 0.
    let (status, stderr) = scrubs.stop();
    assert_eq!(
        status,
        Some(0),
        "scrubs did not exit 0 on SIGTERM: {stderr}"
    );

    // Nothing raw reached the vendor; every line arrived exactly once.
    let got = received.lock().unwrap().bodies.clone();
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
    let messages = audit_messages(&topic, Duration::from_secs(10));
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
