//! A deterministic, seeded faulty backend (feature `std`): wraps any [`Backend`] and,
//! per request, asks a [`FaultPlan`] whether to fail it (`EIO`, `ENOSPC`, `EAGAIN`,
//! `ENOMEM`, `EINTR`), cut it short at any byte, or let it through; then, per a second
//! seeded decision, delays its completion: `Done` becomes `Queued` and the result is
//! delivered later, in seeded (so reordered) order, by [`FaultyBackend::pump`].
//!
//! These are the outcomes a real `->swap_rw` can produce (`mm/page_io.c` handles each
//! in `sio_write_complete` / `sio_read_complete`: a failed or short write redirties the
//! folio, a failed or short read leaves it !uptodate; a completion may arrive on another
//! CPU, late, in any order). The same seed and request order reproduce a run.
//!
//! An injected error transfers nothing: the inner backend is not called. A short
//! transfer of `n` bytes calls the inner backend and reports `n`; if a
//! [`TransferLimit`] is attached (see [`TransferLimit::mem_device_script`]) the inner
//! backend also moves only the first `n` bytes, so a test sees exactly what a real torn
//! write leaves on the device. A request the inner backend itself answers `Queued` is
//! passed through untouched (its own completion path reports it).

use crate::backend::{Backend, Submit};
use crate::caps::BackendCaps;
use crate::errno::Errno;
use crate::fault::{mix, Fault, FaultConfig, FaultPlan};
use crate::iocb::{Request, RequestId};
use crate::testkit::{Action, Script};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::vec::Vec;

/// How completions are delayed and reordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct DelayConfig {
    /// Probability that a finished request's completion is held back for
    /// [`FaultyBackend::pump`], in parts per million.
    pub delay_ppm: u32,
    /// Seed of the delay decisions and of the delivery order.
    pub seed: u64,
}

/// Counts of what the wrapper did (for reports; every field is a number of requests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FaultStats {
    /// Requests submitted through the wrapper.
    pub requests: u64,
    /// Requests failed with `EIO`.
    pub eio: u64,
    /// Requests failed with `ENOSPC`.
    pub enospc: u64,
    /// Requests failed with `EAGAIN`.
    pub eagain: u64,
    /// Requests failed with `ENOMEM`.
    pub enomem: u64,
    /// Requests failed with another errno (`EINTR`).
    pub other_errors: u64,
    /// Requests cut short.
    pub short: u64,
    /// Completions held back and delivered later.
    pub delayed: u64,
    /// Delayed completions delivered so far.
    pub delivered: u64,
}

/// A byte limit the wrapper sets around each forwarded short request, read by a backend
/// able to honour it (an in-memory device through [`TransferLimit::mem_device_script`]).
#[derive(Clone, Debug)]
pub struct TransferLimit(Arc<AtomicU64>);

impl Default for TransferLimit {
    fn default() -> Self {
        Self::new()
    }
}

impl TransferLimit {
    /// No limit.
    pub fn new() -> Self {
        TransferLimit(Arc::new(AtomicU64::new(u64::MAX)))
    }

    fn set(&self, limit: u64) {
        self.0.store(limit, Ordering::SeqCst);
    }

    /// The current limit (`u64::MAX`: none).
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// A [`crate::testkit::MemDevice`] script that completes every request inline and
    /// moves only the first `limit` bytes (reporting them) while a limit is set: a torn
    /// write or a partial read, exactly at the byte the fault plan chose.
    pub fn mem_device_script(&self) -> Script {
        let limit = self.clone();
        Arc::new(move |req: &Request<'_>| {
            let l = limit.get();
            Action::Inline((l < req.len()).then_some(Ok(l)))
        })
    }
}

