//! Route: classify each record, fork audit-grade records to the audit sink,
//! redact everything that can leave, and hand it to the vendors.
//!
//! This file holds the routing decisions: [`Pipeline`], what each [`Lane`]
//! of a line batch does, and what an OTLP request becomes. The stages it
//! drives live where the data passes through them: the records it builds
//! from lines in `crate::decode::records`, the audit selector in
//! [`super::classify`], the redaction walks in `crate::redact`; the ordering
//! of audit submissions across workers in [`super::sequencer`], OTLP
//! admission in `super::admission` and the scratch spaces in
//! `super::scratch_pool`.
//!
//! Order matters for "nothing lost": a batch's audit records are made
//! durable first (Kafka acknowledged, or fsynced to the spool); only then are
//! the scrubbed records queued for vendors and the source told it may commit.
//! A batch whose audit records cannot be made durable is not acknowledged, so
//! the source re-reads it rather than losing it.
//!
//! Redaction fails closed. Each record is redacted under
//! `std::panic::catch_unwind`: a record whose redaction panics (an engine
//! bug, or the test-only `fault-injection` hook) is dropped, never forwarded
//! raw, and counted in `scrubs_vendor_dropped_total{vendor,reason="redaction_failed"}`
//! for every vendor; the scratch space is recreated and the batch goes on.
//! Audit selection happens before redaction, so the audit fork is unaffected.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::Message;

use super::admission::{refuse, Admission, InFlight, RETRY_AFTER};
use super::classify::Selector;
use super::fault;
use super::lane::{LaneDecision, VendorLane};
use super::scratch_pool::ScratchPool;
use super::sequencer::{Sequencer, Ticket};
use super::{
    AuditEvent, BoxFuture, ExportOutcome, Lane, LineBatch, LineMeta, OtlpHandler, Rejection,
    SharedBatch, VendorBatch,
};
use crate::admin::{Watchdog, Work};
use crate::decode::records::{
    kv, line_audit_event, line_record, line_resource, now_nanos, otlp_audit_event,
};
use crate::keys::normalised_keys;
use crate::metrics::{self, Metrics};
use crate::redact::otlp::{self, RedactError, RedactStats};
use crate::signals::SignalsTap;
use crate::{Engine, Scratch};

/// Resolves once submitted audit events are durable.
pub type Durable = BoxFuture<'static, Result<(), String>>;

/// One signal's resource walker (`otlp::redact_*_with_stats`).
type Walker<R> = fn(&Engine, &mut Scratch, &mut R, &mut RedactStats) -> Result<(), RedactError>;

/// Where audit-grade records go.
pub trait AuditOut: Send + Sync + 'static {
    /// Queues events for recording, in call order. Resolves once they are
    /// queued, with a future that resolves once every event is durable (or
    /// fails without a guarantee).
    fn submit(&self, events: Vec<AuditEvent>) -> BoxFuture<'_, Result<Durable, String>>;

    /// True while the audit path cannot take more (its spool is full).
    fn backpressure(&self) -> bool;
}

/// Where scrubbed telemetry goes. Never blocks.
pub trait VendorOut: Send + Sync + 'static {
    /// The vendor's configured name.
    fn name(&self) -> &str;
    /// Queues a batch; an error means it was dropped (and counted).
    fn send(&self, batch: VendorBatch) -> Result<(), String>;

    /// Queues a batch, waiting for room, and resolves once the request
    /// holding it is done: `true` when it was delivered or dropped and
    /// counted, `false` when it was abandoned (shutdown) and should be sent
    /// again. For sources that can wait (file lanes).
    fn send_wait(&self, batch: VendorBatch) -> BoxFuture<'_, bool> {
        let _ = self.send(batch);
        Box::pin(std::future::ready(true))
    }

    /// Queues a batch of crisis records: never dropped for a full queue
    /// (the sink holds room in reserve for them and otherwise waits).
    fn send_crisis(&self, batch: VendorBatch) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = self.send_wait(batch).await;
        })
    }

    /// Since when every export attempt has failed, while it is failing.
    fn failing_since(&self) -> Option<std::time::Instant> {
        None
    }

    /// Holds room in the vendor's queue for a batch of an admitted OTLP
    /// request, waiting up to `wait` for it, before the request is
    /// answered (see [`Pipeline::hold_vendor_room`]). When no room comes in
    /// time: [`Hold::Full`] if `refuse` (the request is then refused and
    /// the client sends it again), else the batch is dropped and counted.
    /// By default a vendor has room at once and sends when told to.
    fn hold_within(
        &self,
        batch: VendorBatch,
        wait: Duration,
        refuse: bool,
    ) -> BoxFuture<'_, Hold<'_>> {
        let _ = (wait, refuse);
        let later: Box<dyn HeldRoom + '_> = Box::new(SendLater(move || {
            let _ = self.send(batch);
        }));
        Box::pin(std::future::ready(Hold::Room(later)))
    }

    /// Whether new OTLP requests should be refused with 429 until the
    /// vendor's queue drains (it is slow, not dead).
    fn congested(&self) -> bool {
        false
    }

    /// [`VendorOut::send`] for a batch every vendor receives: a sink that
    /// can send the shared encoding takes it (see [`SharedBatch`]); by
    /// default the sink gets a copy of its own.
    fn send_shared(&self, batch: Arc<SharedBatch>) -> Result<(), String> {
        self.send(batch.batch().clone())
    }

    /// [`VendorOut::hold_within`] for a batch every vendor receives.
    fn hold_within_shared(
        &self,
        batch: Arc<SharedBatch>,
        wait: Duration,
        refuse: bool,
    ) -> BoxFuture<'_, Hold<'_>> {
        self.hold_within(batch.batch().clone(), wait, refuse)
    }

    /// [`VendorOut::send_crisis`] for a batch every vendor receives.
    fn send_crisis_shared(&self, batch: Arc<SharedBatch>) -> BoxFuture<'_, ()> {
        self.send_crisis(batch.batch().clone())
    }
}

/// Room held in one vendor's queue for one batch (see
/// [`VendorOut::hold_within`]). `send` queues the batch in it; dropping it
/// unsent gives the room back, and the vendor never saw the batch.
pub trait HeldRoom: Send {
    fn send(self: Box<Self>);
}

/// What [`VendorOut::hold_within`] got from one vendor.
pub enum Hold<'a> {
    /// Room for the batch, to be sent once the request is accepted.
    Room(Box<dyn HeldRoom + 'a>),
    /// Nothing to send: the vendor does not take this batch (its signal,
    /// no records), or dropped it and counted why (larger than its whole
    /// queue; no room while failing past `lag_limit.max_failing`; no room
    /// for a request that must not be refused).
    Nothing,
    /// No room within the wait: refuse the request, to be sent again.
    Full,
}

impl std::fmt::Debug for Hold<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Hold::Room(_) => "Room",
            Hold::Nothing => "Nothing",
            Hold::Full => "Full",
        })
    }
}

/// A [`HeldRoom`] for a vendor that has no queue to hold room in: it sends
/// when told to.
struct SendLater<F>(F);

impl<F: FnOnce() + Send> HeldRoom for SendLater<F> {
    fn send(self: Box<Self>) {
        (self.0)()
    }
}

