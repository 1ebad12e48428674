//! The OTLP receiver: logs, traces and metrics over OTLP/HTTP (binary
//! protobuf and JSON, on `/v1/logs`, `/v1/traces` and `/v1/metrics`,
//! default port 4318) and OTLP/gRPC (default port 4317), per the OTLP
//! specification.
//!
//! Every decoded request goes to an [`OtlpHandler`]; its answer becomes the
//! response: `200` with an `Export*ServiceResponse` (with `partial_success`
//! when records were rejected), `429`/`RESOURCE_EXHAUSTED` or
//! `503`/`UNAVAILABLE` with a retry delay when scrubs is overloaded, `400`/
//! `INVALID_ARGUMENT` for bad data. Error bodies are `google.rpc.Status`
//! messages, protobuf or JSON to match the request.
//!
//! Hostile input is bounded: the wire size of a request
//! (`max_request_bytes`, `413`), its size after gzip (`max_decompressed_bytes`,
//! `413`, checked while inflating, so a gzip bomb never grows past the
//! limit), the time to send headers and body (`request_timeout`, then the
//! connection is closed or answered `408`), the requests decoded at once
//! (`max_concurrent_requests`, then `429`) and the open connections
//! (`max_connections`: at the limit the longest-idle connection is closed
//! to admit a new one, as mature HTTP servers do, and only when every
//! connection has a request in flight is a new one closed at once; from
//! three quarters of the limit on, idle connections are closed after
//! [`BUSY_IDLE_TIMEOUT`] instead of `idle_timeout`). Memory in use is
//! therefore at most about `max_concurrent_requests × (max_request_bytes +
//! max_decompressed_bytes + the decoded request)`.
//!
//! Nothing here logs or labels event content: metrics carry the transport,
//! signal, status code and reason only.

mod grpc;
pub(crate) mod http;
mod status;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::metrics::Metrics;
use crate::pipeline::OtlpHandler;
use crate::topology::{BuildError, Built, Context};
use crate::units::deserialize_duration;

pub use status::{code, ProtoAny, ProtoDuration, RetryInfo, RpcStatus, RETRY_INFO_TYPE};

/// The OTLP receiver's configuration (the `otlp:` section).
///
/// ```yaml
/// otlp:
///   http: { address: 127.0.0.1:4318 }
///   grpc: { address: 127.0.0.1:4317 }
///   max_request_bytes: 4194304
///   max_decompressed_bytes: 16777216
///   request_timeout: 30s
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The OTLP/HTTP listener (protobuf and JSON). Enabled on
    /// 127.0.0.1:4318 when the key is absent; `http: null` disables it.
    #[serde(default = "default_http")]
    pub http: Option<HttpConfig>,
    /// The OTLP/gRPC listener. Enabled on 127.0.0.1:4317 when the key is
    /// absent; `grpc: null` disables it.
    #[serde(default = "default_grpc")]
    pub grpc: Option<GrpcConfig>,
    /// The largest request accepted, in bytes as sent (before gzip is
    /// undone). Larger requests get HTTP 413 / gRPC RESOURCE_EXHAUSTED and
    /// are not read further. Default 4 MiB.
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    /// The largest request accepted after gzip decompression, in bytes.
    /// Decompression stops at this size (a gzip bomb costs no more than
    /// this much memory) and the request gets HTTP 413 / gRPC
    /// RESOURCE_EXHAUSTED. Must be at least `max_request_bytes`. Default
    /// 16 MiB.
    #[serde(default = "default_max_decompressed_bytes")]
    pub max_decompressed_bytes: usize,
    /// How long a client may take to send a request (headers and body) and
    /// scrubs to answer it, e.g. `30s`, `500ms`, `2m` or a number of
    /// seconds. A client that sends its headers too slowly is disconnected;
    /// one that sends its body too slowly gets HTTP 408; a request the
    /// pipeline cannot accept in time gets HTTP 503 / gRPC DEADLINE_EXCEEDED.
    /// An idle HTTP/1.1 keep-alive connection is closed after this long too.
    /// Default 30s.
    #[serde(
        default = "default_request_timeout",
        deserialize_with = "deserialize_duration"
    )]
    pub request_timeout: Duration,
    /// How long an HTTP/2 (gRPC) connection may stay open with no request
    /// in flight before it is closed gracefully (GOAWAY). Clients reconnect
    /// on their own. Default 2m.
    #[serde(
        default = "default_idle_timeout",
        deserialize_with = "deserialize_duration"
    )]
    pub idle_timeout: Duration,
    /// The most requests read, decoded and handled at once, over both
    /// listeners. More get HTTP 429 / gRPC RESOURCE_EXHAUSTED with a retry
    /// delay. Bounds memory. Default 8.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// The most open connections per listener. At the limit, the
    /// connection that has been idle longest (no request in flight) is
    /// closed to admit the new one; only when all are busy is the new one
    /// closed at once. From three quarters of the limit on, connections
    /// idle for 5 s are closed (instead of after `idle_timeout`), so that
    /// idle clients cannot lock out a real one. Default 256.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

