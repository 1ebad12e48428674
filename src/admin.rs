//! The admin endpoint: `/healthz`, `/readyz`, `/metrics`, and nothing else.
//!
//! It runs on its own thread with its own single-threaded runtime, as
//! linkerd2-proxy does, so that health checks answer even when the data path
//! is saturated (or stuck: `/healthz` must be able to say so). It binds to
//! 127.0.0.1 by default; in a pod, to the pod network for the kubelet and
//! Prometheus, while the OTLP receivers stay on loopback.
//!
//! The probes protect availability (45 CFR 164.306(a)): `/readyz` never
//! depends on a third-party vendor, so a vendor outage does not take the
//! pod out of service; `/healthz` fails only when the pipeline stopped
//! making progress, which a restart may cure.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use tracing::Instrument as _;

use crate::config::AdminConfig;
use crate::metrics::Metrics;
use crate::topology::{BuildError, Context};

/// A check that names why the audit path is not accepting, if it is not.
type AuditCheck = Box<dyn Fn() -> Option<&'static str> + Send + Sync>;

/// Readiness: the sources are open and the audit path accepts events
/// (Kafka, or the spool while Kafka is away). Vendors never count.
#[derive(Clone, Default)]
pub struct Ready(Arc<ReadyInner>);

#[derive(Default)]
struct ReadyInner {
    /// Sources open, and not draining.
    open: AtomicBool,
    audit: OnceLock<AuditCheck>,
}

impl std::fmt::Debug for Ready {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ready")
            .field("open", &self.0.open.load(Ordering::Relaxed))
            .finish()
    }
}

impl Ready {
    /// Sources open (`true`), or draining (`false`).
    pub fn set(&self, open: bool) {
        self.0.open.store(open, Ordering::Release);
    }

    /// The audit path's check, asked at every probe (it must be cheap: an
    /// atomic load). Set once.
    pub fn set_audit_check(
        &self,
        check: impl Fn() -> Option<&'static str> + Send + Sync + 'static,
    ) {
        let _ = self.0.audit.set(Box::new(check));
    }

    /// `Ok` when ready, else why not (a fixed phrase, never event content).
    pub fn check(&self) -> Result<(), &'static str> {
        if !self.0.open.load(Ordering::Acquire) {
            return Err("sources not open (starting or draining)");
        }
        match self.0.audit.get().and_then(|c| c()) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    pub fn get(&self) -> bool {
        self.check().is_ok()
    }
}

/// A count of work waiting in a queue, for the watchdog.
type QueueProbe = Box<dyn Fn() -> usize + Send + Sync>;
/// Whether the pipeline waits by design (backpressure), for the watchdog.
type WaitProbe = Box<dyn Fn() -> bool + Send + Sync>;

/// Liveness: fails when work is pending and the pipeline has finished none
/// of it for `stall_after`, or when the data path's runtime has stopped
/// running its tasks (its heartbeat is that old).
///
/// Work is counted by [`Watchdog::begin`] where the pipeline takes a batch
/// or a request and redacts it, and by the queue probes (batches queued
/// that no worker took). Waiting for a vendor is not work here: a vendor
/// lane may wait for a slow or dead vendor for as long as its lag limit
/// allows, by design, and a restart would not make the vendor answer. Nor
/// is waiting while the audit spool is full (backpressure, which `/readyz`
/// reports). Everything is read from atomics on the admin thread, so a
/// stuck data path cannot keep the check from answering.
pub struct Watchdog {
    epoch: Instant,
    stall_after: Duration,
    /// Work begun and not finished.
    busy: AtomicU64,
    /// When `busy` last went from 0 to 1, in ms since `epoch`.
    busy_since: AtomicU64,
    /// When work last finished, in ms since `epoch`.
    last_progress: AtomicU64,
    /// When the data path's runtime last ran its heartbeat task.
    heartbeat: AtomicU64,
    queues: OnceLock<Vec<QueueProbe>>,
    waiting: OnceLock<WaitProbe>,
    /// Since when (ms) queued work has been seen with none begun.
    queued_since: Mutex<Option<u64>>,
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog")
            .field("stall_after", &self.stall_after)
            .field("busy", &self.busy.load(Ordering::Relaxed))
            .finish()
    }
}

