//! # swapdio — the Linux swap direct-I/O state machine as a library
//!
//! A sans-IO, `no_std` core that reproduces the swap I/O path of `mm/page_io.c` and
//! swapon's activation (`mm/swapfile.c`, `fs/iomap/swapfile.c`), and does better where
//! the kernel falls short: typed errors instead of `BUG()`, per-segment accounting of
//! short I/O, a report of what activation trimmed, refusal of stale completions.
//! [`swap_rules`] is the reference of every rule swapdio mirrors, each with the test
//! that pins it down (the same text as `docs/swap-rules.md` in the repository).
//!
//! The data flows one way: [`mod@activate`] → [`map`] → [`plug`] → [`iocb`] → [`backend`]
//! → completion ([`Engine::complete`]) → [`page`] actions. A [`Backend`] is the
//! engine's `->swap_rw`: it answers [`Submit::Done`] or [`Submit::Queued`] and then
//! calls [`Engine::complete`] from any thread; [`PageOps`] is what the engine asks of
//! the caller's pages.
//!
//! No floating point, no `unsafe` outside the `linux` module, no allocation on the I/O
//! path, and no panic reachable from the public API.
//!
//! ## Features
//!
//! | feature | default | adds | dependencies |
//! |---|---|---|---|
//! | *(none)* | | the `no_std` core: header, activation into caller memory ([`activate()`], [`activate_into`]), [`SwapMap`] over `&[MapEntry]`, [`Engine`] over caller storage ([`StorageRef`]) | bitflags, thiserror (both `no_std`) |
//! | `alloc` | via `std` | owned storage: `activate_owned`, `OwnedStorage`, the map's bucket index | — |
//! | `std` | yes | implies `alloc`; `testkit` (in-memory device, page-rule recorder, reference model of the activation arithmetic), `fault_backend` (seeded fault injection over any backend) | — |
//! | `linux` | yes | implies `std`; the `linux` module, on Linux only: FIEMAP layout probe, dry-run swapon (`check`), mkswap, layout lease, the io_uring, pread and NBD drivers | io-uring, libc (Linux targets only) |
//! | `serde` | no | implies `linux`; JSON forms: `CheckReport::to_json`, `Serialize` on driver stats | serde, serde_json |
//!
//! The defaults suit a Rust program on Linux. Kernel-style and C users turn them off:
//! `swapdio = { version = "0.1", default-features = false }` is `#![no_std]`, needs no
//! allocator and no libc, and keeps the map and the requests in caller-provided memory.
//! No feature pulls in a command-line crate: the `swapdio` binary is the separate
//! `swapdio-cli` package.
//!
//! ## Examples
//!
//! * `examples/uring_swap_file.rs` (`cargo run --example uring_swap_file`): creates a
//!   swap file with the library's mkswap, probes its layout, activates it, and moves
//!   pages through the engine and the io_uring driver, checking every byte.
//! * `examples/custom_backend.rs` (`cargo run --example custom_backend`): a `Backend`
//!   written from scratch, completing reads inline and writes from a worker thread,
//!   with an injected write failure that loses nothing.
//! * `README.md`, "Using the engine from Rust" (run as doctests): activation of an
//!   in-memory layout, and a page swapped out and back in through the testkit's toy
//!   device.
#![cfg_attr(not(feature = "std"), no_std)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(not(feature = "linux"), forbid(unsafe_code))]
#![cfg_attr(feature = "linux", deny(unsafe_code))]
#![warn(missing_docs)]

#[cfg(any(feature = "alloc", test))]
extern crate alloc;

pub mod activate;
pub mod backend;
pub mod caps;
pub mod engine;
pub mod errno;
pub mod fault;
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub mod fault_backend;
pub mod header;
pub mod iocb;
#[cfg(all(feature = "linux", target_os = "linux"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "linux", target_os = "linux"))))]
#[allow(unsafe_code)]
pub mod linux;
pub mod map;
pub mod page;
pub mod plug;
mod pool;
mod sync;
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub mod testkit;

#[doc = include_str!("../docs/swap-rules.md")]
pub mod swap_rules {}

/// The README's examples, compiled and run as doctests so they cannot drift from the code.
#[cfg(all(doctest, feature = "std"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Base page size. Slots, headers and trimming are in units of it.
pub const PAGE_SIZE: usize = 4096;
/// `log2(PAGE_SIZE)`.
pub const PAGE_SHIFT: u32 = 12;

#[cfg(feature = "alloc")]
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
pub use activate::activate_owned;
pub use activate::{
    activate, activate_into, ActivationError, ActivationReport, ActivationRequest, ExtentFlags, ExtentReport, Layout,
    Refusal, TrimLoss,
};
pub use backend::{Backend, Submit};
pub use caps::{choose_mode, BackendCaps, CapsRefusal, FileAttrs, IoMode, ModeRequest};
pub use engine::{CompleteError, Engine, EngineError, Stats, SwapError};
pub use errno::Errno;
pub use header::{HeaderError, HeaderLimits, SwapHeader, SwapTarget};
#[cfg(feature = "alloc")]
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
pub use iocb::OwnedStorage;
pub use iocb::{
    MalformedId, ReqFlags, Request, RequestId, RequestSlot, Segment, SplitSlot, Storage, StorageConfig, StorageRef,
    MAX_REQUEST_SLOTS, MAX_SEGMENTS,
};
pub use map::{MapEntry, MapError, Run, SwapMap};
pub use page::{Direction, Folio, FolioId, FsContext, IoFailure, PageOps, SwapEvent, Wake, MAX_FOLIO_PAGES};
pub use plug::{Plug, PlugState};