/// Routing settings.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Audit records also go, scrubbed, to the vendors.
    pub audit_to_vendors: bool,
    /// In-flight OTLP bytes above which requests are refused with 429.
    pub memory_budget_bytes: u64,
    /// Resource attributes added to records read from files and stdin.
    pub resource: Vec<(String, String)>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            audit_to_vendors: true,
            memory_budget_bytes: 32 << 20,
            resource: Vec::new(),
        }
    }
}

/// The pipeline between sources and sinks.
pub struct Pipeline {
    engine: RwLock<Arc<Engine>>,
    selector: Selector,
    audit: Option<Arc<dyn AuditOut>>,
    vendors: Vec<Arc<dyn VendorOut>>,
    metrics: Arc<Metrics>,
    cfg: RouterConfig,
    /// The in-flight OTLP memory budget (see [`super::admission`]).
    admission: Admission,
    sequencer: Arc<Sequencer>,
    /// Scratch spaces kept between batches (see [`super::scratch_pool`]).
    scratch_pool: ScratchPool,
    /// Liveness (`/healthz`): redaction and OTLP requests are work that
    /// must finish (see [`Watchdog`]).
    watchdog: std::sync::OnceLock<Arc<Watchdog>>,
    /// Metrics derived from records before redaction (see
    /// [`crate::signals`]), when configured.
    signals: std::sync::OnceLock<Arc<SignalsTap>>,
}

/// What [`Pipeline::read_lines`] made of a batch's lines.
struct Read {
    /// Audit events, unredacted.
    events: Vec<AuditEvent>,
    /// Redacted records for the vendors.
    records: Vec<LogRecord>,
    /// Redacted crisis records for the vendors, sent through their reserve.
    crisis: Vec<LogRecord>,
    /// The raw lines a signal may want, with their times, observed by
    /// [`Pipeline::observe_signals`] once the batch is acknowledged (with
    /// `count_source` only).
    for_signals: Vec<(Vec<u8>, u64)>,
}

/// What [`Pipeline::read_lines`] does with a batch's lines.
#[derive(Clone, Copy, Debug)]
struct ReadMode {
    /// Collect audit events.
    audit: bool,
    /// Redact the lines for vendors.
    redact: bool,
    /// Count the source's records and bytes (one lane per file does, so
    /// that each line is counted once).
    count_source: bool,
    /// Count the values redacted (the lane that redacts for the first
    /// vendor, or the audit lane when it redacts for every vendor).
    count_redactions: bool,
    /// Redact and return only the crisis records (a vendor lane that
    /// skips its lines still delivers those).
    only_crisis: bool,
    /// Count redaction failures for this vendor only (a vendor lane), or
    /// for every vendor.
    vendor: Option<usize>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("vendors", &self.vendors.len())
            .field("audit", &self.audit.is_some())
            .finish()
    }
}

/// How long an admitted OTLP request waits for room in a vendor's queue
/// before its records for that vendor are dropped (counted `queue_full`).
const OTLP_VENDOR_WAIT: Duration = Duration::from_secs(2);

impl Pipeline {
    pub fn new(
        engine: Engine,
        selector: Selector,
        audit: Option<Arc<dyn AuditOut>>,
        vendors: Vec<Arc<dyn VendorOut>>,
        metrics: Arc<Metrics>,
        cfg: RouterConfig,
    ) -> Pipeline {
        Pipeline {
            engine: RwLock::new(Arc::new(engine)),
            selector,
            audit,
            vendors,
            metrics,
            admission: Admission::new(cfg.memory_budget_bytes),
            cfg,
            sequencer: Arc::new(Sequencer::default()),
            scratch_pool: ScratchPool::default(),
            watchdog: std::sync::OnceLock::new(),
            signals: std::sync::OnceLock::new(),
        }
    }

    /// Reports the pipeline's work to `watchdog` (once).
    pub fn set_watchdog(&self, watchdog: Arc<Watchdog>) {
        let _ = self.watchdog.set(watchdog);
    }

    /// Hands every record to the signals before redaction (once per line:
    /// by the lane that counts the source's records).
    pub fn set_signals(&self, signals: Arc<SignalsTap>) {
        let _ = self.signals.set(signals);
    }

    /// Work under way for the watchdog, if there is one.
    pub fn work(&self) -> Option<Work> {
        self.watchdog.get().map(|w| w.begin())
    }

