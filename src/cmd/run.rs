//! `scrubs run` and `scrubs validate`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use scrubs::admin::{self, Ready, Watchdog};
use scrubs::config::{build_rules, Config, SourceConfig};
use scrubs::metrics::{Handle, Metrics};
use scrubs::pipeline::classify::Selector;
use scrubs::pipeline::router::{AuditOut, Handler, Pipeline, RouterConfig, VendorOut};
use scrubs::pipeline::{LagLimit, Lane, LineBatch, VendorLane};
use scrubs::sinks::audit::AuditSink;
use scrubs::sinks::otlp::{Signal, VendorSink};
use scrubs::sources::{file, otlp, stdin};
use scrubs::{Engine, PseudonymKey};
use tokio::sync::{mpsc, watch, Mutex};
use tracing::{error, info, warn, Instrument};

use super::CliError;

/// Tasks taking line batches from the queue (see where they are spawned).
const PIPELINE_WORKERS: usize = 4;

/// Threads of the runtime's blocking pool (see where the runtime is built).
const BLOCKING_THREADS: usize = 4;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file (see deploy/scrubs.yaml).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The configuration file to check.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// Check the file alone: skip the secrets, key and certificate files,
    /// directories and rule files it names (for linting a configuration in
    /// CI, away from the machine it runs on). The built-in pack is still
    /// compiled.
    #[arg(long)]
    no_environment: bool,
}

/// Loads and checks a configuration, printing every problem; `run` checks
/// the environment as `validate` does, so both report the same problems the
/// same way before anything starts.
fn load(path: &std::path::Path, environment: bool) -> Option<Config> {
    match Config::load_checked(path, environment) {
        Ok(c) => Some(c),
        Err(problems) => {
            eprintln!("scrubs: {} problem(s) in the configuration", problems.len());
            for p in problems {
                eprintln!("  {p}");
            }
            None
        }
    }
}

