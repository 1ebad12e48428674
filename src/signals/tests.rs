use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};

use prost::Message as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::preset::{funnel_metric, names, FUNNEL};
use super::*;
use crate::{Engine, PseudonymKey, RuleSet};

static ENGINE: LazyLock<Arc<Engine>> = LazyLock::new(|| {
    Arc::new(Engine::new(&RuleSet::builtin().unwrap(), PseudonymKey::ephemeral()).unwrap())
});

const KEY: &[u8] = b"a test hash key of 32 bytes ....";
const SEC: i64 = 1_000_000_000;

fn build(yaml: &str) -> Signals {
    SignalsConfig::from_yaml(yaml)
        .unwrap()
        .build(ENGINE.clone(), KEY)
        .unwrap()
}

fn build_err(yaml: &str) -> Vec<String> {
    match SignalsConfig::from_yaml(yaml) {
        Err(e) => e.problems().to_vec(),
        Ok(c) => c
            .build(ENGINE.clone(), KEY)
            .unwrap_err()
            .problems()
            .to_vec(),
    }
}

// ---------------------------------------------------------------------
// A synthetic visit day.

const PRESET: &str = r#"
preset: telehealth
fields:
  event: evt
  visit_id: consult_id
  platform: client_platform
  packet_loss: stats.loss_pct
  jitter: stats.jitter_ms
  rtt: stats.rtt_ms
events:
  connected: call_connected
"#;

const CONNECT_TIMEOUT_NS: i64 = 60 * SEC;
const TTC_BOUNDS: [f64; 8] = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0];
const LOSS_BOUNDS: [f64; 6] = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0];

struct Event {
    t: i64,
    evt: &'static str,
    visit: String,
    platform: &'static str,
    /// loss, jitter, rtt as written.
    stats: Option<(String, String, String)>,
}

#[derive(Default)]
struct Expected {
    events: HashMap<&'static str, u64>,
    ttc: Vec<u64>,
    connect_failures: u64,
    loss: Vec<u64>,
    minutes_total: u64,
    minutes_good: u64,
    visit_timeouts: u64,
    waiting_count: u64,
    attempts_by_platform: HashMap<&'static str, u64>,
}

fn bucket(bounds: &[f64], v: f64) -> usize {
    bounds.iter().position(|&b| v <= b).unwrap_or(bounds.len())
}

