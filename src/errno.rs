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
    /// Stale handle: a copied or already finished plug (`-ESTALE`).
    pub const ESTALE: Errno = Errno(116);
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
            1 => "EPERM",
            2 => "ENOENT",
            3 => "ESRCH",
            4 => "EINTR",
            5 => "EIO",
            6 => "ENXIO",
            7 => "E2BIG",
            9 => "EBADF",
            11 => "EAGAIN",
            12 => "ENOMEM",
            13 => "EACCES",
            14 => "EFAULT",
            15 => "ENOTBLK",
            16 => "EBUSY",
            17 => "EEXIST",
            18 => "EXDEV",
            19 => "ENODEV",
            20 => "ENOTDIR",
            21 => "EISDIR",
            22 => "EINVAL",
            23 => "ENFILE",
            24 => "EMFILE",
            25 => "ENOTTY",
            26 => "ETXTBSY",
            27 => "EFBIG",
            28 => "ENOSPC",
            29 => "ESPIPE",
            30 => "EROFS",
            31 => "EMLINK",
            32 => "EPIPE",
            34 => "ERANGE",
            35 => "EDEADLK",
            36 => "ENAMETOOLONG",
            37 => "ENOLCK",
            38 => "ENOSYS",
            40 => "ELOOP",
            61 => "ENODATA",
            62 => "ETIME",
            75 => "EOVERFLOW",
            95 => "EOPNOTSUPP",
            104 => "ECONNRESET",
            105 => "ENOBUFS",
            110 => "ETIMEDOUT",
            111 => "ECONNREFUSED",
            113 => "EHOSTUNREACH",
            116 => "ESTALE",
            122 => "EDQUOT",
            125 => "ECANCELED",
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
            Some(n) => write!(f, "{n} (errno {})", self.0),
            None => write!(f, "errno {}", self.0),
        }
    }
}
