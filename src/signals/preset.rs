//! The `telehealth` preset and the crisis selector, expanded into ordinary
//! signal configuration.
//!
//! Operators map the preset's logical fields and event names to their own
//! schema under `fields:` and `events:`; everything else is built in.

use std::collections::BTreeMap;

use super::config::{
    CallMinutesConfig, ConditionConfig, CounterConfig, CrisisConfig, DurationConfig,
    HistogramConfig, LabelConfig, MinuteStat, SignalsConfig,
};
use super::Problems;

/// The preset's logical fields, and their default names.
pub const TELEHEALTH_FIELDS: &[&str] = &[
    "event",
    "visit_id",
    "call_id",
    "platform",
    "packet_loss",
    "jitter",
    "rtt",
];

/// The preset's events, and their default values of the `event` field.
pub const TELEHEALTH_EVENTS: &[&str] = &[
    "scheduled",
    "checked_in",
    "waiting_room",
    "connect_attempt",
    "connected",
    "completed",
    "notes_signed",
    "call_dropped",
    "media_stats",
];

/// The funnel, in order.
pub const FUNNEL: &[&str] = &[
    "scheduled",
    "checked_in",
    "waiting_room",
    "connected",
    "completed",
    "notes_signed",
];

/// The crisis selector's default events.
pub const CRISIS_EVENTS: &[&str] = &["crisis_988_handoff", "crisis_escalation"];
/// The crisis selector's default failed-hand-off events.
pub const CRISIS_FAILED_EVENTS: &[&str] = &["crisis_handoff_failed"];

/// `platform` label values the preset accepts.
const PLATFORMS: &[&str] = &["ios", "android", "web", "desktop"];

/// The metric names the preset defines.
pub mod names {
    /// Connect attempts.
    pub const CONNECT_ATTEMPTS: &str = "telehealth_connect_attempts_total";
    /// Successful connects (`connected` events).
    pub const CONNECT_SUCCESSES: &str = "telehealth_connect_successes_total";
    /// Connect attempts with no `connected` within the connect timeout.
    pub const CONNECT_FAILURES: &str = "telehealth_connect_failures_total";
    /// Time from connect attempt to connected.
    pub const TIME_TO_CONNECT: &str = "telehealth_time_to_connect_seconds";
    /// Time from entering the waiting room to connected.
    pub const WAITING_ROOM: &str = "telehealth_waiting_room_seconds";
    /// Time from connected to completed.
    pub const VISIT_LENGTH: &str = "telehealth_visit_length_seconds";
    /// Calls dropped.
    pub const CALL_DROPS: &str = "telehealth_call_drops_total";
    /// Packet loss, percent.
    pub const PACKET_LOSS: &str = "telehealth_packet_loss_percent";
    /// Jitter, milliseconds.
    pub const JITTER: &str = "telehealth_jitter_ms";
    /// Round-trip time, milliseconds.
    pub const RTT: &str = "telehealth_rtt_ms";
    /// Call-minutes (`_total`) and good ones (`_good_total`).
    pub const CALL_MINUTES: &str = "telehealth_call_minutes";
    /// Crisis events.
    pub const CRISIS_EVENTS: &str = "telehealth_crisis_events_total";
    /// Failed crisis hand-offs.
    pub const CRISIS_HANDOFF_FAILED: &str = "telehealth_crisis_handoff_failed_total";
}

/// The funnel counter of a stage: `telehealth_funnel_<stage>_total`.
pub fn funnel_metric(stage: &str) -> String {
    format!("telehealth_funnel_{stage}_total")
}

/// The signals a config adds beyond its own lists.
#[derive(Debug, Default)]
pub(crate) struct Expanded {
    pub counters: Vec<CounterConfig>,
    pub histograms: Vec<HistogramConfig>,
    pub durations: Vec<DurationConfig>,
    pub call_minutes: Vec<CallMinutesConfig>,
    /// The crisis selector as a condition, and the failed one.
    pub crisis: Option<(ConditionConfig, ConditionConfig)>,
}

fn is_in(field: &str, values: Vec<String>) -> ConditionConfig {
    ConditionConfig {
        field: Some(field.to_owned()),
        in_: Some(values),
        ..Default::default()
    }
}

fn eq(field: &str, value: &str) -> ConditionConfig {
    ConditionConfig {
        field: Some(field.to_owned()),
        equals: Some(value.to_owned()),
        ..Default::default()
    }
}

