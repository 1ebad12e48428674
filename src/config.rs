//! `scrubs.yaml`: the sidecar's configuration.
//!
//! Each component owns its config struct (sources, the audit sink, vendors);
//! this module assembles them, and [`Config::load`] reports every problem at
//! once, each with its path in the file (`vendors[1] (acme): ...`). Unknown
//! keys are errors everywhere.

mod environment;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::pipeline::classify::AuditSelector;
use crate::signals::SignalsConfig;
use crate::sinks::audit::AuditConfig;
use crate::sinks::otlp::VendorConfig;
use crate::sources::file::FileSourceConfig;
use crate::sources::otlp::OtlpConfig;
use crate::units::deserialize_duration;
use crate::{Engine, PseudonymKey, RuleSet};

/// The whole configuration.
#[derive(Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub rules: RulesConfig,
    pub pseudonym_key_file: Option<PathBuf>,
    pub sources: BTreeMap<String, SourceConfig>,
    pub audit: Option<AuditSection>,
    pub vendors: Vec<VendorConfig>,
    pub admin: AdminConfig,
    pub limits: LimitsConfig,
    pub shutdown: ShutdownConfig,
    pub resource: BTreeMap<String, String>,
    /// Metrics derived from records before redaction (see
    /// [`crate::signals`]).
    pub signals: Option<SignalsConfig>,
}

/// The top level as written, with sections left as YAML so that each can be
/// checked on its own and every problem reported.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Checkpoints and the audit spool live here.
    #[serde(default = "default_data_dir")]
    data_dir: PathBuf,
    #[serde(default)]
    rules: Option<serde_yaml::Value>,
    /// The pseudonym key file (at least 32 bytes).
    #[serde(default)]
    pseudonym_key_file: Option<PathBuf>,
    #[serde(default)]
    sources: BTreeMap<String, serde_yaml::Value>,
    #[serde(default)]
    audit: Option<serde_yaml::Value>,
    #[serde(default)]
    vendors: Vec<serde_yaml::Value>,
    #[serde(default)]
    admin: Option<serde_yaml::Value>,
    #[serde(default)]
    limits: Option<serde_yaml::Value>,
    #[serde(default)]
    shutdown: Option<serde_yaml::Value>,
    #[serde(default)]
    resource: BTreeMap<String, String>,
    #[serde(default)]
    signals: Option<serde_yaml::Value>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/scrubs")
}

/// Which rules are in force.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Load the built-in HIPAA Safe Harbor pack (default true).
    #[serde(default = "yes")]
    pub builtin: bool,
    /// Rule files or directories of `*.yaml` rule files, loaded after the pack.
    #[serde(default)]
    pub files: Vec<PathBuf>,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            builtin: true,
            files: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}

/// A source, by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    /// Tail files and globs.
    File(FileSourceConfig),
    /// Read standard input.
    Stdin(StdinConfig),
    /// Receive OTLP over HTTP and gRPC.
    Otlp(OtlpConfig),
}

/// Standard input: no settings beyond the global limits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {}

/// The audit fork.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// The in-boundary Kafka topic and its producer.
    pub kafka: AuditConfig,
    /// Which records are audit-grade.
    pub select: AuditSelector,
    /// Audit records also go, scrubbed like any telemetry, to the vendors
    /// (default true).
    #[serde(default = "yes")]
    pub to_vendors: bool,
    /// How often the sidecar appends a flow record (which PHI categories
    /// each source carried, how many records went raw to the audit topic
    /// and scrubbed to each vendor; counts and names only) to the audit
    /// topic, for `scrubs audit flowmap`. A last one is written at
    /// shutdown. `0s` turns flow records off. Default `1h`.
    #[serde(
        default = "default_flow_record_interval",
        deserialize_with = "deserialize_duration"
    )]
    pub flow_record_interval: Duration,
}

fn default_flow_record_interval() -> Duration {
    Duration::from_secs(3600)
}

/// The admin endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of /healthz, /readyz and /metrics (default 127.0.0.1:9600).
    #[serde(default = "default_admin")]
    pub address: SocketAddr,
    /// `/healthz` fails once work has waited this long without the
    /// pipeline finishing any (default "60s"; "0s" turns the check off).
    #[serde(
        default = "default_stall_timeout",
        deserialize_with = "deserialize_duration"
    )]
    pub stall_timeout: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            address: default_admin(),
            stall_timeout: default_stall_timeout(),
        }
    }
}

