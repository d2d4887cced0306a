//! Dry-run swapon: would the kernel accept this file, and how much of it?
//!
//! Follows the order of `SYSCALL_DEFINE2(swapon)` in `mm/swapfile.c`: claim the file
//! (`EBUSY` if it is already swap or a mounted device), read page 0 and validate the
//! header (`read_swap_header`), then the filesystem's `swap_activate` extent walk. The
//! walk is the core's [`activate_owned`] fed with the layout from [`probe`]. This is the
//! library path `swapdio check` uses and the differential tests compare with the kernel.
//!
//! Also holds thin wrappers for the real `swapon(2)`/`swapoff(2)`, used to compare.

use super::layout::{probe, read_header, FileLayout, LayoutError};
use crate::activate::{activate_owned, ActivationError, ActivationReport, ExtentFlags, Refusal};
use crate::caps::{IoMode, ModeRequest};
use crate::errno::Errno;
use crate::header::{HeaderLimits, SwapHeader};
#[cfg(feature = "serde")]
use serde_json::{json, Value};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Why a file was refused, as swapon would say it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusalInfo {
    /// The kernel's message (dmesg), or ours where the kernel has none.
    pub reason: String,
    /// What `swapon(2)` returns.
    pub errno: Errno,
    /// Index of the offending FIEMAP extent, if one is to blame.
    pub extent: Option<usize>,
    /// File offset of the problem, if known.
    pub offset: Option<u64>,
    /// The typed activation refusal, when activation (not the probe) refused.
    pub refusal: Option<Refusal>,
}

impl From<ActivationError> for RefusalInfo {
    fn from(e: ActivationError) -> Self {
        RefusalInfo {
            reason: e.refusal.to_string(),
            errno: e.errno(),
            extent: e.extent,
            offset: e.offset,
            refusal: Some(e.refusal),
        }
    }
}

impl From<&LayoutError> for RefusalInfo {
    fn from(e: &LayoutError) -> Self {
        RefusalInfo { reason: e.to_string(), errno: e.errno(), extent: None, offset: None, refusal: None }
    }
}

/// The outcome of one (dry-run) activation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted: what `/proc/swaps` would show and what trimming cost.
    Usable(ActivationReport),
    /// Refused.
    Refused(RefusalInfo),
}

impl Verdict {
    /// Whether the file would be accepted.
    pub fn is_usable(&self) -> bool {
        matches!(self, Verdict::Usable(_))
    }

    /// Usable size in KiB as `/proc/swaps` shows it, when accepted.
    pub fn usable_kib(&self) -> Option<u64> {
        match self {
            Verdict::Usable(r) => Some(r.usable_kib()),
            Verdict::Refused(_) => None,
        }
    }

    /// The errno `swapon(2)` would return, when refused.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Verdict::Usable(_) => None,
            Verdict::Refused(r) => Some(r.errno),
        }
    }

    pub(crate) fn from_result(r: Result<ActivationReport, ActivationError>) -> Verdict {
        match r {
            Ok(rep) => Verdict::Usable(rep),
            Err(e) => Verdict::Refused(e.into()),
        }
    }

    /// JSON form: `usable`, and either the report (usable KiB, mode, slots, extents,
    /// span, lowest/highest page, bytes lost by cause) or the refusal (reason, errno).
    #[cfg(feature = "serde")]
    pub fn to_json(&self) -> Value {
        match self {
            Verdict::Usable(r) => json!({
                "usable": true,
                "usable_kib": r.usable_kib(),
                "mode": mode_name(r.mode),
                "usable_pages": r.usable_pages,
                "slots": r.slots,
                "header_pages": r.header_pages,
                "extents": r.extents,
                "span_pages": r.span_pages,
                "lowest_page": r.lowest_page,
                "highest_page": r.highest_page,
                "lost_bytes": {
                    "misaligned": r.lost.misaligned,
                    "too_short": r.lost.too_short,
                    "beyond_header": r.lost.beyond_header,
                    "file_tail": r.lost.file_tail,
                    "total": r.lost.total(),
                },
            }),
            Verdict::Refused(r) => json!({
                "usable": false,
                "reason": r.reason,
                "errno": r.errno.0,
                "errno_name": r.errno.name(),
                "extent": r.extent,
                "offset": r.offset,
            }),
        }
    }
}

/// The name of an I/O mode ("device", "file").
pub fn mode_name(m: IoMode) -> &'static str {
    match m {
        IoMode::Device => "device",
        IoMode::File => "file",
    }
}

/// The name of a mode request ("auto", "device", "file").
pub fn mode_request_name(m: ModeRequest) -> &'static str {
    match m {
        ModeRequest::Auto => "auto",
        ModeRequest::Device => "device",
        ModeRequest::File => "file",
    }
}

/// Everything `swapdio check` reports.
#[derive(Clone, Debug)]
pub struct CheckReport {
    /// The file checked.
    pub path: PathBuf,
    /// Its layout, when it could be read.
    pub layout: Option<FileLayout>,
    /// The parsed header, when page 0 holds one.
    pub header: Option<SwapHeader>,
    /// What the kernel's swapon would decide (block swap on ext4/xfs/btrfs).
    pub kernel: Verdict,
    /// The mode asked of swapdio.
    pub mode: ModeRequest,
    /// What swapdio's own drivers would get in `mode` ([`FileLayout::caps`]).
    pub swapdio: Verdict,
}

