//! `swapdio mkswap PATH --size S`: create a swap file the right way.

use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use swapdio::linux::check::{check, mode_name};
use swapdio::linux::mkswap::{create_swap_file_with, parse_size, MkswapOptions};
use swapdio::ModeRequest;

/// Files at least this large get a progress bar.
const PROGRESS_THRESHOLD: u64 = 256 << 20;

/// Arguments of `swapdio mkswap`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The swap file to create, or a block device to put a swap header on, or an NBD
    /// export (`nbd://host[:port]/export`, `nbd+unix:///export?socket=PATH`). An existing
    /// file is replaced only if it is empty or an inactive swap area (else see --force),
    /// and only once the new file is complete.
    pub path: PathBuf,
    /// Size with an optional K/M/G/T suffix (powers of 1024); a page multiple, at least 2
    /// pages. Required for a file; for an export, defaults to the whole export.
    #[arg(long, short, value_parser = parse_size)]
    pub size: Option<u64>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Replace an existing file or block device even if it holds data that is not a
    /// swap area (that data is lost).
    #[arg(long)]
    pub force: bool,
}

/// Runs `swapdio mkswap`: fallocate + written zeros + header + fsync, mode 0600, NOCOW on
/// btrfs; then a dry-run swapon of the result.
pub fn run(args: Args, json: bool) -> ExitCode {
    match crate::target::nbd_uri(&args.path) {
        Ok(Some(uri)) => return crate::target::mkswap_nbd(&uri, args.size, json),
        Ok(None) => {}
        Err(e) => return crate::usage_error("mkswap", &e, json),
    }
    crate::setup::recover_stale(json);
    let Some(size) = args.size else {
        return crate::usage_error("mkswap", "--size is required for a file", json);
    };
    let bar = (!json && !args.quiet && size >= PROGRESS_THRESHOLD).then(|| {
        let b = ProgressBar::new(size);
        b.set_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b.set_message("writing");
        b
    });
    let opts = MkswapOptions { force: args.force };
    let res = create_swap_file_with(&args.path, size, opts, &mut |done, _| {
        if let Some(b) = &bar {
            b.set_position(done);
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Err(e) = res {
        if json {
            outln!(
                "{}",
                serde_json::json!({"path": args.path.display().to_string(), "created": false, "error": e.to_string(), "errno": e.errno().0})
            );
        } else {
            errln!("swapdio mkswap: {e}");
        }
        return ExitCode::from(1);
    }
    let report = check(&args.path, ModeRequest::Auto);
    if json {
        outln!(
            "{}",
            serde_json::json!({"path": args.path.display().to_string(), "created": true, "size": size, "check": report.to_json()})
        );
    } else {
        let device = std::fs::metadata(&args.path).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_block_device()
        });
        if device {
            outln!("wrote a swap header on {} ({} bytes, {} pages)", args.path.display(), size, size / 4096);
        } else {
            outln!("created {} ({} bytes, {} pages, mode 0600)", args.path.display(), size, size / 4096);
        }
        match report.kernel.usable_kib() {
            Some(kib) => outln!("swapon would accept it: {kib} KiB usable"),
            None => outln!("warning: swapon would still refuse it: {}", crate::check::verdict_text(&report.kernel)),
        }
        if let swapdio::linux::check::Verdict::Usable(r) = &report.swapdio {
            outln!("swapdio would drive it in {} mode", mode_name(r.mode));
        }
    }
    if report.kernel.is_usable() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
