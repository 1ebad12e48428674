/*!
Signals: metrics derived from records before redaction, inside the
boundary, that carry no PHI out of it (issue 13).

Operators describe them under `signals:` in `scrubs.yaml`:

```yaml
signals:
  preset: telehealth            # funnel, connects, durations, media quality, crisis
  fields: { event: evt, visit_id: consult_id, packet_loss: loss_pct }
  counters:
    - name: checkout_errors_total
      when: { field: level, equals: error }
      labels:
        - { field: platform, values: [ios, android, web] }
        - { field: region, pattern: "[a-z]{2}-[a-z]+-[0-9]", max_len: 16 }
  histograms:
    - name: webrtc_bitrate_kbps
      when: { field: evt, equals: media_stats }
      value: bitrate_kbps
      buckets: [100, 300, 1000, 3000]
  durations:
    - name: lab_turnaround_seconds
      key: order_id                 # kept only as a keyed hash
      start: { field: evt, equals: lab_ordered }
      end: { field: evt, equals: lab_resulted }
      timeout: 2h
      buckets: [600, 1800, 3600]
  call_minutes:
    - name: good_video_minutes
      key: call_id
      value: loss_pct
      threshold: 2
```

* **counters** count records matching a condition (a field equals / is in
  a set / matches a regex, or the raw line contains / matches);
* **histograms** observe a numeric field in configured buckets;
* **durations** time a start record to an end record sharing a key; a start
  without its end within `timeout` counts as a failure (`<name>_timeout_total`
  or `timeout_metric`); open keys are capped per signal (`max_open_keys`,
  hits counted in `scrubs_signal_open_keys_cap_hit_total`), and are kept as
  HMAC-SHA256 hashes (128 bits) under the key given to
  [`SignalsConfig::build`], never as values;
* **call_minutes** group samples by (call, minute of record time) and count
  call-minutes (`<name>_total`) and good ones (`<name>_good_total`, the
  statistic under `threshold`): a ratio exported as its two counters;
* the **`telehealth` preset** adds the visit funnel
  (`telehealth_funnel_<stage>_total` for scheduled → checked_in →
  waiting_room → connected → completed → notes_signed), connect attempts and
  successes, time to connect (failures: `telehealth_connect_failures_total`),
  waiting-room time, visit length, call drops, packet loss / jitter / RTT
  histograms and good call-minutes (mean loss < 2%); see [`preset`];
* the **crisis selector** (on with the preset, or with `crisis:`) counts
  crisis records and failed hand-offs and answers [`Signals::is_crisis`].

# Labels carry no PHI

A label value is exported only if its field is declared as a label, the
value passes the declared check (`values`, or `pattern` within `max_len`),
and the redaction engine would leave it unchanged (asked as the field's
value and as bare text). Anything else becomes `other` and is counted in
`scrubs_signal_label_rejected_total{signal,label}`. Each signal keeps at most
`max_series` series; beyond it records go to the all-`other` series and are
counted in `scrubs_signal_series_overflow_total{signal}`. Internal counters
are labelled with configuration names only. `Debug` of every type here shows
counts and names, never values.

# Use

Build once ([`SignalsConfig::build`], fallible, every problem with its path),
then per record [`Signals::observe`] (infallible, synchronous), periodically
[`Signals::tick`] (expires open keys and call-minutes), and export with
[`Signals::render_prometheus`] and [`Signals::to_otlp`]. Records are seen
through a [`RecordView`]: a JSON or logfmt line parsed here, or the caller's
fields (OTLP attributes) through [`FieldLookup`]. Record time drives
durations and minutes (the caller's `now` when a record has none).

Most lines match no signal. [`Signals::wants`] answers from the raw line
with one regex over the configured literals (event names and other
values compared for equality, which must stand as whole values:
`"evt":"completed"` or `evt=completed`, not `msg="request completed"`;
and `line_contains` texts; the regex crate searches such an alternation
with its memchr/Teddy literal prefilters), without parsing or allocating.
A signal with a regex condition on a field has no literals, and then every
JSON/logfmt line is parsed.

```
use std::collections::BTreeMap;
use std::sync::Arc;
use scrubs::signals::{RecordView, SignalsConfig};
use scrubs::{Engine, PseudonymKey, RuleSet};

let engine = Arc::new(Engine::new(&RuleSet::builtin().unwrap(), PseudonymKey::ephemeral()).unwrap());
let config = SignalsConfig::from_yaml("preset: telehealth\nfields: { event: evt }\n").unwrap();
let mut signals = config.build(engine, b"per-process random key, 16+ bytes").unwrap();

let now = 1_790_000_000_000_000_000;
let line = br#"{"evt":"connect_attempt","visit_id":"v-81","platform":"ios"}"#;
signals.observe(&RecordView::json(line, Some(now)), now);
signals.tick(now);
assert_eq!(signals.total("telehealth_connect_attempts_total"), 1);

let mut text = String::new();
signals.render_prometheus(&mut text);
assert!(!text.contains("v-81"));
let request = signals.to_otlp(&BTreeMap::new());
assert!(!request.resource_metrics.is_empty());
```

# Aggregation: our own registry, not the OpenTelemetry SDK

The numbers live in a small registry of our own (`registry.rs`: counters,
a gauge, explicit-bucket histograms) rendered both as Prometheus text and as
an OTLP `ExportMetricsServiceRequest` (cumulative; counters as monotonic
sums, histograms as explicit-bucket histograms). Reasons:

* **Footprint.** `opentelemetry_sdk` is a dev-dependency only; its metrics
  pipeline (meter provider, periodic reader, per-instrument attribute-set
  hash maps, its own exporter plumbing) would enter the release binary and
  its idle RSS, against a 16 MiB budget on one core. Our registry is a few
  vectors; series are created only for checked values.
* **The gate comes first.** Label values must be checked (declared check,
  engine, cardinality cap) before they reach an instrument. With the SDK the
  check would sit in front of an API that takes any attribute, and its own
  cardinality limit folds overflow into `otel.metric.overflow`, not our
  counted `other` series.
* **One set of numbers.** `/metrics` and the vendor export read the same
  series, so they agree by construction; with the SDK, `/metrics` would need
  a second exporter (the Prometheus exporter crate is not maintained in step
  with the SDK) reading its own aggregation.
* **Synchronous and explicit time.** Observations are plain `&mut` updates
  under the caller's lock; expiry runs on [`Signals::tick`]; no threads or
  runtime inside the module.
*/

