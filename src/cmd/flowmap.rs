//! `scrubs audit flowmap`: the map of where patient data flows, read back
//! from the flow records every sidecar appends to the audit topic (see
//! `scrubs::sinks::audit::flowmap`), as a table, Graphviz DOT, Mermaid, or
//! SVG (through Graphviz's `dot`, when installed).
//!
//! `--since` starts the window under review; `--previous-since` starts the
//! window of the previous review (which ends where this one starts): flows
//! and PHI categories that are new since then are marked, and flows that
//! stopped are listed as gone.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use scrubs::decode::container::parse_rfc3339;
use scrubs::sinks::audit::flowmap::{read_flow_maps, render_dot, render_mermaid, render_table};
use scrubs::sinks::audit::parse_duration;

use super::CliError;

/// How to render the map.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Dot,
    Mermaid,
    Svg,
}

/// Render the map of where PHI flows, from the flow records on the audit topic.
#[derive(Debug, Args)]
pub struct FlowmapArgs {
    /// The sidecar's configuration file: the audit topic, brokers and
    /// security settings are taken from it.
    #[arg(long, value_name = "PATH")]
    config: PathBuf,
    /// The start of the window under review: an RFC 3339 time, or a
    /// duration before now (`30d`, `24h`).
    #[arg(long, value_name = "TIME|DURATION")]
    since: String,
    /// The start of the previous review's window (it ends at --since):
    /// what is new since then is marked.
    #[arg(long, value_name = "TIME|DURATION")]
    previous_since: Option<String>,
    /// table, dot (Graphviz), mermaid, or svg (needs Graphviz's `dot`).
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Write the map here instead of stdout.
    #[arg(long, short = 'o', value_name = "PATH")]
    output: Option<PathBuf>,
    /// How long to wait for Kafka while reading the topic.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
}

fn error(msg: impl Into<String>) -> CliError {
    CliError::Io(std::io::Error::other(msg.into()))
}

/// An RFC 3339 time, or a duration before `now`, as Unix nanoseconds.
fn when(flag: &str, s: &str, now: u64) -> Result<u64, CliError> {
    if let Some(t) = parse_rfc3339(s.as_bytes()) {
        return Ok(t);
    }
    match parse_duration(s) {
        Ok(d) => Ok(now.saturating_sub(d.as_nanos() as u64)),
        Err(_) => Err(error(format!(
            "{flag}: expected an RFC 3339 time (2026-12-01T00:00:00Z) or a duration before now (30d)"
        ))),
    }
}

pub fn run(args: FlowmapArgs) -> Result<ExitCode, CliError> {
    let (_, audit) = super::audit::load_audit_config(Some(&args.config))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let since = when("--since", &args.since, now)?;
    let mut windows = vec![(since, u64::MAX)];
    if let Some(p) = &args.previous_since {
        let prev = when("--previous-since", p, now)?;
        if prev >= since {
            return Err(error("--previous-since must be before --since"));
        }
        windows.push((prev, since));
    }
    let mut maps = read_flow_maps(&audit, args.timeout, &windows)
        .map_err(|e| error(format!("reading the audit topic: {e}")))?;
    let previous = if maps.len() > 1 { maps.pop() } else { None };
    let map = maps.pop().unwrap_or_default();
    let text = match args.format {
        Format::Table => {
            let mut t = render_table(&map, previous.as_ref());
            t.push_str(&format!(
                "{} flow record(s) read{}\n",
                map.records,
                previous
                    .as_ref()
                    .map(|p| format!(", {} in the previous review's window", p.records))
                    .unwrap_or_default()
            ));
            t.into_bytes()
        }
        Format::Dot => render_dot(&map, previous.as_ref()).into_bytes(),
        Format::Mermaid => render_mermaid(&map, previous.as_ref()).into_bytes(),
        Format::Svg => svg(&render_dot(&map, previous.as_ref()))?,
    };
    match &args.output {
        Some(p) => std::fs::write(p, &text)
            .map_err(|e| error(format!("{}: cannot write: {e}", p.display())))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&text)?;
            out.flush()?;
        }
    }
    if map.unreadable > 0 {
        eprintln!(
            "scrubs: {} flow record(s) could not be read",
            map.unreadable
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// DOT through Graphviz's `dot -Tsvg`.
fn svg(dot: &str) -> Result<Vec<u8>, CliError> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            error(format!(
                "--format svg needs Graphviz's `dot` ({e}); install graphviz, or use --format dot"
            ))
        })?;
    child
        .stdin
        .take()
        .ok_or_else(|| error("dot: no stdin"))?
        .write_all(dot.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(error(format!(
            "dot -Tsvg failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}
