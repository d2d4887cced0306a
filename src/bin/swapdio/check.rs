//! `swapdio check` (being built).

use std::process::ExitCode;

/// Arguments of `swapdio check`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `swapdio check`.
pub fn run(_args: Args, _json: bool) -> ExitCode {
    eprintln!("swapdio check: not built yet");
    ExitCode::from(2)
}