fn default_stall_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_admin() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9600))
}

/// Limits that bound memory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Longest record (line) kept; longer lines are cut at a delimiter,
    /// redacted and marked (default 1 MiB).
    #[serde(default = "default_max_record")]
    pub max_record_bytes: usize,
    /// Batches queued between sources and the pipeline (default 16).
    #[serde(default = "default_queue_batches")]
    pub queue_batches: usize,
    /// In-flight OTLP request bytes above which requests get 429
    /// (default 32 MiB).
    #[serde(default = "default_budget")]
    pub memory_budget_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_record_bytes: default_max_record(),
            queue_batches: default_queue_batches(),
            memory_budget_bytes: default_budget(),
        }
    }
}

fn default_max_record() -> usize {
    1 << 20
}
fn default_queue_batches() -> usize {
    16
}
fn default_budget() -> u64 {
    32 << 20
}

/// Shutdown behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long SIGTERM may take to drain sources and flush sinks
    /// (default "30s").
    #[serde(default = "default_drain", deserialize_with = "deserialize_duration")]
    pub drain_deadline: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            drain_deadline: default_drain(),
        }
    }
}

fn default_drain() -> Duration {
    Duration::from_secs(30)
}

fn section<T: DeserializeOwned>(
    path: &str,
    v: serde_yaml::Value,
    problems: &mut Vec<String>,
) -> Option<T> {
    match serde_yaml::from_value(v) {
        Ok(t) => Some(t),
        Err(e) => {
            problems.push(format!("{path}: {e}"));
            None
        }
    }
}

impl Config {
    /// Reads and checks a config file: syntax, unknown keys, every
    /// component's own checks, the rules, the BAA flag of every vendor, and
    /// everything it names outside itself (secrets, key and certificate
    /// files, directories; see `config/environment.rs`). All problems are
    /// returned together.
    pub fn load(path: &Path) -> Result<Config, Vec<String>> {
        Config::load_checked(path, true)
    }

