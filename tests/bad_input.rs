//! Bad input against one `scrubs run` (issue 4, scenario 5): a 10 MiB line,
//! invalid UTF-8, NUL bytes, a binary file in the tailed glob, JSON nested
//! 10,000 levels, lines shaped to make the engine's work grow with the
//! square of their length, malformed OTLP protobuf and JSON, a gzip bomb, an
//! oversized request (declared and chunked), a slow client sending one byte
//! a second, and an unsupported content type. Afterwards the process is
//! still up and healthy, every bad request got its 4xx, peak RSS (`VmHWM`)
//! stayed under `limits.memory_budget_bytes` plus a stated baseline
//! allowance, and no PHI planted in the input reached the vendor raw.
//!
//! No Kafka needed: the configuration has no audit section.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::Message;
use support::{deep_json, gz, http_get, phi_line, start_vendor, Ports, Scrubs, Sidecar, CANARIES};

/// `limits.memory_budget_bytes` in the configuration below (the default of
/// deploy/scrubs.yaml): in-flight OTLP bytes above it are refused with 429.
const MEMORY_BUDGET: u64 = 32 << 20;

/// The process's own footprint, allowed on top of the budget: the binary
/// and its libraries (librdkafka, OpenSSL), two runtimes and their threads,
/// the compiled rules and allocator arenas. An idle debug build measures
/// about 34 MiB here (printed by the test); the budget covers what the
/// input makes it hold (request and decompression buffers, the file
/// source's line buffers and queued batches).
const BASELINE_ALLOWANCE: u64 = 40 << 20;

// ---------------------------------------------------------------- harness

fn write_config(dir: &Path, logs: &Path, p: &Ports) -> PathBuf {
    let limits = format!(
        "limits:\n  max_record_bytes: 1048576\n  queue_batches: 16\n  memory_budget_bytes: {MEMORY_BUDGET}\n"
    );
    Sidecar {
        include: format!("{}/*.log", logs.display()),
        file: &["max_line_bytes: 1MiB"],
        otlp: Some(&[
            "max_request_bytes: 4194304",
            "max_decompressed_bytes: 16777216",
            "request_timeout: 3s",
        ]),
        extra: &limits,
        ..Sidecar::default()
    }
    .write(dir, p)
}

/// Sends `head` then `body` on a fresh connection; the status code of the
/// answer, if one came.
fn exchange(port: u16, head: &str, body: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    s.write_all(head.as_bytes()).ok()?;
    // The server may answer (413) and close before the body is sent.
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let line = out.split(|&b| b == b'\r').next()?;
    std::str::from_utf8(line)
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

fn head(path: &str, ct: &str, extra: &str, len: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: {ct}\r\n{extra}Content-Length: {len}\r\n\r\n"
    )
}

fn post(port: u16, path: &str, ct: &str, extra: &str, body: &[u8]) -> Option<u16> {
    exchange(port, &head(path, ct, extra, body.len()), body)
}

