//! Vendor export: scrubbed telemetry to BAA-covered vendors over OTLP/HTTP
//! (protobuf) or OTLP/gRPC.
//!
//! Each vendor gets a [`VendorSink`]: a bounded queue (by protobuf bytes and
//! by batch count) in front of one background task that merges batches of
//! the same signal, encodes them once, compresses, and sends them with a
//! timeout, retrying with exponential backoff and full jitter. Three ways
//! in: [`VendorSink::send`] never waits (when the queue is full the batch is
//! dropped and counted; for stdin, which cannot be read again);
//! [`VendorSink::send_wait`] waits for room and for the request's outcome
//! (for a file source's vendor lane: the file is the buffer, see
//! `crate::pipeline::lane`); [`VendorSink::hold_within`] waits a short
//! while for room and holds it until the request is answered (for OTLP
//! requests, which are refused with 429 beforehand while
//! [`VendorSink::congested`], and when no room came in time). The audit
//! path does not go through here.
//!
//! A vendor not flagged `baa_covered: true` is refused by
//! [`VendorConfig::validate`] and again by [`VendorConfig::build`]: no sink
//! exists for it, so no record can be routed to it.
//!
//! # Drops
//!
//! Every record that does not reach the vendor is counted in
//! `scrubs_vendor_dropped_total{vendor,reason}` and
//! `scrubs_vendor_records_total{vendor,signal,result="dropped"}`, with one of
//! these reasons:
//!
//! | reason | when |
//! |---|---|
//! | `queue_full` | the queue was over `queue.max_bytes` or `queue.max_batches` |
//! | `too_large` | one batch was larger than the whole queue |
//! | `closed` | the sink's task has stopped |
//! | `retry_exhausted` | retryable failures (429, 5xx, UNAVAILABLE, timeouts, broken connections) went on past `retry.max_elapsed`: the vendor may have seen some of these |
//! | `connect_error` | as above, but the last attempt could not connect: the data never left the host |
//! | `tls_error` | as above, but the last attempt failed the TLS handshake (certificate not trusted, wrong name): the data never left the host |
//! | `rejected_<code>` | a non-retryable answer, e.g. `rejected_400`, `rejected_unauthenticated` |
//! | `partial_rejected` | the vendor accepted the request but refused some records (OTLP partial success) |
//! | `shutdown` | still queued or in flight when the shutdown deadline passed |
//! | `vendor_lag_limit` | counted by a file source's vendor lane that skipped ahead past `lag_limit` (`crate::pipeline::lane`) |
//!
//! Each attempt is counted in `scrubs_vendor_requests_total{vendor,code}`,
//! where `code` is the HTTP status, the gRPC code (`ok`, `unavailable`, ...),
//! `timeout`, `connect_error`, `tls_error` or `transport_error`.
//!
//! scrubs never logs a payload, a response body, or a header value: only
//! vendor names, header names, status codes, counts and transport errors.

pub mod allow;
mod config;
mod encode;
mod tls;
mod transport;

use std::fmt;
use std::future::pending;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::http::header::{HeaderMap, HeaderName};
use rand::Rng as _;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

pub use self::config::{
    parse_bytes, parse_duration, BatchConfig, Compression, HeaderValue, LagLimitConfig, Protocol,
    QueueConfig, RetryConfig, Signal, TlsConfig, VendorConfig,
};
use self::encode::Measured;
use self::transport::{Attempt, FailClass, Transport};
use crate::metrics::{Handle, Metrics};
use crate::pipeline::{SharedBatch, VendorBatch};
use crate::topology::{BuildError, Built, Context};

const M_RECORDS: &str = "scrubs_vendor_records_total";
const H_RECORDS: &str =
    "Records (log records, spans, metrics) handled by vendor export, by result.";
// Records dropped here and records the pipeline could not redact are one
// family, so its name and help are defined once, in crate::metrics.
const M_DROPPED: &str = crate::metrics::VENDOR_DROPPED;
const H_DROPPED: &str = crate::metrics::VENDOR_DROPPED_HELP;
const M_QUEUE: &str = "scrubs_vendor_queue_bytes";
const H_QUEUE: &str = "Protobuf bytes queued or in flight for a vendor.";
const M_REQUESTS: &str = "scrubs_vendor_requests_total";
const H_REQUESTS: &str =
    "Export request attempts to a vendor, by HTTP status, gRPC code or failure.";
const M_RETRIES: &str = "scrubs_vendor_retries_total";
const H_RETRIES: &str = "Export requests retried after a retryable failure.";

/// How long a shutdown waits for the task to count what it abandoned.
const ABORT_GRACE: Duration = Duration::from_secs(2);

/// The least time between two `queue_full` warnings for one vendor.
const QUEUE_FULL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Why records were not delivered to a vendor (the `reason` label).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The vendor's queue is full.
    QueueFull,
    /// The batch alone is larger than the vendor's whole queue.
    TooLarge,
    /// The sink's background task is gone.
    Closed,
    /// Retryable failures lasted past `retry.max_elapsed`.
    RetryExhausted,
    /// Retries ran out and the last attempt could not connect.
    ConnectError,
    /// Retries ran out and the last attempt failed the TLS handshake.
    TlsError,
    /// The vendor refused the request with a non-retryable code (HTTP
    /// status such as `400`, or gRPC code such as `invalid_argument`).
    Rejected(String),
    /// The vendor refused some records of an accepted request.
    PartialRejected,
    /// Abandoned at the shutdown deadline.
    Shutdown,
}

