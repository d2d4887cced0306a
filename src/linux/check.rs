//! Dry-run swapon: would the kernel accept this file, and how much of it?
//!
//! Follows the order of `SYSCALL_DEFINE2(swapon)` in `mm/swapfile.c`:
//! 1. the open-and-claim step ([`super::claim`]: `EROFS`, `EPERM`, `ETXTBSY`, `EISDIR`,
//!    `EBUSY`, ...), decided before anything is read;
//! 2. `read_folio` must exist: tmpfs, overlayfs and the pseudo filesystems (proc, sysfs,
//!    ...: [`super::layout::NO_READ_FOLIO`]) have none (`EINVAL`);
//! 3. page 0 is read and the header validated (`read_swap_header`; bad pages only on
//!    block devices);
//! 4. the activation path the filesystem has ([`ActivationPath`]): a block device whole
//!    (`setup_swap_map` with its bad pages), the iomap walk over FIEMAP (ext2/3/4, xfs),
//!    btrfs's own walk with its checks and chunk mapping ([`super::btrfs`]), the legacy
//!    `generic_swapfile_activate` with FIBMAP (FUSE and every other filesystem with
//!    `->bmap`, [`super::bmap`]), or NFS's `swap_rw` (file mode, opaque layout).
//!
//! The result is a prediction of `swapon(2)` (verdict, errno, message, usable KiB,
//! extents, span), next to what swapdio's own drivers could do with the file in the
//! requested mode. This is the library path `swapdio check` uses and the differential
//! tests (`tests/kernel_diff/`) compare with the kernel.
//!
//! Also holds thin wrappers for the real `swapon(2)`/`swapoff(2)`, used to compare.

use super::bmap::{fibmap, generic_activate, BmapError};
use super::btrfs;
use super::claim::{claim, device_openable, os_msg, ClaimRefusal, Target};
use super::layout::{fstatfs, probe, read_header, FileLayout, FsKind, LayoutError};
use crate::activate::{activate_owned, ActivationError, ActivationReport, ExtentFlags, Layout, Refusal};
use crate::caps::{BackendCaps, IoMode, ModeRequest};
use crate::errno::Errno;
use crate::header::{HeaderLimits, SwapHeader, SwapTarget};
#[cfg(feature = "serde")]
use crate::PAGE_SIZE;
#[cfg(feature = "serde")]
use serde_json::{json, Value};
use std::ffi::CString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
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
    /// The error's text without its errno: [`Verdict`]'s text names the errno beside it.
    fn from(e: &LayoutError) -> Self {
        let reason = match e {
            LayoutError::Io { op, path, source } => format!("{}: {op}: {}", path.display(), os_msg(source)),
            e => e.to_string(),
        };
        RefusalInfo::plain(e.errno(), reason)
    }
}

impl From<ClaimRefusal> for RefusalInfo {
    fn from(e: ClaimRefusal) -> Self {
        RefusalInfo::plain(e.errno, e.reason)
    }
}

