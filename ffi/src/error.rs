//! Errors at the C boundary: negative errno values (kernel convention), their
//! messages, and the activation refusal codes.

use core::ffi::{c_char, c_int};

use swapdio::{ActivationError, CapsRefusal, EngineError, Errno, HeaderError, Refusal, SwapError};

use crate::types::swapdio_refusal;

/// Positive errno values the C ABI returns (negated). Linux numbering (asm-generic).
#[cfg(feature = "std")]
pub(crate) const ENOMEM: i32 = Errno::ENOMEM.0;
pub(crate) const EFAULT: i32 = Errno::EFAULT.0;
pub(crate) const EBUSY: i32 = Errno::EBUSY.0;
pub(crate) const EINVAL: i32 = Errno::EINVAL.0;
pub(crate) const EOVERFLOW: i32 = 75;
pub(crate) const EALREADY: i32 = 114;
/// Largest errno a backend result may carry (`MAX_ERRNO`); beyond it is `-EIO`.
pub(crate) const MAX_ERRNO: i64 = 4095;

/// The `int` a C function returns for an errno.
pub(crate) const fn neg(e: i32) -> i32 {
    -e
}

/// `-errno` of an I/O path error (the core's mapping: `-EINVAL` for bad folios and
/// slots, `-ENOBUFS` for an empty pool, `-EDEADLK` for a `NOFS` context, `-EBUSY`, `-ERANGE`, or the
/// I/O error of a synchronous request).
pub(crate) const fn swap_error(e: SwapError) -> i32 {
    -e.errno().0
}

/// `-errno` of an engine setup error.
pub(crate) const fn engine_error(e: EngineError) -> i32 {
    match e {
        EngineError::StorageInUse => -EBUSY,
        EngineError::EmptyPool
        | EngineError::NoSyncSlots
        | EngineError::OutOfMemory
        | EngineError::TooManySlots
        | EngineError::CapsMismatch(_) => -EINVAL,
    }
}

/// A backend or completion result (`bytes >= 0` or `-errno`) as the core's result.
/// Values outside `-MAX_ERRNO..0` and the queued marker are not errnos: they become `EIO`.
pub(crate) fn io_result(result: i64) -> Result<u64, Errno> {
    if result >= 0 {
        return Ok(result as u64);
    }
    if result < -MAX_ERRNO || result == crate::types::SWAPDIO_QUEUED {
        return Err(Errno::EIO);
    }
    Err(Errno((-result) as i32))
}

/// The C code of an activation refusal.
pub(crate) const fn refusal_code(e: &ActivationError) -> swapdio_refusal {
    use swapdio_refusal as R;
    match e.refusal {
        Refusal::Header(h) => match h {
            HeaderError::ShortBuffer(_) => R::HeaderShortBuffer,
            HeaderError::NoSignature => R::HeaderNoSignature,
            HeaderError::BadVersion(_) => R::HeaderBadVersion,
            HeaderError::Empty => R::HeaderEmpty,
            HeaderError::ShorterThanSignature => R::HeaderShorterThanSignature,
            HeaderError::BadPagesInFile => R::HeaderBadPagesInFile,
            HeaderError::TooManyBadPages(_) => R::HeaderTooManyBadPages,
            HeaderError::TooSmall(_) => R::HeaderTooSmall,
            HeaderError::TooLarge(_) => R::HeaderTooLarge,
            HeaderError::BadPageOutOfRange(_) => R::HeaderBadPageOutOfRange,
        },
        Refusal::Caps(c) => match c {
            CapsRefusal::CopyOnWrite => R::CapsCopyOnWrite,
            CapsRefusal::Compressed => R::CapsCompressed,
            CapsRefusal::Checksummed => R::CapsChecksummed,
            CapsRefusal::SequentialZone => R::CapsSequentialZone,
            CapsRefusal::NoOverwriteInPlace => R::CapsNoOverwriteInPlace,
            CapsRefusal::NoIoPath => R::CapsNoIoPath,
            CapsRefusal::DeviceModeUnsupported => R::CapsDeviceModeUnsupported,
            CapsRefusal::FileModeUnsupported => R::CapsFileModeUnsupported,
            CapsRefusal::NotStableOnComplete => R::CapsNotStableOnComplete,
        },
        Refusal::Inline => R::Inline,
        Refusal::Unallocated => R::Unallocated,
        Refusal::NotCommitted => R::NotCommitted,
        Refusal::Shared => R::Shared,
        Refusal::OutsideMainDevice => R::OutsideMainDevice,
        Refusal::Encoded => R::Encoded,
        Refusal::NotAligned => R::NotAligned,
        Refusal::UnwrittenInFileMode => R::UnwrittenInFileMode,
        Refusal::Holes => R::Holes,
        Refusal::NoExtentMap => R::NoExtentMap,
        Refusal::NoUsablePage => R::NoUsablePage,
        Refusal::EmptySwapFile => R::EmptySwapFile,
        Refusal::ExtentsUnsorted => R::ExtentsUnsorted,
        Refusal::InvalidExtent => R::InvalidExtent,
        Refusal::MapStorageTooSmall { .. } => R::MapStorageTooSmall,
        Refusal::PhysicalOverlap { .. } => R::PhysicalOverlap,
    }
}

