//! The Linux userspace side of swapdio (feature `linux`): reading a real swap file's
//! layout, moving pages with io_uring or pread/pwrite, and checking the layout did not
//! change while the file was active.
//!
//! `unsafe` lives here (and in the drivers only), each block with a `// SAFETY:` note.