impl CheckReport {
    /// The verdict the command's exit status follows: the kernel's for
    /// [`ModeRequest::Auto`] (a dry-run swapon), swapdio's for an explicit mode.
    pub fn primary(&self) -> &Verdict {
        match self.mode {
            ModeRequest::Auto => &self.kernel,
            _ => &self.swapdio,
        }
    }

    /// JSON form of the whole report.
    #[cfg(feature = "serde")]
    pub fn to_json(&self) -> Value {
        let layout = self.layout.as_ref().map(|l| {
            json!({
                "fs": l.fs.name(),
                "file_size": l.file_size,
                "allocated_bytes": l.allocated_bytes,
                "block_size": l.block_size,
                "device": l.device,
                "device_path": l.device_path.as_ref().map(|p| p.display().to_string()),
                "attrs": l.attrs.iter_names().map(|(n, _)| n).collect::<Vec<_>>(),
                "extent_map": l.extent_map,
                "physical_span": l.physical_span().map(|(lo, hi)| json!({"start": lo, "end": hi})),
                "extents": l.extents.iter().map(|e| json!({
                    "logical": e.logical,
                    "physical": e.physical,
                    "length": e.length,
                    "flags": flag_names(e.flags),
                })).collect::<Vec<_>>(),
            })
        });
        json!({
            "path": self.path.display().to_string(),
            "usable": self.primary().is_usable(),
            "verdict": self.primary().to_json(),
            "kernel": self.kernel.to_json(),
            "swapdio": { "mode_requested": mode_request_name(self.mode), "verdict": self.swapdio.to_json() },
            "header": self.header.map(|h| json!({"version": h.version, "last_page": h.last_page, "byte_swapped": h.byte_swapped})),
            "layout": layout,
        })
    }
}

/// Names of the flags set in `f` ("UNWRITTEN", "SHARED", ...).
pub fn flag_names(f: ExtentFlags) -> Vec<&'static str> {
    f.iter_names().map(|(n, _)| n).collect()
}

/// Dry-run swapon of `path`, plus swapdio's own activation in `mode`.
///
/// Never fails: a file that cannot be read is a refusal with the errno the system call
/// gave. The header is judged before the extent walk, as swapon does.
pub fn check(path: &Path, mode: ModeRequest) -> CheckReport {
    let header_page = read_header(path);
    let header = header_page.as_ref().ok().and_then(|p| SwapHeader::parse(p).ok());
    let refused = |info: RefusalInfo| CheckReport {
        path: path.to_path_buf(),
        layout: None,
        header,
        kernel: Verdict::Refused(info.clone()),
        mode,
        swapdio: Verdict::Refused(info),
    };
    let layout = match probe(path) {
        Ok(l) => l,
        Err(e @ LayoutError::NoExtentMap { .. }) => {
            // swapon reads the header before asking the filesystem for its layout.
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            let hdr = header_page.as_ref().map_err(RefusalInfo::from).and_then(|p| {
                SwapHeader::parse(p)
                    .and_then(|h| h.validate(size, HeaderLimits::default()))
                    .map_err(|h| RefusalInfo::from(ActivationError::from(Refusal::Header(h))))
            });
            return refused(hdr.err().unwrap_or_else(|| RefusalInfo::from(&e)));
        }
        Err(e) => return refused(RefusalInfo::from(&e)),
    };
    let page = match header_page {
        Ok(p) => p,
        Err(e) => return CheckReport { layout: Some(layout), ..refused(RefusalInfo::from(&e)) },
    };
    let kernel = Verdict::from_result(activate_owned(&layout.kernel_request(&page)).map(|(_, r)| r));
    let swapdio = Verdict::from_result(activate_owned(&layout.activation_request(&page, mode)).map(|(_, r)| r));
    CheckReport { path: path.to_path_buf(), layout: Some(layout), header, kernel, mode, swapdio }
}

fn c_path(path: &Path) -> Result<CString, Errno> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

/// The real `swapon(2)` (flags as in `<sys/swap.h>`, 0 for defaults). Needs
/// `CAP_SYS_ADMIN`. Returns the errno on failure.
pub fn swapon(path: &Path, flags: i32) -> Result<(), Errno> {
    let p = c_path(path)?;
    // SAFETY: `p` is a valid NUL-terminated string that outlives the call.
    let rc = unsafe { libc::swapon(p.as_ptr(), flags) };
    if rc < 0 {
        return Err(Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(Errno::EIO.0)));
    }
    Ok(())
}

/// The real `swapoff(2)`. Returns the errno on failure.
pub fn swapoff(path: &Path) -> Result<(), Errno> {
    let p = c_path(path)?;
    // SAFETY: `p` is a valid NUL-terminated string that outlives the call.
    let rc = unsafe { libc::swapoff(p.as_ptr()) };
    if rc < 0 {
        return Err(Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(Errno::EIO.0)));
    }
    Ok(())
}