mod call_minutes;
mod condition;
mod config;
mod correlate;
mod labels;
pub mod preset;
mod record;
mod registry;
mod tap;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

pub use self::config::{
    CallMinutesConfig, ConditionConfig, CounterConfig, CrisisConfig, DurationConfig,
    HistogramConfig, LabelConfig, MinuteStat, PresetTuning, SignalsConfig,
};
pub use self::labels::{NONE, OTHER};
pub use self::record::{FieldLookup, RecordView};
pub use self::tap::SignalsTap;

use self::call_minutes::{Minutes, Sample};
use self::condition::{Condition, Prefilter};
use self::correlate::{Correlator, End, KeyHasher, Start};
use self::labels::{valid_name, Gate, Labels};
use self::record::{normalise, Fields};
use self::registry::{Kind, Registry, SeriesRef};
use crate::Engine;

/// Label values that failed their check or that a rule would redact.
pub const LABEL_REJECTED: &str = "scrubs_signal_label_rejected_total";
/// Records counted under the all-`other` series because a signal had
/// `max_series` series already.
pub const SERIES_OVERFLOW: &str = "scrubs_signal_series_overflow_total";
/// Starts (or call-minutes) not tracked because `max_open_keys` were open.
pub const OPEN_KEYS_CAP_HIT: &str = "scrubs_signal_open_keys_cap_hit_total";
/// Keys open now, per duration or call-minute signal.
pub const OPEN_KEYS: &str = "scrubs_signal_open_keys";
/// End records with no open start.
pub const UNMATCHED_END: &str = "scrubs_signal_unmatched_end_total";
/// Records whose value field was missing or not a number.
pub const VALUE_INVALID: &str = "scrubs_signal_value_invalid_total";

const DEFAULT_MAX_SERIES: usize = 200;
const DEFAULT_MAX_OPEN_KEYS: usize = 10_000;
/// Record times further ahead of the caller's clock than this do not move
/// the record-time watermark that expires open keys.
const MAX_FUTURE_NS: i64 = 300_000_000_000;
/// The shortest hash key accepted.
pub const MIN_HASH_KEY_BYTES: usize = 16;

