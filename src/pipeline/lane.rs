//! Read positions ("lanes") of a file source, one per destination.
//!
//! A file source reads each file once per destination: one lane for the
//! audit fork and one per vendor, each with its own checkpoint. The audit
//! lane never waits for a vendor, and a vendor lane waits for its vendor
//! (the file on disk is the buffer) instead of dropping what the vendor
//! cannot take yet. Reading a file a second time comes from the page cache.
//!
//! A lane cannot lag without bound: when its unread bytes pass
//! `lag_limit.max_bytes`, or its vendor has failed every attempt for
//! `lag_limit.max_failing`, the lane skips: it reads on, at full speed, and
//! counts every line its vendor does not get in
//! `scrubs_vendor_dropped_total{reason="vendor_lag_limit"}`, until its lag
//! is back under half of `max_bytes` and the vendor answers again. Each such
//! episode is logged once when it starts and once when it ends.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::metrics::{self, Handle, Metrics};

/// How often a lane that skips for a failing vendor still offers it one
/// batch (without waiting), so that an answer can end the episode.
const PROBE_EVERY: Duration = Duration::from_secs(10);

/// The destination of a line batch.
#[derive(Clone, Debug, Default)]
pub enum Lane {
    /// Everything at once (stdin, which cannot be read twice): audit events
    /// first, then the scrubbed lines queued for every vendor without
    /// waiting.
    #[default]
    All,
    /// A file source's audit lane: audit events only.
    Audit,
    /// A file source's lane for one vendor.
    Vendor(Arc<VendorLane>),
}

/// When a vendor lane gives up waiting and skips (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LagLimit {
    /// Unread bytes (over all of the source's files) past which the lane
    /// skips; 0 for no limit.
    pub max_bytes: u64,
    /// How long the vendor may fail every attempt before the lane skips;
    /// zero for no limit.
    pub max_failing: Duration,
}

/// What a vendor lane does with its next batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaneDecision {
    /// Deliver it and wait for the vendor.
    Send,
    /// Count its lines as skipped (`vendor_lag_limit`).
    Skip,
    /// While skipping for a failing vendor: offer it without waiting.
    Probe,
}

#[derive(Debug)]
struct Episode {
    reason: &'static str,
    started: Instant,
    lines: u64,
}

#[derive(Debug, Default)]
struct SkipState {
    episode: Option<Episode>,
    last_probe: Option<Instant>,
}

/// One vendor's lane of one file source.
#[derive(Debug)]
pub struct VendorLane {
    /// The vendor's index in the pipeline's vendor list.
    pub vendor: usize,
    /// The vendor's name (logs, metric labels).
    pub vendor_name: String,
    /// The source's name.
    pub source: String,
    /// This lane counts the source's records (the source has no audit lane
    /// and this is its first vendor lane).
    pub primary: bool,
    /// This lane counts the source's redactions: it is the source's first
    /// vendor lane. The audit lane of a file does not redact, so with an
    /// audit fork this lane counts them even though it is not primary.
    pub counts_redactions: bool,
    limit: LagLimit,
    lag: Handle,
    skipped: Handle,
    state: Mutex<SkipState>,
}

impl VendorLane {
    pub fn new(
        metrics: &Metrics,
        source: &str,
        vendor: usize,
        vendor_name: &str,
        primary: bool,
        counts_redactions: bool,
        limit: LagLimit,
    ) -> Arc<VendorLane> {
        Arc::new(VendorLane {
            vendor,
            vendor_name: vendor_name.to_string(),
            source: source.to_string(),
            primary,
            counts_redactions,
            limit,
            lag: metrics.gauge(
                "scrubs_vendor_lag_bytes",
                "Bytes of tailed files a vendor's lane has not yet delivered (or skipped).",
                &[("source", source), ("vendor", vendor_name)],
            ),
            skipped: metrics.counter(
                metrics::VENDOR_DROPPED,
                metrics::VENDOR_DROPPED_HELP,
                &[("vendor", vendor_name), ("reason", "vendor_lag_limit")],
            ),
            state: Mutex::new(SkipState::default()),
        })
    }

    /// Sets the lane's unread bytes (by the file source).
    pub fn set_lag(&self, bytes: u64) {
        self.lag.store(bytes, Ordering::Relaxed);
    }

