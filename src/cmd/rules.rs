//! `scrubs rules test` and `scrubs rules list`.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use scrubs::{Engine, PseudonymKey, RuleSet};

use super::{CliError, RuleSource};

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Run every rule's examples against the whole rule set; exits 1 if any
    /// fails (or, with --strict, if a rule has no example).
    Test {
        #[command(flatten)]
        rules: PathsArgs,
        /// Fail (exit 1) when a rule has no example: a rule nobody tested.
        #[arg(long)]
        strict: bool,
    },
    /// Print the rules in force.
    List {
        #[command(flatten)]
        rules: PathsArgs,
        /// `table` (aligned columns, for people) or `json` (one array of
        /// objects, for scripts).
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
}

/// Rule files for `rules test` and `rules list`: as for `redact --rules`,
/// they are added to the built-in pack unless `--no-builtin` is given.
#[derive(Debug, Args)]
pub struct PathsArgs {
    /// Rule files or directories of *.yaml rule files, added to the built-in
    /// pack.
    paths: Vec<PathBuf>,
    /// Leave the built-in HIPAA pack out: only the given files.
    #[arg(long = "no-builtin")]
    no_builtin: bool,
}

impl PathsArgs {
    fn source(&self) -> RuleSource {
        RuleSource {
            rules: self.paths.clone(),
            no_builtin: self.no_builtin,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

fn load(args: &PathsArgs) -> Result<(RuleSet, Engine), CliError> {
    let source = args.source();
    let set = source.rule_set()?;
    let engine = Engine::new(&set, PseudonymKey::ephemeral())?;
    source.warn_if_builtin_off(&set);
    Ok((set, engine))
}

pub fn run(cmd: RulesCommand) -> Result<ExitCode, CliError> {
    match cmd {
        RulesCommand::Test { rules, strict } => test(&rules, strict),
        RulesCommand::List { rules, format } => list(&rules, format),
    }
}

fn test(args: &PathsArgs, strict: bool) -> Result<ExitCode, CliError> {
    let (set, engine) = load(args)?;
    let mut out = io::stdout().lock();
    let (ran, failures) = engine.check_examples();
    for f in &failures {
        writeln!(
            out,
            "FAIL {}:{}: rule '{}' {} example #{}: {}",
            f.file,
            f.line,
            f.rule,
            f.kind,
            f.index + 1,
            f.message
        )?;
    }
    // A rule without examples passes vacuously; say so for each, so that
    // "0 failed" is not read as "tested".
    let untested = set.without_examples();
    let label = if strict { "FAIL" } else { "warning" };
    for u in &untested {
        writeln!(
            out,
            "{label} {}:{}: rule '{}' has no examples (add examples.redact and examples.keep)",
            u.file, u.line, u.id
        )?;
    }
    write!(
        out,
        "rules: {} passed, {} failed",
        ran - failures.len(),
        failures.len()
    )?;
    if untested.is_empty() {
        writeln!(out)?;
    } else {
        writeln!(out, "; {} rule(s) without examples", untested.len())?;
    }
    let passed = failures.is_empty() && (untested.is_empty() || !strict);
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn list(args: &PathsArgs, format: ListFormat) -> Result<ExitCode, CliError> {
    let (_, engine) = load(args)?;
    let rules: Vec<_> = (0..engine.rule_count()).map(|i| engine.rule(i)).collect();
    let mut out = io::stdout().lock();
    match format {
        ListFormat::Json => {
            let items: Vec<serde_json::Value> = rules
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "id": r.id,
                        "category": r.category.as_str(),
                        "detector": r.detector,
                        "action": r.action,
                        "file": r.file,
                        "line": r.line,
                        "description": r.description,
                    })
                })
                .collect();
            serde_json::to_writer_pretty(&mut out, &items).map_err(io::Error::from)?;
            writeln!(out)?;
        }
        ListFormat::Table => {
            let header = ["ID", "CATEGORY", "DETECTOR", "ACTION", "SOURCE"];
            let rows: Vec<[String; 5]> = rules
                .iter()
                .map(|r| {
                    [
                        r.id.to_string(),
                        r.category.to_string(),
                        r.detector.to_string(),
                        r.action.to_string(),
                        format!("{}:{}", r.file, r.line),
                    ]
                })
                .collect();
            // Each column as wide as its widest cell, so that the columns
            // line up whatever the ids and paths of custom rules.
            let mut widths = header.map(str::len);
            for row in &rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            let mut print = |cells: [&str; 5]| -> io::Result<()> {
                for (i, cell) in cells.iter().enumerate() {
                    if i + 1 == cells.len() {
                        writeln!(out, "{cell}")?;
                    } else {
                        write!(out, "{cell:<w$}  ", w = widths[i])?;
                    }
                }
                Ok(())
            };
            print(header)?;
            for row in &rows {
                print([&row[0], &row[1], &row[2], &row[3], &row[4]])?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
