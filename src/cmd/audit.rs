//! `scrubs audit verify`: reads the audit topic and reports gaps,
//! reordering, duplicates and altered events, using the per-stream sequence
//! numbers and the hash chain (see `scrubs::sinks::audit::verify`).
//!
//! Output, on stdout: one line per problem,
//! `stream=S seq=N problem=gap|reorder|duplicate|conflict|altered|broken_chain detail=...`,
//! then `verified N events in S streams: K problems`. Exit status 0 when
//! clean, 1 when there are problems, 2 on error (or when the chain is keyed
//! and no `--chain-key-file` was given, so hashes could not be checked).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use scrubs::sinks::audit::{parse_duration, verify_topic, ChainKey, TopicReadOptions};

use super::CliError;

/// Tools for the Kafka audit topic.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The breach clock: record PHI incidents on the audit topic (open,
    /// close) and list the open ones with the days left to notify.
    Incident(super::incident::IncidentArgs),
    /// The map of where PHI flows: read the sidecars' flow records from the
    /// audit topic and render them (table, DOT, Mermaid, SVG).
    Flowmap(super::flowmap::FlowmapArgs),
    /// Read the whole audit topic and check every stream's sequence numbers
    /// and hash chain: report gaps, reordering, duplicates and altered events.
    Verify {
        /// Kafka bootstrap servers, `host:port[,host:port...]`.
        #[arg(long, value_name = "HOST:PORT")]
        brokers: String,
        /// The audit topic.
        #[arg(long, value_name = "TOPIC")]
        topic: String,
        /// The chain key file scrubs was configured with
        /// (`audit.chain_key_file`); needed to check keyed (HMAC) chains.
        #[arg(long, value_name = "PATH")]
        chain_key_file: Option<PathBuf>,
        /// Read from the first offset of every partition (the default and
        /// only mode: the chain can only be checked from its start).
        #[arg(long, default_value_t = true)]
        from_beginning: bool,
        /// Give up when the broker sends nothing for this long before every
        /// partition is read to its end (e.g. `10s`, `500ms`, `2m`).
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
        timeout: Duration,
        /// An extra librdkafka client property, for security settings:
        /// `-X security.protocol=sasl_ssl -X sasl.mechanism=SCRAM-SHA-512
        /// -X sasl.username=... -X ssl.ca.location=...`. Repeatable. (Prefer
        /// `-X sasl.password=...` only from a protected wrapper script.)
        #[arg(short = 'X', long = "property", value_name = "KEY=VALUE", value_parser = parse_property)]
        properties: Vec<(String, String)>,
        /// Exit 1 on identical re-sends too (by default they are reported
        /// and exit 0: audit delivery is at least once, and a copy of an
        /// event changes nothing).
        #[arg(long)]
        strict: bool,
    },
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err("expected KEY=VALUE".into()),
    }
}

fn error(msg: String) -> CliError {
    CliError::Io(std::io::Error::other(msg))
}

/// The sidecar's configuration and its `audit.kafka` section, for the
/// commands that write to or read the audit topic with the sidecar's own
/// settings (`incident`, `flowmap`).
pub(super) fn load_audit_config(
    path: Option<&std::path::Path>,
) -> Result<(scrubs::config::Config, scrubs::sinks::audit::AuditConfig), CliError> {
    let path =
        path.ok_or_else(|| error("--config is required: the sidecar's scrubs.yaml".into()))?;
    // Nothing outside the file is checked (the sidecar's log directories
    // need not exist where this runs); the secrets it names are read when
    // the Kafka client is made.
    let cfg = scrubs::config::Config::load_checked(path, false).map_err(|problems| {
        error(format!(
            "{}: {} problem(s): {}",
            path.display(),
            problems.len(),
            problems.join("; ")
        ))
    })?;
    let audit = cfg
        .audit
        .as_ref()
        .map(|a| a.kafka.clone())
        .ok_or_else(|| error(format!("{}: no audit section", path.display())))?;
    Ok((cfg, audit))
}

pub fn run(args: AuditArgs) -> Result<ExitCode, CliError> {
    match args.command {
        AuditCommand::Incident(args) => super::incident::run(args),
        AuditCommand::Flowmap(args) => super::flowmap::run(args),
        AuditCommand::Verify {
            brokers,
            topic,
            chain_key_file,
            from_beginning: _,
            timeout,
            properties,
            strict,
        } => {
            let key = match &chain_key_file {
                Some(p) => Some(ChainKey::from_file(p).map_err(error)?),
                None => None,
            };
            let opts = TopicReadOptions {
                brokers,
                topic,
                properties,
                idle_timeout: timeout,
            };
            let report =
                verify_topic(&opts, key).map_err(|e| error(format!("audit verify: {e}")))?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            for p in &report.problems {
                writeln!(out, "{p}")?;
            }
            writeln!(out, "{}", report.summary())?;
            out.flush()?;
            // Gaps, reordering, conflicts, alterations and broken chains
            // fail; identical re-sends only with --strict.
            if report.integrity_problems() > 0 || (strict && !report.is_clean()) {
                return Ok(ExitCode::from(1));
            }
            if report.unchecked_hashes > 0 {
                eprintln!(
                    "scrubs: {} events use a keyed (HMAC) chain; give --chain-key-file to check their hashes",
                    report.unchecked_hashes
                );
                return Ok(ExitCode::from(2));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