impl RefusalInfo {
    /// A refusal that is not the activation walk's: an errno and a reason.
    pub fn plain(errno: Errno, reason: impl Into<String>) -> RefusalInfo {
        RefusalInfo { reason: reason.into(), errno, extent: None, offset: None, refusal: None }
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

    /// JSON form: `usable`, and either the report (usable KiB, mode, slots, bad pages,
    /// extents, span in pages and KiB, lowest/highest page, bytes lost by cause) or the
    /// refusal (reason, errno and its name).
    #[cfg(feature = "serde")]
    pub fn to_json(&self) -> Value {
        match self {
            Verdict::Usable(r) => json!({
                "usable": true,
                "usable_kib": r.usable_kib(),
                "mode": mode_name(r.mode),
                "usable_pages": r.usable_pages,
                "slots": r.slots,
                "bad_pages": r.bad_pages,
                "header_pages": r.header_pages,
                "extents": r.extents,
                "span_pages": r.span_pages,
                "span_kib": r.span_pages * (PAGE_SIZE as u64 / 1024),
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

/// How the kernel activates the target: which of swapon's paths applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActivationPath {
    /// A whole block device: `setup_swap_map` (bad pages) and one extent.
    BlockDevice,
    /// `iomap_swapfile_activate` over the extent map (ext2/3/4, xfs), read with FIEMAP.
    Iomap,
    /// `btrfs_swap_activate`: btrfs's checks, FIEMAP mapped through the chunk tree.
    Btrfs,
    /// `generic_swapfile_activate`: page by page with `bmap`, read with FIBMAP.
    GenericBmap,
    /// `nfs_swap_activate`: file mode (`SWP_FS_OPS`), holes from `i_blocks`.
    SwapRw,
    /// The claim or the `read_folio` test refused before any path was chosen.
    None,
}

impl ActivationPath {
    /// A short name ("block-device", "iomap", "btrfs", "generic-bmap", "swap_rw", "none").
    pub fn name(self) -> &'static str {
        match self {
            ActivationPath::BlockDevice => "block-device",
            ActivationPath::Iomap => "iomap",
            ActivationPath::Btrfs => "btrfs",
            ActivationPath::GenericBmap => "generic-bmap",
            ActivationPath::SwapRw => "swap_rw",
            ActivationPath::None => "none",
        }
    }
}

/// Whether swapdio's device mode can open the block device under the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceAccess {
    /// The block device node.
    pub path: PathBuf,
    /// `Ok` if a read-write `O_DIRECT` open works, else its errno.
    pub open: Result<(), Errno>,
}

/// What kind of swap area was checked, as `swapdio check` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// A regular file on a filesystem: its extents come from FIEMAP (or FIBMAP).
    File,
    /// A local block device, swapped on whole (`claim_swapfile` with a bdev).
    BlockDevice,
    /// An NBD export: a remote block device, swapped on whole; no local device node,
    /// no filesystem, no FIEMAP.
    NbdExport,
}

impl TargetKind {
    /// Its name in text and JSON ("file", "block-device", "nbd-export").
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::File => "file",
            TargetKind::BlockDevice => "block-device",
            TargetKind::NbdExport => "nbd-export",
        }
    }
}

/// What `swapdio check` learnt of an NBD export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NbdTarget {
    /// The export as its handshake (`NBD_OPT_GO`) described it; `None` when the
    /// connection or the handshake failed.
    pub export: Option<super::nbd::Export>,
}

/// Everything `swapdio check` reports.
#[derive(Clone, Debug)]
pub struct CheckReport {
    /// The file checked (for an NBD export: its URI).
    pub path: PathBuf,
    /// File or block device, once `stat` worked (an NBD export counts as a block device
    /// for the activation rules; [`CheckReport::target_kind`] tells it apart).
    pub target: Option<Target>,
    /// Set when the target is an NBD export rather than a path.
    pub nbd: Option<NbdTarget>,
    /// The kernel's activation path for it.
    pub path_kind: ActivationPath,
    /// Its layout (FIEMAP), when it could be read.
    pub layout: Option<FileLayout>,
    /// The parsed header, when page 0 holds one.
    pub header: Option<SwapHeader>,
    /// The header's bad-page list (block devices may carry one).
    pub bad_pages: Vec<u32>,
    /// swapdio's **prediction** of `swapon(2)`: verdict, errno, message, usable KiB,
    /// extents and span as the kernel would report them.
    pub kernel: Verdict,
    /// The mode asked of swapdio.
    pub mode: ModeRequest,
    /// What swapdio's own drivers would get in `mode` ([`FileLayout::caps`], and whether
    /// the device can be opened for device mode).
    pub swapdio: Verdict,
    /// For device mode: can the block device be opened read-write with `O_DIRECT`.
    pub device_access: Option<DeviceAccess>,
    /// util-linux-style warnings (permissions, owner) and fscrypt.
    pub warnings: Vec<String>,
}

