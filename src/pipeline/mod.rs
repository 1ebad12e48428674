//! The types that flow between sources, the pipeline and sinks.
//!
//! Sources hand records to the pipeline and wait for its acknowledgement
//! before committing their own progress (a file offset, an OTLP response):
//! the acknowledgement means every audit-grade record of the batch is durable
//! (delivered to Kafka or fsynced to the local spool) and every other record is
//! redacted and queued for the vendors, or counted as dropped with a reason.
//!
//! The pipeline's files follow the data: [`classify`] (which records are
//! audit-grade), then [`route`] (the [`route::Pipeline`]: fork, redact,
//! queue, acknowledge), with [`lane`] for what each lane of a file source
//! does. The pieces that are about the whole pipeline rather than one
//! record have their own files: [`sequencer`] (the order of audit
//! submissions across workers), `admission` (the in-flight OTLP memory
//! budget) and `scratch_pool` (redaction scratch spaces kept between
//! batches). Decoding lines into records is [`crate::decode`], redaction is
//! `crate::redact`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use tokio::sync::oneshot;

use crate::decode::container::Stream;

pub use self::lane::{LagLimit, Lane, LaneDecision, VendorLane};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Lines read by a line source (file tail, stdin), with the channel on which
/// the pipeline acknowledges them.
pub struct LineBatch {
    /// The configured source name (metric label, audit `source`).
    pub source: String,
    /// The stream within the source: the file path, or `stdin`. Audit
    /// sequence numbers and hash chains are per stream.
    pub stream: String,
    /// The lines, without their newlines, each at most the configured limit.
    pub lines: Vec<Vec<u8>>,
    /// Bytes cut from over-long lines, per line (0 for most).
    pub dropped_bytes: Vec<u64>,
    /// What the container runtime's log format said about each line (its
    /// time and stream), one per line; empty when no line had any (raw
    /// files, stdin).
    pub meta: Vec<LineMeta>,
    /// Resolved with `true` once the batch is safe to commit, `false` if it
    /// could not be made durable (the source must not advance).
    pub ack: oneshot::Sender<bool>,
    /// Set by a source that checkpoints (the file tail) when earlier batches
    /// are still in flight: resolves once every earlier batch is
    /// acknowledged and its checkpoint written. The pipeline redacts the
    /// batch meanwhile but hands nothing to a sink before it resolves, so a
    /// crash re-sends at most one batch (the one delivered and not yet
    /// checkpointed), however many batches are in flight. An error means an
    /// earlier batch of the same file was refused: the source reads this one
    /// again, so the pipeline must not deliver it and acknowledges `false`.
    pub earlier_committed: Option<oneshot::Receiver<()>>,
    /// Which destinations this batch is for (see [`lane`]).
    pub lane: Lane,
}

/// What a container runtime's log line said about its message besides the
/// text (see [`crate::decode::container`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineMeta {
    /// The runtime's time for the message, Unix nanoseconds; 0 when the
    /// line had none (a raw line).
    pub time_unix_nano: u64,
    /// The stream the container wrote it to.
    pub stream: Option<Stream>,
}

impl LineMeta {
    /// Whether the line carried anything.
    pub fn is_empty(&self) -> bool {
        self.time_unix_nano == 0 && self.stream.is_none()
    }
}

impl fmt::Debug for LineBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line content is event content: show counts only.
        f.debug_struct("LineBatch")
            .field("source", &self.source)
            .field("stream", &self.stream)
            .field("lines", &self.lines.len())
            .finish()
    }
}

/// Telemetry bound for vendors, already redacted.
#[derive(Clone)]
pub enum VendorBatch {
    Logs(Vec<ResourceLogs>),
    Traces(Vec<ResourceSpans>),
    Metrics(Vec<ResourceMetrics>),
}

impl VendorBatch {
    /// The number of records (log records, spans, data points) in the batch.
    pub fn records(&self) -> usize {
        match self {
            VendorBatch::Logs(r) => r
                .iter()
                .flat_map(|r| &r.scope_logs)
                .map(|s| s.log_records.len())
                .sum(),
            VendorBatch::Traces(r) => r
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum(),
            VendorBatch::Metrics(r) => r
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .map(|s| s.metrics.len())
                .sum(),
        }
    }

    /// The signal name, for metric labels: `logs`, `traces` or `metrics`.
    pub fn signal(&self) -> &'static str {
        match self {
            VendorBatch::Logs(_) => "logs",
            VendorBatch::Traces(_) => "traces",
            VendorBatch::Metrics(_) => "metrics",
        }
    }
}

impl fmt::Debug for VendorBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VendorBatch({} {})", self.records(), self.signal())
    }
}

/// One scrubbed batch handed to several vendors. Each vendor used to get a
/// deep copy of the decoded batch and encode that copy itself: with N
/// vendors, N - 1 copies and N protobuf encodings of the same records.
/// Vendors that send the batch unchanged (no `allow` list) now share one
/// encoding, made by the first of them ([`SharedBatch::request`]); a
/// vendor with an allow-list still copies the batch, since the list
/// rewrites its copy. Compression stays per vendor: each vendor's sender
/// merges queued batches into requests on its own schedule.
pub struct SharedBatch {
    batch: VendorBatch,
    request: OnceLock<Bytes>,
}

impl SharedBatch {
    /// Wraps a batch for sharing.
    pub fn new(batch: VendorBatch) -> Arc<SharedBatch> {
        Arc::new(SharedBatch {
            batch,
            request: OnceLock::new(),
        })
    }

