//! The `signals:` section as operators write it.
//!
//! Every struct refuses unknown keys. Nothing is checked here beyond the
//! YAML shape: [`SignalsConfig::build`](super::SignalsConfig::build) checks
//! names, regexes, buckets and durations and reports each problem with its
//! path (`signals.durations[2].end`).

use std::collections::BTreeMap;

use serde::Deserialize;

/// The `signals:` section: metrics derived from records before redaction.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalsConfig {
    /// A built-in set of signals to add: `telehealth` is the only one.
    /// Omit it to configure every signal by hand.
    #[serde(default)]
    pub preset: Option<String>,
    /// For the preset: the preset's logical field names (`event`,
    /// `visit_id`, `call_id`, `platform`, `packet_loss`, `jitter`, `rtt`)
    /// mapped to the names your services log, e.g. `visit_id: consult_id`.
    /// A logical field not listed keeps its own name. `call_id` defaults to
    /// the `visit_id` mapping. When `platform` is mapped, connect, drop and
    /// media signals carry a `platform` label (`ios`, `android`, `web`,
    /// `desktop`; anything else is `other`).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// For the preset: the preset's event names (`scheduled`, `checked_in`,
    /// `waiting_room`, `connect_attempt`, `connected`, `completed`,
    /// `notes_signed`, `call_dropped`, `media_stats`) mapped to the values
    /// your `event` field carries, e.g. `connected: call_connected`.
    #[serde(default)]
    pub events: BTreeMap<String, String>,
    /// For the preset: tuning of its timeouts and thresholds.
    #[serde(default)]
    pub tuning: PresetTuning,
    /// The crisis selector (988 hand-offs and crisis escalations). With the
    /// `telehealth` preset it is on by default; otherwise it is on only when
    /// this section is given.
    #[serde(default)]
    pub crisis: Option<CrisisConfig>,
    /// The most label series any one signal keeps (default 200). Records
    /// that would make a new series beyond it are counted under a series
    /// whose labels are all `other`, and in
    /// `scrubs_signal_series_overflow_total{signal}`.
    #[serde(default)]
    pub max_series: Option<usize>,
    /// The most open keys (started, not yet ended visits; calls with an
    /// open minute) any one duration or call-minute signal keeps (default
    /// 10000). A start beyond it is not tracked and is counted in
    /// `scrubs_signal_open_keys_cap_hit_total{signal}`.
    #[serde(default)]
    pub max_open_keys: Option<usize>,
    /// Counters: records matching a condition.
    #[serde(default)]
    pub counters: Vec<CounterConfig>,
    /// Histograms of a numeric field.
    #[serde(default)]
    pub histograms: Vec<HistogramConfig>,
    /// Correlated durations: from a start record to an end record sharing
    /// a key.
    #[serde(default)]
    pub durations: Vec<DurationConfig>,
    /// Per-call-minute aggregates: the number of call-minutes, and of
    /// those whose loss (or other sample) stayed under a threshold.
    #[serde(default)]
    pub call_minutes: Vec<CallMinutesConfig>,
    /// How often `scrubs run` sends the derived metrics (cumulative) as
    /// OTLP metrics to every vendor that takes metrics; they are on
    /// `/metrics` all the time. Default `60s`; `0s` sends none.
    #[serde(
        default = "default_export_interval",
        deserialize_with = "crate::units::deserialize_duration"
    )]
    pub export_interval: std::time::Duration,
}

fn default_export_interval() -> std::time::Duration {
    std::time::Duration::from_secs(60)
}

/// Timeouts and thresholds of the `telehealth` preset.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetTuning {
    /// A connect attempt with no `connected` within this is a failed
    /// connect (default `60s`).
    #[serde(default)]
    pub connect_timeout: Option<String>,
    /// The longest waiting-room time tracked (default `2h`).
    #[serde(default)]
    pub waiting_room_timeout: Option<String>,
    /// The longest visit tracked (default `4h`).
    #[serde(default)]
    pub visit_timeout: Option<String>,
    /// A call-minute is good when its mean packet loss (percent) is under
    /// this (default `2`).
    #[serde(default)]
    pub good_minute_max_loss: Option<f64>,
}

/// The crisis selector: which records are crisis events, and which of them
/// say a hand-off failed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrisisConfig {
    /// The field holding the event name (default: the preset's `event`
    /// field, after `fields:` mapping; `event` without the preset).
    #[serde(default)]
    pub field: Option<String>,
    /// Event names that make a record a crisis record (default
    /// `crisis_988_handoff`, `crisis_escalation`, `crisis_handoff_failed`).
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// Event names that say a crisis hand-off failed (default
    /// `crisis_handoff_failed`). They are crisis records too.
    #[serde(default)]
    pub failed_events: Option<Vec<String>>,
}

/// A condition on a record. Give exactly one of: `field` with one of
/// `equals`, `in`, `matches`; `line_contains`; `line_matches`; `all`; `any`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionConfig {
    /// A field name (JSON keys, nested ones joined by dots; logfmt keys;
    /// OTLP attribute keys). Compared after normalising: ASCII letters and
    /// digits, lower case, so `visit_id`, `visitId` and `VISIT-ID` match.
    #[serde(default)]
    pub field: Option<String>,
    /// The field's value is exactly this.
    #[serde(default)]
    pub equals: Option<String>,
    /// The field's value is one of these.
    #[serde(default, rename = "in")]
    pub in_: Option<Vec<String>>,
    /// The field's value matches this regex (anchor it yourself).
    #[serde(default)]
    pub matches: Option<String>,
    /// The raw line contains this text.
    #[serde(default)]
    pub line_contains: Option<String>,
    /// The raw line matches this regex.
    #[serde(default)]
    pub line_matches: Option<String>,
    /// Every one of these conditions holds.
    #[serde(default)]
    pub all: Option<Vec<ConditionConfig>>,
    /// At least one of these conditions holds.
    #[serde(default)]
    pub any: Option<Vec<ConditionConfig>>,
}