    /// As [`Config::load`]; with `environment` false, nothing outside the
    /// file is looked at (secrets, key and certificate files, directories,
    /// rule files): only the built-in pack is compiled. For linting a
    /// configuration in CI, where the secrets and files of production are
    /// not at hand.
    pub fn load_checked(path: &Path, environment: bool) -> Result<Config, Vec<String>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?;
        Config::parse_checked(&text, path, environment)
    }

    /// Parses config text without looking at anything it names outside
    /// itself (see [`Config::load_checked`]); `path` is only used in
    /// messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, Vec<String>> {
        Config::parse_checked(text, path, false)
    }

    /// Parses config text; with `environment`, also checks every secret,
    /// file and directory it names.
    pub fn parse_checked(
        text: &str,
        path: &Path,
        environment: bool,
    ) -> Result<Config, Vec<String>> {
        let file = path.display().to_string();
        let raw: RawConfig = serde_yaml::from_str(text)
            .map_err(|e| vec![format!("{file}: {}", withhold_values(&e.to_string()))])?;
        let mut problems = Vec::new();
        let RawConfig {
            data_dir,
            rules,
            pseudonym_key_file,
            sources: raw_sources,
            audit,
            vendors: raw_vendors,
            admin,
            limits,
            shutdown,
            resource,
            signals,
        } = raw;

        let rules = rules.map_or(Some(RulesConfig::default()), |v| {
            section("rules", v, &mut problems)
        });
        let mut sources = BTreeMap::new();
        if raw_sources.is_empty() {
            problems.push("sources: at least one source is required".into());
        }
        for (name, v) in raw_sources {
            let p = format!("sources.{name}");
            if let Some(s) = section::<SourceConfig>(&p, v, &mut problems) {
                match &s {
                    SourceConfig::File(f) => problems.extend(f.validate(&p)),
                    SourceConfig::Otlp(o) => {
                        problems.extend(o.validate().into_iter().map(|m| format!("{p}: {m}")))
                    }
                    SourceConfig::Stdin(_) => {}
                }
                sources.insert(name, s);
            }
        }
        let audit: Option<AuditSection> = audit.and_then(|v| section("audit", v, &mut problems));
        if let Some(a) = &audit {
            problems.extend(
                a.kafka
                    .validate()
                    .into_iter()
                    .map(|m| format!("audit.kafka: {m}")),
            );
            problems.extend(
                a.select
                    .validate()
                    .into_iter()
                    .map(|m| format!("audit.select.{m}")),
            );
            if a.select.fields.is_empty() && a.select.contains.is_empty() {
                problems
                    .push("audit.select: no field or literal selects audit-grade records".into());
            }
        }
        let mut vendors = Vec::new();
        let mut names = std::collections::HashSet::new();
        for (i, v) in raw_vendors.into_iter().enumerate() {
            let p = format!("vendors[{i}]");
            if let Some(vc) = section::<VendorConfig>(&p, v, &mut problems) {
                problems.extend(vc.validate(&p));
                if !names.insert(vc.name.clone()) {
                    problems.push(format!("{p}: duplicate vendor name '{}'", vc.name));
                }
                vendors.push(vc);
            }
        }
        let admin = admin.map_or(Some(AdminConfig::default()), |v| {
            section("admin", v, &mut problems)
        });
        let limits: Option<LimitsConfig> = limits.map_or(Some(LimitsConfig::default()), |v| {
            section("limits", v, &mut problems)
        });
        if let Some(l) = &limits {
            if l.max_record_bytes < 1024 {
                problems.push("limits.max_record_bytes: must be at least 1024".into());
            }
            if l.queue_batches == 0 {
                problems.push("limits.queue_batches: must be at least 1".into());
            }
        }
        let shutdown = shutdown.map_or(Some(ShutdownConfig::default()), |v| {
            section("shutdown", v, &mut problems)
        });

        let signals = signals.and_then(|v| match SignalsConfig::from_value(v) {
            Ok(s) => Some(s),
            Err(e) => {
                problems.extend(e.problems().iter().cloned());
                None
            }
        });

        if environment {
            problems.extend(environment::check(&environment::Named {
                data_dir: &data_dir,
                pseudonym_key_file: pseudonym_key_file.as_deref(),
                sources: &sources,
                audit: audit.as_ref(),
                vendors: &vendors,
            }));
        }
        // Rule files are outside the file too: without the environment,
        // only the built-in pack (when on) is compiled.
        let rules_to_check = rules.as_ref().map(|r| RulesConfig {
            builtin: r.builtin,
            files: if environment {
                r.files.clone()
            } else {
                Vec::new()
            },
        });
        if let Some(r) = rules_to_check.filter(|r| environment || r.builtin) {
            match build_rules(&r).and_then(|set| Engine::new(&set, PseudonymKey::ephemeral())) {
                Err(e) => {
                    let found = e.rule_problems();
                    if found.is_empty() {
                        problems.push(format!("rules: {e}"));
                    }
                    problems.extend(found.iter().map(|p| format!("rules: {p}")));
                }
                // The signals' own checks (names, regexes, buckets, label
                // checks) need the engine; the key is a placeholder.
                Ok(engine) => {
                    if let Some(sig) = &signals {
                        if let Err(e) = sig.build(std::sync::Arc::new(engine), &[0u8; 32]) {
                            problems.extend(e.problems().iter().cloned());
                        }
                    }
                }
            }
        }

        if !problems.is_empty() {
            return Err(problems
                .into_iter()
                .map(|p| format!("{file}: {}", withhold_values(&p)))
                .collect());
        }
        Ok(Config {
            data_dir,
            rules: rules.unwrap_or_default(),
            pseudonym_key_file,
            sources,
            audit,
            vendors,
            admin: admin.unwrap_or_default(),
            limits: limits.unwrap_or_default(),
            shutdown: shutdown.unwrap_or_default(),
            resource,
            signals,
        })
    }

    /// Compiles the rules in force.
    pub fn engine(&self) -> Result<Engine, crate::Error> {
        let key = match &self.pseudonym_key_file {
            Some(p) => PseudonymKey::from_file(p)?,
            None => PseudonymKey::ephemeral(),
        };
        Engine::new(&build_rules(&self.rules)?, key)
    }
}

/// The rule set named by a rules section.
pub fn build_rules(cfg: &RulesConfig) -> Result<RuleSet, crate::Error> {
    let mut set = if cfg.builtin {
        RuleSet::builtin()?
    } else {
        RuleSet::default()
    };
    if !cfg.files.is_empty() {
        set.extend(RuleSet::load(&cfg.files)?)?;
    }
    if set.is_empty() {
        return Err(crate::Error::config(
            "rules: no rule is in force: the built-in pack is off (rules.builtin: false, or --no-builtin) and no rule files are given",
        ));
    }
    Ok(set)
}

