//! Redaction of OTLP structures in place.
//!
//! Every place in an OTLP logs, traces or metrics payload that can carry
//! free text or a structured value goes through the engine: log bodies
//! (string and structured), log, span, span event, span link, resource,
//! scope, metric metadata, data point and exemplar attributes, span and
//! event names, status messages, trace states, scope names and versions, and
//! metric names, descriptions and units. Identifiers (trace and span ids),
//! timestamps, enums and metric values are left alone.
//!
//! Attributes are key/value trees. A key names a rule the way a JSON key
//! does (see [`Engine::key_rule`]): by itself (`patient.name`), joined to
//! the key of the enclosing list (`patient` → `name`), or inherited from an
//! enclosing key that names a rule (every value under `patient` is a name).
//! Array elements inherit the key of the array. Values whose rule says
//! `drop_field` are removed from their list.
//!
//! The walk fails closed. A tree nested deeper than [`MAX_DEPTH`] has the
//! too-deep subtree replaced by [`DEPTH_PLACEHOLDER`]; a resource with more
//! than [`MAX_VALUES`] values is emptied and reported as an error, so that
//! nothing unredacted is left in it even if the caller forwards it anyway.
//! The functions are total: no input makes them panic.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{Exemplar, Metric, ResourceMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

use crate::{Engine, FieldResult, Scratch};

/// Containers (arrays and key/value lists) nested deeper than this inside
/// one attribute or log body are replaced by [`DEPTH_PLACEHOLDER`].
pub const MAX_DEPTH: usize = 32;

/// What replaces a subtree nested deeper than [`MAX_DEPTH`].
pub const DEPTH_PLACEHOLDER: &str = "[REDACTED:DEPTH]";

/// The most values (attributes, array elements, text fields) one resource
/// may hold. Past it the resource is emptied and [`RedactError::TooManyValues`]
/// is returned. A time budget in disguise: the engine is linear in the
/// bytes, this bounds the per-value overhead.
pub const MAX_VALUES: usize = 1 << 20;

/// Why a resource could not be redacted. The resource has been emptied: its
/// records are gone (count them as dropped), nothing unredacted remains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedactError {
    /// The resource held more than `limit` values.
    TooManyValues {
        /// The limit that was exceeded.
        limit: usize,
        /// The records (log records, spans or data points) removed with the
        /// resource.
        records: usize,
    },
}

impl RedactError {
    /// The records removed from the resource.
    pub fn records(&self) -> usize {
        match self {
            RedactError::TooManyValues { records, .. } => *records,
        }
    }
}

impl fmt::Display for RedactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedactError::TooManyValues { limit, records } => write!(
                f,
                "resource holds more than {limit} values; its {records} records were dropped"
            ),
        }
    }
}

impl std::error::Error for RedactError {}

/// What a walk did, beyond the per-rule counts kept in the [`Scratch`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RedactStats {
    /// Values and text fields examined.
    pub values: u64,
    /// Values or text fields rewritten (including type changes of numbers
    /// replaced by a label).
    pub rewritten: u64,
    /// Attributes or array elements removed by a `drop_field` rule.
    pub dropped: u64,
    /// Subtrees replaced by [`DEPTH_PLACEHOLDER`].
    pub depth_truncated: u64,
}

impl RedactStats {
    /// Adds another walk's counts to these.
    pub fn merge(&mut self, other: &RedactStats) {
        self.values += other.values;
        self.rewritten += other.rewritten;
        self.dropped += other.dropped;
        self.depth_truncated += other.depth_truncated;
    }
}

/// Redacts one `ResourceLogs` in place.
pub fn redact_logs(engine: &Engine, scratch: &mut Scratch, rl: &mut ResourceLogs) -> Result<(), RedactError> {
    redact_logs_with_stats(engine, scratch, rl, &mut RedactStats::default())
}

/// Redacts one `ResourceSpans` in place.
pub fn redact_spans(engine: &Engine, scratch: &mut Scratch, rs: &mut ResourceSpans) -> Result<(), RedactError> {
    redact_spans_with_stats(engine, scratch, rs, &mut RedactStats::default())
}

/// Redacts one `ResourceMetrics` in place.
pub fn redact_metrics(engine: &Engine, scratch: &mut Scratch, rm: &mut ResourceMetrics) -> Result<(), RedactError> {
    redact_metrics_with_stats(engine, scratch, rm, &mut RedactStats::default())
}

