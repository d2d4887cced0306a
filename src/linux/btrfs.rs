//! btrfs: what `btrfs_swap_activate` (`fs/btrfs/inode.c`) checks and how it maps a
//! swap file to device offsets.
//!
//! FIEMAP on btrfs reports btrfs *logical* addresses. The kernel translates each file
//! extent through the chunk map (`btrfs_get_chunk_map`): the chunk must have the single
//! data profile ("swapfile must have single data profile": not DUP, RAID0/1/10/5/6,
//! RAID1C3/4), every chunk must put its stripe on the same device ("swapfile must be on
//! one device"), and the swap extent is `stripe.physical + (logical - chunk.start)` on
//! that device. [`chunks`] reads the chunk tree with `BTRFS_IOC_TREE_SEARCH` (the same
//! items `btrfs inspect-internal map-swapfile` uses; needs `CAP_SYS_ADMIN`) and
//! [`map_to_device`] does the translation, splitting FIEMAP extents where chunks end.
//! The kernel's extent-level refusals keep btrfs's own words ([`message`]).

use crate::activate::{ExtentFlags, ExtentReport, Refusal};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// `BTRFS_IOC_TREE_SEARCH = _IOWR(0x94, 17, struct btrfs_ioctl_search_args)` (4096 bytes).
const BTRFS_IOC_TREE_SEARCH: u64 = 0xD000_9411;
const BTRFS_CHUNK_TREE_OBJECTID: u64 = 3;
const BTRFS_FIRST_CHUNK_TREE_OBJECTID: u64 = 256;
const BTRFS_CHUNK_ITEM_KEY: u32 = 228;
/// `BTRFS_BLOCK_GROUP_DATA`.
pub const BLOCK_GROUP_DATA: u64 = 1 << 0;
/// `BTRFS_BLOCK_GROUP_PROFILE_MASK`: RAID0, RAID1, DUP, RAID10, RAID5, RAID6, RAID1C3, RAID1C4.
pub const BLOCK_GROUP_PROFILE_MASK: u64 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10);
const SEARCH_BUF: usize = 4096 - 104;

/// `struct btrfs_ioctl_search_args`: the 104-byte key, then the result buffer.
#[repr(C)]
struct SearchArgs {
    tree_id: u64,
    min_objectid: u64,
    max_objectid: u64,
    min_offset: u64,
    max_offset: u64,
    min_transid: u64,
    max_transid: u64,
    min_type: u32,
    max_type: u32,
    nr_items: u32,
    unused: u32,
    unused1: [u64; 4],
    buf: [u8; SEARCH_BUF],
}

/// One chunk of the chunk tree: a btrfs logical range and where its first stripe lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// First btrfs logical byte.
    pub logical: u64,
    /// Length in bytes.
    pub length: u64,
    /// `BTRFS_BLOCK_GROUP_*` type and profile bits.
    pub type_flags: u64,
    /// Device id of stripe 0 (what the kernel swaps to).
    pub devid: u64,
    /// Device byte offset of stripe 0.
    pub physical: u64,
}