/// One piece of work under way; finishing it (dropping the guard) is
/// progress.
#[must_use]
#[derive(Debug)]
pub struct Work(Arc<Watchdog>);

impl Drop for Work {
    fn drop(&mut self) {
        let w = &self.0;
        w.last_progress.store(w.now_ms(), Ordering::Release);
        w.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Watchdog {
    /// A watchdog that reports a stall after `stall_after` (zero: never).
    pub fn new(stall_after: Duration) -> Arc<Watchdog> {
        Arc::new(Watchdog {
            epoch: Instant::now(),
            stall_after,
            busy: AtomicU64::new(0),
            busy_since: AtomicU64::new(0),
            last_progress: AtomicU64::new(0),
            heartbeat: AtomicU64::new(0),
            queues: OnceLock::new(),
            waiting: OnceLock::new(),
            queued_since: Mutex::new(None),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Work begins; it ends when the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> Work {
        if self.busy.fetch_add(1, Ordering::AcqRel) == 0 {
            self.busy_since.store(self.now_ms(), Ordering::Release);
        }
        Work(self.clone())
    }

    /// The data path's runtime is running (called every second by a task
    /// on it).
    pub fn beat(&self) {
        self.heartbeat.store(self.now_ms(), Ordering::Release);
    }

    /// Sets the queue probes and the backpressure probe (once).
    pub fn set_probes(
        &self,
        queues: Vec<QueueProbe>,
        waiting: impl Fn() -> bool + Send + Sync + 'static,
    ) {
        let _ = self.queues.set(queues);
        let _ = self.waiting.set(Box::new(waiting));
    }

    /// `Ok` while the pipeline makes progress, else why not (counts and
    /// durations only).
    pub fn check(&self) -> Result<(), String> {
        let limit = self.stall_after.as_millis() as u64;
        if limit == 0 {
            return Ok(());
        }
        let now = self.now_ms();
        let beat = self.heartbeat.load(Ordering::Acquire);
        if now.saturating_sub(beat) > limit.max(5_000) {
            return Err(format!(
                "the pipeline's runtime has not run for {} s",
                (now - beat) / 1000
            ));
        }
        let busy = self.busy.load(Ordering::Acquire) > 0;
        let queued: usize = self
            .queues
            .get()
            .map(|qs| qs.iter().map(|q| q()).sum())
            .unwrap_or(0);
        let started = {
            let mut qs = self.queued_since.lock().unwrap_or_else(|e| e.into_inner());
            if queued == 0 {
                *qs = None;
            } else if qs.is_none() {
                *qs = Some(now);
            }
            if busy {
                Some(self.busy_since.load(Ordering::Acquire))
            } else {
                *qs
            }
        };
        let Some(started) = started else {
            return Ok(());
        };
        if self.waiting.get().is_some_and(|w| w()) {
            return Ok(());
        }
        let since = started.max(self.last_progress.load(Ordering::Acquire));
        let idle = now.saturating_sub(since);
        if idle > limit {
            return Err(format!(
                "no progress for {} s with work pending ({} queued)",
                idle / 1000,
                queued
            ));
        }
        Ok(())
    }
}

/// The admin endpoint, started: the address it is bound to and the
/// readiness and liveness it reports, which the rest of the process sets.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The bound address (the real port when the configuration asked for
    /// port 0).
    pub address: SocketAddr,
    /// What `/readyz` reports.
    pub ready: Ready,
    /// What `/healthz` reports.
    pub watchdog: Arc<Watchdog>,
}

impl AdminConfig {
    /// Binds the admin address and serves it on a dedicated thread, for
    /// the life of the process, with the metrics of `cx`. Readiness starts
    /// closed.
    pub fn build(&self, cx: &Context) -> Result<Admin, BuildError> {
        let AdminConfig {
            address,
            stall_timeout,
        } = self;
        let name = cx.name();
        let ready = Ready::default();
        let watchdog = Watchdog::new(*stall_timeout);
        let listener = std::net::TcpListener::bind(address)
            .map_err(|e| BuildError::io(name, format!("{name}: cannot bind {address}: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| BuildError::io(name, format!("{name}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| BuildError::io(name, format!("{name}: {e}")))?;
        let (metrics, serve_ready, serve_watchdog) =
            (cx.metrics().clone(), ready.clone(), watchdog.clone());
        std::thread::Builder::new()
            .name("scrubs-admin".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "admin runtime did not start");
                        return;
                    }
                };
                rt.block_on(serve(listener, metrics, serve_ready, serve_watchdog));
            })
            .map_err(|e| BuildError::runtime(name, format!("{name}: {e}")))?;
        Ok(Admin {
            address: bound,
            ready,
            watchdog,
        })
    }
}

async fn serve(
    listener: std::net::TcpListener,
    metrics: Arc<Metrics>,
    ready: Ready,
    watchdog: Arc<Watchdog>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "admin listener");
            return;
        }
    };
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(_) => continue,
        };
        let metrics = metrics.clone();
        let ready = ready.clone();
        let watchdog = watchdog.clone();
        tokio::spawn(
            async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let metrics = metrics.clone();
                    let ready = ready.clone();
                    let watchdog = watchdog.clone();
                    async move { Ok::<_, Infallible>(route(&req, &metrics, &ready, &watchdog)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            }
            .instrument(tracing::debug_span!("admin_connection")),
        );
    }
}

