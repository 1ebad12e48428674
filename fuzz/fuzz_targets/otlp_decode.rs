//! The OTLP/HTTP receiver's body decoder (protobuf and JSON, plain or
//! gzipped, for logs, traces and metrics) followed by the redaction walker,
//! as a request to `/v1/logs`, `/v1/traces` or `/v1/metrics` goes.
//!
//! The first byte says how to read the rest (see `fuzz/README.md`):
//! bits 0-1 the signal (0 logs, 1 traces, 2 metrics, 3 logs), bit 2 JSON
//! instead of protobuf, bits 3-4 the gzip mode (0 plain, 1 the rest is
//! gzipped here and sent as `Content-Encoding: gzip`, 2 the rest is sent as
//! gzip as it is, 3 plain).
//!
//! Nothing may panic. A refused body is a 400 or a 413. A decoded request,
//! once redacted, holds no container nested deeper than the walker allows,
//! encodes to protobuf for the vendor exporters and decodes back to itself,
//! and serialises to JSON for the audit fork.

#![no_main]

use std::cell::RefCell;
use std::io::Write;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValueKind;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{Exemplar, Metric};
use prost::Message;
use scrubs::fuzzing::{
    decode_otlp_http, redact_otlp, OtlpEncoding, OtlpRequest, OtlpSignal, MAX_DEPTH,
};
use scrubs::{Engine, Scratch};

/// `max_decompressed_bytes` for the run: small, so that a gzip bomb meets
/// the limit quickly, and larger than any input libFuzzer makes (4 KiB by
/// default) so that ordinary bodies pass.
const LIMIT: usize = 256 * 1024;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::builtin().expect("the built-in pack compiles"))
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(engine().scratch());
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("writes to a Vec");
    enc.finish().expect("writes to a Vec")
}

/// The deepest nesting of arrays and key/value lists in a value (0 for a
/// scalar).
fn value_depth(v: &AnyValue) -> usize {
    match &v.value {
        Some(AnyValueKind::ArrayValue(a)) => {
            1 + a.values.iter().map(value_depth).max().unwrap_or(0)
        }
        Some(AnyValueKind::KvlistValue(l)) => 1 + attrs_depth(&l.values),
        _ => 0,
    }
}

fn attrs_depth(attrs: &[KeyValue]) -> usize {
    attrs
        .iter()
        .filter_map(|kv| kv.value.as_ref())
        .map(value_depth)
        .max()
        .unwrap_or(0)
}

/// Every attribute list and log body of a request, for the depth check.
fn max_depth(req: &OtlpRequest) -> usize {
    let mut depth = 0;
    let mut see = |attrs: &[KeyValue]| depth = depth.max(attrs_depth(attrs));
    match req {
        OtlpRequest::Logs(r) => {
            for rl in &r.resource_logs {
                if let Some(res) = &rl.resource {
                    see(&res.attributes);
                }
                for sl in &rl.scope_logs {
                    if let Some(sc) = &sl.scope {
                        see(&sc.attributes);
                    }
                    for lr in &sl.log_records {
                        see(&lr.attributes);
                        if let Some(body) = &lr.body {
                            see(&[KeyValue {
                                key: String::new(),
                                value: Some(body.clone()),
                                key_strindex: 0,
                            }]);
                        }
                    }
                }
            }
        }
        OtlpRequest::Traces(r) => {
            for rs in &r.resource_spans {
                if let Some(res) = &rs.resource {
                    see(&res.attributes);
                }
                for ss in &rs.scope_spans {
                    if let Some(sc) = &ss.scope {
                        see(&sc.attributes);
                    }
                    for span in &ss.spans {
                        see(&span.attributes);
                        for ev in &span.events {
                            see(&ev.attributes);
                        }
                        for link in &span.links {
                            see(&link.attributes);
                        }
                    }
                }
            }
        }
        OtlpRequest::Metrics(r) => {
            for rm in &r.resource_metrics {
                if let Some(res) = &rm.resource {
                    see(&res.attributes);
                }
                for sm in &rm.scope_metrics {
                    if let Some(sc) = &sm.scope {
                        see(&sc.attributes);
                    }
                    for m in &sm.metrics {
                        see(&m.metadata);
                        for_each_point_attrs(m, &mut see);
                    }
                }
            }
        }
    }
    depth
}

