//! The SWAPSPACE2 swap header in page 0: parse, validate, write.
//!
//! Mirrors `read_swap_header` in `mm/swapfile.c` and the layout of `union swap_header`
//! in `include/linux/swap.h`. Multi-byte fields are in the byte order of the machine
//! that ran mkswap; a header whose version reads as byte-swapped 1 is accepted and
//! swabbed, as the kernel does for partitions moved between architectures.

use crate::errno::Errno;
use crate::PAGE_SIZE;

/// The magic in the last 10 bytes of page 0.
pub const SWAP_MAGIC: &[u8; 10] = b"SWAPSPACE2";
/// Offset of the magic: `PAGE_SIZE - 10`.
pub const MAGIC_OFFSET: usize = PAGE_SIZE - 10;
const VERSION_OFFSET: usize = 1024;
const LAST_PAGE_OFFSET: usize = 1028;
const NR_BADPAGES_OFFSET: usize = 1032;
const UUID_OFFSET: usize = 1036;
const LABEL_OFFSET: usize = 1052;
const BADPAGES_OFFSET: usize = 1536;
/// `MAX_SWAP_BADPAGES`: as many `u32` as fit between `badpages` and the magic.
pub const MAX_SWAP_BADPAGES: u32 = ((MAGIC_OFFSET - BADPAGES_OFFSET) / 4) as u32;

/// The fields of a swap header, in host byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwapHeader {
    /// Header sub-version; only 1 is accepted.
    pub version: u32,
    /// Index of the last usable page (`size / PAGE_SIZE - 1` as written by mkswap).
    pub last_page: u32,
    /// Number of entries in the bad-page list.
    pub nr_badpages: u32,
    /// Filesystem-style UUID written by mkswap.
    pub uuid: [u8; 16],
    /// Volume label, NUL padded.
    pub label: [u8; 16],
    /// The header was written on a machine of the other byte order and was swabbed.
    pub byte_swapped: bool,
}

/// Why a header is refused. Every refusal is `EINVAL`, as in `read_swap_header`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum HeaderError {
    /// The buffer handed in is shorter than a page.
    #[error("swap header needs a whole page ({PAGE_SIZE} bytes), got {0}")]
    ShortBuffer(usize),
    /// No `SWAPSPACE2` magic in the last 10 bytes of page 0.
    #[error("Unable to find swap-space signature")]
    NoSignature,
    /// A sub-version other than 1.
    #[error("Unable to handle swap header version {0}")]
    BadVersion(u32),
    /// `last_page == 0`.
    #[error("Empty swap-file")]
    Empty,
    /// The header promises more pages than the file holds.
    #[error("Swap area shorter than signature indicates")]
    ShorterThanSignature,
    /// A bad-page list on a regular file (only block devices may carry one).
    #[error("bad pages are not allowed in a swap file")]
    BadPagesInFile,
    /// More bad pages than fit in the header.
    #[error("too many bad pages in swap header ({0} > {MAX_SWAP_BADPAGES})")]
    TooManyBadPages(u32),
    /// `mkswap` was asked for fewer than two pages (header plus one data page).
    #[error("swap area needs at least 2 pages, got {0}")]
    TooSmall(u64),
    /// `mkswap` was asked for more pages than `last_page` (a `u32`) can describe.
    #[error("swap area of {0} pages is too large for a SWAPSPACE2 header (at most 2^32 pages)")]
    TooLarge(u64),
    /// A bad-page list entry is page 0 or past `last_page` (`setup_swap_map` refuses it).
    #[error("bad page {0} is outside the swap area")]
    BadPageOutOfRange(u32),
}

impl HeaderError {
    /// The errno swapon(2) returns: always `EINVAL` (or `EINVAL` for buffer misuse too).
    pub const fn errno(self) -> Errno {
        Errno::EINVAL
    }
}

/// What the swap area is: the kernel treats bad-page lists differently on each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SwapTarget {
    /// A regular file (`S_ISREG`): no bad pages allowed.
    #[default]
    File,
    /// A whole block device (`S_ISBLK`): bad pages allowed, never used as slots.
    BlockDevice,
}

/// Limits the kernel applies when validating a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderLimits {
    /// `swapfile_maximum_size`: the architecture's largest swap area in pages.
    pub max_pages: u64,
}

impl Default for HeaderLimits {
    /// x86-64's `generic_max_swapfile_size()` with 5-level paging off is far above any
    /// `u32` page count, so in practice `last_page + 1` is the limit.
    fn default() -> Self {
        HeaderLimits { max_pages: 1 << 50 }
    }
}