fn day(seed: u64, visits: usize) -> (Vec<Event>, Expected) {
    let mut rng = StdRng::seed_from_u64(seed);
    let day0: i64 = 1_790_000_000 * SEC;
    let mut ev = Vec::new();
    let mut ex = Expected {
        ttc: vec![0; TTC_BOUNDS.len() + 1],
        loss: vec![0; LOSS_BOUNDS.len() + 1],
        ..Default::default()
    };
    let mut minutes: BTreeMap<(String, i64), (f64, u32)> = BTreeMap::new();
    let platforms = ["ios", "android", "web"];
    for i in 0..visits {
        let visit = format!("c-{:08x}", rng.random::<u32>() ^ i as u32);
        let platform = platforms[rng.random_range(0..3)];
        let mut t = day0 + rng.random_range(0..10 * 3600) * SEC;
        let mut push = |t: i64, evt: &'static str, stats| {
            ev.push(Event {
                t,
                evt,
                visit: visit.clone(),
                platform,
                stats,
            })
        };
        push(t, "scheduled", None);
        if !rng.random_bool(0.9) {
            continue;
        }
        t += rng.random_range(60..3600) * SEC;
        push(t, "checked_in", None);
        if !rng.random_bool(0.95) {
            continue;
        }
        t += rng.random_range(5..120) * SEC;
        push(t, "waiting_room", None);
        ex.waiting_count += 1;
        t += rng.random_range(30..1500) * SEC;
        push(t, "connect_attempt", None);
        *ex.attempts_by_platform.entry(platform).or_default() += 1;
        let roll: f64 = rng.random();
        let delay_ms: i64 = if roll < 0.85 {
            rng.random_range(200..55_000)
        } else if roll < 0.90 {
            rng.random_range(70_000..200_000)
        } else {
            ex.connect_failures += 1;
            continue; // never connects
        };
        t += delay_ms * 1_000_000;
        push(t, "call_connected", None);
        let secs = delay_ms as f64 / 1000.0;
        if delay_ms * 1_000_000 > CONNECT_TIMEOUT_NS {
            ex.connect_failures += 1;
        } else {
            ex.ttc[bucket(&TTC_BOUNDS, secs)] += 1;
        }
        let bad_network = rng.random_bool(0.2);
        let length = rng.random_range(60..900) * SEC;
        let mut s = t + rng.random_range(1..20) * SEC;
        while s < t + length {
            let loss = if bad_network && rng.random_bool(0.6) {
                rng.random_range(300..1500) as f64 / 100.0
            } else {
                rng.random_range(0..250) as f64 / 100.0
            };
            let loss_s = format!("{loss:.2}");
            let loss_v: f64 = loss_s.parse().unwrap();
            ex.loss[bucket(&LOSS_BOUNDS, loss_v)] += 1;
            let m = minutes
                .entry((visit.clone(), s.div_euclid(60 * SEC)))
                .or_default();
            m.0 += loss_v;
            m.1 += 1;
            let jitter = format!("{}", rng.random_range(1..120));
            let rtt = format!("{}", rng.random_range(20..900));
            push(s, "media_stats", Some((loss_s, jitter, rtt)));
            s += rng.random_range(10..30) * SEC;
        }
        if rng.random_bool(0.05) {
            push(t + length, "call_dropped", None);
            ex.visit_timeouts += 1;
            continue;
        }
        push(t + length, "completed", None);
        if rng.random_bool(0.9) {
            push(
                t + length + rng.random_range(60..1800) * SEC,
                "notes_signed",
                None,
            );
        }
    }
    // Crisis: two 988 hand-offs, one escalation, one failed hand-off.
    for (k, evt) in [
        "crisis_988_handoff",
        "crisis_escalation",
        "crisis_988_handoff",
        "crisis_handoff_failed",
    ]
    .into_iter()
    .enumerate()
    {
        ev.push(Event {
            t: day0 + (k as i64 + 1) * 3600 * SEC,
            evt,
            visit: format!("c-crisis-{k}"),
            platform: "web",
            stats: None,
        });
    }
    for e in &ev {
        *ex.events.entry(e.evt).or_default() += 1;
    }
    for (sum, n) in minutes.values() {
        ex.minutes_total += 1;
        if sum / f64::from(*n) < 2.0 {
            ex.minutes_good += 1;
        }
    }
    ev.sort_by_key(|e| e.t);
    (ev, ex)
}

fn json_line(e: &Event) -> String {
    let mut v = serde_json::json!({
        "ts": e.t,
        "level": "info",
        "evt": e.evt,
        "consult_id": e.visit,
        "client_platform": e.platform,
        "msg": "visit event",
    });
    if let Some((loss, jitter, rtt)) = &e.stats {
        v["stats"] = serde_json::json!({
            "loss_pct": loss.parse::<f64>().unwrap(),
            "jitter_ms": jitter.parse::<u64>().unwrap(),
            "rtt_ms": rtt.parse::<u64>().unwrap(),
        });
    }
    v.to_string()
}

fn logfmt_line(e: &Event) -> String {
    let mut s = format!(
        "ts={} level=info evt={} consult_id={} client_platform={} msg=\"visit event\"",
        e.t, e.evt, e.visit, e.platform
    );
    if let Some((loss, jitter, rtt)) = &e.stats {
        s.push_str(&format!(
            " stats.loss_pct={loss} stats.jitter_ms={jitter} stats.rtt_ms={rtt}"
        ));
    }
    s
}