fn logs_request(body: &str) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    body: Some(AnyValue {
                        value: Some(Value::StringValue(body.to_string())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

// ---------------------------------------------------------------- the test

#[test]
fn bad_input_against_one_process() {
    let t0 = Instant::now();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (vendor, got) = start_vendor(&rt);
    let ports = Ports::new(vendor);
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let cfg = write_config(dir.path(), &logs, &ports);
    let mut scrubs = Scrubs::start(&cfg, &[]);
    scrubs.wait_ready(ports.admin);
    let idle_rss = scrubs.status_bytes("VmRSS");

    // The slow client starts first and runs alongside everything else: one
    // byte a second of a declared 100-byte body, cut off by the 3 s
    // request timeout with 408.
    let http = ports.http;
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", http)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        s.write_all(head("/v1/logs", "application/x-protobuf", "", 100).as_bytes())
            .unwrap();
        let t = Instant::now();
        let mut out = Vec::new();
        let payload = b"Maria Gonzalez 219-09-9999 ";
        for b in payload.iter().cycle().take(100) {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            let mut buf = [0u8; 1024];
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    break;
                }
                Err(_) => {}
            }
            std::thread::sleep(Duration::from_millis(900));
        }
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.read_to_end(&mut out);
        let status: Option<u16> = std::str::from_utf8(out.split(|&b| b == b'\r').next()?)
            .ok()?
            .split(' ')
            .nth(1)?
            .parse()
            .ok();
        Some((status?, t.elapsed()))
    });

    // --- The file source: a 10 MiB line with PHI throughout, invalid UTF-8,
    // NUL bytes, JSON nested 10,000 levels, and a binary file in the glob.
    let mut huge = String::with_capacity(10 << 20);
    let mut i = 0;
    while huge.len() < 10 << 20 {
        huge.push_str(&phi_line(i));
        huge.push(' ');
        i += 1;
    }
    let deep = deep_json(10_000);
    let mut app = Vec::new();
    app.extend_from_slice(huge.as_bytes());
    app.push(b'\n');
    app.extend_from_slice(b"\xff\xfe\xc3\x28 patient Maria Gonzalez ssn 219-09-9999 \xf0\x9f\n");
    app.extend_from_slice(b"\0\0 mrn=48291734 \0 email maria.gonzalez@example.com\0\n");
    app.extend_from_slice(deep.as_bytes());
    app.push(b'\n');
    // Lines that cost the engine the square of their length before it
    // bounded its work per line (benches/adversarial.rs has the rest): they
    // held up every line behind them for minutes.
    for unit in ["number=1 ", "name=", "mrn 12345 ", "msg=a,", "ssn=[["] {
        app.extend_from_slice(unit.repeat((256 << 10) / unit.len()).as_bytes());
        app.push(b'\n');
    }
    app.extend_from_slice(b"END-OF-APP\n");
    std::fs::write(logs.join("app.log"), &app).unwrap();
    drop(huge);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut bin: Vec<u8> = (0..2 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    // (Delimited: a value touching an invalid byte is the engine gap pinned
    // by `phi_touching_invalid_utf8_is_redacted` below.)
    bin.extend_from_slice(b"\nMaria Gonzalez \0 219-09-9999 \xff mrn 48291734\nEND-OF-BIN\n");
    std::fs::write(logs.join("core.log"), &bin).unwrap();

    // --- OTLP: each bad request and the status it must get.
    let proto = "application/x-protobuf";
    let json = "application/json";
    let mut answers: Vec<(&str, Option<u16>, u16)> = Vec::new();
    let mut malformed = logs_request("patient Maria Gonzalez ssn 219-09-9999").encode_to_vec();
    malformed.truncate(malformed.len() - 3);
    malformed.extend_from_slice(b"\xff\xff\xff\xff\x0f");
    answers.push((
        "malformed protobuf",
        post(ports.http, "/v1/logs", proto, "", &malformed),
        400,
    ));
    answers.push((
        "malformed JSON",
        post(
            ports.http,
            "/v1/logs",
            json,
            "",
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"Maria Gonzalez 219-09-9999"}"#,
        ),
        400,
    ));
    answers.push((
        "JSON of the wrong type",
        post(
            ports.http,
            "/v1/logs",
            json,
            "",
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"SSN 219-09-9999"}]}]}]}"#,
        ),
        400,
    ));
    let mut deep_json = String::from(r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":"#);
    deep_json.push_str(&r#"{"arrayValue":{"values":["#.repeat(10_000));
    deep_json.push_str(r#"{"stringValue":"Maria Gonzalez 219-09-9999"}"#);
    answers.push((
        "OTLP JSON nested 10,000 levels",
        post(ports.http, "/v1/logs", json, "", deep_json.as_bytes()),
        400,
    ));
    // A gzip bomb: PHI, then about 1 GiB of zeros in 64 members of 16 MiB,
    // about 1 MiB on the wire.
    let mut first = b"patient Maria Gonzalez 219-09-9999 ".to_vec();
    first.resize(16 << 20, 0);
    let mut bomb = gz(&first);
    let member = gz(&vec![0u8; 16 << 20]);
    for _ in 0..63 {
        bomb.extend_from_slice(&member);
    }
    assert!(bomb.len() < 4 << 20, "bomb is {} bytes", bomb.len());
    answers.push((
        "gzip bomb",
        post(
            ports.http,
            "/v1/logs",
            proto,
            "Content-Encoding: gzip\r\n",
            &bomb,
        ),
        413,
    ));
    answers.push((
        "gzip that is not gzip",
        post(
            ports.http,
            "/v1/logs",
            proto,
            "Content-Encoding: gzip\r\n",
            b"Maria Gonzalez 219-09-9999",
        ),
        400,
    ));
    // Oversized: declared (answered from the headers), and chunked without a
    // length (cut off once past the limit).
    let big: Vec<u8> = b"Maria Gonzalez 219-09-9999 "
        .iter()
        .copied()
        .cycle()
        .take(6 << 20)
        .collect();
    answers.push((
        "oversized, declared",
        exchange(
            ports.http,
            &head("/v1/logs", proto, "", 10 << 20),
            &big[..64 << 10],
        ),
        413,
    ));
    let chunked = format!(
        "POST /v1/logs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {proto}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let mut body = Vec::new();
    for c in big.chunks(64 << 10) {
        body.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        body.extend_from_slice(c);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    answers.push((
        "oversized, chunked",
        exchange(ports.http, &chunked, &body),
        413,
    ));
    answers.push((
        "unsupported content type",
        post(
            ports.http,
            "/v1/logs",
            "text/plain",
            "",
            b"Maria Gonzalez 219-09-9999",
        ),
        415,
    ));
    // And a good request, which must still work after all of that.
    answers.push((
        "a good request",
        post(
            ports.http,
            "/v1/logs",
            proto,
            "",
            &logs_request("END-OF-OTLP patient Maria Gonzalez SSN 219-09-9999").encode_to_vec(),
        ),
        200,
    ));

    let slow = slow.join().unwrap();
    for (what, got, want) in &answers {
        assert_eq!(*got, Some(*want), "{what}");
    }
    let (code, took) = slow.expect("the slow client got an answer");
    assert_eq!(code, 408, "slow client");
    assert!(
        took < Duration::from_secs(8),
        "slow client cut off after {took:?}"
    );

    // Everything that was good enough to forward arrives, scrubbed, within
    // a bound that a debug build on a loaded 2-core machine meets.
    // Regression: the last four lines of app.log once came more than 120 s
    // late in CI (8,115 of the 8,119 records in), held up behind the JSON
    // nested 10,000 levels, whose 60 KB the engine read once per key (8 s
    // of CPU in a debug build on an idle machine).
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let g = got.lock().unwrap();
        let seen = |m: &str| g.bodies.iter().any(|b| b.contains(m));
        if seen("END-OF-APP") && seen("END-OF-BIN") && seen("END-OF-OTLP") {
            eprintln!("the vendor received {} records", g.bodies.len());
            break;
        }
        if Instant::now() >= end {
            let missing: Vec<&str> = ["END-OF-APP", "END-OF-BIN", "END-OF-OTLP"]
                .into_iter()
                .filter(|m| !seen(m))
                .collect();
            // scrubs' metrics carry counts only, so they can go in the
            // failure message: they say where the missing records stopped.
            let metrics = http_get(ports.admin, "/metrics")
                .map(|r| r.1)
                .unwrap_or_default();
            let counters: Vec<&str> = metrics
                .lines()
                .filter(|l| !l.starts_with('#') && !l.contains("_bucket"))
                .collect();
            panic!(
                "the vendor has not received everything: {} records, missing {missing:?}\n{}\n{}",
                g.bodies.len(),
                counters.join("\n"),
                scrubs.log()
            );
        }
        drop(g);
        assert!(scrubs.alive(), "scrubs died: {}", scrubs.log());
        std::thread::sleep(Duration::from_millis(100));
    }

    // Still up and healthy.
    assert!(scrubs.alive(), "scrubs died: {}", scrubs.log());
    assert_eq!(http_get(ports.admin, "/healthz").map(|r| r.0), Some(200));
    let metrics = http_get(ports.admin, "/metrics").unwrap().1;
    assert!(
        metrics.contains(r#"scrubs_source_truncated_lines_total{source="app"}"#),
        "{metrics}"
    );

    // Peak RSS within the budget plus the baseline allowance.
    let peak = scrubs.status_bytes("VmHWM");
    let limit = MEMORY_BUDGET + BASELINE_ALLOWANCE;
    eprintln!(
        "bad input: idle RSS {} MiB, peak RSS {} MiB, limit {} MiB (budget {} + allowance {}), {:?}",
        idle_rss >> 20,
        peak >> 20,
        limit >> 20,
        MEMORY_BUDGET >> 20,
        BASELINE_ALLOWANCE >> 20,
        t0.elapsed()
    );
    assert!(
        peak <= limit,
        "peak RSS {} MiB over {} MiB",
        peak >> 20,
        limit >> 20
    );

    // Nothing raw at the vendor; the 10 MiB line arrived cut and marked.
    let g = got.lock().unwrap();
    for c in CANARIES {
        let leaked: Vec<String> = g
            .bodies
            .iter()
            .filter(|b| b.contains(c))
            .map(|b| format!("{:?}", b.chars().take(300).collect::<String>()))
            .collect();
        assert!(!g.contains(c), "{c} reached the vendor raw: {leaked:?}");
    }
    let cut = g
        .bodies
        .iter()
        .find(|b| b.contains("[TRUNCATED:"))
        .expect("the 10 MiB line, cut and marked");
    assert!(cut.len() < 2 << 20, "{} bytes", cut.len());
}

/// An identifier touching a byte that is not valid UTF-8 (binary data) is
/// still an identifier. Regression: the engine counted every byte >= 0x80 as
/// a word character, so `219-09-9999\xff` and `\xff219-09-9999` were not
/// matched and left raw.
#[test]
fn phi_touching_invalid_utf8_is_redacted() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scrubs"))
        .arg("redact")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"ssn 219-09-9999\xff x\nssn \xfe219-09-9999 x\ncall 415-555-0132\xff x\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 3);
    for c in ["219-09-9999", "415-555-0132"] {
        assert!(!text.contains(c), "{c} left raw: {text:?}");
    }
}