impl DropReason {
    /// The metric label: `queue_full`, `rejected_400`, ...
    pub fn label(&self) -> String {
        match self {
            DropReason::QueueFull => "queue_full".into(),
            DropReason::TooLarge => "too_large".into(),
            DropReason::Closed => "closed".into(),
            DropReason::RetryExhausted => "retry_exhausted".into(),
            DropReason::ConnectError => "connect_error".into(),
            DropReason::TlsError => "tls_error".into(),
            DropReason::Rejected(code) => format!("rejected_{code}"),
            DropReason::PartialRejected => "partial_rejected".into(),
            DropReason::Shutdown => "shutdown".into(),
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

fn signal_of(b: &VendorBatch) -> Signal {
    match b {
        VendorBatch::Logs(_) => Signal::Logs,
        VendorBatch::Traces(_) => Signal::Traces,
        VendorBatch::Metrics(_) => Signal::Metrics,
    }
}

/// A batch ready for the queue: measured and encoded by this vendor, or
/// already encoded once for every vendor that sends it unchanged.
enum Body {
    Own(Measured),
    Shared(Bytes),
}

impl Body {
    /// The length of the export request, for the queue's accounting.
    fn len(&self) -> usize {
        match self {
            Body::Own(m) => m.len(),
            Body::Shared(b) => b.len(),
        }
    }

    /// The export request (encoded now for a batch of this vendor's own).
    fn encode(self) -> Bytes {
        match self {
            Body::Own(m) => Bytes::from(m.encode()),
            Body::Shared(b) => b,
        }
    }
}

/// One `send` waiting in the queue, already encoded as its export request.
///
/// The queue holds protobuf bytes, not the decoded batch: a decoded batch
/// takes several times its encoded size on the heap (a `String` and a
/// `Vec` per value), so a queue bounded by encoded bytes but holding decoded
/// batches could use several times `queue.max_bytes` (measured: 248 MB RSS
/// under OTLP load with a 64 MiB queue). Export requests have one
/// repeated field, so the concatenation of two encoded requests is the
/// encoding of the merged request: batches are merged by appending bytes.
struct Queued {
    /// Shared with other vendors' queues when they send the same batch
    /// unchanged (see [`SharedBatch`]).
    body: Bytes,
    signal: Signal,
    records: u64,
    bytes: u64,
    /// Told when the request holding this batch is done (see
    /// [`VendorSink::send_wait`]); a queued batch with a waiter is sent at
    /// once rather than after `batch.max_wait`, because its sender sends
    /// nothing more until it hears back.
    waiter: Option<oneshot::Sender<bool>>,
    /// Crisis records (see [`VendorSink::send_crisis`]): retried until the
    /// vendor answers or scrubs stops, never given up after
    /// `retry.max_elapsed`.
    crisis: bool,
}

#[derive(Default)]
struct QueueState {
    bytes: u64,
    batches: usize,
}

/// State shared by the handle and the task: limits, accounting, metrics.
struct Shared {
    name: String,
    metrics: Arc<Metrics>,
    signals: [bool; 3],
    max_bytes: u64,
    max_batches: usize,
    /// `queue.crisis_reserve_bytes`: room above `max_bytes` that only
    /// crisis batches may take (see [`VendorSink::send_crisis`]).
    crisis_reserve: u64,
    /// Crisis records queued for this vendor.
    crisis_records: Handle,
    queue: Mutex<QueueState>,
    queue_gauge: Handle,
    sent: [Handle; 3],
    dropped_records: [Handle; 3],
    queue_full: Handle,
    retries: Handle,
    last_queue_full_log: Mutex<Option<Instant>>,
    suppressed_queue_full: AtomicU64,
    /// Woken whenever queue space is released, for [`VendorSink::send_wait`].
    space: tokio::sync::Notify,
    /// Since when every export attempt has failed with a retryable error
    /// (none since the last accepted request): `None` while the vendor
    /// answers.
    failing_since: Mutex<Option<Instant>>,
    /// `lag_limit.max_failing`: past it, a failing vendor no longer holds
    /// back OTLP clients (see [`VendorSink::congested`]).
    max_failing: Duration,
}

impl Shared {
    fn reserve(&self, bytes: u64) -> Result<(), DropReason> {
        if bytes > self.max_bytes {
            return Err(DropReason::TooLarge);
        }
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.bytes + bytes > self.max_bytes || q.batches >= self.max_batches {
            return Err(DropReason::QueueFull);
        }
        q.bytes += bytes;
        q.batches += 1;
        self.queue_gauge.store(q.bytes, Ordering::Relaxed);
        Ok(())
    }

    /// [`Shared::reserve`] for a crisis batch: the queue's room plus the
    /// crisis reserve, and no batch-count limit (a crisis batch never
    /// waits for ordinary ones to be counted out). A crisis batch larger
    /// than both is still taken, alone, once the queue is empty: it is
    /// never dropped for its size.
    fn reserve_crisis(&self, bytes: u64) -> bool {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.max_bytes.saturating_add(self.crisis_reserve);
        if q.bytes + bytes > room && q.bytes > 0 {
            return false;
        }
        q.bytes += bytes;
        q.batches += 1;
        self.queue_gauge.store(q.bytes, Ordering::Relaxed);
        true
    }

    fn release(&self, bytes: u64, batches: usize) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.bytes = q.bytes.saturating_sub(bytes);
        q.batches = q.batches.saturating_sub(batches);
        self.queue_gauge.store(q.bytes, Ordering::Relaxed);
        drop(q);
        self.space.notify_waiters();
    }

    /// Reserves queue space, waiting while the queue is full (never for a
    /// batch larger than the whole queue, which fails at once).
    async fn reserve_wait(&self, bytes: u64) -> Result<(), DropReason> {
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            // Registered before trying, so a release in between wakes us.
            notified.as_mut().enable();
            match self.reserve(bytes) {
                Err(DropReason::QueueFull) => notified.await,
                other => return other,
            }
        }
    }

    /// Records the outcome of one export attempt for [`Shared::failing_since`].
    fn note_attempt(&self, answered: bool) {
        let mut f = self.failing_since.lock().unwrap_or_else(|e| e.into_inner());
        if answered {
            *f = None;
        } else if f.is_none() {
            *f = Some(Instant::now());
        }
    }

    fn count_sent(&self, signal: Signal, records: u64) {
        self.sent[signal.index()].fetch_add(records, Ordering::Relaxed);
    }

    fn count_dropped(&self, signal: Signal, records: u64, reason: &DropReason) {
        if records == 0 {
            return;
        }
        self.dropped_records[signal.index()].fetch_add(records, Ordering::Relaxed);
        if *reason == DropReason::QueueFull {
            self.queue_full.fetch_add(records, Ordering::Relaxed);
        } else {
            let label = reason.label();
            self.metrics.add(
                M_DROPPED,
                H_DROPPED,
                &[("vendor", &self.name), ("reason", &label)],
                records,
            );
        }
    }

    /// Warns about a full queue at most every [`QUEUE_FULL_LOG_EVERY`].
    fn warn_queue_full(&self) {
        let now = Instant::now();
        let mut last = self
            .last_queue_full_log
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| now.duration_since(t) < QUEUE_FULL_LOG_EVERY) {
            self.suppressed_queue_full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(now);
        let suppressed = self.suppressed_queue_full.swap(0, Ordering::Relaxed);
        tracing::warn!(
            vendor = %self.name,
            max_bytes = self.max_bytes,
            max_batches = self.max_batches,
            earlier_drops_not_logged = suppressed,
            "vendor queue full: dropping telemetry for this vendor (the vendor is slow or down)"
        );
    }
}

/// The handle to one vendor's export queue and task.
pub struct VendorSink {
    shared: Arc<Shared>,
    /// The vendor's allow-list, applied to each batch before it is encoded
    /// (so every other vendor's copy is untouched); `None` costs nothing.
    allow: Option<allow::Applier>,
    transport: Arc<Transport>,
    tx: mpsc::UnboundedSender<Queued>,
    abort: watch::Sender<bool>,
    done: oneshot::Receiver<()>,
}

impl fmt::Debug for VendorSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VendorSink")
            .field("vendor", &self.shared.name)
            .field("transport", &self.transport)
            .finish()
    }
}

