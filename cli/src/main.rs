//! The `swapdio` command line: check, mkswap, stress, bench.
//!
//! Each subcommand lives in its own module with its own `Args` and `run`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// `println!` that never panics: once stdout is closed (EPIPE: `swapdio check --json f |
/// head -1`) the rest of the output is dropped and the command ends normally, with its
/// own exit status and its cleanup done.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

/// `eprintln!` that never panics (a closed stderr drops the message).
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($t)*);
    }};
}

mod bench;
mod check;
mod mkswap;
mod pager;
mod pattern;
mod setup;
mod stress;
mod target;

/// Exit statuses of every subcommand (also in the README).
const EXIT_STATUS_HELP: &str = "Exit status:
  0    success (stress: every page written was read back intact; check: usable)
  1    a check failed (stress: mismatch, lost page, page rule; check: not usable; mkswap: failed or refused)
  2    could not run: bad arguments (a JSON error object under --json), setup errors, file in use
  3    stress: unverified - nothing wrong found, but pages could not be written or read back
  4    stress, bench: the swap file's layout changed during the run; writing stopped
  130  stress, bench: interrupted by SIGINT, SIGTERM or SIGHUP (cleanup done)
A closed stdout (| head) is not an error: the command finishes with its own status.";

/// Exit statuses of `stress` (its `--help`).
const STRESS_EXIT_HELP: &str = "Exit status: 0 OK; 1 a check failed (mismatch, lost page, page rule, leaked pin, \
submit error); 2 could not run; 3 unverified (nothing wrong found, but some pages could not be written back or \
read back, nothing was written, or the end phase hit its deadline); 4 the layout changed during the run; \
130 interrupted (SIGINT, SIGTERM, SIGHUP).

Latency is per request: from submission to the completion of its last page. A request is one page or a plugged \
run of up to 32 pages, so p99 is dominated by the long runs and by queueing behind up to --queue-depth other \
requests (p99 ~ queue depth x the device's time per request).";

/// Exit statuses of `check` (its `--help`).
const CHECK_EXIT_HELP: &str = "Exit status: 0 usable (the swapon prediction with --mode auto, swapdio's verdict with \
--mode device|file: JSON's exit_status_follows); 1 not usable, or the target cannot be read; 2 bad arguments (a URI \
that does not parse).";

/// Exit statuses of `mkswap` (its `--help`).
const MKSWAP_EXIT_HELP: &str = "Exit status: 0 written, and swapon would accept it; 1 refused (existing data without \
--force, an active or in-use swap area, a bad size, no room, a filesystem that cannot swap) or failed, nothing \
changed; or written but swapon would still refuse it; 2 bad arguments (no --size for a file).";

/// Exit statuses of `bench` (its `--help`).
const BENCH_EXIT_HELP: &str = "Exit status: 0 measured; 2 could not run (bad arguments, --only matching no case, the \
swap file cannot be created or activated, file in use); 130 interrupted (SIGINT, SIGTERM, SIGHUP; the partial \
table is printed).";

/// swapdio: the Linux swap direct-I/O engine, on real swap files.
#[derive(Parser, Debug)]
#[command(name = "swapdio", version, about, after_help = EXIT_STATUS_HELP)]
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
    #[command(after_help = CHECK_EXIT_HELP)]
    Check(check::Args),
    /// Create a swap file the right way: allocated, mode 0600, with a header.
    #[command(after_help = MKSWAP_EXIT_HELP)]
    Mkswap(mkswap::Args),
    /// The main job: verified swap-out/swap-in workload on a real swap file.
    #[command(after_help = STRESS_EXIT_HELP)]
    Stress(stress::Args),
    /// Swap-in/swap-out IOPS and bandwidth beside a raw io_uring loop (and fio).
    #[command(after_help = BENCH_EXIT_HELP)]
    Bench(bench::Args),
    /// A userfaultfd pager on the engine beside kernel swap and a pread/pwrite pager.
    Pager(pager::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return argument_error(&e),
    };
    match cli.command {
        Command::Check(a) => check::run(a, cli.json),
        Command::Mkswap(a) => mkswap::run(a, cli.json),
        Command::Stress(a) => stress::run(a, cli.json),
        Command::Bench(a) => bench::run(a, cli.json),
        Command::Pager(a) => pager::run(a, cli.json),
    }
}

/// Whether `--json` is among the arguments (before a `--`), even when they do not parse.
fn json_requested() -> bool {
    std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--json")
}

/// Reports a command line clap refused: under `--json` as a JSON object on stdout (exit
/// status 2), else as clap prints it. `--help` and `--version` print as usual.
fn argument_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let status = u8::try_from(e.exit_code()).unwrap_or(2);
    let informational = matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if informational || !json_requested() {
        let _ = e.print();
        return ExitCode::from(status);
    }
    let rendered = e.render().to_string();
    let message = rendered.lines().next().unwrap_or_default().trim_start_matches("error: ").trim();
    print_argument_error(message, status);
    ExitCode::from(status)
}

fn print_argument_error(message: &str, status: u8) {
    outln!("{}", serde_json::json!({"ok": false, "error": message, "argument_error": true, "exit_status": status}));
}

/// An argument a subcommand refuses after clap took it (a URI that does not parse, a
/// missing `--size`): exit status 2, reported as clap's own errors are (a JSON object
/// on stdout under `--json`, else `swapdio COMMAND: MESSAGE` on stderr).
pub(crate) fn usage_error(command: &str, message: &str, json: bool) -> ExitCode {
    if json {
        print_argument_error(message, 2);
    } else {
        errln!("swapdio {command}: {message}");
    }
    ExitCode::from(2)
}
