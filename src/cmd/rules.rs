//! `scrubs rules test` and `scrubs rules list`.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use scrubs::{Engine, PseudonymKey, RuleSet};

use super::CliError;

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Run every rule's examples; exits 1 if any fails.
    Test {
        /// Rule files or directories; the built-in pack when none is given.
        paths: Vec<PathBuf>,
    },
    /// Print the rules in force.
    List {
        /// Rule files or directories; the built-in pack when none is given.
        paths: Vec<PathBuf>,
    },
}

fn engine(paths: &[PathBuf]) -> Result<Engine, CliError> {
    let set = if paths.is_empty() {
        RuleSet::builtin()?
    } else {
        RuleSet::load(paths)?
    };
    Ok(Engine::new(&set, PseudonymKey::ephemeral())?)
}

pub fn run(cmd: RulesCommand) -> Result<ExitCode, CliError> {
    let mut out = io::stdout().lock();
    match cmd {
        RulesCommand::Test { paths } => {
            let engine = engine(&paths)?;
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
            writeln!(
                out,
                "rules: {} passed, {} failed",
                ran - failures.len(),
                failures.len()
            )?;
            Ok(if failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        RulesCommand::List { paths } => {
            let engine = engine(&paths)?;
            writeln!(
                out,
                "{:<34} {:<22} {:<9} {:<10} SOURCE",
                "ID", "CATEGORY", "DETECTOR", "ACTION"
            )?;
            for i in 0..engine.rule_count() {
                let r = engine.rule(i);
                writeln!(
                    out,
                    "{:<34} {:<22} {:<9} {:<10} {}:{}",
                    r.id, r.category, r.detector, r.action, r.file, r.line
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