/// Resolves configured headers, secrets included. Errors name the header
/// and where its secret should come from, never a value.
fn resolve_headers(cfg: &VendorConfig) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in &cfg.headers {
        let hn = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("header {name:?}: not a valid header name"))?;
        let (raw, secret) = match value {
            HeaderValue::Plain(v) => (v.clone(), false),
            HeaderValue::Secret(src) => {
                let s = src.resolve().map_err(|e| format!("header {name:?}: {e}"))?;
                (s.expose().to_owned(), true)
            }
        };
        let mut hv = hyper::http::HeaderValue::from_str(&raw).map_err(|_| {
            format!("header {name:?}: the value has characters not allowed in a header")
        })?;
        // Sensitive values are never indexed by HTTP/2 header compression.
        hv.set_sensitive(secret);
        map.insert(hn, hv);
    }
    Ok(map)
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl VendorConfig {
    /// Starts the vendor's queue and export task (call inside a tokio
    /// runtime). Refuses a vendor without `baa_covered: true`, an invalid
    /// configuration, a secret that cannot be read, or TLS files that cannot
    /// be loaded; the error names the vendor and never shows a secret.
    ///
    /// The sink takes its name (labels, errors) from the vendor's own
    /// `name`, and its metrics from `cx`; it stops on
    /// [`VendorSink::shutdown`], not on the shutdown signal of `cx`, so that
    /// the drain decides when its queue is abandoned. The task ends after
    /// [`VendorSink::shutdown`], or when the handle is dropped and the
    /// queue has drained.
    pub fn build(&self, cx: &Context) -> Result<Built<VendorSink>, BuildError> {
        let cfg = self;
        let metrics = cx.metrics();
        let component = cfg.name.as_str();
        // Defence in depth: whatever the caller validated, no sink exists
        // for a vendor without a BAA.
        if !cfg.baa_covered {
            return Err(BuildError::config(component, cfg.baa_refusal("vendor")));
        }
        let problems = cfg.validate("vendor");
        if !problems.is_empty() {
            return Err(BuildError::config(
                component,
                format!(
                    "vendor {:?}: invalid configuration: {}",
                    cfg.name,
                    problems.join("; ")
                ),
            ));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            BuildError::runtime(
                component,
                format!("vendor {:?}: start needs a tokio runtime", cfg.name),
            )
        })?;
        let refused =
            |e: String| BuildError::config(component, format!("vendor {:?}: {e}", cfg.name));
        let headers = resolve_headers(cfg).map_err(refused)?;
        let header_names: Vec<String> = headers.keys().map(|k| k.as_str().to_owned()).collect();
        let allow = cfg
            .allow
            .as_ref()
            .map(|a| allow::Applier::new(a, metrics, &cfg.name))
            .transpose()
            .map_err(refused)?;
        let transport = Transport::new(cfg, headers).map_err(refused)?;

        let endpoint = cfg.endpoint_for_logs();
        if cfg.tls.as_ref().is_some_and(|t| t.insecure_skip_verify) {
            tracing::warn!(
                vendor = %cfg.name,
                endpoint = %endpoint,
                "TLS CERTIFICATE VERIFICATION IS DISABLED (tls.insecure_skip_verify): anyone on the network path can impersonate this vendor and read the telemetry; never use this in production"
            );
        }
        if let Ok(uri) = cfg.endpoint.parse::<hyper::Uri>() {
            if uri.scheme_str() == Some("http") && !uri.host().is_some_and(is_loopback) {
                tracing::warn!(
                    vendor = %cfg.name,
                    endpoint = %endpoint,
                    "vendor endpoint is plain http:// to a non-local host: telemetry and API keys cross the network unencrypted; use https://"
                );
            }
        }

        let signals_list = cfg.effective_signals();
        let mut signals = [false; 3];
        for s in &signals_list {
            signals[s.index()] = true;
        }
        let name = cfg.name.clone();
        let v: &str = &name;
        let per_signal = |result: &str| -> [Handle; 3] {
            Signal::ALL.map(|s| {
                metrics.counter(
                    M_RECORDS,
                    H_RECORDS,
                    &[("vendor", v), ("signal", s.as_str()), ("result", result)],
                )
            })
        };
        let sent = per_signal("sent");
        let dropped_records = per_signal("dropped");
        let shared = Arc::new(Shared {
            queue_gauge: metrics.gauge(M_QUEUE, H_QUEUE, &[("vendor", v)]),
            queue_full: metrics.counter(
                M_DROPPED,
                H_DROPPED,
                &[("vendor", v), ("reason", "queue_full")],
            ),
            retries: metrics.counter(M_RETRIES, H_RETRIES, &[("vendor", v)]),
            sent,
            dropped_records,
            signals,
            max_bytes: cfg.queue.max_bytes,
            max_batches: cfg.queue.max_batches,
            crisis_reserve: cfg.queue.crisis_reserve_bytes,
            crisis_records: metrics.counter(
                "scrubs_vendor_crisis_records_total",
                "Crisis records queued for a vendor through the reserved room (never dropped for a full queue).",
                &[("vendor", v)],
            ),
            queue: Mutex::new(QueueState::default()),
            last_queue_full_log: Mutex::new(None),
            suppressed_queue_full: AtomicU64::new(0),
            space: tokio::sync::Notify::new(),
            failing_since: Mutex::new(None),
            max_failing: cfg.lag_limit.max_failing,
            metrics: metrics.clone(),
            name: name.clone(),
        });
        let transport = Arc::new(transport);
        let (tx, rx) = mpsc::unbounded_channel();
        let (abort_tx, abort_rx) = watch::channel(false);
        let (done_tx, done_rx) = oneshot::channel();
        let worker = Worker {
            shared: shared.clone(),
            transport: transport.clone(),
            batch: cfg.batch.clone(),
            retry: cfg.retry.clone(),
            max_in_flight: cfg.max_in_flight,
        };
        let handle = runtime.spawn(
            worker
                .run(rx, abort_rx, done_tx)
                .instrument(tracing::info_span!("vendor", vendor = %name)),
        );
        tracing::info!(
            vendor = %name,
            endpoint = %endpoint,
            protocol = ?cfg.protocol,
            compression = ?cfg.compression,
            signals = ?signals_list.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            headers = ?header_names,
            "vendor export started (baa_covered: true)"
        );
        Ok(Built {
            handle: VendorSink {
                shared,
                allow,
                transport,
                tx,
                abort: abort_tx,
                done: done_rx,
            },
            task: handle,
        })
    }
}

