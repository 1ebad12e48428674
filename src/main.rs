//! The `scrubs` binary: a thin command line over the library.
//!
//! `main` calls `try_main` and maps errors to exit code 2, as ripgrep does;
//! a closed stdout (`scrubs redact | head`) is a normal exit.

#![forbid(unsafe_code)]

mod cmd;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cmd::try_main() {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("scrubs: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &cmd::CliError) -> bool {
    err.io_kind() == Some(std::io::ErrorKind::BrokenPipe)
}
