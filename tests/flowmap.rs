//! The map of where PHI flows (issue 13, item 7): two sidecars of two
//! services write flow records to one audit topic; `scrubs audit flowmap`
//! reads them back and shows, per service and source, how many records
//! went raw to the audit topic and scrubbed to which vendor, with the PHI
//! categories and their counts exactly as each sidecar counted them, and
//! never a value.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{
    all_audit_messages, append_lines, bootstrap, create_topic, free_port, http_get, metric,
    phi_line, phi_line_with, start_vendor, unique_topic, wait_for, Scrubs,
};

/// The PHI values of the lines written: none may appear in a flow record
/// or in the rendered map.
const VALUES: [&str; 6] = [
    "Maria",
    "Gonzalez",
    "219-09-9999",
    "maria.gonzalez@example.com",
    "48291734",
    "ana.lopez@example.org",
];

struct Side {
    config: PathBuf,
    admin: u16,
    log: PathBuf,
}

fn sidecar(dir: &Path, service: &str, vendor_name: &str, vendor: u16, topic: &str) -> Side {
    std::fs::create_dir_all(dir).unwrap();
    let admin = free_port();
    let log = dir.join("app.log");
    let cfg = format!(
        "data_dir: {data}\n\
         resource:\n  service.name: {service}\n\
         sources:\n  app:\n    type: file\n    include: [\"{log}\"]\n    poll_interval: 50ms\n\
         audit:\n  kafka:\n    brokers: \"{brokers}\"\n    topic: {topic}\n    spool_dir: {data}/audit\n\
         \x20 select:\n    fields:\n      audit: [\"true\"]\n  flow_record_interval: 1s\n\
         vendors:\n  - name: {vendor_name}\n    endpoint: http://127.0.0.1:{vendor}\n    baa_covered: true\n    batch: {{ max_wait: 50ms }}\n\
         admin:\n  address: \"127.0.0.1:{admin}\"\n\
         shutdown:\n  drain_deadline: 10s\n",
        data = dir.join("data").display(),
        log = log.display(),
        brokers = bootstrap(),
    );
    let config = dir.join("scrubs.yaml");
    std::fs::write(&config, cfg).unwrap();
    Side { config, admin, log }
}

fn metrics(admin: u16) -> String {
    http_get(admin, "/metrics")
        .map(|(_, b)| b)
        .unwrap_or_default()
}

/// Values redacted from source `app`, per category, as the sidecar counted
/// them (summed over rules).
fn categories(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for l in text.lines() {
        let Some(rest) = l.strip_prefix("scrubs_redactions_total{") else {
            continue;
        };
        let (labels, value) = rest.split_once("} ").unwrap();
        if !labels.contains("source=\"app\"") {
            continue;
        }
        let cat = labels
            .split(',')
            .find_map(|kv| kv.strip_prefix("category=\""))
            .unwrap()
            .trim_end_matches('"')
            .to_string();
        *out.entry(cat).or_default() += value.trim().parse::<u64>().unwrap();
    }
    out
}

