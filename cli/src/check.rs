//! `swapdio check PATH [--mode auto|device|file]`: a dry-run swapon.
//!
//! Two verdicts are always printed: the **swapon prediction** (what `swapon(2)` would
//! return, the kernel's message, the size `/proc/swaps` would show, extents and span as
//! dmesg prints them) and **swapdio's** own activation in the requested mode (for device
//! mode: whether the block device can be opened). The exit status follows the swapon
//! prediction with `--mode auto` (the default) and swapdio's verdict with an explicit
//! `--mode device|file`; it is 0 only if that verdict is "usable". JSON says which in
//! `exit_status_follows`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use swapdio::linux::check::{
    flag_names, mode_name, mode_request_name, ActivationPath, CheckReport, TargetKind, Verdict,
};
use swapdio::linux::layout::{dev_major_minor, FsKind};
use swapdio::linux::nbd::Export;
use swapdio::ModeRequest;

/// Extents listed in text output unless `--all-extents`.
const EXTENTS_SHOWN: usize = 16;

/// Which activation the verdict is about.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum Mode {
    /// The kernel's own swapon (block swap); swapdio's automatic choice shown beside it.
    #[default]
    Auto,
    /// swapdio device mode: O_DIRECT on the block device at mapped positions.
    Device,
    /// swapdio file mode: O_DIRECT on the file at `slot * PAGE_SIZE`.
    File,
}

/// Arguments of `swapdio check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The swap file or block device to check, or an NBD export
    /// (`nbd://host[:port]/export`, `nbd+unix:///export?socket=PATH`).
    pub path: PathBuf,
    /// Judge the kernel's swapon (auto) or swapdio's activation in device/file mode.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub mode: Mode,
    /// List every extent instead of the first few.
    #[arg(long)]
    pub all_extents: bool,
}

pub(crate) fn verdict_text(v: &Verdict) -> String {
    match v {
        Verdict::Usable(r) => format!(
            "USABLE: {} KiB ({} pages) in {} mode; {} extent(s), span {} KiB ({} pages, {}..={}){}",
            r.usable_kib(),
            r.usable_pages,
            mode_name(r.mode),
            r.extents,
            r.span_pages * 4,
            r.span_pages,
            r.lowest_page,
            r.highest_page,
            if r.bad_pages > 0 { format!("; {} bad page(s) never used", r.bad_pages) } else { String::new() }
        ),
        Verdict::Refused(r) => {
            let mut s = format!("REFUSED: {}, {}", r.reason, r.errno);
            if let Some(i) = r.extent {
                s += &format!(" at extent {i}");
            }
            if let Some(o) = r.offset {
                s += &format!(", file offset {o}");
            }
            s
        }
    }
}

/// The export line of `check` on an NBD URI: what the handshake said.
fn export_text(e: Option<&Export>) -> String {
    let Some(e) = e else { return "NBD export: no connection (see the verdicts below)".to_string() };
    let flags: Vec<&str> = [
        (e.read_only(), "read-only"),
        (e.can_flush(), "flush"),
        (e.can_fua(), "fua"),
        (e.can_multi_conn(), "multi-conn"),
        (e.structured, "structured-replies"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, n)| *n)
    .collect();
    let (min, pref, max) = e.block_size;
    format!(
        "NBD export, size {} bytes, block size minimum {min} preferred {pref} maximum {max}, flags [{}]",
        e.size,
        flags.join(", ")
    )
}