fn run_day(form: &str) {
    let (events, ex) = day(0x5c4b5, 3000);
    let mut sig = build(PRESET);
    let noise = [
        r#"{"level":"info","msg":"GET /health 200"}"#,
        "level=debug msg=\"cache warm\" took=3ms",
    ];
    let mut last_tick = i64::MIN;
    let mut crisis_seen = 0;
    for (n, e) in events.iter().enumerate() {
        let line = if form == "json" {
            json_line(e)
        } else {
            logfmt_line(e)
        };
        let rec = if form == "json" {
            RecordView::json(line.as_bytes(), Some(e.t))
        } else {
            RecordView::logfmt(line.as_bytes(), Some(e.t))
        };
        sig.observe(&rec, e.t);
        if sig.is_crisis(&rec) {
            crisis_seen += 1;
        }
        let noise = noise[n % 2].as_bytes();
        let rec = RecordView::auto(noise, Some(e.t));
        assert!(!sig.wants(&rec));
        sig.observe(&rec, e.t);
        if e.t.saturating_sub(last_tick) >= 5 * SEC {
            sig.tick(e.t);
            last_tick = e.t;
        }
    }
    let end = events.last().unwrap().t + 24 * 3600 * SEC;
    sig.tick(end);
    assert_eq!(sig.open_keys(), 0);

    for stage in FUNNEL {
        let evt = if *stage == "connected" {
            "call_connected"
        } else {
            stage
        };
        assert_eq!(
            sig.total(&funnel_metric(stage)),
            ex.events[evt],
            "{form}: funnel {stage}"
        );
    }
    assert_eq!(
        sig.total(names::CONNECT_ATTEMPTS),
        ex.events["connect_attempt"]
    );
    for (p, n) in &ex.attempts_by_platform {
        assert_eq!(
            sig.value(names::CONNECT_ATTEMPTS, &[p]),
            Some(*n),
            "{form}: {p}"
        );
    }
    assert_eq!(
        sig.total(names::CONNECT_SUCCESSES),
        ex.events["call_connected"]
    );
    assert_eq!(sig.total(names::CALL_DROPS), ex.events["call_dropped"]);
    assert_eq!(
        sig.bucket_counts(names::TIME_TO_CONNECT).unwrap(),
        ex.ttc,
        "{form}: time to connect buckets"
    );
    assert_eq!(sig.total(names::CONNECT_FAILURES), ex.connect_failures);
    // Every waiting-room entry either connected or timed out after 2h.
    let waiting_timeouts = sig.total("telehealth_waiting_room_seconds_timeout_total");
    assert_eq!(
        sig.total(names::WAITING_ROOM) + waiting_timeouts,
        ex.waiting_count
    );
    assert_eq!(
        sig.total("telehealth_visit_length_seconds_timeout_total"),
        ex.visit_timeouts
    );
    assert_eq!(sig.total(names::VISIT_LENGTH), ex.events["completed"]);
    assert_eq!(
        sig.bucket_counts(names::PACKET_LOSS).unwrap(),
        ex.loss,
        "{form}: loss buckets"
    );
    assert_eq!(sig.total(names::JITTER), ex.events["media_stats"]);
    assert_eq!(sig.total(names::RTT), ex.events["media_stats"]);
    assert_eq!(sig.total("telehealth_call_minutes_total"), ex.minutes_total);
    assert_eq!(
        sig.total("telehealth_call_minutes_good_total"),
        ex.minutes_good
    );
    assert!(ex.minutes_good < ex.minutes_total && ex.minutes_good > 0);
    assert_eq!(sig.total(names::CRISIS_EVENTS), 4);
    assert_eq!(sig.total(names::CRISIS_HANDOFF_FAILED), 1);
    assert_eq!(crisis_seen, 4);
    assert_eq!(sig.total(LABEL_REJECTED), 0);
    assert_eq!(sig.total(VALUE_INVALID), 0);
    assert_eq!(sig.total(OPEN_KEYS_CAP_HIT), 0);
    // The visit ids are in no output.
    let mut text = String::new();
    sig.render_prometheus(&mut text);
    for e in events.iter().step_by(997) {
        assert!(!text.contains(&e.visit), "{form}: a visit id in /metrics");
    }
    assert!(text.contains("telehealth_funnel_scheduled_total "));
}