pub(crate) fn internal_family(name: &str) -> (&'static str, Kind, &'static [&'static str]) {
    match name {
        LABEL_REJECTED => (
            "Label values exported as `other`: failed their check or would be redacted.",
            Kind::Counter,
            &["signal", "label"],
        ),
        SERIES_OVERFLOW => (
            "Records counted under the all-`other` series: the signal had max_series series.",
            Kind::Counter,
            &["signal"],
        ),
        OPEN_KEYS_CAP_HIT => (
            "Starts or call-minutes not tracked: max_open_keys keys were open.",
            Kind::Counter,
            &["signal"],
        ),
        OPEN_KEYS => ("Keys open now.", Kind::Gauge, &["signal"]),
        UNMATCHED_END => (
            "End records with no open start (never started, expired, or not tracked).",
            Kind::Counter,
            &["signal"],
        ),
        VALUE_INVALID => (
            "Records whose value field was missing or not a finite number.",
            Kind::Counter,
            &["signal"],
        ),
        _ => ("", Kind::Counter, &[]),
    }
}

/// Configuration problems, each naming its path (`signals.durations[2].end:
/// ...`). Never holds event content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalsError {
    problems: Vec<String>,
}

impl SignalsError {
    fn one(msg: String) -> SignalsError {
        SignalsError {
            problems: vec![msg],
        }
    }

    /// Every problem, one sentence each, path first.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}

impl fmt::Display for SignalsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("; "))
    }
}

impl std::error::Error for SignalsError {}

/// Problems collected while building.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<String>);

impl Problems {
    pub(crate) fn push(&mut self, path: &str, msg: &str) {
        self.0.push(format!("{path}: {msg}"));
    }
}

struct Counter {
    name: String,
    when: Condition,
    labels: Labels,
    fam: usize,
    overflow: SeriesRef,
}

struct Hist {
    name: String,
    when: Option<Condition>,
    value: String,
    labels: Labels,
    fam: usize,
    overflow: SeriesRef,
    invalid: SeriesRef,
}

struct Duration {
    key: String,
    start: Condition,
    end: Condition,
    labels: Labels,
    hist: usize,
    timeout: usize,
    open: Correlator,
    overflow: SeriesRef,
    cap_hit: SeriesRef,
    unmatched: SeriesRef,
    gauge: SeriesRef,
}

struct CallMinutes {
    when: Option<Condition>,
    key: String,
    value: String,
    labels: Labels,
    total: usize,
    good: usize,
    open: Minutes,
    overflow: SeriesRef,
    cap_hit: SeriesRef,
    invalid: SeriesRef,
    gauge: SeriesRef,
}

/// The prefilter of built signals, detached: cheap to clone, `Send +
/// Sync`, so that threads can skip records without taking the lock that
/// guards [`Signals`].
#[derive(Clone, Debug)]
pub struct SignalsFilter {
    prefilter: Prefilter,
    empty: bool,
}

impl SignalsFilter {
    /// As [`Signals::wants`].
    pub fn wants(&self, record: &RecordView<'_>) -> bool {
        !self.empty && self.prefilter.may_match(record)
    }
}

/// The crisis selector of built signals, detached like
/// [`SignalsFilter`]: the pipeline asks it for every record that may go to
/// a vendor, without the lock that guards [`Signals`].
pub struct CrisisSelector {
    cond: Condition,
    pre: Prefilter,
    wanted: HashSet<String>,
}

impl fmt::Debug for CrisisSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrisisSelector")
            .field("fields", &self.wanted.len())
            .finish_non_exhaustive()
    }
}

impl CrisisSelector {
    /// As [`Signals::is_crisis`].
    pub fn is_crisis(&self, record: &RecordView<'_>) -> bool {
        if !self.pre.may_match(record) {
            return false;
        }
        let mut fields = Fields::default();
        record.fields_into(&self.wanted, &mut fields);
        self.cond.eval(record, &fields)
    }
}

/// Built signals: observe records, tick, export.
pub struct Signals {
    counters: Vec<Counter>,
    histograms: Vec<Hist>,
    durations: Vec<Duration>,
    minutes: Vec<CallMinutes>,
    crisis: Option<Arc<CrisisSelector>>,
    prefilter: Prefilter,
    wanted: HashSet<String>,
    fields: Fields,
    gate: Gate,
    hasher: KeyHasher,
    registry: Registry,
    /// The newest record time seen (bounded by the caller's clock).
    watermark_ns: i64,
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signals")
            .field(
                "counters",
                &self.counters.iter().map(|c| &c.name).collect::<Vec<_>>(),
            )
            .field(
                "histograms",
                &self.histograms.iter().map(|c| &c.name).collect::<Vec<_>>(),
            )
            .field("durations", &self.durations.len())
            .field("call_minutes", &self.minutes.len())
            .field("crisis", &self.crisis.is_some())
            .field("open_keys", &self.open_keys())
            .field("registry", &self.registry)
            .finish()
    }
}

