//! The `file` source's configuration.
//!
//! ```yaml
//! sources:
//!   - name: app                       # metric label, audit `source`, checkpoint file name
//!     type: file
//!     include:                        # paths or globs (absolute paths recommended)
//!       - /var/log/app/app.log
//!       - /var/log/pods/*/*/*.log     # Kubernetes layout: <ns>_<pod>_<uid>/<container>/N.log
//!     exclude: ["*.gz", "*.zip"]      # globs matched against the full path
//!     start_at: beginning             # or `end`: only for files found at the very first start
//!     format: auto                    # auto | cri | docker | raw: the container runtime's log format
//!     multiline:                      # optional: join stack traces into one record
//!       start_pattern: '^\d{4}-\d{2}-\d{2}[T ]'   # a line matching this starts a record
//!       max_lines: 500
//!       timeout: 1s                   # flush a pending record after this long without a new line
//!     poll_interval: 250ms
//!     rotate_wait: 5s                 # keep reading a rotated-away file this long after its last growth
//!     fingerprint_bytes: 256
//!     max_line_bytes: 1MiB
//!     batch_max_lines: 4096
//!     batch_max_bytes: 1MiB
//!     max_inflight_batches: 4
//!     read_buffer: 256KiB
//! ```

use crate::units::{deserialize_bytes_usize, deserialize_duration};
pub use crate::units::{parse_bytes, parse_duration};
use std::time::Duration;

use crate::decode::container::LogFormat;
use serde::Deserialize;

/// A file-tail source: follows the files matching `include` (and not
/// `exclude`), forwards each complete line, and checkpoints its progress
/// under the data directory so that a restart neither loses nor repeats
/// lines.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// Paths or glob patterns (`*`, `?`, `[...]`, `**`) of the files to
    /// tail, for example `/var/log/app/*.log` or `/var/log/pods/*/*/*.log`.
    /// Globs are re-expanded every `poll_interval`, so files that appear
    /// later are picked up (and read from their beginning), and at once
    /// when a file read to its end is no longer the one at its path (a
    /// rename rotation: the new file's lines do not wait for the poll).
    /// Symbolic links
    /// are followed; a file reached by two paths is read once.
    pub include: Vec<String>,

    /// Glob patterns matched against the full path of every included file;
    /// a match is skipped. Use it for compressed rotations (`*.gz`) when
    /// `include` also matches rotated names.
    #[serde(default)]
    pub exclude: Vec<String>,

    /// Where to start in a file found at the very first start of this source
    /// (no checkpoint file yet): `beginning` (default) or `end` (skip what
    /// is already there). Files that appear later, and every file once a
    /// checkpoint exists, are read from their beginning or their
    /// checkpointed offset.
    #[serde(default)]
    pub start_at: StartAt,

    /// The format the lines are written in: `cri` (containerd, CRI-O: the
    /// files under `/var/log/pods/`), `docker` (Docker's json-file), `raw`
    /// (as the application wrote them), or `auto` (the default: decided per
    /// file from its first line read; a line is taken for CRI only if it
    /// starts with a full RFC 3339 time, a stream name and a `P`/`F` tag).
    /// In a runtime's format, the runtime's prefix is stripped from the
    /// record, partial lines are joined up to the final part (bounded by
    /// `max_line_bytes`), the runtime's time becomes the record's time and
    /// the stream its `log.iostream` attribute. A line that does not read
    /// in the file's format is passed on whole and counted.
    #[serde(default)]
    pub format: LogFormat,

    /// Joins multi-line records (stack traces) into one record. Absent: one
    /// record per line.
    #[serde(default)]
    pub multiline: Option<MultilineConfig>,

    /// How often the globs are re-expanded and idle files re-checked for
    /// growth, rotation and truncation (`"250ms"`). This is also the
    /// worst-case latency of a line at an idle file. Default 250ms.
    #[serde(
        default = "default_poll_interval",
        deserialize_with = "deserialize_duration"
    )]
    pub poll_interval: Duration,

    /// How long a file that was rotated away (renamed out of the globs or
    /// deleted) is kept open after it last grew, so that lines its writer
    /// appends before reopening the new file are not lost. Default 5s.
    #[serde(
        default = "default_rotate_wait",
        deserialize_with = "deserialize_duration"
    )]
    pub rotate_wait: Duration,

    /// How many leading bytes identify a file: its checkpoint is keyed by the
    /// SHA-256 of them, so a renamed, moved or copied file is recognised by
    /// content rather than inode. A file shorter than this is read at once
    /// and identified by its current content *and* its inode until it
    /// reaches this size. Files whose first `fingerprint_bytes` are
    /// identical (a long constant banner) can only be told apart by inode:
    /// raise this if yours start with one. Changing it keeps existing
    /// checkpoints valid. Default 256, between 16 and 65536.
    #[serde(default = "default_fingerprint_bytes")]
    pub fingerprint_bytes: usize,

    /// The longest line kept (`"1MiB"`). A longer line is cut at the last
    /// delimiter before the limit, the rest is skipped without being held in
    /// memory, and the cut is counted. With `multiline`, this bounds the
    /// whole record. Default 1 MiB.
    #[serde(
        default = "default_max_line_bytes",
        deserialize_with = "deserialize_bytes_usize"
    )]
    pub max_line_bytes: usize,

    /// The most lines (records) in one batch handed to the pipeline.
    /// Default 4096. The sinks take one batch of a source at a time (each
    /// waits for the previous one's checkpoint, so that a crash sends at
    /// most one batch twice), so larger batches carry more lines per Kafka
    /// round trip when the tail is behind; while it keeps up, a batch holds
    /// whatever arrived since the last read (10 ms), whatever this limit.
    #[serde(default = "default_batch_max_lines")]
    pub batch_max_lines: usize,

    /// The most line bytes in one batch (`"1MiB"`); a single longer record
    /// makes a batch on its own. Default 1 MiB.
    #[serde(
        default = "default_batch_max_bytes",
        deserialize_with = "deserialize_bytes_usize"
    )]
    pub batch_max_bytes: usize,

    /// Batches handed to the pipeline and not yet acknowledged. More lets
    /// the next batches be redacted while one waits for Kafka; after a
    /// crash (`kill -9`), the batches the pipeline had taken and not
    /// acknowledged are read again, at most this many, but at most one of
    /// them had reached a sink. 1 to 64, default 4.
    #[serde(default = "default_max_inflight_batches")]
    pub max_inflight_batches: usize,

    /// Bytes read from a file per system call (`"256KiB"`). Memory per
    /// actively read file is about `read_buffer + max_line_bytes`.
    /// Default 256 KiB.
    #[serde(
        default = "default_read_buffer",
        deserialize_with = "deserialize_bytes_usize"
    )]
    pub read_buffer: usize,
}

