//! `scrubs redact`: stdin to stdout, one line out per line in.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Args;
use scrubs::lines::LineReader;

use super::{CliError, RuleArgs};

#[derive(Debug, Args)]
pub struct RedactArgs {
    #[command(flatten)]
    rules: RuleArgs,
    /// Lines longer than this are cut at the last delimiter before the limit,
    /// redacted, and marked ` [TRUNCATED:N bytes]`.
    #[arg(long, value_name = "N", default_value_t = 1 << 20)]
    max_line_bytes: usize,
    /// Print redaction counts per rule to stderr at the end (rule ids and
    /// counts only, never content).
    #[arg(long)]
    stats: bool,
}

pub fn run(args: RedactArgs) -> Result<ExitCode, CliError> {
    let engine = args.rules.engine()?;
    let mut scratch = engine.scratch();
    let stdin = io::stdin().lock();
    let mut reader = LineReader::new(
        io::BufReader::with_capacity(64 * 1024, stdin),
        args.max_line_bytes,
    );
    let mut out = io::BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    let mut lines = 0u64;
    let mut truncated = 0u64;
    while let Some(line) = reader.next_line()? {
        lines += 1;
        out.write_all(engine.redact(&mut scratch, line.bytes))?;
        if line.dropped > 0 {
            truncated += 1;
            write!(out, " [TRUNCATED:{} bytes]", line.dropped)?;
        }
        out.write_all(b"\n")?;
        // Flush whenever the next line is not already buffered, so that
        // `tail -F app.log | scrubs redact` shows each line as it comes.
        if reader.get_mut().buffer().is_empty() {
            out.flush()?;
        }
    }
    out.flush()?;
    if args.stats {
        let mut err = io::stderr().lock();
        writeln!(err, "lines\t{lines}")?;
        writeln!(err, "truncated\t{truncated}")?;
        scratch.drain_counts(|rule, n| {
            let _ = writeln!(err, "rule\t{}\t{n}", engine.rule(rule).id);
        });
    }
    Ok(ExitCode::SUCCESS)
}
