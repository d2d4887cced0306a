//! Deterministic, seeded fault decisions shared by every fault injector: the test
//! backend wrapper and the Linux drivers' `--inject-faults` both ask a [`FaultPlan`]
//! what to do with the n-th request, so a seed reproduces a run.
//!
//! Integer arithmetic only (rates in parts per million), no allocation, no clock.

use crate::errno::Errno;
use crate::sync::{AtomicU64, Ordering};

bitflags::bitflags! {
    /// Which faults a plan may inject.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct FaultKinds: u32 {
        /// `EIO`.
        const EIO = 1 << 0;
        /// `ENOSPC`.
        const ENOSPC = 1 << 1;
        /// `EAGAIN` (transient).
        const EAGAIN = 1 << 2;
        /// `ENOMEM` (transient).
        const ENOMEM = 1 << 3;
        /// A short transfer at a random byte.
        const SHORT = 1 << 4;
        /// `EINTR` (transient).
        const EINTR = 1 << 5;
    }
}

/// What to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FaultConfig {
    /// Probability of a fault per request, in parts per million (0..=1_000_000).
    pub rate_ppm: u32,
    /// Seed: the same seed and request order give the same faults.
    pub seed: u64,
    /// Faults to choose from (uniformly).
    pub kinds: FaultKinds,
}

impl FaultConfig {
    /// No faults.
    pub const NONE: FaultConfig = FaultConfig { rate_ppm: 0, seed: 0, kinds: FaultKinds::empty() };
}

/// The decision for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Let it through.
    None,
    /// Fail with this errno, transferring nothing.
    Error(Errno),
    /// Transfer only this many bytes (less than the request's length).
    Short(u64),
}

/// A thread-safe sequence of fault decisions.
#[derive(Debug)]
pub struct FaultPlan {
    config: FaultConfig,
    counter: AtomicU64,
}

/// SplitMix64: a small, well-mixed hash of the seed and the request number.
pub(crate) const fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl FaultPlan {
    /// A plan for `config`.
    pub fn new(config: FaultConfig) -> Self {
        FaultPlan { config, counter: AtomicU64::new(0) }
    }

    /// The configuration.
    pub fn config(&self) -> FaultConfig {
        self.config
    }

    /// Decides the fault for the next request of `len` bytes.
    pub fn next(&self, len: u64) -> Fault {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        Self::decide(self.config, n, len)
    }

    /// The decision for request number `n` of `len` bytes (pure).
    pub fn decide(config: FaultConfig, n: u64, len: u64) -> Fault {
        let kinds = config.kinds;
        if config.rate_ppm == 0 || kinds.is_empty() {
            return Fault::None;
        }
        let h = mix(config.seed ^ mix(n));
        if (h % 1_000_000) as u32 >= config.rate_ppm {
            return Fault::None;
        }
        let count = kinds.bits().count_ones() as u64;
        let pick = (h >> 20) % count;
        let Some(kind) = kinds.iter().nth(pick as usize) else { return Fault::None };
        let errno = |e| Fault::Error(e);
        match kind {
            FaultKinds::EIO => errno(Errno::EIO),
            FaultKinds::ENOSPC => errno(Errno::ENOSPC),
            FaultKinds::EAGAIN => errno(Errno::EAGAIN),
            FaultKinds::ENOMEM => errno(Errno::ENOMEM),
            FaultKinds::EINTR => errno(Errno::EINTR),
            _ if len > 0 => Fault::Short((h >> 40) % len),
            _ => Fault::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_plan_is_deterministic_per_seed() {
        let cfg = FaultConfig { rate_ppm: 200_000, seed: 42, kinds: FaultKinds::all() };
        let a: alloc::vec::Vec<_> = (0..1000).map(|n| FaultPlan::decide(cfg, n, 8192)).collect();
        let p = FaultPlan::new(cfg);
        let b: alloc::vec::Vec<_> = (0..1000).map(|_| p.next(8192)).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn fault_plan_rate_is_roughly_honoured_and_short_is_short() {
        let cfg = FaultConfig { rate_ppm: 100_000, seed: 7, kinds: FaultKinds::all() };
        let faults = (0..100_000).map(|n| FaultPlan::decide(cfg, n, 4096)).filter(|f| *f != Fault::None).count();
        assert!((8_000..12_000).contains(&faults), "{faults}");
        for n in 0..10_000 {
            if let Fault::Short(b) = FaultPlan::decide(cfg, n, 4096) {
                assert!(b < 4096);
            }
        }
    }

    #[test]
    fn fault_plan_zero_rate_never_faults() {
        let cfg = FaultConfig { rate_ppm: 0, seed: 1, kinds: FaultKinds::all() };
        assert!((0..10_000).all(|n| FaultPlan::decide(cfg, n, 4096) == Fault::None));
    }
}
