//! The fixed reserve of requests: claiming and releasing slots without allocation,
//! locks or waiting.
//!
//! The kernel's `sio_pool` is a mempool of 32 elements whose allocation sleeps until a
//! completion frees one. swapdio never waits: a claim on an empty pool fails and the
//! engine reports [`crate::SwapError::WouldBlock`] after submitting any held batch.

use crate::iocb::{generation, phase, state, RequestSlot, SplitSlot, PHASE_BUILDING, PHASE_FREE};
use crate::sync::{AtomicUsize, Ordering};

/// End of a claimed chain.
pub(crate) const CHAIN_END: u32 = u32::MAX;

/// Claims one free slot, scanning from `hint`. Returns its index and generation.
pub(crate) fn claim(slots: &[RequestSlot], hint: &AtomicUsize) -> Option<(usize, u64)> {
    let n = slots.len();
    if n == 0 {
        return None;
    }
    let start = hint.load(Ordering::Relaxed) % n;
    for k in 0..n {
        let i = (start + k) % n;
        let slot = slots.get(i)?;
        let cur = slot.state.load(Ordering::Relaxed);
        if phase(cur) != PHASE_FREE {
            continue;
        }
        let gen = generation(cur);
        // Verification only (`--cfg swapdio_broken="pool_double_handout"`): a check-then-store
        // claim instead of a compare-and-swap, so two submitters can take the same slot.
        // `tests/loom_pool.rs` must catch it.
        #[cfg(swapdio_broken = "pool_double_handout")]
        {
            slot.state.store(state(gen, PHASE_BUILDING), Ordering::Release);
            hint.store(i + 1, Ordering::Relaxed);
            return Some((i, gen));
        }
        #[cfg(not(swapdio_broken = "pool_double_handout"))]
        if slot.state.compare_exchange(cur, state(gen, PHASE_BUILDING), Ordering::Acquire, Ordering::Relaxed).is_ok() {
            hint.store(i + 1, Ordering::Relaxed);
            return Some((i, gen));
        }
    }
    None
}

/// Claims `count` slots at once, chained through `next`; all or nothing.
/// Returns the first index of the chain.
pub(crate) fn claim_chain(slots: &[RequestSlot], hint: &AtomicUsize, count: usize) -> Option<usize> {
    let mut head = CHAIN_END;
    for _ in 0..count {
        match claim(slots, hint) {
            Some((i, _)) => {
                if let Some(s) = slots.get(i) {
                    s.next.store(head, Ordering::Relaxed);
                }
                head = i as u32;
            }
            None => {
                unclaim_chain(slots, head);
                return None;
            }
        }
    }
    Some(head as usize)
}

/// Iterates a claimed chain.
pub(crate) fn chain(slots: &[RequestSlot], head: usize) -> impl Iterator<Item = (usize, &RequestSlot)> {
    let mut cur = head as u32;
    core::iter::from_fn(move || {
        let i = cur as usize;
        let s = slots.get(i)?;
        cur = s.next.load(Ordering::Relaxed);
        Some((i, s))
    })
}

/// Returns a claimed but never submitted slot (same generation: nobody saw its id).
pub(crate) fn unclaim(slot: &RequestSlot) {
    let gen = generation(slot.state.load(Ordering::Relaxed));
    slot.state.store(state(gen, PHASE_FREE), Ordering::Release);
}

fn unclaim_chain(slots: &[RequestSlot], head: u32) {
    let mut cur = head;
    while let Some(s) = slots.get(cur as usize) {
        cur = s.next.load(Ordering::Relaxed);
        unclaim(s);
    }
}

/// Drops one reference; the last one frees the slot under a new generation so stale
/// ids can no longer complete it. Returns true if this call released the slot.
pub(crate) fn put(slot: &RequestSlot) -> bool {
    // The last of the two references (submitter, completion) releases the slot.
    #[cfg(not(swapdio_broken = "release_on_first_put"))]
    const LAST: u32 = 1;
    // Verification only (`--cfg swapdio_broken="release_on_first_put"`): release on the
    // wrong count. `tests/loom_refcount.rs` must catch it.
    #[cfg(swapdio_broken = "release_on_first_put")]
    const LAST: u32 = 2;
    if slot.refs.fetch_sub(1, Ordering::AcqRel) != LAST {
        return false;
    }
    let gen = generation(slot.state.load(Ordering::Relaxed));
    // The generation wraps within its 47 bits (`state` masks it): a stale id is refused
    // until the slot has been reused 2^47 times.
    slot.state.store(state(gen.wrapping_add(1), PHASE_FREE), Ordering::Release);
    true
}

/// Claims a split tracker.
pub(crate) fn claim_split(splits: &[SplitSlot]) -> Option<usize> {
    splits.iter().position(|s| {
        s.busy.load(Ordering::Relaxed) == 0
            && s.busy.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok()
    })
}

/// Releases a split tracker.
pub(crate) fn release_split(split: &SplitSlot) {
    split.busy.store(0, Ordering::Release);
}
