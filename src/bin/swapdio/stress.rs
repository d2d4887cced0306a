//! `swapdio stress` (being built).

use std::process::ExitCode;

/// Arguments of `swapdio stress`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `swapdio stress`.
pub fn run(_args: Args, _json: bool) -> ExitCode {
    eprintln!("swapdio stress: not built yet");
    ExitCode::from(2)
}
