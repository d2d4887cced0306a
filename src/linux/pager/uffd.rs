//! The userfaultfd calls the pager makes, as thin wrappers over the kernel's ioctls
//! (`include/uapi/linux/userfaultfd.h`): open, `UFFDIO_API`, `UFFDIO_REGISTER`,
//! `UFFDIO_COPY`, `UFFDIO_ZEROPAGE`, `UFFDIO_WRITEPROTECT`, `UFFDIO_WAKE`, and reading
//! fault messages.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const UFFD_API: u64 = 0xAA;
const UFFDIO: u64 = 0xAA;

const fn iowr(nr: u64, size: u64) -> u64 {
    (3 << 30) | (size << 16) | (UFFDIO << 8) | nr
}
const fn ior(nr: u64, size: u64) -> u64 {
    (2 << 30) | (size << 16) | (UFFDIO << 8) | nr
}

const UFFDIO_API_IOCTL: u64 = iowr(0x3F, 24);
const UFFDIO_REGISTER: u64 = iowr(0x00, 32);
const UFFDIO_WAKE: u64 = ior(0x02, 16);
const UFFDIO_COPY: u64 = iowr(0x03, 40);
const UFFDIO_ZEROPAGE: u64 = iowr(0x04, 32);
const UFFDIO_WRITEPROTECT: u64 = iowr(0x06, 24);
const UFFDIO_POISON: u64 = iowr(0x08, 32);
/// `USERFAULTFD_IOC_NEW` on `/dev/userfaultfd`: `_IO(0xAA, 0x00)`.
const USERFAULTFD_IOC_NEW: u64 = UFFDIO << 8;

/// `UFFD_FEATURE_PAGEFAULT_FLAG_WP`: write-protect faults are reported.
const FEATURE_PAGEFAULT_FLAG_WP: u64 = 1 << 0;
/// `UFFD_FEATURE_THREAD_ID`: each fault names the faulting thread.
const FEATURE_THREAD_ID: u64 = 1 << 8;
/// `UFFD_FEATURE_POISON`: `UFFDIO_POISON` (Linux 6.6).
const FEATURE_POISON: u64 = 1 << 14;
const REGISTER_MODE_MISSING: u64 = 1 << 0;
const REGISTER_MODE_WP: u64 = 1 << 1;
const COPY_MODE_DONTWAKE: u64 = 1 << 0;
const COPY_MODE_WP: u64 = 1 << 1;
const WP_MODE_WP: u64 = 1 << 0;
const WP_MODE_DONTWAKE: u64 = 1 << 1;
/// `UFFD_USER_MODE_ONLY`: only user-mode faults (allowed without `CAP_SYS_PTRACE`).
const USER_MODE_ONLY: libc::c_int = 1;

/// `UFFD_EVENT_PAGEFAULT`.
pub const EVENT_PAGEFAULT: u8 = 0x12;
/// `UFFD_PAGEFAULT_FLAG_WRITE`.
pub const FLAG_WRITE: u64 = 1 << 0;
/// `UFFD_PAGEFAULT_FLAG_WP`.
pub const FLAG_WP: u64 = 1 << 1;

