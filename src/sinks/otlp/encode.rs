//! Encoding a vendor batch as its export request, with each nested length
//! computed once.
//!
//! prost writes a nested message as a length prefix followed by the
//! message, and finds the prefix by walking the whole message
//! (`encoded_len`); the message's own fields are then written the same way.
//! A log record inside an `ExportLogsServiceRequest` is therefore walked
//! once for each level above it (request, resource, scope, record), and
//! once more for the queue's size check before encoding: five walks of
//! every record, which showed up as 3% of the OTLP path's CPU. Here the
//! sizes of the upper levels are computed once, kept in [`Measured`], and
//! used both for the queue's size check and for the prefixes. The bytes
//! are exactly those of prost's `encode_to_vec` (checked by the tests
//! below): fields in tag order, absent optional messages and empty strings
//! left out.

use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::encoding::{self, encode_key, encode_varint, encoded_len_varint, WireType};
use prost::Message;

use crate::pipeline::VendorBatch;

/// A batch with the lengths its encoding needs.
pub(crate) struct Measured {
    batch: VendorBatch,
    /// In encoding order: for logs, each resource's length, then for each
    /// of its scopes the scope's length followed by its records' lengths;
    /// for traces and metrics, each resource's length.
    lens: Vec<usize>,
    /// The length of the whole export request.
    total: usize,
}