pub fn validate(args: ValidateArgs) -> Result<ExitCode, CliError> {
    match load(&args.config, !args.no_environment) {
        Some(cfg) => {
            println!(
                "{}: ok ({} source(s), {} vendor(s), audit {}{}{})",
                args.config.display(),
                cfg.sources.len(),
                cfg.vendors.len(),
                if cfg.audit.is_some() { "on" } else { "off" },
                if cfg.rules.builtin {
                    ""
                } else {
                    ", built-in HIPAA pack OFF"
                },
                if args.no_environment {
                    "; secrets, files and directories not checked (--no-environment)"
                } else {
                    ""
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        None => Ok(ExitCode::from(2)),
    }
}

pub fn run(args: RunArgs) -> Result<ExitCode, CliError> {
    limit_malloc_arenas();
    scrubs::logging::init();
    let Some(cfg) = load(&args.config, true) else {
        return Ok(ExitCode::from(2));
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // File reads, checkpoint and spool writes and OTLP decoding run on
        // the blocking pool. Every thread that allocates can take its own
        // malloc arena, whose high-water mark stays resident, so a small
        // pool (tokio's default allows 512) keeps peak RSS down; a task
        // waits for a free thread rather than making a new one.
        .max_blocking_threads(BLOCKING_THREADS)
        .thread_name("scrubs-worker")
        .enable_all()
        .build()?;
    match rt.block_on(serve(cfg, args.config)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            error!(error = %e, "scrubs stopped");
            eprintln!("scrubs: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

/// Re-executes scrubs once with `MALLOC_ARENA_MAX=2` unless the variable is
/// already set (an operator's value is kept). glibc gives each thread that
/// allocates while another holds the lock an arena of its own, up to eight
/// per core, and each arena's high-water mark stays resident: with two
/// runtime threads, the blocking pool and librdkafka's threads, that was a
/// third of the peak RSS (58.8 MiB at saturation, 47.5 MiB with two arenas,
/// at the same throughput). Setting the variable before the process starts
/// is the only way to change it without `unsafe` (`mallopt`). This runs
/// before any thread is started; if the exec fails (no `/proc/self/exe`),
/// scrubs carries on in this process. Other C libraries ignore the variable.
fn limit_malloc_arenas() {
    use std::os::unix::process::CommandExt;

    const VAR: &str = "MALLOC_ARENA_MAX";
    if std::env::var_os(VAR).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut cmd = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    // `exec` only returns on failure.
    let err = cmd.args(args).env(VAR, "2").exec();
    eprintln!("scrubs: could not re-execute with {VAR}=2 ({err}); continuing");
}

async fn serve(cfg: Config, config_path: PathBuf) -> Result<(), String> {
    let Config {
        data_dir,
        rules: _,
        pseudonym_key_file: _,
        sources,
        audit,
        vendors,
        admin: admin_cfg,
        limits,
        shutdown,
        resource,
    } = &cfg;
    let metrics = Metrics::new();
    let ready = Ready::default();
    let watchdog = Watchdog::new(admin_cfg.stall_timeout);
    let admin_addr = admin::spawn(
        admin_cfg.address,
        metrics.clone(),
        ready.clone(),
        watchdog.clone(),
    )?;
    info!(address = %admin_addr, "admin endpoint listening");
    // The data path's heartbeat: if its runtime stops running tasks (every
    // worker thread stuck), `/healthz` says so.
    let heartbeat = {
        let watchdog = watchdog.clone();
        tokio::spawn(async move {
            loop {
                watchdog.beat();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    // Without a key file, pseudonyms use a random key made once here and
    // kept for the life of the process, SIGHUP reloads included: a token
    // that changed on reload would stop correlating one patient's records.
    let ephemeral_key = PseudonymKey::ephemeral();
    let engine = engine(&cfg, &ephemeral_key).map_err(|e| e.to_string())?;
    let reloads = Reloads::new(&metrics);
    if engine.key_is_ephemeral() {
        warn!("no pseudonym_key_file: pseudonyms use a random key for this process only");
    }
    info!(rules = engine.rule_count(), "rules compiled");
    if !cfg.rules.builtin {
        warn!(
            rules = engine.rule_count(),
            "the built-in HIPAA pack is off (rules.builtin: false): only the rules of rules.files are in force"
        );
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("data_dir {}: {e}", data_dir.display()))?;

    let audit_sink = match audit {
        Some(a) => Some(Arc::new(
            AuditSink::start(&a.kafka, metrics.clone())
                .await
                .map_err(|e| audit_start_error(&e.to_string(), &a.kafka))?,
        )),
        None => None,
    };
    let mut vendor_sinks = Vec::new();
    for v in vendors {
        // The export task ends by itself after `shutdown` below.
        let (sink, _task) = VendorSink::start(v, metrics.clone())?;
        vendor_sinks.push(Arc::new(sink));
    }
    let selector = audit
        .as_ref()
        .map(|a| Selector::new(&a.select))
        .unwrap_or_default();
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
            audit_to_vendors: audit.as_ref().is_none_or(|a| a.to_vendors),
            memory_budget_bytes: limits.memory_budget_bytes,
            resource: resource
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        },
    ));
    pipeline.set_watchdog(watchdog.clone());

    // Sources.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (tx, rx) = mpsc::channel::<LineBatch>(limits.queue_batches);
    let mut line_tasks = Vec::new();
    let mut lane_workers = Vec::new();
    let mut servers = Vec::new();
    let mut only_stdin = true;
    for (name, src) in sources {
        match src {
            SourceConfig::File(f) => {
                only_stdin = false;
                // One read position per destination (see
                // `scrubs::pipeline::lane`): the audit lane on the shared
                // queue, and one lane per vendor with its own queue and
                // workers, so that a vendor that makes its lane wait never
                // holds a worker the audit lane needs.
                // Vendors that take no logs get no lane: nothing of a file
                // would reach them.
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
                    line_tasks.push(file::spawn_lane(
                        name.clone(),
                        f.clone(),
                        data_dir.clone(),
                        lane,
                        tx.clone(),
                        metrics.clone(),
                        stop_rx.clone(),
                    )?);
                }
                for (k, &i) in log_vendors.iter().enumerate() {
                    let v = &vendors[i];
                    let lane = VendorLane::new(
                        &metrics,
                        name,
                        i,
                        &v.name,
                        audit.is_none() && k == 0,
                        LagLimit {
                            max_bytes: v.lag_limit.max_bytes,
                            max_failing: v.lag_limit.max_failing,
                        },
                    );
                    let (lane_tx, lane_rx) = mpsc::channel::<LineBatch>(1);
                    line_tasks.push(file::spawn_lane(
                        name.clone(),
                        f.clone(),
                        data_dir.clone(),
                        Lane::Vendor(lane.clone()),
                        lane_tx,
                        metrics.clone(),
                        stop_rx.clone(),
                    )?);
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
            SourceConfig::Stdin(_) => {
                line_tasks.push(stdin::spawn_stdin(
                    name.clone(),
                    limits.max_record_bytes,
                    stdin::StdinBatching::default(),
                    tx.clone(),
                    metrics.clone(),
                    stop_rx.clone(),
                ));
            }
            SourceConfig::Otlp(o) => {
                only_stdin = false;
                let handler = Arc::new(Handler(pipeline.clone()));
                let (http, grpc, task) =
                    otlp::serve(o.clone(), handler, metrics.clone(), stop_rx.clone()).await?;
                info!(source = %name, http = ?http, grpc = ?grpc, "OTLP receiver listening");
                servers.push(task);
            }
        }
    }
    // Liveness counts batches queued for the workers that no worker has
    // taken (a weak sender, so that the queue still closes when the sources
    // end), and excuses waiting while the audit spool is full: that is
    // backpressure by design, which `/readyz` reports, and a restart would
    // not cure it. Readiness asks the audit path the same question; the
    // spool-full gauge is read rather than the sink, so that no probe holds
    // the sink (the drain below shuts it down as its last owner).
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

    // Four workers on the two runtime threads. The engine is synchronous
    // and CPU-bound, so at most two redact at once (one per core); the
    // others meanwhile wait for Kafka or for the previous batch's
    // checkpoint (`LineBatch::earlier_committed`) without holding a thread.
    // With two, both could be waiting and nothing redacting.
    let rx = Arc::new(Mutex::new(rx));
    let mut workers = Vec::new();
    for i in 0..PIPELINE_WORKERS {
        let rx = rx.clone();
        let pipeline = pipeline.clone();
        workers.push(tokio::spawn(
            async move {
                loop {
                    // The ticket is taken under the queue lock, so ticket
                    // order is queue order (audit events keep source order).
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

    // Ready now: the sources are open, and the audit path's check runs at
    // every probe. Vendors are not asked: a vendor outage must not take the
    // pod out of service (45 CFR 164.306(a)); it makes the file lanes lag
    // and is counted instead. Their health and Kafka's are checked once, in
    // the background, for the log only.
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

    // Signals.
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    // A task awaited here is taken out of its slot, so that the drain below
    // does not await it a second time (a JoinHandle polled after it
    // completed panics).
    let mut line_tasks: Vec<Option<_>> = line_tasks.into_iter().map(Some).collect();
    let mut sources_done = Box::pin(async {
        if only_stdin {
            for slot in line_tasks.iter_mut() {
                if let Some(t) = slot.as_mut() {
                    let _ = t.await;
                }
                *slot = None;
            }
        } else {
            std::future::pending::<()>().await;
        }
    });
    loop {
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM: draining"); break; }
            _ = int.recv() => { info!("SIGINT: draining"); break; }
            _ = &mut sources_done => { info!("input ended: draining"); break; }
            _ = hup.recv() => reload(&config_path, &pipeline, &ephemeral_key, &reloads),
        }
    }

    // Drain, within one deadline for everything (sources, workers,
    // vendors, audit), never a deadline per sink one after the other: the
    // kubelet kills the container at the end of the pod's grace period,
    // and what is not spooled or checkpointed by then is lost.
    let drain_started = std::time::Instant::now();
    let deadline = tokio::time::Instant::now() + shutdown.drain_deadline;
    ready.set(false);
    // The first checks hold sink handles; end them so that the sinks below
    // are the last owners and can be shut down.
    first_checks.abort();
    let _ = first_checks.await;
    // Stop the sources: they collect the acknowledgements of the batches
    // in flight and write their checkpoints; the workers empty the queue.
    let _ = stop_tx.send(true);
    drop(sources_done);
    for t in line_tasks
        .into_iter()
        .flatten()
        .chain(servers)
        .chain(workers)
    {
        let _ = tokio::time::timeout_at(deadline, t).await;
    }
    // The file sources have written their checkpoints: a vendor lane's
    // batch still waiting for its vendor was not acknowledged and is read
    // again after a restart. What the lanes already queued is flushed by
    // the vendor sinks' shutdown below.
    for w in lane_workers {
        w.abort();
        let _ = w.await;
    }
    drop(pipeline);
    // Then every sink at once, each told to finish early enough that its
    // own last steps fit before the deadline: a vendor sink abandons its
    // queue at its deadline and then waits up to VENDOR_ABORT_GRACE for
    // its task; the audit sink spools what Kafka has not acknowledged at
    // its deadline, then stops its tasks and flushes the producer.
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let vendor_names: Vec<String> = vendor_sinks.iter().map(|v| v.name().to_string()).collect();
    let mut sinks = Vec::new();
    for v in vendor_sinks {
        if let Ok(v) = Arc::try_unwrap(v) {
            let budget = left.saturating_sub(VENDOR_ABORT_GRACE);
            sinks.push(tokio::spawn(async move { v.shutdown(budget).await }));
        }
    }
    if let Some(a) = audit_sink {
        if let Ok(a) = Arc::try_unwrap(a) {
            let budget = left
                .saturating_sub(AUDIT_FINISH)
                .max(Duration::from_millis(100));
            sinks.push(tokio::spawn(async move { a.shutdown(budget).await }));
        }
    }
    let mut in_time = true;
    for t in sinks {
        in_time &= tokio::time::timeout_at(deadline + DEADLINE_SLACK, t)
            .await
            .is_ok();
    }
    heartbeat.abort();
    report_drain(&metrics, &vendor_names, drain_started.elapsed(), in_time);
    Ok(())
}

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

/// Logs what the drain could not deliver, from the metrics (counts and
/// byte totals only): records abandoned in vendor queues (counted
/// `scrubs_vendor_dropped_total{reason="shutdown"}`), audit events left in
/// the spool (replayed by the next start with the same data directory), and
/// file bytes not yet delivered (read again by the next start).
fn report_drain(metrics: &Metrics, vendors: &[String], took: Duration, in_time: bool) {
    let mut vendor_records = 0;
    for v in vendors {
        let n = metrics
            .value(
                scrubs::metrics::VENDOR_DROPPED,
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
    let millis = took.as_millis() as u64;
    if vendor_records == 0 && spooled == 0 && file_lag == 0 && in_time {
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
}

/// The audit sink's start-up error, prefixed `audit:` once (most of its
/// messages already name their setting, `audit.chain_key_file: ...`). A
/// TLS file that the checks before start-up accepted can still be refused
/// by librdkafka (a certificate it cannot use); its error names the
/// librdkafka property, so the configured file is named too.
fn audit_start_error(msg: &str, kafka: &scrubs::sinks::audit::AuditConfig) -> String {
    let mut out = if msg.starts_with("audit") {
        msg.to_string()
    } else {
        format!("audit: {msg}")
    };
    if let Some(s) = &kafka.security {
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

/// The engine for a configuration: its key file's key, or the process's
/// ephemeral key when it names none.
fn engine(cfg: &Config, ephemeral_key: &PseudonymKey) -> Result<Engine, scrubs::Error> {
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

/// SIGHUP: recompile the rules; a bad rule set is rejected and the old one
/// stays in force.
fn reload(
    config_path: &std::path::Path,
    pipeline: &Pipeline,
    ephemeral_key: &PseudonymKey,
    reloads: &Reloads,
) {
    match Config::load(config_path) {
        Ok(cfg) => match engine(&cfg, ephemeral_key) {
            Ok(engine) => {
                info!(rules = engine.rule_count(), "SIGHUP: rules reloaded");
                pipeline.reload(engine);
                reloads.record(true);
            }
            Err(e) => {
                reloads.record(false);
                error!(error = %e, "SIGHUP: new rules rejected; the previous rules stay in force")
            }
        },
        Err(problems) => {
            reloads.record(false);
            for p in &problems {
                error!(problem = %p, "SIGHUP: configuration rejected; the previous rules stay in force");
            }
        }
    }
}
