//! The `swapdio` command line: check, mkswap, stress, bench.
//!
//! Each subcommand lives in its own module with its own `Args` and `run`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod bench;
mod check;
mod mkswap;
mod pager;
mod pattern;
mod setup;
mod stress;
mod target;

/// swapdio: the Linux swap direct-I/O engine, on real swap files.
#[derive(Parser, Debug)]
#[command(name = "swapdio", version, about)]
struct Cli {
    /// Machine-readable JSON output instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Dry-run swapon: would the kernel accept this file, and how much of it?
    Check(check::Args),
    /// Create a swap file the right way: allocated, mode 0600, with a header.
    Mkswap(mkswap::Args),
    /// The main job: verified swap-out/swap-in workload on a real swap file.
    Stress(stress::Args),
    /// Swap-in/swap-out IOPS and bandwidth beside a raw io_uring loop (and fio).
    Bench(bench::Args),
    /// A userfaultfd pager on the engine beside kernel swap and a pread/pwrite pager.
    Pager(pager::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check(a) => check::run(a, cli.json),
        Command::Mkswap(a) => mkswap::run(a, cli.json),
        Command::Stress(a) => stress::run(a, cli.json),
        Command::Bench(a) => bench::run(a, cli.json),
        Command::Pager(a) => pager::run(a, cli.json),
    }
}
