//! `swapdio mkswap` (being built).

use std::process::ExitCode;

/// Arguments of `swapdio mkswap`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `swapdio mkswap`.
pub fn run(_args: Args, _json: bool) -> ExitCode {
    eprintln!("swapdio mkswap: not built yet");
    ExitCode::from(2)
}