fn compile_when(c: &ConditionConfig, path: &str, p: &mut Problems) -> Option<Condition> {
    Condition::compile(c, path, p)
}

fn check_buckets(b: &[f64], path: &str, p: &mut Problems) {
    if b.is_empty() {
        p.push(path, "is empty");
    } else if b.iter().any(|v| !v.is_finite()) {
        p.push(path, "must be finite numbers");
    } else if b.windows(2).any(|w| w[0] >= w[1]) {
        p.push(path, "must be strictly ascending");
    }
}

fn check_name(name: &str, path: &str, p: &mut Problems) {
    if !valid_name(name) || name.bytes().any(|b| b.is_ascii_uppercase()) {
        p.push(path, "must match [a-z_][a-z0-9_]*");
    } else if name.starts_with("scrubs_") {
        p.push(path, "names starting with `scrubs_` are scrubs' own");
    }
}

fn parse_timeout(s: &str, path: &str, p: &mut Problems) -> i64 {
    match crate::units::parse_duration(s) {
        Ok(d) if !d.is_zero() => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Ok(_) => {
            p.push(path, "must be more than zero");
            0
        }
        Err(e) => {
            p.push(path, &e);
            0
        }
    }
}

fn field_key(name: &str, path: &str, p: &mut Problems) -> String {
    let k = normalise(name);
    if k.is_empty() {
        p.push(
            path,
            "has no letters or digits, or more than 48 after dropping the others",
        );
    }
    k
}

