//! `swapdio bench` (being built).

use std::process::ExitCode;

/// Arguments of `swapdio bench`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `swapdio bench`.
pub fn run(_args: Args, _json: bool) -> ExitCode {
    eprintln!("swapdio bench: not built yet");
    ExitCode::from(2)
}