/// The OTLP/HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The address to listen on, `IP:port`. Default `127.0.0.1:4318`
    /// (the pod's own network namespace); use `0.0.0.0:4318` to accept
    /// from other hosts. Port 0 picks a free port.
    #[serde(default = "default_http_address")]
    pub address: String,
}

/// The OTLP/gRPC listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    /// The address to listen on, `IP:port`. Default `127.0.0.1:4317`.
    /// Port 0 picks a free port.
    #[serde(default = "default_grpc_address")]
    pub address: String,
}

fn default_http_address() -> String {
    "127.0.0.1:4318".to_string()
}
fn default_grpc_address() -> String {
    "127.0.0.1:4317".to_string()
}
fn default_http() -> Option<HttpConfig> {
    Some(HttpConfig::default())
}
fn default_grpc() -> Option<GrpcConfig> {
    Some(GrpcConfig::default())
}
fn default_max_request_bytes() -> usize {
    4 << 20
}
fn default_max_decompressed_bytes() -> usize {
    16 << 20
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(120)
}
fn default_max_concurrent_requests() -> usize {
    8
}
fn default_max_connections() -> usize {
    256
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            address: default_http_address(),
        }
    }
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            address: default_grpc_address(),
        }
    }
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            http: default_http(),
            grpc: default_grpc(),
            max_request_bytes: default_max_request_bytes(),
            max_decompressed_bytes: default_max_decompressed_bytes(),
            request_timeout: default_request_timeout(),
            idle_timeout: default_idle_timeout(),
            max_concurrent_requests: default_max_concurrent_requests(),
            max_connections: default_max_connections(),
        }
    }
}

/// Upper bounds that keep a typo from becoming an outage.
const MAX_SANE_BYTES: usize = 1 << 30;

impl OtlpConfig {
    /// Every problem with the configuration, each a sentence naming the
    /// field. Empty when the configuration is usable.
    pub fn validate(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.http.is_none() && self.grpc.is_none() {
            out.push("otlp: both `http` and `grpc` are disabled; enable at least one or remove the otlp section".into());
        }
        if let Some(h) = &self.http {
            if let Err(e) = h.address.parse::<SocketAddr>() {
                out.push(format!(
                    "otlp.http.address: `{}` is not IP:port ({e})",
                    h.address
                ));
            }
        }
        if let Some(g) = &self.grpc {
            if let Err(e) = g.address.parse::<SocketAddr>() {
                out.push(format!(
                    "otlp.grpc.address: `{}` is not IP:port ({e})",
                    g.address
                ));
            }
        }
        if let (Some(h), Some(g)) = (&self.http, &self.grpc) {
            if let (Ok(a), Ok(b)) = (
                h.address.parse::<SocketAddr>(),
                g.address.parse::<SocketAddr>(),
            ) {
                if a == b && a.port() != 0 {
                    out.push(format!(
                        "otlp: http and grpc both listen on {a}; they need different ports"
                    ));
                }
            }
        }
        if self.max_request_bytes == 0 || self.max_request_bytes > MAX_SANE_BYTES {
            out.push(format!(
                "otlp.max_request_bytes: {} is out of range (1 to {MAX_SANE_BYTES})",
                self.max_request_bytes
            ));
        }
        if self.max_decompressed_bytes == 0 || self.max_decompressed_bytes > MAX_SANE_BYTES {
            out.push(format!(
                "otlp.max_decompressed_bytes: {} is out of range (1 to {MAX_SANE_BYTES})",
                self.max_decompressed_bytes
            ));
        }
        if self.max_decompressed_bytes < self.max_request_bytes {
            out.push(format!(
                "otlp.max_decompressed_bytes ({}) must be at least max_request_bytes ({})",
                self.max_decompressed_bytes, self.max_request_bytes
            ));
        }
        if self.request_timeout.is_zero() {
            out.push("otlp.request_timeout: must be more than zero".into());
        }
        if self.idle_timeout.is_zero() {
            out.push("otlp.idle_timeout: must be more than zero".into());
        }
        if self.max_concurrent_requests == 0
            || self.max_concurrent_requests > Semaphore::MAX_PERMITS / 2
        {
            out.push("otlp.max_concurrent_requests: must be at least 1".into());
        }
        if self.max_connections == 0 || self.max_connections > u32::MAX as usize {
            out.push("otlp.max_connections: must be at least 1".into());
        }
        out
    }
}