fn render_text(rep: &CheckReport, all_extents: bool) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}", rep.path.display());
    let kind = rep.target_kind();
    if let Some(n) = &rep.nbd {
        let _ = writeln!(o, "  {}", export_text(n.export.as_ref()));
    }
    if let Some(l) = &rep.layout {
        let (ma, mi) = dev_major_minor(l.device);
        match kind {
            Some(TargetKind::NbdExport) => {}
            Some(TargetKind::BlockDevice) => {
                let _ = writeln!(
                    o,
                    "  block device {ma}:{mi}, size {} bytes, logical block size {}",
                    l.file_size, l.block_size
                );
            }
            _ => {
                let _ = writeln!(
                    o,
                    "  {} (block size {}), device {ma}:{mi}{}, size {} bytes, allocated {} bytes, attributes [{}]",
                    l.fs,
                    l.block_size,
                    l.device_path.as_ref().map(|p| format!(" ({})", p.display())).unwrap_or_default(),
                    l.file_size,
                    l.allocated_bytes,
                    l.attrs.iter_names().map(|(n, _)| n).collect::<Vec<_>>().join(", ")
                );
            }
        }
        let span = l.physical_span().map(|(a, b)| format!(", bytes {a}..{b}")).unwrap_or_default();
        match rep.extent_source() {
            Some("whole-device") => {
                let _ = writeln!(o, "  swapped on whole: one extent{span}");
            }
            Some("whole-export") => {
                let _ = writeln!(o, "  swapped on whole: one extent{span} of the export");
            }
            Some("none") => {
                let _ = writeln!(o, "  no FIEMAP extent map: layout is opaque (file mode only)");
            }
            _ => {
                let span = l.physical_span().map(|(a, b)| format!(", physical bytes {a}..{b}")).unwrap_or_default();
                let _ = writeln!(o, "  {} FIEMAP extent(s){span}", l.extents.len());
                let shown = if all_extents { l.extents.len() } else { EXTENTS_SHOWN.min(l.extents.len()) };
                for (i, e) in l.extents.iter().take(shown).enumerate() {
                    let _ = writeln!(
                        o,
                        "    #{i:<4} logical {:>12}  physical {:>14}  length {:>12}  {}",
                        e.logical,
                        e.physical,
                        e.length,
                        flag_names(e.flags).join("|")
                    );
                }
                if shown < l.extents.len() {
                    let _ = writeln!(o, "    ... {} more (--all-extents)", l.extents.len() - shown);
                }
            }
        }
    }
    if let Some(h) = &rep.header {
        let _ = writeln!(
            o,
            "  header: SWAPSPACE2 version {}, last_page {}, {} bad page(s){}{}",
            h.version,
            h.last_page,
            h.nr_badpages,
            if rep.bad_pages.is_empty() { String::new() } else { format!(" {:?}", rep.bad_pages) },
            if h.byte_swapped { " (byte-swapped)" } else { "" }
        );
    }
    for w in &rep.warnings {
        let _ = writeln!(o, "  warning: {w}");
    }
    let as_attached = if kind == Some(TargetKind::NbdExport) && rep.path_kind != ActivationPath::None {
        " (the kernel's, for the export attached as a block device, /dev/nbdN)"
    } else {
        ""
    };
    let _ = writeln!(o, "  activation path: {}{as_attached}", rep.path_kind.name());
    let _ = writeln!(o, "  swapon prediction: {}", verdict_text(&rep.kernel));
    if let Verdict::Usable(r) = &rep.kernel {
        let l = r.lost;
        let _ = writeln!(
            o,
            "    bytes lost: {} total = {} misaligned + {} too-short runs + {} beyond header + {} file tail",
            l.total().unwrap_or(u64::MAX),
            l.misaligned,
            l.too_short,
            l.beyond_header,
            l.file_tail
        );
    }
    if let Some(d) = &rep.device_access {
        let _ = writeln!(
            o,
            "  device {}: {}",
            d.path.display(),
            match d.open {
                Ok(()) => "can be opened read-write with O_DIRECT (device mode possible)".to_string(),
                Err(e) => format!("cannot be opened read-write with O_DIRECT: {e} (device mode impossible)"),
            }
        );
    }
    let _ = writeln!(o, "  swapdio --mode {}: {}", mode_request_name(rep.mode), verdict_text(&rep.swapdio));
    let _ = writeln!(
        o,
        "  exit status follows: {}",
        if rep.primary_name() == "swapdio" {
            "swapdio's verdict (--mode device|file)"
        } else {
            "the swapon prediction"
        }
    );
    if rep.layout.as_ref().is_some_and(|l| l.fs == FsKind::Btrfs) {
        let _ = writeln!(o, "  note: on btrfs FIEMAP gives btrfs logical addresses (listed above); the swapon prediction maps them through the chunk tree; swapdio drives btrfs in file mode only");
    }
    o
}

/// Runs `swapdio check`.
pub fn run(args: Args, json: bool) -> ExitCode {
    let mode = match args.mode {
        Mode::Auto => ModeRequest::Auto,
        Mode::Device => ModeRequest::Device,
        Mode::File => ModeRequest::File,
    };
    let rep = match crate::target::check(&args.path, mode) {
        Ok(rep) => rep,
        Err(e) => return crate::usage_error("check", &e, json),
    };
    let text = if json {
        serde_json::to_string_pretty(&rep.to_json()).unwrap_or_default() + "\n"
    } else {
        render_text(&rep, args.all_extents)
    };
    // A closed stdout (`| head -1`) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    if rep.primary().is_usable() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