fn read_u32(page: &[u8], off: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(s) = page.get(off..off + 4) {
        b.copy_from_slice(s);
    }
    u32::from_ne_bytes(b)
}

fn read_16(page: &[u8], off: usize) -> [u8; 16] {
    let mut b = [0u8; 16];
    if let Some(s) = page.get(off..off + 16) {
        b.copy_from_slice(s);
    }
    b
}

impl SwapHeader {
    /// Parses page 0: magic, version (accepting a byte-swapped 1) and the info fields.
    ///
    /// This checks only what makes the bytes a swap header; [`SwapHeader::validate`]
    /// applies the size rules.
    pub fn parse(page: &[u8]) -> Result<SwapHeader, HeaderError> {
        if page.len() < PAGE_SIZE {
            return Err(HeaderError::ShortBuffer(page.len()));
        }
        if page.get(MAGIC_OFFSET..PAGE_SIZE) != Some(&SWAP_MAGIC[..]) {
            return Err(HeaderError::NoSignature);
        }
        let mut h = SwapHeader {
            version: read_u32(page, VERSION_OFFSET),
            last_page: read_u32(page, LAST_PAGE_OFFSET),
            nr_badpages: read_u32(page, NR_BADPAGES_OFFSET),
            uuid: read_16(page, UUID_OFFSET),
            label: read_16(page, LABEL_OFFSET),
            byte_swapped: false,
        };
        if h.version.swap_bytes() == 1 {
            h.version = 1;
            h.last_page = h.last_page.swap_bytes();
            h.nr_badpages = h.nr_badpages.swap_bytes();
            h.byte_swapped = true;
            if h.nr_badpages > MAX_SWAP_BADPAGES {
                return Err(HeaderError::TooManyBadPages(h.nr_badpages));
            }
        }
        if h.version != 1 {
            return Err(HeaderError::BadVersion(h.version));
        }
        Ok(h)
    }

    /// Applies `read_swap_header`'s size rules to a regular file of `file_size` bytes and
    /// returns `maxpages`: the number of page slots, header page included.
    pub fn validate(&self, file_size: u64, limits: HeaderLimits) -> Result<u64, HeaderError> {
        self.validate_for(SwapTarget::File, file_size, limits)
    }

    /// [`SwapHeader::validate`] for a swap area of `size` bytes on `target`: as in
    /// `read_swap_header`, a bad-page list is refused on regular files only
    /// (`nr_badpages && S_ISREG`), and on every target when it is longer than
    /// [`MAX_SWAP_BADPAGES`].
    pub fn validate_for(&self, target: SwapTarget, file_size: u64, limits: HeaderLimits) -> Result<u64, HeaderError> {
        let last_page = u64::from(self.last_page);
        if last_page == 0 {
            return Err(HeaderError::Empty);
        }
        let mut maxpages = limits.max_pages;
        if maxpages > last_page {
            maxpages = last_page + 1;
            // p->max is an unsigned int: the kernel clamps a wrapped value.
            if maxpages as u32 == 0 {
                maxpages = u64::from(u32::MAX);
            }
        }
        if maxpages == 0 {
            return Err(HeaderError::Empty);
        }
        let file_pages = file_size / PAGE_SIZE as u64;
        if file_pages != 0 && maxpages > file_pages {
            return Err(HeaderError::ShorterThanSignature);
        }
        if self.nr_badpages != 0 && target == SwapTarget::File {
            return Err(HeaderError::BadPagesInFile);
        }
        if self.nr_badpages > MAX_SWAP_BADPAGES {
            return Err(HeaderError::TooManyBadPages(self.nr_badpages));
        }
        Ok(maxpages)
    }

    /// A fresh version-1 header for a swap area of `pages` pages (header included),
    /// as `mkswap` writes it: `last_page = pages - 1`, no bad pages. More pages than a
    /// `u32` `last_page` can describe is [`HeaderError::TooLarge`], never a clamp.
    pub fn new(pages: u64, uuid: [u8; 16], label: [u8; 16]) -> Result<SwapHeader, HeaderError> {
        if pages < 2 {
            return Err(HeaderError::TooSmall(pages));
        }
        let last_page = u32::try_from(pages - 1).map_err(|_| HeaderError::TooLarge(pages))?;
        Ok(SwapHeader { version: 1, last_page, nr_badpages: 0, uuid, label, byte_swapped: false })
    }

