//! Records: what a line source's lines become, and the payload of the audit
//! events built from lines and OTLP log records.
//!
//! This is the last part of decode ("lines → records"): a line batch leaves
//! the pipeline as OTLP log records under one resource for the vendors, and
//! its audit-grade lines leave as audit events for Kafka. It is its own file
//! because these shapes are what the vendors and the audit topic see; they
//! are pure functions, so the route stage decides what goes where and this
//! file decides only how each record is built.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::pipeline::{AuditEvent, LineMeta, VendorBatch};

/// Now, Unix nanoseconds (0 if the clock is before 1970).
pub(crate) fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

pub(crate) fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// The log record of one scrubbed line: `body` is the line already
/// redacted, `cut` the bytes cut from it for being over-long (marked at the
/// end of the body), `meta` what its container runtime said about it, and
/// `observed` when scrubs read the batch.
pub(crate) fn line_record(mut body: String, cut: u64, meta: LineMeta, observed: u64) -> LogRecord {
    if cut > 0 {
        body.push_str(&format!(" [TRUNCATED:{cut} bytes]"));
    }
    // A container runtime's line keeps its time as the record's
    // time (when it happened) and its stream as an attribute
    // (OpenTelemetry's `log.iostream`); the observed time stays
    // when scrubs read it.
    LogRecord {
        time_unix_nano: meta.time_unix_nano,
        observed_time_unix_nano: observed,
        body: Some(AnyValue {
            value: Some(Value::StringValue(body)),
        }),
        attributes: meta
            .stream
            .map(|st| vec![kv("log.iostream", st.as_str())])
            .unwrap_or_default(),
        ..Default::default()
    }
}

/// The resource of scrubbed lines from `source`'s `stream`, with the
/// configured resource attributes (`resource`) first.
pub(crate) fn line_resource(
    resource: &[(String, String)],
    source: &str,
    stream: &str,
    records: Vec<LogRecord>,
) -> VendorBatch {
    let mut attrs: Vec<KeyValue> = resource.iter().map(|(k, v)| kv(k, v)).collect();
    attrs.push(kv("scrubs.source", source));
    attrs.push(kv("log.file.path", stream));
    VendorBatch::Logs(vec![ResourceLogs {
        resource: Some(Resource {
            attributes: attrs,
            ..Default::default()
        }),
        scope_logs: vec![ScopeLogs {
            scope: Some(InstrumentationScope {
                name: "scrubs".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            }),
            log_records: records,
            ..Default::default()
        }],
        ..Default::default()
    }])
}

/// The audit event of an audit-grade line, unredacted: `{"line": "..."}`,
/// observed at `observed`, with the Kafka key the selector found.
pub(crate) fn line_audit_event(
    source: &str,
    stream: &str,
    key: Option<String>,
    observed: u64,
    line: &[u8],
) -> AuditEvent {
    AuditEvent {
        source: source.to_string(),
        stream: stream.to_string(),
        key,
        time_unix_nano: observed,
        record: serde_json::json!({ "line": String::from_utf8_lossy(line) }),
    }
}

/// The audit event of an audit-grade OTLP log record, unredacted: the
/// record and its resource's attributes as JSON, at the record's time (or
/// now, when it has none), with the Kafka key the selector found.
pub(crate) fn otlp_audit_event(
    key: Option<String>,
    resource_attrs: &[KeyValue],
    lr: &LogRecord,
) -> AuditEvent {
    AuditEvent {
        source: "otlp".into(),
        stream: "otlp".into(),
        key,
        time_unix_nano: if lr.time_unix_nano > 0 {
            lr.time_unix_nano
        } else {
            now_nanos()
        },
        record: serde_json::json!({
            "resource": serde_json::to_value(resource_attrs).unwrap_or_default(),
            "log": serde_json::to_value(lr).unwrap_or_default(),
        }),
    }
}