/// A seeded faulty wrapper over any [`Backend`]; see the module documentation.
pub struct FaultyBackend<B: Backend> {
    inner: B,
    plan: FaultPlan,
    delay: DelayConfig,
    limit: Option<TransferLimit>,
    /// Serialises forwarded requests while a limit is attached (the limit is global).
    forward: Mutex<()>,
    pending: Mutex<Vec<(RequestId, Result<u64, Errno>)>>,
    requests: AtomicU64,
    deliveries: AtomicU64,
    stats: Mutex<FaultStats>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<B: Backend> FaultyBackend<B> {
    /// Wraps `inner` with the faults of `faults` and the delays of `delay`.
    pub fn new(inner: B, faults: FaultConfig, delay: DelayConfig) -> Self {
        FaultyBackend {
            inner,
            plan: FaultPlan::new(faults),
            delay,
            limit: None,
            forward: Mutex::new(()),
            pending: Mutex::new(Vec::new()),
            requests: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            stats: Mutex::new(FaultStats::default()),
        }
    }

    /// Makes short transfers real: `limit` is set to the short length while the inner
    /// backend runs the request (it must honour it, as
    /// [`TransferLimit::mem_device_script`] does).
    pub fn with_transfer_limit(mut self, limit: TransferLimit) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// What the wrapper has injected so far.
    pub fn stats(&self) -> FaultStats {
        *lock(&self.stats)
    }

    /// Completions held back, not yet delivered.
    pub fn pending(&self) -> usize {
        lock(&self.pending).len()
    }

    /// Delivers up to `max` held-back completions, each picked at a seeded random
    /// position among those pending (so they arrive out of order), by calling
    /// `deliver(id, result)` — normally `|id, r| engine.complete(id, r)`. No lock is held
    /// while `deliver` runs. Returns how many were delivered.
    pub fn pump<R>(&self, max: usize, mut deliver: impl FnMut(RequestId, Result<u64, Errno>) -> R) -> usize {
        let mut n = 0;
        while n < max {
            let next = {
                let mut pending = lock(&self.pending);
                if pending.is_empty() {
                    break;
                }
                let k = self.deliveries.fetch_add(1, Ordering::Relaxed);
                let at = (mix(self.delay.seed ^ mix(k ^ 0x5eed)) % pending.len() as u64) as usize;
                pending.swap_remove(at)
            };
            lock(&self.stats).delivered += 1;
            deliver(next.0, next.1);
            n += 1;
        }
        n
    }

    /// Delivers every held-back completion (see [`FaultyBackend::pump`]).
    pub fn deliver_all<R>(&self, deliver: impl FnMut(RequestId, Result<u64, Errno>) -> R) -> usize {
        self.pump(usize::MAX, deliver)
    }

    fn count(&self, fault: Fault) {
        let mut s = lock(&self.stats);
        s.requests += 1;
        match fault {
            Fault::None => {}
            Fault::Short(_) => s.short += 1,
            Fault::Error(Errno::EIO) => s.eio += 1,
            Fault::Error(Errno::ENOSPC) => s.enospc += 1,
            Fault::Error(Errno::EAGAIN) => s.eagain += 1,
            Fault::Error(Errno::ENOMEM) => s.enomem += 1,
            Fault::Error(_) => s.other_errors += 1,
        }
    }

    fn forward(&self, req: &Request<'_>, short: Option<u64>) -> Submit {
        match (&self.limit, short) {
            (Some(limit), Some(n)) => {
                let _serial = lock(&self.forward);
                limit.set(n);
                let r = self.inner.submit(req);
                limit.set(u64::MAX);
                r
            }
            (Some(_), None) => {
                let _serial = lock(&self.forward);
                self.inner.submit(req)
            }
            (None, _) => self.inner.submit(req),
        }
    }
}

impl<B: Backend> Backend for FaultyBackend<B> {
    fn caps(&self) -> BackendCaps {
        self.inner.caps()
    }

    fn submit(&self, req: &Request<'_>) -> Submit {
        let fault = self.plan.next(req.len());
        self.count(fault);
        let result = match fault {
            // The error happened before any byte moved.
            Fault::Error(e) => Err(e),
            Fault::None => match self.forward(req, None) {
                Submit::Done(r) => r,
                Submit::Queued => return Submit::Queued,
            },
            Fault::Short(n) => match self.forward(req, Some(n)) {
                Submit::Done(Ok(b)) => Ok(b.min(n)),
                Submit::Done(Err(e)) => Err(e),
                Submit::Queued => return Submit::Queued,
            },
        };
        let k = self.requests.fetch_add(1, Ordering::Relaxed);
        let delayed = (mix(self.delay.seed ^ mix(k)) % 1_000_000) < u64::from(self.delay.delay_ppm);
        if !delayed {
            return Submit::Done(result);
        }
        lock(&self.stats).delayed += 1;
        lock(&self.pending).push((req.id(), result));
        Submit::Queued
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FaultKinds;

    struct Never;
    impl Backend for Never {
        fn caps(&self) -> BackendCaps {
            BackendCaps::BLOCK_DEVICE
        }
        fn submit(&self, _: &Request<'_>) -> Submit {
            Submit::Done(Err(Errno::EFAULT))
        }
    }

    #[test]
    fn fault_backend_zero_rates_inject_nothing_and_hold_nothing() {
        let b = FaultyBackend::new(Never, FaultConfig::NONE, DelayConfig::default());
        assert_eq!(b.pending(), 0);
        assert_eq!(b.pump(10, |_, _| ()), 0);
        assert_eq!(b.stats(), FaultStats::default());
        let cfg = FaultConfig { rate_ppm: 1_000_000, seed: 3, kinds: FaultKinds::EIO };
        assert_eq!(FaultPlan::decide(cfg, 0, 4096), Fault::Error(Errno::EIO));
    }
}