impl SignalsConfig {
    /// Checks the configuration and builds the signals. `engine` is the
    /// redaction engine label values are checked against; `hash_key` keys
    /// the hashes of correlation keys (at least 16 bytes; e.g. derived from
    /// the pseudonym key, or random per process). Every problem is
    /// reported, each with its path.
    pub fn build(&self, engine: Arc<Engine>, hash_key: &[u8]) -> Result<Signals, SignalsError> {
        let mut p = Problems::default();
        if hash_key.len() < MIN_HASH_KEY_BYTES {
            p.push(
                "signals (hash key)",
                &format!("the key must be at least {MIN_HASH_KEY_BYTES} bytes"),
            );
        }
        let max_series = self.max_series.unwrap_or(DEFAULT_MAX_SERIES);
        if max_series == 0 {
            p.push("signals.max_series", "must be at least 1");
        }
        let max_open = self.max_open_keys.unwrap_or(DEFAULT_MAX_OPEN_KEYS);
        if max_open == 0 {
            p.push("signals.max_open_keys", "must be at least 1");
        }
        let ex = preset::expand(self, &mut p);
        let mut reg = Registry::new();
        let mut literal_sets: Vec<Option<Vec<condition::Literal>>> = Vec::new();
        let mut wanted = HashSet::new();
        let family = |reg: &mut Registry,
                      name: &str,
                      help: &Option<String>,
                      kind: Kind,
                      labels: &Labels,
                      bounds: &[f64],
                      path: &str,
                      p: &mut Problems|
         -> usize {
            let help = help.clone().unwrap_or_else(|| format!("Signal {name}."));
            match reg.family(
                name,
                &help,
                kind,
                labels.names(),
                bounds.to_vec(),
                max_series.max(1),
            ) {
                Ok(f) => f,
                Err(e) => {
                    p.push(path, &e);
                    0
                }
            }
        };

        let sources = |own: usize, preset: usize| {
            (0..own)
                .map(|i| (false, i))
                .chain((0..preset).map(|i| (true, i)))
                .collect::<Vec<_>>()
        };
        let path_of = |is_preset: bool, list: &str, i: usize| {
            if is_preset {
                format!("signals.preset.{list}[{i}]")
            } else {
                format!("signals.{list}[{i}]")
            }
        };

        let mut counters = Vec::new();
        for (is_p, i) in sources(self.counters.len(), ex.counters.len()) {
            let c = if is_p {
                &ex.counters[i]
            } else {
                &self.counters[i]
            };
            let path = path_of(is_p, "counters", i);
            check_name(&c.name, &format!("{path}.name"), &mut p);
            let when = compile_when(&c.when, &format!("{path}.when"), &mut p);
            let labels = Labels::compile(
                &c.labels,
                &format!("{path}.labels"),
                &c.name,
                &mut reg,
                &mut p,
            );
            let fam = family(
                &mut reg,
                &c.name,
                &c.help,
                Kind::Counter,
                &labels,
                &[],
                &format!("{path}.name"),
                &mut p,
            );
            let overflow = reg.internal_series(SERIES_OVERFLOW, &[&c.name]);
            if let Some(when) = when {
                literal_sets.push(when.literals());
                when.fields(&mut wanted);
                labels.fields(&mut wanted);
                counters.push(Counter {
                    name: c.name.clone(),
                    when,
                    labels,
                    fam,
                    overflow,
                });
            }
        }

        let mut histograms = Vec::new();
        for (is_p, i) in sources(self.histograms.len(), ex.histograms.len()) {
            let h = if is_p {
                &ex.histograms[i]
            } else {
                &self.histograms[i]
            };
            let path = path_of(is_p, "histograms", i);
            check_name(&h.name, &format!("{path}.name"), &mut p);
            check_buckets(&h.buckets, &format!("{path}.buckets"), &mut p);
            let when = h
                .when
                .as_ref()
                .map(|w| compile_when(w, &format!("{path}.when"), &mut p));
            let value = field_key(&h.value, &format!("{path}.value"), &mut p);
            let labels = Labels::compile(
                &h.labels,
                &format!("{path}.labels"),
                &h.name,
                &mut reg,
                &mut p,
            );
            let fam = family(
                &mut reg,
                &h.name,
                &h.help,
                Kind::Histogram,
                &labels,
                &h.buckets,
                &format!("{path}.name"),
                &mut p,
            );
            let overflow = reg.internal_series(SERIES_OVERFLOW, &[&h.name]);
            let invalid = reg.internal_series(VALUE_INVALID, &[&h.name]);
            let when = match when {
                Some(Some(w)) => Some(w),
                Some(None) => continue,
                None => None,
            };
            literal_sets.push(when.as_ref().and_then(Condition::literals));
            if let Some(w) = &when {
                w.fields(&mut wanted);
            }
            wanted.insert(value.clone());
            labels.fields(&mut wanted);
            histograms.push(Hist {
                name: h.name.clone(),
                when,
                value,
                labels,
                fam,
                overflow,
                invalid,
            });
        }

        let mut durations = Vec::new();
        for (is_p, i) in sources(self.durations.len(), ex.durations.len()) {
            let d = if is_p {
                &ex.durations[i]
            } else {
                &self.durations[i]
            };
            let path = path_of(is_p, "durations", i);
            check_name(&d.name, &format!("{path}.name"), &mut p);
            check_buckets(&d.buckets, &format!("{path}.buckets"), &mut p);
            let key = field_key(&d.key, &format!("{path}.key"), &mut p);
            let start = compile_when(&d.start, &format!("{path}.start"), &mut p);
            let end = compile_when(&d.end, &format!("{path}.end"), &mut p);
            let timeout_ns = parse_timeout(&d.timeout, &format!("{path}.timeout"), &mut p);
            let timeout_name = d
                .timeout_metric
                .clone()
                .unwrap_or_else(|| format!("{}_timeout_total", d.name));
            check_name(&timeout_name, &format!("{path}.timeout_metric"), &mut p);
            let labels = Labels::compile(
                &d.labels,
                &format!("{path}.labels"),
                &d.name,
                &mut reg,
                &mut p,
            );
            let hist = family(
                &mut reg,
                &d.name,
                &d.help,
                Kind::Histogram,
                &labels,
                &d.buckets,
                &format!("{path}.name"),
                &mut p,
            );
            let help = Some(format!(
                "Starts of {} with no end within the timeout.",
                d.name
            ));
            let timeout = family(
                &mut reg,
                &timeout_name,
                &help,
                Kind::Counter,
                &labels,
                &[],
                &format!("{path}.timeout_metric"),
                &mut p,
            );
            let (Some(start), Some(end)) = (start, end) else {
                continue;
            };
            let mut lits = start.literals();
            match (&mut lits, end.literals()) {
                (Some(a), Some(b)) => a.extend(b),
                _ => lits = None,
            }
            literal_sets.push(lits);
            start.fields(&mut wanted);
            end.fields(&mut wanted);
            wanted.insert(key.clone());
            labels.fields(&mut wanted);
            durations.push(Duration {
                overflow: reg.internal_series(SERIES_OVERFLOW, &[&d.name]),
                cap_hit: reg.internal_series(OPEN_KEYS_CAP_HIT, &[&d.name]),
                unmatched: reg.internal_series(UNMATCHED_END, &[&d.name]),
                gauge: reg.internal_series(OPEN_KEYS, &[&d.name]),
                key,
                start,
                end,
                labels,
                hist,
                timeout,
                open: Correlator::new(timeout_ns, max_open.max(1)),
            });
        }

        let mut minutes = Vec::new();
        for (is_p, i) in sources(self.call_minutes.len(), ex.call_minutes.len()) {
            let m = if is_p {
                &ex.call_minutes[i]
            } else {
                &self.call_minutes[i]
            };
            let path = path_of(is_p, "call_minutes", i);
            check_name(&m.name, &format!("{path}.name"), &mut p);
            if !m.threshold.is_finite() {
                p.push(&format!("{path}.threshold"), "must be a finite number");
            }
            let when = m
                .when
                .as_ref()
                .map(|w| compile_when(w, &format!("{path}.when"), &mut p));
            let key = field_key(&m.key, &format!("{path}.key"), &mut p);
            let value = field_key(&m.value, &format!("{path}.value"), &mut p);
            let idle_ns = parse_timeout(
                m.idle.as_deref().unwrap_or("90s"),
                &format!("{path}.idle"),
                &mut p,
            );
            let labels = Labels::compile(
                &m.labels,
                &format!("{path}.labels"),
                &m.name,
                &mut reg,
                &mut p,
            );
            let help_total = Some(
                m.help
                    .clone()
                    .unwrap_or_else(|| format!("Call-minutes of {}.", m.name)),
            );
            let help_good = Some(format!("Call-minutes of {} under the threshold.", m.name));
            let total = family(
                &mut reg,
                &format!("{}_total", m.name),
                &help_total,
                Kind::Counter,
                &labels,
                &[],
                &format!("{path}.name"),
                &mut p,
            );
            let good = family(
                &mut reg,
                &format!("{}_good_total", m.name),
                &help_good,
                Kind::Counter,
                &labels,
                &[],
                &format!("{path}.name"),
                &mut p,
            );
            let when = match when {
                Some(Some(w)) => Some(w),
                Some(None) => continue,
                None => None,
            };
            literal_sets.push(when.as_ref().and_then(Condition::literals));
            if let Some(w) = &when {
                w.fields(&mut wanted);
            }
            wanted.insert(key.clone());
            wanted.insert(value.clone());
            labels.fields(&mut wanted);
            minutes.push(CallMinutes {
                overflow: reg.internal_series(SERIES_OVERFLOW, &[&m.name]),
                cap_hit: reg.internal_series(OPEN_KEYS_CAP_HIT, &[&m.name]),
                invalid: reg.internal_series(VALUE_INVALID, &[&m.name]),
                gauge: reg.internal_series(OPEN_KEYS, &[&m.name]),
                when,
                key,
                value,
                labels,
                total,
                good,
                open: Minutes::new(m.threshold, m.stat, idle_ns, max_open.max(1)),
            });
        }

        let crisis = ex.crisis.as_ref().and_then(|(any, _)| {
            // Its counters are among `counters`; this is the predicate.
            let c = compile_when(any, "signals.crisis", &mut p)?;
            c.fields(&mut wanted);
            let mut own = HashSet::new();
            c.fields(&mut own);
            let pre = Prefilter::new(&[c.literals()]);
            Some(Arc::new(CrisisSelector {
                cond: c,
                pre,
                wanted: own,
            }))
        });

        // The crisis selector's literals are among the prefilter's (its
        // counters are too, but this says so), so that a line no signal
        // wants is no crisis record either: `SignalsTap::screen_line`
        // answers both from one scan.
        if let Some(c) = &crisis {
            literal_sets.push(c.cond.literals());
        }
        if !p.0.is_empty() {
            return Err(SignalsError { problems: p.0 });
        }
        Ok(Signals {
            counters,
            histograms,
            durations,
            minutes,
            crisis,
            prefilter: Prefilter::new(&literal_sets),
            wanted,
            fields: Fields::default(),
            gate: Gate::new(engine),
            hasher: KeyHasher::new(hash_key),
            registry: reg,
            watermark_ns: i64::MIN,
        })
    }
}

