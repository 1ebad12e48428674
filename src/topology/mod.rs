//! The running pipeline: [`Topology::build`] starts every part a
//! configuration names (admin endpoint, sinks, pipeline, sources, workers)
//! and returns a [`Running`] handle, which reloads the rules and drains the
//! whole in the one order that loses nothing.
//!
//! `scrubs run` is this plus signals and logging; a test (or another
//! program) can start the same pipeline in its own process, from the same
//! configuration, and read its metrics, readiness and bound addresses.

mod component;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinHandle;
use tracing::{error, info, warn, Instrument};

pub use self::component::{BuildError, Built, Context};
use crate::admin::{Admin, Ready};
use crate::config::{build_rules, AuditSection, Config, SourceConfig};
use crate::metrics::{Handle, Metrics};
use crate::pipeline::classify::Selector;
use crate::pipeline::route::{AuditOut, Handler, Pipeline, RouterConfig, VendorOut};
use crate::pipeline::{LagLimit, Lane, LineBatch, SharedBatch, VendorBatch, VendorLane};
use crate::signals::SignalsTap;
use crate::sinks::audit::flowmap::{FlowContext, FlowRecorder, VendorFlow};
use crate::sinks::audit::AuditSink;
use crate::sinks::otlp::{Signal, VendorSink};
pub use crate::sources::otlp::OtlpAddrs;
use crate::{Engine, PseudonymKey};

/// Tasks taking line batches from the queue (see where they are spawned).
const PIPELINE_WORKERS: usize = 4;

/// How long a vendor sink may take to stop after abandoning its queue (its
/// `ABORT_GRACE`): its deadline is that much before the drain's.
const VENDOR_ABORT_GRACE: Duration = Duration::from_secs(2);

/// What the audit sink needs after its deadline: spooling what Kafka has
/// not acknowledged (an fsync), stopping its replay and writer tasks and
/// flushing the producer.
const AUDIT_FINISH: Duration = Duration::from_millis(1500);

/// How far past the drain deadline scrubs still waits for a sink that is
/// finishing, before it exits regardless.
const DEADLINE_SLACK: Duration = Duration::from_millis(500);

/// Builds the pipeline a configuration describes.
#[derive(Debug)]
pub struct Topology;

/// A started pipeline. Dropping it does not stop it: call
/// [`Running::drain`].
pub struct Running {
    metrics: Arc<Metrics>,
    ready: Ready,
    admin_addr: SocketAddr,
    otlp: Vec<(String, OtlpAddrs)>,
    pipeline: Arc<Pipeline>,
    /// Without a key file, pseudonyms use a random key made once at build
    /// and kept for the life of the process, reloads included: a token that
    /// changed on reload would stop correlating one patient's records.
    ephemeral_key: PseudonymKey,
    reloads: Reloads,
    stop_tx: watch::Sender<bool>,
    /// A task awaited by [`Running::input_ended`] is taken out of its slot,
    /// so that the drain does not await it a second time (a JoinHandle
    /// polled after it completed panics).
    line_tasks: Vec<Option<JoinHandle<()>>>,
    only_stdin: bool,
    servers: Vec<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    lane_workers: Vec<JoinHandle<()>>,
    audit_sink: Option<Arc<AuditSink>>,
    vendor_sinks: Vec<Arc<VendorSink>>,
    first_checks: JoinHandle<()>,
    heartbeat: JoinHandle<()>,
    /// Tells the flow recorder to write its last record.
    flow_stop: watch::Sender<bool>,
    flow_recorder: Option<JoinHandle<()>>,
    /// The derived signals, if configured.
    signals: Option<SignalsRun>,
    /// The signals' tick and export tasks.
    signal_tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("admin_addr", &self.admin_addr)
            .field("otlp", &self.otlp)
            .field("sources", &self.line_tasks.len())
            .field("audit", &self.audit_sink.is_some())
            .field("vendors", &self.vendor_sinks.len())
            .finish()
    }
}

/// What a drain delivered and what it could not, from the metrics (counts
/// and byte totals only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// How long the drain took.
    pub took: Duration,
    /// Whether every sink finished by the deadline (plus a short slack).
    pub in_time: bool,
    /// Records abandoned in vendor queues
    /// (`scrubs_vendor_dropped_total{reason="shutdown"}`).
    pub vendor_records_dropped: u64,
    /// Audit bytes left in the spool (replayed by the next start with the
    /// same data directory).
    pub audit_spool_bytes: u64,
    /// File bytes not yet delivered (read again by the next start).
    pub file_bytes_not_delivered: u64,
}