/// Where to start in a file that has no checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// Read the whole file.
    #[default]
    Beginning,
    /// Skip the content present when the file is first seen.
    End,
}

/// Joining of multi-line records.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// A regular expression (Rust `regex` syntax, matched against the line
    /// bytes, after the container runtime's prefix is stripped and partial
    /// lines joined, see `format`): a line that matches starts a new record; any other line
    /// is appended to the current record, joined with `\n`. For Java stack
    /// traces, the timestamp or level that starts each log line, e.g.
    /// `'^\d{4}-\d{2}-\d{2}'` or `'^(INFO|WARN|ERROR|DEBUG)'`.
    pub start_pattern: String,

    /// The most lines in one record; the record is emitted once it has
    /// this many. Default 500.
    #[serde(default = "default_max_lines")]
    pub max_lines: usize,

    /// A pending record is emitted when no line has been added to it for
    /// this long (`"1s"`), since the next start line may not come soon.
    /// Default 1s.
    #[serde(
        default = "default_ml_timeout",
        deserialize_with = "deserialize_duration"
    )]
    pub timeout: Duration,
}

fn default_poll_interval() -> Duration {
    Duration::from_millis(250)
}
fn default_rotate_wait() -> Duration {
    Duration::from_secs(5)
}
fn default_fingerprint_bytes() -> usize {
    256
}
fn default_max_line_bytes() -> usize {
    1 << 20
}
fn default_batch_max_lines() -> usize {
    4096
}
fn default_batch_max_bytes() -> usize {
    1 << 20
}
fn default_max_inflight_batches() -> usize {
    4
}
fn default_read_buffer() -> usize {
    256 << 10
}
fn default_max_lines() -> usize {
    500
}
fn default_ml_timeout() -> Duration {
    Duration::from_secs(1)
}

impl Default for FileSourceConfig {
    /// The defaults, with no `include` (which must then be set).
    fn default() -> FileSourceConfig {
        FileSourceConfig {
            include: Vec::new(),
            exclude: Vec::new(),
            start_at: StartAt::Beginning,
            format: LogFormat::Auto,
            multiline: None,
            poll_interval: default_poll_interval(),
            rotate_wait: default_rotate_wait(),
            fingerprint_bytes: default_fingerprint_bytes(),
            max_line_bytes: default_max_line_bytes(),
            batch_max_lines: default_batch_max_lines(),
            batch_max_bytes: default_batch_max_bytes(),
            max_inflight_batches: default_max_inflight_batches(),
            read_buffer: default_read_buffer(),
        }
    }
}

impl MultilineConfig {
    /// A configuration with the default `max_lines` and `timeout`.
    pub fn new(start_pattern: impl Into<String>) -> MultilineConfig {
        MultilineConfig {
            start_pattern: start_pattern.into(),
            max_lines: default_max_lines(),
            timeout: default_ml_timeout(),
        }
    }
}

