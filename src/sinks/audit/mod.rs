//! The audit fork: audit-grade records, unredacted, to an in-boundary Kafka
//! topic, with no loss and tamper evidence (45 CFR §164.312(b)).
//!
//! [`AuditSink::send`] resolves only once an event is durable: acknowledged
//! by Kafka (idempotent producer, `acks=all`, delivery report awaited) or
//! appended to the local spool and fsynced. Each event is sealed with a
//! per-stream sequence number and the hash of the stream's previous event
//! (see [`payload`] for the exact format and hash), and `scrubs audit verify`
//! ([`verify`]) reads the topic back and names gaps, reordering, duplicates
//! and altered events.
//!
//! # Delivery, spool and replay
//!
//! One writer task seals events in arrival order and hands them to the
//! producer. When a delivery fails (broker down, topic missing, timeout after
//! `delivery_timeout`), the sink switches to spool mode: the failed events and
//! everything after them are appended to `spool_dir/audit.spool` in sealing
//! order, fsynced once per batch, and only then acknowledged. A replay task
//! probes the broker, replays the spool in order with the same keys and
//! payloads, and when it has caught up the writer switches back to direct
//! delivery. So, per stream, Kafka receives events in sequence order across
//! both paths.
//!
//! Kafka gets `ack_timeout` (default 2 s) to acknowledge the oldest event in
//! flight; then everything in flight goes to the spool as if it had failed,
//! so that a hung broker (open connections, no answers) does not hold
//! sources and OTLP clients for `delivery_timeout`. librdkafka may still
//! store those events: a task awaits their delivery reports, the replay
//! waits for it, then reads the topic back (`readback`) and skips the
//! spooled events the topic already holds. When the spool reaches `spool_max_bytes`, new events are
//! refused with [`AuditError::Backpressure`] and [`AuditSink::backpressure`]
//! is true until the spool has drained: audit events are never dropped.
//!
//! Delivery is at least once: after a crash, a shutdown in the middle of a
//! replay or a delivery timeout whose acknowledgement was lost, an event can
//! reach the topic twice (verify reports it as `duplicate`, identical copy).
//!
//! # Chain state across restarts
//!
//! The last sequence number and hash of every stream are written to
//! `spool_dir/chain.journal` and fsynced *before* a batch is handed to Kafka
//! or the spool (write-ahead), so a restarted scrubs continues each chain. A
//! crash (not a clean shutdown) between that write and the delivery can
//! leave sequence numbers that never reached the topic: verify reports them
//! as a gap; the records themselves are not lost, because the source did not
//! advance and reads them again (under new sequence numbers).
//!
//! A chain is identified by the spool directory's random instance id
//! (`spool_dir/chain.id`, the payload's `instance`) and the stream name, so
//! every sidecar of a fleet can write the same stream names to one topic.
//! A pod that starts with an empty `spool_dir` is a new instance whose
//! chains start at seq 0. One scrubs process per `spool_dir`.
//!
//! # Logs and metrics
//!
//! Never record content or keys: counts, stream names, sequence numbers,
//! byte sizes and Kafka error codes only.
//!
//! - `scrubs_audit_events_total{result="delivered|spooled|refused|failed"}`
//! - `scrubs_audit_replayed_total`, `scrubs_audit_replay_skipped_total`,
//!   `scrubs_audit_ack_timeouts_total`
//! - `scrubs_audit_spool_bytes`, `scrubs_audit_spool_limit_bytes`,
//!   `scrubs_audit_spool_full` (0/1),
//!   `scrubs_audit_spooling` (0/1) gauges
//! - `scrubs_audit_delivery_latency_seconds_bucket{le="..."}` (cumulative),
//!   `scrubs_audit_delivery_latency_seconds_count` and
//!   `scrubs_audit_delivery_latency_microseconds_total`

mod kafka;
pub mod payload;
mod readback;
mod spool;
pub mod verify;

pub use crate::units::{deserialize_duration, parse_duration};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer, PurgeConfig};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::metrics::{Handle, Metrics};
use crate::pipeline::AuditEvent;
use crate::secret::SecretSource;

pub use kafka::{
    assess_topic, check_topic, AuditClientContext, TopicWarning, RECOMMENDED_RETENTION_MS,
};
pub use payload::{ChainKey, SealedEvent, Sealer};
pub use verify::{
    verify, verify_topic, Problem, ProblemKind, RawMessage, Report, TopicReadOptions, Verifier,
};

use payload::{payload_overhead, ChainHead};
use spool::{encode_frame, frame_len, Journal, SpoolCipher, SpoolFile, SpoolReader};

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// The `audit:` section of the configuration.
///
/// ```yaml
/// audit:
///   brokers: kafka-1.internal:9093,kafka-2.internal:9093
///   topic: phi-audit
///   spool_dir: /var/lib/scrubs/audit     # a persistent volume, not the container fs
///   spool_max_bytes: 268435456           # 256 MiB; then backpressure
///   delivery_timeout: 10s
///   chain_key_file: /etc/scrubs/audit-chain.key
///   spool_encryption_key_file: /etc/scrubs/secrets/spool.key
///   security:
///     protocol: sasl_ssl
///     sasl_mechanism: SCRAM-SHA-512
///     username: scrubs-audit
///     password: { env: SCRUBS_AUDIT_KAFKA_PASSWORD }
///     ca_file: /etc/scrubs/kafka-ca.pem
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Kafka bootstrap servers: a comma-separated list of `host:port`.
    pub brokers: String,
    /// The audit topic. It must exist (scrubs does not create it); create it
    /// with the settings of `deploy/kafka-audit-topic.properties`.
    pub topic: String,
    /// The Kafka client id (broker logs and quotas). Default `scrubs`.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// How to authenticate and encrypt; omitted means plaintext without
    /// authentication (acceptable only inside a trusted network segment).
    #[serde(default)]
    pub security: Option<SecurityConfig>,
    /// Where audit events wait while Kafka is unreachable, plus the chain
    /// state that lets sequence numbers continue across restarts. Must be
    /// on a persistent volume: its contents are unredacted (mode 0700).
    pub spool_dir: PathBuf,
    /// The spool's size limit in bytes (default 256 MiB). When it is
    /// reached, new audit events are refused (sources stop reading, OTLP
    /// answers 503) until the spool has been replayed; nothing is dropped.
    /// Events already handed to Kafka whose delivery then fails are always
    /// spooled, so the file can exceed the limit by that in-flight window.
    #[serde(default = "default_spool_max_bytes")]
    pub spool_max_bytes: u64,
    /// How long Kafka may take to acknowledge an event before it is spooled
    /// instead (librdkafka `message.timeout.ms`). A duration such as `10s`,
    /// `500ms` or `2m`; a bare integer means seconds. Default `10s`.
    #[serde(
        default = "default_delivery_timeout",
        deserialize_with = "deserialize_duration"
    )]
    pub delivery_timeout: Duration,
    /// How long a source waits for Kafka's acknowledgement of its audit
    /// events before they are written to the fsynced spool instead and the
    /// source is answered (the file checkpoint advances, the OTLP request
    /// is answered 200). A broker that hangs without closing its
    /// connections (a long GC pause, a partition) otherwise holds every
    /// OTLP request until `delivery_timeout`, past the 10 s export timeout
    /// of the OpenTelemetry SDKs. The events Kafka was still working on are
    /// replayed from the spool; any that reached Kafka after all are
    /// skipped by the replay (it reads the topic back first). Default `2s`;
    /// at most `delivery_timeout` is used.
    #[serde(
        default = "default_ack_timeout",
        deserialize_with = "deserialize_duration"
    )]
    pub ack_timeout: Duration,
    /// The largest audit message (key plus JSON payload) in bytes; larger
    /// events are refused with an error rather than blocking the spool.
    /// Must not exceed the topic's `max.message.bytes`. Default 1000000.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// A file holding at least 32 secret bytes. When set, the chain hash is
    /// HMAC-SHA256 with this key, so someone with write access to the topic
    /// but without the key cannot recompute the chain after editing,
    /// removing or inserting events. Without it the hash is plain SHA-256:
    /// accidental damage and naive edits are detected, a determined
    /// attacker who rewrites the rest of the chain is not. Keep the key
    /// outside the audit topic's trust domain; `scrubs audit verify` needs it.
    #[serde(default)]
    pub chain_key_file: Option<PathBuf>,
    /// A file holding at least 32 secret bytes (a Kubernetes Secret mounted
    /// as a file) with which the spool is encrypted at rest
    /// (XChaCha20-Poly1305; see `spool.rs`): the spool holds unredacted
    /// events, and with the key kept off the spool's volume a copy of that
    /// volume reveals frame sizes only. Events spooled under one key are
    /// replayed only with that key: change it when `scrubs_audit_spool_bytes`
    /// is 0. Without it the spool is written in plain text and a warning is
    /// logged at start-up.
    #[serde(default)]
    pub spool_encryption_key_file: Option<PathBuf>,
    /// Check the topic's retention, replication and durability settings at
    /// start-up and log a warning for each that is weaker than recommended.
    /// Default true.
    #[serde(default = "default_true")]
    pub check_topic_config: bool,
}