impl CheckReport {
    /// A report for `path` with nothing found yet: both verdicts "not checked" (`EINVAL`).
    pub fn new(path: &Path, mode: ModeRequest) -> CheckReport {
        CheckReport {
            path: path.to_path_buf(),
            target: None,
            nbd: None,
            path_kind: ActivationPath::None,
            layout: None,
            header: None,
            bad_pages: Vec::new(),
            kernel: Verdict::Refused(RefusalInfo::plain(Errno::EINVAL, "not checked")),
            mode,
            swapdio: Verdict::Refused(RefusalInfo::plain(Errno::EINVAL, "not checked")),
            device_access: None,
            warnings: Vec::new(),
        }
    }

    /// What was checked: a file, a local block device or an NBD export (`None` when
    /// not even that could be found out: a missing path).
    pub fn target_kind(&self) -> Option<TargetKind> {
        if self.nbd.is_some() {
            return Some(TargetKind::NbdExport);
        }
        self.target.map(|t| match t {
            Target::File => TargetKind::File,
            Target::BlockDevice => TargetKind::BlockDevice,
        })
    }

    /// Where the layout's extents come from: "fiemap" (a file's extent map), "none" (a
    /// file without one: opaque, file mode only), "whole-device" or "whole-export" (a
    /// block device or an export is one extent `[0, size)`; nothing is asked of FIEMAP).
    pub fn extent_source(&self) -> Option<&'static str> {
        let l = self.layout.as_ref()?;
        Some(match self.target_kind() {
            Some(TargetKind::NbdExport) => "whole-export",
            Some(TargetKind::BlockDevice) => "whole-device",
            _ if l.extent_map => "fiemap",
            _ => "none",
        })
    }

    /// The verdict the command's exit status follows: the swapon prediction for
    /// [`ModeRequest::Auto`] (a dry-run swapon), swapdio's own for an explicit mode.
    pub fn primary(&self) -> &Verdict {
        match self.mode {
            ModeRequest::Auto => &self.kernel,
            _ => &self.swapdio,
        }
    }

    /// The JSON key of [`CheckReport::primary`] ("swapon_prediction" or "swapdio").
    pub fn primary_name(&self) -> &'static str {
        match self.mode {
            ModeRequest::Auto => "swapon_prediction",
            _ => "swapdio",
        }
    }

    /// JSON form of the whole report: `swapon_prediction` (what `swapon(2)` would do),
    /// `swapdio` (what swapdio's drivers could do in the requested mode, with the device
    /// access), and `exit_status_follows` naming which of the two `usable` and the exit
    /// status are about. `target` is "file", "block-device" or "nbd-export"; for an
    /// export `nbd` describes it and the layout names no local device (`device`,
    /// `device_path` and `allocated_bytes` are null); `layout.extent_source` says
    /// where the extents come from ([`CheckReport::extent_source`]).
    #[cfg(feature = "serde")]
    pub fn to_json(&self) -> Value {
        let kind = self.target_kind();
        let local = kind != Some(TargetKind::NbdExport);
        let layout = self.layout.as_ref().map(|l| {
            json!({
                // A file's filesystem; for a block device or an export, what it is.
                "fs": match kind {
                    Some(TargetKind::File) | None => l.fs.name(),
                    Some(k) => k.name().to_string(),
                },
                "file_size": l.file_size,
                "allocated_bytes": local.then_some(l.allocated_bytes),
                "block_size": l.block_size,
                "device": local.then_some(l.device),
                "device_path": l.device_path.as_ref().filter(|_| local).map(|p| p.display().to_string()),
                "attrs": l.attrs.iter_names().map(|(n, _)| n).collect::<Vec<_>>(),
                "extent_map": l.extent_map,
                "extent_source": self.extent_source(),
                "physical_span": l.physical_span().map(|(lo, hi)| json!({"start": lo, "end": hi})),
                "extents": l.extents.iter().map(|e| json!({
                    "logical": e.logical,
                    "physical": e.physical,
                    "length": e.length,
                    "flags": flag_names(e.flags),
                })).collect::<Vec<_>>(),
            })
        });
        let nbd = self.nbd.map(|n| {
            n.export
                .map(|e| {
                    json!({
                        "connected": true,
                        "size": e.size,
                        "read_only": e.read_only(),
                        "can_flush": e.can_flush(),
                        "can_fua": e.can_fua(),
                        "can_multi_conn": e.can_multi_conn(),
                        "structured_replies": e.structured,
                        "block_size": {
                            "minimum": e.block_size.0,
                            "preferred": e.block_size.1,
                            "maximum": e.block_size.2,
                        },
                    })
                })
                .unwrap_or_else(|| json!({"connected": false}))
        });
        let device = self.device_access.as_ref().map(|d| {
            json!({
                "path": d.path.display().to_string(),
                "openable": d.open.is_ok(),
                "errno": d.open.err().map(|e| e.0),
                "errno_name": d.open.err().and_then(|e| e.name()),
            })
        });
        json!({
            "path": self.path.display().to_string(),
            "target": kind.map(TargetKind::name),
            "activation_path": self.path_kind.name(),
            "exit_status_follows": self.primary_name(),
            "usable": self.primary().is_usable(),
            "swapon_prediction": self.kernel.to_json(),
            "swapdio": {
                "mode_requested": mode_request_name(self.mode),
                "verdict": self.swapdio.to_json(),
                "device": device,
            },
            "header": self.header.map(|h| json!({
                "version": h.version,
                "last_page": h.last_page,
                "nr_badpages": h.nr_badpages,
                "bad_pages": self.bad_pages,
                "byte_swapped": h.byte_swapped,
            })),
            "layout": layout,
            "nbd": nbd,
            "warnings": self.warnings,
        })
    }
}