fn duration(cfg: &Option<String>, default: &str, path: &str, p: &mut Problems) -> String {
    match cfg {
        Some(s) => {
            if crate::units::parse_duration(s).is_err() {
                p.push(path, "is not a duration (e.g. \"60s\")");
            }
            s.clone()
        }
        None => default.to_owned(),
    }
}

pub(crate) fn expand(cfg: &SignalsConfig, p: &mut Problems) -> Expanded {
    let mut out = Expanded::default();
    let preset = match cfg.preset.as_deref() {
        None => false,
        Some("telehealth") => true,
        Some(_) => {
            p.push(
                "signals.preset",
                "unknown preset (the one preset is `telehealth`)",
            );
            false
        }
    };
    if !preset {
        for (what, map) in [("fields", &cfg.fields), ("events", &cfg.events)] {
            if !map.is_empty() {
                p.push(&format!("signals.{what}"), "only applies with `preset`");
            }
        }
        if cfg.tuning.connect_timeout.is_some()
            || cfg.tuning.waiting_room_timeout.is_some()
            || cfg.tuning.visit_timeout.is_some()
            || cfg.tuning.good_minute_max_loss.is_some()
        {
            p.push("signals.tuning", "only applies with `preset`");
        }
    }
    let field = mapping(&cfg.fields, TELEHEALTH_FIELDS, "signals.fields", p);
    let event_field = field("event");
    if let Some(c) = &cfg.crisis {
        out.crisis = Some(crisis(c, &event_field, &mut out.counters));
    } else if preset {
        let c = CrisisConfig {
            field: None,
            events: None,
            failed_events: None,
        };
        out.crisis = Some(crisis(&c, &event_field, &mut out.counters));
    }
    if !preset {
        return out;
    }
    let ev = mapping(&cfg.events, TELEHEALTH_EVENTS, "signals.events", p);
    let t = &cfg.tuning;
    let connect_timeout = duration(
        &t.connect_timeout,
        "60s",
        "signals.tuning.connect_timeout",
        p,
    );
    let waiting_timeout = duration(
        &t.waiting_room_timeout,
        "2h",
        "signals.tuning.waiting_room_timeout",
        p,
    );
    let visit_timeout = duration(&t.visit_timeout, "4h", "signals.tuning.visit_timeout", p);
    let max_loss = t.good_minute_max_loss.unwrap_or(2.0);
    if !(max_loss.is_finite() && max_loss > 0.0) {
        p.push(
            "signals.tuning.good_minute_max_loss",
            "must be a positive number",
        );
    }
    let platform = if cfg.fields.contains_key("platform") {
        vec![LabelConfig {
            field: field("platform"),
            name: Some("platform".to_owned()),
            values: Some(PLATFORMS.iter().map(|s| s.to_string()).collect()),
            pattern: None,
            max_len: None,
        }]
    } else {
        Vec::new()
    };
    let visit = field("visit_id");
    let call = if cfg.fields.contains_key("call_id") {
        field("call_id")
    } else {
        visit.clone()
    };

    for stage in FUNNEL {
        out.counters.push(CounterConfig {
            name: funnel_metric(stage),
            help: Some(format!("Visits reaching the funnel stage {stage}.")),
            when: eq(&event_field, &ev(stage)),
            labels: Vec::new(),
        });
    }
    let counter = |name: &str, help: &str, event: &str| CounterConfig {
        name: name.to_owned(),
        help: Some(help.to_owned()),
        when: eq(&event_field, &ev(event)),
        labels: platform.clone(),
    };
    out.counters.push(counter(
        names::CONNECT_ATTEMPTS,
        "Connect attempts.",
        "connect_attempt",
    ));
    out.counters.push(counter(
        names::CONNECT_SUCCESSES,
        "Successful connects.",
        "connected",
    ));
    out.counters.push(counter(
        names::CALL_DROPS,
        "Calls dropped during a visit.",
        "call_dropped",
    ));

    let seconds = vec![0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0];
    out.durations.push(DurationConfig {
        name: names::TIME_TO_CONNECT.to_owned(),
        help: Some("Seconds from connect attempt to connected.".to_owned()),
        key: visit.clone(),
        start: eq(&event_field, &ev("connect_attempt")),
        end: eq(&event_field, &ev("connected")),
        timeout: connect_timeout,
        timeout_metric: Some(names::CONNECT_FAILURES.to_owned()),
        buckets: seconds,
        labels: platform.clone(),
    });
    let long = vec![60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0];
    out.durations.push(DurationConfig {
        name: names::WAITING_ROOM.to_owned(),
        help: Some("Seconds in the waiting room, until connected.".to_owned()),
        key: visit.clone(),
        start: eq(&event_field, &ev("waiting_room")),
        end: eq(&event_field, &ev("connected")),
        timeout: waiting_timeout,
        timeout_metric: None,
        buckets: long.clone(),
        labels: Vec::new(),
    });
    out.durations.push(DurationConfig {
        name: names::VISIT_LENGTH.to_owned(),
        help: Some("Seconds from connected to completed.".to_owned()),
        key: visit,
        start: eq(&event_field, &ev("connected")),
        end: eq(&event_field, &ev("completed")),
        timeout: visit_timeout,
        timeout_metric: None,
        buckets: long,
        labels: Vec::new(),
    });
    let stats = eq(&event_field, &ev("media_stats"));
    for (name, help, f, buckets) in [
        (
            names::PACKET_LOSS,
            "Packet loss of media stats samples, percent.",
            "packet_loss",
            vec![0.5, 1.0, 2.0, 5.0, 10.0, 20.0],
        ),
        (
            names::JITTER,
            "Jitter of media stats samples, milliseconds.",
            "jitter",
            vec![5.0, 10.0, 20.0, 30.0, 50.0, 100.0, 200.0],
        ),
        (
            names::RTT,
            "Round-trip time of media stats samples, milliseconds.",
            "rtt",
            vec![50.0, 100.0, 150.0, 200.0, 300.0, 500.0, 1000.0],
        ),
    ] {
        out.histograms.push(HistogramConfig {
            name: name.to_owned(),
            help: Some(help.to_owned()),
            when: Some(stats.clone()),
            value: field(f),
            buckets,
            labels: platform.clone(),
        });
    }
    out.call_minutes.push(CallMinutesConfig {
        name: names::CALL_MINUTES.to_owned(),
        help: Some(format!(
            "Call-minutes with media stats; good ones had mean packet loss under {max_loss}%."
        )),
        when: Some(stats),
        key: call,
        value: field("packet_loss"),
        threshold: max_loss,
        stat: MinuteStat::Mean,
        idle: None,
        labels: Vec::new(),
    });
    out
}