/// Kafka security settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub protocol: SecurityProtocol,
    /// For `sasl_*`: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    #[serde(default)]
    pub sasl_mechanism: Option<SaslMechanism>,
    /// For `sasl_*`: the SASL user name.
    #[serde(default)]
    pub username: Option<String>,
    /// For `sasl_*`: the password, as `{ env: VAR }` or `{ file: PATH }`.
    #[serde(default)]
    pub password: Option<SecretSource>,
    /// For `ssl`/`sasl_ssl`: a PEM file of CA certificates to trust
    /// (default: the system's).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// For mutual TLS: the client certificate (PEM).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// For mutual TLS: the client private key (PEM).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// The Kafka security protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

/// The SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

fn default_client_id() -> String {
    "scrubs".into()
}
fn default_spool_max_bytes() -> u64 {
    256 << 20
}
fn default_delivery_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_ack_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_max_message_bytes() -> usize {
    1_000_000
}
fn default_true() -> bool {
    true
}

impl AuditConfig {
    /// A configuration with defaults for everything optional.
    pub fn new(
        brokers: impl Into<String>,
        topic: impl Into<String>,
        spool_dir: impl Into<PathBuf>,
    ) -> AuditConfig {
        AuditConfig {
            brokers: brokers.into(),
            topic: topic.into(),
            client_id: default_client_id(),
            security: None,
            spool_dir: spool_dir.into(),
            spool_max_bytes: default_spool_max_bytes(),
            delivery_timeout: default_delivery_timeout(),
            ack_timeout: default_ack_timeout(),
            max_message_bytes: default_max_message_bytes(),
            chain_key_file: None,
            spool_encryption_key_file: None,
            check_topic_config: true,
        }
    }

    /// Every problem in the section, each starting with its path
    /// (`audit.topic: ...`). Checks structure only; files are read at start.
    pub fn validate(&self) -> Vec<String> {
        self.validate_at("audit")
    }

    /// Like [`AuditConfig::validate`], with paths under `prefix` (for
    /// example `audit.kafka` gives `audit.kafka.topic: ...`).
    pub fn validate_at(&self, prefix: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.brokers.trim().is_empty() {
            p.push(format!(
                "{prefix}.brokers: must list at least one host:port"
            ));
        }
        for b in self
            .brokers
            .split(',')
            .map(str::trim)
            .filter(|b| !b.is_empty())
        {
            let ok = b
                .rsplit_once(':')
                .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok_and(|n| n > 0));
            if !ok {
                p.push(format!("{prefix}.brokers: '{b}' is not host:port"));
            }
        }
        if self.topic.is_empty() {
            p.push(format!("{prefix}.topic: must not be empty"));
        } else if self.topic.len() > 249
            || self.topic == "."
            || self.topic == ".."
            || !self
                .topic
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-')
        {
            p.push(format!(
                "{prefix}.topic: '{}' is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)",
                self.topic
            ));
        }
        if self.client_id.trim().is_empty() {
            p.push(format!("{prefix}.client_id: must not be empty"));
        }
        if self.spool_dir.as_os_str().is_empty() {
            p.push(format!(
                "{prefix}.spool_dir: must be set (a directory on a persistent volume)"
            ));
        }
        if self.spool_max_bytes < (1 << 20) {
            p.push(format!(
                "{prefix}.spool_max_bytes: {} is too small; at least 1048576 (1 MiB)",
                self.spool_max_bytes
            ));
        }
        if self.delivery_timeout < Duration::from_millis(100)
            || self.delivery_timeout > Duration::from_secs(3600)
        {
            p.push(format!(
                "{prefix}.delivery_timeout: must be between 100ms and 1h"
            ));
        }
        if self.ack_timeout < Duration::from_millis(100)
            || self.ack_timeout > Duration::from_secs(3600)
        {
            p.push(format!(
                "{prefix}.ack_timeout: must be between 100ms and 1h"
            ));
        }
        if !(1000..=100_000_000).contains(&self.max_message_bytes) {
            p.push(format!(
                "{prefix}.max_message_bytes: must be between 1000 and 100000000"
            ));
        }
        if u64::try_from(self.max_message_bytes).unwrap_or(u64::MAX) > self.spool_max_bytes {
            p.push(format!(
                "{prefix}.max_message_bytes: must not exceed {prefix}.spool_max_bytes"
            ));
        }
        if let Some(k) = &self.chain_key_file {
            if k.as_os_str().is_empty() {
                p.push(format!(
                    "{prefix}.chain_key_file: must not be empty when set"
                ));
            }
        }
        if let Some(k) = &self.spool_encryption_key_file {
            if k.as_os_str().is_empty() {
                p.push(format!(
                    "{prefix}.spool_encryption_key_file: must not be empty when set"
                ));
            }
        }
        if let Some(s) = &self.security {
            let sasl = matches!(
                s.protocol,
                SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
            );
            let tls = matches!(
                s.protocol,
                SecurityProtocol::Ssl | SecurityProtocol::SaslSsl
            );
            if sasl {
                if s.sasl_mechanism.is_none() {
                    p.push(format!("{prefix}.security.sasl_mechanism: required with sasl_* protocols (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"));
                }
                if s.username.as_deref().is_none_or(str::is_empty) {
                    p.push(format!(
                        "{prefix}.security.username: required with sasl_* protocols"
                    ));
                }
                if s.password.is_none() {
                    p.push(format!("{prefix}.security.password: required with sasl_* protocols ({{ env: VAR }} or {{ file: PATH }})"));
                }
                if s.sasl_mechanism == Some(SaslMechanism::Plain) && !tls {
                    p.push(format!("{prefix}.security.sasl_mechanism: PLAIN sends the password in clear text; use sasl_ssl"));
                }
            } else {
                if s.sasl_mechanism.is_some() {
                    p.push(format!("{prefix}.security.sasl_mechanism: only used with sasl_plaintext or sasl_ssl"));
                }
                if s.username.is_some() || s.password.is_some() {
                    p.push(format!("{prefix}.security.username/password: only used with sasl_plaintext or sasl_ssl"));
                }
            }
            if !tls && (s.ca_file.is_some() || s.cert_file.is_some() || s.key_file.is_some()) {
                p.push(format!(
                    "{prefix}.security.ca_file/cert_file/key_file: only used with ssl or sasl_ssl"
                ));
            }
            if s.cert_file.is_some() != s.key_file.is_some() {
                p.push(format!(
                    "{prefix}.security.cert_file and key_file: set both or neither"
                ));
            }
        }
        p
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why audit events were not recorded. No variant carries event content.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditError {
    /// The spool is full (Kafka has been unreachable for a while): nothing
    /// was recorded; the caller must not advance and should retry later
    /// (sources pause, OTLP answers 503).
    Backpressure,
    /// An event is larger than `max_message_bytes`; nothing of the batch
    /// was recorded.
    TooLarge {
        /// The event's approximate message size.
        bytes: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The sink is shut down.
    Closed,
    /// The events could not be made durable (the spool or journal could not
    /// be written); the caller must not advance. The message names paths
    /// and OS errors only.
    Io(String),
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditError::Backpressure => f.write_str("audit spool is full; retry later"),
            AuditError::TooLarge { bytes, limit } => {
                write!(
                    f,
                    "audit event of about {bytes} bytes exceeds audit.max_message_bytes ({limit})"
                )
            }
            AuditError::Closed => f.write_str("audit sink is shut down"),
            AuditError::Io(m) => write!(f, "audit events not durable: {m}"),
        }
    }
}