/// Withholds the values quoted in a configuration problem, keeping its path,
/// line and column, field names and the expected values. A configuration
/// with a value in the wrong place (a pasted log line, a patient's name
/// where a duration belongs) must not have it echoed to the terminal, to the
/// log (SIGHUP reloads log these problems) or to CI output.
///
/// What serde, serde_yaml and the unit parsers quote as a value (`string
/// "..."`, ``integer `...` ``, ``unknown variant `...` ``, `duration
/// "..."`, ...) is always withheld. Any other quoted text is kept when it
/// reads as a name (letters, digits, `_`, `.`, `-`; at most 64) or when it
/// follows `expected` (the schema's own list), and withheld otherwise.
fn withhold_values(msg: &str) -> String {
    /// Words after which a quoted text is a value.
    const VALUE_WORDS: &[&str] = &[
        "string ",
        "integer ",
        "floating point ",
        "character ",
        "boolean ",
        "unknown variant ",
        "duration ",
        "size ",
        "unit ",
        "number ",
        "e.g. ",
        "key ",
    ];
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(pos) = rest.find(['"', '`', '\'']) {
        let q = rest[pos..].chars().next().unwrap_or('"');
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        // An apostrophe inside or after a word is not a quote.
        let word_before = out.chars().last().is_some_and(char::is_alphanumeric);
        let end = if q == '\'' && word_before {
            None
        } else {
            closing(after, q)
        };
        let Some(end) = end else {
            out.push(q);
            rest = after;
            continue;
        };
        let quoted = &after[..end];
        let is_value = VALUE_WORDS.iter().any(|w| out.ends_with(w));
        let in_expected = out
            .rsplit([';', '\n'])
            .next()
            .is_some_and(|clause| clause.contains("expected"));
        let name_like = !quoted.is_empty()
            && quoted.len() <= 64
            && quoted
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !is_value && (name_like || in_expected) {
            out.push(q);
            out.push_str(quoted);
            out.push(q);
        } else {
            out.push_str("(value withheld)");
        }
        rest = &after[end + q.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// The index of the quote that closes a quoted text starting at `s`
/// (backslash escapes count inside double quotes).
fn closing(s: &str, q: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && q == '"' {
            escaped = true;
        } else if c == q {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod withhold_tests {
    use super::withhold_values;

    #[test]
    fn values_are_withheld_names_and_schema_kept() {
        let cases = [
            (
                r#"sources.app: invalid type: string "Maria Gonzalez 219-09-9999", expected a sequence"#,
                "sources.app: invalid type: string (value withheld), expected a sequence",
            ),
            (
                r#"limits: invalid type: string "219-09-9999", expected usize at line 3 column 5"#,
                "limits: invalid type: string (value withheld), expected usize at line 3 column 5",
            ),
            (
                "sources.x: unknown variant `MRN 48291734`, expected one of `file`, `stdin`, `otlp`",
                "sources.x: unknown variant (value withheld), expected one of `file`, `stdin`, `otlp`",
            ),
            (
                r#"audit: invalid duration "Maria Gonzalez": expected a number"#,
                "audit: invalid duration (value withheld): expected a number",
            ),
            (
                r#"x: invalid string "a \"quoted\" Maria" here"#,
                "x: invalid string (value withheld) here",
            ),
            (
                "v: invalid type: integer `219099999999` as u128, expected any YAML value",
                "v: invalid type: integer (value withheld) as u128, expected any YAML value",
            ),
            (
                "sources.app: unknown field `bogus`, expected one of `include`, `exclude`",
                "sources.app: unknown field `bogus`, expected one of `include`, `exclude`",
            ),
            (
                r#"vendors[0] (name "cheap-logs"): refused: baa_covered is not true"#,
                r#"vendors[0] (name "cheap-logs"): refused: baa_covered is not true"#,
            ),
            (
                r#"vendors[2].name: "John Smith" must be 1-64 letters, digits, '_', '-' or '.'"#,
                "vendors[2].name: (value withheld) must be 1-64 letters, digits, '_', '-' or '.'",
            ),
            (
                "otlp.http.address: `Maria Gonzalez:1` is not IP:port; scrubs' own 'x' isn't",
                "otlp.http.address: (value withheld) is not IP:port; scrubs' own 'x' isn't",
            ),
            ("unclosed \"quote", "unclosed \"quote"),
        ];
        for (input, want) in cases {
            assert_eq!(withhold_values(input), want, "{input}");
        }
    }
}
