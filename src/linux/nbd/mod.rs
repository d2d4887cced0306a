//! Swap on an NBD export: a remote block device served by nbdkit, qemu-nbd, or Ceph
//! RBD through rbd-nbd, driven by the engine like a local disk.
//!
//! The export is activated the way the kernel activates a block device
//! (`claim_swapfile` with a bdev, one extent `[0, size)` in `setup_swap_extents`):
//! page 0 holds the `SWAPSPACE2` header ([`mkswap`] writes it), device mode, slot `n`
//! at byte `n * PAGE_SIZE`. [`activate`] reads the header over NBD and runs the core's
//! activation; [`NbdBackend`] then moves the engine's requests.
//!
//! * [`uri`]: `nbd://host[:port]/export` and `nbd+unix:///export?socket=PATH`.
//! * [`proto`]: the wire format, pure functions (fuzzed).
//! * [`conn`]: sockets, the fixed newstyle handshake (`NBD_OPT_GO` with block size
//!   constraints, structured replies when offered), a one-at-a-time client.
//! * [`replies`]: the reply reader shared by the driver and the fuzz target.
//! * [`NbdBackend`]: the driver (connections, cookies, reconnect, FUA/flush).
//!
//! Using it for real swap (the kernel's NBD client marks its sockets for memory-reclaim
//! use, `sk_set_memalloc`; a userspace swapper must do the equivalent): the process
//! that swaps over NBD must not itself need memory the swap is there to free. Call
//! [`prepare_for_swap_io`] (`PR_SET_IO_FLUSHER` and `mlockall`) first; the `swapdio` CLI
//! does so for NBD targets.

pub mod conn;
pub mod driver;
pub mod proto;
pub mod replies;
pub mod uri;

pub use conn::{Export, NbdClient, NbdError};
pub use driver::{FuaPolicy, NbdBackend, NbdConfig, NbdCounters, NbdStats};
pub use uri::{is_nbd_uri, NbdUri};

use super::check::{ActivationPath, CheckReport, NbdTarget, RefusalInfo, Verdict};
use super::claim::Target;
use super::layout::{FileLayout, FsKind};
use crate::activate::{activate_owned, ActivationReport, ExtentFlags, ExtentReport};
use crate::caps::{FileAttrs, ModeRequest};
use crate::errno::Errno;
use crate::header::SwapHeader;
use crate::map::{MapEntry, SwapMap};
use crate::PAGE_SIZE;
use std::path::{Path, PathBuf};

/// The layout of an export as swapon sees a block device: one extent `[0, size)` at
/// device offset 0, device mode possible. `path` is the URI.
pub fn layout(uri: &NbdUri, export: &Export) -> FileLayout {
    let size = export.size;
    FileLayout {
        path: PathBuf::from(uri.to_string()),
        file_size: size,
        extents: vec![ExtentReport { logical: 0, physical: 0, length: size, flags: ExtentFlags::empty(), device: 0 }],
        attrs: FileAttrs::empty(),
        fs: FsKind::BlockDevice,
        block_size: u64::from(export.block_size.1),
        device: 0,
        device_path: Some(PathBuf::from(uri.to_string())),
        inode: 0,
        allocated_bytes: size,
        extent_map: true,
    }
}

/// An activated export: the layout, the export, the map and the activation report.
#[derive(Debug)]
pub struct ActivatedExport {
    /// The export's layout ([`layout`]).
    pub layout: FileLayout,
    /// The export as the handshake described it.
    pub export: Export,
    /// The slot map (device mode: slot `n` at `n * PAGE_SIZE`).
    pub map: SwapMap<Vec<MapEntry>>,
    /// What activation found.
    pub report: ActivationReport,
}