/// A NUL-terminated static string as a C pointer.
macro_rules! cstr {
    ($s:expr) => {
        concat!($s, "\0").as_ptr().cast::<core::ffi::c_char>()
    };
}
pub(crate) use cstr;

/// The message of an error code returned by this library (`-EINVAL` or `EINVAL`
/// alike), with what it means here. Never NULL; static storage.
#[no_mangle]
pub extern "C" fn swapdio_strerror(code: c_int) -> *const c_char {
    match code.unsigned_abs() {
        0 => cstr!("success"),
        5 => cstr!("EIO: I/O error (failed, short or overrun transfer of a synchronous request)"),
        11 => cstr!("EAGAIN: a synchronous request failed with a transient error (retry soon)"),
        12 => cstr!("ENOMEM: the map storage is too small"),
        14 => cstr!("EFAULT: a required pointer is NULL"),
        16 => cstr!("EBUSY: requests are still held or in flight, or the storage is in use"),
        22 => cstr!("EINVAL: invalid argument (unknown enum or flag value, bad folio or slot, misaligned or too small memory, uninitialised object, refused swap file)"),
        34 => cstr!("ERANGE: the folio spans more extents than there are requests"),
        35 => cstr!("EDEADLK: a swap write that enters the filesystem from a NOFS context (folio untouched)"),
        75 => cstr!("EOVERFLOW: the requested memory size overflows"),
        105 => cstr!("ENOBUFS: no free request; any held batch was submitted and the folio is untouched (retry after a completion)"),
        114 => cstr!("EALREADY: the request is not in flight (double or stale completion)"),
        116 => cstr!("ESTALE: a stale copy of a plug (another copy added to or submitted its batch); its batch was forgotten, the folio is untouched"),
        529 => cstr!("EIOCBQUEUED: the request was queued (backend return value, not an error)"),
        _ => cstr!("unknown error"),
    }
}

/// The message of a `swapdio_refusal` code: the kernel's swapon message where it has
/// one. Never NULL; static storage.
#[no_mangle]
pub extern "C" fn swapdio_refusal_str(refusal: u32) -> *const c_char {
    match refusal {
        0 => cstr!("no refusal"),
        1 => cstr!("invalid argument"),
        10 => cstr!("swap header needs a whole page"),
        11 => cstr!("Unable to find swap-space signature"),
        12 => cstr!("Unable to handle swap header version"),
        13 => cstr!("Empty swap-file"),
        14 => cstr!("Swap area shorter than signature indicates"),
        15 => cstr!("bad pages are not allowed in a swap file"),
        16 => cstr!("too many bad pages in swap header"),
        17 => cstr!("swap area needs at least 2 pages"),
        18 => cstr!("swap area too large for a SWAPSPACE2 header"),
        19 => cstr!("bad page outside the swap area"),
        20 => cstr!("swapfile must not be copy-on-write"),
        21 => cstr!("swapfile must not be compressed"),
        22 => cstr!("swapfile must not be checksummed"),
        23 => cstr!("swap file: not a conventional zone file"),
        24 => cstr!("Swapfile not supported in LFS mode"),
        25 => cstr!("swapfile has no direct I/O and no swap_rw method"),
        26 => cstr!("device mode needs direct read and direct write on the device"),
        27 => cstr!("file mode needs the filesystem's swap_rw"),
        28 => cstr!("file mode needs completion to mean stable (no later commit)"),
        30 => cstr!("is inline"),
        31 => cstr!("has unallocated extents"),
        32 => cstr!("is not committed"),
        33 => cstr!("has shared extents"),
        34 => cstr!("outside the main device"),
        35 => cstr!("swapfile must not be compressed"),
        36 => cstr!("has extents that are not block aligned"),
        37 => cstr!("has unwritten extents that file-mode swap writes would convert"),
        38 => cstr!("swapfile has holes"),
        39 => cstr!("device mode needs the file's extent map"),
        40 => cstr!("Cannot find a single usable page in file."),
        41 => cstr!("Empty swap-file"),
        42 => cstr!("extent reports are not sorted by logical offset or overlap"),
        43 => cstr!("extent report has zero length or overflows"),
        44 => cstr!("map storage too small"),
        45 => cstr!("extents overlap on the device"),
        _ => cstr!("unknown refusal"),
    }
}