/// Checks a logical-name map and returns a lookup with defaults.
fn mapping<'a>(
    map: &'a BTreeMap<String, String>,
    known: &[&str],
    path: &str,
    p: &mut Problems,
) -> impl Fn(&str) -> String + 'a {
    for (k, v) in map {
        if !known.contains(&k.as_str()) {
            p.push(
                &format!("{path}.{k}"),
                &format!("is not one of the preset's names ({})", known.join(", ")),
            );
        } else if v.trim().is_empty() {
            p.push(&format!("{path}.{k}"), "is empty");
        }
    }
    move |k: &str| map.get(k).cloned().unwrap_or_else(|| k.to_owned())
}

fn crisis(
    c: &CrisisConfig,
    event_field: &str,
    counters: &mut Vec<CounterConfig>,
) -> (ConditionConfig, ConditionConfig) {
    let field = c.field.clone().unwrap_or_else(|| event_field.to_owned());
    let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let failed = c
        .failed_events
        .clone()
        .unwrap_or_else(|| own(CRISIS_FAILED_EVENTS));
    let mut all = c.events.clone().unwrap_or_else(|| own(CRISIS_EVENTS));
    all.extend(failed.iter().cloned());
    all.sort();
    all.dedup();
    let any = is_in(&field, all);
    let failed = is_in(&field, failed);
    counters.push(CounterConfig {
        name: names::CRISIS_EVENTS.to_owned(),
        help: Some("Crisis records (988 hand-offs, escalations, failed hand-offs).".to_owned()),
        when: any.clone(),
        labels: Vec::new(),
    });
    counters.push(CounterConfig {
        name: names::CRISIS_HANDOFF_FAILED.to_owned(),
        help: Some("Crisis hand-offs reported failed.".to_owned()),
        when: failed.clone(),
        labels: Vec::new(),
    });
    (any, failed)
}