fn le64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// Reads every chunk item of the filesystem `file` lives on (`BTRFS_IOC_TREE_SEARCH` on
/// the chunk tree), sorted by logical address.
pub fn chunks(file: &File) -> io::Result<Vec<Chunk>> {
    let mut out = Vec::new();
    let mut cursor = 0u64;
    let mut args = Box::new(SearchArgs {
        tree_id: 0,
        min_objectid: 0,
        max_objectid: 0,
        min_offset: 0,
        max_offset: 0,
        min_transid: 0,
        max_transid: 0,
        min_type: 0,
        max_type: 0,
        nr_items: 0,
        unused: 0,
        unused1: [0; 4],
        buf: [0; SEARCH_BUF],
    });
    loop {
        args.tree_id = BTRFS_CHUNK_TREE_OBJECTID;
        args.min_objectid = BTRFS_FIRST_CHUNK_TREE_OBJECTID;
        args.max_objectid = BTRFS_FIRST_CHUNK_TREE_OBJECTID;
        args.min_type = BTRFS_CHUNK_ITEM_KEY;
        args.max_type = BTRFS_CHUNK_ITEM_KEY;
        args.min_offset = cursor;
        args.max_offset = u64::MAX;
        args.min_transid = 0;
        args.max_transid = u64::MAX;
        args.nr_items = 4096;
        let ptr: *mut SearchArgs = &mut *args;
        // SAFETY: `ptr` refers to a live, exclusively borrowed `struct
        // btrfs_ioctl_search_args` (4096 bytes, the size encoded in the request number);
        // the kernel reads the key and fills the buffer; the fd is open for the call.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), BTRFS_IOC_TREE_SEARCH as _, ptr) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = args.nr_items;
        if n == 0 {
            break;
        }
        let mut pos = 0usize;
        let mut last = None;
        for _ in 0..n {
            let b = &args.buf[..];
            let (Some(offset), Some(hdr)) = (le64(b, pos + 16), b.get(pos + 24..pos + 32)) else { break };
            let ty = u32::from_ne_bytes(hdr[0..4].try_into().unwrap_or([0; 4]));
            let len = u32::from_ne_bytes(hdr[4..8].try_into().unwrap_or([0; 4])) as usize;
            let item = b.get(pos + 32..pos + 32 + len).unwrap_or(&[]);
            pos += 32 + len;
            last = Some(offset);
            if ty != BTRFS_CHUNK_ITEM_KEY {
                continue;
            }
            if let (Some(length), Some(type_flags), Some(devid), Some(physical)) =
                (le64(item, 0), le64(item, 24), le64(item, 48), le64(item, 56))
            {
                out.push(Chunk { logical: offset, length, type_flags, devid, physical });
            }
        }
        match last.and_then(|l| l.checked_add(1)) {
            Some(next) => cursor = next,
            None => break,
        }
    }
    out.sort_by_key(|c| c.logical);
    Ok(out)
}

/// Why btrfs refuses while mapping, in its own words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BtrfsRefusal {
    /// A chunk with a DUP/RAID profile.
    NotSingleProfile,
    /// Extents on more than one device.
    NotOneDevice,
    /// No chunk holds the extent (the filesystem changed under us).
    NoChunk,
}

impl std::fmt::Display for BtrfsRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BtrfsRefusal::NotSingleProfile => "swapfile must have single data profile",
            BtrfsRefusal::NotOneDevice => "swapfile must be on one device",
            BtrfsRefusal::NoChunk => "unable to find chunk map for the swapfile's extent",
        })
    }
}

/// The kernel's message for an extent-level refusal on btrfs, where btrfs words it
/// differently from the iomap walk (shared extents are "copy-on-write", holes are
/// "holes").
pub fn message(r: Refusal) -> Option<&'static str> {
    Some(match r {
        Refusal::Shared => "swapfile must not be copy-on-write",
        Refusal::Unallocated => "swapfile must not have holes",
        Refusal::Inline => "swapfile must not be inline",
        Refusal::Encoded => "swapfile must not be compressed",
        _ => return None,
    })
}

