//! The breach clock (issue 13, item 6): `scrubs audit incident open`,
//! `list` and `close` against the dev broker, through the real binary.
//! Incident records are sealed into their own hash chain on the audit
//! topic, operator text that a rule would redact is refused, and a record
//! Kafka does not take waits in `--state-dir` for the next command.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{bootstrap, create_topic, free_port, unique_topic, Audit, Ports, Sidecar};

/// A sidecar configuration whose audit fork writes to `topic` on `brokers`.
fn config(dir: &Path, brokers: String, topic: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    Sidecar {
        include: dir.join("app.log").display().to_string(),
        audit: Some(Audit {
            brokers,
            topic,
            kafka: &["delivery_timeout: 2s"],
        }),
        ..Sidecar::default()
    }
    .write(dir, &Ports::new(free_port()))
}

fn scrubs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scrubs"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn open(cfg: &Path, state: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "audit",
        "incident",
        "open",
        "--config",
        cfg.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--categories",
        "ssn,name",
        "--source",
        "visit-api",
        "--by",
        "oncall-sre",
    ];
    args.extend_from_slice(extra);
    scrubs(&args)
}

fn close(cfg: &Path, state: &Path, id: &str, resolution: &str) -> Output {
    scrubs(&[
        "audit",
        "incident",
        "close",
        "--config",
        cfg.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--id",
        id,
        "--resolution",
        resolution,
        "--by",
        "privacy-officer",
    ])
}

/// The incident id in `incident <id> opened: ...`.
fn opened_id(o: &Output) -> String {
    let (out, err) = text(o);
    assert_eq!(o.status.code(), Some(0), "stdout {out}\nstderr {err}");
    out.split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no id in {out}"))
        .to_string()
}

fn list(cfg: &Path, all: bool) -> String {
    let mut args = vec![
        "audit",
        "incident",
        "list",
        "--config",
        cfg.to_str().unwrap(),
    ];
    if all {
        args.push("--all");
    }
    let o = scrubs(&args);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout {out}\nstderr {err}");
    out
}

fn row<'a>(listing: &'a str, id: &str) -> Option<&'a str> {
    listing.lines().find(|l| l.starts_with(id))
}

#[test]
fn open_list_and_close_in_the_audit_hash_chain() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let topic = unique_topic("incident-clock");
    create_topic(&rt, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), bootstrap(), &topic);
    let state = dir.path().join("incidents");

    let a = opened_id(&open(
        &cfg,
        &state,
        &[
            "--summary",
            "unredacted identifiers reached the log vendor for 40 minutes",
        ],
    ));
    // Discovered ten days and an hour ago: 50 days left, rounded up.
    let ten_days_ago = SystemTime::now() - Duration::from_secs(10 * 86_400 + 3600);
    let secs = ten_days_ago.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let discovered = rfc3339(secs);
    let b_out = open(
        &cfg,
        &state,
        &[
            "--summary",
            "a debug endpoint logged request bodies",
            "--discovered",
            &discovered,
        ],
    );
    let b = opened_id(&b_out);
    assert!(
        text(&b_out).0.contains(&format!("discovered {discovered}")),
        "{}",
        text(&b_out).0
    );

    let listing = list(&cfg, false);
    let ra = row(&listing, &a).unwrap_or_else(|| panic!("{a} missing:\n{listing}"));
    let rb = row(&listing, &b).unwrap_or_else(|| panic!("{b} missing:\n{listing}"));
    let days = |r: &str| r.split_whitespace().nth(3).unwrap().parse::<i64>().unwrap();
    assert_eq!(days(ra), 60, "{ra}");
    assert_eq!(days(rb), 50, "{rb}");
    assert!(ra.contains("ssn,name") && ra.contains("visit-api"), "{ra}");
    assert!(listing.contains("2 open incident(s), 0 past"), "{listing}");

    let closed = close(
        &cfg,
        &state,
        &b,
        "endpoint removed, vendor confirmed deletion",
    );
    assert_eq!(closed.status.code(), Some(0), "{:?}", text(&closed));

    let listing = list(&cfg, false);
    assert!(
        row(&listing, &a).is_some() && row(&listing, &b).is_none(),
        "{listing}"
    );
    assert!(listing.contains("1 open incident(s)"), "{listing}");
    let everything = list(&cfg, true);
    assert!(
        row(&everything, &b).unwrap().contains("closed"),
        "{everything}"
    );

    // Closing it again, or an incident that does not exist, is refused.
    for id in [b.as_str(), "00000000deadbeef"] {
        let again = close(&cfg, &state, id, "again");
        assert_eq!(again.status.code(), Some(2), "{:?}", text(&again));
    }

    // Three records, one chain, nothing wrong with it.
    let verify = scrubs(&[
        "audit",
        "verify",
        "--strict",
        "--brokers",
        &bootstrap(),
        "--topic",
        &topic,
    ]);
    let (out, _) = text(&verify);
    assert_eq!(verify.status.code(), Some(0), "{out}");
    assert!(out.contains("verified 3 events in 1 streams"), "{out}");
}

#[test]
fn text_that_a_rule_would_redact_is_refused_without_being_repeated() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let topic = unique_topic("incident-phi");
    create_topic(&rt, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), bootstrap(), &topic);
    let state = dir.path().join("incidents");
    let o = open(
        &cfg,
        &state,
        &["--summary", "SSN 219-09-9999 of the patient was logged"],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "stdout {out}\nstderr {err}");
    assert!(
        err.contains("--summary would be redacted by rule(s)"),
        "{err}"
    );
    assert!(err.contains("ssn"), "{err}");
    assert!(!err.contains("219-09-9999") && !out.contains("219-09-9999"));
    assert!(list(&cfg, true).contains("0 open incident(s)"));
}

/// Kafka unreachable: the record is sealed and kept in `--state-dir`
/// (exit 1, said on stderr); the next command with that directory and a
/// broker that answers delivers it first, then its own.
#[test]
fn a_record_kafka_did_not_take_is_delivered_by_the_next_command() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let topic = unique_topic("incident-later");
    create_topic(&rt, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let down = config(
        &dir.path().join("down"),
        format!("127.0.0.1:{}", free_port()),
        &topic,
    );
    let up = config(&dir.path().join("up"), bootstrap(), &topic);
    let state = dir.path().join("incidents");

    let t0 = Instant::now();
    let o = open(
        &down,
        &state,
        &["--summary", "first report", "--timeout", "2s"],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "stdout {out}\nstderr {err}");
    assert!(err.contains("it is kept in"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    let first = out.split_whitespace().nth(1).unwrap().to_string();
    assert!(std::fs::metadata(state.join("audit.spool")).unwrap().len() > 0);

    let second = opened_id(&open(&up, &state, &["--summary", "second report"]));
    let listing = list(&up, false);
    assert!(row(&listing, &first).is_some(), "{listing}");
    assert!(row(&listing, &second).is_some(), "{listing}");
    assert_eq!(
        std::fs::metadata(state.join("audit.spool")).unwrap().len(),
        0
    );
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`, computed here independently of
/// scrubs' own formatter (by `date`).
fn rfc3339(secs: u64) -> String {
    let o = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}
