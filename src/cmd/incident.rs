//! `scrubs audit incident open|list|close`: the breach clock (see
//! `scrubs::sinks::audit::incident`).
//!
//! The audit topic, its brokers and security settings, and the rules come
//! from the sidecar's configuration file (`--config`), so that an operator
//! writes to the same topic with the same credentials, and the operator's
//! text is checked by the same rules the sidecar redacts with. Records are
//! sealed into their own chain, whose state (and a spool, should Kafka not
//! answer) lives in `--state-dir`: never the sidecar's own spool directory.
//!
//! Exit status: 0 done; 1 the record could not be delivered to Kafka (it
//! waits in `--state-dir` and the next command with that directory delivers
//! it first); 2 an error (a bad argument or configuration, text that would
//! be redacted, an unknown or closed incident, Kafka unreadable).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use scrubs::config::Config;
use scrubs::decode::container::parse_rfc3339;
use scrubs::metrics::Metrics;
use scrubs::sinks::audit::incident::{
    close_event, format_rfc3339, new_id, open_event, read_incidents, Opening,
};
use scrubs::sinks::audit::{parse_duration, AuditConfig};
use scrubs::topology::Context;
use scrubs::{Category, Engine, PseudonymKey};

use super::CliError;

/// Record, list and close PHI incidents on the audit topic.
#[derive(Debug, Args)]
pub struct IncidentArgs {
    #[command(subcommand)]
    command: IncidentCommand,
    /// The sidecar's configuration file: the audit topic, brokers,
    /// security settings, chain key and rules are taken from it.
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,
    /// How long to wait for Kafka: reading the topic, and delivering a
    /// record before it is left in --state-dir (e.g. `10s`, `1m`).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, global = true)]
    timeout: Duration,
}

#[derive(Debug, Subcommand)]
enum IncidentCommand {
    /// Record the discovery of PHI where it should not be: starts the
    /// 60-day notification clock (45 CFR 164.404(b)).
    Open {
        /// What happened, without patient data (refused if any rule would
        /// redact it).
        #[arg(long)]
        summary: String,
        /// The PHI categories involved, comma-separated rule-file names
        /// (`ssn,name,email`; `scrubs rules list` shows them).
        #[arg(long, value_delimiter = ',', required = true)]
        categories: Vec<String>,
        /// Where the PHI was found: a service, sidecar or vendor name.
        #[arg(long)]
        source: String,
        /// Who records the incident.
        #[arg(long)]
        by: String,
        /// When it was discovered, RFC 3339 (`2026-12-06T09:30:00Z`);
        /// default now.
        #[arg(long, value_name = "TIME")]
        discovered: Option<String>,
        /// This command's chain state and spool (not the sidecar's
        /// `spool_dir`).
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
    },
    /// Record an incident's resolution.
    Close {
        /// The incident id (`scrubs audit incident list` shows it).
        #[arg(long)]
        id: String,
        /// How it was resolved, without patient data.
        #[arg(long)]
        resolution: String,
        /// Who closes it.
        #[arg(long)]
        by: String,
        /// As for `open`.
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
    },
    /// Show open incidents with the days left to notify, read from the
    /// audit topic.
    List {
        /// Show closed incidents too.
        #[arg(long)]
        all: bool,
    },
}

