//! Where the pipeline hands records to the signals: a lock-free filter
//! first (most lines match no signal), the signals themselves behind a
//! mutex only for the records that may.
//!
//! The pipeline screens every line read from a file or stdin
//! ([`SignalsTap::screen_line`]) and every OTLP log record
//! ([`SignalsTap::wants_otlp_log`]) before redaction and inside the
//! boundary, keeps the few a signal may want raw, and observes them
//! ([`SignalsTap::observe_kept_lines`], [`SignalsTap::observe_kept_otlp_logs`])
//! once their batch is acknowledged or their request accepted: a refused
//! batch is read again and a refused request sent again, and neither may
//! count twice. A task calls
//! [`SignalsTap::tick`] every second; `/metrics` calls
//! [`SignalsTap::render_prometheus`]; the export task sends
//! [`SignalsTap::to_otlp`] to the vendors.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use super::{CrisisSelector, FieldLookup, RecordView, Signals, SignalsFilter};
use crate::Engine;

/// The signals of one `scrubs run`, shared by the workers.
pub struct SignalsTap {
    filter: SignalsFilter,
    crisis: Option<Arc<CrisisSelector>>,
    signals: Mutex<Signals>,
}

impl fmt::Debug for SignalsTap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalsTap").finish_non_exhaustive()
    }
}

/// A record's time in Unix nanoseconds, as the signals take it: 0 (the
/// runtime or the client gave none) is no time.
fn record_time(unix_nano: u64) -> Option<i64> {
    (unix_nano > 0).then_some(unix_nano as i64)
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl SignalsTap {
    /// Wraps built signals.
    pub fn new(signals: Signals) -> Arc<SignalsTap> {
        Arc::new(SignalsTap {
            filter: signals.filter(),
            crisis: signals.crisis_selector(),
            signals: Mutex::new(signals),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Signals> {
        self.signals.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A line from a file or stdin (JSON or logfmt, found out here), with
    /// the container runtime's time when it had one (0: none), screened but
    /// not observed: whether a signal may want it (the lock-free filter)
    /// and whether it is a crisis record, as [`SignalsTap::is_crisis_line`]
    /// would (the prefilter's literals include the crisis selector's, so one
    /// scan answers both for the lines that no signal wants, nearly all).
    /// The pipeline keeps the wanted lines of a batch and observes them with
    /// [`SignalsTap::observe_kept_lines`] once the batch is acknowledged: a
    /// batch refused is read again, and must not count twice.
    pub fn screen_line(&self, line: &[u8], time_unix_nano: u64) -> (bool, bool) {
        let view = RecordView::auto(line, record_time(time_unix_nano));
        if !self.filter.wants(&view) {
            return (false, false);
        }
        (
            true,
            self.crisis.as_ref().is_some_and(|c| c.is_crisis(&view)),
        )
    }

    /// Observes lines [`SignalsTap::screen_line`] found wanted, each with
    /// its container runtime's time (0: none), under one lock.
    pub fn observe_kept_lines(&self, lines: &[(Vec<u8>, u64)]) {
        if lines.is_empty() {
            return;
        }
        let mut signals = self.lock();
        let now = now_nanos();
        for (line, time_unix_nano) in lines {
            signals.observe_wanted(&RecordView::auto(line, record_time(*time_unix_nano)), now);
        }
    }

    /// Observes OTLP log records [`SignalsTap::wants_otlp_log`] found
    /// wanted, grouped with their resource's attributes, under one lock.
    pub fn observe_kept_otlp_logs(&self, kept: &[(Vec<KeyValue>, Vec<LogRecord>)]) {
        if kept.is_empty() {
            return;
        }
        let mut signals = self.lock();
        let now = now_nanos();
        for (resource, records) in kept {
            for record in records {
                let fields = OtlpFields {
                    record: &record.attributes,
                    resource,
                };
                let view = RecordView::with_fields(
                    otlp_body(record),
                    record_time(record.time_unix_nano),
                    &fields,
                );
                signals.observe_wanted(&view, now);
            }
        }
    }

    /// Whether a signal may want an OTLP log record of a resource (its
    /// string body is the line, its attributes and then the resource's are
    /// the fields): the lock-free filter alone, observing nothing. The
    /// pipeline keeps such records until their request is accepted.
    pub fn wants_otlp_log(&self, record: &LogRecord, resource: &[KeyValue]) -> bool {
        let fields = OtlpFields {
            record: &record.attributes,
            resource,
        };
        self.filter.wants(&RecordView::with_fields(
            otlp_body(record),
            record_time(record.time_unix_nano),
            &fields,
        ))
    }

    /// Whether the crisis selector is on.
    pub fn has_crisis(&self) -> bool {
        self.crisis.is_some()
    }

    /// Whether a line is a crisis record (lock-free).
    pub fn is_crisis_line(&self, line: &[u8]) -> bool {
        self.crisis
            .as_ref()
            .is_some_and(|c| c.is_crisis(&RecordView::auto(line, None)))
    }

    /// Whether an OTLP log record of a resource is a crisis record.
    pub fn is_crisis_otlp(&self, record: &LogRecord, resource: &[KeyValue]) -> bool {
        let Some(c) = &self.crisis else {
            return false;
        };
        let fields = OtlpFields {
            record: &record.attributes,
            resource,
        };
        c.is_crisis(&RecordView::with_fields(otlp_body(record), None, &fields))
    }

    /// Expires open keys and call-minutes whose time has passed.
    pub fn tick(&self) {
        self.lock().tick(now_nanos());
    }

    /// After a rules reload: label values are checked by the new engine.
    pub fn set_engine(&self, engine: Arc<Engine>) {
        self.lock().set_engine(engine);
    }

    /// The derived metrics in the Prometheus text format, appended to `out`.
    pub fn render_prometheus(&self, out: &mut String) {
        self.lock().render_prometheus(out);
    }

    /// The derived metrics as one OTLP metrics request (cumulative).
    pub fn to_otlp(&self, resource: &BTreeMap<String, String>) -> ExportMetricsServiceRequest {
        self.lock().to_otlp(resource)
    }
}

/// A log record's string body, as the line of a record view (empty for
/// other bodies).
fn otlp_body(record: &LogRecord) -> &[u8] {
    match record.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Value::StringValue(s)) => s.as_bytes(),
        _ => &[],
    }
}

/// OTLP attributes as signal fields: the record's first, then the
/// resource's; values that are not text written out (numbers, booleans).
struct OtlpFields<'a> {
    record: &'a [KeyValue],
    resource: &'a [KeyValue],
}

impl FieldLookup for OtlpFields<'_> {
    fn for_each_field(&self, f: &mut dyn FnMut(&str, &str)) {
        for kv in self.record.iter().chain(self.resource) {
            if let Some(text) = crate::keys::attr_text(kv) {
                f(&kv.key, &text);
            }
        }
    }
}