    /// The engine in force.
    pub fn engine(&self) -> Arc<Engine> {
        self.engine
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Swaps in a new engine (SIGHUP). Batches in progress finish with the
    /// engine they started with; no record is dropped.
    pub fn reload(&self, engine: Engine) {
        *self.engine.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(engine);
    }

    /// A ticket for a line batch just taken from the queue: see [`Sequencer`].
    pub fn line_ticket(&self) -> Ticket {
        self.sequencer.ticket()
    }

    /// The current engine with a scratch space made by it.
    fn engine_and_scratch(&self) -> (Arc<Engine>, Scratch) {
        self.scratch_pool.take(self.engine())
    }

    /// Returns a scratch space to the pool.
    fn recycle(&self, engine: Arc<Engine>, scratch: Scratch) {
        self.scratch_pool.recycle(engine, scratch)
    }

    /// Whether the audit path is applying backpressure.
    pub fn audit_backpressure(&self) -> bool {
        self.audit.as_ref().is_some_and(|a| a.backpressure())
    }

    fn count_redactions(&self, engine: &Engine, scratch: &mut Scratch, source: &str) {
        scratch.drain_counts(|rule, n| {
            let r = engine.rule(rule);
            self.metrics.add(
                "scrubs_redactions_total",
                "Values redacted, by rule and category.",
                &[
                    ("rule", r.id),
                    ("category", r.category.as_str()),
                    ("source", source),
                ],
                n,
            );
        });
    }

    /// Counts records that never reached any vendor because redaction
    /// failed or hit a limit (`reason`), in every vendor's drop counter.
    fn count_not_redacted(&self, source: &str, reason: &'static str, records: u64) {
        self.count_not_redacted_for(source, reason, records, None)
    }

    /// [`Pipeline::count_not_redacted`] for one vendor (by index) or, with
    /// `None`, every vendor.
    fn count_not_redacted_for(
        &self,
        source: &str,
        reason: &'static str,
        records: u64,
        only: Option<usize>,
    ) {
        if records == 0 {
            return;
        }
        for (_, v) in self
            .vendors
            .iter()
            .enumerate()
            .filter(|(i, _)| only.is_none_or(|o| o == *i))
        {
            self.metrics.add(
                metrics::VENDOR_DROPPED,
                metrics::VENDOR_DROPPED_HELP,
                &[("vendor", v.name()), ("reason", reason)],
                records,
            );
        }
        tracing::warn!(
            source = %source,
            records,
            reason,
            "records could not be redacted and were dropped (fail closed); nothing raw was forwarded"
        );
    }

    /// Redacts each resource of an OTLP request with the signal's walker
    /// (`otlp::redact_*_with_stats`), counts the redactions, and
    /// returns the number of records rejected (partial success).
    fn redact_resources<R>(&self, resources: &mut [R], walk: Walker<R>) -> i64 {
        let (engine, mut scratch) = self.engine_and_scratch();
        let mut stats = RedactStats::default();
        let mut errors = Vec::new();
        for r in resources {
            if let Err(e) = walk(&engine, &mut scratch, r, &mut stats) {
                errors.push(e);
            }
        }
        self.count_redactions(&engine, &mut scratch, "otlp");
        self.recycle(engine, scratch);
        self.otlp_rejected(&stats, &errors)
    }

    /// Counts what the OTLP resource walks of one request could not redact
    /// and returns the number of records rejected (partial success).
    fn otlp_rejected(&self, stats: &RedactStats, errors: &[RedactError]) -> i64 {
        self.count_not_redacted("otlp", "redaction_failed", stats.failed);
        let mut rejected = stats.failed;
        for e in errors {
            self.count_not_redacted("otlp", e.reason(), e.records() as u64);
            rejected += e.records() as u64;
        }
        rejected as i64
    }

    fn to_vendors(&self, batch: VendorBatch) {
        // One vendor takes the batch itself. Several share it: a deep copy
        // of a decoded batch allocates every string and list again (about a
        // tenth of the OTLP path's CPU), and each copy was then encoded
        // again; now the vendors that send it unchanged share one encoding
        // (`SharedBatch`). The sinks count their own drops with the reason.
        match self.vendors.as_slice() {
            [] => {}
            [one] => {
                let _ = one.send(batch);
            }
            all => {
                let shared = SharedBatch::new(batch);
                for v in all {
                    let _ = v.send_shared(shared.clone());
                }
            }
        }
    }

    /// Crisis records to every vendor, through each sink's reserve: never
    /// dropped for a full queue (see `VendorSink::send_crisis`).
    async fn to_vendors_crisis(&self, batch: VendorBatch) {
        match self.vendors.as_slice() {
            [] => {}
            [one] => one.send_crisis(batch).await,
            all => {
                let shared = SharedBatch::new(batch);
                for v in all {
                    v.send_crisis_shared(shared.clone()).await;
                }
            }
        }
    }

    fn count_crisis(&self, source: &str, n: u64) {
        if n > 0 {
            self.metrics.add(
                "scrubs_crisis_records_total",
                "Crisis records (988 hand-offs, crisis escalations) seen, by source; always audited, never shed.",
                &[("source", source)],
                n,
            );
        }
    }

    /// Holds room for an admitted OTLP request's scrubbed batch in every
    /// vendor's queue, before anything in the request is recorded. Each
    /// vendor waits up to [`OTLP_VENDOR_WAIT`] for room: requests admitted
    /// together (each while the queue was under half full) can overfill
    /// it, and a short wait absorbs that while the client's answer stays
    /// well under its export timeout. A vendor with no room by then refuses
    /// the whole request (429 with `Retry-After`; the room held at the
    /// others is given back, so no vendor gets the records twice when the
    /// client sends them again), unless `refuse` is false (the request
    /// carries a crisis record, which must not go back to a client that may
    /// give up): then that vendor's batch is dropped, counted `queue_full`.
    ///
    /// Before, the batch was queued after the client's 200 was decided, and
    /// a vendor still full after the wait dropped it: records the client
    /// had been told were accepted.
    async fn hold_vendor_room(
        &self,
        batch: VendorBatch,
        refuse: bool,
    ) -> Result<Vec<Box<dyn HeldRoom + '_>>, Rejection> {
        let mut held = Vec::with_capacity(self.vendors.len());
        match self.vendors.as_slice() {
            [] => {}
            [one] => {
                let hold = one.hold_within(batch, OTLP_VENDOR_WAIT, refuse).await;
                self.keep_room(hold, one.as_ref(), &mut held)?;
            }
            all => {
                let shared = SharedBatch::new(batch);
                for v in all {
                    let hold = v
                        .hold_within_shared(shared.clone(), OTLP_VENDOR_WAIT, refuse)
                        .await;
                    self.keep_room(hold, v.as_ref(), &mut held)?;
                }
            }
        }
        Ok(held)
    }

    /// [`Pipeline::hold_vendor_room`] for a request with nothing to record
    /// (traces, metrics): the held room is sent at once, or the request is
    /// refused.
    async fn to_vendors_held(&self, batch: VendorBatch) -> Result<(), Rejection> {
        for room in self.hold_vendor_room(batch, true).await? {
            room.send();
        }
        Ok(())
    }

