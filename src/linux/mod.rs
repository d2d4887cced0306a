//! The Linux userspace side of swapdio (feature `linux`): reading a real swap file's
//! layout, creating swap files, moving pages with io_uring or pread/pwrite, and checking
//! the layout did not change while the file was active.
//!
//! `unsafe` lives here (in the FFI to the kernel and the drivers only), each block with
//! a `// SAFETY:` note.

pub mod check;
pub mod direct;
pub mod guard;
pub mod layout;
pub mod lease;
pub mod mkswap;
pub mod nbd;
pub mod pager;
pub mod pread;
pub mod uring;
