//! scrubs' own log as an operator's log pipeline sees it, and what SIGHUP
//! keeps: `scrubs run` with stderr on a pipe (as in a pod) writes one JSON
//! object per line, no ANSI escapes, one key per fact, no event content;
//! pseudonyms made without a key file stay the same across a reload; a
//! rejected reload is counted.
//!
//! No broker needed: a file source and a recording OTLP vendor.

mod support;

use support::{
    append_lines, http_get, metric, start_vendor, wait_for, Ports, Scrubs, Sidecar, CANARIES,
};

fn sighup(s: &Scrubs) {
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &s.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn metrics(admin: u16) -> String {
    http_get(admin, "/metrics").expect("/metrics answers").1
}

/// The `[EMAIL:xxxxxxxx]` token in a body.
fn email_token(body: &str) -> String {
    let start = body
        .find("[EMAIL:")
        .unwrap_or_else(|| panic!("no token: {body}"));
    let end = start + body[start..].find(']').unwrap();
    body[start..=end].to_string()
}

#[test]
fn stderr_on_a_pipe_is_json_one_field_per_fact_without_phi() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (vendor, received) = start_vendor(&rt);
    let ports = Ports::new(vendor);
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let cfg = Sidecar {
        include: log.display().to_string(),
        ..Sidecar::default()
    }
    .write(dir.path(), &ports);
    let mut scrubs = Scrubs::start(&cfg, &[("SCRUBS_LOG", "trace")]);
    scrubs.wait_ready(ports.admin);
    for i in 0..50 {
        append_lines(&log, [support::phi_line(i)]);
    }
    let r = received.clone();
    wait_for("50 lines at the vendor", 30, move || {
        r.lock().unwrap().bodies.len() >= 50
    });
    let (code, log_text) = scrubs.stop();
    assert_eq!(code, Some(0), "{log_text}");

    assert!(!log_text.contains('\u{1b}'), "ANSI escape in the log");
    let mut events = 0;
    let mut saw_fields = false;
    for line in log_text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"));
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"));
        for key in ["timestamp", "level", "message"] {
            assert!(obj.contains_key(key), "no {key}: {line}");
        }
        // Fields sit next to the message, each under its own key.
        assert!(!obj.contains_key("fields"), "nested fields: {line}");
        if obj.get("message").and_then(|m| m.as_str()) == Some("rules compiled") {
            assert!(obj["rules"].as_u64().is_some_and(|n| n > 10), "{line}");
            saw_fields = true;
        }
        events += 1;
    }
    assert!(events > 5, "only {events} log events at trace: {log_text}");
    assert!(saw_fields, "no 'rules compiled' event: {log_text}");
    for c in CANARIES {
        assert!(!log_text.contains(c), "{c} in scrubs' log");
    }

    // SCRUBS_LOG_FORMAT=text still gives text, and no colour on a pipe.
    let mut scrubs = Scrubs::start(&cfg, &[("SCRUBS_LOG_FORMAT", "text")]);
    scrubs.wait_ready(ports.admin);
    let (code, text) = scrubs.stop();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("rules compiled"), "{text}");
    assert!(!text.trim_start().starts_with('{'), "{text}");
    assert!(!text.contains('\u{1b}'), "ANSI escape in the text log");
}

#[test]
fn pseudonyms_without_a_key_file_survive_sighup_and_rejections_are_counted() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (vendor, received) = start_vendor(&rt);
    let ports = Ports::new(vendor);
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let sidecar = Sidecar {
        include: log.display().to_string(),
        ..Sidecar::default()
    };
    let cfg = sidecar.write(dir.path(), &ports);
    let good = std::fs::read_to_string(&cfg).unwrap();
    let mut scrubs = Scrubs::start(&cfg, &[]);
    scrubs.wait_ready(ports.admin);
    assert_eq!(
        metric(
            &metrics(ports.admin),
            "scrubs_config_last_reload_successful"
        ),
        1
    );

    let line = "contact maria.gonzalez@example.com about the visit";
    append_lines(&log, [line]);
    let r = received.clone();
    wait_for("the first line", 30, move || {
        !r.lock().unwrap().bodies.is_empty()
    });
    let before = email_token(&received.lock().unwrap().bodies[0]);

    // A reload that is applied.
    sighup(&scrubs);
    let admin = ports.admin;
    wait_for("the reload to be applied", 30, move || {
        metric(
            &metrics(admin),
            "scrubs_config_reloads_total{result=\"applied\"}",
        ) == 1
    });
    append_lines(&log, [line]);
    let r = received.clone();
    wait_for("the second line", 30, move || {
        r.lock().unwrap().bodies.len() >= 2
    });
    let after = email_token(&received.lock().unwrap().bodies[1]);
    assert_eq!(before, after, "the pseudonym changed on SIGHUP");

    // A reload that is rejected: counted, the gauge drops to 0, and the
    // rules (and key) in force stay.
    std::fs::write(&cfg, good.replace("sources:", "bogus_key: 1\nsources:")).unwrap();
    sighup(&scrubs);
    wait_for("the reload to be rejected", 30, move || {
        metric(
            &metrics(admin),
            "scrubs_config_reloads_total{result=\"rejected\"}",
        ) == 1
    });
    let text = metrics(admin);
    assert_eq!(metric(&text, "scrubs_config_last_reload_successful"), 0);
    assert_eq!(
        metric(&text, "scrubs_config_reloads_total{result=\"applied\"}"),
        1
    );
    append_lines(&log, [line]);
    let r = received.clone();
    wait_for("the third line", 30, move || {
        r.lock().unwrap().bodies.len() >= 3
    });
    assert_eq!(email_token(&received.lock().unwrap().bodies[2]), before);

    // Fixed again: applied, and the gauge back to 1.
    std::fs::write(&cfg, &good).unwrap();
    sighup(&scrubs);
    wait_for("the reload to be applied again", 30, move || {
        metric(&metrics(admin), "scrubs_config_last_reload_successful") == 1
    });
    let (code, text) = scrubs.stop();
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("maria.gonzalez"), "PHI in the log");
}
