//! Writes a deterministic log corpus for whole-process benchmarks; used by
//! `scripts/bench-redact-process.sh`, not a user-facing tool.
//!
//! ```text
//! cargo run --release --example gen_corpus -- KIND MEGABYTES OUT [SEED]
//! ```
//!
//! KIND is `clean`, `dense` (1-3 identifiers a line) or `mixed` (one dense
//! line in ten). MEGABYTES is decimal (10^6 bytes).

#[path = "../benches/common/mod.rs"]
mod common;

use std::io::{BufWriter, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: gen_corpus clean|dense|mixed MEGABYTES OUT [SEED]");
        return ExitCode::from(2);
    }
    let kind = match args[0].as_str() {
        "clean" => common::Kind::Clean,
        "dense" => common::Kind::Dense,
        "mixed" => common::Kind::Mixed(10),
        other => {
            eprintln!("gen_corpus: unknown kind {other:?}");
            return ExitCode::from(2);
        }
    };
    let Ok(mb) = args[1].parse::<u64>() else {
        eprintln!("gen_corpus: MEGABYTES must be a whole number");
        return ExitCode::from(2);
    };
    let seed = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0x5C2B5);
    let file = match std::fs::File::create(&args[2]) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("gen_corpus: {}: {e}", args[2]);
            return ExitCode::from(1);
        }
    };
    let mut out = BufWriter::with_capacity(1 << 20, file);
    match common::write(kind, seed, mb * 1_000_000, &mut out).and_then(|r| out.flush().map(|()| r))
    {
        Ok((lines, planted)) => {
            eprintln!(
                "gen_corpus: {} {lines} lines, {planted} identifiers planted",
                args[2]
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen_corpus: {}: {e}", args[2]);
            ExitCode::from(1)
        }
    }
}