/// A label: a field whose value becomes a label value once it passes a
/// declared check. Give `values`, or `pattern` (with `max_len`). A value
/// failing the check, or one any redaction rule would change, is exported
/// as `other` and counted in `scrubs_signal_label_rejected_total`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelConfig {
    /// The field the value comes from.
    pub field: String,
    /// The label's name in the metric (default: the field name, with
    /// characters other than ASCII letters, digits and `_` as `_`).
    #[serde(default)]
    pub name: Option<String>,
    /// The allowed values.
    #[serde(default)]
    pub values: Option<Vec<String>>,
    /// A regex every allowed value matches in full (it is anchored for you).
    #[serde(default)]
    pub pattern: Option<String>,
    /// The longest allowed value in bytes, with `pattern` (default 32, at
    /// most 128).
    #[serde(default)]
    pub max_len: Option<usize>,
}

/// A counter of records matching a condition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterConfig {
    /// The metric name (`[a-z_][a-z0-9_]*`, should end in `_total`).
    pub name: String,
    /// The metric's help text.
    #[serde(default)]
    pub help: Option<String>,
    /// Which records count.
    pub when: ConditionConfig,
    /// Labels, from the matching record.
    #[serde(default)]
    pub labels: Vec<LabelConfig>,
}

/// A histogram of a numeric field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistogramConfig {
    /// The metric name (`[a-z_][a-z0-9_]*`, with its unit: `_ms`,
    /// `_percent`).
    pub name: String,
    /// The metric's help text.
    #[serde(default)]
    pub help: Option<String>,
    /// Which records are read (default: every record with the field).
    #[serde(default)]
    pub when: Option<ConditionConfig>,
    /// The numeric field observed. A record whose field is not a number is
    /// counted in `scrubs_signal_value_invalid_total{signal}`.
    pub value: String,
    /// Upper bounds of the buckets, ascending (`+Inf` is implied).
    pub buckets: Vec<f64>,
    /// Labels, from the matching record.
    #[serde(default)]
    pub labels: Vec<LabelConfig>,
}

/// The time from a start record to an end record with the same key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurationConfig {
    /// The histogram's name, in seconds (`..._seconds`).
    pub name: String,
    /// The metric's help text.
    #[serde(default)]
    pub help: Option<String>,
    /// The field both records share, e.g. `visit_id`. Its values are kept
    /// only as keyed hashes.
    pub key: String,
    /// What starts the clock. A second start for an open key is ignored
    /// (the first one counts).
    pub start: ConditionConfig,
    /// What stops it. An end with no open start is counted in
    /// `scrubs_signal_unmatched_end_total{signal}`.
    pub end: ConditionConfig,
    /// A start with no end within this (by record time, or waited for this
    /// long by `tick`) is a failure, e.g. `"60s"`.
    pub timeout: String,
    /// The counter of failures (default `<name>_timeout_total`).
    #[serde(default)]
    pub timeout_metric: Option<String>,
    /// Upper bounds of the buckets in seconds, ascending.
    pub buckets: Vec<f64>,
    /// Labels, from the start record.
    #[serde(default)]
    pub labels: Vec<LabelConfig>,
}

/// How a call-minute's samples are summarised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MinuteStat {
    /// The mean of the minute's samples.
    #[default]
    Mean,
    /// The largest sample of the minute.
    Max,
}

/// Per-call-minute aggregates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallMinutesConfig {
    /// The prefix of the two counters `<name>_total` (call-minutes with a
    /// sample) and `<name>_good_total` (those under the threshold).
    pub name: String,
    /// The metric's help text.
    #[serde(default)]
    pub help: Option<String>,
    /// Which records are samples (default: every record with the field).
    #[serde(default)]
    pub when: Option<ConditionConfig>,
    /// The field naming the call. Kept only as keyed hashes.
    pub key: String,
    /// The numeric sample, e.g. packet loss in percent.
    pub value: String,
    /// A minute is good when its statistic is under this.
    pub threshold: f64,
    /// `mean` (default) or `max`.
    #[serde(default)]
    pub stat: MinuteStat,
    /// A call's open minute is closed by `tick` once no sample arrived for
    /// this long (default `"90s"`).
    #[serde(default)]
    pub idle: Option<String>,
    /// Labels, from the call's first sample of the minute.
    #[serde(default)]
    pub labels: Vec<LabelConfig>,
}

impl SignalsConfig {
    /// Parses the section from YAML text (the value of `signals:`). Errors
    /// name the path, e.g. `signals.counters[0]: unknown field ...`.
    pub fn from_yaml(text: &str) -> Result<SignalsConfig, super::SignalsError> {
        let de = serde_yaml::Deserializer::from_str(text);
        SignalsConfig::deserialize(de).map_err(|e| {
            let msg = e.to_string();
            // serde_yaml puts the path first (`counters[0].when: ...`) when
            // it knows one.
            match msg.split_once(": ") {
                Some((head, _)) if !head.contains(' ') => {
                    super::SignalsError::one(format!("signals.{msg}"))
                }
                _ => super::SignalsError::one(format!("signals: {msg}")),
            }
        })
    }

    /// Reads the section from a YAML value already parsed (the pipeline's
    /// config loader hands sections over this way).
    pub fn from_value(v: serde_yaml::Value) -> Result<SignalsConfig, super::SignalsError> {
        serde_yaml::from_value(v).map_err(|e| super::SignalsError::one(format!("signals: {e}")))
    }
}