/// [`redact_logs`], adding what it did to `stats`.
pub fn redact_logs_with_stats(
    engine: &Engine,
    scratch: &mut Scratch,
    rl: &mut ResourceLogs,
    stats: &mut RedactStats,
) -> Result<(), RedactError> {
    let mut cx = Walk::new(engine, scratch, stats);
    let res = cx.logs(rl);
    if res.is_err() {
        let records = rl.scope_logs.iter().map(|s| s.log_records.len()).sum();
        rl.resource = None;
        rl.scope_logs.clear();
        rl.schema_url.clear();
        return Err(RedactError::TooManyValues {
            limit: MAX_VALUES,
            records,
        });
    }
    Ok(())
}

/// [`redact_spans`], adding what it did to `stats`.
pub fn redact_spans_with_stats(
    engine: &Engine,
    scratch: &mut Scratch,
    rs: &mut ResourceSpans,
    stats: &mut RedactStats,
) -> Result<(), RedactError> {
    let mut cx = Walk::new(engine, scratch, stats);
    let res = cx.spans(rs);
    if res.is_err() {
        let records = rs.scope_spans.iter().map(|s| s.spans.len()).sum();
        rs.resource = None;
        rs.scope_spans.clear();
        rs.schema_url.clear();
        return Err(RedactError::TooManyValues {
            limit: MAX_VALUES,
            records,
        });
    }
    Ok(())
}

/// [`redact_metrics`], adding what it did to `stats`.
pub fn redact_metrics_with_stats(
    engine: &Engine,
    scratch: &mut Scratch,
    rm: &mut ResourceMetrics,
    stats: &mut RedactStats,
) -> Result<(), RedactError> {
    let mut cx = Walk::new(engine, scratch, stats);
    let res = cx.metrics(rm);
    if res.is_err() {
        let records = rm
            .scope_metrics
            .iter()
            .flat_map(|s| &s.metrics)
            .map(data_points)
            .sum();
        rm.resource = None;
        rm.scope_metrics.clear();
        rm.schema_url.clear();
        return Err(RedactError::TooManyValues {
            limit: MAX_VALUES,
            records,
        });
    }
    Ok(())
}

