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
//! enclosing key that names a rule (every value under `diagnosis` is a
//! diagnosis). A container under a name key is the exception, as in the JSON
//! scanner: `patient: {id, room, name}` holds other fields too, so its
//! children are judged by their own keys. Array elements inherit the key of
//! the array. Values whose rule says `drop_field` are removed from their list.
//!
//! The walk fails closed. A tree nested deeper than [`MAX_DEPTH`] has the
//! too-deep subtree replaced by [`DEPTH_PLACEHOLDER`]; a resource with more
//! than [`MAX_VALUES`] values is emptied and reported as an error, so that
//! nothing unredacted is left in it even if the caller forwards it anyway.
//! The functions are total: no input makes them panic. Should the engine
//! panic all the same (a bug, or the test-only `fault-injection` hook), the
//! panic is caught: a log record, span or metric whose redaction panicked is
//! removed and counted in [`RedactStats::failed`]; a panic outside a record
//! (resource or scope attributes) empties the whole resource and returns
//! [`RedactError::RedactionFailed`]. The scratch space is replaced after a
//! caught panic, keeping its per-rule counts ([`Scratch::renew`]), so that
//! the caller's next drain of the scratch still reports what was redacted
//! before the panic.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::panic::{catch_unwind, AssertUnwindSafe};

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{Exemplar, Metric, ResourceMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

use super::class;
use super::names::BuildFx;
use crate::pipeline::fault;
use crate::{Category, Engine, FieldResult, Scratch};
use std::hash::BuildHasher;

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
    /// Redaction panicked outside a single record (resource or scope
    /// attributes); the resource was emptied.
    RedactionFailed {
        /// The records removed with the resource.
        records: usize,
    },
}

impl RedactError {
    /// The records removed from the resource.
    pub fn records(&self) -> usize {
        match self {
            RedactError::TooManyValues { records, .. } => *records,
            RedactError::RedactionFailed { records } => *records,
        }
    }