    /// The lane's unread bytes, as last set.
    pub fn lag(&self) -> u64 {
        self.lag.load(Ordering::Relaxed)
    }

    /// Counts lines skipped in the current episode.
    pub fn count_skipped(&self, lines: u64) {
        self.skipped.fetch_add(lines, Ordering::Relaxed);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ep) = &mut st.episode {
            ep.lines += lines;
        }
    }

    /// Whether the next batch is sent, skipped or sent as a probe, given
    /// since when the vendor has been failing. Starts and ends episodes.
    pub fn decide(&self, failing_since: Option<Instant>, now: Instant) -> LaneDecision {
        let lag = self.lag();
        let failing_too_long = !self.limit.max_failing.is_zero()
            && failing_since
                .is_some_and(|t| now.saturating_duration_since(t) >= self.limit.max_failing);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &st.episode {
            None => {
                let reason = if self.limit.max_bytes > 0 && lag > self.limit.max_bytes {
                    "max_bytes"
                } else if failing_too_long {
                    "max_failing"
                } else {
                    return LaneDecision::Send;
                };
                tracing::warn!(
                    source = %self.source,
                    vendor = %self.vendor_name,
                    limit = reason,
                    lag_bytes = lag,
                    "vendor lane over its lag limit: lines for this vendor are skipped and counted (vendor_lag_limit) until it catches up"
                );
                st.episode = Some(Episode {
                    reason,
                    started: now,
                    lines: 0,
                });
                st.last_probe = Some(now);
            }
            Some(ep) => {
                // Hysteresis: skip until half the size bound, so that a lane
                // at its limit does not flip at every batch.
                let still = (self.limit.max_bytes > 0 && lag > self.limit.max_bytes / 2)
                    || failing_too_long;
                if !still {
                    tracing::warn!(
                        source = %self.source,
                        vendor = %self.vendor_name,
                        limit = ep.reason,
                        lines_skipped = ep.lines,
                        seconds = now.saturating_duration_since(ep.started).as_secs(),
                        lag_bytes = lag,
                        "vendor lane back within its lag limit: delivering again"
                    );
                    st.episode = None;
                    return LaneDecision::Send;
                }
            }
        }
        if failing_since.is_some()
            && st
                .last_probe
                .is_none_or(|t| now.saturating_duration_since(t) >= PROBE_EVERY)
        {
            st.last_probe = Some(now);
            return LaneDecision::Probe;
        }
        LaneDecision::Skip
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(max_bytes: u64, max_failing: Duration) -> Arc<VendorLane> {
        VendorLane::new(
            &Metrics::new(),
            "app",
            0,
            "v",
            true,
            true,
            LagLimit {
                max_bytes,
                max_failing,
            },
        )
    }

    #[test]
    fn skips_past_the_size_bound_until_half_of_it() {
        let l = lane(1000, Duration::ZERO);
        let now = Instant::now();
        l.set_lag(1000);
        assert_eq!(l.decide(None, now), LaneDecision::Send);
        l.set_lag(1001);
        assert_eq!(l.decide(None, now), LaneDecision::Skip);
        l.count_skipped(7);
        l.set_lag(600);
        assert_eq!(l.decide(None, now), LaneDecision::Skip);
        l.set_lag(500);
        assert_eq!(l.decide(None, now), LaneDecision::Send);
        assert_eq!(l.skipped.load(Ordering::Relaxed), 7);
    }

    #[test]
    fn skips_while_the_vendor_fails_past_the_time_bound_and_probes() {
        let l = lane(0, Duration::from_secs(60));
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(59);
        assert_eq!(l.decide(Some(t0), now), LaneDecision::Send);
        let now = t0 + Duration::from_secs(60);
        assert_eq!(l.decide(Some(t0), now), LaneDecision::Skip);
        assert_eq!(
            l.decide(Some(t0), now + Duration::from_secs(5)),
            LaneDecision::Skip
        );
        assert_eq!(l.decide(Some(t0), now + PROBE_EVERY), LaneDecision::Probe);
        // The vendor answered: the episode ends.
        assert_eq!(l.decide(None, now + PROBE_EVERY * 2), LaneDecision::Send);
    }
}
