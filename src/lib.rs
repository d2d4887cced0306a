//! # swapdio — the Linux swap direct-I/O state machine as a library
//!
//! A sans-IO, `no_std` core that reproduces the swap I/O path of `mm/page_io.c` and
//! swapon's activation (`mm/swapfile.c`, `fs/iomap/swapfile.c`), and does better where
//! the kernel falls short: typed errors instead of `BUG()`, per-segment accounting of
//! short I/O, a report of what activation trimmed, refusal of stale completions.
//!
//! The data flows one way: [`activate`] → [`map`] → [`plug`] → [`iocb`] → [`backend`]
//! → completion ([`Engine::complete`]) → [`page`] actions.
//!
//! Build modes: `#![no_std]` unless feature `std`; feature `alloc` adds owned storage;
//! with neither, the map and the requests live in caller-provided memory. No floating
//! point, no `unsafe`, no allocation on the I/O path, and no panic reachable from the
//! public API.
#![cfg_attr(not(feature = "std"), no_std)]
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
pub mod fault_backend;
pub mod header;
pub mod iocb;
#[cfg(all(feature = "linux", target_os = "linux"))]
#[allow(unsafe_code)]
pub mod linux;
pub mod map;
pub mod page;
pub mod plug;
mod pool;
mod sync;
#[cfg(feature = "std")]
pub mod testkit;

/// The README's examples, compiled and run as doctests so they cannot drift from the code.
#[cfg(all(doctest, feature = "std"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Base page size. Slots, headers and trimming are in units of it.
pub const PAGE_SIZE: usize = 4096;
/// `log2(PAGE_SIZE)`.
pub const PAGE_SHIFT: u32 = 12;

#[cfg(feature = "alloc")]
pub use activate::activate_owned;
pub use activate::{
    activate, activate_into, ActivationError, ActivationReport, ActivationRequest, ExtentFlags, ExtentReport, Layout,
    Refusal, TrimLoss,
};
pub use backend::{Backend, Submit};
pub use caps::{choose_mode, BackendCaps, CapsRefusal, FileAttrs, IoMode, ModeRequest};
pub use engine::{CompleteError, Engine, EngineError, Stats, SwapError};
pub use errno::Errno;
pub use header::{HeaderError, HeaderLimits, SwapHeader};
#[cfg(feature = "alloc")]
pub use iocb::OwnedStorage;
pub use iocb::{
    ReqFlags, Request, RequestId, RequestSlot, Segment, SplitSlot, Storage, StorageConfig, StorageRef, MAX_SEGMENTS,
};
pub use map::{MapEntry, MapError, Run, SwapMap};
pub use page::{Direction, Folio, FolioId, FsContext, IoFailure, PageOps, SwapEvent, MAX_FOLIO_PAGES};
pub use plug::{Plug, PlugState};