impl std::error::Error for AuditError {}

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

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
struct SinkMetrics {
    delivered: Handle,
    spooled: Handle,
    refused: Handle,
    failed: Handle,
    replayed: Handle,
    replay_skipped: Handle,
    ack_timeouts: Handle,
    spool_bytes: Handle,
    spool_full: Handle,
    spooling: Handle,
    latency_buckets: Vec<Handle>,
    latency_inf: Handle,
    latency_count: Handle,
    latency_sum_us: Handle,
}

impl SinkMetrics {
    fn new(m: &Metrics) -> SinkMetrics {
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

    fn observe_latency(&self, d: Duration) {
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

// ---------------------------------------------------------------------------
// The sink
// ---------------------------------------------------------------------------

/// Events a writer keeps handed to Kafka at once.
const MAX_IN_FLIGHT: usize = 20_000;
/// Commands the writer takes per round (group commit).
const MAX_CMDS_PER_ROUND: usize = 256;
/// How long the replay waits after the broker answers again before it
/// reads the topic back (see `Replay::run`).
const READ_BACK_SETTLE: Duration = Duration::from_secs(2);
/// Frames per replay window.
const REPLAY_WINDOW_FRAMES: usize = 5_000;
const REPLAY_WINDOW_BYTES: u64 = 8 << 20;

enum Cmd {
    Send {
        events: Vec<AuditEvent>,
        ack: oneshot::Sender<Result<(), AuditError>>,
    },
    Shutdown {
        deadline: Instant,
        done: oneshot::Sender<()>,
    },
}

/// Messages from the replay task to the writer.
enum ReplayMsg {
    /// The spool has been replayed up to `offset`; switch back to Kafka if
    /// that is its end. Replies whether it switched.
    CaughtUp {
        offset: u64,
        reply: oneshot::Sender<bool>,
    },
}

#[derive(Debug)]
struct Shared {
    backpressure: AtomicBool,
    spooling: AtomicBool,
    /// Bytes of the spool that are fsynced (what replay may read).
    durable_len: AtomicU64,
    spool_changed: Notify,
    /// Delivery reports still awaited for events that went to the spool
    /// after `ack_timeout`: Kafka may yet store them, so the replay waits
    /// for these before reading the topic back and replaying.
    unresolved: AtomicU64,
}

/// The audit sink. Cheap to clone; all clones feed one writer.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Cmd>,
    shared: Arc<Shared>,
    producer: FutureProducer<AuditClientContext>,
    topic: Arc<str>,
    tasks: Arc<Mutex<Option<Tasks>>>,
}

struct Tasks {
    writer: tokio::task::JoinHandle<()>,
    replay: tokio::task::JoinHandle<()>,
    stop_replay: watch::Sender<bool>,
}

impl fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditSink")
            .field("topic", &self.topic)
            .field("spooling", &self.shared.spooling.load(Ordering::Relaxed))
            .field(
                "backpressure",
                &self.shared.backpressure.load(Ordering::Relaxed),
            )
            .finish()
    }
}

fn start_error(msg: impl Into<String>) -> crate::Error {
    crate::Error::config(msg)
}

fn io_error(path: &Path, e: std::io::Error) -> crate::Error {
    crate::Error::io(path, e)
}