/// What [`VendorSink::hold_within`] got.
#[derive(Debug)]
pub enum Held<'a> {
    /// Room held in the queue for the batch.
    Room(QueueRoom<'a>),
    /// Nothing to send: the vendor does not take the batch, or dropped it
    /// and counted why.
    Nothing,
    /// No room within the wait: the request should be refused.
    Full,
}

/// Room held in a vendor's queue for one batch: [`QueueRoom::send`] queues
/// the batch in it; dropped unsent, it gives the room back.
pub struct QueueRoom<'a> {
    sink: &'a VendorSink,
    batch: Option<(Signal, u64, Body)>,
    bytes: u64,
}

impl QueueRoom<'_> {
    /// Queues the batch in the room held for it. A closed sink counts it
    /// dropped (`closed`).
    pub fn send(mut self) {
        if let Some((signal, records, body)) = self.batch.take() {
            let _ = self.sink.enqueue(body, signal, records, self.bytes, false);
        }
    }
}

impl Drop for QueueRoom<'_> {
    fn drop(&mut self) {
        if self.batch.is_some() {
            self.sink.shared.release(self.bytes, 1);
        }
    }
}

impl std::fmt::Debug for QueueRoom<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueRoom")
            .field("vendor", &self.sink.shared.name)
            .field("bytes", &self.bytes)
            .field("sent", &self.batch.is_none())
            .finish()
    }
}

impl VendorSink {
    /// The vendor's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Whether this vendor receives `signal` (`logs`, `traces`, `metrics`).
    pub fn accepts(&self, signal: &str) -> bool {
        Signal::ALL
            .iter()
            .any(|s| s.as_str() == signal && self.shared.signals[s.index()])
    }

    /// What every send path does first: a batch of a signal this vendor does
    /// not take, or with no records, is ignored (`None`); otherwise the
    /// vendor's allow-list is applied and the batch measured (before it is
    /// encoded: a batch the queue cannot take is dropped without the cost
    /// of encoding it).
    fn prepare(&self, mut batch: VendorBatch) -> Option<(Signal, u64, Body)> {
        let signal = signal_of(&batch);
        if !self.shared.signals[signal.index()] {
            return None;
        }
        let records = batch.records() as u64;
        if records == 0 {
            return None;
        }
        if let Some(allow) = &self.allow {
            allow.apply(signal, &mut batch);
        }
        Some((signal, records, Body::Own(Measured::new(batch))))
    }

    /// [`VendorSink::prepare`] for a batch other vendors receive too. A
    /// vendor without an allow-list sends the batch as it is, so it takes
    /// the encoding all such vendors share (encoding it if it is the
    /// first); a vendor with one rewrites a copy of its own. Unlike a batch
    /// of its own, the shared one is encoded before the queue is asked for
    /// room: the bytes serve the other vendors whether or not this one
    /// takes them.
    fn prepare_shared(&self, shared: &SharedBatch) -> Option<(Signal, u64, Body)> {
        let batch = shared.batch();
        let signal = signal_of(batch);
        if !self.shared.signals[signal.index()] {
            return None;
        }
        if self.allow.is_some() {
            return self.prepare(batch.clone());
        }
        let records = batch.records() as u64;
        if records == 0 {
            return None;
        }
        Some((
            signal,
            records,
            Body::Shared(shared.request(encode::request)),
        ))
    }

    /// Queues a batch without waiting. `Err` means the batch was dropped and
    /// has already been counted (the caller must not count it again).
    /// A batch of a signal this vendor does not take, or with no records,
    /// is ignored (`Ok`).
    pub fn send(&self, batch: VendorBatch) -> Result<(), DropReason> {
        self.send_prepared(self.prepare(batch))
    }

    /// [`VendorSink::send`] for a batch other vendors receive too (see
    /// [`SharedBatch`]).
    pub fn send_shared(&self, batch: &SharedBatch) -> Result<(), DropReason> {
        self.send_prepared(self.prepare_shared(batch))
    }

    fn send_prepared(&self, prepared: Option<(Signal, u64, Body)>) -> Result<(), DropReason> {
        let Some((signal, records, measured)) = prepared else {
            return Ok(());
        };
        let bytes = measured.len() as u64;
        if let Err(reason) = self.shared.reserve(bytes) {
            self.shared.count_dropped(signal, records, &reason);
            if reason == DropReason::QueueFull {
                self.shared.warn_queue_full();
            } else {
                tracing::warn!(vendor = %self.shared.name, bytes, records, "batch larger than the vendor's whole queue: dropped");
            }
            return Err(reason);
        }
        self.enqueue(measured, signal, records, bytes, false)
    }

    /// Hands a batch whose queue space is reserved to the sender task,
    /// without waiting for its request. A closed sink releases the space and
    /// counts the batch dropped (`closed`).
    fn enqueue(
        &self,
        measured: Body,
        signal: Signal,
        records: u64,
        bytes: u64,
        crisis: bool,
    ) -> Result<(), DropReason> {
        let body = measured.encode();
        debug_assert_eq!(body.len() as u64, bytes);
        let q = Queued {
            body,
            signal,
            records,
            bytes,
            waiter: None,
            crisis,
        };
        if self.tx.send(q).is_err() {
            self.shared.release(bytes, 1);
            self.shared
                .count_dropped(signal, records, &DropReason::Closed);
            return Err(DropReason::Closed);
        }
        Ok(())
    }