fn flowmap(config: &Path, format: &str) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_scrubs"))
        .args([
            "audit",
            "flowmap",
            "--config",
            config.to_str().unwrap(),
            "--since",
            "1h",
            "--format",
            format,
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// The map as SVG when Graphviz's `dot` is installed (scripts/test.sh
/// installs it where it can): a picture with both services and an edge's
/// count in it. Without
/// `dot`, the command must fail with exit 2 and say what to install.
fn svg_or_its_error(config: &Path) -> String {
    let have_dot = Command::new("dot").arg("-V").output().is_ok();
    if have_dot {
        let svg = flowmap(config, "svg");
        assert!(svg.contains("<svg"), "{svg}");
        // Graphviz writes `-` as `&#45;` in text.
        for text in ["visit&#45;api", "billing", "vendor acme", ">50 records<"] {
            assert!(svg.contains(text), "{text} not in\n{svg}");
        }
        return svg;
    }
    eprintln!("Graphviz's dot is not installed: checking the error instead of the picture");
    let o = Command::new(env!("CARGO_BIN_EXE_scrubs"))
        .args(["audit", "flowmap", "--config"])
        .arg(config)
        .args(["--since", "1h", "--format", "svg"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("install graphviz"), "{err}");
    err
}

/// The table row of an edge from source `app`: (records, categories).
fn edge(table: &str, service: &str, destination: &str) -> (u64, String) {
    edge_from(table, service, "app", destination)
}

/// The table row of an edge: (records, categories).
fn edge_from(table: &str, service: &str, source: &str, destination: &str) -> (u64, String) {
    let row = table
        .lines()
        .find(|l| {
            let mut w = l.split_whitespace();
            w.next() == Some(service) && w.next() == Some(source) && l.contains(destination)
        })
        .unwrap_or_else(|| panic!("no {service} {source} -> {destination} row in\n{table}"));
    let after = &row[row.find(destination).unwrap()..];
    // The destination text ends with ")"; then records, then categories.
    let tail = &after[after.find(')').unwrap() + 1..];
    let mut w = tail.split_whitespace();
    (
        w.next().unwrap().parse().unwrap(),
        w.next().unwrap_or("-").to_string(),
    )
}

fn expected(c: &BTreeMap<String, u64>) -> String {
    c.iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn two_sidecars_map_their_flows_exactly_and_without_values() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let topic = unique_topic("flowmap");
    create_topic(&rt, &topic, 1);
    let (acme, _) = start_vendor(&rt);
    let (tracer, _) = start_vendor(&rt);
    let dir = tempfile::tempdir().unwrap();
    let a = sidecar(&dir.path().join("a"), "visit-api", "acme", acme, &topic);
    let b = sidecar(&dir.path().join("b"), "billing", "tracer", tracer, &topic);
    let mut pa = Scrubs::start(&a.config, &[]);
    let mut pb = Scrubs::start(&b.config, &[]);
    pa.wait_ready(a.admin);
    pb.wait_ready(b.admin);

    // visit-api: 50 lines with PHI, 10 of them audit-grade; billing: 20
    // lines with an email only.
    append_lines(
        &a.log,
        (0..50).map(|i| {
            if i % 5 == 0 {
                phi_line_with(i, " audit=true")
            } else {
                phi_line(i)
            }
        }),
    );
    append_lines(
        &b.log,
        (0..20).map(|i| format!("level=info msg=\"invoice\" email=ana.lopez@example.org i={i}")),
    );
    let sent = |v: &str| {
        format!(r#"scrubs_vendor_records_total{{vendor="{v}",signal="logs",result="sent"}}"#)
    };
    wait_for("both vendors to get every line", 30, || {
        metric(&metrics(a.admin), &sent("acme")) == 50
            && metric(&metrics(b.admin), &sent("tracer")) == 20
    });
    // With an audit fork, a file's audit lane does not redact: its first
    // vendor lane counts the redactions (they were not counted at all
    // before this test).
    let cats_a = categories(&metrics(a.admin));
    let cats_b = categories(&metrics(b.admin));
    assert!(
        cats_a.contains_key("ssn") && cats_a.contains_key("email"),
        "{cats_a:?}"
    );
    assert_eq!(cats_b.get("email"), Some(&20), "{cats_b:?}");
    let (code_a, _) = pa.stop();
    let (code_b, _) = pb.stop();
    assert_eq!((code_a, code_b), (Some(0), Some(0)));

    let table = flowmap(&a.config, "table");
    assert_eq!(
        edge(&table, "visit-api", "audit topic"),
        (10, expected(&cats_a)),
        "{table}"
    );
    assert_eq!(
        edge(&table, "visit-api", "vendor acme"),
        (50, expected(&cats_a)),
        "{table}"
    );
    assert_eq!(
        edge(&table, "billing", "vendor tracer"),
        (20, expected(&cats_b)),
        "{table}"
    );
    // billing had no audit-grade record: no raw flow to the topic.
    assert!(
        !table
            .lines()
            .any(|l| l.starts_with("billing") && l.contains("audit topic")),
        "{table}"
    );
    assert!(table.contains("BAA yes"), "{table}");

    let dot = flowmap(&a.config, "dot");
    assert!(dot.starts_with("digraph phi_flows"), "{dot}");
    let mermaid = flowmap(&a.config, "mermaid");
    assert!(mermaid.starts_with("flowchart LR"), "{mermaid}");
    let svg = svg_or_its_error(&a.config);

    // No value anywhere: not in the flow records on the topic, not in any
    // rendering.
    let flow_records: Vec<String> = all_audit_messages(&topic, Duration::from_secs(5))
        .into_iter()
        .filter_map(|m| m.payload)
        .map(|p| String::from_utf8(p).unwrap())
        .filter(|p| p.contains("\"stream\":\"scrubs-flowmap\""))
        .collect();
    assert!(flow_records.len() >= 2, "{flow_records:?}");
    for text in flow_records.iter().chain([&table, &dot, &mermaid, &svg]) {
        for v in VALUES {
            assert!(!text.contains(v), "{v} in {text}");
        }
    }

    // The flow records are in their own chain, which verifies.
    let verify = Command::new(env!("CARGO_BIN_EXE_scrubs"))
        .args([
            "audit",
            "verify",
            "--brokers",
            &bootstrap(),
            "--topic",
            &topic,
        ])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// The last flow record is written at drain. It was written before the
/// vendor sinks flushed what they still held, so OTLP records batched at
/// SIGTERM reached the vendor but not the record's count of what each
/// vendor was sent: it said 0 where 40 had left. Now it waits for the vendor sinks' shutdown. The vendor takes a
/// second to answer, as a remote one under load does.
#[test]
fn the_last_flow_record_counts_what_the_vendors_flush_at_drain() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use prost::Message;
    use support::{post_proto, s};

    let rt = tokio::runtime::Runtime::new().unwrap();
    let topic = unique_topic("flowmap-drain");
    create_topic(&rt, &topic, 1);
    let vendor = support::slow_vendor(&rt, Duration::from_secs(1));
    let (port, got) = (vendor.port, vendor.got.clone());
    let dir = tempfile::tempdir().unwrap();
    let (admin, http, grpc) = (free_port(), free_port(), free_port());
    let data = dir.path().join("data");
    // Records wait in the vendor's batch for 60 s, far longer than the
    // test: only the drain sends them.
    let cfg = format!(
        "data_dir: {data}\n\
         resource:\n  service.name: intake\n\
         sources:\n  otlp:\n    type: otlp\n    http: {{ address: \"127.0.0.1:{http}\" }}\n    grpc: {{ address: \"127.0.0.1:{grpc}\" }}\n\
         audit:\n  kafka:\n    brokers: \"{brokers}\"\n    topic: {topic}\n    spool_dir: {data}/audit\n\
         \x20 select:\n    fields:\n      audit: [\"true\"]\n\
         vendors:\n  - name: acme\n    endpoint: http://127.0.0.1:{port}\n    baa_covered: true\n    batch: {{ max_wait: 60s }}\n\
         admin:\n  address: \"127.0.0.1:{admin}\"\n\
         shutdown:\n  drain_deadline: 10s\n",
        data = data.display(),
        brokers = bootstrap(),
    );
    let config = dir.path().join("scrubs.yaml");
    std::fs::write(&config, cfg).unwrap();
    let mut p = Scrubs::start(&config, &[]);
    p.wait_ready(admin);

    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: (0..40)
                    .map(|i| LogRecord {
                        body: Some(s(&format!("intake {i} for maria.gonzalez@example.com"))),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let (status, _) = post_proto(http, "/v1/logs", &req.encode_to_vec());
    assert_eq!(status, 200);
    let sent = r#"scrubs_vendor_records_total{vendor="acme",signal="logs",result="sent"}"#;
    assert_eq!(metric(&metrics(admin), sent), 0, "sent before the drain");
    let (code, log_text) = p.stop();
    assert_eq!(code, Some(0), "{log_text}");
    assert_eq!(got.lock().unwrap().logs.len(), 40, "the vendor got them");

    let sent_to_acme: u64 = all_audit_messages(&topic, Duration::from_secs(5))
        .into_iter()
        .filter_map(|m| m.payload)
        .filter_map(|p| serde_json::from_slice::<serde_json::Value>(&p).ok())
        .filter(|v| v["stream"] == "scrubs-flowmap")
        .map(|v| v["record"]["vendors"][0]["records"].as_u64().unwrap())
        .sum();
    assert_eq!(sent_to_acme, 40);
    let table = flowmap(&config, "table");
    assert_eq!(
        edge_from(&table, "intake", "otlp", "vendor acme"),
        (40, "email:40".to_string()),
        "{table}"
    );
}
