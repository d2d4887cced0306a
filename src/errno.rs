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
    /// Operation not permitted (swapon: immutable or append-only file, no `CAP_SYS_ADMIN`).
    pub const EPERM: Errno = Errno(1);
    /// No such file or directory.
    pub const ENOENT: Errno = Errno(2);
    /// No such device or address (opening a socket).
    pub const ENXIO: Errno = Errno(6);
    /// Permission denied.
    pub const EACCES: Errno = Errno(13);
    /// Is a directory (swapon's read-write open of a directory).
    pub const EISDIR: Errno = Errno(21);
    /// Read-only file system (swapon's read-write open on a read-only mount).
    pub const EROFS: Errno = Errno(30);
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

    /// The symbolic name of every Linux errno (the generic table in
    /// `include/uapi/asm-generic/errno-base.h` and `errno.h`, 1..=133) and of the kernel's
    /// internal `EIOCBQUEUED`; `None` for values outside them.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "EPERM",
            2 => "ENOENT",
            3 => "ESRCH",
            4 => "EINTR",
            5 => "EIO",
            6 => "ENXIO",
            7 => "E2BIG",
            8 => "ENOEXEC",
            9 => "EBADF",
            10 => "ECHILD",
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
            33 => "EDOM",
            34 => "ERANGE",
            35 => "EDEADLK",
            36 => "ENAMETOOLONG",
            37 => "ENOLCK",
            38 => "ENOSYS",
            39 => "ENOTEMPTY",
            40 => "ELOOP",
            42 => "ENOMSG",
            43 => "EIDRM",
            44 => "ECHRNG",
            45 => "EL2NSYNC",
            46 => "EL3HLT",
            47 => "EL3RST",
            48 => "ELNRNG",
            49 => "EUNATCH",
            50 => "ENOCSI",
            51 => "EL2HLT",
            52 => "EBADE",
            53 => "EBADR",
            54 => "EXFULL",
            55 => "ENOANO",
            56 => "EBADRQC",
            57 => "EBADSLT",
            59 => "EBFONT",
            60 => "ENOSTR",
            61 => "ENODATA",
            62 => "ETIME",
            63 => "ENOSR",
            64 => "ENONET",
            65 => "ENOPKG",
            66 => "EREMOTE",
            67 => "ENOLINK",
            68 => "EADV",
            69 => "ESRMNT",
            70 => "ECOMM",
            71 => "EPROTO",
            72 => "EMULTIHOP",
            73 => "EDOTDOT",
            74 => "EBADMSG",
            75 => "EOVERFLOW",
            76 => "ENOTUNIQ",
            77 => "EBADFD",
            78 => "EREMCHG",
            79 => "ELIBACC",
            80 => "ELIBBAD",
            81 => "ELIBSCN",
            82 => "ELIBMAX",
            83 => "ELIBEXEC",
            84 => "EILSEQ",
            85 => "ERESTART",
            86 => "ESTRPIPE",
            87 => "EUSERS",
            88 => "ENOTSOCK",
            89 => "EDESTADDRREQ",
            90 => "EMSGSIZE",
            91 => "EPROTOTYPE",
            92 => "ENOPROTOOPT",
            93 => "EPROTONOSUPPORT",
            94 => "ESOCKTNOSUPPORT",
            95 => "EOPNOTSUPP",
            96 => "EPFNOSUPPORT",
            97 => "EAFNOSUPPORT",
            98 => "EADDRINUSE",
            99 => "EADDRNOTAVAIL",
            100 => "ENETDOWN",
            101 => "ENETUNREACH",
            102 => "ENETRESET",
            103 => "ECONNABORTED",
            104 => "ECONNRESET",
            105 => "ENOBUFS",
            106 => "EISCONN",
            107 => "ENOTCONN",
            108 => "ESHUTDOWN",
            109 => "ETOOMANYREFS",
            110 => "ETIMEDOUT",
            111 => "ECONNREFUSED",
            112 => "EHOSTDOWN",
            113 => "EHOSTUNREACH",
            114 => "EALREADY",
            115 => "EINPROGRESS",
            116 => "ESTALE",
            117 => "EUCLEAN",
            118 => "ENOTNAM",
            119 => "ENAVAIL",
            120 => "EISNAM",
            121 => "EREMOTEIO",
            122 => "EDQUOT",
            123 => "ENOMEDIUM",
            124 => "EMEDIUMTYPE",
            125 => "ECANCELED",
            126 => "ENOKEY",
            127 => "EKEYEXPIRED",
            128 => "EKEYREVOKED",
            129 => "EKEYREJECTED",
            130 => "EOWNERDEAD",
            131 => "ENOTRECOVERABLE",
            132 => "ERFKILL",
            133 => "EHWPOISON",
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

#[cfg(test)]
mod tests {
    use super::Errno;

    #[test]
    fn every_errno_swapon_can_return_has_a_name() {
        for (e, n) in [
            (Errno::EPERM, "EPERM"),
            (Errno::ENOENT, "ENOENT"),
            (Errno::ENXIO, "ENXIO"),
            (Errno::EACCES, "EACCES"),
            (Errno::EBUSY, "EBUSY"),
            (Errno::EISDIR, "EISDIR"),
            (Errno::EINVAL, "EINVAL"),
            (Errno::ETXTBSY, "ETXTBSY"),
            (Errno::EROFS, "EROFS"),
            (Errno::ENOMEM, "ENOMEM"),
        ] {
            assert_eq!(e.name(), Some(n));
        }
        assert!((1..=133).filter(|&v| v != 41 && v != 58).all(|v| Errno(v).name().is_some()));
        assert_eq!(Errno(4096).name(), None);
    }
}