/// The three OTLP signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Logs,
    Traces,
    Metrics,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Logs => "logs",
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
        }
    }
}

/// The listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Http,
    Grpc,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Grpc => "grpc",
        }
    }
}

const REQUESTS: &str = "scrubs_otlp_requests_total";
const REQUESTS_HELP: &str = "OTLP export requests answered, by transport, signal and status code.";
const BYTES: &str = "scrubs_otlp_request_bytes_total";
const BYTES_HELP: &str = "OTLP request bytes received on the wire (before decompression).";
const REJECTED: &str = "scrubs_otlp_rejected_total";
const REJECTED_HELP: &str = "OTLP requests or connections refused, by reason.";
const REJECTED_RECORDS: &str = "scrubs_otlp_rejected_records_total";
const REJECTED_RECORDS_HELP: &str =
    "Records rejected within accepted OTLP requests (partial success).";

/// What every connection of the receiver shares.
struct Shared {
    handler: Arc<dyn OtlpHandler>,
    metrics: Arc<Metrics>,
    max_request_bytes: usize,
    max_decompressed_bytes: usize,
    request_timeout: Duration,
    idle_timeout: Duration,
    /// Requests being read, decoded or handled, over both listeners.
    requests: Arc<Semaphore>,
}

impl Shared {
    fn count_request(&self, transport: Transport, signal: &str, code: &str) {
        self.metrics.add(
            REQUESTS,
            REQUESTS_HELP,
            &[
                ("transport", transport.name()),
                ("signal", signal),
                ("code", code),
            ],
            1,
        );
    }

    fn count_bytes(&self, transport: Transport, signal: &str, n: u64) {
        self.metrics.add(
            BYTES,
            BYTES_HELP,
            &[("transport", transport.name()), ("signal", signal)],
            n,
        );
    }

    fn count_rejected(&self, reason: &str) {
        self.metrics
            .add(REJECTED, REJECTED_HELP, &[("reason", reason)], 1);
    }

    fn count_rejected_records(&self, signal: Signal, n: i64) {
        if n > 0 {
            self.metrics.add(
                REJECTED_RECORDS,
                REJECTED_RECORDS_HELP,
                &[("signal", signal.name())],
                n as u64,
            );
        }
    }

    /// A request slot, if one is free.
    fn try_request(&self) -> Option<OwnedSemaphorePermit> {
        self.requests.clone().try_acquire_owned().ok()
    }
}

/// The retry delay suggested when the receiver itself is at its limit.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// The idle timeout once a listener has three quarters of
/// `max_connections` open: short, so that idle keep-alive connections make
/// room before the limit is reached, long enough for an exporter's next
/// batch (the SDKs' default schedule delays are 1 to 5 s) to reuse its
/// connection.
pub const BUSY_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection admitted by closing an idle one waits for that
/// one's slot to be released.
const EVICT_WAIT: Duration = Duration::from_secs(1);

/// The open connections of one listener, so that the longest-idle one can
/// be closed when the limit is reached.
struct Conns {
    slots: Arc<Semaphore>,
    max: usize,
    next_id: AtomicU64,
    open: std::sync::Mutex<std::collections::HashMap<u64, OpenConn>>,
}