#[repr(C)]
#[derive(Default)]
struct Range {
    start: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct ApiArg {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
#[derive(Default)]
struct RegisterArg {
    range: Range,
    mode: u64,
    ioctls: u64,
}

#[repr(C)]
#[derive(Default)]
struct CopyArg {
    dst: u64,
    src: u64,
    len: u64,
    mode: u64,
    copy: i64,
}

#[repr(C)]
#[derive(Default)]
struct ZeroArg {
    range: Range,
    mode: u64,
    zeropage: i64,
}

#[repr(C)]
#[derive(Default)]
struct WpArg {
    range: Range,
    mode: u64,
}

/// One `struct uffd_msg` (32 bytes); only page faults are enabled.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Msg {
    /// `UFFD_EVENT_*`.
    pub event: u8,
    reserved1: u8,
    reserved2: u16,
    reserved3: u32,
    /// `UFFD_PAGEFAULT_FLAG_*`.
    pub flags: u64,
    /// Faulting address.
    pub address: u64,
    /// Faulting thread (with `UFFD_FEATURE_THREAD_ID`).
    pub ptid: u32,
    reserved4: u32,
}

/// A userfaultfd with write-protect fault reporting.
#[derive(Debug)]
pub struct Uffd {
    fd: OwnedFd,
    poison: bool,
}

fn ioctl<T>(fd: libc::c_int, req: u64, arg: &mut T) -> io::Result<()> {
    // SAFETY: `arg` is the `#[repr(C)]` struct the request number's size encodes; the
    // kernel reads and writes only within it.
    let r = unsafe { libc::ioctl(fd, req as _, arg as *mut T) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Uffd {
    /// Opens a non-blocking userfaultfd: the syscall first (root, or
    /// `vm.unprivileged_userfaultfd=1`), then user-mode-only faults, then
    /// `/dev/userfaultfd`; then negotiates the API with write-protect faults and thread ids.
    pub fn open() -> io::Result<Uffd> {
        let flags = libc::O_CLOEXEC | libc::O_NONBLOCK;
        let mut last = io::Error::from_raw_os_error(libc::ENOSYS);
        let mut fd = -1;
        for f in [flags, flags | USER_MODE_ONLY] {
            // SAFETY: userfaultfd(2) takes only flags and returns a new descriptor or -1.
            let r = unsafe { libc::syscall(libc::SYS_userfaultfd, f) };
            if r >= 0 {
                fd = r as libc::c_int;
                break;
            }
            last = io::Error::last_os_error();
        }
        if fd < 0 {
            if let Ok(dev) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/userfaultfd") {
                // SAFETY: USERFAULTFD_IOC_NEW takes the flags by value and returns a new fd.
                let r = unsafe { libc::ioctl(dev.as_raw_fd(), USERFAULTFD_IOC_NEW as _, flags) };
                if r < 0 {
                    last = io::Error::last_os_error();
                } else {
                    fd = r;
                }
            }
        }
        if fd < 0 {
            return Err(last);
        }
        // SAFETY: `fd` is a descriptor just returned to us and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // Ask for everything; the kernel answers with what it has (and refuses a request for
        // features it lacks, so ask again without poison on older kernels).
        let base = FEATURE_PAGEFAULT_FLAG_WP | FEATURE_THREAD_ID;
        let mut api = ApiArg { api: UFFD_API, features: base | FEATURE_POISON, ioctls: 0 };
        let poison = ioctl(fd.as_raw_fd(), UFFDIO_API_IOCTL, &mut api).is_ok();
        if !poison {
            let mut api = ApiArg { api: UFFD_API, features: base, ioctls: 0 };
            ioctl(fd.as_raw_fd(), UFFDIO_API_IOCTL, &mut api)?;
        }
        Ok(Uffd { fd, poison })
    }

    /// Registers `[start, start + len)` for missing and write-protect faults.
    pub fn register(&self, start: u64, len: u64) -> io::Result<()> {
        let mut r =
            RegisterArg { range: Range { start, len }, mode: REGISTER_MODE_MISSING | REGISTER_MODE_WP, ioctls: 0 };
        ioctl(self.fd.as_raw_fd(), UFFDIO_REGISTER, &mut r)?;
        // UFFDIO_WRITEPROTECT is bit 6 of the ioctls the range supports.
        if r.ioctls & (1 << 6) == 0 {
            return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        }
        Ok(())
    }

    /// `UFFDIO_COPY`: maps `len` bytes copied from `src` at `dst`, write-protected when
    /// `wp`, waking the threads waiting on the range unless `dontwake`. Retries partial
    /// copies and `EAGAIN`; `EEXIST` (a page already there) is returned as is.
    pub fn copy(&self, dst: u64, src: *const u8, len: u64, wp: bool, dontwake: bool) -> io::Result<()> {
        let mut done = 0u64;
        while done < len {
            let mut c = CopyArg {
                dst: dst + done,
                src: src as u64 + done,
                len: len - done,
                mode: if wp { COPY_MODE_WP } else { 0 } | if dontwake { COPY_MODE_DONTWAKE } else { 0 },
                copy: 0,
            };
            match ioctl(self.fd.as_raw_fd(), UFFDIO_COPY, &mut c) {
                Ok(()) => done += c.copy.max(0) as u64,
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => done += c.copy.max(0) as u64,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `UFFDIO_ZEROPAGE`: maps the shared zero page at `[start, start + len)` and wakes.
    pub fn zeropage(&self, start: u64, len: u64) -> io::Result<()> {
        loop {
            let mut z = ZeroArg { range: Range { start, len }, mode: 0, zeropage: 0 };
            match ioctl(self.fd.as_raw_fd(), UFFDIO_ZEROPAGE, &mut z) {
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && z.zeropage <= 0 => continue,
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(()),
                r => return r,
            }
        }
    }

    /// `UFFDIO_WRITEPROTECT`: protects (`wp`) or unprotects the range; unprotecting
    /// wakes the threads waiting on it unless `dontwake` (the kernel refuses
    /// `DONTWAKE` with `WP`, so it is ignored when protecting).
    pub fn write_protect(&self, start: u64, len: u64, wp: bool, dontwake: bool) -> io::Result<()> {
        let mode = if wp {
            WP_MODE_WP
        } else if dontwake {
            WP_MODE_DONTWAKE
        } else {
            0
        };
        loop {
            let mut w = WpArg { range: Range { start, len }, mode };
            match ioctl(self.fd.as_raw_fd(), UFFDIO_WRITEPROTECT, &mut w) {
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
                r => return r,
            }
        }
    }

    /// `UFFDIO_POISON`: maps a poison marker over `[start, start + len)` and wakes: every
    /// access then gets `SIGBUS` (`BUS_MCEERR_AR`, `si_addr` the address) from the kernel,
    /// as a hardware memory error would. `ENOTSUP` where the kernel lacks it.
    pub fn poison(&self, start: u64, len: u64) -> io::Result<()> {
        if !self.poison {
            return Err(io::Error::from_raw_os_error(libc::ENOTSUP));
        }
        loop {
            let mut z = ZeroArg { range: Range { start, len }, mode: 0, zeropage: 0 };
            match ioctl(self.fd.as_raw_fd(), UFFDIO_POISON, &mut z) {
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
                r => return r,
            }
        }
    }

    /// `UFFDIO_WAKE`: wakes the threads waiting on the range.
    pub fn wake(&self, start: u64, len: u64) -> io::Result<()> {
        let mut r = Range { start, len };
        ioctl(self.fd.as_raw_fd(), UFFDIO_WAKE, &mut r)
    }

    /// Reads up to `out.len()` messages without blocking; 0 when none is pending.
    pub fn read(&self, out: &mut [Msg]) -> io::Result<usize> {
        let bytes = std::mem::size_of_val(out);
        // SAFETY: reads at most `bytes` into `out`, whose elements are plain integers
        // (any bit pattern is valid).
        let r = unsafe { libc::read(self.fd.as_raw_fd(), out.as_mut_ptr().cast(), bytes) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => Ok(0),
                _ => Err(e),
            };
        }
        Ok(r as usize / std::mem::size_of::<Msg>())
    }

    /// The descriptor (for `poll`).
    pub fn raw(&self) -> libc::c_int {
        self.fd.as_raw_fd()
    }
}