impl AuditSink {
    /// Validates the configuration, opens the spool (recovering chain state
    /// and any events left from a previous run) and connects the producer.
    /// Does not wait for Kafka: if it is unreachable, events are spooled.
    /// Must be called inside a tokio runtime.
    pub async fn start(
        cfg: &AuditConfig,
        metrics: Arc<Metrics>,
    ) -> Result<AuditSink, crate::Error> {
        let problems = cfg.validate();
        if !problems.is_empty() {
            return Err(start_error(problems.join("; ")));
        }
        let key = match &cfg.chain_key_file {
            Some(p) => Some(
                ChainKey::from_file(p)
                    .map_err(|e| start_error(format!("audit.chain_key_file: {e}")))?,
            ),
            None => None,
        };
        let cipher =
            match &cfg.spool_encryption_key_file {
                Some(p) => Some(SpoolCipher::from_file(p).map_err(|e| {
                    start_error(format!("audit.kafka.spool_encryption_key_file: {e}"))
                })?),
                None => None,
            };
        let dir = cfg.spool_dir.clone();
        let (instance, journal, spool, recovered) = {
            let dir = dir.clone();
            let cipher = cipher.clone();
            tokio::task::spawn_blocking(move || -> Result<_, crate::Error> {
                spool::ensure_dir(&dir).map_err(|e| io_error(&dir, e))?;
                let instance = spool::instance_id(&dir)
                    .map_err(|e| io_error(&dir.join(spool::INSTANCE_FILE), e))?;
                let journal =
                    Journal::open(&dir).map_err(|e| io_error(&dir.join(spool::JOURNAL_FILE), e))?;
                let (mut spool, rec) = SpoolFile::open(&dir, cipher)
                    .map_err(|e| io_error(&dir.join(spool::SPOOL_FILE), e))?;
                if rec.pending_frames == 0 && spool.len() > 0 {
                    spool
                        .truncate()
                        .map_err(|e| io_error(&dir.join(spool::SPOOL_FILE), e))?;
                }
                Ok((instance, journal, spool, rec))
            })
            .await
            .map_err(|e| start_error(format!("audit spool task: {e}")))??
        };
        // The newest head per stream from the journal and the spool.
        let mut heads: HashMap<String, ChainHead> = journal.heads().clone();
        for (s, h) in &recovered.heads {
            if heads.get(s).is_none_or(|j| j.seq < h.seq) {
                heads.insert(s.clone(), *h);
            }
        }
        let producer: FutureProducer<AuditClientContext> = kafka::producer_config(cfg)
            .map_err(start_error)?
            .create_with_context(AuditClientContext::default())
            .map_err(|e| start_error(format!("audit: cannot create Kafka producer: {e}")))?;
        let m = SinkMetrics::new(&metrics);
        let spooling = recovered.pending_frames > 0;
        let spool_len = spool.len();
        let full = spool_len >= cfg.spool_max_bytes;
        let shared = Arc::new(Shared {
            backpressure: AtomicBool::new(full),
            spooling: AtomicBool::new(spooling),
            durable_len: AtomicU64::new(spool_len),
            spool_changed: Notify::new(),
            unresolved: AtomicU64::new(0),
        });
        m.spool_bytes.store(spool_len, Ordering::Relaxed);
        m.spool_full.store(u64::from(full), Ordering::Relaxed);
        // The limit as a gauge, so that an alert can say "filling" as a
        // fraction of it whatever the configuration.
        metrics
            .gauge(
                "scrubs_audit_spool_limit_bytes",
                "audit.kafka.spool_max_bytes: the spool size at which audit events are refused.",
                &[],
            )
            .store(cfg.spool_max_bytes, Ordering::Relaxed);
        m.spooling.store(u64::from(spooling), Ordering::Relaxed);
        let spool_key_id = cipher.as_ref().map(SpoolCipher::key_id);
        let reader = SpoolReader::open(&dir, cipher)
            .map_err(|e| io_error(&dir.join(spool::SPOOL_FILE), e))?;
        let topic: Arc<str> = Arc::from(cfg.topic.as_str());
        let (tx, rx) = mpsc::channel(1024);
        let (replay_tx, replay_rx) = mpsc::channel(4);
        let (stop_tx, stop_rx) = watch::channel(false);
        let streams = heads.len();
        let writer = Writer {
            rx,
            replay_rx,
            producer: producer.clone(),
            topic: topic.clone(),
            dir: dir.clone(),
            sealer: Sealer::new(key, &instance, heads),
            journal: Arc::new(Mutex::new(journal)),
            spool: Arc::new(Mutex::new(spool)),
            spool_len,
            shared: shared.clone(),
            m: m.clone(),
            spooling,
            inflight: VecDeque::new(),
            failed: Vec::new(),
            parked: Vec::new(),
            reqs: HashMap::new(),
            next_req: 0,
            done_reqs: Vec::new(),
            max_message_bytes: cfg.max_message_bytes,
            spool_max: cfg.spool_max_bytes,
            closing: None,
            shutdown_waiters: Vec::new(),
            full_logged: full,
            ack_timeout: cfg.ack_timeout.min(cfg.delivery_timeout),
            delivery_timeout: cfg.delivery_timeout,
        };
        let replay = Replay {
            cfg: cfg.clone(),
            instance: instance.clone(),
            held: readback::Held::new(),
            producer: producer.clone(),
            topic: topic.clone(),
            dir: dir.clone(),
            reader: Arc::new(reader),
            cursor: recovered.cursor,
            shared: shared.clone(),
            m,
            to_writer: replay_tx,
            stop: stop_rx,
        };
        let writer = tokio::spawn(writer.run(stop_tx.clone()));
        let replay = tokio::spawn(replay.run());
        if spooling {
            tracing::warn!(
                spool = %dir.join(spool::SPOOL_FILE).display(),
                events = recovered.pending_frames,
                bytes = spool_len - recovered.cursor.min(spool_len),
                "audit spool holds events from a previous run; they will be replayed to Kafka first"
            );
        }
        tracing::info!(
            topic = %cfg.topic,
            instance = %instance,
            streams,
            keyed_chain = cfg.chain_key_file.is_some(),
            spool_encrypted = spool_key_id.is_some(),
            spool_key_id = spool_key_id.as_deref(),
            "audit sink started"
        );
        if spool_key_id.is_none() {
            tracing::warn!(
                spool_dir = %dir.display(),
                "audit.kafka.spool_encryption_key_file is not set: events spooled during a Kafka outage are unredacted plain text on disk"
            );
        }
        if cfg.check_topic_config {
            let cfg = cfg.clone();
            tokio::spawn(async move {
                match check_topic(&cfg, Duration::from_secs(15)).await {
                    Ok(warnings) => {
                        for w in warnings {
                            tracing::warn!(
                                topic = %cfg.topic,
                                setting = %w.setting,
                                current = %w.current,
                                recommended = %w.recommended,
                                "audit topic is weaker than recommended: {w}"
                            );
                        }
                    }
                    Err(e) => {
                        tracing::warn!(topic = %cfg.topic, "could not check the audit topic's settings: {e}")
                    }
                }
            });
        }
        Ok(AuditSink {
            tx,
            shared,
            producer,
            topic,
            tasks: Arc::new(Mutex::new(Some(Tasks {
                writer,
                replay,
                stop_replay: stop_tx,
            }))),
        })
    }

    /// Records one event; resolves once it is durable (acknowledged by
    /// Kafka, or fsynced to the spool).
    pub async fn send(&self, ev: AuditEvent) -> Result<(), AuditError> {
        self.send_batch(vec![ev]).await
    }

    /// Records events in order; resolves once all are durable. Either every
    /// event of the batch is recorded or (on `Backpressure`, `TooLarge`,
    /// `Closed`) none is.
    pub async fn send_batch(&self, events: Vec<AuditEvent>) -> Result<(), AuditError> {
        self.submit(events).await?.await
    }

    /// Queues events for recording and returns once they are queued, with a
    /// future that resolves when they are durable. Events are recorded (given
    /// their sequence numbers and chain hashes) in the order of `submit`
    /// calls, so a caller that needs source order across concurrent batches
    /// orders its `submit` calls and may await durability in parallel.
    pub async fn submit(
        &self,
        events: Vec<AuditEvent>,
    ) -> Result<
        impl std::future::Future<Output = Result<(), AuditError>> + Send + 'static,
        AuditError,
    > {
        let rx = if events.is_empty() {
            None
        } else {
            if self.shared.backpressure.load(Ordering::Relaxed) {
                return Err(AuditError::Backpressure);
            }
            let (ack, rx) = oneshot::channel();
            self.tx
                .send(Cmd::Send { events, ack })
                .await
                .map_err(|_| AuditError::Closed)?;
            Some(rx)
        };
        Ok(async move {
            match rx {
                None => Ok(()),
                Some(rx) => rx.await.map_err(|_| AuditError::Closed)?,
            }
        })
    }

    /// True while the spool is full: sources must stop reading (and OTLP
    /// answer 503) until it drains. Audit events are never dropped.
    pub fn backpressure(&self) -> bool {
        self.shared.backpressure.load(Ordering::Relaxed)
    }

    /// True while events go to the local spool rather than to Kafka.
    pub fn spooling(&self) -> bool {
        self.shared.spooling.load(Ordering::Relaxed)
    }

    /// Checks that the broker answers and the topic exists with partitions.
    pub async fn healthcheck(&self) -> Result<(), String> {
        let producer = self.producer.clone();
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || topic_ready(&producer, &topic, Duration::from_secs(5)))
            .await
            .map_err(|e| format!("healthcheck task: {e}"))?
    }

    /// Stops accepting events, waits (until `deadline` from now) for events
    /// in flight, spools whatever Kafka has not acknowledged by then, and
    /// flushes the producer. Spooled events are replayed by the next start.
    /// Acts on the writer shared by every clone.
    pub async fn shutdown(self, deadline: Duration) {
        let end = Instant::now() + deadline;
        let (done, rx) = oneshot::channel();
        if self
            .tx
            .send(Cmd::Shutdown {
                deadline: end,
                done,
            })
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(deadline + Duration::from_secs(2), rx).await;
        }
        let tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = tasks {
            let _ = t.stop_replay.send(true);
            let left = end.saturating_duration_since(Instant::now()) + Duration::from_millis(500);
            let mut replay = t.replay;
            if tokio::time::timeout(left, &mut replay).await.is_err() {
                replay.abort();
            }
            let mut writer = t.writer;
            if tokio::time::timeout(Duration::from_secs(1), &mut writer)
                .await
                .is_err()
            {
                writer.abort();
            }
        }
        let producer = self.producer.clone();
        let left = end.saturating_duration_since(Instant::now());
        let _ = tokio::task::spawn_blocking(move || producer.flush(left)).await;
    }
}

