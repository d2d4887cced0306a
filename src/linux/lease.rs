//! The layout lease: the extent map recorded at activation, checked again at deactivation.
//!
//! The kernel freezes a swap file's extents at swapon and then *enforces* that they stay
//! put: `S_SWAPFILE` makes writes, truncate, fallocate and remap fail with `ETXTBSY`
//! (`IS_SWAPFILE` checks in the VFS), and filesystems refuse to relocate the blocks
//! (btrfs balance/defrag, xfs reflink). Userspace cannot set that flag, so swapdio
//! records what it activated and **verifies** at deactivation that nothing moved; if it
//! did, the I/O done in between may have hit blocks that no longer belong to the file,
//! and the caller is told loudly, with the first difference.
//!
//! What must not change depends on the mode: in device mode every physical position
//! (the map points at device bytes); in file mode only that every page is still
//! allocated with the same kind of extent (the filesystem maps positions itself).

use super::layout::{probe, FileLayout, LayoutError};
use crate::activate::ExtentReport;
use crate::caps::IoMode;
use std::path::{Path, PathBuf};

/// The first difference between the recorded layout and the current one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutChange {
    /// The path now names another file (replaced or renamed over).
    Replaced {
        /// `(st_dev, st_ino)` recorded.
        before: (u64, u64),
        /// `(st_dev, st_ino)` now.
        after: (u64, u64),
    },
    /// The file size changed (truncate, extend).
    Size {
        /// Size recorded.
        before: u64,
        /// Size now.
        after: u64,
    },
    /// Extent `index` (after merging contiguous mappings) differs.
    Extent {
        /// Index in the merged extent list.
        index: usize,
        /// The recorded extent (`None`: there was none at this index).
        before: Option<ExtentReport>,
        /// The extent now (`None`: there is none at this index any more).
        after: Option<ExtentReport>,
    },
}

impl std::fmt::Display for LayoutChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ext = |e: &Option<ExtentReport>| match e {
            Some(e) => format!(
                "logical {}+{} at physical {} flags [{}]",
                e.logical,
                e.length,
                e.physical,
                super::check::flag_names(e.flags).join("|")
            ),
            None => "nothing".into(),
        };
        match self {
            LayoutChange::Replaced { before, after } => {
                write!(
                    f,
                    "file replaced: device {} inode {} is now device {} inode {}",
                    before.0, before.1, after.0, after.1
                )
            }
            LayoutChange::Size { before, after } => write!(f, "file size changed from {before} to {after}"),
            LayoutChange::Extent { index, before, after } => {
                write!(f, "extent {index} changed: was {}, now {}", ext(before), ext(after))
            }
        }
    }
}

/// Why a lease check failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The layout changed while the file was active: I/O may have gone to blocks that no
    /// longer belong to the file.
    #[error("{}: swap file layout changed while active ({mode} mode): {change}", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
        /// The mode it was active in.
        mode: IoMode,
        /// The first difference.
        change: Box<LayoutChange>,
    },
    /// The layout could not be read again.
    #[error("cannot re-read the swap file layout: {0}")]
    Probe(#[from] LayoutError),
}

impl LeaseError {
    /// The first difference, when the layout changed.
    pub fn change(&self) -> Option<&LayoutChange> {
        match self {
            LeaseError::Changed { change, .. } => Some(change),
            LeaseError::Probe(_) => None,
        }
    }
}

/// The layout recorded at activation.
#[derive(Clone, Debug)]
pub struct LayoutLease {
    path: PathBuf,
    mode: IoMode,
    id: (u64, u64),
    file_size: u64,
    extents: Vec<ExtentReport>,
}

/// Merges mappings that continue each other logically and physically with the same
/// flags, so that a filesystem splitting or joining its extent records differently
/// between two FIEMAP calls is not mistaken for a move. In file mode the physical
/// address is dropped (set to 0) before merging: only coverage and kind matter.
fn normalize(extents: &[ExtentReport], mode: IoMode) -> Vec<ExtentReport> {
    let mut out: Vec<ExtentReport> = Vec::with_capacity(extents.len());
    for e in extents {
        let mut e = *e;
        if mode == IoMode::File {
            e.physical = 0;
        }
        if let Some(last) = out.last_mut() {
            let physical_ok = mode == IoMode::File || last.physical + last.length == e.physical;
            if last.logical + last.length == e.logical
                && physical_ok
                && last.flags == e.flags
                && last.device == e.device
            {
                last.length += e.length;
                continue;
            }
        }
        out.push(e);
    }
    out
}

impl LayoutLease {
    /// Records `layout` as activated in `mode`.
    pub fn new(layout: &FileLayout, mode: IoMode) -> LayoutLease {
        LayoutLease {
            path: layout.path.clone(),
            mode,
            id: (layout.device, layout.inode),
            file_size: layout.file_size,
            extents: normalize(&layout.extents, mode),
        }
    }