    /// Entry `i` of the bad-page list in `page` (the page this header was parsed from),
    /// in host byte order; `None` past `nr_badpages` or [`MAX_SWAP_BADPAGES`].
    pub fn bad_page(&self, page: &[u8], i: u32) -> Option<u32> {
        if i >= self.nr_badpages || i >= MAX_SWAP_BADPAGES {
            return None;
        }
        let v = read_u32(page, BADPAGES_OFFSET + 4 * i as usize);
        Some(if self.byte_swapped { v.swap_bytes() } else { v })
    }

    /// Writes this header into `page` (the mkswap equivalent): zeroes the page past the
    /// boot block, fills the info fields in host byte order (or swabbed if
    /// `byte_swapped`) and the magic.
    pub fn write(&self, page: &mut [u8]) -> Result<(), HeaderError> {
        let have = page.len();
        let page = page.get_mut(..PAGE_SIZE).ok_or(HeaderError::ShortBuffer(have))?;
        page[VERSION_OFFSET..].fill(0);
        let conv = |v: u32| if self.byte_swapped { v.swap_bytes() } else { v };
        page[VERSION_OFFSET..VERSION_OFFSET + 4].copy_from_slice(&conv(self.version).to_ne_bytes());
        page[LAST_PAGE_OFFSET..LAST_PAGE_OFFSET + 4].copy_from_slice(&conv(self.last_page).to_ne_bytes());
        page[NR_BADPAGES_OFFSET..NR_BADPAGES_OFFSET + 4].copy_from_slice(&conv(self.nr_badpages).to_ne_bytes());
        page[UUID_OFFSET..UUID_OFFSET + 16].copy_from_slice(&self.uuid);
        page[LABEL_OFFSET..LABEL_OFFSET + 16].copy_from_slice(&self.label);
        page[MAGIC_OFFSET..].copy_from_slice(SWAP_MAGIC);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_for(pages: u64) -> [u8; PAGE_SIZE] {
        let mut p = [0u8; PAGE_SIZE];
        SwapHeader::new(pages, [7; 16], *b"swapdio-test\0\0\0\0").unwrap().write(&mut p).unwrap();
        p
    }

    #[test]
    fn header_roundtrip_mkswap_equivalent() {
        let p = page_for(10);
        let h = SwapHeader::parse(&p).unwrap();
        assert_eq!((h.version, h.last_page, h.nr_badpages, h.byte_swapped), (1, 9, 0, false));
        assert_eq!(h.uuid, [7; 16]);
        assert_eq!(h.validate(10 * PAGE_SIZE as u64, HeaderLimits::default()), Ok(10));
    }

    #[test]
    fn header_magic_must_be_in_last_ten_bytes() {
        let mut p = page_for(10);
        p[PAGE_SIZE - 1] = b'3';
        assert_eq!(SwapHeader::parse(&p), Err(HeaderError::NoSignature));
        assert_eq!(SwapHeader::parse(&[0u8; PAGE_SIZE]), Err(HeaderError::NoSignature));
    }

    #[test]
    fn header_shorter_than_a_page_is_an_error_not_a_panic() {
        assert_eq!(SwapHeader::parse(&[0u8; 100]), Err(HeaderError::ShortBuffer(100)));
        assert_eq!(
            SwapHeader::new(4, [0; 16], [0; 16]).unwrap().write(&mut [0u8; 8]),
            Err(HeaderError::ShortBuffer(8))
        );
    }

    #[test]
    fn header_byte_swapped_version_is_accepted_and_swabbed() {
        let mut p = [0u8; PAGE_SIZE];
        let h = SwapHeader { byte_swapped: true, ..SwapHeader::new(20, [0; 16], [0; 16]).unwrap() };
        h.write(&mut p).unwrap();
        let got = SwapHeader::parse(&p).unwrap();
        assert!(got.byte_swapped);
        assert_eq!((got.version, got.last_page), (1, 19));
    }

    #[test]
    fn header_version_other_than_one_is_refused() {
        let mut p = page_for(10);
        p[VERSION_OFFSET..VERSION_OFFSET + 4].copy_from_slice(&2u32.to_ne_bytes());
        assert_eq!(SwapHeader::parse(&p), Err(HeaderError::BadVersion(2)));
    }

    #[test]
    fn header_last_page_zero_is_empty_swap_file() {
        let mut p = page_for(10);
        p[LAST_PAGE_OFFSET..LAST_PAGE_OFFSET + 4].copy_from_slice(&0u32.to_ne_bytes());
        let h = SwapHeader::parse(&p).unwrap();
        assert_eq!(h.validate(1 << 20, HeaderLimits::default()), Err(HeaderError::Empty));
    }

    #[test]
    fn header_longer_than_file_is_shorter_than_signature() {
        let h = SwapHeader::parse(&page_for(10)).unwrap();
        assert_eq!(h.validate(9 * PAGE_SIZE as u64, HeaderLimits::default()), Err(HeaderError::ShorterThanSignature));
        // A partial trailing page does not count.
        assert_eq!(
            h.validate(10 * PAGE_SIZE as u64 - 1, HeaderLimits::default()),
            Err(HeaderError::ShorterThanSignature)
        );
        // A file longer than the header is fine: the header caps the area.
        assert_eq!(h.validate(100 * PAGE_SIZE as u64, HeaderLimits::default()), Ok(10));
    }

    #[test]
    fn header_caps_at_architecture_maximum() {
        let h = SwapHeader::parse(&page_for(100)).unwrap();
        assert_eq!(h.validate(100 * PAGE_SIZE as u64, HeaderLimits { max_pages: 50 }), Ok(50));
    }

    #[test]
    fn header_last_page_u32_max_clamps_like_unsigned_int() {
        let mut p = page_for(10);
        p[LAST_PAGE_OFFSET..LAST_PAGE_OFFSET + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        let h = SwapHeader::parse(&p).unwrap();
        assert_eq!(h.validate(0, HeaderLimits::default()), Ok(u64::from(u32::MAX)));
    }

    #[test]
    fn header_bad_pages_refused_on_regular_files() {
        let mut p = page_for(10);
        p[NR_BADPAGES_OFFSET..NR_BADPAGES_OFFSET + 4].copy_from_slice(&1u32.to_ne_bytes());
        let h = SwapHeader::parse(&p).unwrap();
        assert_eq!(h.validate(10 * PAGE_SIZE as u64, HeaderLimits::default()), Err(HeaderError::BadPagesInFile));
    }

    #[test]
    fn header_swabbed_too_many_bad_pages_refused() {
        let mut p = page_for(10);
        p[VERSION_OFFSET..VERSION_OFFSET + 4].copy_from_slice(&1u32.swap_bytes().to_ne_bytes());
        p[NR_BADPAGES_OFFSET..NR_BADPAGES_OFFSET + 4].copy_from_slice(&1000u32.swap_bytes().to_ne_bytes());
        assert_eq!(SwapHeader::parse(&p), Err(HeaderError::TooManyBadPages(1000)));
    }

    #[test]
    fn mkswap_refuses_more_pages_than_last_page_can_describe() {
        assert_eq!(SwapHeader::new(1 << 40, [0; 16], [0; 16]), Err(HeaderError::TooLarge(1 << 40)));
        assert_eq!(SwapHeader::new((1 << 32) + 1, [0; 16], [0; 16]), Err(HeaderError::TooLarge((1 << 32) + 1)));
        assert_eq!(SwapHeader::new(1 << 32, [0; 16], [0; 16]).map(|h| h.last_page), Ok(u32::MAX));
    }

    #[test]
    fn header_bad_pages_allowed_on_block_devices_up_to_the_limit() {
        let mut p = page_for(100);
        p[1032..1036].copy_from_slice(&3u32.to_ne_bytes());
        for (i, b) in [10u32, 20, 30].iter().enumerate() {
            p[1536 + 4 * i..1540 + 4 * i].copy_from_slice(&b.to_ne_bytes());
        }
        let h = SwapHeader::parse(&p).unwrap();
        assert_eq!(h.validate(100 * PAGE_SIZE as u64, HeaderLimits::default()), Err(HeaderError::BadPagesInFile));
        assert_eq!(h.validate_for(SwapTarget::BlockDevice, 100 * PAGE_SIZE as u64, HeaderLimits::default()), Ok(100));
        assert_eq!((0..4).map(|i| h.bad_page(&p, i)).collect::<Vec<_>>(), [Some(10), Some(20), Some(30), None]);
        let many = SwapHeader { nr_badpages: MAX_SWAP_BADPAGES + 1, ..h };
        assert_eq!(
            many.validate_for(SwapTarget::BlockDevice, 100 * PAGE_SIZE as u64, HeaderLimits::default()),
            Err(HeaderError::TooManyBadPages(MAX_SWAP_BADPAGES + 1))
        );
    }

    #[test]
    fn mkswap_refuses_fewer_than_two_pages() {
        assert_eq!(SwapHeader::new(1, [0; 16], [0; 16]), Err(HeaderError::TooSmall(1)));
    }

    #[test]
    fn max_swap_badpages_matches_kernel_layout() {
        assert_eq!(MAX_SWAP_BADPAGES, 637);
    }
}
