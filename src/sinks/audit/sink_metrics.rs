//! The audit sink's metrics (names listed in the module docs of
//! [`super`]): counts, byte sizes and latencies only, never content.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::metrics::{Handle, Metrics};

const LATENCY_BUCKETS: [(&str, u64); 12] = [
    ("0.001", 1_000),
    ("0.005", 5_000),
    ("0.01", 10_000),
    ("0.025", 25_000),
    ("0.05", 50_000),
    ("0.1", 100_000),
    ("0.25", 250_000),
    ("0.5", 500_000),
    ("1", 1_000_000),
    ("2.5", 2_500_000),
    ("5", 5_000_000),
    ("10", 10_000_000),
];

#[derive(Debug, Clone)]
pub(super) struct SinkMetrics {
    pub(super) delivered: Handle,
    pub(super) spooled: Handle,
    pub(super) refused: Handle,
    pub(super) failed: Handle,
    pub(super) replayed: Handle,
    pub(super) replay_skipped: Handle,
    pub(super) ack_timeouts: Handle,
    pub(super) spool_bytes: Handle,
    pub(super) spool_full: Handle,
    pub(super) spooling: Handle,
    pub(super) latency_buckets: Vec<Handle>,
    pub(super) latency_inf: Handle,
    pub(super) latency_count: Handle,
    pub(super) latency_sum_us: Handle,
}

impl SinkMetrics {
    pub(super) fn new(m: &Metrics) -> SinkMetrics {
        const EV: &str = "Audit events by outcome: delivered to Kafka, spooled locally, refused (spool full), failed (not durable).";
        const LAT: &str =
            "Audit delivery latency from hand-off to Kafka acknowledgement (cumulative buckets).";
        SinkMetrics {
            delivered: m.counter("scrubs_audit_events_total", EV, &[("result", "delivered")]),
            spooled: m.counter("scrubs_audit_events_total", EV, &[("result", "spooled")]),
            refused: m.counter("scrubs_audit_events_total", EV, &[("result", "refused")]),
            failed: m.counter("scrubs_audit_events_total", EV, &[("result", "failed")]),
            replayed: m.counter(
                "scrubs_audit_replayed_total",
                "Spooled audit events replayed to Kafka (including those skipped because the topic already held them).",
                &[],
            ),
            replay_skipped: m.counter(
                "scrubs_audit_replay_skipped_total",
                "Spooled audit events not replayed because the topic already held them (read back before the replay).",
                &[],
            ),
            ack_timeouts: m.counter(
                "scrubs_audit_ack_timeouts_total",
                "Times Kafka did not acknowledge within audit.kafka.ack_timeout and the events in flight were spooled.",
                &[],
            ),
            spool_bytes: m.gauge(
                "scrubs_audit_spool_bytes",
                "Bytes in the audit spool file.",
                &[],
            ),
            spool_full: m.gauge(
                "scrubs_audit_spool_full",
                "1 when the audit spool is full and new audit events are refused (backpressure).",
                &[],
            ),
            spooling: m.gauge(
                "scrubs_audit_spooling",
                "1 while audit events go to the local spool instead of Kafka.",
                &[],
            ),
            latency_buckets: LATENCY_BUCKETS
                .iter()
                .map(|(le, _)| {
                    m.counter(
                        "scrubs_audit_delivery_latency_seconds_bucket",
                        LAT,
                        &[("le", le)],
                    )
                })
                .collect(),
            latency_inf: m.counter(
                "scrubs_audit_delivery_latency_seconds_bucket",
                LAT,
                &[("le", "+Inf")],
            ),
            latency_count: m.counter(
                "scrubs_audit_delivery_latency_seconds_count",
                "Audit events whose delivery latency was observed.",
                &[],
            ),
            latency_sum_us: m.counter(
                "scrubs_audit_delivery_latency_microseconds_total",
                "Sum of audit delivery latencies, microseconds.",
                &[],
            ),
        }
    }

    pub(super) fn observe_latency(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        for ((_, bound), h) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if us <= *bound {
                h.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_inf.fetch_add(1, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
    }
}
