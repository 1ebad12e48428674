//! The audit fork: audit-grade records, unredacted, to an in-boundary Kafka
//! topic, with no loss and tamper evidence (45 CFR §164.312(b)).
//!
//! [`AuditSink::send`] resolves only once an event is durable: acknowledged
//! by Kafka (idempotent producer, `acks=all`, delivery report awaited) or
//! appended to the local spool and fsynced. Each event is sealed with a
//! per-stream sequence number and the hash of the stream's previous event
//! (see [`payload`] for the exact format and hash), and `scrubs audit verify`
//! ([`verify`](mod@verify)) reads the topic back and names gaps, reordering, duplicates
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
//! At shutdown the writer first settles every event in flight (delivered
//! or spooled). If the spool then holds events, it asks the replay for a
//! fresh probe: when Kafka answers, shutdown waits, within its deadline,
//! until the replay has emptied the spool, because a pod deleted with its
//! spool on an `emptyDir` loses what is left in it; when Kafka is down it
//! returns at once and the events wait in the spool for the next start.
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
//! # Where things are
//!
//! This file holds the sink itself ([`AuditSink`]: start, submit,
//! shutdown) and what its two tasks share. The configuration is in
//! `config.rs`, the error in `error.rs`, the metrics in `sink_metrics.rs`,
//! the writer task in `writer.rs`, the replay task in `replay.rs`; the
//! spool's file format in `spool.rs`, the payload and its chain hash in
//! [`payload`], the read-back before a replay in `readback.rs`, producer
//! settings and topic checks in `kafka.rs`, and `audit verify` in
//! [`verify`](mod@verify).
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

mod config;
mod error;
pub mod flowmap;
pub mod incident;
mod kafka;
pub mod payload;
mod readback;
mod replay;
mod sink_metrics;
mod spool;
pub mod verify;
mod writer;

pub use crate::units::{deserialize_duration, parse_duration};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, Producer};
use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::metrics::Metrics;
use crate::pipeline::AuditEvent;

pub use config::{AuditConfig, SaslMechanism, SecurityConfig, SecurityProtocol};
pub use error::AuditError;
pub use kafka::{
    assess_topic, check_topic, AuditClientContext, TopicWarning, RECOMMENDED_RETENTION_MS,
};
pub use payload::{ChainKey, SealedEvent, Sealer};
pub use verify::{
    verify, verify_topic, Problem, ProblemKind, RawMessage, Report, TopicReadOptions, Verifier,
};

use payload::ChainHead;
use replay::Replay;
use sink_metrics::SinkMetrics;
use spool::{Journal, SpoolCipher, SpoolFile, SpoolReader};
use writer::Writer;

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
    /// What the replay's last probe found (see [`Reach`]). The writer
    /// reads it while draining the spool at shutdown.
    reach: watch::Sender<Reach>,
}

/// Whether the replay task's last probe reached the broker and found the
/// topic. A shutdown sets it back to `Unknown` and wakes the replay, so
/// that the decision to wait for the spool to drain rests on a probe made
/// then, not on one from before a backoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reach {
    Unknown,
    Up,
    Down,
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

impl AuditConfig {
    /// Validates the configuration, opens the spool (recovering chain state
    /// and any events left from a previous run) and connects the producer,
    /// with the metrics of `cx`. Does not wait for Kafka: if it is
    /// unreachable, events are spooled. Must be called inside a tokio
    /// runtime. The sink stops on [`AuditSink::shutdown`], not on the
    /// shutdown signal of `cx`, so that the drain decides when what Kafka
    /// has not acknowledged is spooled.
    pub async fn build(
        &self,
        cx: &crate::topology::Context,
    ) -> Result<AuditSink, crate::topology::BuildError> {
        AuditSink::start(self, cx.metrics().clone())
            .await
            .map_err(|e| {
                crate::topology::BuildError::from_error(
                    "audit",
                    &e,
                    start_error_message(&e.to_string(), self),
                )
            })
    }
}

/// The sink's start-up error, prefixed `audit:` once (most of its messages
/// already name their setting, `audit.chain_key_file: ...`). A TLS file
/// that the checks before start-up accepted can still be refused by
/// librdkafka (a certificate it cannot use); its error names the librdkafka
/// property, so the configured file is named too.
fn start_error_message(msg: &str, cfg: &AuditConfig) -> String {
    let mut out = if msg.starts_with("audit") {
        msg.to_string()
    } else {
        format!("audit: {msg}")
    };
    if let Some(s) = &cfg.security {
        for (property, setting, file) in [
            ("ssl.ca.location", "ca_file", &s.ca_file),
            ("ssl.certificate.location", "cert_file", &s.cert_file),
            ("ssl.key.location", "key_file", &s.key_file),
        ] {
            if let Some(f) = file.as_ref().filter(|_| msg.contains(property)) {
                out.push_str(&format!(
                    " (audit.kafka.security.{setting}: {})",
                    f.display()
                ));
            }
        }
    }
    out
}

impl AuditSink {
    /// See [`AuditConfig::build`].
    async fn start(cfg: &AuditConfig, metrics: Arc<Metrics>) -> Result<AuditSink, crate::Error> {
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
            reach: watch::Sender::new(Reach::Unknown),
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
    /// flushes the producer. If the spool holds events and a fresh probe
    /// finds Kafka answering, the replay goes on until the spool is empty
    /// or the deadline passes; if Kafka is down it returns without waiting.
    /// What stays spooled is replayed by the next start with the same
    /// `spool_dir`. Acts on the writer shared by every clone.
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