fn route(
    req: &Request<Incoming>,
    metrics: &Metrics,
    ready: &Ready,
    watchdog: &Watchdog,
) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match req.uri().path() {
        "/healthz" => match watchdog.check() {
            Ok(()) => (StatusCode::OK, "text/plain", "ok\n".to_string()),
            Err(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("unhealthy: {why}\n"),
            ),
        },
        "/readyz" => match ready.check() {
            Ok(()) => (StatusCode::OK, "text/plain", "ready\n".to_string()),
            Err(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("not ready: {why}\n"),
            ),
        },
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics.render(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_fails_only_when_pending_work_makes_no_progress() {
        let w = Watchdog::new(Duration::from_millis(50));
        w.beat();
        assert!(w.check().is_ok(), "idle is healthy");
        let work = w.begin();
        std::thread::sleep(Duration::from_millis(30));
        w.beat();
        assert!(w.check().is_ok(), "not yet");
        std::thread::sleep(Duration::from_millis(40));
        w.beat();
        let e = w.check().unwrap_err();
        assert!(e.starts_with("no progress"), "{e}");
        drop(work);
        assert!(w.check().is_ok(), "finishing work is progress");
    }

    #[test]
    fn watchdog_counts_queued_work_and_excuses_backpressure() {
        let w = Watchdog::new(Duration::from_millis(50));
        let queued = Arc::new(AtomicU64::new(0));
        let full = Arc::new(AtomicBool::new(false));
        let (q, f) = (queued.clone(), full.clone());
        w.set_probes(
            vec![Box::new(move || q.load(Ordering::Relaxed) as usize)],
            move || f.load(Ordering::Relaxed),
        );
        w.beat();
        queued.store(3, Ordering::Relaxed);
        assert!(w.check().is_ok());
        std::thread::sleep(Duration::from_millis(70));
        w.beat();
        assert!(w.check().is_err(), "queued and never taken");
        full.store(true, Ordering::Relaxed);
        assert!(w.check().is_ok(), "backpressure is waiting by design");
    }

    #[test]
    fn watchdog_fails_when_the_runtime_stops_beating() {
        let w = Watchdog::new(Duration::from_millis(10));
        w.beat();
        assert!(w.check().is_ok());
        std::thread::sleep(Duration::from_millis(5100));
        assert!(w.check().unwrap_err().contains("runtime"));
    }

    #[test]
    fn ready_needs_open_sources_and_an_accepting_audit_path() {
        let r = Ready::default();
        assert!(r.check().is_err());
        r.set(true);
        assert!(r.check().is_ok());
        let full = Arc::new(AtomicBool::new(false));
        let f = full.clone();
        r.set_audit_check(move || f.load(Ordering::Relaxed).then_some("audit spool full"));
        assert!(r.check().is_ok());
        full.store(true, Ordering::Relaxed);
        assert_eq!(r.check(), Err("audit spool full"));
        full.store(false, Ordering::Relaxed);
        r.set(false);
        assert!(r.check().is_err(), "draining");
    }
}
