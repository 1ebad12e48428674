//! Command-line parsing and the subcommands.

mod audit;
mod flowmap;
mod incident;
mod inject;
mod redact;
mod rules;
mod run;

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use scrubs::config::RulesConfig;
use scrubs::{Engine, PseudonymKey, RuleSet};

/// Keeps patient data (PHI) out of operational telemetry.
#[derive(Debug, Parser)]
#[command(name = "scrubs", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Redact lines from stdin to stdout, one line out per line in.
    Redact(redact::RedactArgs),
    /// Test or list rules.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// Run the sidecar: sources, redaction, audit fork, vendor export.
    Run(run::RunArgs),
    /// Check a configuration file and report every problem at once.
    Validate(run::ValidateArgs),
    /// Audit topic tools: verify the hash chains; the breach clock.
    Audit(audit::AuditArgs),
    /// Add the scrubs sidecar to Kubernetes workloads (YAML in, YAML out).
    Inject(inject::InjectArgs),
}

/// Which rules are in force; shared by every command that builds an engine.
#[derive(Debug, Args, Clone)]
pub struct RuleSource {
    /// A rule file or a directory of *.yaml rule files, added to the
    /// built-in HIPAA Safe Harbor pack; repeatable.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    /// Leave the built-in HIPAA Safe Harbor pack out: only the --rules files
    /// are in force (said on stderr).
    #[arg(long = "no-builtin")]
    pub no_builtin: bool,
}

impl RuleSource {
    /// The rule set: the pack unless `--no-builtin`, then the `--rules`
    /// files. Custom rules add to the pack, so that a user adding one rule
    /// does not lose the protection of all the others without a word.
    pub fn rule_set(&self) -> Result<RuleSet, scrubs::Error> {
        scrubs::config::build_rules(&RulesConfig {
            builtin: !self.no_builtin,
            files: self.rules.clone(),
        })
    }

    /// Says on stderr that the pack is off, when it is.
    pub fn warn_if_builtin_off(&self, set: &RuleSet) {
        if self.no_builtin {
            eprintln!(
                "scrubs: warning: the built-in HIPAA pack is off (--no-builtin): only the {} rule(s) of the --rules files are in force",
                set.len()
            );
        }
    }
}

/// Where rules come from and the pseudonym key, for `redact`.
#[derive(Debug, Args, Clone)]
pub struct RuleArgs {
    #[command(flatten)]
    pub source: RuleSource,
    /// A file holding the pseudonym key (at least 32 bytes). Without it,
    /// pseudonyms use a random key for this process only.
    #[arg(long = "key-file", value_name = "PATH")]
    pub key_file: Option<PathBuf>,
}

impl RuleArgs {
    pub fn engine(&self) -> Result<Engine, scrubs::Error> {
        let key = match &self.key_file {
            Some(p) => PseudonymKey::from_file(p)?,
            None => PseudonymKey::ephemeral(),
        };
        let set = self.source.rule_set()?;
        let engine = Engine::new(&set, key)?;
        self.source.warn_if_builtin_off(&set);
        Ok(engine)
    }
}

/// An error that ends the process with exit code 2.
#[derive(Debug)]
pub enum CliError {
    Scrubs(scrubs::Error),
    Io(std::io::Error),
}

impl CliError {
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            CliError::Io(e) => Some(e.kind()),
            CliError::Scrubs(_) => None,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Scrubs(e) => write!(f, "{e}"),
            CliError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<scrubs::Error> for CliError {
    fn from(e: scrubs::Error) -> CliError {
        CliError::Scrubs(e)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> CliError {
        CliError::Io(e)
    }
}

/// Replaces the default panic hook, which prints the panic message: a
/// message formatted at run time can quote the data being processed (a
/// string slice error quotes the string), and scrubs' own output never
/// carries event content. Only the thread, the location, a message that is
/// a compile-time literal, and a backtrace (function names, with
/// `RUST_BACKTRACE`) are printed. `scrubs run` catches panics inside
/// redaction and drops the record (fail closed); this hook still reports each.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("<unnamed>");
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_else(|| "unknown location".into());
        let message = info
            .payload()
            .downcast_ref::<&'static str>()
            .copied()
            .unwrap_or("message withheld: it may quote event content");
        let backtrace = std::backtrace::Backtrace::capture();
        let backtrace = match backtrace.status() {
            std::backtrace::BacktraceStatus::Captured => format!("\n{backtrace}"),
            _ => String::new(),
        };
        eprintln!(
            "scrubs: internal error: thread '{name}' panicked at {location}: {message}{backtrace}"
        );
    }));
}

pub fn try_main() -> Result<ExitCode, CliError> {
    install_panic_hook();
    let cli = Cli::parse();
    match cli.command {
        Command::Redact(args) => redact::run(args),
        Command::Rules(cmd) => rules::run(cmd),
        Command::Run(args) => run::run(args),
        Command::Validate(args) => run::validate(args),
        Command::Audit(args) => audit::run(args),
        Command::Inject(args) => inject::run(args),
    }
}