    /// Queues a batch and waits until the request that holds it is done:
    /// waits for queue space instead of dropping when the queue is full
    /// (back-pressure for sources that can wait: a file lane re-reads from
    /// its checkpoint, so the file on disk is the buffer). Returns `true`
    /// once the batch was delivered, or dropped and counted for a reason
    /// other than a full queue (refused, retries exhausted); `false` when
    /// it was abandoned at shutdown (not counted as delivered: the caller
    /// should send it again after a restart).
    pub async fn send_wait(&self, batch: VendorBatch) -> bool {
        let Some((signal, records, measured)) = self.prepare(batch) else {
            return true;
        };
        let bytes = measured.len() as u64;
        if let Err(reason) = self.shared.reserve_wait(bytes).await {
            self.shared.count_dropped(signal, records, &reason);
            tracing::warn!(vendor = %self.shared.name, bytes, records, "batch larger than the vendor's whole queue: dropped");
            return true;
        }
        let (tx, rx) = oneshot::channel();
        let q = Queued {
            body: measured.encode(),
            signal,
            records,
            bytes,
            waiter: Some(tx),
            crisis: false,
        };
        if self.tx.send(q).is_err() {
            self.shared.release(bytes, 1);
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Queues a batch of crisis records: it takes the crisis reserve above
    /// `queue.max_bytes` and waits, however long, for room rather than
    /// being dropped for a full queue (a crisis hand-off is never shed).
    /// Counted in `scrubs_vendor_crisis_records_total`.
    pub async fn send_crisis(&self, batch: VendorBatch) {
        self.send_crisis_prepared(self.prepare(batch)).await
    }

    /// [`VendorSink::send_crisis`] for a batch other vendors receive too.
    pub async fn send_crisis_shared(&self, batch: &SharedBatch) {
        self.send_crisis_prepared(self.prepare_shared(batch)).await
    }

    async fn send_crisis_prepared(&self, prepared: Option<(Signal, u64, Body)>) {
        let Some((signal, records, measured)) = prepared else {
            return;
        };
        let bytes = measured.len() as u64;
        loop {
            let notified = self.shared.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.shared.reserve_crisis(bytes) {
                break;
            }
            notified.await;
        }
        self.shared
            .crisis_records
            .fetch_add(records, Ordering::Relaxed);
        let _ = self.enqueue(measured, signal, records, bytes, true);
    }

    /// Holds room in the queue for a batch of an admitted OTLP request,
    /// waiting up to `wait` for it; the batch is queued when the room is
    /// sent ([`QueueRoom::send`]), and the room given back if it is dropped
    /// unsent. With no room by then: [`Held::Full`] if `refuse` and the
    /// vendor is not failing past `lag_limit.max_failing` (the request is
    /// refused and comes again), else the batch is dropped and counted
    /// `queue_full`. A batch larger than the whole queue is dropped and
    /// counted at once (no wait or retry would make room for it).
    pub async fn hold_within(&self, batch: VendorBatch, wait: Duration, refuse: bool) -> Held<'_> {
        self.hold_within_prepared(self.prepare(batch), wait, refuse)
            .await
    }

    /// [`VendorSink::hold_within`] for a batch other vendors receive too.
    pub async fn hold_within_shared(
        &self,
        batch: &SharedBatch,
        wait: Duration,
        refuse: bool,
    ) -> Held<'_> {
        self.hold_within_prepared(self.prepare_shared(batch), wait, refuse)
            .await
    }

    async fn hold_within_prepared(
        &self,
        prepared: Option<(Signal, u64, Body)>,
        wait: Duration,
        refuse: bool,
    ) -> Held<'_> {
        let Some((signal, records, body)) = prepared else {
            return Held::Nothing;
        };
        let bytes = body.len() as u64;
        let reserved = match tokio::time::timeout(wait, self.shared.reserve_wait(bytes)).await {
            Ok(r) => r,
            Err(_) => Err(DropReason::QueueFull),
        };
        match reserved {
            Ok(()) => Held::Room(QueueRoom {
                sink: self,
                batch: Some((signal, records, body)),
                bytes,
            }),
            // `congested` is false for a vendor failing past `max_failing`:
            // a dead vendor does not hold back the clients.
            Err(DropReason::QueueFull) if refuse && self.congested() => Held::Full,
            Err(reason) => {
                self.shared.count_dropped(signal, records, &reason);
                if reason == DropReason::QueueFull {
                    self.shared.warn_queue_full();
                } else {
                    tracing::warn!(vendor = %self.shared.name, bytes, records, "batch larger than the vendor's whole queue: dropped");
                }
                Held::Nothing
            }
        }
    }

    /// Whether OTLP clients should be asked to wait (429 with
    /// `Retry-After`) before sending more for this vendor: its queue is over
    /// half full, and it has not been failing for longer than
    /// `lag_limit.max_failing` (past that bound, a dead vendor's records are
    /// accepted and dropped, counted, so that it does not stop telemetry to
    /// the others).
    pub fn congested(&self) -> bool {
        let half_full = {
            let q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.bytes * 2 > self.shared.max_bytes || q.batches * 2 > self.shared.max_batches
        };
        if !half_full {
            return false;
        }
        let max = self.shared.max_failing;
        max.is_zero() || self.failing_since().is_none_or(|t| t.elapsed() < max)
    }

    /// Since when every attempt to export to this vendor has failed with a
    /// retryable error, if it is failing now.
    pub fn failing_since(&self) -> Option<Instant> {
        *self
            .shared
            .failing_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Protobuf bytes queued or in flight.
    pub fn queued_bytes(&self) -> u64 {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bytes
    }

    /// Checks that the vendor answers: one empty export request for the
    /// first configured signal, with the configured timeout and headers.
    /// Success, or a refusal of the empty request itself (HTTP 400, gRPC
    /// INVALID_ARGUMENT) which still proves the endpoint is reachable and
    /// accepts our credentials, is healthy; a connection, TLS, auth (401,
    /// 403) or path (404) failure is not. Not counted in the export metrics.
    pub async fn healthcheck(&self) -> Result<(), String> {
        let Some(signal) = Signal::ALL
            .into_iter()
            .find(|s| self.shared.signals[s.index()])
        else {
            return Err(format!(
                "vendor {:?}: no signals configured",
                self.shared.name
            ));
        };
        let empty = match signal {
            Signal::Logs => VendorBatch::Logs(Vec::new()),
            Signal::Traces => VendorBatch::Traces(Vec::new()),
            Signal::Metrics => VendorBatch::Metrics(Vec::new()),
        };
        let body = self
            .transport
            .prepare(vec![Bytes::from(transport::encode(empty))]);
        match self.transport.attempt(signal, body).await {
            Attempt::Accepted { .. } => Ok(()),
            Attempt::Reject { code } if code == "400" || code == "invalid_argument" => Ok(()),
            Attempt::Reject { code } => Err(format!(
                "vendor {:?}: endpoint refused an export request ({code})",
                self.shared.name
            )),
            Attempt::Retry { code, detail, .. } => {
                Err(format!("vendor {:?}: {code}: {detail}", self.shared.name))
            }
        }
    }

    /// Stops taking batches, sends what is queued (retrying as usual) until
    /// `deadline`, then abandons the rest, counted as dropped `shutdown`.
    pub async fn shutdown(self, deadline: Duration) {
        let VendorSink {
            shared,
            tx,
            abort,
            mut done,
            ..
        } = self;
        // Closing the channel tells the task to flush partial batches now.
        drop(tx);
        if tokio::time::timeout(deadline, &mut done).await.is_err() {
            let _ = abort.send(true);
            if tokio::time::timeout(ABORT_GRACE, &mut done).await.is_err() {
                tracing::warn!(vendor = %shared.name, "vendor export task did not stop after the shutdown deadline");
            }
        }
    }
}