/// Why an export could not be activated.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// Connecting or reading the header failed.
    #[error("{0}")]
    Nbd(#[from] NbdError),
    /// The core's activation refused the export.
    #[error("{0}")]
    Refused(#[from] crate::activate::ActivationError),
}

fn read_header(uri: &NbdUri) -> Result<(Export, Vec<u8>), NbdError> {
    let mut c = NbdClient::connect(uri)?;
    let export = *c.export();
    Ok((export, header_page(&mut c)?))
}

/// Page 0 of the export (zero-filled past its end).
fn header_page(c: &mut NbdClient) -> Result<Vec<u8>, NbdError> {
    let mut page = vec![0u8; PAGE_SIZE];
    let n = c.export().size.min(PAGE_SIZE as u64) as usize;
    c.read_at(0, &mut page[..n])?;
    Ok(page)
}

/// Why swapdio does not drive an export in file mode: its NBD driver is a block-device
/// driver (slot `n` at byte `n * PAGE_SIZE` of the export); there is no file to map.
pub const FILE_MODE_REFUSED: &str =
    "an NBD export is a block device: swapdio drives it in device mode only (drop --mode file)";

/// swapon of an export: reads page 0 over NBD, refuses an export that cannot hold swap
/// (read-only, tiny, block size above a page), and runs the core's activation in
/// `mode` with block-device capabilities.
pub fn activate(uri: &NbdUri, mode: ModeRequest) -> Result<ActivatedExport, ActivateError> {
    let (export, page) = read_header(uri)?;
    export.check_swappable()?;
    let layout = layout(uri, &export);
    let (map, report) = activate_owned(&layout.activation_request(&page, mode))?;
    Ok(ActivatedExport { layout, export, map, report })
}

/// `swapdio check` on an export: the kernel's verdict (block swap on a device, as for
/// the export attached as `/dev/nbdN`) and swapdio's in `mode` (device mode only:
/// [`FILE_MODE_REFUSED`]), as [`super::check::check`] gives them for a file. The report
/// carries the export's handshake ([`super::check::NbdTarget`]) once it connected.
pub fn check(uri: &NbdUri, mode: ModeRequest) -> CheckReport {
    let mut rep =
        CheckReport { nbd: Some(NbdTarget { export: None }), ..CheckReport::new(Path::new(&uri.to_string()), mode) };
    let refuse = |rep: &mut CheckReport, e: NbdError| {
        let info = RefusalInfo::plain(e.errno(), e.to_string());
        rep.kernel = Verdict::Refused(info.clone());
        rep.swapdio = Verdict::Refused(info);
    };
    let mut c = match NbdClient::connect(uri) {
        Ok(c) => c,
        Err(e) => {
            refuse(&mut rep, e);
            return rep;
        }
    };
    let export = *c.export();
    rep.nbd = Some(NbdTarget { export: Some(export) });
    rep.target = Some(Target::BlockDevice);
    let page = match export.check_swappable().and_then(|_| header_page(&mut c)) {
        Ok(p) => p,
        Err(e) => {
            refuse(&mut rep, e);
            return rep;
        }
    };
    drop(c);
    let layout = layout(uri, &export);
    rep.header = SwapHeader::parse(&page).ok();
    rep.bad_pages =
        rep.header.map(|h| (0..h.nr_badpages).map_while(|i| h.bad_page(&page, i)).collect()).unwrap_or_default();
    rep.path_kind = ActivationPath::BlockDevice;
    rep.kernel = Verdict::from_result(activate_owned(&layout.kernel_request(&page)).map(|(_, r)| r));
    rep.swapdio = if mode == ModeRequest::File {
        Verdict::Refused(RefusalInfo::plain(Errno::EINVAL, FILE_MODE_REFUSED))
    } else {
        Verdict::from_result(activate_owned(&layout.activation_request(&page, mode)).map(|(_, r)| r))
    };
    rep.layout = Some(layout);
    rep
}

/// mkswap on an export: writes the `SWAPSPACE2` header (random UUID, no label) into page
/// 0 with FUA and flushes. The swap area covers `size` bytes (default: the whole export,
/// rounded down to pages). Returns the header written. Like mkswap on a block device it
/// writes nothing else.
pub fn mkswap(uri: &NbdUri, size: Option<u64>) -> Result<SwapHeader, ActivateError> {
    let mut c = NbdClient::connect(uri)?;
    let export = *c.export();
    export.check_swappable()?;
    let size = size.unwrap_or(export.size);
    if size > export.size {
        return Err(NbdError::Unusable("size larger than the export").into());
    }
    let pages = size / PAGE_SIZE as u64;
    let header = SwapHeader::new(pages, super::mkswap::random_uuid(), [0; 16])
        .map_err(|h| crate::activate::ActivationError::from(crate::activate::Refusal::Header(h)))?;
    let mut page = vec![0u8; PAGE_SIZE];
    header.write(&mut page).map_err(|h| crate::activate::ActivationError::from(crate::activate::Refusal::Header(h)))?;
    c.write_at(0, &page)?;
    c.flush()?;
    Ok(header)
}

/// Prepares the calling process to do swap I/O over the network, as the kernel's own
/// swap paths are exempt from reclaim: `PR_SET_IO_FLUSHER` (allocations of this
/// process's threads behave as `GFP_NOIO`, so they never wait for the I/O they are
/// doing, as `nbd-client` and `rbd-nbd` set it) and `mlockall(MCL_CURRENT | MCL_FUTURE)`
/// (its own pages are never swapped out, so serving a fault never faults).
/// `PR_SET_IO_FLUSHER` needs `CAP_SYS_RESOURCE`; both results are returned, neither is
/// fatal to a test run.
pub fn prepare_for_swap_io() -> (std::io::Result<()>, std::io::Result<()>) {
    const PR_SET_IO_FLUSHER: libc::c_int = 57;
    // SAFETY: prctl with integer arguments only.
    let flusher = unsafe { libc::prctl(PR_SET_IO_FLUSHER, 1 as libc::c_ulong, 0 as libc::c_ulong, 0, 0) };
    let flusher = if flusher == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) };
    // SAFETY: mlockall takes flags only.
    let locked = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) };
    let locked = if locked == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) };
    (flusher, locked)
}