fn number(fields: &Fields, key: &str) -> Option<f64> {
    fields
        .get(key)?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

impl Signals {
    /// Whether `record` may match some signal, from its raw line alone
    /// (always true for records with caller-supplied fields). No parsing,
    /// no allocation: callers may ask before taking a lock.
    pub fn wants(&self, record: &RecordView<'_>) -> bool {
        !self.is_empty() && self.prefilter.may_match(record)
    }

    /// The prefilter, detached from the signals (see [`SignalsFilter`]).
    pub fn filter(&self) -> SignalsFilter {
        SignalsFilter {
            prefilter: self.prefilter.clone(),
            empty: self.is_empty(),
        }
    }

    /// Checks label values against a new engine from now on (after a rules
    /// reload); values admitted under the old one are checked again.
    pub fn set_engine(&mut self, engine: Arc<Engine>) {
        self.gate = Gate::new(engine);
        let Signals {
            counters,
            histograms,
            durations,
            minutes,
            ..
        } = self;
        counters.iter_mut().for_each(|c| c.labels.forget());
        histograms.iter_mut().for_each(|c| c.labels.forget());
        durations.iter_mut().for_each(|c| c.labels.forget());
        minutes.iter_mut().for_each(|c| c.labels.forget());
    }

    fn is_empty(&self) -> bool {
        self.counters.is_empty()
            && self.histograms.is_empty()
            && self.durations.is_empty()
            && self.minutes.is_empty()
    }

    /// Counts one record into every signal it matches. `now_unix_nano` is
    /// the caller's clock, used when the record has no time.
    pub fn observe(&mut self, record: &RecordView<'_>, now_unix_nano: i64) {
        if self.wants(record) {
            self.observe_wanted(record, now_unix_nano);
        }
    }

    /// As [`Signals::observe`], for a record that [`Signals::wants`]
    /// already took (its prefilter is not run again).
    pub(crate) fn observe_wanted(&mut self, record: &RecordView<'_>, now_unix_nano: i64) {
        let t = record.time_unix_nano().unwrap_or(now_unix_nano);
        if t <= now_unix_nano.saturating_add(MAX_FUTURE_NS) {
            self.watermark_ns = self.watermark_ns.max(t);
        }
        let Signals {
            counters,
            histograms,
            durations,
            minutes,
            wanted,
            fields,
            gate,
            hasher,
            registry: reg,
            ..
        } = self;
        record.fields_into(wanted, fields);

        for c in counters.iter_mut() {
            if !c.when.eval(record, fields) {
                continue;
            }
            let values = c.labels.resolve(fields, gate, reg);
            let (s, over) = reg.series(c.fam, values);
            if over {
                reg.inc(c.overflow, 1);
            }
            reg.inc(s, 1);
        }

        for h in histograms.iter_mut() {
            if let Some(w) = &h.when {
                if !w.eval(record, fields) {
                    continue;
                }
            }
            let Some(v) = number(fields, &h.value) else {
                // Without a condition, a record lacking the field is simply
                // not a sample.
                if h.when.is_some() {
                    reg.inc(h.invalid, 1);
                }
                continue;
            };
            let values = h.labels.resolve(fields, gate, reg);
            let (s, over) = reg.series(h.fam, values);
            if over {
                reg.inc(h.overflow, 1);
            }
            reg.observe(s, v);
        }

        for d in durations.iter_mut() {
            let is_end = d.end.eval(record, fields);
            let is_start = !is_end && d.start.eval(record, fields);
            if !(is_end || is_start) {
                continue;
            }
            let Some(kv) = fields.get(&d.key) else {
                continue;
            };
            let key = hasher.hash(kv);
            if is_end {
                match d.open.end(key, t) {
                    End::Duration(secs, s) => reg.observe(s, secs),
                    End::TimedOut(s) => reg.inc(s, 1),
                    End::Unmatched => reg.inc(d.unmatched, 1),
                }
            } else {
                match d.open.check_start(key) {
                    Start::AlreadyOpen => {}
                    Start::CapHit => reg.inc(d.cap_hit, 1),
                    Start::Opened => {
                        let values = d.labels.resolve(fields, gate, reg);
                        let (h, over) = reg.series(d.hist, values);
                        let (to, _) = reg.series(d.timeout, values);
                        if over {
                            reg.inc(d.overflow, 1);
                        }
                        d.open.open(key, t, now_unix_nano, h, to);
                    }
                }
            }
            reg.set(d.gauge, d.open.len() as u64);
        }

        for m in minutes.iter_mut() {
            if let Some(w) = &m.when {
                if !w.eval(record, fields) {
                    continue;
                }
            }
            let Some(kv) = fields.get(&m.key) else {
                continue;
            };
            let Some(v) = number(fields, &m.value) else {
                if m.when.is_some() {
                    reg.inc(m.invalid, 1);
                }
                continue;
            };
            let key = hasher.hash(kv);
            let values = m.labels.resolve(fields, gate, reg);
            let (total, over) = reg.series(m.total, values);
            let (good, _) = reg.series(m.good, values);
            if over {
                reg.inc(m.overflow, 1);
            }
            match m.open.sample(key, t, now_unix_nano, v, (total, good)) {
                Sample::Added => {}
                Sample::CapHit => reg.inc(m.cap_hit, 1),
                Sample::Rolled(c) => {
                    reg.inc(c.series.0, 1);
                    if c.good {
                        reg.inc(c.series.1, 1);
                    }
                }
            }
            reg.set(m.gauge, m.open.len() as u64);
        }
    }

    /// Expires open keys: a start with no end within its timeout (by record
    /// time or by this clock) counts as a failure; an idle call-minute is
    /// closed and counted. Call it every second or so.
    pub fn tick(&mut self, now_unix_nano: i64) {
        let wm = self.watermark_ns;
        let reg = &mut self.registry;
        for d in &mut self.durations {
            d.open.expire(now_unix_nano, wm, |s| reg.inc(s, 1));
            reg.set(d.gauge, d.open.len() as u64);
        }
        for m in &mut self.minutes {
            m.open.expire(now_unix_nano, wm, |c| {
                reg.inc(c.series.0, 1);
                if c.good {
                    reg.inc(c.series.1, 1);
                }
            });
            reg.set(m.gauge, m.open.len() as u64);
        }
    }

    /// Whether the record is a crisis record (988 hand-off, escalation,
    /// failed hand-off), by the crisis selector. False when the selector is
    /// off. Cheap for lines that name no crisis event.
    pub fn is_crisis(&self, record: &RecordView<'_>) -> bool {
        self.crisis.as_ref().is_some_and(|c| c.is_crisis(record))
    }

    /// The crisis selector, detached (lock-free, shared by the workers), if
    /// it is on.
    pub fn crisis_selector(&self) -> Option<Arc<CrisisSelector>> {
        self.crisis.clone()
    }

    /// Keys open now, over every duration and call-minute signal.
    pub fn open_keys(&self) -> usize {
        self.durations.iter().map(|d| d.open.len()).sum::<usize>()
            + self.minutes.iter().map(|m| m.open.len()).sum::<usize>()
    }

    /// A counter's or gauge's value by metric name and label values in the
    /// family's label order; a histogram's count. `None` if no such series.
    pub fn value(&self, name: &str, labels: &[&str]) -> Option<u64> {
        self.registry.value(name, labels)
    }

    /// A metric's total over all its series (for histograms, the count).
    pub fn total(&self, name: &str) -> u64 {
        self.registry.total(name)
    }

    /// A histogram's per-bucket (not cumulative) counts over all series;
    /// the last is the `+Inf` bucket.
    pub fn bucket_counts(&self, name: &str) -> Option<Vec<u64>> {
        self.registry.buckets(name)
    }

    /// Appends every signal in the Prometheus text format.
    pub fn render_prometheus(&self, out: &mut String) {
        self.registry.render_prometheus(out)
    }

    /// Every signal as one OTLP request: cumulative temporality, counters
    /// as monotonic sums, histograms with explicit buckets, open keys as a
    /// gauge; `resource` becomes the resource's attributes.
    pub fn to_otlp(&self, resource: &BTreeMap<String, String>) -> ExportMetricsServiceRequest {
        self.registry.to_otlp(resource)
    }

    #[cfg(test)]
    fn series_count(&self, name: &str) -> usize {
        self.registry.series_count(name)
    }
}

#[cfg(test)]
mod tests;