/// The number of data points in a metric.
pub fn data_points(m: &Metric) -> usize {
    match &m.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

/// The budget ran out.
struct OverBudget;

type Step = Result<(), OverBudget>;

/// What to do with a value after redaction.
enum Verdict {
    Keep,
    Drop,
}

struct Walk<'e, 's> {
    engine: &'e Engine,
    scratch: &'s mut Scratch,
    stats: &'s mut RedactStats,
    budget: usize,
    /// Reused buffer for `parent + key` lookups.
    joined: String,
    /// Reused buffer for numbers written as text.
    num: String,
}

impl<'e, 's> Walk<'e, 's> {
    fn new(engine: &'e Engine, scratch: &'s mut Scratch, stats: &'s mut RedactStats) -> Self {
        Walk {
            engine,
            scratch,
            stats,
            budget: MAX_VALUES,
            joined: String::new(),
            num: String::new(),
        }
    }

    fn tick(&mut self) -> Step {
        if self.budget == 0 {
            return Err(OverBudget);
        }
        self.budget -= 1;
        self.stats.values += 1;
        Ok(())
    }

    /// Runs a free-text field through the engine.
    fn text(&mut self, s: &mut String) -> Step {
        self.tick()?;
        if s.is_empty() {
            return Ok(());
        }
        if let Cow::Owned(new) = self.engine.redact_str(self.scratch, s) {
            *s = new;
            self.stats.rewritten += 1;
        }
        Ok(())
    }

    fn resource(&mut self, r: &mut Option<Resource>) -> Step {
        if let Some(r) = r {
            self.attrs(&mut r.attributes, "", None, 0)?;
        }
        Ok(())
    }

    fn scope(&mut self, s: &mut Option<InstrumentationScope>) -> Step {
        if let Some(s) = s {
            self.text(&mut s.name)?;
            self.text(&mut s.version)?;
            self.attrs(&mut s.attributes, "", None, 0)?;
        }
        Ok(())
    }

    fn logs(&mut self, rl: &mut ResourceLogs) -> Step {
        self.resource(&mut rl.resource)?;
        self.text(&mut rl.schema_url)?;
        for sl in &mut rl.scope_logs {
            self.scope(&mut sl.scope)?;
            self.text(&mut sl.schema_url)?;
            for lr in &mut sl.log_records {
                self.log_record(lr)?;
            }
        }
        Ok(())
    }

    fn log_record(&mut self, lr: &mut LogRecord) -> Step {
        self.text(&mut lr.severity_text)?;
        self.text(&mut lr.event_name)?;
        if let Some(body) = &mut lr.body {
            if let Verdict::Drop = self.value(body, "", None, 0)? {
                lr.body = None;
                self.stats.dropped += 1;
            }
        }
        self.attrs(&mut lr.attributes, "", None, 0)
    }

    fn spans(&mut self, rs: &mut ResourceSpans) -> Step {
        self.resource(&mut rs.resource)?;
        self.text(&mut rs.schema_url)?;
        for ss in &mut rs.scope_spans {
            self.scope(&mut ss.scope)?;
            self.text(&mut ss.schema_url)?;
            for span in &mut ss.spans {
                self.span(span)?;
            }
        }
        Ok(())
    }

    fn span(&mut self, span: &mut Span) -> Step {
        self.text(&mut span.name)?;
        self.text(&mut span.trace_state)?;
        self.attrs(&mut span.attributes, "", None, 0)?;
        for ev in &mut span.events {
            self.text(&mut ev.name)?;
            self.attrs(&mut ev.attributes, "", None, 0)?;
        }
        for link in &mut span.links {
            self.text(&mut link.trace_state)?;
            self.attrs(&mut link.attributes, "", None, 0)?;
        }
        if let Some(st) = &mut span.status {
            self.text(&mut st.message)?;
        }
        Ok(())
    }

    fn metrics(&mut self, rm: &mut ResourceMetrics) -> Step {
        self.resource(&mut rm.resource)?;
        self.text(&mut rm.schema_url)?;
        for sm in &mut rm.scope_metrics {
            self.scope(&mut sm.scope)?;
            self.text(&mut sm.schema_url)?;
            for m in &mut sm.metrics {
                self.metric(m)?;
            }
        }
        Ok(())
    }

    fn metric(&mut self, m: &mut Metric) -> Step {
        self.text(&mut m.name)?;
        self.text(&mut m.description)?;
        self.text(&mut m.unit)?;
        self.attrs(&mut m.metadata, "", None, 0)?;
        match &mut m.data {
            Some(Data::Gauge(g)) => {
                for p in &mut g.data_points {
                    self.attrs(&mut p.attributes, "", None, 0)?;
                    self.exemplars(&mut p.exemplars)?;
                }
            }
            Some(Data::Sum(s)) => {
                for p in &mut s.data_points {
                    self.attrs(&mut p.attributes, "", None, 0)?;
                    self.exemplars(&mut p.exemplars)?;
                }
            }
            Some(Data::Histogram(h)) => {
                for p in &mut h.data_points {
                    self.attrs(&mut p.attributes, "", None, 0)?;
                    self.exemplars(&mut p.exemplars)?;
                }
            }
            Some(Data::ExponentialHistogram(h)) => {
                for p in &mut h.data_points {
                    self.attrs(&mut p.attributes, "", None, 0)?;
                    self.exemplars(&mut p.exemplars)?;
                }
            }
            Some(Data::Summary(s)) => {
                for p in &mut s.data_points {
                    self.attrs(&mut p.attributes, "", None, 0)?;
                }
            }
            None => {}
        }
        Ok(())
    }

    fn exemplars(&mut self, ex: &mut [Exemplar]) -> Step {
        for e in ex {
            self.attrs(&mut e.filtered_attributes, "", None, 0)?;
        }
        Ok(())
    }

    /// Redacts a list of attributes. `parent` is the key of the enclosing
    /// list (empty at the top), `inherited` a key naming the rule that an
    /// enclosing key imposes on everything below it.
    fn attrs(&mut self, list: &mut Vec<KeyValue>, parent: &str, inherited: Option<&str>, depth: usize) -> Step {
        let mut i = 0;
        while i < list.len() {
            self.tick()?;
            let KeyValue { key, value, .. } = &mut list[i];
            // The key that names this value's rule: its own, parent+own, or
            // inherited from above.
            let rule_key: Option<Cow<'_, str>> = if self.engine.key_rule(key).is_some() {
                Some(Cow::Borrowed(key.as_str()))
            } else if !parent.is_empty() && !key.is_empty() && self.joined_rule(parent, key) {
                Some(Cow::Owned(self.joined.clone()))
            } else {
                inherited.map(Cow::Borrowed)
            };
            let verdict = match value {
                Some(v) => self.value(v, key, rule_key.as_deref(), depth)?,
                None => Verdict::Keep,
            };
            match verdict {
                Verdict::Drop => {
                    list.remove(i);
                    self.stats.dropped += 1;
                }
                Verdict::Keep => {
                    // Keys are names, but a map built from data can be keyed
                    // by it; the value's rule was decided on the original.
                    self.text(&mut list[i].key)?;
                    i += 1;
                }
            }
        }
        Ok(())
    }

    /// Whether `parent` joined to `key` names a rule; leaves the joined key
    /// in `self.joined`.
    fn joined_rule(&mut self, parent: &str, key: &str) -> bool {
        self.joined.clear();
        self.joined.push_str(parent);
        self.joined.push('.');
        self.joined.push_str(key);
        self.engine.key_rule(&self.joined).is_some()
    }

    /// Redacts one value. `key` is the nearest enclosing key (empty for a
    /// log body), `rule_key` a key naming the rule that applies, if any.
    fn value(&mut self, v: &mut AnyValue, key: &str, rule_key: Option<&str>, depth: usize) -> Result<Verdict, OverBudget> {
        let Some(inner) = &mut v.value else {
            return Ok(Verdict::Keep);
        };
        match inner {
            Value::StringValue(s) => {
                let res = match rule_key {
                    Some(rk) => self.engine.redact_field(self.scratch, rk, s),
                    None => FieldResult::Value(self.engine.redact_str(self.scratch, s)),
                };
                match res {
                    FieldResult::Drop => return Ok(Verdict::Drop),
                    FieldResult::Value(Cow::Owned(new)) => {
                        *s = new;
                        self.stats.rewritten += 1;
                    }
                    FieldResult::Value(Cow::Borrowed(_)) => {}
                }
            }
            Value::IntValue(n) => {
                self.num.clear();
                let _ = write!(self.num, "{n}");
                return Ok(self.scalar(v, rule_key, true));
            }
            Value::DoubleValue(d) => {
                self.num.clear();
                let _ = write!(self.num, "{d}");
                return Ok(self.scalar(v, rule_key, true));
            }
            Value::BoolValue(b) => {
                self.num.clear();
                self.num.push_str(if *b { "true" } else { "false" });
                return Ok(self.scalar(v, rule_key, false));
            }
            Value::StringValueStrindex(n) => {
                // An index into a profile's string table: not text.
                self.num.clear();
                let _ = write!(self.num, "{n}");
                return Ok(self.scalar(v, rule_key, false));
            }
            Value::BytesValue(b) => {
                if rule_key.is_some() {
                    self.num.clear();
                    for byte in b.iter() {
                        let _ = write!(self.num, "{byte:02x}");
                    }
                    return Ok(self.scalar(v, rule_key, false));
                }
            }
            Value::ArrayValue(arr) => {
                if depth >= MAX_DEPTH {
                    self.too_deep(v);
                    return Ok(Verdict::Keep);
                }
                let mut i = 0;
                while i < arr.values.len() {
                    self.tick()?;
                    match self.value(&mut arr.values[i], key, rule_key, depth + 1)? {
                        Verdict::Drop => {
                            arr.values.remove(i);
                            self.stats.dropped += 1;
                        }
                        Verdict::Keep => i += 1,
                    }
                }
            }
            Value::KvlistValue(kv) => {
                if depth >= MAX_DEPTH {
                    self.too_deep(v);
                    return Ok(Verdict::Keep);
                }
                self.attrs(&mut kv.values, key, rule_key, depth + 1)?;
            }
        }
        Ok(Verdict::Keep)
    }

    /// A non-string scalar, written as text in `self.num`: a rule named by
    /// its key takes it whole; otherwise, if `scan`, the text detectors
    /// decide. A redacted scalar becomes a string.
    fn scalar(&mut self, v: &mut AnyValue, rule_key: Option<&str>, scan: bool) -> Verdict {
        let res = match rule_key {
            Some(rk) => self.engine.redact_field(self.scratch, rk, &self.num),
            None if scan => FieldResult::Value(self.engine.redact_str(self.scratch, &self.num)),
            None => return Verdict::Keep,
        };
        match res {
            FieldResult::Drop => Verdict::Drop,
            FieldResult::Value(Cow::Borrowed(_)) => Verdict::Keep,
            FieldResult::Value(Cow::Owned(new)) => {
                v.value = Some(Value::StringValue(new));
                self.stats.rewritten += 1;
                Verdict::Keep
            }
        }
    }

    fn too_deep(&mut self, v: &mut AnyValue) {
        v.value = Some(Value::StringValue(DEPTH_PLACEHOLDER.to_string()));
        self.stats.depth_truncated += 1;
    }
}