/// Translates FIEMAP extents (btrfs logical addresses) into device extents, in walk
/// order up to `i_size`, as `btrfs_swap_activate` does; `device` of each result is the
/// btrfs devid. The walk stops translating (and passes the rest through unchanged) at
/// the first gap or refused extent flag, because the kernel refuses there first; the
/// activation walk then names it. Returns the device extents, or where (extent index)
/// and why btrfs refuses.
pub fn map_to_device(
    extents: &[ExtentReport],
    chunks: &[Chunk],
    i_size: u64,
) -> Result<Vec<ExtentReport>, (usize, BtrfsRefusal)> {
    let stop = ExtentFlags::SHARED | ExtentFlags::INLINE | ExtentFlags::DELALLOC | ExtentFlags::ENCODED;
    let mut out = Vec::with_capacity(extents.len());
    let mut pos = 0u64;
    let mut device = None;
    for (i, e) in extents.iter().enumerate() {
        if e.logical >= i_size || e.logical != pos || e.flags.intersects(stop) {
            out.extend_from_slice(&extents[i..]);
            return Ok(out);
        }
        let mut done = 0u64;
        while done < e.length {
            let at = e.physical + done;
            let c = chunks
                .iter()
                .find(|c| c.logical <= at && at < c.logical.saturating_add(c.length))
                .ok_or((i, BtrfsRefusal::NoChunk))?;
            if c.type_flags & BLOCK_GROUP_PROFILE_MASK != 0 {
                return Err((i, BtrfsRefusal::NotSingleProfile));
            }
            if *device.get_or_insert(c.devid) != c.devid {
                return Err((i, BtrfsRefusal::NotOneDevice));
            }
            let len = (e.length - done).min(c.logical + c.length - at);
            out.push(ExtentReport {
                logical: e.logical + done,
                physical: c.physical + (at - c.logical),
                length: len,
                flags: e.flags,
                device: c.devid,
            });
            done += len;
        }
        pos = e.logical + e.length;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(logical: u64, physical: u64, length: u64) -> ExtentReport {
        ExtentReport { logical, physical, length, flags: ExtentFlags::empty(), device: 0 }
    }

    #[test]
    fn search_args_match_the_uapi() {
        assert_eq!(std::mem::size_of::<SearchArgs>(), 4096);
        assert_eq!(BTRFS_IOC_TREE_SEARCH, (3 << 30) | (4096 << 16) | (0x94 << 8) | 17);
    }

    #[test]
    fn btrfs_extents_are_mapped_through_the_chunk_tree_and_split_at_chunk_ends() {
        let chunks = [
            Chunk { logical: 1 << 30, length: 1 << 20, type_flags: BLOCK_GROUP_DATA, devid: 1, physical: 300 << 20 },
            Chunk {
                logical: (1 << 30) + (1 << 20),
                length: 1 << 20,
                type_flags: BLOCK_GROUP_DATA,
                devid: 1,
                physical: 100 << 20,
            },
        ];
        // One FIEMAP extent crossing from chunk 0 into chunk 1 (logically contiguous).
        let got = map_to_device(&[ext(0, (1 << 30) + (1 << 19), 1 << 20)], &chunks, 1 << 20).unwrap();
        assert_eq!(
            got.iter().map(|e| (e.logical, e.physical, e.length, e.device)).collect::<Vec<_>>(),
            vec![(0, (300 << 20) + (1 << 19), 1 << 19, 1), (1 << 19, 100 << 20, 1 << 19, 1)]
        );
    }

    #[test]
    fn btrfs_refuses_raid_profiles_and_several_devices() {
        let raid1 =
            [Chunk { logical: 0, length: 1 << 30, type_flags: BLOCK_GROUP_DATA | (1 << 4), devid: 1, physical: 0 }];
        assert_eq!(map_to_device(&[ext(0, 4096, 8192)], &raid1, 8192), Err((0, BtrfsRefusal::NotSingleProfile)));
        let two = [
            Chunk { logical: 0, length: 1 << 20, type_flags: BLOCK_GROUP_DATA, devid: 1, physical: 0 },
            Chunk { logical: 1 << 20, length: 1 << 20, type_flags: BLOCK_GROUP_DATA, devid: 2, physical: 0 },
        ];
        let e = [ext(0, 0, 4096), ext(4096, 1 << 20, 4096)];
        assert_eq!(map_to_device(&e, &two, 8192), Err((1, BtrfsRefusal::NotOneDevice)));
        assert_eq!(BtrfsRefusal::NotOneDevice.to_string(), "swapfile must be on one device");
    }
}