    /// Keeps the room one vendor held, or turns its [`Hold::Full`] into the
    /// request's refusal (counted).
    fn keep_room<'a>(
        &self,
        hold: Hold<'a>,
        vendor: &dyn VendorOut,
        held: &mut Vec<Box<dyn HeldRoom + 'a>>,
    ) -> Result<(), Rejection> {
        match hold {
            Hold::Room(room) => held.push(room),
            Hold::Nothing => {}
            Hold::Full => {
                tracing::debug!(vendor = %vendor.name(), "OTLP request refused: no room in the vendor's queue within the wait");
                return Err(refuse(
                    &self.metrics,
                    "vendor_queue_full",
                    Rejection::Overloaded {
                        retry_after: RETRY_AFTER,
                    },
                ));
            }
        }
        Ok(())
    }

    async fn audit(&self, events: Vec<AuditEvent>) -> Result<(), String> {
        self.submit_audit(events).await?.await
    }

    /// Queues audit events; the future it returns resolves once they are
    /// durable (and counts them).
    async fn submit_audit(
        &self,
        events: Vec<AuditEvent>,
    ) -> Result<impl std::future::Future<Output = Result<(), String>> + '_, String> {
        let n = events.len() as u64;
        // A batch's events come from one source (a file, stdin, or OTLP).
        let source = events.first().map(|e| e.source.clone()).unwrap_or_default();
        let durable = if events.is_empty() {
            None
        } else {
            match &self.audit {
                Some(a) => Some(a.submit(events).await?),
                None => return Err("audit-grade records but no audit sink".into()),
            }
        };
        Ok(async move {
            if let Some(durable) = durable {
                durable.await?;
                self.metrics.add(
                    "scrubs_audit_records_total",
                    "Audit-grade records made durable, by source.",
                    &[("source", &source)],
                    n,
                );
            }
            Ok(())
        })
    }

    /// Processes lines from a file or stdin and acknowledges the batch.
    /// `ticket` orders its audit events after those of earlier batches
    /// (see [`Sequencer`]); take it where the batch is dequeued.
    ///
    /// What is done depends on the batch's [`Lane`]: `All` (stdin) records
    /// its audit events and queues the scrubbed lines for every vendor
    /// without waiting; `Audit` (a file source's audit lane) only records
    /// audit events; `Vendor` (a file source's lane for one vendor) only
    /// redacts for that vendor, and waits for it (see
    /// [`Pipeline::process_vendor_lane`]).
    pub async fn process_lines(&self, batch: LineBatch, ticket: Ticket) {
        match batch.lane.clone() {
            Lane::Vendor(lane) => {
                // A vendor lane records no audit events: it never takes a
                // turn, so it never holds back the audit lane.
                drop(ticket);
                self.process_vendor_lane(batch, &lane).await
            }
            Lane::Audit => self.process_audit_lines(batch, ticket, false).await,
            Lane::All => self.process_audit_lines(batch, ticket, true).await,
        }
    }

    /// Classifies (and with `to_vendors`, redacts) a batch's lines: the
    /// audit events, the scrubbed records, and the number of lines whose
    /// redaction failed.
    fn read_lines(
        &self,
        source: &str,
        stream: &str,
        lines: &[Vec<u8>],
        dropped_bytes: &[u64],
        meta: &[LineMeta],
        mode: ReadMode,
    ) -> Read {
        let ReadMode {
            audit,
            redact,
            count_source,
            count_redactions,
            only_crisis,
            vendor,
        } = mode;
        // Redaction is synchronous and must finish: a record that never
        // does (an engine bug) is a stall that `/healthz` reports.
        let _work = self.work();
        let (engine, mut scratch) = self.engine_and_scratch();
        let observed = now_nanos();
        let mut events = Vec::new();
        let mut records = Vec::with_capacity(if redact { lines.len() } else { 0 });
        let mut bytes = 0u64;
        let mut failed = 0u64;
        let signals = self.signals.get().filter(|_| count_source);
        let crisis_sel = self.signals.get().filter(|s| s.has_crisis());
        let mut crisis_records = Vec::new();
        let mut crises = 0u64;
        let mut for_signals = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            bytes += line.len() as u64;
            // The lane that counts the source screens the line for the
            // signals (kept if a signal may want it, observed once the
            // batch is acknowledged) and learns from the same scan whether
            // it is a crisis record; the others ask the crisis selector
            // alone.
            let crisis = match signals {
                Some(s) => {
                    let time = meta.get(i).map_or(0, |m| m.time_unix_nano);
                    let (wanted, crisis) = s.screen_line(line, time);
                    if wanted {
                        for_signals.push((line.clone(), time));
                    }
                    crisis
                }
                None => crisis_sel.is_some_and(|s| s.is_crisis_line(line)),
            };
            crises += u64::from(crisis);
            let mut audited = false;
            if !self.selector.is_empty() && (audit || !self.cfg.audit_to_vendors) {
                if let Some(key) = self.selector.select_line(line) {
                    if audit {
                        events.push(line_audit_event(source, stream, key, observed, line));
                        audited = true;
                    }
                    if !self.cfg.audit_to_vendors {
                        continue;
                    }
                }
            }
            // A crisis record is always audited in full, selected or not.
            if crisis && audit && !audited && self.audit.is_some() {
                events.push(line_audit_event(source, stream, None, observed, line));
            }
            // A lane that skips its lines redacts its crisis records only.
            let goes = if only_crisis { crisis } else { redact };
            if !goes {
                continue;
            }
            // Fail closed: a panic inside redaction drops this record (it is
            // counted below); the scratch space may be inconsistent, so its
            // counts are drained and it is replaced.
            let redacted = catch_unwind(AssertUnwindSafe(|| {
                fault::check(line);
                String::from_utf8_lossy(engine.redact(&mut scratch, line)).into_owned()
            }));
            let body = match redacted {
                Ok(body) => body,
                Err(_) => {
                    self.count_redactions(&engine, &mut scratch, source);
                    scratch = engine.scratch();
                    failed += 1;
                    continue;
                }
            };
            // How a line becomes a record (its time, stream and truncation
            // marker) is decode's part, in `line_record`; here only whether
            // it goes.
            let record = line_record(
                body,
                dropped_bytes.get(i).copied().unwrap_or(0),
                meta.get(i).copied().unwrap_or_default(),
                observed,
            );
            if crisis {
                crisis_records.push(record);
            } else {
                records.push(record);
            }
        }
        if count_source {
            self.count_crisis(source, crises);
        }
        if count_redactions {
            self.count_redactions(&engine, &mut scratch, source);
        } else {
            // Another lane of the same file counts what it redacts.
            scratch.drain_counts(|_, _| {});
        }
        if count_source {
            let labels = [("source", source)];
            self.metrics.add(
                "scrubs_records_in_total",
                "Records read, by source.",
                &labels,
                lines.len() as u64,
            );
            self.metrics.add(
                "scrubs_bytes_in_total",
                "Bytes read, by source.",
                &labels,
                bytes,
            );
        }
        self.recycle(engine, scratch);
        self.count_not_redacted_for(source, "redaction_failed", failed, vendor);
        Read {
            events,
            records,
            crisis: crisis_records,
            for_signals,
        }
    }

    /// Observes the lines of an acknowledged batch that a signal may want.
    fn observe_signals(&self, lines: &[(Vec<u8>, u64)]) {
        if let Some(s) = self.signals.get() {
            s.observe_kept_lines(lines);
        }
    }

    /// The audit lane (and stdin, with `to_vendors`): audit events are made
    /// durable first, then (with `to_vendors`) the scrubbed lines are queued
    /// for every vendor without waiting.
    async fn process_audit_lines(&self, batch: LineBatch, mut ticket: Ticket, to_vendors: bool) {
        let LineBatch {
            source,
            stream,
            lines,
            dropped_bytes,
            meta,
            ack,
            earlier_committed,
            lane: _,
        } = batch;
        let Read {
            events,
            records,
            crisis,
            for_signals,
        } = self.read_lines(
            &source,
            &stream,
            &lines,
            &dropped_bytes,
            &meta,
            ReadMode {
                audit: true,
                redact: to_vendors,
                count_source: true,
                count_redactions: to_vendors,
                only_crisis: false,
                vendor: None,
            },
        );
        drop(lines);

        // Nothing reaches a sink before the source has checkpointed every
        // earlier batch (see `LineBatch::earlier_committed`); if one of them
        // was refused, this batch is read again, so it is not delivered now.
        if let Some(gate) = earlier_committed {
            if gate.await.is_err() {
                let _ = ack.send(false);
                return;
            }
        }
        // Queue the audit events in dequeue order, then let the next batch
        // queue its own while this one waits for durability.
        ticket.wait_turn().await;
        let submitted = self.submit_audit(events).await;
        ticket.finish();
        let durable = match submitted {
            Ok(durable) => durable.await,
            Err(e) => Err(e),
        };
        let durable = match durable {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(source = %source, error = %e, "audit records not durable; batch not acknowledged");
                false
            }
        };
        if durable && !crisis.is_empty() {
            self.to_vendors_crisis(line_resource(&self.cfg.resource, &source, &stream, crisis))
                .await;
        }
        if durable && !records.is_empty() {
            self.to_vendors(line_resource(&self.cfg.resource, &source, &stream, records));
        }
        if durable {
            self.observe_signals(&for_signals);
        }
        let _ = ack.send(durable);
    }

    /// A file source's lane for one vendor: redacts the lines and waits
    /// until that vendor's request holding them is done (delivered, or
    /// dropped for a counted reason) before acknowledging, so the lane's
    /// checkpoint never passes lines the vendor has not had and a slow
    /// vendor makes the lane lag instead of dropping. Past the lane's lag
    /// limit the lines are skipped and counted (`vendor_lag_limit`).
    pub async fn process_vendor_lane(&self, batch: LineBatch, lane: &VendorLane) {
        let LineBatch {
            source,
            stream,
            lines,
            dropped_bytes,
            meta,
            ack,
            earlier_committed,
            lane: _,
        } = batch;
        let Some(vendor) = self.vendors.get(lane.vendor) else {
            let _ = ack.send(true);
            return;
        };
        let decision = lane.decide(vendor.failing_since(), std::time::Instant::now());
        if decision == LaneDecision::Skip {
            // The lines a vendor would have had: audit records are not
            // among them when they do not go to vendors.
            let n = if !self.cfg.audit_to_vendors && !self.selector.is_empty() {
                lines
                    .iter()
                    .filter(|l| self.selector.select_line(l).is_none())
                    .count()
            } else {
                lines.len()
            };
            // Crisis records are never skipped: they are redacted and
            // sent through the vendor's reserve even now.
            let crisis_on = self.signals.get().is_some_and(|s| s.has_crisis());
            let mut crisis = Vec::new();
            if lane.primary || crisis_on {
                let read = self.read_lines(
                    &source,
                    &stream,
                    &lines,
                    &dropped_bytes,
                    &meta,
                    ReadMode {
                        audit: false,
                        redact: false,
                        count_source: lane.primary,
                        count_redactions: false,
                        only_crisis: crisis_on,
                        vendor: Some(lane.vendor),
                    },
                );
                // Skipped lines are acknowledged (below) and never read
                // again: they count now.
                self.observe_signals(&read.for_signals);
                crisis = read.crisis;
            }
            lane.count_skipped((n - crisis.len().min(n)) as u64);
            if !crisis.is_empty() {
                vendor
                    .send_crisis(line_resource(&self.cfg.resource, &source, &stream, crisis))
                    .await;
            }
            let _ = ack.send(true);
            return;
        }
        let Read {
            records,
            crisis,
            for_signals,
            ..
        } = self.read_lines(
            &source,
            &stream,
            &lines,
            &dropped_bytes,
            &meta,
            ReadMode {
                audit: false,
                redact: true,
                count_source: lane.primary,
                count_redactions: lane.counts_redactions,
                only_crisis: false,
                vendor: Some(lane.vendor),
            },
        );
        drop(lines);
        if let Some(gate) = earlier_committed {
            if gate.await.is_err() {
                let _ = ack.send(false);
                return;
            }
        }
        if !crisis.is_empty() {
            vendor
                .send_crisis(line_resource(&self.cfg.resource, &source, &stream, crisis))
                .await;
        }
        if records.is_empty() {
            self.observe_signals(&for_signals);
            let _ = ack.send(true);
            return;
        }
        let batch = line_resource(&self.cfg.resource, &source, &stream, records);
        let done = match decision {
            // A probe while skipping for a failing vendor goes out without
            // waiting (its drops are counted by the sink as usual), so that
            // an answer ends the episode without the lane stalling on it.
            LaneDecision::Probe => {
                let _ = vendor.send(batch);
                true
            }
            _ => vendor.send_wait(batch).await,
        };
        if done {
            self.observe_signals(&for_signals);
        }
        let _ = ack.send(done);
    }

    fn admit(
        &self,
        bytes: u64,
        carries_crisis: impl FnOnce() -> bool,
    ) -> Result<InFlight<'_>, Rejection> {
        self.admission.admit(
            bytes,
            &self.vendors,
            || self.audit_backpressure(),
            carries_crisis,
            &self.metrics,
        )
    }

    /// Whether an OTLP logs request carries a record the crisis selector
    /// takes. Asked only when the request would otherwise be refused.
    fn carries_crisis(&self, resources: &[ResourceLogs]) -> bool {
        let Some(s) = self.signals.get().filter(|s| s.has_crisis()) else {
            return false;
        };
        resources.iter().any(|rl| {
            let resource = rl.resource.as_ref().map_or(&[][..], |r| &r.attributes);
            rl.scope_logs
                .iter()
                .flat_map(|sl| &sl.log_records)
                .any(|lr| s.is_crisis_otlp(lr, resource))
        })
    }

    /// Processes an OTLP logs request.
    pub async fn process_otlp_logs(
        &self,
        mut req: ExportLogsServiceRequest,
    ) -> Result<ExportOutcome, Rejection> {
        let _guard = self.admit(req.encoded_len() as u64, || {
            self.carries_crisis(&req.resource_logs)
        })?;
        let (engine, mut scratch) = self.engine_and_scratch();
        let mut events = Vec::new();
        let mut stats = RedactStats::default();
        let mut errors = Vec::new();
        let mut count = 0u64;
        let mut crises = 0u64;
        // Signals count the records of an accepted request only: a refused
        // request comes again, and records observed at both attempts were
        // counted twice. The records a signal may want (the lock-free
        // filter passes few) are kept raw, with their resource's
        // attributes, and observed once the request is taken.
        let mut for_signals: Vec<(Vec<KeyValue>, Vec<LogRecord>)> = Vec::new();
        for rl in &mut req.resource_logs {
            // Borrowed, not copied: the resource is only read here, and the
            // records are filtered in place (`retain` moves nothing when
            // every record stays, the usual case).
            let resource_attrs: &[KeyValue] = rl.resource.as_ref().map_or(&[], |r| &r.attributes);
            let resource_keys = if self.selector.is_empty() {
                Vec::new()
            } else {
                normalised_keys(resource_attrs)
            };
            let mut wanted = Vec::new();
            for sl in &mut rl.scope_logs {
                count += sl.log_records.len() as u64;
                // Only scrubs marks a crisis record: a mark that came with the
                // request would have its record audited in full and sent
                // through the crisis reserve, and would tell the vendors of a
                // crisis there was none.
                for lr in &mut sl.log_records {
                    if is_crisis_record(lr) {
                        lr.attributes.retain(|a| a.key != CRISIS_ATTRIBUTE);
                    }
                }
                if let Some(s) = self.signals.get() {
                    for lr in &mut sl.log_records {
                        if s.wants_otlp_log(lr, resource_attrs) {
                            wanted.push(lr.clone());
                        }
                        // Crisis records are marked before redaction (the
                        // selector reads them raw) and go to the vendors
                        // through their reserve, below.
                        if s.is_crisis_otlp(lr, resource_attrs) {
                            lr.attributes.push(kv(CRISIS_ATTRIBUTE, "true"));
                            crises += 1;
                        }
                    }
                }
                // A crisis record is always audited in full, selected or not.
                let audit_crisis = |lr: &LogRecord, events: &mut Vec<AuditEvent>| {
                    if self.audit.is_some() && is_crisis_record(lr) {
                        events.push(otlp_audit_event(None, resource_attrs, lr));
                    }
                };
                if self.selector.is_empty() {
                    for lr in &sl.log_records {
                        audit_crisis(lr, &mut events);
                    }
                    continue;
                }
                sl.log_records.retain(|lr| {
                    match self
                        .selector
                        .select_log_record(&lr.attributes, &resource_keys)
                    {
                        Some(key) => {
                            events.push(otlp_audit_event(key, resource_attrs, lr));
                            self.cfg.audit_to_vendors
                        }
                        None => {
                            audit_crisis(lr, &mut events);
                            true
                        }
                    }
                });
            }
            if !wanted.is_empty() {
                for_signals.push((resource_attrs.to_vec(), wanted));
            }
            if let Err(e) = otlp::redact_logs_with_stats(&engine, &mut scratch, rl, &mut stats) {
                errors.push(e);
            }
        }
        self.count_redactions(&engine, &mut scratch, "otlp");
        self.recycle(engine, scratch);
        let rejected = self.otlp_rejected(&stats, &errors);
        self.metrics.add(
            "scrubs_records_in_total",
            "Records read, by source.",
            &[("source", "otlp")],
            count,
        );
        let crisis = if crises > 0 {
            take_crisis_records(&mut req.resource_logs)
        } else {
            Vec::new()
        };
        req.resource_logs
            .retain(|rl| rl.scope_logs.iter().any(|s| !s.log_records.is_empty()));
        // Room at the vendors first, then the audit records: a request
        // refused for want of room has recorded nothing, so the client's
        // retry does not audit its records twice.
        let held = if req.resource_logs.is_empty() {
            Vec::new()
        } else {
            self.hold_vendor_room(VendorBatch::Logs(req.resource_logs), crises == 0)
                .await?
        };
        self.audit(events).await.map_err(|e| {
            tracing::warn!(error = %e, "audit records from OTLP not durable; request refused");
            Rejection::Unavailable {
                retry_after: RETRY_AFTER,
            }
        })?;
        // The held room is sent before the crisis records wait for theirs:
        // a crisis batch waits for the queue to drain, which held room that
        // is never sent would stop.
        for room in held {
            room.send();
        }
        if let Some(s) = self.signals.get() {
            s.observe_kept_otlp_logs(&for_signals);
        }
        self.count_crisis("otlp", crises);
        if !crisis.is_empty() {
            self.to_vendors_crisis(VendorBatch::Logs(crisis)).await;
        }
        Ok(outcome(rejected))
    }

    /// Processes an OTLP traces request.
    pub async fn process_otlp_traces(
        &self,
        mut req: ExportTraceServiceRequest,
    ) -> Result<ExportOutcome, Rejection> {
        let _guard = self.admit(req.encoded_len() as u64, || false)?;
        let rejected =
            self.redact_resources(&mut req.resource_spans, otlp::redact_spans_with_stats);
        req.resource_spans
            .retain(|r| r.scope_spans.iter().any(|s| !s.spans.is_empty()));
        if !req.resource_spans.is_empty() {
            self.to_vendors_held(VendorBatch::Traces(req.resource_spans))
                .await?;
        }
        Ok(outcome(rejected))
    }

    /// Processes an OTLP metrics request.
    pub async fn process_otlp_metrics(
        &self,
        mut req: ExportMetricsServiceRequest,
    ) -> Result<ExportOutcome, Rejection> {
        let _guard = self.admit(req.encoded_len() as u64, || false)?;
        let rejected =
            self.redact_resources(&mut req.resource_metrics, otlp::redact_metrics_with_stats);
        req.resource_metrics
            .retain(|r| r.scope_metrics.iter().any(|s| !s.metrics.is_empty()));
        if !req.resource_metrics.is_empty() {
            self.to_vendors_held(VendorBatch::Metrics(req.resource_metrics))
                .await?;
        }
        Ok(outcome(rejected))
    }
}