/// A batch being assembled for one signal.
struct Pending {
    /// The queued export requests, in order. Their concatenation is the
    /// merged request; they are kept apart so that gzip reads them one
    /// after the other instead of from a copy grown by appending each.
    parts: Vec<Bytes>,
    /// Senders waiting for this request's outcome ([`Queued::waiter`]).
    waiters: Vec<oneshot::Sender<bool>>,
    signal: Signal,
    records: u64,
    bytes: u64,
    items: usize,
    since: Instant,
    /// Holds crisis records: retried without the `retry.max_elapsed` limit.
    crisis: bool,
}

/// The background task of one vendor.
#[derive(Clone)]
struct Worker {
    shared: Arc<Shared>,
    transport: Arc<Transport>,
    batch: BatchConfig,
    retry: RetryConfig,
    /// Requests (with their retries) under way at once.
    max_in_flight: usize,
}

/// Resolves when a shutdown deadline has passed; never if the handle was
/// dropped without a shutdown.
async fn aborted(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|a| *a).await.is_err() {
        pending::<()>().await;
    }
}

impl Worker {
    async fn run(
        self,
        mut rx: mpsc::UnboundedReceiver<Queued>,
        mut abort: watch::Receiver<bool>,
        _done: oneshot::Sender<()>,
    ) {
        let mut pending: [Option<Pending>; 3] = [None, None, None];
        // Requests under way. While one waits for the vendor, the next batch
        // is gathered, compressed and sent: one request at a time left the
        // exporter idle for a round trip per batch, and it could not keep up
        // with the receiver on one core.
        let mut in_flight: JoinSet<bool> = JoinSet::new();
        let completed = 'run: loop {
            let next_due = pending
                .iter()
                .flatten()
                .map(|p| p.since + self.batch.max_wait)
                .min();
            tokio::select! {
                biased;
                _ = aborted(&mut abort) => break 'run false,
                msg = rx.recv() => match msg {
                    Some(mut q) => {
                        let i = q.signal.index();
                        let waiter = q.waiter.take();
                        let urgent = waiter.is_some();
                        let overflow = pending[i].as_ref().is_some_and(|p| {
                            p.records + q.records > self.batch.max_records as u64
                                || p.bytes + q.bytes > self.batch.max_bytes
                        });
                        if overflow {
                            if let Some(p) = pending[i].take() {
                                if !self.send(p, &mut in_flight, &abort).await {
                                    // The new item is counted with the rest.
                                    pending[i] = Some(self.start_pending(q));
                                    break 'run false;
                                }
                            }
                        }
                        match &mut pending[i] {
                            Some(p) => {
                                p.parts.push(q.body);
                                p.crisis |= q.crisis;
                                p.records += q.records;
                                p.bytes += q.bytes;
                                p.items += 1;
                            }
                            None => pending[i] = Some(self.start_pending(q)),
                        }
                        if let (Some(p), Some(w)) = (pending[i].as_mut(), waiter) {
                            p.waiters.push(w);
                        }
                        let full = urgent || pending[i].as_ref().is_some_and(|p| {
                            p.records >= self.batch.max_records as u64
                                || p.bytes >= self.batch.max_bytes
                        });
                        if full {
                            if let Some(p) = pending[i].take() {
                                if !self.send(p, &mut in_flight, &abort).await {
                                    break 'run false;
                                }
                            }
                        }
                    }
                    None => {
                        // The handle is gone (shutdown or drop): flush now.
                        for slot in pending.iter_mut() {
                            if let Some(p) = slot.take() {
                                if !self.send(p, &mut in_flight, &abort).await {
                                    break 'run false;
                                }
                            }
                        }
                        while let Some(done) = in_flight.join_next().await {
                            if !delivered(done) {
                                break 'run false;
                            }
                        }
                        break 'run true;
                    }
                },
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                    if !delivered(done) {
                        break 'run false;
                    }
                }
                _ = sleep_until_opt(next_due), if next_due.is_some() => {
                    let now = Instant::now();
                    for slot in pending.iter_mut() {
                        let due = slot.as_ref().is_some_and(|p| p.since + self.batch.max_wait <= now);
                        if due {
                            if let Some(p) = slot.take() {
                                if !self.send(p, &mut in_flight, &abort).await {
                                    break 'run false;
                                }
                            }
                        }
                    }
                }
            }
        };
        // The deadline has passed if any request is still under way: each
        // ends at once, counting its records as dropped at shutdown.
        while in_flight.join_next().await.is_some() {}
        if !completed {
            // The shutdown deadline passed: count everything left.
            let mut records = 0;
            for p in pending.iter_mut().filter_map(Option::take) {
                records += p.records;
                self.abandon(p.batch_signal(), p.records, p.bytes, p.items);
            }
            rx.close();
            while let Ok(q) = rx.try_recv() {
                records += q.records;
                self.abandon(q.signal, q.records, q.bytes, 1);
            }
            if records > 0 {
                tracing::warn!(
                    vendor = %self.shared.name,
                    records,
                    "shutdown deadline passed: queued telemetry for this vendor dropped"
                );
            }
        }
    }

    /// Starts delivering `p` once fewer than `max_in_flight` requests are
    /// under way. Returns `false` if the shutdown deadline interrupted one
    /// that had to finish first; `p` is then counted as dropped too.
    async fn send(
        &self,
        p: Pending,
        in_flight: &mut JoinSet<bool>,
        abort: &watch::Receiver<bool>,
    ) -> bool {
        while in_flight.len() >= self.max_in_flight {
            match in_flight.join_next().await {
                Some(done) => {
                    if !delivered(done) {
                        self.abandon(p.batch_signal(), p.records, p.bytes, p.items);
                        return false;
                    }
                }
                None => break,
            }
        }
        let worker = self.clone();
        let mut abort = abort.clone();
        in_flight.spawn(
            async move { worker.deliver(p, &mut abort).await }
                .instrument(tracing::info_span!("vendor_request", vendor = %self.shared.name)),
        );
        true
    }

    fn start_pending(&self, q: Queued) -> Pending {
        Pending {
            parts: vec![q.body],
            waiters: Vec::new(),
            signal: q.signal,
            records: q.records,
            bytes: q.bytes,
            items: 1,
            since: Instant::now(),
            crisis: q.crisis,
        }
    }

    fn abandon(&self, signal: Signal, records: u64, bytes: u64, items: usize) {
        self.shared
            .count_dropped(signal, records, &DropReason::Shutdown);
        self.shared.release(bytes, items);
    }

    /// Sends one batch with retries. Returns `false` if the shutdown
    /// deadline interrupted it (the batch is then counted as `shutdown`).
    async fn deliver(&self, p: Pending, abort: &mut watch::Receiver<bool>) -> bool {
        let Pending {
            parts,
            waiters,
            signal,
            records,
            bytes,
            items,
            crisis,
            ..
        } = p;
        let body = self.transport.prepare(parts);
        let result = tokio::select! {
            biased;
            _ = aborted(abort) => None,
            r = self.export(signal, body, records, crisis) => Some(r),
        };
        let completed = result.is_some();
        match result {
            None => self
                .shared
                .count_dropped(signal, records, &DropReason::Shutdown),
            Some(Ok(rejected)) => {
                let rejected = rejected.min(records);
                self.shared.count_sent(signal, records - rejected);
                if rejected > 0 {
                    self.shared
                        .count_dropped(signal, rejected, &DropReason::PartialRejected);
                    tracing::warn!(
                        vendor = %self.shared.name,
                        signal = signal.as_str(),
                        rejected,
                        records,
                        "vendor accepted a batch but rejected some records"
                    );
                }
            }
            Some(Err(reason)) => self.shared.count_dropped(signal, records, &reason),
        }
        self.shared.release(bytes, items);
        for w in waiters {
            let _ = w.send(completed);
        }
        completed
    }

    /// The backoff before retry number `n` (0-based): full jitter over an
    /// exponentially growing, capped window.
    fn backoff(&self, n: u32) -> Duration {
        let base = self.retry.initial_backoff.as_secs_f64();
        let cap = self.retry.max_backoff.as_secs_f64();
        let window = (base * 2f64.powi(n.min(62) as i32)).min(cap);
        let jittered = rand::rng().random_range(0.0..=window);
        Duration::from_secs_f64(jittered)
    }

    /// Attempts until accepted, refused, or out of retry time. `Ok` holds
    /// the number of records the vendor rejected in an accepted request.
    async fn export(
        &self,
        signal: Signal,
        body: Bytes,
        records: u64,
        crisis: bool,
    ) -> Result<u64, DropReason> {
        let started = Instant::now();
        let name = &self.shared.name;
        let mut retry_no = 0u32;
        loop {
            let attempt = self.transport.attempt(signal, body.clone()).await;
            self.shared.metrics.add(
                M_REQUESTS,
                H_REQUESTS,
                &[("vendor", name), ("code", attempt.code())],
                1,
            );
            self.shared
                .note_attempt(!matches!(attempt, Attempt::Retry { .. }));
            match attempt {
                Attempt::Accepted { rejected, .. } => return Ok(rejected),
                Attempt::Reject { code } => {
                    tracing::warn!(
                        vendor = %name,
                        signal = signal.as_str(),
                        code = %code,
                        records,
                        "vendor refused a batch (not retryable): dropped"
                    );
                    return Err(DropReason::Rejected(code));
                }
                Attempt::Retry {
                    code,
                    class,
                    retry_after,
                    detail,
                } => {
                    // The vendor's own wait wins over the backoff.
                    let wait = retry_after.unwrap_or_else(|| self.backoff(retry_no));
                    // Crisis records are retried until the vendor answers
                    // or the drain abandons them: never given up for time.
                    if !crisis && started.elapsed() + wait > self.retry.max_elapsed {
                        let reason = match class {
                            FailClass::Tls => DropReason::TlsError,
                            FailClass::Connect => DropReason::ConnectError,
                            FailClass::Status | FailClass::Timeout | FailClass::Transport => {
                                DropReason::RetryExhausted
                            }
                        };
                        tracing::warn!(
                            vendor = %name,
                            signal = signal.as_str(),
                            code = %code,
                            error = %detail,
                            attempts = retry_no + 1,
                            records,
                            reason = %reason,
                            "giving up on a batch for this vendor: dropped"
                        );
                        return Err(reason);
                    }
                    tracing::debug!(
                        vendor = %name,
                        code = %code,
                        error = %detail,
                        wait_ms = wait.as_millis() as u64,
                        retry = retry_no + 1,
                        "export attempt failed; retrying"
                    );
                    self.shared.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
                    retry_no = retry_no.saturating_add(1);
                }
            }
        }
    }
}