    /// The batch as decoded (and scrubbed).
    pub fn batch(&self) -> &VendorBatch {
        &self.batch
    }

    /// The batch's export request as it is: `encode` runs for the first
    /// caller only; every later caller gets the same bytes (the same
    /// allocation, reference-counted).
    pub fn request(&self, encode: impl FnOnce(&VendorBatch) -> Vec<u8>) -> Bytes {
        self.request
            .get_or_init(|| Bytes::from(encode(&self.batch)))
            .clone()
    }
}

impl fmt::Debug for SharedBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Shared{:?}", self.batch)
    }
}

/// An audit-grade record, unredacted, bound for the in-boundary Kafka topic.
pub struct AuditEvent {
    /// The source name.
    pub source: String,
    /// The stream (file path, `otlp`): sequence numbers and the hash chain
    /// are per stream.
    pub stream: String,
    /// The Kafka message key, for per-subject ordering (for example the
    /// patient or user the access was about), if the record names one.
    pub key: Option<String>,
    /// When the record was observed, Unix nanoseconds.
    pub time_unix_nano: u64,
    /// The record itself: `{"line": "..."}` for a log line, or the OTLP log
    /// record as JSON.
    pub record: serde_json::Value,
}

impl fmt::Debug for AuditEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The record and key are patient data; never print them.
        f.debug_struct("AuditEvent")
            .field("source", &self.source)
            .field("stream", &self.stream)
            .field("has_key", &self.key.is_some())
            .finish()
    }
}

/// The outcome of an OTLP export request that was accepted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportOutcome {
    /// Records rejected (OTLP partial success); 0 when all were accepted.
    pub rejected: i64,
    /// Why, when `rejected > 0` (counts and reasons, never content).
    pub message: String,
}

/// Why an OTLP export request was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// scrubs is over its memory or queue budget: HTTP 429 / gRPC
    /// RESOURCE_EXHAUSTED, retry after the given time.
    Overloaded { retry_after: Duration },
    /// The audit path cannot take more (spool full, shutting down): HTTP 503
    /// / gRPC UNAVAILABLE, retry after the given time.
    Unavailable { retry_after: Duration },
    /// The request itself is bad: HTTP 400 / gRPC INVALID_ARGUMENT.
    Invalid(String),
}

/// What an OTLP receiver hands its decoded requests to.
pub trait OtlpHandler: Send + Sync + 'static {
    fn logs(
        &self,
        req: ExportLogsServiceRequest,
    ) -> BoxFuture<'static, Result<ExportOutcome, Rejection>>;
    fn traces(
        &self,
        req: ExportTraceServiceRequest,
    ) -> BoxFuture<'static, Result<ExportOutcome, Rejection>>;
    fn metrics(
        &self,
        req: ExportMetricsServiceRequest,
    ) -> BoxFuture<'static, Result<ExportOutcome, Rejection>>;
}
mod admission;
pub mod classify;
pub mod lane;
pub mod route;
mod scratch_pool;
pub mod sequencer;

/// A test-only fault hook: with the `fault-injection` feature, redaction
/// panics on any record that contains the marker given in the environment
/// variable `SCRUBS_FAULT_REDACT_PANIC`, so that tests can check that a
/// failure inside redaction fails closed, and hangs for ever on any record
/// that contains the marker in `SCRUBS_FAULT_REDACT_STALL`, so that tests
/// can check that `/healthz` sees a pipeline that stopped making progress.
/// Without the feature, [`fault::check`] is an empty inline function and the
/// hook is not in the binary.
pub(crate) mod fault {
    /// The environment variable that holds the panic marker.
    #[cfg(feature = "fault-injection")]
    pub(crate) const ENV: &str = "SCRUBS_FAULT_REDACT_PANIC";
    /// The environment variable that holds the stall marker.
    #[cfg(feature = "fault-injection")]
    pub(crate) const STALL_ENV: &str = "SCRUBS_FAULT_REDACT_STALL";

    #[cfg(feature = "fault-injection")]
    fn marker(
        var: &'static str,
        cell: &'static std::sync::OnceLock<Option<Vec<u8>>>,
    ) -> Option<&'static [u8]> {
        cell.get_or_init(|| {
            std::env::var_os(var)
                .map(|v| v.into_encoded_bytes())
                .filter(|v| !v.is_empty())
        })
        .as_deref()
    }

    /// Panics when `bytes` contain the panic marker, hangs when they
    /// contain the stall marker. The panic message names the hook, never
    /// the record.
    #[cfg(feature = "fault-injection")]
    pub(crate) fn check(bytes: &[u8]) {
        static PANIC: std::sync::OnceLock<Option<Vec<u8>>> = std::sync::OnceLock::new();
        static STALL: std::sync::OnceLock<Option<Vec<u8>>> = std::sync::OnceLock::new();
        if let Some(m) = marker(ENV, &PANIC) {
            if memchr::memmem::find(bytes, m).is_some() {
                panic!("fault injection: redaction panic ({ENV})");
            }
        }
        if let Some(m) = marker(STALL_ENV, &STALL) {
            if memchr::memmem::find(bytes, m).is_some() {
                // A redaction that never returns: the worker (and the
                // runtime thread under it) is lost, as with an engine bug.
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                }
            }
        }
    }

    /// The production build: no hook.
    #[cfg(not(feature = "fault-injection"))]
    #[inline(always)]
    pub(crate) fn check(_bytes: &[u8]) {}
}