impl FileSourceConfig {
    /// Every problem with this configuration, each prefixed with its config
    /// path (`path` is the source's own, e.g. `sources[0]`). Empty when
    /// valid.
    pub fn validate(&self, path: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.include.is_empty() {
            p.push(format!(
                "{path}.include: at least one path or glob is required"
            ));
        }
        for (i, g) in self.include.iter().enumerate() {
            if g.trim().is_empty() {
                p.push(format!("{path}.include[{i}]: must not be empty"));
            } else if let Err(e) = glob::Pattern::new(g) {
                p.push(format!("{path}.include[{i}]: invalid glob {g:?}: {e}"));
            }
        }
        for (i, g) in self.exclude.iter().enumerate() {
            if let Err(e) = glob::Pattern::new(g) {
                p.push(format!("{path}.exclude[{i}]: invalid glob {g:?}: {e}"));
            }
        }
        if let Some(m) = &self.multiline {
            if let Err(e) = regex::bytes::Regex::new(&m.start_pattern) {
                let first = e.to_string().lines().last().unwrap_or("").to_string();
                p.push(format!(
                    "{path}.multiline.start_pattern: invalid regular expression: {first}"
                ));
            }
            if m.max_lines == 0 {
                p.push(format!("{path}.multiline.max_lines: must be at least 1"));
            }
            if m.timeout.is_zero() {
                p.push(format!("{path}.multiline.timeout: must be more than 0"));
            }
        }
        if self.poll_interval < Duration::from_millis(1)
            || self.poll_interval > Duration::from_secs(60)
        {
            p.push(format!("{path}.poll_interval: must be between 1ms and 60s"));
        }
        if self.rotate_wait > Duration::from_secs(24 * 3600) {
            p.push(format!("{path}.rotate_wait: must be at most 24h"));
        }
        if !(16..=65536).contains(&self.fingerprint_bytes) {
            p.push(format!(
                "{path}.fingerprint_bytes: must be between 16 and 65536"
            ));
        }
        if !(64..=(256 << 20)).contains(&self.max_line_bytes) {
            p.push(format!(
                "{path}.max_line_bytes: must be between 64 B and 256 MiB"
            ));
        }
        if !(1..=1_000_000).contains(&self.batch_max_lines) {
            p.push(format!(
                "{path}.batch_max_lines: must be between 1 and 1000000"
            ));
        }
        if !(1..=(256 << 20)).contains(&self.batch_max_bytes) {
            p.push(format!(
                "{path}.batch_max_bytes: must be between 1 B and 256 MiB"
            ));
        }
        if !(1..=64).contains(&self.max_inflight_batches) {
            p.push(format!(
                "{path}.max_inflight_batches: must be between 1 and 64"
            ));
        }
        if !(4096..=(64 << 20)).contains(&self.read_buffer) {
            p.push(format!(
                "{path}.read_buffer: must be between 4 KiB and 64 MiB"
            ));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_yaml_with_defaults() {
        let c: FileSourceConfig = serde_yaml::from_str(
            "include: [/var/log/app.log]\nmultiline: { start_pattern: '^\\d' }\nmax_line_bytes: 64KiB\n",
        )
        .unwrap();
        assert_eq!(c.include, vec!["/var/log/app.log"]);
        assert_eq!(c.poll_interval, Duration::from_millis(250));
        assert_eq!(c.max_line_bytes, 64 << 10);
        assert_eq!(c.batch_max_bytes, 1 << 20);
        assert_eq!(c.multiline.as_ref().unwrap().max_lines, 500);
        assert_eq!(
            c.multiline.as_ref().unwrap().timeout,
            Duration::from_secs(1)
        );
        assert!(c.validate("sources[0]").is_empty());
        assert_eq!(c.format, LogFormat::Auto);
    }

    #[test]
    fn format_is_one_of_four() {
        for (text, want) in [
            ("auto", LogFormat::Auto),
            ("cri", LogFormat::Cri),
            ("docker", LogFormat::Docker),
            ("raw", LogFormat::Raw),
        ] {
            let c: FileSourceConfig =
                serde_yaml::from_str(&format!("include: [a]\nformat: {text}\n")).unwrap();
            assert_eq!(c.format, want);
        }
        assert!(serde_yaml::from_str::<FileSourceConfig>("include: [a]\nformat: json\n").is_err());
    }

    #[test]
    fn rejects_unknown_fields_and_reports_all_problems() {
        assert!(serde_yaml::from_str::<FileSourceConfig>("include: [a]\nbogus: 1\n").is_err());
        // A whole number of seconds is a duration, as everywhere in the
        // config (crate::units); a number with a fraction is refused.
        let c = serde_yaml::from_str::<FileSourceConfig>("include: [a]\npoll_interval: 5\n");
        assert_eq!(c.unwrap().poll_interval, Duration::from_secs(5));
        assert!(
            serde_yaml::from_str::<FileSourceConfig>("include: [a]\npoll_interval: 0.5\n").is_err()
        );
        let c = FileSourceConfig {
            include: vec!["/var/log/[".into()],
            multiline: Some(MultilineConfig::new("(")),
            batch_max_lines: 0,
            ..FileSourceConfig::default()
        };
        let p = c.validate("sources[2]");
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("sources[2].include[0]: invalid glob"));
        assert!(p[1].starts_with("sources[2].multiline.start_pattern"));
        assert!(p[2].starts_with("sources[2].batch_max_lines"));
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(parse_bytes("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert!(parse_bytes("1 furlong").is_err());
    }
}
