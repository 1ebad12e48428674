//! End to end: `scrubs run` tails a `/var/log/pods`-style tree (in a
//! temporary directory) written by a container runtime: a CRI file
//! (containerd, CRI-O) and a Docker json-file, with partial lines, a line
//! that is in neither format, a stack trace joined by the multi-line
//! pattern, rotation by rename as the kubelet does it, and a restart while a
//! message waits for its final part. A real OTLP/HTTP vendor on 127.0.0.1
//! must receive the messages without the runtime's prefix, the parts joined
//! before detection (an SSN split across two `P` parts is redacted), the
//! runtime's time as each record's time and the stream as `log.iostream`.

mod support;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use support::{append, http_get, metric, start_vendor, Ports, Scrubs, Sidecar};

/// 2026-12-06T07:00:00Z in Unix nanoseconds.
const T0: u64 = 1_796_540_400_000_000_000;

fn iostream(lr: &LogRecord) -> Option<String> {
    lr.attributes
        .iter()
        .find(|kv| kv.key == "log.iostream")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
}

fn body(lr: &LogRecord) -> String {
    match lr.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        _ => String::new(),
    }
}

#[test]
fn cri_and_docker_files_under_var_log_pods_are_decoded_joined_and_timed() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pods = dir.path().join("pods");
    let cri_dir = pods.join("telehealth_visit-api-7d9f_0a1b2c3d/visit-api");
    let docker_dir = pods.join("telehealth_intake-5c6d_4e5f6a7b/intake");
    std::fs::create_dir_all(&cri_dir).unwrap();
    std::fs::create_dir_all(&docker_dir).unwrap();
    let cri = cri_dir.join("0.log");
    let docker = docker_dir.join("0.log");

    // CRI: an SSN split across two partial parts of stdout, a stderr line
    // written between them, a Java stack trace on stderr whose frames the
    // multi-line pattern joins (applied to the message: with the prefix,
    // every line would start a record), and a line in no runtime format.
    append(
        &cri,
        concat!(
            "2026-12-06T07:00:00.000000001Z stdout P patient ssn 219-0\n",
            "2026-12-06T07:00:00.000000002Z stderr F ERROR lookup failed\n",
            "2026-12-06T07:00:00.000000003Z stderr F \tat com.visit.Api.get(Api.java:42)\n",
            "2026-12-06T07:00:00.000000004Z stdout F 9-9999 checked in\n",
            "garbage that no runtime wrote\n",
        ),
    );
    // Docker json-file: a phone number split across two partial lines.
    append(
        &docker,
        concat!(
            r#"{"log":"call 415-555","stream":"stdout","time":"2026-12-06T07:00:01.5Z"}"#,
            "\n",
            r#"{"log":"-0132 for the visit\n","stream":"stdout","time":"2026-12-06T07:00:01.6Z"}"#,
            "\n",
            r#"{"log":"warn: slow \"db\"\n","stream":"stderr","time":"2026-12-06T07:00:02Z"}"#,
            "\n",
        ),
    );

    let (vendor, received) = start_vendor(&rt);
    let ports = Ports::new(vendor);
    let include = format!("{}/*/*/*.log*", pods.display());
    let cfg = Sidecar {
        include,
        file: &[
            "exclude: [\"*.gz\", \"*.tmp\"]",
            "format: auto",
            "rotate_wait: 500ms",
            "multiline: { start_pattern: '^\\S', timeout: 200ms }",
        ],
        ..Sidecar::default()
    }
    .write(dir.path(), &ports);
    let mut scrubs = Scrubs::start(&cfg, &[]);
    scrubs.wait_ready(ports.admin);

    let records = |n: usize| {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while received.lock().unwrap().logs.len() < n {
            if std::time::Instant::now() > end {
                let got = received.lock().unwrap();
                let bodies: Vec<_> = got.logs.iter().map(body).collect();
                let m = http_get(ports.admin, "/metrics")
                    .map(|r| r.1)
                    .unwrap_or_default();
                panic!("{n} records never arrived: {bodies:?}\n{m}");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    records(5);

    // Rotation as the kubelet does it: rename, then the runtime reopens
    // 0.log; the rotated file is still matched (`*.log*`) and read to its
    // end.
    append(
        &cri,
        "2026-12-06T07:00:05.000000000Z stdout F before rotation\n",
    );
    std::fs::rename(&cri, cri_dir.join("0.log.20261206-070006")).unwrap();
    append(
        &cri,
        "2026-12-06T07:00:06.000000000Z stdout F after rotation mrn 48291734\n",
    );
    records(7);

    // A restart in the middle of a partial message: the checkpoint stays at
    // its first part, which is read again after the restart and joined with
    // the final part written while scrubs was stopped.
    append(
        &cri,
        "2026-12-06T07:00:07.000000000Z stdout P restart ssn 219-09-\n",
    );
    std::thread::sleep(std::time::Duration::from_millis(600));
    let m = http_get(ports.admin, "/metrics").unwrap().1;
    assert_eq!(
        metric(
            &m,
            "scrubs_file_malformed_lines_total{source=\"app\",reason=\"not_cri\"}"
        ),
        1,
        "{m}"
    );
    let (code, log) = scrubs.stop();
    assert_eq!(code, Some(0), "{log}");
    append(&cri, "2026-12-06T07:00:08.000000000Z stdout F 9999 done\n");
    let mut scrubs = Scrubs::start(&cfg, &[]);
    scrubs.wait_ready(ports.admin);
    records(8);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (code, log) = scrubs.stop();
    assert_eq!(code, Some(0), "{log}");

    let got = received.lock().unwrap();
    let mut seen: Vec<(String, u64, Option<String>)> = got
        .logs
        .iter()
        .map(|lr| (body(lr), lr.time_unix_nano, iostream(lr)))
        .collect();
    seen.sort();
    for (b, _, _) in &seen {
        assert!(!b.starts_with("2026-12-06T"), "prefix kept: {b}");
        for raw in ["219-0", "9-9999", "415-555", "48291734"] {
            assert!(!b.contains(raw), "{raw} reached the vendor: {b}");
        }
    }
    for canary in ["219-09-9999", "415-555-0132", "48291734"] {
        assert!(!got.contains(canary), "{canary} reached the vendor raw");
    }
    let find = |prefix: &str| -> (String, u64, Option<String>) {
        let hits: Vec<_> = seen.iter().filter(|s| s.0.starts_with(prefix)).collect();
        assert_eq!(hits.len(), 1, "{prefix}: {seen:?}");
        hits[0].clone()
    };
    let ns = |s: u64, n: u64| T0 + s * 1_000_000_000 + n;
    let out = Some("stdout".to_string());
    let err = Some("stderr".to_string());

    let (b, t, s) = find("patient ssn ");
    assert!(
        b.ends_with(" checked in") && b.contains("[REDACTED") || b.contains("[MRN:"),
        "{b}"
    );
    assert_eq!((t, s), (ns(0, 1), out.clone()));
    let (b, t, s) = find("ERROR lookup failed");
    assert_eq!(
        b,
        "ERROR lookup failed\n\tat com.visit.Api.get(Api.java:42)"
    );
    assert_eq!((t, s), (ns(0, 2), err.clone()));
    let (b, t, s) = find("garbage");
    assert_eq!(b, "garbage that no runtime wrote");
    assert_eq!((t, s), (0, None));
    let (b, t, s) = find("call ");
    assert!(
        b.ends_with(" for the visit") && b.contains("[REDACTED") || b.contains("[MRN:"),
        "{b}"
    );
    assert_eq!((t, s), (ns(1, 500_000_000), out.clone()));
    let (b, t, s) = find("warn: ");
    assert_eq!(b, "warn: slow \"db\"");
    assert_eq!((t, s), (ns(2, 0), err));
    assert_eq!(find("before rotation").1, ns(5, 0));
    let (b, t, _) = find("after rotation");
    assert!(b.contains("[REDACTED") || b.contains("[MRN:"), "{b}");
    assert_eq!(t, ns(6, 0));
    let (b, t, s) = find("restart ssn ");
    assert!(
        b.ends_with(" done") && b.contains("[REDACTED") || b.contains("[MRN:"),
        "{b}"
    );
    assert_eq!((t, s), (ns(7, 0), out));
    // Each message once, nothing else (the stderr line between the SSN's
    // parts was before the restart's checkpoint, so it is not repeated).
    assert_eq!(seen.len(), 8, "{seen:?}");
    for lr in &got.logs {
        assert!(lr.observed_time_unix_nano > ns(3600, 0));
    }
}
