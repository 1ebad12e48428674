//! Entry points for the fuzz targets in `fuzz/` and for
//! `tests/fuzz_regressions.rs`.
//!
//! Not a stable API; for fuzz targets. These are thin wrappers over
//! crate-internal functions, so that a fuzz target (and the regression test
//! that keeps each crash it found) runs exactly the code the OTLP/HTTP
//! receiver and the pipeline run, not a copy of it. They change or go away
//! with the code they wrap.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::redact::otlp;
use crate::sources::otlp::http::{self, Decoded, Encoding};
use crate::sources::otlp::Signal;
use crate::{Engine, Scratch};

pub mod structured;

/// Checks the engine's SSE2 byte-class masks against byte-by-byte answers
/// at every offset of `data` (the `simd_masks` target); panics on a
/// difference.
pub fn simd_masks(data: &[u8]) {
    crate::redact::simd::check_against_scalar(data);
}

/// How deep the OTLP walk lets containers nest (`redact::otlp` is private to
/// the crate; the `otlp_decode` target checks the walk's output against it).
pub use crate::redact::otlp::MAX_DEPTH;

/// The OTLP signal an HTTP request was posted for (`/v1/logs`,
/// `/v1/traces`, `/v1/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpSignal {
    /// `/v1/logs`.
    Logs,
    /// `/v1/traces`.
    Traces,
    /// `/v1/metrics`.
    Metrics,
}

/// The body encoding named by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpEncoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

/// A decoded OTLP export request.
#[derive(Debug, Clone, PartialEq)]
pub enum OtlpRequest {
    /// A logs export.
    Logs(ExportLogsServiceRequest),
    /// A traces export.
    Traces(ExportTraceServiceRequest),
    /// A metrics export.
    Metrics(ExportMetricsServiceRequest),
}

/// Inflates (when `gzip`, as for `Content-Encoding: gzip`) and decodes one
/// OTLP/HTTP request body with the receiver's own decoder, `limit` being
/// `max_decompressed_bytes`. A refused body gives the HTTP status code the
/// receiver would answer with.
pub fn decode_otlp_http(
    signal: OtlpSignal,
    encoding: OtlpEncoding,
    gzip: bool,
    body: Vec<u8>,
    limit: usize,
) -> Result<OtlpRequest, u16> {
    let signal = match signal {
        OtlpSignal::Logs => Signal::Logs,
        OtlpSignal::Traces => Signal::Traces,
        OtlpSignal::Metrics => Signal::Metrics,
    };
    let enc = match encoding {
        OtlpEncoding::Protobuf => Encoding::Proto,
        OtlpEncoding::Json => Encoding::Json,
    };
    match http::decode(signal, enc, gzip, body, limit) {
        Ok(Decoded::Logs(r)) => Ok(OtlpRequest::Logs(r)),
        Ok(Decoded::Traces(r)) => Ok(OtlpRequest::Traces(r)),
        Ok(Decoded::Metrics(r)) => Ok(OtlpRequest::Metrics(r)),
        Err(f) => Err(f.status.as_u16()),
    }
}

/// Redacts every resource of a request in place with the walker the
/// pipeline uses (`redact::otlp`), resource by resource as the
/// route stage does. Returns the number of records dropped with resources that
/// went over the value budget.
pub fn redact_otlp(engine: &Engine, scratch: &mut Scratch, req: &mut OtlpRequest) -> usize {
    let mut rejected = 0;
    match req {
        OtlpRequest::Logs(r) => {
            for rl in &mut r.resource_logs {
                if let Err(e) = otlp::redact_logs(engine, scratch, rl) {
                    rejected += e.records();
                }
            }
        }
        OtlpRequest::Traces(r) => {
            for rs in &mut r.resource_spans {
                if let Err(e) = otlp::redact_spans(engine, scratch, rs) {
                    rejected += e.records();
                }
            }
        }
        OtlpRequest::Metrics(r) => {
            for rm in &mut r.resource_metrics {
                if let Err(e) = otlp::redact_metrics(engine, scratch, rm) {
                    rejected += e.records();
                }
            }
        }
    }
    rejected
}