/// Whether the broker answers and the topic has partitions without errors.
fn topic_ready(
    producer: &FutureProducer<AuditClientContext>,
    topic: &str,
    timeout: Duration,
) -> Result<(), String> {
    let md = producer
        .client()
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| format!("Kafka metadata: {e}"))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| format!("topic {topic} not in metadata"))?;
    if let Some(err) = t.error() {
        return Err(format!("topic {topic}: {}", RDKafkaErrorCode::from(err)));
    }
    if t.partitions().is_empty() {
        return Err(format!("topic {topic} has no partitions"));
    }
    if let Some(p) = t
        .partitions()
        .iter()
        .find(|p| p.error().is_some() || p.leader() < 0)
    {
        return Err(format!("topic {topic} partition {} has no leader", p.id()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The writer task
// ---------------------------------------------------------------------------

struct InFlight {
    fut: DeliveryFuture,
    ev: SealedEvent,
    req: u64,
    sent: Instant,
}

struct Pending {
    remaining: usize,
    error: Option<AuditError>,
    ack: oneshot::Sender<Result<(), AuditError>>,
}

struct Writer {
    rx: mpsc::Receiver<Cmd>,
    replay_rx: mpsc::Receiver<ReplayMsg>,
    producer: FutureProducer<AuditClientContext>,
    topic: Arc<str>,
    dir: PathBuf,
    sealer: Sealer,
    journal: Arc<Mutex<Journal>>,
    spool: Arc<Mutex<SpoolFile>>,
    spool_len: u64,
    shared: Arc<Shared>,
    m: SinkMetrics,
    /// Events go to the spool, not to Kafka.
    spooling: bool,
    /// Handed to Kafka, in sealing order.
    inflight: VecDeque<InFlight>,
    /// Events whose delivery failed, in sealing order (spooled first).
    failed: Vec<(SealedEvent, u64)>,
    /// Events sealed in spool mode, after every in-flight event.
    parked: Vec<(SealedEvent, u64)>,
    reqs: HashMap<u64, Pending>,
    next_req: u64,
    done_reqs: Vec<u64>,
    max_message_bytes: usize,
    spool_max: u64,
    /// When shutting down: the deadline.
    closing: Option<Instant>,
    shutdown_waiters: Vec<oneshot::Sender<()>>,
    full_logged: bool,
    /// `ack_timeout`, at most `delivery_timeout`.
    ack_timeout: Duration,
    /// `delivery_timeout`: how long before an event handed to Kafka can
    /// still be stored (the start of the replay's read-back).
    delivery_timeout: Duration,
}

/// Polls the oldest in-flight delivery.
struct Head<'a>(&'a mut VecDeque<InFlight>);

impl Future for Head<'_> {
    type Output = <DeliveryFuture as Future>::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.0.front_mut() {
            Some(f) => Pin::new(&mut f.fut).poll(cx),
            None => Poll::Pending,
        }
    }
}