struct OpenConn {
    activity: Arc<Activity>,
    close_if_idle: Arc<tokio::sync::Notify>,
    /// Already asked to close: not picked twice.
    asked: Arc<std::sync::atomic::AtomicBool>,
}

impl Conns {
    fn new(max: usize) -> Arc<Conns> {
        Arc::new(Conns {
            slots: Arc::new(Semaphore::new(max)),
            max,
            next_id: AtomicU64::new(0),
            open: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// Whether three quarters of the limit are in use.
    fn near_limit(&self) -> bool {
        let used = self.max.saturating_sub(self.slots.available_permits());
        used * 4 >= self.max * 3
    }

    fn register(self: &Arc<Self>, activity: Arc<Activity>) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let close_if_idle = Arc::new(tokio::sync::Notify::new());
        let asked = Arc::new(std::sync::atomic::AtomicBool::new(false));
        self.open.lock().unwrap_or_else(|e| e.into_inner()).insert(
            id,
            OpenConn {
                activity,
                close_if_idle: close_if_idle.clone(),
                asked: asked.clone(),
            },
        );
        Registered {
            conns: self.clone(),
            id,
            close_if_idle,
            asked,
        }
    }

    /// Asks the connection idle the longest to close; false when every
    /// open connection has a request in flight.
    fn close_longest_idle(&self) -> bool {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let victim = open
            .values()
            .filter(|c| !c.asked.load(Ordering::Relaxed))
            .filter_map(|c| c.activity.idle_for().map(|d| (d, c)))
            .max_by_key(|(d, _)| *d);
        match victim {
            Some((_, c)) => {
                c.asked.store(true, Ordering::Relaxed);
                c.close_if_idle.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A connection's entry in [`Conns`], removed when it ends.
struct Registered {
    conns: Arc<Conns>,
    id: u64,
    close_if_idle: Arc<tokio::sync::Notify>,
    asked: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.conns
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// Whether a connection is busy, and since when it has been idle.
struct Activity {
    base: Instant,
    in_flight: AtomicUsize,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            base: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        })
    }

    /// Marks a request in flight until the guard drops.
    fn start(self: &Arc<Self>) -> ActivityGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        ActivityGuard(self.clone())
    }

    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let now = self.base.elapsed();
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        Some(now.saturating_sub(last))
    }
}

struct ActivityGuard(Arc<Activity>);

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        let ms = u64::try_from(self.0.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_ms.store(ms, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The addresses an OTLP receiver listens on (the real ports when the
/// configuration asked for port 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtlpAddrs {
    /// The OTLP/HTTP listener, if configured.
    pub http: Option<SocketAddr>,
    /// The OTLP/gRPC listener, if configured.
    pub grpc: Option<SocketAddr>,
}

impl OtlpConfig {
    /// Starts the OTLP receiver named by `cx`: binds the configured
    /// listeners and serves them, handing what it receives to `handler`,
    /// until the shutdown signal of `cx` (or its sender is dropped).
    ///
    /// Returns the bound addresses (with the real port when the
    /// configuration asked for port 0) and the task serving them, which
    /// ends once both listeners are closed and their connections drained
    /// (each connection gets up to `request_timeout` to finish).
    pub async fn build(
        &self,
        cx: &Context,
        handler: Arc<dyn OtlpHandler>,
    ) -> Result<Built<OtlpAddrs>, BuildError> {
        let name = cx.name();
        let problems = self.validate();
        if !problems.is_empty() {
            return Err(BuildError::config(name, problems.join("; ")));
        }
        let span = tracing::info_span!("otlp", source = %name);
        let (http, grpc, task) = serve(self, handler, cx.metrics().clone(), cx.shutdown(), span)
            .await
            .map_err(|e| BuildError::io(name, e))?;
        Ok(Built {
            handle: OtlpAddrs { http, grpc },
            task,
        })
    }
}

/// Binds and serves a checked configuration; errors name the setting and
/// the address.
async fn serve(
    cfg: &OtlpConfig,
    handler: Arc<dyn OtlpHandler>,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    span: tracing::Span,
) -> Result<(Option<SocketAddr>, Option<SocketAddr>, JoinHandle<()>), String> {
    let shared = Arc::new(Shared {
        handler,
        metrics,
        max_request_bytes: cfg.max_request_bytes,
        max_decompressed_bytes: cfg.max_decompressed_bytes,
        request_timeout: cfg.request_timeout,
        idle_timeout: cfg.idle_timeout,
        requests: Arc::new(Semaphore::new(cfg.max_concurrent_requests)),
    });
    let bind = |addr: &str, what: &'static str| {
        let addr = addr.to_string();
        async move {
            TcpListener::bind(&addr)
                .await
                .map_err(|e| format!("otlp.{what}.address: cannot listen on {addr}: {e}"))
        }
    };
    let http = match &cfg.http {
        Some(h) => Some(bind(&h.address, "http").await?),
        None => None,
    };
    let grpc = match &cfg.grpc {
        Some(g) => Some(bind(&g.address, "grpc").await?),
        None => None,
    };
    let local = |l: &Option<TcpListener>| -> Result<Option<SocketAddr>, String> {
        l.as_ref()
            .map(|l| {
                l.local_addr()
                    .map_err(|e| format!("otlp: listener address: {e}"))
            })
            .transpose()
    };
    let http_addr = local(&http)?;
    let grpc_addr = local(&grpc)?;
    let grpc_services = Arc::new(grpc::Services::new(shared.clone()));
    let max_conns = cfg.max_connections;
    let task = tokio::spawn(
        async move {
        let mut loops = Vec::new();
        if let Some(l) = http {
            tracing::info!(address = %http_addr.map(|a| a.to_string()).unwrap_or_default(), "OTLP/HTTP receiver listening");
            loops.push(tokio::spawn(accept_loop(
                l,
                Listener::Http,
                shared.clone(),
                max_conns,
                shutdown.clone(),
            ).in_current_span()));
        }
        if let Some(l) = grpc {
            tracing::info!(address = %grpc_addr.map(|a| a.to_string()).unwrap_or_default(), "OTLP/gRPC receiver listening");
            loops.push(tokio::spawn(accept_loop(
                l,
                Listener::Grpc(grpc_services),
                shared.clone(),
                max_conns,
                shutdown.clone(),
            ).in_current_span()));
        }
        for l in loops {
            let _ = l.await;
        }
        tracing::info!("OTLP receiver stopped");
    }
        .instrument(span),
    );
    Ok((http_addr, grpc_addr, task))
}

#[derive(Clone)]
enum Listener {
    Http,
    Grpc(Arc<grpc::Services>),
}

/// Resolves once shutdown is asked for (or can no longer be, because the
/// sender is gone).
async fn wait_shutdown(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    kind: Listener,
    shared: Arc<Shared>,
    max_conns: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let conns = Conns::new(max_conns);
    loop {
        tokio::select! {
            _ = wait_shutdown(&mut shutdown) => break,
            res = listener.accept() => match res {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    if let Ok(permit) = conns.slots.clone().try_acquire_owned() {
                        tokio::spawn(serve_conn(stream, kind.clone(), shared.clone(), shutdown.clone(), permit, conns.clone()));
                        continue;
                    }
                    if !conns.close_longest_idle() {
                        shared.count_rejected("connections");
                        drop(stream);
                        continue;
                    }
                    // The idle connection closes at once; take its slot.
                    shared.metrics.add(
                        "scrubs_otlp_idle_connections_closed_total",
                        "Idle OTLP connections closed to admit a new one at otlp.max_connections.",
                        &[],
                        1,
                    );
                    let (kind, shared, shutdown, conns) =
                        (kind.clone(), shared.clone(), shutdown.clone(), conns.clone());
                    tokio::spawn(async move {
                        match tokio::time::timeout(EVICT_WAIT, conns.slots.clone().acquire_owned()).await {
                            Ok(Ok(permit)) => serve_conn(stream, kind, shared, shutdown, permit, conns).await,
                            _ => shared.count_rejected("connections"),
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off a little
                    // rather than spin.
                    tracing::warn!(error = %e, "OTLP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    drop(listener);
    // Connections saw the same signal and are closing; wait for them, but
    // not forever.
    let grace = shared.request_timeout + Duration::from_secs(1);
    let _ = tokio::time::timeout(grace, conns.slots.acquire_many(max_conns as u32)).await;
}

/// A hyper server connection that can be asked to finish gracefully.
trait Graceful: Future<Output = Result<(), hyper::Error>> {
    fn begin_shutdown(self: Pin<&mut Self>);
}

impl<I, S, B> Graceful for hyper::server::conn::http1::Connection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn begin_shutdown(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B, E> Graceful for hyper::server::conn::http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn begin_shutdown(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

async fn serve_conn(
    stream: TcpStream,
    kind: Listener,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
    conns: Arc<Conns>,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let io = TokioIo::new(stream);
    let activity = Activity::new();
    let me = conns.register(activity.clone());
    let limits = Limits {
        conns: &conns,
        close_if_idle: &me.close_if_idle,
        asked: &me.asked,
    };
    match kind {
        Listener::Http => {
            let (sh, act) = (shared.clone(), activity.clone());
            let svc = hyper::service::service_fn(move |req| {
                let guard = act.start();
                let sh = sh.clone();
                async move {
                    let resp = http::handle(&sh, req).await;
                    drop(guard);
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(shared.request_timeout)
                .keep_alive(true)
                .max_buf_size(64 * 1024)
                .max_headers(64);
            let conn = b.serve_connection(io, svc);
            drive(conn, &shared, &activity, &limits, shutdown).await;
        }
        Listener::Grpc(services) => {
            let (sh, act) = (shared.clone(), activity.clone());
            let svc = hyper::service::service_fn(move |req| {
                let guard = act.start();
                let sh = sh.clone();
                let services = services.clone();
                async move {
                    let resp = grpc::handle(&sh, &services, req).await;
                    drop(guard);
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            b.timer(TokioTimer::new())
                .max_concurrent_streams(64)
                .max_header_list_size(16 * 1024)
                .max_send_buf_size(256 * 1024)
                .initial_stream_window_size(1 << 20)
                .initial_connection_window_size(2 << 20)
                .keep_alive_interval(Some(shared.idle_timeout))
                .keep_alive_timeout(Duration::from_secs(20));
            let conn = b.serve_connection(io, svc);
            drive(conn, &shared, &activity, &limits, shutdown).await;
        }
    }
}

/// What a connection needs to know of its listener's connection limit.
struct Limits<'a> {
    conns: &'a Conns,
    close_if_idle: &'a tokio::sync::Notify,
    asked: &'a std::sync::atomic::AtomicBool,
}

/// Runs a connection to its end: closes it gracefully on shutdown or when
/// it has been idle too long (shorter near the connection limit), closes it
/// at once when it is idle and asked to make room, and drops it if a
/// graceful close takes longer than `request_timeout`.
async fn drive<C: Graceful>(
    conn: C,
    shared: &Shared,
    activity: &Activity,
    limits: &Limits<'_>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::pin!(conn);
    let check = (shared.idle_timeout.min(BUSY_IDLE_TIMEOUT) / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut tick = tokio::time::interval(check);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing: Option<Instant> = None;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    // Timeouts and protocol errors from clients: expected,
                    // and never carrying content.
                    tracing::debug!(error = %e, "OTLP connection ended");
                }
                return;
            }
            _ = wait_shutdown(&mut shutdown), if closing.is_none() => {
                conn.as_mut().begin_shutdown();
                closing = Some(Instant::now());
            }
            _ = limits.close_if_idle.notified() => {
                // The listener is at its limit and this connection has been
                // idle longest: close it now (no request is in flight, so
                // nothing is lost; the client reconnects when it needs to).
                if activity.idle_for().is_some() {
                    return;
                }
                // A request came in meanwhile: stay, and be a candidate
                // again next time.
                limits.asked.store(false, Ordering::Relaxed);
            }
            _ = tick.tick() => {
                match closing {
                    Some(since) if since.elapsed() > shared.request_timeout => return,
                    Some(_) => {}
                    None => {
                        let idle = activity.idle_for();
                        // Near the limit, an idle connection is closed at
                        // once rather than gracefully: a client that never
                        // sent a request gives a graceful close nothing to
                        // finish, and it would hold its slot for
                        // `request_timeout` more.
                        if limits.conns.near_limit()
                            && idle.is_some_and(|d| d > shared.idle_timeout.min(BUSY_IDLE_TIMEOUT))
                        {
                            return;
                        }
                        if idle.is_some_and(|d| d > shared.idle_timeout) {
                            conn.as_mut().begin_shutdown();
                            closing = Some(Instant::now());
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_yaml() {
        let cfg: OtlpConfig = serde_yaml::from_str("{}").unwrap();
        assert_eq!(cfg.http.as_ref().unwrap().address, "127.0.0.1:4318");
        assert_eq!(cfg.grpc.as_ref().unwrap().address, "127.0.0.1:4317");
        assert_eq!(cfg.max_request_bytes, 4 << 20);
        assert_eq!(cfg.max_decompressed_bytes, 16 << 20);
        assert_eq!(cfg.request_timeout, Duration::from_secs(30));
        assert!(cfg.validate().is_empty());

        let cfg: OtlpConfig = serde_yaml::from_str(
            "http: { address: 0.0.0.0:14318 }\ngrpc: null\nrequest_timeout: 500ms\nmax_request_bytes: 1024\n",
        )
        .unwrap();
        assert_eq!(cfg.http.as_ref().unwrap().address, "0.0.0.0:14318");
        assert!(cfg.grpc.is_none());
        assert_eq!(cfg.request_timeout, Duration::from_millis(500));
        assert!(cfg.validate().is_empty());

        let cfg: OtlpConfig = serde_yaml::from_str("request_timeout: 10\n").unwrap();
        assert_eq!(cfg.request_timeout, Duration::from_secs(10));

        assert!(serde_yaml::from_str::<OtlpConfig>("max_requst_bytes: 1\n").is_err());
        assert!(serde_yaml::from_str::<OtlpConfig>("http: { adress: x }\n").is_err());
        assert!(serde_yaml::from_str::<OtlpConfig>("request_timeout: soon\n").is_err());
    }

    #[test]
    fn validate_reports_every_problem() {
        let cfg = OtlpConfig {
            http: Some(HttpConfig {
                address: "localhost".into(),
            }),
            grpc: Some(GrpcConfig {
                address: "127.0.0.1:99999".into(),
            }),
            max_request_bytes: 0,
            max_decompressed_bytes: 0,
            request_timeout: Duration::ZERO,
            idle_timeout: Duration::ZERO,
            max_concurrent_requests: 0,
            max_connections: 0,
        };
        let p = cfg.validate();
        assert_eq!(p.len(), 8, "{p:#?}");
        let none = OtlpConfig {
            http: None,
            grpc: None,
            ..OtlpConfig::default()
        };
        assert_eq!(none.validate().len(), 1);
        let smaller = OtlpConfig {
            max_decompressed_bytes: 1024,
            ..OtlpConfig::default()
        };
        assert!(smaller.validate()[0].contains("at least max_request_bytes"));
        let same = OtlpConfig {
            http: Some(HttpConfig {
                address: "127.0.0.1:5000".into(),
            }),
            grpc: Some(GrpcConfig {
                address: "127.0.0.1:5000".into(),
            }),
            ..OtlpConfig::default()
        };
        assert_eq!(same.validate().len(), 1);
    }

    #[test]
    fn durations() {
        // The config's one duration rule (crate::units): a unit, or a whole
        // number of seconds written as a number.
        let timeout = |yaml: &str| {
            serde_yaml::from_str::<OtlpConfig>(yaml)
                .map(|c| c.request_timeout)
                .map_err(|e| e.to_string())
        };
        assert_eq!(timeout("request_timeout: 2m"), Ok(Duration::from_secs(120)));
        assert_eq!(
            timeout("request_timeout: 1.5s"),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(timeout("request_timeout: 7"), Ok(Duration::from_secs(7)));
        for bad in ["'7'", "s", "99999999999999999999s"] {
            let e = timeout(&format!("request_timeout: {bad}")).unwrap_err();
            assert!(e.starts_with("request_timeout: invalid duration"), "{e}");
        }
    }
}