    /// The reason label for drop metrics: `redaction_limit` or
    /// `redaction_failed`.
    pub fn reason(&self) -> &'static str {
        match self {
            RedactError::TooManyValues { .. } => "redaction_limit",
            RedactError::RedactionFailed { .. } => "redaction_failed",
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
            RedactError::RedactionFailed { records } => write!(
                f,
                "redaction failed outside a record; the resource's {records} records were dropped"
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
    /// Records (log records, spans, metric data points) removed because
    /// their redaction panicked.
    pub failed: u64,
}

/// Redacts one `ResourceLogs` in place.
///
/// Without stats: for the fuzz entry points and the tests (the route stage uses
/// [`redact_logs_with_stats`]), so compiled only for them.
#[cfg(any(test, feature = "fuzzing"))]
pub fn redact_logs(
    engine: &Engine,
    scratch: &mut Scratch,
    rl: &mut ResourceLogs,
) -> Result<(), RedactError> {
    redact_logs_with_stats(engine, scratch, rl, &mut RedactStats::default())
}

/// Redacts one `ResourceSpans` in place.
///
/// Without stats: for the fuzz entry points and the tests (the route stage uses
/// [`redact_spans_with_stats`]), so compiled only for them.
#[cfg(any(test, feature = "fuzzing"))]
pub fn redact_spans(
    engine: &Engine,
    scratch: &mut Scratch,
    rs: &mut ResourceSpans,
) -> Result<(), RedactError> {
    redact_spans_with_stats(engine, scratch, rs, &mut RedactStats::default())
}

/// Redacts one `ResourceMetrics` in place.
///
/// Without stats: for the fuzz entry points and the tests (the route stage uses
/// [`redact_metrics_with_stats`]), so compiled only for them.
#[cfg(any(test, feature = "fuzzing"))]
pub fn redact_metrics(
    engine: &Engine,
    scratch: &mut Scratch,
    rm: &mut ResourceMetrics,
) -> Result<(), RedactError> {
    redact_metrics_with_stats(engine, scratch, rm, &mut RedactStats::default())
}

/// [`redact_logs`], adding what it did to `stats`.
pub fn redact_logs_with_stats(
    engine: &Engine,
    scratch: &mut Scratch,
    rl: &mut ResourceLogs,
    stats: &mut RedactStats,
) -> Result<(), RedactError> {
    guarded(
        engine,
        scratch,
        stats,
        rl,
        |w, rl| w.logs(rl),
        |rl| {
            let records = rl.scope_logs.iter().map(|s| s.log_records.len()).sum();
            rl.resource = None;
            rl.scope_logs.clear();
            rl.schema_url.clear();
            records
        },
    )
}

/// [`redact_spans`], adding what it did to `stats`.
pub fn redact_spans_with_stats(
    engine: &Engine,
    scratch: &mut Scratch,
    rs: &mut ResourceSpans,
    stats: &mut RedactStats,
) -> Result<(), RedactError> {
    guarded(
        engine,
        scratch,
        stats,
        rs,
        |w, rs| w.spans(rs),
        |rs| {
            let records = rs.scope_spans.iter().map(|s| s.spans.len()).sum();
            rs.resource = None;
            rs.scope_spans.clear();
            rs.schema_url.clear();
            records
        },
    )
}

/// [`redact_metrics`], adding what it did to `stats`.
pub fn redact_metrics_with_stats(
    engine: &Engine,
    scratch: &mut Scratch,
    rm: &mut ResourceMetrics,
    stats: &mut RedactStats,
) -> Result<(), RedactError> {
    guarded(
        engine,
        scratch,
        stats,
        rm,
        |w, rm| w.metrics(rm),
        |rm| {
            let records = rm
                .scope_metrics
                .iter()
                .flat_map(|s| &s.metrics)
                .map(data_points)
                .sum();
            rm.resource = None;
            rm.scope_metrics.clear();
            rm.schema_url.clear();
            records
        },
    )
}

/// Walks one resource with `walk`, catching a panic. When the walk fails
/// (over budget or panicked) the resource is emptied with `empty`, which
/// returns how many records it held, so that nothing of it leaves
/// half-redacted; a panic also replaces the scratch space it may have left
/// inconsistent.
fn guarded<R>(
    engine: &Engine,
    scratch: &mut Scratch,
    stats: &mut RedactStats,
    resource: &mut R,
    walk: impl FnOnce(&mut Walk<'_, '_>, &mut R) -> Step,
    empty: impl FnOnce(&mut R) -> usize,
) -> Result<(), RedactError> {
    let res = catch_unwind(AssertUnwindSafe(|| {
        walk(
            &mut Walk::new(engine, &mut *scratch, &mut *stats),
            &mut *resource,
        )
    }));
    let failure = match res {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(OverBudget)) => Failure::OverBudget,
        Err(_) => {
            scratch.renew(engine);
            Failure::Panicked
        }
    };
    Err(failure.error(empty(resource)))
}

/// Removes the elements at `indices` (ascending) in one pass.
fn remove_at<T>(v: &mut Vec<T>, indices: &[usize]) {
    if indices.is_empty() {
        return;
    }
    let mut i = 0;
    let mut next = indices.iter().copied().peekable();
    v.retain(|_| {
        let drop = next.peek() == Some(&i);
        if drop {
            next.next();
        }
        i += 1;
        !drop
    });
}

/// Why a whole resource was emptied.
enum Failure {
    OverBudget,
    Panicked,
}

impl Failure {
    fn error(self, records: usize) -> RedactError {
        match self {
            Failure::OverBudget => RedactError::TooManyValues {
                limit: MAX_VALUES,
                records,
            },
            Failure::Panicked => RedactError::RedactionFailed { records },
        }
    }
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
    /// What the engine said about attribute keys already seen.
    keys: CleanMemo,
    /// What it said about short values read as text (no key naming their
    /// rule).
    values: CleanMemo,
}

/// Strings that the engine's text detectors left unchanged in this walk:
/// attribute keys, and short values read as text.
///
/// The records of one resource mostly repeat the same few attribute keys
/// and many of the same short values (a method, a route template, a
/// function or host name), and every one is run through the text detectors
/// (a key can be data: a map keyed by names or numbers). That answer
/// depends only on the string and the engine, which is fixed for a walk, so
/// it is kept here: a direct-mapped table of strings up to
/// [`CLEAN_MEMO_MAX_LEN`] bytes held inline, so that memory stays bounded
/// whatever the strings and keeping one allocates nothing. A string the
/// detectors change is never kept. (Which rule a key names is remembered by
/// the scratch's own key cache, [`Engine::key_rule_cached`].)
struct CleanMemo {
    /// Each slot's length (0: empty; empty strings are never looked up).
    lens: Box<[u8]>,
    bytes: Box<[[u8; CLEAN_MEMO_MAX_LEN]]>,
}

/// Slots for attribute keys, and for short values (powers of two).
const KEY_MEMO_SLOTS: usize = 64;
const VALUE_MEMO_SLOTS: usize = 256;

/// Longer strings are not kept (the table's memory stays bounded: 16 KiB
/// for values).
const CLEAN_MEMO_MAX_LEN: usize = 64;

impl CleanMemo {
    fn new(slots: usize) -> CleanMemo {
        debug_assert!(slots.is_power_of_two());
        CleanMemo {
            lens: vec![0; slots].into_boxed_slice(),
            bytes: vec![[0; CLEAN_MEMO_MAX_LEN]; slots].into_boxed_slice(),
        }
    }

    /// The slot for `s`.
    fn index(&self, s: &str) -> usize {
        BuildFx.hash_one(s.as_bytes()) as usize & (self.lens.len() - 1)
    }

    fn is_clean(&self, s: &str) -> bool {
        let i = self.index(s);
        let n = usize::from(self.lens[i]);
        n == s.len() && class::same_short(&self.bytes[i][..n], s.as_bytes())
    }

    /// Notes that the text detectors left `s` unchanged.
    fn set_clean(&mut self, s: &str) {
        if !s.is_empty() && s.len() <= CLEAN_MEMO_MAX_LEN {
            let i = self.index(s);
            self.lens[i] = s.len() as u8;
            self.bytes[i][..s.len()].copy_from_slice(s.as_bytes());
        }
    }