/// The bytes of a length-delimited field with tag `tag` (< 16) around `len`
/// bytes.
fn delimited(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn scope_logs_len(sl: &ScopeLogs, lens: &mut Vec<usize>) -> usize {
    let at = lens.len();
    lens.push(0);
    let mut len = sl
        .scope
        .as_ref()
        .map_or(0, |s| encoding::message::encoded_len(1, s));
    for lr in &sl.log_records {
        let n = lr.encoded_len();
        lens.push(n);
        len += delimited(n);
    }
    if !sl.schema_url.is_empty() {
        len += encoding::string::encoded_len(3, &sl.schema_url);
    }
    lens[at] = len;
    len
}

fn resource_logs_len(rl: &ResourceLogs, lens: &mut Vec<usize>) -> usize {
    let at = lens.len();
    lens.push(0);
    let mut len = rl
        .resource
        .as_ref()
        .map_or(0, |r| encoding::message::encoded_len(1, r));
    for sl in &rl.scope_logs {
        len += delimited(scope_logs_len(sl, lens));
    }
    if !rl.schema_url.is_empty() {
        len += encoding::string::encoded_len(3, &rl.schema_url);
    }
    lens[at] = len;
    len
}

/// Writes one length-delimited field whose body is `len` bytes long.
fn prefix(tag: u32, len: usize, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
}

/// Writes `lr` as field 2 of a `ScopeLogs`, its length already known.
fn log_record(lr: &LogRecord, len: usize, out: &mut Vec<u8>) {
    prefix(2, len, out);
    lr.encode_raw(out);
}

fn encode_logs(rls: &[ResourceLogs], lens: &[usize], out: &mut Vec<u8>) {
    let mut lens = lens.iter().copied();
    let mut next = || lens.next().unwrap_or(0);
    for rl in rls {
        prefix(1, next(), out);
        if let Some(r) = &rl.resource {
            encoding::message::encode(1, r, out);
        }
        for sl in &rl.scope_logs {
            prefix(2, next(), out);
            if let Some(s) = &sl.scope {
                encoding::message::encode(1, s, out);
            }
            for lr in &sl.log_records {
                log_record(lr, next(), out);
            }
            if !sl.schema_url.is_empty() {
                encoding::string::encode(3, &sl.schema_url, out);
            }
        }
        if !rl.schema_url.is_empty() {
            encoding::string::encode(3, &rl.schema_url, out);
        }
    }
}

/// The lengths of the top-level messages (resources) of a request.
fn top_lens<M: Message>(items: &[M], lens: &mut Vec<usize>) -> usize {
    items
        .iter()
        .map(|m| {
            let n = m.encoded_len();
            lens.push(n);
            delimited(n)
        })
        .sum()
}

fn encode_top<M: Message>(items: &[M], lens: &[usize], out: &mut Vec<u8>) {
    for (m, &n) in items.iter().zip(lens) {
        prefix(1, n, out);
        m.encode_raw(out);
    }
}

/// The lengths of a batch's nested messages, in encoding order, and of the
/// whole export request.
fn measure(batch: &VendorBatch) -> (Vec<usize>, usize) {
    let mut lens = Vec::new();
    let total = match batch {
        VendorBatch::Logs(rls) => {
            lens.reserve(rls.len() + rls.iter().map(|r| r.scope_logs.len()).sum::<usize>());
            rls.iter()
                .map(|rl| delimited(resource_logs_len(rl, &mut lens)))
                .sum()
        }
        VendorBatch::Traces(r) => top_lens(r, &mut lens),
        VendorBatch::Metrics(r) => top_lens(r, &mut lens),
    };
    (lens, total)
}

/// Writes the export request of `batch`, measured as `lens` and `total`.
fn write(batch: &VendorBatch, lens: &[usize], total: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(total);
    match batch {
        VendorBatch::Logs(r) => encode_logs(r, lens, &mut out),
        VendorBatch::Traces(r) => encode_top(r, lens, &mut out),
        VendorBatch::Metrics(r) => encode_top(r, lens, &mut out),
    }
    out
}

/// Encodes a batch it does not own as its export request (for a batch
/// several vendors share, [`crate::pipeline::SharedBatch`]): the same
/// bytes as [`Measured::encode`].
pub(crate) fn request(batch: &VendorBatch) -> Vec<u8> {
    let (lens, total) = measure(batch);
    write(batch, &lens, total)
}

impl Measured {
    /// Measures a batch: one walk of every record.
    pub(crate) fn new(batch: VendorBatch) -> Measured {
        let (lens, total) = measure(&batch);
        Measured { batch, lens, total }
    }

    /// The length of the encoded export request.
    pub(crate) fn len(&self) -> usize {
        self.total
    }

    /// Encodes the export request: the same bytes as prost's
    /// `encode_to_vec` of `Export*ServiceRequest`, in one buffer of the
    /// exact size.
    pub(crate) fn encode(self) -> Vec<u8> {
        write(&self.batch, &self.lens, self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::otlp::transport;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
    };
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use proptest::prelude::*;

    fn check(batch: VendorBatch) {
        let want = transport::encode(batch.clone());
        assert_eq!(request(&batch), want);
        let m = Measured::new(batch);
        assert_eq!(m.len(), want.len());
        let got = m.encode();
        assert_eq!(got, want);
    }

    fn kv(k: &str, v: Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn record(body: &str, attrs: usize) -> LogRecord {
        LogRecord {
            time_unix_nano: 1_700_000_000_000_000_000,
            observed_time_unix_nano: 1_700_000_000_000_000_001,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: Some(AnyValue {
                value: Some(Value::StringValue(body.into())),
            }),
            attributes: (0..attrs)
                .map(|i| kv(&format!("k{i}"), Value::IntValue(i as i64 - 2)))
                .collect(),
            trace_id: vec![7; 16],
            span_id: vec![9; 8],
            flags: 1,
            event_name: if attrs.is_multiple_of(2) {
                String::new()
            } else {
                "ev".into()
            },
            ..Default::default()
        }
    }

    #[test]
    fn logs_encode_as_prost_does() {
        check(VendorBatch::Logs(Vec::new()));
        check(VendorBatch::Logs(vec![ResourceLogs::default()]));
        check(VendorBatch::Logs(vec![ResourceLogs {
            resource: Some(Resource::default()),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope::default()),
                log_records: vec![LogRecord::default()],
                ..Default::default()
            }],
            ..Default::default()
        }]));
        // A record longer than 127 bytes (two-byte length prefix), nested
        // values, schema URLs, several resources and scopes, a scope with
        // no records.
        let long = "x".repeat(300);
        let nested = kv(
            "nested",
            Value::KvlistValue(KeyValueList {
                values: vec![
                    kv("a", Value::StringValue(long.clone())),
                    kv(
                        "b",
                        Value::ArrayValue(ArrayValue {
                            values: vec![AnyValue {
                                value: Some(Value::DoubleValue(1.5)),
                            }],
                        }),
                    ),
                ],
            }),
        );
        let mut big = record(&long, 7);
        big.attributes.push(nested);
        check(VendorBatch::Logs(vec![
            ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", Value::StringValue("svc".into()))],
                    dropped_attributes_count: 3,
                    ..Default::default()
                }),
                scope_logs: vec![
                    ScopeLogs {
                        scope: Some(InstrumentationScope {
                            name: "scope".into(),
                            version: "1".into(),
                            ..Default::default()
                        }),
                        log_records: vec![record("a", 1), big, record("", 0)],
                        schema_url: "https://example.com/s".into(),
                    },
                    ScopeLogs::default(),
                ],
                schema_url: "https://example.com/r".into(),
            },
            ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: (0..200).map(|i| record(&"y".repeat(i), i % 9)).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            },
        ]));
    }

    #[test]
    fn traces_and_metrics_encode_as_prost_does() {
        check(VendorBatch::Traces(vec![
            ResourceSpans::default(),
            ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        name: "x".repeat(200),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                schema_url: "u".into(),
                ..Default::default()
            },
        ]));
        check(VendorBatch::Metrics(vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "m".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            value: Some(number_data_point::Value::AsInt(5)),
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }]));
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), "[a-z]{1,4}", "[ -~]{100,200}"]
    }

    fn log_record() -> impl Strategy<Value = LogRecord> {
        (text(), text(), 0usize..4, any::<u64>(), any::<i32>()).prop_map(
            |(body, sev, attrs, t, n)| LogRecord {
                time_unix_nano: t,
                severity_number: n,
                severity_text: sev,
                body: (!body.is_empty()).then(|| AnyValue {
                    value: Some(Value::StringValue(body.clone())),
                }),
                attributes: (0..attrs)
                    .map(|i| kv(&format!("k{i}"), Value::StringValue(body.clone())))
                    .collect(),
                ..Default::default()
            },
        )
    }

    fn scope_logs() -> impl Strategy<Value = ScopeLogs> {
        (
            proptest::option::of(text()),
            proptest::collection::vec(log_record(), 0..5),
            text(),
        )
            .prop_map(|(scope, log_records, schema_url)| ScopeLogs {
                scope: scope.map(|name| InstrumentationScope {
                    name,
                    ..Default::default()
                }),
                log_records,
                schema_url,
            })
    }

    fn resource_logs() -> impl Strategy<Value = ResourceLogs> {
        (
            proptest::option::of(text()),
            proptest::collection::vec(scope_logs(), 0..3),
            text(),
        )
            .prop_map(|(resource, scope_logs, schema_url)| ResourceLogs {
                resource: resource.map(|v| Resource {
                    attributes: vec![kv("service.name", Value::StringValue(v))],
                    ..Default::default()
                }),
                scope_logs,
                schema_url,
            })
    }

    proptest! {
        #[test]
        fn any_logs_batch_encodes_as_prost_does(
            rls in proptest::collection::vec(resource_logs(), 0..3)
        ) {
            let batch = VendorBatch::Logs(rls);
            let want = transport::encode(batch.clone());
            prop_assert_eq!(&request(&batch), &want);
            let m = Measured::new(batch);
            prop_assert_eq!(m.len(), want.len());
            prop_assert_eq!(m.encode(), want);
        }
    }
}
