//! Admission: whether an OTLP request may come in, and the in-flight memory
//! budget it counts against.
//!
//! It is its own file because admission is decided before a request reaches
//! any stage of the pipeline: a request that is refused here (429 or 503,
//! with `Retry-After`) stays with the client's exporter, audit records
//! included, rather than being accepted and then dropped for want of room.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::route::VendorOut;
use super::Rejection;
use crate::metrics::Metrics;

/// How long a refused client is asked to wait before it retries.
pub(super) const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The OTLP bytes in flight, against the configured budget.
#[derive(Debug)]
pub(super) struct Admission {
    in_flight: AtomicU64,
    /// In-flight OTLP bytes above which requests are refused with 429
    /// (`RouterConfig::memory_budget_bytes`).
    budget_bytes: u64,
}

/// Subtracts in-flight bytes when a request is done, however it ends.
pub(super) struct InFlight<'a>(&'a AtomicU64, u64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::Relaxed);
    }
}

/// Counts a refused OTLP request in `scrubs_otlp_refused_total{reason}`
/// and returns the refusal.
pub(super) fn refuse(metrics: &Metrics, reason: &'static str, rejection: Rejection) -> Rejection {
    metrics.add(
        "scrubs_otlp_refused_total",
        "OTLP requests refused, by reason.",
        &[("reason", reason)],
        1,
    );
    rejection
}

impl Admission {
    pub(super) fn new(budget_bytes: u64) -> Admission {
        Admission {
            in_flight: AtomicU64::new(0),
            budget_bytes,
        }
    }

    /// Admits a request of `bytes` encoded bytes, or refuses it (counted in
    /// `scrubs_otlp_refused_total`). `audit_backpressure` is asked only when
    /// no vendor is congested, as it always was. The bytes count against the
    /// budget until the guard is dropped.
    ///
    /// `carries_crisis` is asked only when the request would be refused for
    /// a congested vendor or the memory budget, at most once: a request
    /// that carries a crisis record (a 988 hand-off, a crisis escalation)
    /// is admitted past both, counted in
    /// `scrubs_otlp_crisis_admitted_total`, because a client that gives up
    /// after a few 429s would lose the one record that must not be lost,
    /// and its crisis records then go out through the vendors' reserve. The
    /// audit refusal (503) still applies: a crisis record is audited before
    /// anything else happens to it, and a refused one stays with the client.
    pub(super) fn admit(
        &self,
        bytes: u64,
        vendors: &[Arc<dyn VendorOut>],
        audit_backpressure: impl FnOnce() -> bool,
        carries_crisis: impl FnOnce() -> bool,
        metrics: &Metrics,
    ) -> Result<InFlight<'_>, Rejection> {
        let mut carries_crisis = Some(carries_crisis);
        let mut crisis = None::<bool>;
        let mut spare = |reason: &'static str| {
            // Counted once per request, under the first refusal spared.
            if let Some(yes) = crisis {
                return yes;
            }
            let yes = carries_crisis.take().is_some_and(|f| f());
            crisis = Some(yes);
            if yes {
                metrics.add(
                    "scrubs_otlp_crisis_admitted_total",
                    "OTLP requests carrying crisis records admitted although they would have been refused, by the refusal they were spared.",
                    &[("reason", reason)],
                    1,
                );
            }
            yes
        };
        // A vendor that is slow (its queue over half full) asks the client
        // to retry later rather than accepting records its queue would
        // drop: the client's exporter keeps them, audit records included,
        // and sends them again after `Retry-After`.
        if let Some(v) = vendors
            .iter()
            .find(|v| v.congested())
            .filter(|_| !spare("vendor_backpressure"))
        {
            tracing::debug!(vendor = %v.name(), "OTLP request refused: vendor queue over half full");
            return Err(refuse(
                metrics,
                "vendor_backpressure",
                Rejection::Overloaded {
                    retry_after: RETRY_AFTER,
                },
            ));
        }
        if audit_backpressure() {
            return Err(refuse(
                metrics,
                "audit_backpressure",
                Rejection::Unavailable {
                    retry_after: RETRY_AFTER,
                },
            ));
        }
        let now = self.in_flight.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let guard = InFlight(&self.in_flight, bytes);
        if now > self.budget_bytes && !spare("memory_budget") {
            return Err(refuse(
                metrics,
                "memory_budget",
                Rejection::Overloaded {
                    retry_after: RETRY_AFTER,
                },
            ));
        }
        Ok(guard)
    }
}