impl Pending {
    fn batch_signal(&self) -> Signal {
        self.signal
    }
}

/// Whether a finished delivery task completed (rather than being cut short
/// by the shutdown deadline). A task that panicked has lost its batch; the
/// panic is reported by the panic hook, and the worker goes on.
fn delivered(done: Result<bool, tokio::task::JoinError>) -> bool {
    done.unwrap_or(true)
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => pending::<()>().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use prost::Message;

    fn logs(n: usize) -> VendorBatch {
        VendorBatch::Logs(vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord::default(); n],
                ..Default::default()
            }],
            ..Default::default()
        }])
    }

    #[test]
    fn measured_size_matches_request() {
        let b = logs(3);
        let n = Measured::new(b.clone()).len();
        assert_eq!(n, transport::encode(b).len());
    }

    /// The queue merges batches by appending their encodings; that relies on
    /// the export request having one repeated field.
    #[test]
    fn appended_encodings_decode_as_the_merged_request() {
        let mut body = transport::encode(logs(3));
        body.extend_from_slice(&transport::encode(logs(2)));
        let merged =
            opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest::decode(
                body.as_slice(),
            )
            .unwrap();
        let VendorBatch::Logs(mut want) = logs(3) else {
            unreachable!()
        };
        let VendorBatch::Logs(more) = logs(2) else {
            unreachable!()
        };
        want.extend(more);
        assert_eq!(merged.resource_logs, want);
    }

    /// Two vendors without allow-lists queue the same bytes, encoded once
    /// (the same allocation); a vendor with an allow-list encodes its own
    /// rewritten copy. Fails if each vendor encodes the shared batch again.
    #[tokio::test]
    async fn vendors_share_one_encoding_unless_they_rewrite_the_batch() {
        use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
        let m = Metrics::new();
        let sink = |yaml: &str| {
            let cfg: VendorConfig = serde_yaml::from_str(yaml).unwrap();
            cfg.build(&Context::new("test", m.clone())).unwrap().handle
        };
        let plain = "endpoint: http://127.0.0.1:1\nbaa_covered: true\n";
        let a = sink(&format!("name: a\n{plain}"));
        let b = sink(&format!("name: b\n{plain}"));
        let c = sink(&format!("name: c\n{plain}allow: {{ keys: [level] }}\n"));
        let VendorBatch::Logs(mut rls) = logs(3) else {
            unreachable!()
        };
        for lr in &mut rls[0].scope_logs[0].log_records {
            lr.body = Some(AnyValue {
                value: Some(any_value::Value::StringValue("free text".into())),
            });
        }
        let batch = VendorBatch::Logs(rls);
        let want = transport::encode(batch.clone());
        let shared = SharedBatch::new(batch);
        let body = |s: &VendorSink| match s.prepare_shared(&shared) {
            Some((Signal::Logs, 3, body)) => body,
            _ => panic!("the batch was not prepared"),
        };
        let (Body::Shared(x), Body::Shared(y)) = (body(&a), body(&b)) else {
            panic!("a vendor without an allow-list encoded its own copy");
        };
        assert_eq!(x.as_ptr(), y.as_ptr(), "encoded twice");
        assert_eq!(&x[..], &want[..]);
        let Body::Own(own) = body(&c) else {
            panic!("the allow-list vendor took the shared encoding");
        };
        assert_ne!(own.encode(), want, "the allow-list did not apply");
        for s in [a, b, c] {
            s.shutdown(Duration::from_millis(100)).await;
        }
    }

    #[test]
    fn sink_can_be_shared_across_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<VendorSink>();
    }

    #[test]
    fn reasons_label() {
        assert_eq!(DropReason::Rejected("400".into()).label(), "rejected_400");
        assert_eq!(DropReason::QueueFull.to_string(), "queue_full");
    }

    #[tokio::test]
    async fn start_refuses_non_baa_vendor() {
        let cfg: VendorConfig =
            serde_yaml::from_str("name: nobaa\nendpoint: http://127.0.0.1:1\n").unwrap();
        let err = cfg
            .build(&Context::new("test", Metrics::new()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"nobaa\""), "{err}");
        assert!(err.contains("baa_covered is not true"), "{err}");
    }

    #[tokio::test]
    async fn missing_secret_names_variable_not_value() {
        let cfg: VendorConfig = serde_yaml::from_str(
            "name: v\nendpoint: http://127.0.0.1:1\nbaa_covered: true\nheaders: { x-key: { env: SCRUBS_OTLP_TEST_UNSET_VAR } }\n",
        )
        .unwrap();
        let err = cfg
            .build(&Context::new("test", Metrics::new()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SCRUBS_OTLP_TEST_UNSET_VAR"), "{err}");
        assert!(err.contains("x-key"), "{err}");
    }

    /// A sink to a vendor that never answers, whose queue holds two
    /// batches of `logs(n)` records (512 to 1024 bytes each), with more
    /// queue settings from `extra(one batch's bytes)`. Returns `n`, the
    /// batch's bytes, the sink and its metrics.
    fn two_batch_sink(extra: impl Fn(u64) -> String) -> (usize, u64, VendorSink, Arc<Metrics>) {
        let n = (1..1000)
            .find(|&n| Measured::new(logs(n)).len() >= 512)
            .unwrap();
        let one = Measured::new(logs(n)).len() as u64;
        assert!(one <= 1024);
        let cfg: VendorConfig = serde_yaml::from_str(&format!(
            "name: v\nendpoint: http://127.0.0.1:1\nbaa_covered: true\nbatch: {{ max_bytes: 1024 }}\nqueue: {{ max_bytes: {}, max_batches: 100, {} }}\n",
            one * 2,
            extra(one)
        ))
        .unwrap();
        let metrics = Metrics::new();
        let sink = cfg
            .build(&Context::new("test", metrics.clone()))
            .unwrap()
            .handle;
        (n, one, sink, metrics)
    }

    /// A crisis batch takes the reserve above a full queue, at once; an
    /// ordinary batch is still dropped for the full queue.
    #[tokio::test]
    async fn a_full_queue_still_takes_crisis_batches() {
        // The queue holds two batches, the reserve two more.
        let (n, _, sink, metrics) =
            two_batch_sink(|one| format!("crisis_reserve_bytes: {}", one * 2));
        let mut sent = 0;
        while sink.send(logs(n)).is_ok() {
            sent += 1;
            assert!(sent < 10, "the queue never filled");
        }
        for _ in 0..2 {
            tokio::time::timeout(Duration::from_secs(2), sink.send_crisis(logs(n)))
                .await
                .expect("a crisis batch waited although the reserve had room");
        }
        assert_eq!(
            metrics.value("scrubs_vendor_crisis_records_total", &[("vendor", "v")]),
            Some(2 * n as u64)
        );
        assert_eq!(sink.send(logs(n)), Err(DropReason::QueueFull));
        // The reserve is full too: a crisis batch now waits for room
        // instead of being dropped.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), sink.send_crisis(logs(n)))
                .await
                .is_err()
        );
        sink.shutdown(Duration::from_millis(100)).await;
    }

    /// Room held for an OTLP request's batch: given back when dropped
    /// unsent, queued when sent; with no room in time, the request is
    /// refused (`Full`, nothing counted) or, when it must not be refused,
    /// the batch is dropped and counted.
    #[tokio::test]
    async fn held_room_is_given_back_unless_sent() {
        let (n, one, sink, metrics) = two_batch_sink(|_| String::new());
        let wait = Duration::from_millis(100);
        let queued = || metrics.value("scrubs_vendor_queue_bytes", &[("vendor", "v")]);
        let dropped = || {
            metrics.value(
                "scrubs_vendor_dropped_total",
                &[("vendor", "v"), ("reason", "queue_full")],
            )
        };
        let Held::Room(a) = sink.hold_within(logs(n), wait, true).await else {
            panic!("no room in an empty queue");
        };
        let Held::Room(b) = sink.hold_within(logs(n), wait, true).await else {
            panic!("no room for the second batch");
        };
        assert_eq!(queued(), Some(2 * one));
        assert!(matches!(
            sink.hold_within(logs(n), wait, true).await,
            Held::Full
        ));
        assert_eq!(
            dropped().unwrap_or(0),
            0,
            "a refused request was counted dropped"
        );
        assert!(matches!(
            sink.hold_within(logs(n), wait, false).await,
            Held::Nothing
        ));
        assert_eq!(dropped(), Some(n as u64));
        // Dropped unsent: the room comes back.
        drop(b);
        assert_eq!(queued(), Some(one));
        // Sent: the batch keeps its room until the sender is done with it.
        a.send();
        assert_eq!(queued(), Some(one));
        assert!(matches!(
            sink.hold_within(logs(n), wait, true).await,
            Held::Room(_)
        ));
        assert_eq!(
            queued(),
            Some(one),
            "a room dropped at once gave its bytes back"
        );
        sink.shutdown(Duration::from_millis(100)).await;
    }
}