/// Names of the flags set in `f` ("UNWRITTEN", "SHARED", ...).
pub fn flag_names(f: ExtentFlags) -> Vec<&'static str> {
    f.iter_names().map(|(n, _)| n).collect()
}

/// Dry-run swapon of `path`, plus swapdio's own activation in `mode`.
///
/// Never fails and never blocks: a target that cannot be claimed, read or mapped is a
/// refusal with the errno `swapon(2)` would give. Steps in swapon's order (module docs).
pub fn check(path: &Path, mode: ModeRequest) -> CheckReport {
    let mut rep = CheckReport::new(path, mode);
    let refuse_both = |rep: &mut CheckReport, info: RefusalInfo| {
        rep.kernel = Verdict::Refused(info.clone());
        rep.swapdio = Verdict::Refused(info);
    };
    // 1. The open-and-claim step.
    let claimed = match claim(path) {
        Ok(c) => c,
        Err(e) => {
            refuse_both(&mut rep, e.into());
            return rep;
        }
    };
    rep.target = Some(claimed.target);
    rep.warnings = claimed.warnings;
    // 2. read_folio, and which activation path the filesystem has.
    let (fs, block_bits) = match claimed.target {
        Target::BlockDevice => (FsKind::BlockDevice, 12),
        Target::File => match File::open(path).and_then(|f| fstatfs(&f)) {
            #[allow(clippy::unnecessary_cast)] // `f_type` is not i64 on every architecture
            Ok(st) => (FsKind::from_magic(st.f_type as i64), claimed.meta.blksize().trailing_zeros()),
            Err(e) => {
                refuse_both(&mut rep, RefusalInfo::plain(Errno(e.raw_os_error().unwrap_or(5)), os_msg(&e)));
                return rep;
            }
        },
    };
    if !fs.has_read_folio() {
        let why = format!("{fs} has no read_folio: swapon cannot read the swap header through it (no swap on {fs})");
        refuse_both(&mut rep, RefusalInfo::plain(Errno::EINVAL, why));
        return rep;
    }
    rep.path_kind = match fs {
        FsKind::BlockDevice => ActivationPath::BlockDevice,
        FsKind::Ext4 | FsKind::Xfs => ActivationPath::Iomap,
        FsKind::Btrfs => ActivationPath::Btrfs,
        FsKind::Nfs => ActivationPath::SwapRw,
        _ => ActivationPath::GenericBmap,
    };
    // 3. Page 0 and read_swap_header.
    let page = match read_header(path) {
        Ok(p) => p,
        Err(e) => {
            refuse_both(&mut rep, RefusalInfo::from(&e));
            return rep;
        }
    };
    let size = match claimed.target {
        Target::File => claimed.meta.len(),
        Target::BlockDevice => {
            File::open(path).and_then(|mut f| std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0))).unwrap_or(0)
        }
    };
    let target = match claimed.target {
        Target::File => SwapTarget::File,
        Target::BlockDevice => SwapTarget::BlockDevice,
    };
    let maxpages = SwapHeader::parse(&page).and_then(|h| {
        rep.header = Some(h);
        rep.bad_pages = (0..h.nr_badpages).map_while(|i| h.bad_page(&page, i)).collect();
        h.validate_for(target, size, HeaderLimits::default())
    });
    let maxpages = match maxpages {
        Ok(m) => m,
        Err(h) => {
            refuse_both(&mut rep, ActivationError::from(Refusal::Header(h)).into());
            return rep;
        }
    };
    // 4. The filesystem's activation, and swapdio's own.
    let layout = match probe(path) {
        Ok(l) => l,
        Err(e) => {
            let info = RefusalInfo::from(&e);
            rep.swapdio = Verdict::Refused(info.clone());
            rep.kernel = match rep.path_kind {
                ActivationPath::GenericBmap => generic_verdict(path, size, block_bits, maxpages),
                _ => Verdict::Refused(info),
            };
            return rep;
        }
    };
    rep.kernel = match rep.path_kind {
        ActivationPath::GenericBmap => generic_verdict(path, size, block_bits, maxpages),
        ActivationPath::Btrfs => btrfs_verdict(path, &layout, &page),
        _ => Verdict::from_result(activate_owned(&layout.kernel_request(&page)).map(|(_, r)| r)),
    };
    rep.swapdio = swapdio_verdict(&layout, &page, mode, &mut rep.device_access);
    rep.layout = Some(layout);
    rep
}