#[test]
fn visit_day_json() {
    run_day("json");
}

#[test]
fn visit_day_logfmt() {
    run_day("logfmt");
}

// ---------------------------------------------------------------------
// PHI canaries in label-bearing fields.

const CANARIES: &[&str] = &[
    "Margaret Thornton",
    "219-09-9999",
    "margaret.thornton@example.com",
    "415-555-0132",
];

#[test]
fn canaries_never_reach_a_metric() {
    let mut sig = build(
        r#"
counters:
  - name: visits_by_site_total
    when: { field: evt, equals: visit }
    labels:
      - { field: patient_name, pattern: "[A-Za-z .'-]+", max_len: 64 }
      - { field: site, pattern: "[A-Za-z0-9@._ -]+", max_len: 64 }
      - { field: platform, values: [ios, android, web] }
"#,
    );
    let mut lines = Vec::new();
    // Each canary in every label-bearing field.
    for c in CANARIES {
        lines.push(format!(
            r#"{{"evt":"visit","patient_name":"{c}","site":"{c}","platform":"{c}"}}"#
        ));
    }
    for l in &lines {
        sig.observe(&RecordView::json(l.as_bytes(), None), 1);
    }
    // And a clean record, which keeps its values.
    sig.observe(
        &RecordView::logfmt(
            b"evt=visit patient_name=none site=north-2 platform=web",
            None,
        ),
        1,
    );
    let mut text = String::new();
    sig.render_prometheus(&mut text);
    let req = sig.to_otlp(&BTreeMap::from([("service.name".into(), "t".into())]));
    let wire = req.encode_to_vec();
    let json = serde_json::to_string(&req).unwrap();
    for c in CANARIES {
        assert!(!text.contains(c), "canary {c} in /metrics:\n{text}");
        assert!(
            memchr::memmem::find(&wire, c.as_bytes()).is_none(),
            "canary {c} in OTLP"
        );
        assert!(!json.contains(c), "canary {c} in OTLP JSON");
    }
    // 4 canaries x 3 labels rejected (`none` is reserved, so the clean
    // record's patient_name is rejected too).
    for label in ["patient_name", "site", "platform"] {
        assert_eq!(
            sig.value(LABEL_REJECTED, &["visits_by_site_total", label]),
            Some(4 + u64::from(label == "patient_name")),
            "{label}"
        );
    }
    assert_eq!(
        sig.value("visits_by_site_total", &[OTHER, OTHER, OTHER]),
        Some(4)
    );
    assert_eq!(
        sig.value("visits_by_site_total", &[OTHER, "north-2", "web"]),
        Some(1)
    );
    assert!(text
        .contains(r#"visits_by_site_total{patient_name="other",site="north-2",platform="web"} 1"#));
    let dbg = format!("{sig:?}");
    for c in CANARIES {
        assert!(!dbg.contains(c));
    }
    assert!(!dbg.contains("north-2"));
}

#[test]
fn a_value_the_engine_would_redact_becomes_other() {
    let mut sig = build(
        r#"
counters:
  - name: by_category_total
    when: { field: evt, equals: x }
    labels: [ { field: category, pattern: ".+", max_len: 128 } ]
  - name: by_note_total
    when: { field: evt, equals: x }
    labels: [ { field: note, pattern: ".+", max_len: 128 } ]
"#,
    );
    sig.observe(
        &RecordView::logfmt(br#"evt=x category="SSN 219-09-9999" note=fine"#, None),
        1,
    );
    sig.observe(&RecordView::logfmt(b"evt=x category=fine", None), 1);
    // The SSN is redacted as text.
    assert_eq!(sig.value("by_category_total", &[OTHER]), Some(1));
    assert_eq!(sig.value("by_category_total", &["fine"]), Some(1));
    assert_eq!(
        sig.value(LABEL_REJECTED, &["by_category_total", "category"]),
        Some(1)
    );
    // `note` is a key whose whole value the clinical rules take: even
    // `fine` would be redacted there, so it is not exported.
    assert!(ENGINE.field_rule("note", "fine").is_some());
    assert_eq!(sig.value("by_note_total", &[OTHER]), Some(1));
    assert_eq!(sig.value("by_note_total", &[NONE]), Some(1));
    assert_eq!(
        sig.value(LABEL_REJECTED, &["by_note_total", "note"]),
        Some(1)
    );
}

// ---------------------------------------------------------------------
// Bounds.

#[test]
fn open_key_cap_bounds_memory() {
    let mut sig = build(
        r#"
max_open_keys: 50
durations:
  - name: connect_seconds
    key: visit_id
    start: { field: evt, equals: start }
    end: { field: evt, equals: end }
    timeout: 60s
    buckets: [1, 10]
"#,
    );
    for i in 0..500 {
        let l = format!("evt=start visit_id=v{i}");
        sig.observe(&RecordView::logfmt(l.as_bytes(), Some(i)), i);
        assert!(sig.open_keys() <= 50);
    }
    assert_eq!(sig.open_keys(), 50);
    assert_eq!(
        sig.value(OPEN_KEYS_CAP_HIT, &["connect_seconds"]),
        Some(450)
    );
    assert_eq!(sig.value(OPEN_KEYS, &["connect_seconds"]), Some(50));
    // Ends for tracked keys are measured; the rest are unmatched.
    for i in 0..100 {
        let l = format!("evt=end visit_id=v{i}");
        sig.observe(&RecordView::logfmt(l.as_bytes(), Some(SEC)), SEC);
    }
    assert_eq!(sig.total("connect_seconds"), 50);
    assert_eq!(sig.bucket_counts("connect_seconds"), Some(vec![50, 0, 0]));
    assert_eq!(sig.value(UNMATCHED_END, &["connect_seconds"]), Some(50));
    assert_eq!(sig.open_keys(), 0);
}

#[test]
fn series_cap_sends_new_series_to_other() {
    let mut sig = build(
        r#"
max_series: 3
counters:
  - name: by_room_total
    when: { line_contains: "room=" }
    labels: [ { field: room, pattern: "[a-z]+[0-9]+" } ]
"#,
    );
    for i in 0..10 {
        let l = format!("room=r{i}");
        sig.observe(&RecordView::logfmt(l.as_bytes(), None), 1);
    }
    assert_eq!(sig.series_count("by_room_total"), 4);
    assert_eq!(sig.value("by_room_total", &[OTHER]), Some(7));
    assert_eq!(sig.value(SERIES_OVERFLOW, &["by_room_total"]), Some(7));
    assert_eq!(sig.value("by_room_total", &["r1"]), Some(1));
}

#[test]
fn timeouts_by_tick_and_by_late_end() {
    let mut sig = build(
        r#"
durations:
  - name: wait_seconds
    key: id
    start: { field: evt, equals: a }
    end: { field: evt, equals: b }
    timeout: 10s
    buckets: [5]
"#,
    );
    let obs = |sig: &mut Signals, l: &str, t: i64, now: i64| {
        sig.observe(&RecordView::logfmt(l.as_bytes(), Some(t)), now)
    };
    obs(&mut sig, "evt=a id=1", 0, 0);
    obs(&mut sig, "evt=a id=2", 0, 0);
    obs(&mut sig, "evt=a id=3", 0, 0);
    // id 1 ends in time; id 2 ends late, before any tick: a failure.
    obs(&mut sig, "evt=b id=1", 3 * SEC, 3 * SEC);
    obs(&mut sig, "evt=b id=2", 12 * SEC, 3 * SEC);
    assert_eq!(sig.total("wait_seconds_timeout_total"), 1);
    assert_eq!(sig.open_keys(), 1);
    // id 3 never ends: the newest record time (12s) expires it at the next
    // tick, whatever the caller's clock says.
    sig.tick(4 * SEC);
    assert_eq!(sig.open_keys(), 0);
    assert_eq!(sig.total("wait_seconds_timeout_total"), 2);
    // id 4 starts at record time 20s; no newer records. The caller's clock
    // expires it once it has waited longer than the timeout.
    obs(&mut sig, "evt=a id=4", 20 * SEC, 20 * SEC);
    sig.tick(25 * SEC);
    assert_eq!(sig.open_keys(), 1);
    sig.tick(31 * SEC);
    assert_eq!(sig.open_keys(), 0);
    assert_eq!(sig.total("wait_seconds_timeout_total"), 3);
    // Its end, now, is unmatched.
    obs(&mut sig, "evt=b id=4", 32 * SEC, 32 * SEC);
    assert_eq!(sig.value(UNMATCHED_END, &["wait_seconds"]), Some(1));
    assert_eq!(sig.bucket_counts("wait_seconds"), Some(vec![1, 0]));
}

// ---------------------------------------------------------------------
// Configuration.

#[test]
fn unknown_fields_are_refused_with_their_path() {
    let e = build_err(
        r#"
counters:
  - name: a_total
    when: { field: evt, equals: x, equal: y }
"#,
    );
    assert!(e[0].starts_with("signals.counters[0].when"), "{e:?}");
    assert!(e[0].contains("unknown field `equal`"), "{e:?}");
    let e = build_err("colour: blue\n");
    assert!(e[0].contains("unknown field `colour`"), "{e:?}");
}

#[test]
fn build_errors_name_the_path() {
    let e = build_err(
        r#"
durations:
  - name: a_seconds
    key: id
    start: { field: evt, equals: a }
    end: { field: evt, equals: b }
    timeout: 10s
    buckets: [1]
  - name: b_seconds
    key: id
    start: { field: evt, equals: a }
    end: { field: evt, matches: "(" }
    timeout: 10
    buckets: [2, 1]
  - name: c_seconds
    key: id
    start: { field: evt, equals: a }
    end: { field: evt }
    timeout: 10s
    buckets: [1]
counters:
  - name: Bad-Name
    when: { line_contains: x }
    labels: [ { field: f, values: [a], pattern: "b" } ]
"#,
    );
    let has = |p: &str| e.iter().any(|m| m.starts_with(p));
    assert!(has("signals.durations[1].end.matches: "), "{e:?}");
    assert!(has("signals.durations[1].timeout: "), "{e:?}");
    assert!(has("signals.durations[1].buckets: "), "{e:?}");
    assert!(has("signals.durations[2].end: "), "{e:?}");
    assert!(has("signals.counters[0].name: "), "{e:?}");
    assert!(has("signals.counters[0].labels[0]: "), "{e:?}");
    assert_eq!(e.len(), 6, "{e:?}");

    let e = build_err("preset: telehealth\nfields: { visitid: x }\n");
    assert!(e[0].starts_with("signals.fields.visitid: "), "{e:?}");
    let e = build_err("preset: hospital\n");
    assert!(e[0].starts_with("signals.preset: "), "{e:?}");
    let e = SignalsConfig::default()
        .build(ENGINE.clone(), b"short")
        .unwrap_err();
    assert!(e.to_string().contains("at least 16 bytes"));
}

#[test]
fn duplicate_metric_names_are_refused() {
    let e = build_err(
        r#"
preset: telehealth
counters:
  - name: telehealth_connect_attempts_total
    when: { line_contains: x }
"#,
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("signals.preset.counters[") && m.contains("defined twice")),
        "{e:?}"
    );
}

// ---------------------------------------------------------------------
// Matching and export.

#[test]
fn prefilter_skips_lines_without_literals() {
    let sig = build(PRESET);
    assert!(!sig.wants(&RecordView::json(br#"{"msg":"GET /x 200"}"#, None)));
    assert!(sig.wants(&RecordView::json(br#"{"evt":"call_connected"}"#, None)));
    // An event name as a word of a message is not a value.
    assert!(!sig.wants(&RecordView::json(br#"{"msg":"request completed"}"#, None)));
    assert!(!sig.wants(&RecordView::logfmt(b"msg=\"scheduled sync\" x=1", None)));
    assert!(sig.wants(&RecordView::logfmt(b"evt=completed", None)));
    assert!(sig.wants(&RecordView::logfmt(b"a=1 evt=\"completed\"", None)));
    assert!(sig.wants(&RecordView::json(br#"{"evt": "completed" }"#, None)));
    // Numbers and list members.
    let num = build("counters: [ { name: a_total, when: { field: code, in: ['503', '42'] } } ]");
    assert!(num.wants(&RecordView::json(br#"{"code": 503}"#, None)));
    assert!(num.wants(&RecordView::json(br#"{"codes":[1,42]}"#, None)));
    assert!(!num.wants(&RecordView::json(br#"{"took": 5030}"#, None)));
    // A JSON escape may hide an event name.
    assert!(sig.wants(&RecordView::json(br#"{"evt":"\u0063ompleted"}"#, None)));
    // Caller-supplied fields are not in the line.
    let attrs = |f: &mut dyn FnMut(&str, &str)| f("evt", "scheduled");
    assert!(sig.wants(&RecordView::with_fields(b"", None, &attrs)));
    let regex = build("counters: [ { name: a_total, when: { field: x, matches: 'y' } } ]");
    assert!(regex.wants(&RecordView::json(br#"{"msg":"GET /x 200"}"#, None)));
}

/// The prefilter's searcher and in-place check take exactly the lines that
/// the regex it replaced took (same literals, same contexts), on lines made
/// of the pieces that matter: literals that overlap and nest, quotes, `=`,
/// `:`, `,`, `[`, closing brackets, spaces and other words.
#[test]
fn prefilter_takes_the_lines_the_old_regex_took() {
    use super::condition::Prefilter;
    let values = ["completed", "connect", "connected", "503", "42"];
    let anywhere = ["crisis"];
    let mut sets: Vec<Option<Vec<super::condition::Literal>>> = values
        .iter()
        .map(|v| Some(vec![(v.as_bytes().to_vec(), true)]))
        .collect();
    sets.push(Some(vec![(anywhere[0].as_bytes().to_vec(), false)]));
    let pre = Prefilter::new(&sets);
    let v = values.map(regex::escape).join("|");
    let old = regex::bytes::Regex::new(&format!(
        r#"\\u|crisis|"(?:{v})"|=(?:{v})(?:\s|$)|[:,\[]\s*(?:{v})(?:[\s,}}\]]|$)"#
    ))
    .unwrap();
    let pieces: &[&[u8]] = &[
        b"completed",
        b"connect",
        b"connected",
        b"connecte",
        b"503",
        b"5030",
        b"42",
        b"crisi",
        b"crisis",
        b"\"",
        b"=",
        b":",
        b",",
        b"[",
        b"]",
        b"}",
        b"{",
        b" ",
        b"  ",
        b"\t",
        b"x",
        b"evt",
        b"_",
        b"\\u",
    ];
    let mut rng = StdRng::seed_from_u64(0x005e_ed0f_f11e);
    let mut line = Vec::new();
    for _ in 0..200_000 {
        line.clear();
        for _ in 0..rng.random_range(0..9) {
            line.extend_from_slice(pieces[rng.random_range(0..pieces.len())]);
        }
        assert_eq!(
            pre.may_match(&RecordView::json(&line, None)),
            old.is_match(&line),
            "{}",
            String::from_utf8_lossy(&line)
        );
    }
}

#[test]
fn otlp_attributes_and_line_conditions() {
    let mut sig = build(
        r#"
counters:
  - name: escaped_json_total
    when: { field: evt, equals: completed }
  - name: timeouts_total
    when: { line_matches: "upstream timed? ?out" }
  - name: either_total
    when:
      any:
        - { field: evt, in: [a, b] }
        - { line_contains: "PANIC" }
  - name: both_total
    when:
      all:
        - { field: evt, equals: a }
        - { field: code, matches: "^5[0-9]{2}$" }
"#,
    );
    sig.observe(&RecordView::json(br#"{"evt":"\u0063ompleted"}"#, None), 1);
    sig.observe(&RecordView::raw(b"upstream timed out after 3s", None), 1);
    let attrs = |f: &mut dyn FnMut(&str, &str)| {
        f("EVT", "a");
        f("code", "503");
    };
    sig.observe(&RecordView::with_fields(b"body", None, &attrs), 1);
    sig.observe(&RecordView::logfmt(b"evt=b code=200", None), 1);
    sig.observe(&RecordView::raw(b"PANIC at the disco", None), 1);
    assert_eq!(sig.total("escaped_json_total"), 1);
    assert_eq!(sig.total("timeouts_total"), 1);
    assert_eq!(sig.total("either_total"), 3);
    assert_eq!(sig.total("both_total"), 1);
}

#[test]
fn prometheus_and_otlp_show_the_same_numbers() {
    let mut sig = build(
        r#"
histograms:
  - name: jitter_ms
    when: { field: evt, equals: stats }
    value: jitter
    buckets: [10, 20]
    labels: [ { field: platform, values: [ios, web] } ]
"#,
    );
    for (j, p) in [
        ("5", "ios"),
        ("15", "ios"),
        ("25", "ios"),
        ("10", "web"),
        ("x", "web"),
    ] {
        let l = format!("evt=stats jitter={j} platform={p}");
        sig.observe(&RecordView::logfmt(l.as_bytes(), None), 1);
    }
    let mut text = String::new();
    sig.render_prometheus(&mut text);
    assert!(text.contains("# TYPE jitter_ms histogram"), "{text}");
    assert!(
        text.contains(r#"jitter_ms_bucket{platform="ios",le="10"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"jitter_ms_bucket{platform="ios",le="20"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"jitter_ms_bucket{platform="ios",le="+Inf"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"jitter_ms_sum{platform="ios"} 45"#),
        "{text}"
    );
    assert!(
        text.contains(r#"jitter_ms_count{platform="web"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"scrubs_signal_value_invalid_total{signal="jitter_ms"} 1"#));

    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, AggregationTemporality};
    let req = sig.to_otlp(&BTreeMap::new());
    let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
    let m = metrics.iter().find(|m| m.name == "jitter_ms").unwrap();
    let Some(Data::Histogram(h)) = &m.data else {
        panic!("not a histogram")
    };
    assert_eq!(
        h.aggregation_temporality,
        AggregationTemporality::Cumulative as i32
    );
    let ios = &h.data_points[0];
    assert_eq!(ios.bucket_counts, vec![1, 1, 1]);
    assert_eq!(ios.explicit_bounds, vec![10.0, 20.0]);
    assert_eq!((ios.count, ios.sum), (3, Some(45.0)));
    let m = metrics.iter().find(|m| m.name == VALUE_INVALID).unwrap();
    let Some(Data::Sum(s)) = &m.data else {
        panic!("not a sum")
    };
    assert!(s.is_monotonic);
}

#[test]
fn filter_is_detached_and_types_are_shareable() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<Signals>();
    send_sync::<SignalsFilter>();
    let mut sig = build(PRESET);
    let filter = sig.filter();
    let hit = RecordView::json(br#"{"evt":"scheduled"}"#, None);
    let miss = RecordView::json(br#"{"evt":"login"}"#, None);
    assert!(filter.wants(&hit) && !filter.wants(&miss));
    assert!(!build("{}").filter().wants(&hit));
    // A new engine: values are checked again, against it.
    sig.set_engine(ENGINE.clone());
    sig.observe(&hit, 1);
    assert_eq!(sig.total(&funnel_metric("scheduled")), 1);
    let dbg = format!("{sig:?} {filter:?} {hit:?}");
    assert!(!dbg.contains("scheduled\""), "{dbg}");
}