impl Writer {
    async fn run(mut self, stop_replay: watch::Sender<bool>) {
        let mut rx_open = true;
        loop {
            if self.inflight.is_empty() && (!self.failed.is_empty() || !self.parked.is_empty()) {
                self.flush_spool().await;
            }
            self.ack_done();
            if !rx_open
                && self.inflight.is_empty()
                && self.failed.is_empty()
                && self.parked.is_empty()
            {
                break;
            }
            let take = rx_open && self.inflight.len() < MAX_IN_FLIGHT;
            let deadline = self
                .closing
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            // The oldest event's ack budget. Not while closing: then the
            // shutdown deadline decides what is spooled.
            let ack_deadline = match (&self.closing, self.inflight.front()) {
                (None, Some(f)) => Some(f.sent + self.ack_timeout),
                _ => None,
            };
            tokio::select! {
                biased;
                r = Head(&mut self.inflight), if !self.inflight.is_empty() => {
                    self.on_delivery(r);
                    self.drain_ready();
                }
                cmd = self.rx.recv(), if take => match cmd {
                    None => rx_open = false,
                    Some(c) => {
                        let mut cmds = vec![c];
                        while cmds.len() < MAX_CMDS_PER_ROUND {
                            match self.rx.try_recv() {
                                Ok(c) => cmds.push(c),
                                Err(_) => break,
                            }
                        }
                        self.handle(cmds).await;
                    }
                },
                Some(msg) = self.replay_rx.recv() => self.on_replay(msg).await,
                _ = tokio::time::sleep_until(ack_deadline.unwrap_or(deadline).into()), if ack_deadline.is_some() => {
                    self.abandon_inflight();
                }
                _ = tokio::time::sleep_until(deadline.into()), if self.closing.is_some() && !self.inflight.is_empty() => {
                    // Out of time: spool what Kafka has not acknowledged (it
                    // may still arrive: at least once).
                    tracing::warn!(events = self.inflight.len(), "audit shutdown deadline reached; spooling unacknowledged events");
                    self.enter_spool_mode("shutdown deadline");
                    while let Some(f) = self.inflight.pop_front() {
                        self.failed.push((f.ev, f.req));
                    }
                }
            }
        }
        let _ = stop_replay.send(true);
        let producer = self.producer.clone();
        let left = self
            .closing
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(1));
        let _ = tokio::task::spawn_blocking(move || producer.flush(left)).await;
        for w in self.shutdown_waiters.drain(..) {
            let _ = w.send(());
        }
        tracing::info!("audit sink stopped");
    }

    fn enter_spool_mode(&mut self, why: &str) {
        if self.spooling {
            return;
        }
        self.spooling = true;
        self.shared.spooling.store(true, Ordering::Relaxed);
        self.m.spooling.store(1, Ordering::Relaxed);
        // Fail the queued (not yet sent) messages now, so none of them is
        // delivered after an earlier event that goes to the spool.
        self.producer
            .purge(PurgeConfig::default().queue().non_blocking());
        tracing::warn!(
            spool = %self.dir.join(spool::SPOOL_FILE).display(),
            "audit events are being spooled locally: {why}; they will be replayed in order when Kafka is back"
        );
    }

    /// Kafka has not acknowledged the oldest event within `ack_timeout`
    /// (a hung broker keeps its connections open, so librdkafka would wait
    /// for `delivery_timeout`): everything in flight goes to the spool, so
    /// that sources are answered within the budget. librdkafka may still
    /// store those events; a task follows their delivery reports, and the
    /// replay waits for them and then skips what the topic already holds.
    fn abandon_inflight(&mut self) {
        let Some(front) = self.inflight.front() else {
            return;
        };
        let why = format!(
            "Kafka did not acknowledge seq {} of stream {} within audit.kafka.ack_timeout ({} ms)",
            front.ev.seq,
            front.ev.stream,
            self.ack_timeout.as_millis()
        );
        self.enter_spool_mode(&why);
        self.m.ack_timeouts.fetch_add(1, Ordering::Relaxed);
        let mut futs = Vec::with_capacity(self.inflight.len());
        while let Some(f) = self.inflight.pop_front() {
            futs.push(f.fut);
            self.failed.push((f.ev, f.req));
        }
        let n = futs.len() as u64;
        self.shared.unresolved.fetch_add(n, Ordering::AcqRel);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            for f in futs {
                let _ = f.await;
            }
            shared.unresolved.fetch_sub(n, Ordering::AcqRel);
            shared.spool_changed.notify_one();
        });
    }

    fn on_delivery(&mut self, r: <DeliveryFuture as Future>::Output) {
        let Some(f) = self.inflight.pop_front() else {
            return;
        };
        match r {
            Ok(Ok(_)) => {
                self.m.delivered.fetch_add(1, Ordering::Relaxed);
                self.m.observe_latency(f.sent.elapsed());
                self.finish_one(f.req, None);
            }
            Ok(Err((e, _msg))) => {
                let why = format!(
                    "Kafka did not acknowledge seq {} of stream {} ({e})",
                    f.ev.seq, f.ev.stream
                );
                self.enter_spool_mode(&why);
                self.failed.push((f.ev, f.req));
            }
            Err(_) => {
                self.enter_spool_mode("the Kafka producer dropped a delivery report");
                self.failed.push((f.ev, f.req));
            }
        }
    }

    /// Handles further deliveries that are already complete.
    fn drain_ready(&mut self) {
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..50_000 {
            let Some(front) = self.inflight.front_mut() else {
                break;
            };
            match Pin::new(&mut front.fut).poll(&mut cx) {
                Poll::Ready(r) => self.on_delivery(r),
                Poll::Pending => break,
            }
        }
    }

    fn finish_one(&mut self, req: u64, err: Option<AuditError>) {
        if let Some(p) = self.reqs.get_mut(&req) {
            p.remaining -= 1;
            if err.is_some() && p.error.is_none() {
                p.error = err;
            }
            if p.remaining == 0 {
                self.done_reqs.push(req);
            }
        }
    }

    fn ack_done(&mut self) {
        for id in self.done_reqs.drain(..) {
            if let Some(p) = self.reqs.remove(&id) {
                let _ = p.ack.send(match p.error {
                    Some(e) => Err(e),
                    None => Ok(()),
                });
            }
        }
    }

    fn pending_spool_bytes(&self) -> u64 {
        self.failed
            .iter()
            .chain(&self.parked)
            .map(|(e, _)| frame_len(e) as u64)
            .sum()
    }

    async fn handle(&mut self, cmds: Vec<Cmd>) {
        // Heads before this round, to roll back if the journal fails.
        let mut before: HashMap<String, Option<ChainHead>> = HashMap::new();
        let mut accepted: Vec<(u64, Vec<SealedEvent>)> = Vec::new();
        let mut round_bytes = 0u64;
        for cmd in cmds {
            let (events, ack) = match cmd {
                Cmd::Send { events, ack } => (events, ack),
                Cmd::Shutdown { deadline, done } => {
                    self.closing = Some(deadline);
                    self.shutdown_waiters.push(done);
                    // Take what is already queued, refuse anything newer.
                    self.rx.close();
                    continue;
                }
            };
            let mut records = Vec::with_capacity(events.len());
            let mut too_large = None;
            let mut est = 0u64;
            for ev in &events {
                let rec = serde_json::to_vec(&ev.record).expect("a JSON value serialises");
                let size = rec.len()
                    + payload_overhead(ev)
                    + ev.key.as_ref().map_or(ev.stream.len(), String::len);
                if size > self.max_message_bytes {
                    too_large = Some(size);
                    break;
                }
                est += (size + 32) as u64;
                records.push(rec);
            }
            if let Some(bytes) = too_large {
                tracing::warn!(
                    stream = %events[0].stream,
                    bytes,
                    limit = self.max_message_bytes,
                    "audit event refused: larger than audit.max_message_bytes"
                );
                self.m
                    .refused
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
                let _ = ack.send(Err(AuditError::TooLarge {
                    bytes,
                    limit: self.max_message_bytes,
                }));
                continue;
            }
            if self.spooling {
                let used = self.spool_len + self.pending_spool_bytes() + round_bytes;
                // An empty spool takes any batch, so a large one cannot wait forever.
                if used > 0 && used + est > self.spool_max {
                    self.set_full(true);
                    self.m
                        .refused
                        .fetch_add(events.len() as u64, Ordering::Relaxed);
                    let _ = ack.send(Err(AuditError::Backpressure));
                    continue;
                }
                round_bytes += est;
            }
            let mut sealed = Vec::with_capacity(events.len());
            for (ev, rec) in events.iter().zip(&records) {
                if !before.contains_key(&ev.stream) {
                    before.insert(ev.stream.clone(), self.sealer.head(&ev.stream));
                }
                sealed.push(self.sealer.seal_raw(ev, rec));
            }
            let id = self.next_req;
            self.next_req += 1;
            self.reqs.insert(
                id,
                Pending {
                    remaining: sealed.len(),
                    error: None,
                    ack,
                },
            );
            accepted.push((id, sealed));
        }
        if accepted.is_empty() {
            return;
        }
        // Write-ahead: persist the new chain heads before any event can
        // reach Kafka or the spool.
        let heads: Vec<(String, ChainHead)> = before
            .keys()
            .filter_map(|s| self.sealer.head(s).map(|h| (s.clone(), h)))
            .collect();
        let journal = self.journal.clone();
        let res = tokio::task::spawn_blocking(move || {
            journal
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .append(&heads)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        if let Err(e) = res {
            for (s, h) in before {
                self.sealer.set_head(&s, h);
            }
            let msg = format!("{}: {e}", self.dir.join(spool::JOURNAL_FILE).display());
            tracing::error!("audit chain journal cannot be written; events refused: {msg}");
            for (id, sealed) in accepted {
                self.m
                    .failed
                    .fetch_add(sealed.len() as u64, Ordering::Relaxed);
                if let Some(p) = self.reqs.remove(&id) {
                    let _ = p.ack.send(Err(AuditError::Io(msg.clone())));
                }
            }
            return;
        }
        for (id, sealed) in accepted {
            for ev in sealed {
                if self.spooling {
                    self.parked.push((ev, id));
                } else {
                    self.enqueue(ev, id);
                }
            }
        }
    }

    fn enqueue(&mut self, ev: SealedEvent, req: u64) {
        let seq = ev.seq.to_string();
        let headers = OwnedHeaders::new_with_capacity(2)
            .insert(Header {
                key: "scrubs-stream",
                value: Some(ev.stream.as_bytes()),
            })
            .insert(Header {
                key: "scrubs-seq",
                value: Some(seq.as_bytes()),
            });
        let record = FutureRecord::to(&self.topic)
            .key(&ev.key[..])
            .payload(&ev.payload[..])
            .headers(headers);
        match self.producer.send_result(record) {
            Ok(fut) => self.inflight.push_back(InFlight {
                fut,
                ev,
                req,
                sent: Instant::now(),
            }),
            Err((e, _)) => {
                let why = format!(
                    "the Kafka producer refused seq {} of stream {} ({e})",
                    ev.seq, ev.stream
                );
                self.enter_spool_mode(&why);
                // Sealed after everything in flight: spooled after it.
                self.parked.push((ev, req));
            }
        }
    }

    fn set_full(&mut self, full: bool) {
        self.shared.backpressure.store(full, Ordering::Relaxed);
        self.m.spool_full.store(u64::from(full), Ordering::Relaxed);
        if full && !self.full_logged {
            self.full_logged = true;
            tracing::warn!(
                spool_bytes = self.spool_len,
                limit = self.spool_max,
                "audit spool is full; refusing new audit events (backpressure) until Kafka is back and the spool is replayed"
            );
        } else if !full && self.full_logged {
            self.full_logged = false;
            tracing::info!("audit spool has room again; backpressure released");
        }
    }

    /// Appends failed then parked events to the spool, fsyncs, acknowledges.
    async fn flush_spool(&mut self) {
        let mut items: Vec<(SealedEvent, u64)> = std::mem::take(&mut self.failed);
        items.append(&mut self.parked);
        let mut buf = Vec::with_capacity(items.iter().map(|(e, _)| frame_len(e)).sum());
        for (ev, _) in &items {
            encode_frame(ev, &mut buf);
        }
        let spool = self.spool.clone();
        // When the spool starts afresh, note how far back Kafka may hold
        // copies of what it is about to take: an event goes to the spool at
        // most `delivery_timeout` after it was handed to Kafka (a minute
        // more for clocks, should the topic stamp messages with the
        // broker's time). The replay reads the topic back from there.
        let since = (self.spool_len == 0).then(|| {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            now_ms - self.delivery_timeout.as_millis() as i64 - 60_000
        });
        let dir = self.dir.clone();
        let res = tokio::task::spawn_blocking(move || {
            if let Some(ms) = since {
                spool::write_since(&dir, ms)?;
            }
            let mut s = spool.lock().unwrap_or_else(|e| e.into_inner());
            s.append(&buf).map(|_| s.len())
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        match res {
            Ok(len) => {
                self.spool_len = len;
                self.shared.durable_len.store(len, Ordering::Release);
                self.shared.spool_changed.notify_one();
                self.m.spool_bytes.store(len, Ordering::Relaxed);
                self.m
                    .spooled
                    .fetch_add(items.len() as u64, Ordering::Relaxed);
                if len >= self.spool_max {
                    self.set_full(true);
                }
                for (_, req) in items {
                    self.finish_one(req, None);
                }
            }
            Err(e) => {
                let msg = format!("{}: {e}", self.dir.join(spool::SPOOL_FILE).display());
                let first = &items[0].0;
                tracing::error!(
                    events = items.len(),
                    stream = %first.stream,
                    first_seq = first.seq,
                    "audit spool cannot be written; these events are not durable and their sequence numbers will show as a gap: {msg}"
                );
                self.m
                    .failed
                    .fetch_add(items.len() as u64, Ordering::Relaxed);
                for (_, req) in items {
                    self.finish_one(req, Some(AuditError::Io(msg.clone())));
                }
            }
        }
    }

    async fn on_replay(&mut self, msg: ReplayMsg) {
        let ReplayMsg::CaughtUp { offset, reply } = msg;
        let idle = self.inflight.is_empty() && self.failed.is_empty() && self.parked.is_empty();
        if !(self.spooling && idle && offset == self.spool_len) {
            let _ = reply.send(false);
            return;
        }
        let spool = self.spool.clone();
        let res = tokio::task::spawn_blocking(move || {
            spool.lock().unwrap_or_else(|e| e.into_inner()).truncate()
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        if let Err(e) = res {
            tracing::error!(
                "audit spool replayed but cannot be truncated ({}: {e}); staying in spool mode",
                self.dir.display()
            );
            let _ = reply.send(false);
            return;
        }
        self.spool_len = 0;
        self.shared.durable_len.store(0, Ordering::Release);
        self.m.spool_bytes.store(0, Ordering::Relaxed);
        self.spooling = false;
        self.shared.spooling.store(false, Ordering::Relaxed);
        self.m.spooling.store(0, Ordering::Relaxed);
        self.set_full(false);
        tracing::info!("audit spool replayed; delivering audit events directly to Kafka again");
        let _ = reply.send(true);
    }
}

// ---------------------------------------------------------------------------
// The replay task
// ---------------------------------------------------------------------------

struct Replay {
    cfg: AuditConfig,
    instance: String,
    /// Spooled events the topic already holds (found by the read-back at
    /// the start of a replay): skipped.
    held: readback::Held,
    producer: FutureProducer<AuditClientContext>,
    topic: Arc<str>,
    dir: PathBuf,
    reader: Arc<SpoolReader>,
    cursor: u64,
    shared: Arc<Shared>,
    m: SinkMetrics,
    to_writer: mpsc::Sender<ReplayMsg>,
    stop: watch::Receiver<bool>,
}

impl Replay {
    async fn run(mut self) {
        let mut backoff = Duration::from_millis(200);
        let mut broker_ok = false;
        let mut failing_since: Option<Instant> = None;
        let mut probe_warned: Option<Instant> = None;
        let reader = self.reader.clone();
        loop {
            if *self.stop.borrow() {
                return;
            }
            let end = self.shared.durable_len.load(Ordering::Acquire);
            if self.cursor >= end {
                if self.shared.spooling.load(Ordering::Relaxed) {
                    let (reply, rx) = oneshot::channel();
                    if self
                        .to_writer
                        .send(ReplayMsg::CaughtUp {
                            offset: self.cursor,
                            reply,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if rx.await == Ok(true) {
                        self.cursor = 0;
                        self.held = readback::Held::new();
                        broker_ok = false;
                        continue;
                    }
                }
                self.idle(Duration::from_millis(500)).await;
                continue;
            }
            if !broker_ok {
                // Events given up on after `ack_timeout` may still reach
                // the topic until librdkafka reports on them; read the
                // topic back only after that, so that none is missed.
                if self.shared.unresolved.load(Ordering::Acquire) > 0 {
                    self.idle(Duration::from_millis(200)).await;
                    continue;
                }
                let p = self.producer.clone();
                let t = self.topic.clone();
                match tokio::task::spawn_blocking(move || {
                    topic_ready(&p, &t, Duration::from_secs(1))
                })
                .await
                {
                    Ok(Ok(())) => {
                        broker_ok = true;
                        probe_warned = None;
                        // A broker that was frozen (not restarted) still
                        // holds produce requests in its sockets from before
                        // the outage, and stores them as it resumes, in
                        // parallel with answering the probe. Give it a
                        // moment, so that the read-back sees them.
                        tokio::select! {
                            _ = tokio::time::sleep(READ_BACK_SETTLE) => {}
                            _ = self.stop.changed() => return,
                        }
                        self.read_back(end).await;
                    }
                    Ok(Err(e)) => {
                        // Say why the spool is not draining (a missing topic,
                        // an unreachable broker), then at most once a minute.
                        if probe_warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                            probe_warned = Some(Instant::now());
                            tracing::warn!(
                                unreplayed_bytes = end - self.cursor,
                                "audit spool waiting for Kafka before replay: {e}"
                            );
                        }
                        self.idle(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                    Err(_) => return,
                }
            }
            let (from, r) = (self.cursor, reader.clone());
            let frames = match tokio::task::spawn_blocking(move || {
                r.read(from, end, REPLAY_WINDOW_FRAMES, REPLAY_WINDOW_BYTES)
            })
            .await
            {
                Ok(Ok(f)) => f,
                Ok(Err(e)) => {
                    tracing::error!(offset = from, "audit spool cannot be read for replay: {e}");
                    self.idle(Duration::from_secs(5)).await;
                    continue;
                }
                Err(_) => return,
            };
            let (sent, failure) = self.send_window(&frames).await;
            if sent > 0 {
                let new_cursor = frames[sent - 1].end;
                let dir = self.dir.clone();
                match tokio::task::spawn_blocking(move || spool::write_cursor(&dir, new_cursor))
                    .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!("audit spool cursor cannot be written: {e}"),
                    Err(_) => return,
                }
                self.cursor = new_cursor;
                self.m.replayed.fetch_add(sent as u64, Ordering::Relaxed);
            }
            match failure {
                None => {
                    backoff = Duration::from_millis(200);
                    if let Some(t) = failing_since.take() {
                        tracing::info!(
                            after_secs = t.elapsed().as_secs(),
                            "audit replay to Kafka is making progress again"
                        );
                    }
                }
                Some(e) => {
                    if failing_since.is_none() {
                        failing_since = Some(Instant::now());
                        tracing::warn!(
                            replayed = sent,
                            "audit replay to Kafka failed; will retry: {e}"
                        );
                    }
                    broker_ok = false;
                    self.idle(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Reads the topic back before replaying the spool from the cursor to
    /// `end`, so that events Kafka already holds are skipped (see
    /// [`readback`]). On failure the replay goes on without skipping:
    /// at least once, and `audit verify` names identical re-sends.
    async fn read_back(&mut self, end: u64) {
        self.held.clear();
        let (reader, from) = (self.reader.clone(), self.cursor);
        let first_seq = match tokio::task::spawn_blocking(move || {
            let mut first: HashMap<String, u64> = HashMap::new();
            let mut at = from;
            while at < end {
                let frames = reader.read(at, end, REPLAY_WINDOW_FRAMES, REPLAY_WINDOW_BYTES)?;
                let Some(last) = frames.last() else {
                    break;
                };
                at = last.end;
                for f in frames {
                    first.entry(f.stream).or_insert(f.seq);
                }
            }
            Ok::<_, std::io::Error>(first)
        })
        .await
        {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => {
                tracing::warn!("audit spool cannot be read before the replay's read-back: {e}");
                return;
            }
            Err(_) => return,
        };
        let since = spool::read_since(&self.dir);
        let (cfg, instance) = (self.cfg.clone(), self.instance.clone());
        let started = Instant::now();
        match tokio::task::spawn_blocking(move || {
            readback::read_back(&cfg, &instance, since, &first_seq)
        })
        .await
        {
            Ok(Ok(r)) => {
                if r.truncated {
                    tracing::warn!(
                        read = r.read,
                        held = r.held.len(),
                        "audit read-back before the replay stopped at its bound; later copies already in Kafka may be sent again (verify names them as duplicates)"
                    );
                }
                tracing::info!(
                    read = r.read,
                    held = r.held.len(),
                    millis = started.elapsed().as_millis() as u64,
                    "audit topic read back before the replay; spooled events it already holds will be skipped"
                );
                self.held = r.held;
            }
            Ok(Err(e)) => tracing::warn!(
                "audit topic cannot be read back before the replay; replaying everything (verify names identical re-sends): {e}"
            ),
            Err(_) => {}
        }
    }

    /// Produces frames in order, except those the topic already holds;
    /// returns how many leading frames were acknowledged (or skipped), and
    /// the first failure.
    async fn send_window(&self, frames: &[spool::Frame]) -> (usize, Option<String>) {
        let mut futs = Vec::with_capacity(frames.len());
        let mut failure = None;
        for f in frames {
            if !self.held.is_empty()
                && self.held.get(&(f.stream.clone(), f.seq)).copied()
                    == payload::stated_hash(&f.payload)
            {
                self.m.replay_skipped.fetch_add(1, Ordering::Relaxed);
                futs.push(None);
                continue;
            }
            let seq = f.seq.to_string();
            let headers = OwnedHeaders::new_with_capacity(2)
                .insert(Header {
                    key: "scrubs-stream",
                    value: Some(f.stream.as_bytes()),
                })
                .insert(Header {
                    key: "scrubs-seq",
                    value: Some(seq.as_bytes()),
                });
            let rec = FutureRecord::to(&self.topic)
                .key(&f.key[..])
                .payload(&f.payload[..])
                .headers(headers);
            match self.producer.send_result(rec) {
                Ok(fut) => futs.push(Some(fut)),
                Err((e, _)) => {
                    failure = Some(format!("producer refused a replayed event: {e}"));
                    break;
                }
            }
        }
        let mut ok = 0;
        let mut broken = failure.is_some();
        for fut in futs {
            let Some(fut) = fut else {
                // Skipped: already in the topic.
                if !broken {
                    ok += 1;
                }
                continue;
            };
            match fut.await {
                Ok(Ok(_)) if !broken => ok += 1,
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    if !broken {
                        broken = true;
                        // Do not let later frames overtake this one.
                        self.producer
                            .purge(PurgeConfig::default().queue().non_blocking());
                        failure = Some(e.to_string());
                    }
                }
                Err(_) => {
                    broken = true;
                    failure.get_or_insert_with(|| "delivery report dropped".into());
                }
            }
        }
        (ok, failure)
    }

    async fn idle(&mut self, d: Duration) {
        tokio::select! {
            _ = self.shared.spool_changed.notified() => {}
            _ = tokio::time::sleep(d) => {}
            _ = self.stop.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert!(parse_duration("10").unwrap_err().contains("missing unit"));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("ms").is_err());
    }

    #[test]
    fn config_defaults_and_validation() {
        let c: AuditConfig = serde_yaml::from_str(
            "brokers: k1:9092,k2:9092\ntopic: phi-audit\nspool_dir: /var/lib/scrubs/audit\ndelivery_timeout: 5s\n",
        )
        .unwrap();
        assert_eq!(c.client_id, "scrubs");
        assert_eq!(c.spool_max_bytes, 256 << 20);
        assert_eq!(c.delivery_timeout, Duration::from_secs(5));
        assert_eq!(c.ack_timeout, Duration::from_secs(2));
        assert!(c.check_topic_config);
        let short: AuditConfig =
            serde_yaml::from_str("brokers: k:1\ntopic: t\nspool_dir: /s\nack_timeout: 10ms\n")
                .unwrap();
        assert!(short
            .validate()
            .iter()
            .any(|m| m.starts_with("audit.ack_timeout:")));
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let secs: AuditConfig =
            serde_yaml::from_str("brokers: k:1\ntopic: t\nspool_dir: /s\ndelivery_timeout: 30\n")
                .unwrap();
        assert_eq!(secs.delivery_timeout, Duration::from_secs(30));
        assert!(serde_yaml::from_str::<AuditConfig>(
            "brokers: k:1\ntopic: t\nspool_dir: /s\nbogus: 1\n"
        )
        .is_err());

        let bad: AuditConfig = serde_yaml::from_str(
            "brokers: 'k1,'\ntopic: 'bad topic'\nspool_dir: ''\nspool_max_bytes: 10\n\
             security:\n  protocol: sasl_plaintext\n  sasl_mechanism: PLAIN\n  cert_file: /c\n",
        )
        .unwrap();
        let p = bad.validate();
        for path in [
            "audit.brokers",
            "audit.topic",
            "audit.spool_dir",
            "audit.spool_max_bytes",
            "audit.security.username",
            "audit.security.password",
            "audit.security.ca_file/cert_file/key_file",
            "audit.security.cert_file and key_file",
        ] {
            assert!(
                p.iter().any(|m| m.starts_with(path)),
                "{path} missing in {p:?}"
            );
        }
    }

    #[test]
    fn validate_at_a_prefix() {
        let mut c = AuditConfig::new("k:1", "", "/s");
        c.spool_max_bytes = 1;
        let p = c.validate_at("audit.kafka");
        assert!(
            p.contains(&"audit.kafka.topic: must not be empty".to_string()),
            "{p:?}"
        );
        assert!(p
            .iter()
            .any(|m| m.starts_with("audit.kafka.spool_max_bytes:")));
        assert!(c.validate().iter().all(|m| m.starts_with("audit.")));
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c: AuditConfig = serde_yaml::from_str(
            "brokers: k:1\ntopic: t\nspool_dir: /s\nsecurity:\n  protocol: sasl_ssl\n  sasl_mechanism: SCRAM-SHA-512\n  username: u\n  password: { value: hunter2 }\n",
        )
        .unwrap();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
