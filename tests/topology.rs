//! End to end, in process: `Topology::build` starts the pipeline of a
//! configuration (a file source tailing a temporary file, the audit fork to
//! a real Kafka topic, one OTLP/HTTP vendor) inside the test, without the
//! binary. PHI lines written to the file must reach the vendor redacted and
//! the audit topic unredacted; the drain must then finish within its
//! deadline, with everything delivered.
//!
//! Needs the dev broker: `deploy/dev/kafka.sh start` (scripts/test.sh does it).

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use scrubs::config::Config;
use scrubs::topology::Topology;
use support::{
    audit_messages, bootstrap, create_topic, http_get, start_vendor, wait_for, Audit, Ports,
    Sidecar,
};

/// An audit line (selected by `audit: "true"`) with PHI, numbered `i`.
fn audit_line(i: usize) -> String {
    format!(
        r#"{{"audit":"true","patient_id":"p-{}","action":"chart.view","patient_name":"Maria Gonzalez","ssn":"219-09-9999","i":{i}}}"#,
        i % 3
    )
}

/// A plain log line with PHI, numbered `i`.
fn phi_line(i: usize) -> String {
    format!(r#"level=info msg="lookup" patient_name="John Smith" call 415-555-0132 i={i}"#)
}

#[test]
fn in_process_topology_redacts_to_the_vendor_audits_to_kafka_and_drains_in_time() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("scrubs-topology-{}", std::process::id());
    create_topic(&rt, &topic, 1);
    let (vendor, received) = start_vendor(&rt);
    let ports = Ports::new(vendor);
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let path = Sidecar {
        include: log.display().to_string(),
        audit: Some(Audit {
            brokers: bootstrap(),
            topic: &topic,
            kafka: &["check_topic_config: false"],
        }),
        ..Sidecar::default()
    }
    .write(dir.path(), &ports);
    let cfg = Config::load(&path).expect("the configuration loads");

    let running = rt
        .block_on(Topology::build(&cfg))
        .expect("the topology builds");
    assert_eq!(running.admin_addr().port(), ports.admin);
    assert!(running.ready().get(), "ready once built");
    let (status, _) = http_get(ports.admin, "/readyz").expect("admin endpoint answers");
    assert_eq!(status, 200, "/readyz of the in-process topology");

    // Ten lines, every other one an audit line.
    const N: usize = 10;
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    for i in 0..N {
        let line = if i % 2 == 0 {
            audit_line(i)
        } else {
            phi_line(i)
        };
        writeln!(f, "{line}").unwrap();
    }
    f.flush().unwrap();

    wait_for("every line at the vendor", 60, || {
        received.lock().unwrap().bodies.len() >= N
    });
    // The audit lane acknowledges its batches once Kafka has them (or the
    // spool does): wait until the source has read everything before
    // draining, so that the drain has nothing left to deliver.
    let metrics = running.metrics().clone();
    wait_for("the file read to its end", 60, || {
        metrics.sum("scrubs_file_lag_bytes") == 0
            && metrics
                .value("scrubs_records_in_total", &[("source", "app")])
                .unwrap_or(0)
                == N as u64
    });

    let deadline = Duration::from_secs(10);
    let started = Instant::now();
    let report = rt.block_on(running.drain(deadline));
    let took = started.elapsed();
    assert!(report.in_time, "{report:?}");
    assert!(
        took < deadline + Duration::from_secs(1),
        "drain took {took:?}"
    );
    assert_eq!(report.vendor_records_dropped, 0, "{report:?}");

    // The vendor got every line once, redacted.
    let got = received.lock().unwrap().bodies.clone();
    assert_eq!(got.len(), N, "{got:?}");
    for raw in [
        "John Smith",
        "Maria Gonzalez",
        "219-09-9999",
        "415-555-0132",
    ] {
        assert!(
            !got.iter().any(|b| b.contains(raw)),
            "{raw} reached the vendor"
        );
        assert!(
            !received.lock().unwrap().contains(raw),
            "{raw} reached the vendor"
        );
    }
    assert!(
        got.iter().any(|b| b.contains("[REDACTED:PHONE]")),
        "phone numbers redacted: {got:?}"
    );

    // Kafka got every audit line once, unredacted.
    let messages = audit_messages(&topic, Duration::from_secs(10));
    assert_eq!(messages.len(), N / 2, "audit events in Kafka");
    let mut seen: Vec<u64> = Vec::new();
    for m in &messages {
        let v: serde_json::Value = serde_json::from_slice(m.payload.as_deref().unwrap()).unwrap();
        let line = v["record"]["line"].as_str().unwrap();
        assert!(
            line.contains("Maria Gonzalez") && line.contains("219-09-9999"),
            "audit must be unredacted: {line}"
        );
        let rec: serde_json::Value = serde_json::from_str(line).unwrap();
        seen.push(rec["i"].as_u64().unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, vec![0, 2, 4, 6, 8]);
}

/// A configuration the topology cannot build (an OTLP receiver whose port
/// is taken) is refused with an error naming the component and the
/// setting.
#[test]
fn a_topology_that_cannot_be_built_names_the_component() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let ports = Ports::new(support::free_port());
    let taken = std::net::TcpListener::bind(("127.0.0.1", ports.http)).unwrap();
    let path = Sidecar {
        include: log.display().to_string(),
        otlp: Some(&[]),
        ..Sidecar::default()
    }
    .write(dir.path(), &ports);
    let cfg = Config::load(&path).expect("the configuration loads");
    let err = rt
        .block_on(Topology::build(&cfg))
        .expect_err("a receiver whose port is taken is refused");
    assert_eq!(err.component(), "otlp", "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("otlp.http.address"), "{msg}");
    assert!(msg.contains(&ports.http.to_string()), "{msg}");
    drop(taken);
}