/// swapdio's own activation in `mode`; device mode needs the block device to open
/// read-write with `O_DIRECT` (auto falls back to file mode when it does not).
fn swapdio_verdict(layout: &FileLayout, page: &[u8], mode: ModeRequest, access: &mut Option<DeviceAccess>) -> Verdict {
    let mut req = layout.activation_request(page, mode);
    let wants_device = mode != ModeRequest::File && req.caps.contains(BackendCaps::DEVICE_IO);
    if let (true, Some(dev)) = (wants_device, layout.device_path.as_ref()) {
        let open = device_openable(dev);
        *access = Some(DeviceAccess { path: dev.clone(), open });
        if let Err(e) = open {
            if mode == ModeRequest::Device {
                let why = format!("device mode cannot open {} read-write with O_DIRECT", dev.display());
                return Verdict::Refused(RefusalInfo::plain(e, why));
            }
            req.caps = layout.caps().difference(BackendCaps::BLOCK_DEVICE)
                | BackendCaps::SWAP_RW
                | BackendCaps::OVERWRITE_IN_PLACE
                | BackendCaps::STABLE_ON_COMPLETE;
        }
    }
    Verdict::from_result(activate_owned(&req).map(|(_, r)| r))
}

/// `generic_swapfile_activate` with FIBMAP.
fn generic_verdict(path: &Path, size: u64, block_bits: u32, maxpages: u64) -> Verdict {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return Verdict::Refused(RefusalInfo::plain(Errno(e.raw_os_error().unwrap_or(5)), os_msg(&e))),
    };
    match generic_activate(size, block_bits, maxpages, |b| fibmap(&file, b)) {
        Ok((_, r)) => Verdict::Usable(r),
        Err(BmapError::Refused(e)) => Verdict::Refused(e.into()),
        Err(BmapError::Io(e)) => Verdict::Refused(RefusalInfo::plain(
            Errno(e.raw_os_error().unwrap_or(5)),
            format!("cannot read the block map with FIBMAP (needs CAP_SYS_RAWIO): {}", os_msg(&e)),
        )),
    }
}