    /// The file the lease is on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the layout ([`probe`]) and compares it with the recorded one.
    pub fn verify(&self) -> Result<(), LeaseError> {
        let now = probe(&self.path)?;
        self.verify_against(&now)
    }

    /// Compares a freshly read layout with the recorded one and returns the first
    /// difference as [`LeaseError::Changed`].
    pub fn verify_against(&self, now: &FileLayout) -> Result<(), LeaseError> {
        let changed =
            |change| LeaseError::Changed { path: self.path.clone(), mode: self.mode, change: Box::new(change) };
        let after = (now.device, now.inode);
        if after != self.id {
            return Err(changed(LayoutChange::Replaced { before: self.id, after }));
        }
        if now.file_size != self.file_size {
            return Err(changed(LayoutChange::Size { before: self.file_size, after: now.file_size }));
        }
        let current = normalize(&now.extents, self.mode);
        let n = self.extents.len().max(current.len());
        for index in 0..n {
            let (before, after) = (self.extents.get(index).copied(), current.get(index).copied());
            if before != after {
                return Err(changed(LayoutChange::Extent { index, before, after }));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activate::ExtentFlags;
    use crate::caps::FileAttrs;
    use crate::linux::layout::FsKind;

    fn ext(logical: u64, physical: u64, length: u64, flags: ExtentFlags) -> ExtentReport {
        ExtentReport { logical, physical, length, flags, device: 7 }
    }

    fn layout(extents: Vec<ExtentReport>) -> FileLayout {
        FileLayout {
            path: "/swap".into(),
            file_size: 1 << 20,
            extents,
            attrs: FileAttrs::empty(),
            fs: FsKind::Ext4,
            block_size: 4096,
            device: 7,
            device_path: None,
            inode: 12,
            allocated_bytes: 1 << 20,
            extent_map: true,
        }
    }

    #[test]
    fn lease_accepts_the_same_layout_split_differently() {
        let a = layout(vec![ext(0, 8192, 1 << 20, ExtentFlags::empty())]);
        let b = layout(vec![
            ext(0, 8192, 4096, ExtentFlags::empty()),
            ext(4096, 12288, (1 << 20) - 4096, ExtentFlags::empty()),
        ]);
        LayoutLease::new(&a, IoMode::Device).verify_against(&b).unwrap();
    }

    #[test]
    fn lease_reports_a_moved_extent_in_device_mode() {
        let a = layout(vec![ext(0, 8192, 4096, ExtentFlags::empty()), ext(4096, 65536, 4096, ExtentFlags::empty())]);
        let b = layout(vec![ext(0, 8192, 4096, ExtentFlags::empty()), ext(4096, 131072, 4096, ExtentFlags::empty())]);
        let err = LayoutLease::new(&a, IoMode::Device).verify_against(&b).unwrap_err();
        match err.change() {
            Some(LayoutChange::Extent { index: 1, before, after }) => {
                assert_eq!(before.unwrap().physical, 65536);
                assert_eq!(after.unwrap().physical, 131072);
            }
            _ => panic!("unexpected {err}"),
        }
        // The same move is harmless in file mode: the filesystem maps positions.
        LayoutLease::new(&a, IoMode::File).verify_against(&b).unwrap();
    }

    #[test]
    fn lease_reports_unwritten_conversion_size_change_and_replacement() {
        let a = layout(vec![ext(0, 8192, 1 << 20, ExtentFlags::UNWRITTEN)]);
        let b = layout(vec![ext(0, 8192, 1 << 20, ExtentFlags::empty())]);
        let lease = LayoutLease::new(&a, IoMode::Device);
        let err = lease.verify_against(&b).unwrap_err();
        assert!(matches!(err.change(), Some(LayoutChange::Extent { index: 0, .. })), "{err}");
        let mut c = a.clone();
        c.file_size += 4096;
        let err = lease.verify_against(&c).unwrap_err();
        assert!(matches!(err.change(), Some(LayoutChange::Size { .. })), "{err}");
        let mut d = a.clone();
        d.inode = 13;
        let msg = lease.verify_against(&d).unwrap_err().to_string();
        assert!(msg.contains("replaced"), "{msg}");
    }

    #[test]
    fn lease_reports_a_punched_hole() {
        let a = layout(vec![ext(0, 8192, 1 << 20, ExtentFlags::empty())]);
        let b = layout(vec![
            ext(0, 8192, 4096, ExtentFlags::empty()),
            ext(8192, 16384, (1 << 20) - 8192, ExtentFlags::empty()),
        ]);
        let err = LayoutLease::new(&a, IoMode::File).verify_against(&b).unwrap_err();
        assert!(matches!(err.change(), Some(LayoutChange::Extent { index: 0, .. })), "{err}");
    }
}