/// Calls `f` with the attributes of every data point and exemplar of a
/// metric.
fn for_each_point_attrs(m: &Metric, f: &mut impl FnMut(&[KeyValue])) {
    let exemplars = |ex: &[Exemplar], f: &mut dyn FnMut(&[KeyValue])| {
        for e in ex {
            f(&e.filtered_attributes);
        }
    };
    match &m.data {
        Some(Data::Gauge(g)) => g.data_points.iter().for_each(|p| {
            f(&p.attributes);
            exemplars(&p.exemplars, f);
        }),
        Some(Data::Sum(s)) => s.data_points.iter().for_each(|p| {
            f(&p.attributes);
            exemplars(&p.exemplars, f);
        }),
        Some(Data::Histogram(h)) => h.data_points.iter().for_each(|p| {
            f(&p.attributes);
            exemplars(&p.exemplars, f);
        }),
        Some(Data::ExponentialHistogram(h)) => h.data_points.iter().for_each(|p| {
            f(&p.attributes);
            exemplars(&p.exemplars, f);
        }),
        Some(Data::Summary(s)) => s.data_points.iter().for_each(|p| f(&p.attributes)),
        None => {}
    }
}

/// Encodes a request to protobuf, as the vendor exporters do, and decodes it
/// as a vendor would. The decoded message must encode to the same bytes
/// (compared as bytes because a NaN double is not equal to itself).
fn round_trip(req: &OtlpRequest) {
    fn check<M: Message + Default>(m: &M, what: &str) {
        let bytes = m.encode_to_vec();
        match M::decode(bytes.as_slice()) {
            Ok(back) => assert!(
                back.encode_to_vec() == bytes,
                "a redacted {what} request changes through protobuf"
            ),
            Err(err) => panic!("a redacted {what} request does not decode: {err}"),
        }
    }
    match req {
        OtlpRequest::Logs(r) => check(r, "logs"),
        OtlpRequest::Traces(r) => check(r, "traces"),
        OtlpRequest::Metrics(r) => check(r, "metrics"),
    }
}

fn to_json(req: &OtlpRequest) {
    // The audit fork serialises records with serde_json; any error is
    // handled there, a panic would not be.
    let _ = match req {
        OtlpRequest::Logs(r) => serde_json::to_vec(r),
        OtlpRequest::Traces(r) => serde_json::to_vec(r),
        OtlpRequest::Metrics(r) => serde_json::to_vec(r),
    };
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let signal = match mode & 3 {
        1 => OtlpSignal::Traces,
        2 => OtlpSignal::Metrics,
        _ => OtlpSignal::Logs,
    };
    let encoding = if mode & 4 != 0 {
        OtlpEncoding::Json
    } else {
        OtlpEncoding::Protobuf
    };
    let (gzipped, body) = match (mode >> 3) & 3 {
        1 => (true, gzip(body)),
        2 => (true, body.to_vec()),
        _ => (false, body.to_vec()),
    };
    let mut req = match decode_otlp_http(signal, encoding, gzipped, body, LIMIT) {
        Ok(req) => req,
        Err(status) => {
            assert!(
                status == 400 || status == 413,
                "a body was refused with {status}, not 400 or 413"
            );
            return;
        }
    };
    to_json(&req);
    SCRATCH.with_borrow_mut(|s| {
        let e = engine();
        redact_otlp(e, s, &mut req);
        // The walker replaces the container at depth MAX_DEPTH with a
        // string, so at most MAX_DEPTH containers remain nested.
        assert!(
            max_depth(&req) <= MAX_DEPTH,
            "a tree deeper than MAX_DEPTH was forwarded"
        );
        round_trip(&req);
        to_json(&req);
        // Redacting what was redacted must not panic either (two sidecars
        // in a row).
        redact_otlp(e, s, &mut req);
    });
});
