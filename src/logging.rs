//! scrubs' own log: one JSON object per line for log pipelines, or text for
//! a person at a terminal.
//!
//! In a pod, stderr is a pipe that the container runtime writes to a file
//! which Fluent Bit, Vector or the OpenTelemetry Collector parse. Text with
//! ANSI colour codes breaks their parsers and runs several facts together in
//! one string, so when stderr is not a terminal scrubs writes JSON: one
//! object per event, with `timestamp`, `level`, `message`, then each of the
//! event's fields under its own key (`"rules":412`, `"vendor":"acme"`), and
//! the spans it happened in under `spans`. The fields are the same as in
//! text mode: rule ids, names, counts, offsets, paths and error codes, never
//! event content.
//!
//! `SCRUBS_LOG_FORMAT` chooses explicitly (`json`, `text`, or `auto`, the
//! default); `SCRUBS_LOG` sets the level filter (`info` by default,
//! `tracing_subscriber::EnvFilter` syntax). Text mode colours only a
//! terminal.

use std::io::IsTerminal;

/// The environment variable that chooses the format.
pub const FORMAT_VAR: &str = "SCRUBS_LOG_FORMAT";

/// The environment variable that sets the level filter.
pub const LEVEL_VAR: &str = "SCRUBS_LOG";

/// How scrubs writes its own log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines; coloured only on a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The format for a `SCRUBS_LOG_FORMAT` value (`None` when unset) and
    /// whether stderr is a terminal. An unknown value is an error that
    /// names the accepted ones (never the value itself).
    pub fn choose(var: Option<&str>, stderr_is_terminal: bool) -> Result<LogFormat, String> {
        let auto = if stderr_is_terminal {
            LogFormat::Text
        } else {
            LogFormat::Json
        };
        match var.map(str::trim) {
            None | Some("") => Ok(auto),
            Some(v) if v.eq_ignore_ascii_case("auto") => Ok(auto),
            Some(v) if v.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
            Some(v) if v.eq_ignore_ascii_case("text") => Ok(LogFormat::Text),
            Some(_) => Err(format!("{FORMAT_VAR} must be json, text or auto")),
        }
    }
}

/// Installs the global subscriber on stderr. Returns the format chosen.
/// An unknown `SCRUBS_LOG_FORMAT` falls back to `auto` and is reported once
/// in the log itself, so that a typo in a manifest does not stop the
/// sidecar.
pub fn init() -> LogFormat {
    let terminal = std::io::stderr().is_terminal();
    let var = std::env::var(FORMAT_VAR).ok();
    let (format, problem) = match LogFormat::choose(var.as_deref(), terminal) {
        Ok(f) => (f, None),
        Err(p) => (
            LogFormat::choose(None, terminal).unwrap_or(LogFormat::Json),
            Some(p),
        ),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env(LEVEL_VAR)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(terminal).try_init(),
        LogFormat::Json => builder
            .json()
            // The event's fields at the top level next to `message`, not
            // nested under `fields`: one key per fact for log queries.
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
    };
    if let Some(p) = problem {
        tracing::warn!(variable = FORMAT_VAR, "{p}; using auto");
    }
    format
}

#[cfg(test)]
mod tests {
    use super::LogFormat;

    #[test]
    fn json_unless_a_terminal_or_chosen() {
        assert_eq!(LogFormat::choose(None, false), Ok(LogFormat::Json));
        assert_eq!(LogFormat::choose(None, true), Ok(LogFormat::Text));
        assert_eq!(LogFormat::choose(Some("auto"), true), Ok(LogFormat::Text));
        assert_eq!(LogFormat::choose(Some(""), false), Ok(LogFormat::Json));
        assert_eq!(LogFormat::choose(Some("JSON"), true), Ok(LogFormat::Json));
        assert_eq!(LogFormat::choose(Some("text"), false), Ok(LogFormat::Text));
        let err = LogFormat::choose(Some("Maria Gonzalez"), false).unwrap_err();
        assert!(!err.contains("Maria"), "{err}");
    }
}