/// The attribute that marks an OTLP log record as a crisis record (988
/// hand-off, crisis escalation): set before redaction, kept on the way to
/// the vendors so that they can tell too.
const CRISIS_ATTRIBUTE: &str = "scrubs.crisis";

fn is_crisis_record(lr: &LogRecord) -> bool {
    lr.attributes.iter().any(|a| a.key == CRISIS_ATTRIBUTE)
}

/// Moves the crisis records out of `resources` into resources of their
/// own (same resource and scope), leaving the others in place.
fn take_crisis_records(resources: &mut [ResourceLogs]) -> Vec<ResourceLogs> {
    let mut out = Vec::new();
    for rl in resources {
        let mut scopes = Vec::new();
        for sl in &mut rl.scope_logs {
            if !sl.log_records.iter().any(is_crisis_record) {
                continue;
            }
            let (crisis, rest): (Vec<LogRecord>, Vec<LogRecord>) =
                std::mem::take(&mut sl.log_records)
                    .into_iter()
                    .partition(is_crisis_record);
            sl.log_records = rest;
            scopes.push(ScopeLogs {
                scope: sl.scope.clone(),
                log_records: crisis,
                schema_url: sl.schema_url.clone(),
            });
        }
        if !scopes.is_empty() {
            out.push(ResourceLogs {
                resource: rl.resource.clone(),
                scope_logs: scopes,
                schema_url: rl.schema_url.clone(),
            });
        }
    }
    out
}