impl DrainReport {
    /// Whether everything was delivered, in time.
    pub fn everything_delivered(&self) -> bool {
        self.vendor_records_dropped == 0
            && self.audit_spool_bytes == 0
            && self.file_bytes_not_delivered == 0
            && self.in_time
    }
}

impl Topology {
    /// Starts everything `cfg` names, in this order: the admin endpoint,
    /// the engine, the audit and vendor sinks, the pipeline, the sources
    /// and the workers; then marks the process ready and checks Kafka and
    /// the vendors once in the background (for the log only).
    ///
    /// Must be called inside a multi-threaded tokio runtime. The admin
    /// endpoint runs on a thread of its own for the life of the process.
    pub async fn build(cfg: &Config) -> Result<Running, BuildError> {
        let Config {
            data_dir,
            rules,
            pseudonym_key_file: _,
            sources,
            audit,
            vendors,
            admin: admin_cfg,
            limits,
            shutdown: _,
            resource,
            signals,
        } = cfg;
        let metrics = Metrics::new();
        // Every component is told to stop by this one signal, sent first in
        // the drain (the sinks are stopped later, by their own shutdown).
        let (stop_tx, stop_rx) = watch::channel(false);
        let cx = Context::new("scrubs", metrics.clone()).with_shutdown(stop_rx);
        let Admin {
            address: admin_addr,
            ready,
            watchdog,
        } = admin_cfg.build(&cx.named("admin"))?;
        info!(address = %admin_addr, "admin endpoint listening");
        // The data path's heartbeat: if its runtime stops running tasks
        // (every worker thread stuck), `/healthz` says so.
        let heartbeat = {
            let watchdog = watchdog.clone();
            tokio::spawn(
                async move {
                    loop {
                        watchdog.beat();
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                .instrument(tracing::info_span!("heartbeat")),
            )
        };

        let ephemeral_key = PseudonymKey::ephemeral();
        let engine = engine(cfg, &ephemeral_key).map_err(|e| BuildError::rules(&e))?;
        let reloads = Reloads::new(&metrics);
        if engine.key_is_ephemeral() {
            warn!("no pseudonym_key_file: pseudonyms use a random key for this process only");
        }
        info!(rules = engine.rule_count(), "rules compiled");
        if !rules.builtin {
            warn!(
                rules = engine.rule_count(),
                "the built-in HIPAA pack is off (rules.builtin: false): only the rules of rules.files are in force"
            );
        }
        std::fs::create_dir_all(data_dir).map_err(|e| {
            BuildError::io("data_dir", format!("data_dir {}: {e}", data_dir.display()))
        })?;

        // The audit section is taken apart in full, so that a setting added
        // to it cannot be left unused here.
        let (audit_sink, selector, audit_to_vendors) = match audit {
            Some(AuditSection {
                kafka,
                select,
                to_vendors,
                flow_record_interval: _,
            }) => (
                Some(Arc::new(kafka.build(&cx.named("audit")).await?)),
                Selector::new(select),
                *to_vendors,
            ),
            None => (None, Selector::default(), true),
        };
        // Flow records (see `scrubs::sinks::audit::flowmap`): counted from
        // now, stopped by their own signal in the drain, after the workers
        // (so that the last record counts the drained batches) and before
        // the audit sink.
        let (flow_stop, flow_stop_rx) = watch::channel(false);
        let flow_recorder = match (&audit_sink, audit) {
            (Some(sink), Some(a)) if !a.flow_record_interval.is_zero() => {
                let ctx = flow_context(cfg, &a.kafka.topic);
                let recorder = FlowRecorder::new(ctx, &metrics, now_nanos());
                Some(tokio::spawn(
                    recorder
                        .run(
                            AuditSink::clone(sink),
                            metrics.clone(),
                            a.flow_record_interval,
                            flow_stop_rx,
                        )
                        .instrument(tracing::info_span!("flow_records")),
                ))
            }
            _ => None,
        };
        let mut vendor_sinks = Vec::new();
        for v in vendors {
            // The export task ends by itself after the sink's shutdown in
            // the drain.
            let Built { handle: sink, .. } = v.build(&cx.named(v.name.as_str()))?;
            vendor_sinks.push(Arc::new(sink));
        }
        let pipeline = Arc::new(Pipeline::new(
            engine,
            selector,
            audit_sink.clone().map(|a| a as Arc<dyn AuditOut>),
            vendor_sinks
                .iter()
                .map(|v| v.clone() as Arc<dyn VendorOut>)
                .collect(),
            metrics.clone(),
            RouterConfig {
                audit_to_vendors,
                memory_budget_bytes: limits.memory_budget_bytes,
                resource: resource
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            },
        ));
        pipeline.set_watchdog(watchdog.clone());

        // Signals (see `scrubs::signals`): derived from records before
        // redaction, on `/metrics` and, every `export_interval`, as OTLP
        // metrics to the vendors that take metrics. Open keys are kept as
        // hashes under a key of this process only: they live in memory.
        let mut signal_tasks = Vec::new();
        let signals_tap = match signals {
            Some(sc) => {
                let built = sc
                    .build(pipeline.engine(), &rand::random::<[u8; 32]>())
                    .map_err(|e| BuildError::config("signals", e.to_string()))?;
                let tap = SignalsTap::new(built);
                let t = tap.clone();
                metrics.add_renderer(move |out| t.render_prometheus(out));
                pipeline.set_signals(tap.clone());
                let t = tap.clone();
                signal_tasks.push(tokio::spawn(
                    async move {
                        let mut every = tokio::time::interval(Duration::from_secs(1));
                        loop {
                            every.tick().await;
                            t.tick();
                        }
                    }
                    .instrument(tracing::info_span!("signals_tick")),
                ));
                if !sc.export_interval.is_zero() {
                    let (t, sinks, resource) =
                        (tap.clone(), vendor_sinks.clone(), resource.clone());
                    let every = sc.export_interval;
                    signal_tasks.push(tokio::spawn(
                        async move {
                            let mut tick = tokio::time::interval_at(
                                tokio::time::Instant::now() + every,
                                every,
                            );
                            loop {
                                tick.tick().await;
                                export_signals(&t, &sinks, &resource);
                            }
                        }
                        .instrument(tracing::info_span!("signals_export")),
                    ));
                }
                Some(SignalsRun {
                    tap,
                    export_interval: sc.export_interval,
                    resource: resource.clone(),
                })
            }
            None => None,
        };

        // Sources.
        let (tx, rx) = mpsc::channel::<LineBatch>(limits.queue_batches);
        let mut line_tasks = Vec::new();
        let mut lane_workers = Vec::new();
        let mut servers = Vec::new();
        let mut otlp_addrs = Vec::new();
        let mut only_stdin = true;
        for (name, src) in sources {
            let source_cx = cx.named(name.as_str());
            match src {
                SourceConfig::File(f) => {
                    only_stdin = false;
                    // One read position per destination (see
                    // `scrubs::pipeline::lane`): the audit lane on the
                    // shared queue, and one lane per vendor with its own
                    // queue and workers, so that a vendor that makes its
                    // lane wait never holds a worker the audit lane needs.
                    // Vendors that take no logs get no lane: nothing of a
                    // file would reach them.
                    let log_vendors: Vec<usize> = vendors
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| v.effective_signals().contains(&Signal::Logs))
                        .map(|(i, _)| i)
                        .collect();
                    if audit.is_some() || log_vendors.is_empty() {
                        let lane = if audit.is_some() {
                            Lane::Audit
                        } else {
                            Lane::All
                        };
                        line_tasks.push(f.build(&source_cx, data_dir, lane, tx.clone())?.task);
                    }
                    for (k, &i) in log_vendors.iter().enumerate() {
                        let v = &vendors[i];
                        let lane = VendorLane::new(
                            &metrics,
                            name,
                            i,
                            &v.name,
                            audit.is_none() && k == 0,
                            k == 0,
                            LagLimit {
                                max_bytes: v.lag_limit.max_bytes,
                                max_failing: v.lag_limit.max_failing,
                            },
                        );
                        let (lane_tx, lane_rx) = mpsc::channel::<LineBatch>(1);
                        line_tasks.push(
                            f.build(&source_cx, data_dir, Lane::Vendor(lane.clone()), lane_tx)?
                                .task,
                        );
                        // Two workers: one redacts the next batch while the
                        // other waits for the vendor.
                        let lane_rx = Arc::new(Mutex::new(lane_rx));
                        for _ in 0..2 {
                            let rx = lane_rx.clone();
                            let pipeline = pipeline.clone();
                            let lane = lane.clone();
                            lane_workers.push(tokio::spawn(
                                async move {
                                    loop {
                                        let next = rx.lock().await.recv().await;
                                        match next {
                                            Some(batch) => {
                                                pipeline.process_vendor_lane(batch, &lane).await
                                            }
                                            None => break,
                                        }
                                    }
                                }
                                .instrument(tracing::info_span!(
                                    "lane",
                                    source = %name,
                                    vendor = %v.name
                                )),
                            ));
                        }
                    }
                }
                SourceConfig::Stdin(s) => {
                    line_tasks.push(
                        s.build(&source_cx, limits.max_record_bytes, tx.clone())?
                            .task,
                    );
                }
                SourceConfig::Otlp(o) => {
                    only_stdin = false;
                    let handler = Arc::new(Handler(pipeline.clone()));
                    let Built {
                        handle: addrs,
                        task,
                    } = o.build(&source_cx, handler).await?;
                    let OtlpAddrs { http, grpc } = addrs;
                    info!(source = %name, http = ?http, grpc = ?grpc, "OTLP receiver listening");
                    otlp_addrs.push((name.clone(), addrs));
                    servers.push(task);
                }
            }
        }
        // Liveness counts batches queued for the workers that no worker
        // has taken (a weak sender, so that the queue still closes when the
        // sources end), and excuses waiting while the audit spool is full:
        // that is backpressure by design, which `/readyz` reports, and a
        // restart would not cure it. Readiness asks the audit path the same
        // question; the spool-full gauge is read rather than the sink, so
        // that no probe holds the sink (the drain shuts it down as its last
        // owner).
        let spool_full = audit
            .as_ref()
            .map(|_| metrics.gauge("scrubs_audit_spool_full", "", &[]));
        {
            let queue = tx.downgrade();
            let full = spool_full.clone();
            watchdog.set_probes(
                vec![Box::new(move || {
                    queue
                        .upgrade()
                        .map_or(0, |q| q.max_capacity() - q.capacity())
                })],
                move || full.as_ref().is_some_and(|f| f.load(Ordering::Relaxed) > 0),
            );
        }
        if let Some(full) = spool_full {
            ready.set_audit_check(move || {
                (full.load(Ordering::Relaxed) > 0).then_some("audit spool full")
            });
        }
        drop(tx);

        // Four workers on the two runtime threads. The engine is
        // synchronous and CPU-bound, so at most two redact at once (one per
        // core); the others meanwhile wait for Kafka or for the previous
        // batch's checkpoint (`LineBatch::earlier_committed`) without
        // holding a thread. With two, both could be waiting and nothing
        // redacting.
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::new();
        for i in 0..PIPELINE_WORKERS {
            let rx = rx.clone();
            let pipeline = pipeline.clone();
            workers.push(tokio::spawn(
                async move {
                    loop {
                        // The ticket is taken under the queue lock, so
                        // ticket order is queue order (audit events keep
                        // source order).
                        let next = {
                            let mut rx = rx.lock().await;
                            rx.recv().await.map(|b| (b, pipeline.line_ticket()))
                        };
                        match next {
                            Some((batch, ticket)) => {
                                let _work = pipeline.work();
                                pipeline.process_lines(batch, ticket).await
                            }
                            None => break,
                        }
                    }
                }
                .instrument(tracing::info_span!("worker", id = i)),
            ));
        }

        // Ready now: the sources are open, and the audit path's check runs
        // at every probe. Vendors are not asked: a vendor outage must not
        // take the pod out of service (45 CFR 164.306(a)); it makes the
        // file lanes lag and is counted instead. Their health and Kafka's
        // are checked once, in the background, for the log only.
        ready.set(true);
        info!("ready");
        let first_checks = {
            let audit_sink = audit_sink.clone();
            let vendor_sinks = vendor_sinks.clone();
            tokio::spawn(
                async move {
                    if let Some(a) = &audit_sink {
                        match a.healthcheck().await {
                            Ok(()) => info!("Kafka answers"),
                            Err(e) => warn!(error = %e, "Kafka does not answer yet: audit events are spooled until it does"),
                        }
                    }
                    for v in &vendor_sinks {
                        match v.healthcheck().await {
                            Ok(()) => info!(vendor = %v.name(), "vendor answers"),
                            Err(e) => warn!(vendor = %v.name(), error = %e, "vendor does not answer yet: its lanes wait (readiness does not)"),
                        }
                    }
                }
                .instrument(tracing::info_span!("first_checks")),
            )
        };

        Ok(Running {
            metrics,
            ready,
            admin_addr,
            otlp: otlp_addrs,
            pipeline,
            ephemeral_key,
            reloads,
            stop_tx,
            line_tasks: line_tasks.into_iter().map(Some).collect(),
            only_stdin,
            servers,
            workers,
            lane_workers,
            audit_sink,
            vendor_sinks,
            first_checks,
            heartbeat,
            flow_stop,
            flow_recorder,
            signals: signals_tap,
            signal_tasks,
        })
    }
}

/// The derived signals of a running topology.
struct SignalsRun {
    tap: Arc<SignalsTap>,
    export_interval: Duration,
    /// The configuration's `resource`, for the exported metrics.
    resource: BTreeMap<String, String>,
}

/// Sends the derived signals, cumulative, to every vendor that takes
/// metrics (the BAA check is the vendor sink's, as for any telemetry). A
/// full queue drops the request, counted by the sink; the next export
/// carries the same totals.
fn export_signals(
    tap: &SignalsTap,
    sinks: &[Arc<VendorSink>],
    resource: &BTreeMap<String, String>,
) {
    let req = tap.to_otlp(resource);
    if req.resource_metrics.is_empty() {
        return;
    }
    // One encoding for every vendor that sends it unchanged.
    let batch = SharedBatch::new(VendorBatch::Metrics(req.resource_metrics));
    for v in sinks {
        let _ = v.send_shared(&batch);
    }
}

/// What the flow records say about this sidecar: its service, sources,
/// audit topic and vendors (names, endpoint hosts, BAA flags).
fn flow_context(cfg: &Config, audit_topic: &str) -> FlowContext {
    let service = cfg
        .resource
        .get("service.name")
        .cloned()
        .unwrap_or_else(|| "scrubs".into());
    let sources = cfg
        .sources
        .iter()
        .map(|(name, s)| {
            let kind = match s {
                SourceConfig::File(_) => "file",
                SourceConfig::Stdin(_) => "stdin",
                SourceConfig::Otlp(_) => "otlp",
            };
            (name.clone(), kind)
        })
        .collect();
    let vendors = cfg
        .vendors
        .iter()
        .map(|v| VendorFlow {
            name: v.name.clone(),
            host: endpoint_host(&v.endpoint),
            baa_covered: v.baa_covered,
        })
        .collect();
    FlowContext {
        service,
        sources,
        audit_topic: Some(audit_topic.to_string()),
        vendors,
    }
}

/// The host (and port) of an endpoint URL, without scheme, credentials or
/// path.
fn endpoint_host(endpoint: &str) -> String {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .to_string()
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Running {
    /// The process's metrics (what `/metrics` renders).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The readiness `/readyz` reports.
    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    /// The address the admin endpoint is bound to (the real port when the
    /// configuration asked for port 0).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The addresses of the OTLP receiver of source `name`, if it is one.
    pub fn otlp_addrs(&self, name: &str) -> Option<OtlpAddrs> {
        self.otlp.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }

    /// Resolves when the input has ended: when every source is stdin and
    /// every one has reached the end of its input. With any other source
    /// the input never ends (the process runs until it is told to stop).
    /// Cancel-safe: a source seen ending is not awaited again.
    pub async fn input_ended(&mut self) {
        if self.only_stdin {
            for slot in self.line_tasks.iter_mut() {
                if let Some(t) = slot.as_mut() {
                    let _ = t.await;
                }
                *slot = None;
            }
        } else {
            std::future::pending::<()>().await;
        }
    }

    /// Reloads the rules of `path` (on SIGHUP): a configuration that cannot
    /// be loaded, or a rule set that does not compile, is rejected and the
    /// old rules stay in force. Returns whether the new rules were applied.
    pub fn reload_file(&self, path: &Path) -> bool {
        match Config::load(path) {
            Ok(cfg) => self.reload(&cfg),
            Err(problems) => {
                self.reloads.record(false);
                for p in &problems {
                    error!(problem = %p, "SIGHUP: configuration rejected; the previous rules stay in force");
                }
                false
            }
        }
    }

    /// Recompiles the rules of `cfg` (its rules and pseudonym key; nothing
    /// else of a running pipeline changes on reload). A bad rule set is
    /// rejected and the old one stays in force. Returns whether the new
    /// rules were applied.
    pub fn reload(&self, cfg: &Config) -> bool {
        match engine(cfg, &self.ephemeral_key) {
            Ok(engine) => {
                info!(rules = engine.rule_count(), "SIGHUP: rules reloaded");
                self.pipeline.reload(engine);
                if let Some(sr) = &self.signals {
                    sr.tap.set_engine(self.pipeline.engine());
                }
                self.reloads.record(true);
                true
            }
            Err(e) => {
                self.reloads.record(false);
                error!(error = %e, "SIGHUP: new rules rejected; the previous rules stay in force");
                false
            }
        }
    }

    /// Stops everything within `deadline` (the configuration's
    /// `shutdown.drain_deadline`), logs what could not be delivered and
    /// returns it.
    pub async fn drain(self, deadline: Duration) -> DrainReport {
        let Running {
            metrics,
            ready,
            admin_addr: _,
            otlp: _,
            pipeline,
            ephemeral_key: _,
            reloads: _,
            stop_tx,
            line_tasks,
            only_stdin: _,
            servers,
            workers,
            lane_workers,
            audit_sink,
            vendor_sinks,
            first_checks,
            heartbeat,
            flow_stop,
            flow_recorder,
            signals,
            signal_tasks,
        } = self;
        // Drain, within one deadline for everything (sources, workers,
        // vendors, audit), never a deadline per sink one after the other:
        // the kubelet kills the container at the end of the pod's grace
        // period, and what is not spooled or checkpointed by then is lost.
        let drain_started = std::time::Instant::now();
        let deadline = tokio::time::Instant::now() + deadline;
        ready.set(false);
        // The first checks hold sink handles; end them so that the sinks
        // below are the last owners and can be shut down.
        first_checks.abort();
        let _ = first_checks.await;
        // Stop the sources: they collect the acknowledgements of the
        // batches in flight and write their checkpoints; the workers empty
        // the queue.
        let _ = stop_tx.send(true);
        for t in line_tasks
            .into_iter()
            .flatten()
            .chain(servers)
            .chain(workers)
        {
            let _ = tokio::time::timeout_at(deadline, t).await;
        }
        // The file sources have written their checkpoints: a vendor lane's
        // batch still waiting for its vendor was not acknowledged and is
        // read again after a restart. What the lanes already queued is
        // flushed by the vendor sinks' shutdown below.
        for w in lane_workers {
            w.abort();
            let _ = w.await;
        }
        drop(pipeline);
        // The signals' last export, while the vendor sinks still take
        // batches.
        for t in signal_tasks {
            t.abort();
        }
        if let Some(sr) = &signals {
            if !sr.export_interval.is_zero() {
                export_signals(&sr.tap, &vendor_sinks, &sr.resource);
            }
        }
        // Then the sinks, each told to finish early enough that its own
        // last steps fit before the deadline: a vendor sink abandons its
        // queue at its deadline and then waits up to VENDOR_ABORT_GRACE for
        // its task; the audit sink spools what Kafka has not acknowledged at
        // its deadline, then stops its tasks and flushes the producer.
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let vendor_names: Vec<String> = vendor_sinks.iter().map(|v| v.name().to_string()).collect();
        let mut vendors = Vec::new();
        for v in vendor_sinks {
            if let Ok(v) = Arc::try_unwrap(v) {
                let budget = left.saturating_sub(VENDOR_ABORT_GRACE);
                vendors.push(Some(tokio::spawn(
                    async move { v.shutdown(budget).await }
                        .instrument(tracing::info_span!("vendor_shutdown")),
                )));
            }
        }
        // The last flow record counts what the vendor sinks flush while
        // they shut down (OTLP and stdin records still queued or batched),
        // so it waits for them, but for no more than half of the time left:
        // the other half is the audit sink's, which keeps delivering to
        // Kafka meanwhile and then has to spool or drain before the
        // deadline. A vendor still shutting down at that point is counted
        // up to there.
        let flow_by = tokio::time::Instant::now() + left / 2;
        for task in &mut vendors {
            if let Some(t) = task.as_mut() {
                if tokio::time::timeout_at(flow_by, t).await.is_ok() {
                    *task = None;
                }
            }
        }
        let _ = flow_stop.send(true);
        if let Some(t) = flow_recorder {
            let _ = tokio::time::timeout_at(deadline, t).await;
        }
        let mut sinks: Vec<JoinHandle<()>> = vendors.into_iter().flatten().collect();
        if let Some(a) = audit_sink {
            if let Ok(a) = Arc::try_unwrap(a) {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let budget = left
                    .saturating_sub(AUDIT_FINISH)
                    .max(Duration::from_millis(100));
                sinks.push(tokio::spawn(
                    async move { a.shutdown(budget).await }
                        .instrument(tracing::info_span!("audit_shutdown")),
                ));
            }
        }
        let mut in_time = true;
        for t in sinks {
            in_time &= tokio::time::timeout_at(deadline + DEADLINE_SLACK, t)
                .await
                .is_ok();
        }
        heartbeat.abort();
        report_drain(&metrics, &vendor_names, drain_started.elapsed(), in_time)
    }
}

/// Logs what the drain could not deliver, from the metrics (counts and
/// byte totals only): records abandoned in vendor queues (counted
/// `scrubs_vendor_dropped_total{reason="shutdown"}`), audit events left in
/// the spool (replayed by the next start with the same data directory), and
/// file bytes not yet delivered (read again by the next start).
fn report_drain(
    metrics: &Metrics,
    vendors: &[String],
    took: Duration,
    in_time: bool,
) -> DrainReport {
    let mut vendor_records = 0;
    for v in vendors {
        let n = metrics
            .value(
                crate::metrics::VENDOR_DROPPED,
                &[("vendor", v), ("reason", "shutdown")],
            )
            .unwrap_or(0);
        if n > 0 {
            warn!(vendor = %v, records = n, "records not sent to the vendor at shutdown (counted as dropped, reason shutdown)");
        }
        vendor_records += n;
    }
    let spooled = metrics.sum("scrubs_audit_spool_bytes");
    let file_lag = metrics.sum("scrubs_file_lag_bytes") + metrics.sum("scrubs_vendor_lag_bytes");
    let report = DrainReport {
        took,
        in_time,
        vendor_records_dropped: vendor_records,
        audit_spool_bytes: spooled,
        file_bytes_not_delivered: file_lag,
    };
    let millis = took.as_millis() as u64;
    if report.everything_delivered() {
        info!(millis, "drained: everything delivered");
    } else {
        warn!(
            millis,
            in_time,
            vendor_records_dropped = vendor_records,
            audit_spool_bytes = spooled,
            file_bytes_not_delivered = file_lag,
            "stopped with data not delivered: audit events stay in the spool and file lines are read again at the next start; vendor records of OTLP and stdin are lost"
        );
    }
    info!("stopped");
    report
}

/// The engine for a configuration: its key file's key, or the process's
/// ephemeral key when it names none.
fn engine(cfg: &Config, ephemeral_key: &PseudonymKey) -> Result<Engine, crate::Error> {
    let key = match &cfg.pseudonym_key_file {
        Some(p) => PseudonymKey::from_file(p)?,
        None => ephemeral_key.clone(),
    };
    Engine::new(&build_rules(&cfg.rules)?, key)
}

/// `scrubs_config_reloads_total{result}` and
/// `scrubs_config_last_reload_successful`, created at start-up so that the
/// first rejected reload is an increase an alert can see.
struct Reloads {
    applied: Handle,
    rejected: Handle,
    last_ok: Handle,
}

impl Reloads {
    fn new(m: &Metrics) -> Reloads {
        const HELP: &str = "SIGHUP reloads, by result (applied, rejected).";
        let last_ok = m.gauge(
            "scrubs_config_last_reload_successful",
            "1 when the last SIGHUP reload was applied (or none was tried), 0 when it was rejected.",
            &[],
        );
        last_ok.store(1, Ordering::Relaxed);
        Reloads {
            applied: m.counter(
                "scrubs_config_reloads_total",
                HELP,
                &[("result", "applied")],
            ),
            rejected: m.counter(
                "scrubs_config_reloads_total",
                HELP,
                &[("result", "rejected")],
            ),
            last_ok,
        }
    }

    fn record(&self, applied: bool) {
        let counter = if applied {
            &self.applied
        } else {
            &self.rejected
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.last_ok.store(u64::from(applied), Ordering::Relaxed);
    }
}