/// `btrfs_swap_activate`: the file's attributes, then its extents mapped through the
/// chunk tree onto one device, then the common extent arithmetic.
fn btrfs_verdict(path: &Path, layout: &FileLayout, page: &[u8]) -> Verdict {
    let mut req = layout.kernel_request(page);
    // The attribute checks come before the walk (compression, copy-on-write).
    if let Err(e) = crate::caps::choose_mode(req.caps, req.attrs, ModeRequest::Auto) {
        return Verdict::Refused(ActivationError::from(Refusal::Caps(e)).into());
    }
    let chunks = match File::open(path).and_then(|f| btrfs::chunks(&f)) {
        Ok(c) => c,
        Err(e) => {
            return Verdict::Refused(RefusalInfo::plain(
                Errno(e.raw_os_error().unwrap_or(5)),
                format!("cannot read the btrfs chunk tree (BTRFS_IOC_TREE_SEARCH needs CAP_SYS_ADMIN): {}", os_msg(&e)),
            ))
        }
    };
    let mapped = match btrfs::map_to_device(&layout.extents, &chunks, layout.file_size) {
        Ok(m) => m,
        Err((i, why)) => {
            return Verdict::Refused(RefusalInfo {
                reason: why.to_string(),
                errno: Errno::EINVAL,
                extent: Some(i),
                offset: layout.extents.get(i).map(|e| e.logical),
                refusal: None,
            })
        }
    };
    req.layout = Layout::Extents(&mapped);
    req.main_device = mapped.first().map(|e| e.device).unwrap_or(0);
    match activate_owned(&req) {
        Ok((_, r)) => Verdict::Usable(r),
        Err(e) => {
            let mut info = RefusalInfo::from(e);
            if let Some(m) = btrfs::message(e.refusal) {
                info.reason = m.to_string();
            }
            Verdict::Refused(info)
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A refusal's reason never carries the errno: the verdict's text names it once.
    #[test]
    fn layout_io_refusal_reason_leaves_the_errno_to_the_verdict() {
        let e = LayoutError::Io { op: "read header", path: "/x".into(), source: std::io::Error::from_raw_os_error(5) };
        let info = RefusalInfo::from(&e);
        assert_eq!(info.errno, Errno::EIO);
        assert_eq!(info.reason, "/x: read header: Input/output error");
    }

    /// swapon refuses a file without `read_folio` before reading it: procfs, sysfs and
    /// the other pseudo filesystems as tmpfs and overlayfs.
    #[test]
    fn pseudo_filesystems_have_no_read_folio_and_are_einval() {
        let rep = check(Path::new("/proc/self/mem"), ModeRequest::Auto);
        assert_eq!(rep.kernel.errno(), Some(Errno::EINVAL), "{:?}", rep.kernel);
        assert_eq!(rep.path_kind, ActivationPath::None);
        assert!(!FsKind::from_magic(0x9fa0).has_read_folio() && FsKind::from_magic(0x9fa0).name() == "proc");
        assert!(FsKind::Ext4.has_read_folio() && !FsKind::Tmpfs.has_read_folio());
    }
}