    /// Runs `s` through the engine's text detectors, unless this memo holds
    /// it as clean, and keeps it when they leave it unchanged.
    fn redact_str<'a>(
        &mut self,
        engine: &Engine,
        scratch: &mut Scratch,
        s: &'a str,
    ) -> Cow<'a, str> {
        if self.is_clean(s) {
            return Cow::Borrowed(s);
        }
        let out = engine.redact_str(scratch, s);
        if matches!(out, Cow::Borrowed(_)) {
            self.set_clean(s);
        }
        out
    }
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
            keys: CleanMemo::new(KEY_MEMO_SLOTS),
            values: CleanMemo::new(VALUE_MEMO_SLOTS),
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

    /// Runs `f` on one record; `Ok(None)` if it panicked (the scratch space
    /// is then replaced and `records` are counted as failed: the caller
    /// removes the record).
    fn guarded(
        &mut self,
        records: usize,
        f: impl FnOnce(&mut Self) -> Step,
    ) -> Result<Option<()>, OverBudget> {
        match catch_unwind(AssertUnwindSafe(|| f(self))) {
            Ok(step) => step.map(Some),
            Err(_) => {
                self.scratch.renew(self.engine);
                self.stats.failed += records as u64;
                Ok(None)
            }
        }
    }

    /// Runs an attribute key through the engine's text detectors, as
    /// [`Walk::text`] does, skipping the engine for a key it already left
    /// unchanged in this walk.
    fn key_text(&mut self, s: &mut String) -> Step {
        self.tick()?;
        if s.is_empty() {
            return Ok(());
        }
        fault::check(s.as_bytes());
        if let Cow::Owned(new) = self.keys.redact_str(self.engine, self.scratch, s) {
            *s = new;
            self.stats.rewritten += 1;
        }
        Ok(())
    }

    /// Runs a free-text field through the engine.
    fn text(&mut self, s: &mut String) -> Step {
        self.tick()?;
        if s.is_empty() {
            return Ok(());
        }
        fault::check(s.as_bytes());
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
            let mut failed = Vec::new();
            let mut res = Ok(());
            for (i, lr) in sl.log_records.iter_mut().enumerate() {
                match self.guarded(1, |w| w.log_record(lr)) {
                    Ok(Some(())) => {}
                    Ok(None) => failed.push(i),
                    Err(e) => {
                        res = Err(e);
                        break;
                    }
                }
            }
            // Removed before an over-budget error empties the resource, so
            // that no record is counted twice.
            remove_at(&mut sl.log_records, &failed);
            res?;
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
            let mut failed = Vec::new();
            let mut res = Ok(());
            for (i, span) in ss.spans.iter_mut().enumerate() {
                match self.guarded(1, |w| w.span(span)) {
                    Ok(Some(())) => {}
                    Ok(None) => failed.push(i),
                    Err(e) => {
                        res = Err(e);
                        break;
                    }
                }
            }
            // Removed before an over-budget error empties the resource, so
            // that no record is counted twice.
            remove_at(&mut ss.spans, &failed);
            res?;
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
            let mut failed = Vec::new();
            let mut res = Ok(());
            for (i, m) in sm.metrics.iter_mut().enumerate() {
                match self.guarded(data_points(m), |w| w.metric(m)) {
                    Ok(Some(())) => {}
                    Ok(None) => failed.push(i),
                    Err(e) => {
                        res = Err(e);
                        break;
                    }
                }
            }
            // Removed before an over-budget error empties the resource, so
            // that no record is counted twice.
            remove_at(&mut sm.metrics, &failed);
            res?;
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
    fn attrs(
        &mut self,
        list: &mut Vec<KeyValue>,
        parent: &str,
        inherited: Option<&str>,
        depth: usize,
    ) -> Step {
        let mut i = 0;
        while i < list.len() {
            self.tick()?;
            let KeyValue { key, value, .. } = &mut list[i];
            // The key that names this value's rule: its own, parent+own, or
            // inherited from above.
            let rule_key: Option<Cow<'_, str>> =
                if self.engine.key_rule_cached(self.scratch, key).is_some() {
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
                    self.key_text(&mut list[i].key)?;
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
        self.engine
            .key_rule_cached(self.scratch, &self.joined)
            .is_some()
    }

    /// Redacts one value. `key` is the nearest enclosing key (empty for a
    /// log body), `rule_key` a key naming the rule that applies, if any.
    fn value(
        &mut self,
        v: &mut AnyValue,
        key: &str,
        rule_key: Option<&str>,
        depth: usize,
    ) -> Result<Verdict, OverBudget> {
        let Some(inner) = &mut v.value else {
            return Ok(Verdict::Keep);
        };
        match inner {
            Value::StringValue(s) => {
                fault::check(s.as_bytes());
                let res = match rule_key {
                    Some(rk) => self.engine.redact_field(self.scratch, rk, s),
                    None => {
                        FieldResult::Value(self.values.redact_str(self.engine, self.scratch, s))
                    }
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
                // An array's items are values of its key, as in the JSON
                // scanner; a map inside is judged by its own keys.
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
                let rule_key = self.container_rule(rule_key);
                self.attrs(&mut kv.values, key, rule_key, depth + 1)?;
            }
        }
        Ok(Verdict::Keep)
    }

    /// The rule a container passes to its children. A container under a
    /// name key (`patient: {id, room, name}`) holds other fields too: its
    /// children are judged by their own keys (`patient.name`), not all taken
    /// as the name. The JSON scanner does the same (`Engine` inherit rule).
    fn container_rule<'k>(&self, rule_key: Option<&'k str>) -> Option<&'k str> {
        rule_key.filter(|rk| {
            self.engine
                .key_rule(rk)
                .is_none_or(|r| self.engine.rule(r).category != Category::Name)
        })
    }

    /// A non-string scalar, written as text in `self.num`: a rule named by
    /// its key takes it whole; otherwise, if `scan`, the text detectors
    /// decide. A redacted scalar becomes a string.
    fn scalar(&mut self, v: &mut AnyValue, rule_key: Option<&str>, scan: bool) -> Verdict {
        let res = match rule_key {
            Some(rk) => self.engine.redact_field(self.scratch, rk, &self.num),
            None if scan => {
                FieldResult::Value(self.values.redact_str(self.engine, self.scratch, &self.num))
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::ScopeLogs;
    use opentelemetry_proto::tonic::metrics::v1::{
        exemplar, number_data_point, Gauge, Histogram, HistogramDataPoint, NumberDataPoint,
        ScopeMetrics, Sum, Summary, SummaryDataPoint,
    };
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Status};
    use std::sync::OnceLock;

    const SSN_TEXT: &str = "SSN 219-09-9999";
    const NAME: &str = "Maria Gonzalez";
    const TRACE_ID: [u8; 16] = [
        0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6,
        0x0c,
    ];
    const SPAN_ID: [u8; 8] = [0xee, 0x19, 0xb7, 0xec, 0x3c, 0x1b, 0x17, 0x4a];

    fn engine() -> &'static Engine {
        static E: OnceLock<Engine> = OnceLock::new();
        E.get_or_init(|| Engine::builtin().expect("builtin rules"))
    }

    fn s(v: &str) -> AnyValue {
        AnyValue {
            value: Some(Value::StringValue(v.to_string())),
        }
    }

    fn int(n: i64) -> AnyValue {
        AnyValue {
            value: Some(Value::IntValue(n)),
        }
    }

    fn kv(k: &str, v: AnyValue) -> KeyValue {
        KeyValue {
            key: k.to_string(),
            value: Some(v),
            key_strindex: 0,
        }
    }

    fn kvlist(items: Vec<KeyValue>) -> AnyValue {
        AnyValue {
            value: Some(Value::KvlistValue(KeyValueList { values: items })),
        }
    }

    fn array(items: Vec<AnyValue>) -> AnyValue {
        AnyValue {
            value: Some(Value::ArrayValue(ArrayValue { values: items })),
        }
    }

    /// Attributes that are PHI by key, by value, and by structure, plus ones
    /// that must survive.
    fn phi_attrs() -> Vec<KeyValue> {
        vec![
            kv("patient.name", s(NAME)),
            kv("note", s(SSN_TEXT)),
            kv("http.status_code", int(200)),
            kv("service.name", s("checkout")),
            kv("patient.ssn", int(219099999)),
            kv(
                "patient",
                kvlist(vec![kv("name", s(NAME)), kv("visit", int(3))]),
            ),
            kv("patientName", array(vec![s(NAME), s("Juan Perez")])),
            kv("biometricTemplate", s("AAAA")),
        ]
    }

    /// Debug output of a structure as one string, to search for PHI.
    fn dump<T: fmt::Debug>(t: &T) -> String {
        format!("{t:?}")
    }

    fn assert_clean(what: &str, text: &str) {
        for phi in [
            "219-09-9999",
            "219099999",
            "Maria",
            "Gonzalez",
            "Juan Perez",
            "AAAA",
        ] {
            assert!(!text.contains(phi), "{what}: `{phi}` survived in {text}");
        }
    }

    fn assert_attrs_ok(what: &str, attrs: &[KeyValue]) {
        let text = dump(&attrs);
        assert_clean(what, &text);
        let get = |k: &str| {
            attrs
                .iter()
                .find(|a| a.key == k)
                .and_then(|a| a.value.clone())
        };
        assert_eq!(get("http.status_code"), Some(int(200)), "{what}: {text}");
        assert_eq!(get("service.name"), Some(s("checkout")), "{what}: {text}");
        assert!(
            get("biometricTemplate").is_none(),
            "{what}: drop_field rule kept the attribute"
        );
        // The SSN int became a label (a string).
        assert!(
            matches!(get("patient.ssn").and_then(|v| v.value), Some(Value::StringValue(ref l)) if l.contains("SSN")),
            "{what}: {text}"
        );
        // The nested non-PHI value under a name key is still replaced
        // (inherited rule), but the key survives.
        let Some(Value::KvlistValue(list)) = get("patient").and_then(|v| v.value) else {
            panic!("{what}: patient kvlist gone: {text}");
        };
        assert!(list.values.iter().any(|k| k.key == "name"));
    }

    fn resource() -> Option<Resource> {
        Some(Resource {
            attributes: phi_attrs(),
            dropped_attributes_count: 0,
            entity_refs: vec![],
        })
    }

    fn scope() -> Option<InstrumentationScope> {
        Some(InstrumentationScope {
            name: format!("scope for {SSN_TEXT}"),
            version: "1.0.0".into(),
            attributes: phi_attrs(),
            dropped_attributes_count: 0,
        })
    }

    fn log_record() -> LogRecord {
        LogRecord {
            time_unix_nano: 1_700_000_000_000_000_000,
            severity_text: "INFO".into(),
            body: Some(s(&format!("lookup failed for {SSN_TEXT}"))),
            attributes: phi_attrs(),
            trace_id: TRACE_ID.to_vec(),
            span_id: SPAN_ID.to_vec(),
            event_name: "patient.lookup".into(),
            ..Default::default()
        }
    }

    /// Keys and short values met again later in a walk are answered from
    /// [`CleanMemo`]: the records of one walk must come out exactly as when
    /// each is walked on its own, with the same counts, whether a key or
    /// value is clean, names or falls under a rule, or is itself PHI
    /// (redacted every time, never remembered as clean).
    #[test]
    fn repeated_keys_and_values_redact_as_in_separate_walks() {
        let e = engine();
        let record = |i: usize| LogRecord {
            attributes: vec![
                kv("service.name", s("checkout")),
                kv("patient.name", s(NAME)),
                kv(SSN_TEXT, s("value under a PHI key")),
                kv(NAME, int(i as i64)),
                kv("note", s(SSN_TEXT)),
                kv("patient", kvlist(vec![kv("name", s(NAME))])),
                kv(&"k".repeat(CLEAN_MEMO_MAX_LEN + 1), s(SSN_TEXT)),
                kv("attr.route", s("/api/v1/visits")),
                kv("attr.text", s(SSN_TEXT)),
                kv("attr.code", int(200)),
                kv(
                    "attr.other",
                    s(if i.is_multiple_of(2) { "GET" } else { SSN_TEXT }),
                ),
            ],
            ..Default::default()
        };
        let resource_logs = |records: Vec<LogRecord>| ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        };
        let counts = |scratch: &mut Scratch| {
            let mut c = Vec::new();
            scratch.drain_counts(|rule, n| c.push((rule, n)));
            c.sort_unstable();
            c
        };

        let mut scratch = e.scratch();
        let mut one_walk = resource_logs((0..4).map(record).collect());
        let mut stats = RedactStats::default();
        redact_logs_with_stats(e, &mut scratch, &mut one_walk, &mut stats).unwrap();
        let one_walk_counts = counts(&mut scratch);

        let mut separate = Vec::new();
        let mut separate_stats = RedactStats::default();
        for i in 0..4 {
            let mut rl = resource_logs(vec![record(i)]);
            redact_logs_with_stats(e, &mut scratch, &mut rl, &mut separate_stats).unwrap();
            separate.extend(rl.scope_logs.remove(0).log_records);
        }
        let separate_counts = counts(&mut scratch);

        assert_eq!(one_walk.scope_logs[0].log_records, separate);
        // Each walk also examines the resource's and the scope's schema
        // URL: three more walks, six more values.
        separate_stats.values -= 6;
        assert_eq!(stats, separate_stats);
        assert_eq!(one_walk_counts, separate_counts);
        assert_clean("repeated keys", &dump(&one_walk));
        for (i, lr) in one_walk.scope_logs[0].log_records.iter().enumerate() {
            assert_eq!(lr.attributes[0], kv("service.name", s("checkout")));
            assert!(lr.attributes[2].key.contains("[REDACTED:SSN]"), "{lr:?}");
            let text = |k: usize| match &lr.attributes[k].value {
                Some(AnyValue {
                    value: Some(Value::StringValue(t)),
                }) => t.clone(),
                v => panic!("{v:?}"),
            };
            assert_eq!(text(7), "/api/v1/visits");
            assert!(text(8).contains("[REDACTED:SSN]"), "{lr:?}");
            assert_eq!(
                text(10).contains("[REDACTED:SSN]"),
                !i.is_multiple_of(2),
                "{lr:?}"
            );
        }
    }

    /// Two keys in the same slot of the memo replace each other; each
    /// answer stays that of its own key, and a key over the length limit is
    /// never kept.
    #[test]
    fn key_memo_slots_hold_their_own_key() {
        let first = "patient.name";
        let mut memo = CleanMemo::new(KEY_MEMO_SLOTS);
        let other = (0..10_000)
            .map(|i| format!("field{i}"))
            .find(|k| memo.index(k) == memo.index(first))
            .expect("a colliding key");
        for _ in 0..2 {
            assert!(!memo.is_clean(first));
            memo.set_clean(first);
            assert!(memo.is_clean(first));
            assert!(!memo.is_clean(&other));
            memo.set_clean(&other);
            assert!(memo.is_clean(&other));
            assert!(!memo.is_clean(first));
            memo.set_clean(&other);
        }
        let long = "k".repeat(CLEAN_MEMO_MAX_LEN + 1);
        memo.set_clean(&long);
        assert!(!memo.is_clean(&long));
        // A string that is a prefix of a kept one, in the same slot or not.
        let kept = "k".repeat(CLEAN_MEMO_MAX_LEN);
        memo.set_clean(&kept);
        assert!(memo.is_clean(&kept));
        assert!(!memo.is_clean(&kept[..10]));
    }

    /// The cached key lookup answers as the plain one, for keys that name a
    /// rule, keys that do not, a key met again and a key too long to cache.
    #[test]
    fn cached_key_rule_agrees_with_key_rule() {
        let e = engine();
        let scratch = e.scratch();
        let long = format!("patient.{}.name", "x".repeat(40));
        for _ in 0..2 {
            for key in [
                "patient.name",
                "patientName",
                "service.name",
                "http.status_code",
                "mrn",
                "",
                &long,
            ] {
                assert_eq!(e.key_rule_cached(&scratch, key), e.key_rule(key), "{key}");
            }
        }
        assert!(e.key_rule_cached(&scratch, "patient.name").is_some());
        assert!(e.key_rule_cached(&scratch, "http.status_code").is_none());
    }

    #[test]
    fn logs_every_location() {
        let e = engine();
        let mut scratch = e.scratch();
        let structured = kvlist(vec![
            kv("patientName", s(NAME)),
            kv("message", s(&format!("caller gave {SSN_TEXT}"))),
            kv("status", int(200)),
        ]);
        let mut rl = ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                scope: scope(),
                log_records: vec![
                    log_record(),
                    LogRecord {
                        body: Some(structured),
                        ..log_record()
                    },
                    LogRecord {
                        body: Some(s(
                            r#"{"patientName":"Maria Gonzalez","route":"/v1/visits"}"#,
                        )),
                        ..log_record()
                    },
                ],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        };
        let mut stats = RedactStats::default();
        redact_logs_with_stats(e, &mut scratch, &mut rl, &mut stats).unwrap();
        assert_clean("logs", &dump(&rl));
        assert_attrs_ok("resource", &rl.resource.as_ref().unwrap().attributes);
        let sl = &rl.scope_logs[0];
        assert_attrs_ok("scope", &sl.scope.as_ref().unwrap().attributes);
        assert!(sl.scope.as_ref().unwrap().name.contains("[REDACTED:SSN]"));
        for lr in &sl.log_records {
            assert_attrs_ok("log", &lr.attributes);
            assert_eq!(lr.trace_id, TRACE_ID);
            assert_eq!(lr.span_id, SPAN_ID);
            assert_eq!(lr.time_unix_nano, 1_700_000_000_000_000_000);
            assert_eq!(lr.event_name, "patient.lookup");
        }
        let body0 = dump(&sl.log_records[0].body);
        assert!(
            body0.contains("lookup failed for SSN [REDACTED:SSN]"),
            "{body0}"
        );
        let body1 = dump(&sl.log_records[1].body);
        assert!(
            body1.contains("status") && body1.contains("IntValue(200)"),
            "{body1}"
        );
        let body2 = dump(&sl.log_records[2].body);
        assert!(body2.contains("/v1/visits"), "{body2}");
        assert!(stats.rewritten > 0 && stats.dropped >= 3, "{stats:?}");
        let mut total = 0;
        scratch.drain_counts(|_, n| total += n);
        assert!(total > 0);
    }

    fn span() -> Span {
        Span {
            trace_id: TRACE_ID.to_vec(),
            span_id: SPAN_ID.to_vec(),
            name: format!("GET /patients/{NAME}"),
            kind: 2,
            attributes: phi_attrs(),
            events: vec![Event {
                time_unix_nano: 1,
                name: format!("callback to {SSN_TEXT}"),
                attributes: phi_attrs(),
                dropped_attributes_count: 0,
            }],
            links: vec![Link {
                trace_id: TRACE_ID.to_vec(),
                span_id: SPAN_ID.to_vec(),
                trace_state: String::new(),
                attributes: phi_attrs(),
                dropped_attributes_count: 0,
                flags: 0,
            }],
            status: Some(Status {
                message: format!("no record for {SSN_TEXT}"),
                code: 2,
            }),
            ..Default::default()
        }
    }

    /// The JSON scanner and this walker disagreed: a kvlist under `patient`
    /// had every child taken as a name, ids and room numbers included.
    #[test]
    fn a_kvlist_under_a_name_key_keeps_its_non_name_fields() {
        let e = engine();
        let mut scratch = e.scratch();
        let lr = LogRecord {
            attributes: vec![kv(
                "patient",
                kvlist(vec![
                    kv("name", s("Maria Gonzalez")),
                    kv("room", s("r-1204")),
                    kv("visit_id", s("vis_8f3a2c")),
                ]),
            )],
            ..Default::default()
        };
        let mut rl = ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![lr],
                ..Default::default()
            }],
            ..Default::default()
        };
        redact_logs(e, &mut scratch, &mut rl).unwrap();
        let text = dump(&rl);
        assert!(!text.contains("Gonzalez"), "{text}");
        assert!(text.contains("r-1204"), "{text}");
        assert!(text.contains("vis_8f3a2c"), "{text}");
    }

    #[test]
    fn spans_every_location() {
        let e = engine();
        let mut scratch = e.scratch();
        let mut rs = ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                scope: scope(),
                spans: vec![span()],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        };
        redact_spans(e, &mut scratch, &mut rs).unwrap();
        assert_clean("spans", &dump(&rs));
        assert_attrs_ok("resource", &rs.resource.as_ref().unwrap().attributes);
        let sp = &rs.scope_spans[0].spans[0];
        assert_eq!(sp.trace_id, TRACE_ID);
        assert_eq!(sp.span_id, SPAN_ID);
        assert_eq!(sp.kind, 2);
        assert!(sp.name.starts_with("GET /patients/"), "{}", sp.name);
        assert_attrs_ok("span", &sp.attributes);
        assert_attrs_ok("event", &sp.events[0].attributes);
        assert!(sp.events[0].name.contains("[REDACTED:SSN]"));
        assert_attrs_ok("link", &sp.links[0].attributes);
        assert_eq!(sp.links[0].trace_id, TRACE_ID);
        assert!(sp
            .status
            .as_ref()
            .unwrap()
            .message
            .contains("[REDACTED:SSN]"));
    }

    fn ndp() -> NumberDataPoint {
        NumberDataPoint {
            attributes: phi_attrs(),
            time_unix_nano: 5,
            exemplars: vec![Exemplar {
                filtered_attributes: phi_attrs(),
                time_unix_nano: 5,
                span_id: SPAN_ID.to_vec(),
                trace_id: TRACE_ID.to_vec(),
                value: Some(exemplar::Value::AsDouble(1.5)),
            }],
            value: Some(number_data_point::Value::AsInt(42)),
            ..Default::default()
        }
    }

    #[test]
    fn metrics_every_location() {
        let e = engine();
        let mut scratch = e.scratch();
        let metric = |data| Metric {
            name: "http.server.duration".into(),
            description: format!("latency; see {SSN_TEXT}"),
            unit: "ms".into(),
            metadata: phi_attrs(),
            data: Some(data),
        };
        let mut rm = ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                scope: scope(),
                metrics: vec![
                    metric(Data::Gauge(Gauge {
                        data_points: vec![ndp()],
                    })),
                    metric(Data::Sum(Sum {
                        data_points: vec![ndp()],
                        aggregation_temporality: 2,
                        is_monotonic: true,
                    })),
                    metric(Data::Histogram(Histogram {
                        data_points: vec![HistogramDataPoint {
                            attributes: phi_attrs(),
                            exemplars: ndp().exemplars,
                            count: 3,
                            ..Default::default()
                        }],
                        aggregation_temporality: 2,
                    })),
                    metric(Data::Summary(Summary {
                        data_points: vec![SummaryDataPoint {
                            attributes: phi_attrs(),
                            count: 1,
                            ..Default::default()
                        }],
                    })),
                ],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        };
        redact_metrics(e, &mut scratch, &mut rm).unwrap();
        assert_clean("metrics", &dump(&rm));
        let ms = &rm.scope_metrics[0].metrics;
        assert_eq!(ms[0].name, "http.server.duration");
        assert!(ms[0].description.contains("[REDACTED:SSN]"));
        assert_attrs_ok("metadata", &ms[0].metadata);
        let Some(Data::Gauge(g)) = &ms[0].data else {
            panic!()
        };
        assert_attrs_ok("gauge point", &g.data_points[0].attributes);
        assert_attrs_ok(
            "exemplar",
            &g.data_points[0].exemplars[0].filtered_attributes,
        );
        assert_eq!(
            g.data_points[0].value,
            Some(number_data_point::Value::AsInt(42))
        );
        assert_eq!(g.data_points[0].exemplars[0].trace_id, TRACE_ID);
        let Some(Data::Histogram(h)) = &ms[2].data else {
            panic!()
        };
        assert_attrs_ok(
            "histogram exemplar",
            &h.data_points[0].exemplars[0].filtered_attributes,
        );
        let Some(Data::Summary(su)) = &ms[3].data else {
            panic!()
        };
        assert_attrs_ok("summary point", &su.data_points[0].attributes);
    }

    #[test]
    fn clean_input_is_untouched() {
        let e = engine();
        let mut scratch = e.scratch();
        let mut rl = ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s("checkout")),
                    kv("http.status_code", int(200)),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    body: Some(s("GET /health 200 12ms")),
                    trace_id: TRACE_ID.to_vec(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            schema_url: String::new(),
        };
        let before = rl.clone();
        let mut stats = RedactStats::default();
        redact_logs_with_stats(e, &mut scratch, &mut rl, &mut stats).unwrap();
        assert_eq!(rl, before);
        assert_eq!(stats.rewritten, 0);
        assert_eq!(scratch.pending_total(), 0);
    }

    fn nest(depth: usize, leaf: AnyValue) -> AnyValue {
        let mut v = leaf;
        for i in 0..depth {
            v = if i % 2 == 0 {
                kvlist(vec![kv("x", v)])
            } else {
                array(vec![v])
            };
        }
        v
    }

    #[test]
    fn too_deep_is_replaced_not_forwarded() {
        let e = engine();
        let mut scratch = e.scratch();
        let mut rl = ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    body: Some(nest(MAX_DEPTH + 10, s(SSN_TEXT))),
                    attributes: vec![
                        kv("deep", nest(100, s(NAME))),
                        kv("shallow", nest(3, s(SSN_TEXT))),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut stats = RedactStats::default();
        redact_logs_with_stats(e, &mut scratch, &mut rl, &mut stats).unwrap();
        let text = dump(&rl);
        assert_clean("deep", &text);
        assert!(text.contains(DEPTH_PLACEHOLDER));
        assert!(
            text.contains("[REDACTED:SSN]"),
            "shallow nesting is redacted, not replaced"
        );
        assert_eq!(stats.depth_truncated, 2);
        // Exactly at the limit still redacts.
        let mut rl2 = ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    body: Some(nest(MAX_DEPTH, s(SSN_TEXT))),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        redact_logs(e, &mut scratch, &mut rl2).unwrap();
        let text = dump(&rl2);
        assert!(
            !text.contains(DEPTH_PLACEHOLDER) && text.contains("[REDACTED:SSN]"),
            "{text}"
        );
    }

    #[test]
    fn over_budget_empties_the_resource() {
        let e = engine();
        let mut scratch = e.scratch();
        let many: Vec<AnyValue> = (0..MAX_VALUES).map(|_| s("x")).collect();
        let mut rl = ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    LogRecord {
                        body: Some(array(many)),
                        ..Default::default()
                    },
                    log_record(),
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let err = redact_logs(e, &mut scratch, &mut rl).unwrap_err();
        assert_eq!(err.records(), 2);
        assert!(rl.resource.is_none() && rl.scope_logs.is_empty());
    }

    /// A record whose redaction panics is dropped and the scratch space
    /// renewed, but what the engine redacted in it before the panic stays
    /// counted: the route stage reports those counts after the request.
    #[test]
    fn a_panicked_record_keeps_its_redaction_counts() {
        let e = engine();
        let mut scratch = e.scratch();
        let mut stats = RedactStats::default();
        let mut walk = Walk::new(e, &mut scratch, &mut stats);
        let res = walk.guarded(1, |w| {
            let mut v = SSN_TEXT.to_string();
            w.text(&mut v)?;
            assert_ne!(v, SSN_TEXT, "the SSN was redacted");
            panic!("a bug after the first value of the record");
        });
        assert!(matches!(res, Ok(None)), "the panic is caught");
        assert_eq!(stats.failed, 1);
        assert_eq!(scratch.pending_total(), 1);
    }

    #[test]
    fn remove_at_removes_exactly_the_given_indices() {
        let mut v: Vec<u32> = (0..10).collect();
        remove_at(&mut v, &[]);
        assert_eq!(v.len(), 10);
        remove_at(&mut v, &[0, 3, 4, 9]);
        assert_eq!(v, vec![1, 2, 5, 6, 7, 8]);
    }

    #[test]
    fn scalars_and_bytes_under_rule_keys() {
        let e = engine();
        let mut scratch = e.scratch();
        let mut attrs = vec![
            kv(
                "latitude",
                AnyValue {
                    value: Some(Value::DoubleValue(37.7749)),
                },
            ),
            kv("mrn", int(48291)),
            kv(
                "ssn",
                AnyValue {
                    value: Some(Value::BytesValue(b"219099999".to_vec())),
                },
            ),
            kv(
                "photo",
                AnyValue {
                    value: Some(Value::BytesValue(vec![0x89, 0x50, 0x4e, 0x47])),
                },
            ),
            kv(
                "payload",
                AnyValue {
                    value: Some(Value::BytesValue(vec![1, 2, 3])),
                },
            ),
            kv(
                "cache.hit",
                AnyValue {
                    value: Some(Value::BoolValue(true)),
                },
            ),
            kv("empty", AnyValue { value: None }),
            KeyValue {
                key: "none".into(),
                value: None,
                key_strindex: 0,
            },
        ];
        let mut rl = ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    attributes: std::mem::take(&mut attrs),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        redact_logs(e, &mut scratch, &mut rl).unwrap();
        let attrs = &rl.scope_logs[0].log_records[0].attributes;
        let get = |k: &str| {
            attrs
                .iter()
                .find(|a| a.key == k)
                .and_then(|a| a.value.clone()?.value)
        };
        assert!(matches!(get("latitude"), Some(Value::StringValue(_))));
        assert!(matches!(get("mrn"), Some(Value::StringValue(ref p)) if !p.contains("48291")));
        assert!(matches!(get("ssn"), Some(Value::StringValue(_))));
        assert!(get("photo").is_none() && !attrs.iter().any(|a| a.key == "photo"));
        assert_eq!(get("payload"), Some(Value::BytesValue(vec![1, 2, 3])));
        assert_eq!(get("cache.hit"), Some(Value::BoolValue(true)));
        assert!(attrs.iter().any(|a| a.key == "empty") && attrs.iter().any(|a| a.key == "none"));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn leaf() -> impl Strategy<Value = AnyValue> {
            prop_oneof![
                any::<String>().prop_map(|t| s(&t)),
                Just(s(SSN_TEXT)),
                Just(s(r#"{"patientName":"Maria Gonzalez"}"#)),
                any::<i64>().prop_map(int),
                any::<f64>().prop_map(|d| AnyValue {
                    value: Some(Value::DoubleValue(d))
                }),
                any::<bool>().prop_map(|b| AnyValue {
                    value: Some(Value::BoolValue(b))
                }),
                proptest::collection::vec(any::<u8>(), 0..8).prop_map(|b| AnyValue {
                    value: Some(Value::BytesValue(b))
                }),
                any::<i32>().prop_map(|n| AnyValue {
                    value: Some(Value::StringValueStrindex(n))
                }),
                Just(AnyValue { value: None }),
            ]
        }

        fn key() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                Just("patient".to_string()),
                Just("name".to_string()),
                Just("ssn".to_string()),
                Just("photo".to_string()),
                Just("http.status_code".to_string()),
            ]
        }

        fn tree() -> impl Strategy<Value = AnyValue> {
            leaf().prop_recursive(40, 256, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4).prop_map(array),
                    proptest::collection::vec((key(), inner), 0..4)
                        .prop_map(|kvs| kvlist(kvs.into_iter().map(|(k, v)| kv(&k, v)).collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            #[test]
            fn total_and_fail_closed(body in tree(), attrs in proptest::collection::vec((key(), tree()), 0..4)) {
                let e = engine();
                let mut scratch = e.scratch();
                let mut rl = ResourceLogs {
                    scope_logs: vec![ScopeLogs {
                        log_records: vec![LogRecord {
                            body: Some(body),
                            attributes: attrs.into_iter().map(|(k, v)| kv(&k, v)).collect(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                };
                redact_logs(e, &mut scratch, &mut rl).unwrap();
                let text = dump(&rl);
                prop_assert!(!text.contains("219-09-9999"));
                prop_assert!(!text.contains("Gonzalez"));
            }
        }
    }
}
