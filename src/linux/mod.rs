//! The Linux userspace side of swapdio (feature `linux`): reading a real swap file's
//! layout, creating swap files, moving pages with io_uring or pread/pwrite, and checking
//! the layout did not change while the file was active.
//!
//! `unsafe` lives here (in the FFI to the kernel and the drivers only), each block with
//! a `// SAFETY:` note.

pub mod bmap;
pub mod btrfs;
pub mod check;
pub mod claim;
pub mod direct;
pub mod guard;
pub mod layout;
pub mod lease;
pub mod mkswap;
pub mod nbd;
pub mod pager;
pub mod pread;
pub mod procfs;
pub mod uring;

/// An OS error spelled the way every swapdio message spells an errno, the `Errno`
/// `Display`: `No such file or directory, ENOENT (errno 2)` rather than std's
/// `(os error 2)`. Errors without an OS code print as std prints them.
pub fn io_text(e: &std::io::Error) -> String {
    let Some(code) = e.raw_os_error() else { return e.to_string() };
    let shown = e.to_string();
    let text = shown.strip_suffix(&format!(" (os error {code})")).unwrap_or(&shown);
    format!("{text}, {}", crate::Errno(code))
}