fn outcome(rejected: i64) -> ExportOutcome {
    if rejected == 0 {
        ExportOutcome::default()
    } else {
        ExportOutcome {
            rejected,
            message: format!(
                "{rejected} record(s) could not be redacted (limits exceeded or redaction failed) and were dropped"
            ),
        }
    }
}

/// The pipeline as an OTLP receiver's handler.
#[derive(Debug, Clone)]
pub struct Handler(pub Arc<Pipeline>);

impl OtlpHandler for Handler {
    fn logs(
        &self,
        req: ExportLogsServiceRequest,
    ) -> BoxFuture<'static, Result<ExportOutcome, Rejection>> {
        let p = self.0.clone();
        Box::pin(async move {
            let _work = p.work();
            p.process_otlp_logs(req).await
        })
    }
    fn traces(
        &self,
        req: ExportTraceServiceRequest,
    ) -> BoxFuture<'static, Result<ExportOutcome, Rejection>> {
        let p = self.0.clone();
        Box::pin(async move {
            let _work = p.work();
            p.process_otlp_traces(req).await
        })
    }
    fn metrics(
        &self,
        req: ExportMetricsServiceRequest,
    ) -> BoxFuture<'static, Result<ExportOutcome, Rejection>> {
        let p = self.0.clone();
        Box::pin(async move {
            let _work = p.work();
            p.process_otlp_metrics(req).await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    use super::*;
    use crate::pipeline::classify::AuditSelector;

    /// Records the audit events and vendor batches it is given.
    #[derive(Default)]
    struct Capture {
        events: Mutex<Vec<AuditEvent>>,
        batches: Mutex<Vec<VendorBatch>>,
    }

    impl AuditOut for Capture {
        fn submit(&self, events: Vec<AuditEvent>) -> BoxFuture<'_, Result<Durable, String>> {
            self.events.lock().unwrap().extend(events);
            let durable: Durable = Box::pin(async { Ok(()) });
            Box::pin(async move { Ok(durable) })
        }
        fn backpressure(&self) -> bool {
            false
        }
    }

    impl VendorOut for Capture {
        fn name(&self) -> &str {
            "capture"
        }
        fn send(&self, batch: VendorBatch) -> Result<(), String> {
            self.batches.lock().unwrap().push(batch);
            Ok(())
        }
    }

    fn any(v: Value) -> Option<AnyValue> {
        Some(AnyValue { value: Some(v) })
    }

    fn attr(key: &str, v: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: any(v),
            ..Default::default()
        }
    }

    fn text(key: &str, v: &str) -> KeyValue {
        attr(key, Value::StringValue(v.into()))
    }

    /// The audit selector reads a record's attributes first and its
    /// resource's after, with keys compared after normalisation
    /// (`Audit`, `patient-id`), skipping a matching key whose value is not
    /// a scalar; every record still reaches the vendors, each once.
    #[tokio::test]
    async fn otlp_audit_selection_reads_record_then_resource_attributes() {
        let selector = Selector::new(&AuditSelector {
            fields: [("audit".to_string(), vec!["true".to_string()])].into(),
            contains: Vec::new(),
            key_field: Some("patient_id".into()),
        });
        let capture = Arc::new(Capture::default());
        let pipeline = Pipeline::new(
            Engine::builtin().unwrap(),
            selector,
            Some(capture.clone()),
            vec![capture.clone()],
            Metrics::new(),
            RouterConfig::default(),
        );
        let record = |n: i64, attrs: Vec<KeyValue>| LogRecord {
            time_unix_nano: 1000 + n as u64,
            attributes: attrs,
            ..Default::default()
        };
        let resource_logs = |resource: Vec<KeyValue>, records: Vec<LogRecord>| ResourceLogs {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        };
        let req = ExportLogsServiceRequest {
            resource_logs: vec![
                resource_logs(
                    vec![
                        attr("AUDIT", Value::ArrayValue(Default::default())),
                        text("Audit", "true"),
                        text("patient-id", "from-resource"),
                    ],
                    vec![
                        record(1, vec![]),
                        record(2, vec![text("patientId", "from-record")]),
                        record(3, vec![attr("audit", Value::BoolValue(false))]),
                    ],
                ),
                resource_logs(
                    vec![text("service", "svc")],
                    vec![record(4, vec![]), record(5, vec![text("audit", "true")])],
                ),
            ],
        };
        let out = pipeline.process_otlp_logs(req).await.unwrap();
        assert_eq!(out, ExportOutcome::default());
        let events = capture.events.lock().unwrap();
        let got: Vec<(u64, Option<&str>)> = events
            .iter()
            .map(|e| (e.time_unix_nano, e.key.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1001, Some("from-resource")),
                (1002, Some("from-record")),
                (1005, None),
            ]
        );
        let batches = capture.batches.lock().unwrap();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].records(), 5);
    }

    /// A vendor that holds room for a batch, or has none, and tells what
    /// became of the room it held.
    struct Holding {
        room: std::sync::atomic::AtomicBool,
        sent: Arc<std::sync::atomic::AtomicUsize>,
        given_back: Arc<std::sync::atomic::AtomicUsize>,
    }

    /// The room a [`Holding`] vendor held: counts itself sent or given back.
    struct CountedRoom {
        sent: Arc<std::sync::atomic::AtomicUsize>,
        given_back: Arc<std::sync::atomic::AtomicUsize>,
        done: bool,
    }

    impl HeldRoom for CountedRoom {
        fn send(mut self: Box<Self>) {
            self.done = true;
            self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    impl Drop for CountedRoom {
        fn drop(&mut self) {
            if !self.done {
                self.given_back
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    impl VendorOut for Holding {
        fn name(&self) -> &str {
            "holding"
        }
        fn send(&self, _: VendorBatch) -> Result<(), String> {
            panic!("an OTLP batch was sent without room held for it");
        }
        fn hold_within_shared(
            &self,
            _: Arc<SharedBatch>,
            _: Duration,
            _: bool,
        ) -> BoxFuture<'_, Hold<'_>> {
            let hold = if self.room.load(std::sync::atomic::Ordering::Relaxed) {
                Hold::Room(Box::new(CountedRoom {
                    sent: self.sent.clone(),
                    given_back: self.given_back.clone(),
                    done: false,
                }))
            } else {
                Hold::Full
            };
            Box::pin(std::future::ready(hold))
        }
    }

    /// An OTLP request for which one vendor has no room is refused (429)
    /// before anything in it is recorded: no audit record (the client sends
    /// it again), and the room the other vendor held is given back, not
    /// sent (it would get the records twice). With room at both, both send.
    #[tokio::test]
    async fn a_vendor_without_room_refuses_the_request_before_audit() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (sent, given_back) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let vendor = |room: bool| {
            Arc::new(Holding {
                room: room.into(),
                sent: sent.clone(),
                given_back: given_back.clone(),
            })
        };
        let capture = Arc::new(Capture::default());
        let metrics = Metrics::new();
        let audited = || {
            Selector::new(&AuditSelector {
                fields: [("audit".to_string(), vec!["true".to_string()])].into(),
                contains: Vec::new(),
                key_field: None,
            })
        };
        let req = || ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![
                        LogRecord {
                            attributes: vec![text("audit", "true")],
                            ..Default::default()
                        };
                        3
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let pipeline = Pipeline::new(
            Engine::builtin().unwrap(),
            audited(),
            Some(capture.clone()),
            vec![vendor(true), vendor(false)],
            metrics.clone(),
            RouterConfig::default(),
        );
        let refused = pipeline.process_otlp_logs(req()).await;
        assert!(
            matches!(refused, Err(Rejection::Overloaded { .. })),
            "{refused:?}"
        );
        assert_eq!(
            capture.events.lock().unwrap().len(),
            0,
            "audited, then refused"
        );
        assert_eq!(
            (
                sent.load(Ordering::Relaxed),
                given_back.load(Ordering::Relaxed)
            ),
            (0, 1)
        );
        assert_eq!(
            metrics.value(
                "scrubs_otlp_refused_total",
                &[("reason", "vendor_queue_full")]
            ),
            Some(1)
        );

        let pipeline = Pipeline::new(
            Engine::builtin().unwrap(),
            audited(),
            Some(capture.clone()),
            vec![vendor(true), vendor(true)],
            Metrics::new(),
            RouterConfig::default(),
        );
        pipeline.process_otlp_logs(req()).await.unwrap();
        assert_eq!(capture.events.lock().unwrap().len(), 3);
        assert_eq!(
            (
                sent.load(Ordering::Relaxed),
                given_back.load(Ordering::Relaxed)
            ),
            (2, 1)
        );
    }

    /// Takes shared batches only and remembers which one it was given.
    #[derive(Default)]
    struct SharedOnly {
        got: Mutex<Vec<Arc<SharedBatch>>>,
    }

    impl VendorOut for SharedOnly {
        fn name(&self) -> &str {
            "shared-only"
        }
        fn send(&self, _: VendorBatch) -> Result<(), String> {
            panic!("a copy was sent where the shared batch would do");
        }
        fn hold_within_shared(
            &self,
            batch: Arc<SharedBatch>,
            _: Duration,
            _: bool,
        ) -> BoxFuture<'_, Hold<'_>> {
            self.got.lock().unwrap().push(batch);
            Box::pin(std::future::ready(Hold::Nothing))
        }
    }

    /// Signals with one counter, `visits_connected_total`: records whose
    /// `evt` is `connected`.
    fn connected_counter() -> Arc<SignalsTap> {
        let signals = crate::signals::SignalsConfig::from_yaml(
            "counters:\n  - name: visits_connected_total\n    when: { field: evt, equals: connected }\n",
        )
        .unwrap()
        .build(Arc::new(Engine::builtin().unwrap()), b"a test hash key of 32 bytes ....")
        .unwrap();
        SignalsTap::new(signals)
    }

    /// The count of [`connected_counter`]'s counter, from `/metrics`' text.
    fn connected_total(tap: &SignalsTap) -> u64 {
        let mut text = String::new();
        tap.render_prometheus(&mut text);
        text.lines()
            .find(|l| l.starts_with("visits_connected_total "))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    }

    /// A refused OTLP request is sent again by its client: its records
    /// count in the signals once, when the request is accepted, not at
    /// every attempt (they were observed before the vendors' room was
    /// asked for, and a refused then retried request counted twice).
    #[tokio::test]
    async fn signals_count_a_refused_then_retried_request_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // Two vendors, so that the batch is held at each (one alone is
        // sent the batch without holding room); the second has room only
        // for the third attempt.
        let sent = Arc::new(AtomicUsize::new(0));
        let vendor = |room: bool| {
            Arc::new(Holding {
                room: room.into(),
                sent: sent.clone(),
                given_back: Arc::new(AtomicUsize::new(0)),
            })
        };
        let (roomy, full) = (vendor(true), vendor(false));
        let tap = connected_counter();
        let pipeline = Pipeline::new(
            Engine::builtin().unwrap(),
            Selector::new(&AuditSelector::default()),
            None,
            vec![roomy, full.clone()],
            Metrics::new(),
            RouterConfig::default(),
        );
        pipeline.set_signals(tap.clone());
        let req = || ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![text("service.name", "visits")],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![
                        LogRecord {
                            attributes: vec![text("evt", "connected")],
                            ..Default::default()
                        },
                        LogRecord {
                            attributes: vec![text("evt", "connected")],
                            ..Default::default()
                        },
                        LogRecord {
                            attributes: vec![text("evt", "waiting")],
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let connected = || connected_total(&tap);
        for _ in 0..2 {
            let refused = pipeline.process_otlp_logs(req()).await;
            assert!(
                matches!(refused, Err(Rejection::Overloaded { .. })),
                "{refused:?}"
            );
        }
        assert_eq!(connected(), 0, "records of refused requests counted");
        full.room.store(true, Ordering::Relaxed);
        pipeline.process_otlp_logs(req()).await.unwrap();
        assert_eq!(connected(), 2);
        assert_eq!(sent.load(Ordering::Relaxed), 2, "one batch to each vendor");
    }

    /// An audit sink whose submissions fail until `up` is set.
    #[derive(Default)]
    struct FlakyAudit {
        up: std::sync::atomic::AtomicBool,
    }

    impl AuditOut for FlakyAudit {
        fn submit(&self, _: Vec<AuditEvent>) -> BoxFuture<'_, Result<Durable, String>> {
            let up = self.up.load(std::sync::atomic::Ordering::Relaxed);
            let durable: Durable = Box::pin(async move {
                if up {
                    Ok(())
                } else {
                    Err("the audit sink is down".to_string())
                }
            });
            Box::pin(async move { Ok(durable) })
        }
        fn backpressure(&self) -> bool {
            false
        }
    }

    /// A batch of lines the pipeline refuses (its audit records not
    /// durable) is read again by its source: its lines count in the
    /// signals once, when the batch is acknowledged, not at every reading.
    #[tokio::test]
    async fn signals_count_a_refused_then_reread_batch_once() {
        use std::sync::atomic::Ordering;
        let audit = Arc::new(FlakyAudit::default());
        let tap = connected_counter();
        let pipeline = Pipeline::new(
            Engine::builtin().unwrap(),
            Selector::new(&AuditSelector {
                contains: vec!["visit".into()],
                ..Default::default()
            }),
            Some(audit.clone()),
            vec![Arc::new(Capture::default())],
            Metrics::new(),
            RouterConfig::default(),
        );
        pipeline.set_signals(tap.clone());
        let sequencer = Arc::new(Sequencer::default());
        let read = |ack| LineBatch {
            source: "app".into(),
            stream: "/var/log/app.log".into(),
            lines: [
                r#"{"evt":"connected","visit":"v1"}"#,
                r#"{"evt":"connected","visit":"v2"}"#,
                r#"{"evt":"waiting","visit":"v3"}"#,
            ]
            .iter()
            .map(|l| l.as_bytes().to_vec())
            .collect(),
            dropped_bytes: vec![0; 3],
            meta: Vec::new(),
            ack,
            earlier_committed: None,
            lane: Lane::All,
        };
        let connected = || connected_total(&tap);
        for _ in 0..2 {
            let (ack, acked) = tokio::sync::oneshot::channel();
            pipeline.process_lines(read(ack), sequencer.ticket()).await;
            assert!(!acked.await.unwrap(), "refused");
        }
        assert_eq!(connected(), 0, "lines of refused batches counted");
        audit.up.store(true, Ordering::Relaxed);
        let (ack, acked) = tokio::sync::oneshot::channel();
        pipeline.process_lines(read(ack), sequencer.ticket()).await;
        assert!(acked.await.unwrap());
        assert_eq!(connected(), 2);
    }

    /// Regression: a client could mark its own records `scrubs.crisis`, and
    /// they were audited in full and reached the vendors so marked.
    #[tokio::test]
    async fn a_crisis_mark_sent_by_the_client_is_dropped() {
        let capture = Arc::new(Capture::default());
        let pipeline = Pipeline::new(
            Engine::builtin().unwrap(),
            Selector::new(&AuditSelector::default()),
            Some(capture.clone()),
            vec![capture.clone()],
            Metrics::new(),
            RouterConfig::default(),
        );
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        attributes: vec![text(CRISIS_ATTRIBUTE, "true"), text("k", "v")],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        pipeline.process_otlp_logs(req).await.unwrap();
        assert!(capture.events.lock().unwrap().is_empty(), "audited in full");
        let batches = capture.batches.lock().unwrap();
        let VendorBatch::Logs(resources) = &batches[0] else {
            panic!("a logs batch");
        };
        let keys: Vec<&str> = resources[0].scope_logs[0].log_records[0]
            .attributes
            .iter()
            .map(|a| a.key.as_str())
            .collect();
        assert_eq!(keys, ["k"]);
    }

    /// With several vendors, an OTLP request's scrubbed batch is handed to
    /// each as the same shared batch (encoded at most once, by the sinks),
    /// not as one deep copy per vendor; one vendor alone takes the batch
    /// itself.
    #[tokio::test]
    async fn several_vendors_get_one_shared_batch() {
        let (a, b) = (
            Arc::new(SharedOnly::default()),
            Arc::new(SharedOnly::default()),
        );
        let pipeline = Pipeline::new(
            Engine::builtin().unwrap(),
            Selector::new(&AuditSelector::default()),
            None,
            vec![a.clone(), b.clone()],
            Metrics::new(),
            RouterConfig::default(),
        );
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord::default(); 3],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        pipeline.process_otlp_logs(req).await.unwrap();
        {
            let (a, b) = (a.got.lock().unwrap(), b.got.lock().unwrap());
            assert_eq!((a.len(), b.len()), (1, 1));
            assert!(Arc::ptr_eq(&a[0], &b[0]), "each vendor got its own copy");
            assert_eq!(a[0].batch().records(), 3);
        }

        let one = Arc::new(Capture::default());
        let pipeline = Pipeline::new(
            Engine::builtin().unwrap(),
            Selector::new(&AuditSelector::default()),
            None,
            vec![one.clone()],
            Metrics::new(),
            RouterConfig::default(),
        );
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord::default(); 2],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        pipeline.process_otlp_logs(req).await.unwrap();
        assert_eq!(one.batches.lock().unwrap()[0].records(), 2);
    }
}