fn error(msg: impl Into<String>) -> CliError {
    CliError::Io(std::io::Error::other(msg.into()))
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Refuses operator text that any rule of the configuration would redact,
/// naming the rules (never the text).
fn check_text(engine: &Engine, flag: &str, text: &str) -> Result<(), CliError> {
    let mut scratch = engine.scratch();
    if engine.redact_str(&mut scratch, text) == text {
        return Ok(());
    }
    let mut rules = Vec::new();
    scratch.drain_counts(|i, _| rules.push(engine.rule(i).id.to_string()));
    rules.sort();
    rules.dedup();
    Err(error(format!(
        "{flag} would be redacted by rule(s) {}: incident records must not carry patient data; describe it without them",
        rules.join(", ")
    )))
}

pub fn run(args: IncidentArgs) -> Result<ExitCode, CliError> {
    let (cfg, audit) = super::audit::load_audit_config(args.config.as_deref())?;
    match args.command {
        IncidentCommand::List { all } => list(&audit, args.timeout, all),
        IncidentCommand::Open {
            summary,
            categories,
            source,
            by,
            discovered,
            state_dir,
        } => {
            let engine = engine(&cfg)?;
            for (flag, text) in [
                ("--summary", &summary),
                ("--source", &source),
                ("--by", &by),
            ] {
                check_text(&engine, flag, text)?;
            }
            let categories = categories
                .iter()
                .map(|c| {
                    Category::parse(c.trim()).ok_or_else(|| {
                        let known: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
                        error(format!(
                            "--categories: unknown category {c:?}; one of {}",
                            known.join(", ")
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let now = now_nanos();
            let discovered_unix_nano = match &discovered {
                Some(t) => parse_rfc3339(t.as_bytes()).ok_or_else(|| {
                    error("--discovered: expected an RFC 3339 time such as 2026-12-06T09:30:00Z")
                })?,
                None => now,
            };
            if discovered_unix_nano > now + 60_000_000_000 {
                return Err(error("--discovered is in the future"));
            }
            let id = new_id();
            let opening = Opening {
                discovered_unix_nano,
                opened_by: by,
                categories,
                source,
                summary,
            };
            let ev = open_event(&id, &opening, now);
            let notify_by = ev.record["notify_by"].as_str().unwrap_or("").to_string();
            let delivered = deliver(&audit, &state_dir, args.timeout, ev)?;
            println!(
                "incident {id} opened: discovered {}, notify by {notify_by} (60 days)",
                format_rfc3339(discovered_unix_nano)
            );
            Ok(delivered)
        }
        IncidentCommand::Close {
            id,
            resolution,
            by,
            state_dir,
        } => {
            let engine = engine(&cfg)?;
            for (flag, text) in [("--resolution", &resolution), ("--by", &by)] {
                check_text(&engine, flag, text)?;
            }
            let log = read_incidents(&audit, args.timeout)
                .map_err(|e| error(format!("reading the audit topic: {e}")))?;
            match log.get(&id) {
                None => return Err(error(format!("no incident {id} on topic {}", audit.topic))),
                Some(i) if i.closed.is_some() => {
                    return Err(error(format!("incident {id} is already closed")))
                }
                Some(_) => {}
            }
            let delivered = deliver(
                &audit,
                &state_dir,
                args.timeout,
                close_event(&id, &by, &resolution, now_nanos()),
            )?;
            println!("incident {id} closed");
            Ok(delivered)
        }
    }
}

fn engine(cfg: &Config) -> Result<Engine, CliError> {
    let set = scrubs::config::build_rules(&cfg.rules)?;
    Ok(Engine::new(&set, PseudonymKey::ephemeral())?)
}

/// Seals the event into the incident chain of `state_dir` and waits for
/// Kafka. Exit 0 once Kafka holds it, 1 when it is left in the spool.
fn deliver(
    audit: &AuditConfig,
    state_dir: &Path,
    timeout: Duration,
    ev: scrubs::pipeline::AuditEvent,
) -> Result<ExitCode, CliError> {
    if state_dir == audit.spool_dir {
        return Err(error(
            "--state-dir must not be the sidecar's audit spool_dir: one process per spool directory",
        ));
    }
    let mut cfg = audit.clone();
    cfg.spool_dir = state_dir.to_path_buf();
    cfg.check_topic_config = false;
    cfg.delivery_timeout = cfg.delivery_timeout.min(timeout);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let metrics = Metrics::new();
    rt.block_on(async {
        let sink = cfg
            .build(&Context::new("audit", Arc::clone(&metrics)))
            .await
            .map_err(|e| error(e.to_string()))?;
        sink.send(ev)
            .await
            .map_err(|e| error(format!("the incident record could not be recorded: {e}")))?;
        // Shutdown replays the spool to Kafka when it answers: a record
        // spooled now, or by an earlier run, is delivered before exit.
        sink.shutdown(timeout).await;
        Ok::<_, CliError>(())
    })?;
    let delivered = metrics
        .value("scrubs_audit_events_total", &[("result", "delivered")])
        .unwrap_or(0)
        + metrics
            .value("scrubs_audit_replayed_total", &[])
            .unwrap_or(0);
    if metrics.value("scrubs_audit_spool_bytes", &[]).unwrap_or(0) > 0 || delivered == 0 {
        eprintln!(
            "scrubs: Kafka did not acknowledge the record within {timeout:?}; it is kept in {} and the next `scrubs audit incident open|close` with this --state-dir delivers it first",
            state_dir.display()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn list(audit: &AuditConfig, timeout: Duration, all: bool) -> Result<ExitCode, CliError> {
    let log = read_incidents(audit, timeout)
        .map_err(|e| error(format!("reading the audit topic: {e}")))?;
    let now = now_nanos();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(
        out,
        "{:<16}  {:<20}  {:<20}  {:>9}  {:<6}  {:<24}  {:<16}  SUMMARY",
        "ID", "DISCOVERED", "NOTIFY BY", "DAYS LEFT", "STATUS", "CATEGORIES", "SOURCE"
    )?;
    let mut open = 0;
    let mut overdue = 0;
    for i in log.incidents() {
        let closed = i.closed.is_some();
        if closed && !all {
            continue;
        }
        let left = i.days_left(now);
        let late = i.overdue(now);
        if !closed {
            open += 1;
            overdue += usize::from(late);
        }
        let status = match (closed, late) {
            (true, _) => "closed",
            (false, true) => "OVERDUE",
            (false, false) => "open",
        };
        let days = if closed {
            "-".to_string()
        } else {
            left.to_string()
        };
        writeln!(
            out,
            "{:<16}  {:<20}  {:<20}  {:>9}  {:<6}  {:<24}  {:<16}  {}",
            i.id,
            format_rfc3339(i.discovered_unix_nano),
            format_rfc3339(i.notify_by_unix_nano),
            days,
            status,
            i.categories.join(","),
            i.source,
            i.summary
        )?;
    }
    writeln!(
        out,
        "{open} open incident(s), {overdue} past the notification deadline"
    )?;
    if log.unreadable > 0 {
        writeln!(
            out,
            "{} incident record(s) could not be read",
            log.unreadable
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
