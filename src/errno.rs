//! Linux errno values, the currency of errors at the kernel and C boundary.

use core::fmt;

/// A positive Linux errno value (`EIO` is `Errno(5)`).
///
/// The engine speaks errno where the kernel does: backend results, activation
/// refusals and the C ABI (which negates it, kernel style).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct Errno(pub i32);

impl Errno {
    /// Interrupted system call.
    pub const EINTR: Errno = Errno(4);
    /// I/O error.
    pub const EIO: Errno = Errno(5);
    /// Try again.
    pub const EAGAIN: Errno = Errno(11);
    /// Out of memory.
    pub const ENOMEM: Errno = Errno(12);
    /// Bad address.
    pub const EFAULT: Errno = Errno(14);
    /// Device or resource busy.
    pub const EBUSY: Errno = Errno(16);
    /// Resource deadlock would occur: a swap write that would enter the filesystem from a
    /// context that must not (`test_may_enter_fs`).
    pub const EDEADLK: Errno = Errno(35);
    /// No buffer space: no free request in the reserve (the folio is untouched).
    pub const ENOBUFS: Errno = Errno(105);
    /// Invalid argument: every swapon refusal.
    pub const EINVAL: Errno = Errno(22);
    /// Text file busy: the file is an active swap file.
    pub const ETXTBSY: Errno = Errno(26);
    /// File too large.
    pub const EFBIG: Errno = Errno(27);
    /// No space left on device.
    pub const ENOSPC: Errno = Errno(28);
    /// Numerical result out of range.
    pub const ERANGE: Errno = Errno(34);
    /// No data available.
    pub const ENODATA: Errno = Errno(61);
    /// Operation not supported.
    pub const EOPNOTSUPP: Errno = Errno(95);
    /// The kernel's internal "I/O was queued" marker (`-EIOCBQUEUED`), used only at the C ABI.
    pub const EIOCBQUEUED: Errno = Errno(529);

    /// Transient errors: a write that failed with one of these is worth retrying soon
    /// (NFS out of buffers, an interrupted submission, a full queue).
    pub const fn is_transient(self) -> bool {
        matches!(self.0, 4 | 11 | 12)
    }

    /// The symbolic name of well-known values, `None` for others.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            4 => "EINTR",
            5 => "EIO",
            11 => "EAGAIN",
            12 => "ENOMEM",
            14 => "EFAULT",
            16 => "EBUSY",
            22 => "EINVAL",
            26 => "ETXTBSY",
            27 => "EFBIG",
            28 => "ENOSPC",
            34 => "ERANGE",
            35 => "EDEADLK",
            61 => "ENODATA",
            95 => "EOPNOTSUPP",
            105 => "ENOBUFS",
            529 => "EIOCBQUEUED",
            _ => return None,
        })
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n}"),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({})", self.0),
            None => write!(f, "errno {}", self.0),
        }
    }
}
