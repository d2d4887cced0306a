//! How the pager moves pages: through the engine and the io_uring driver (plugged
//! batches, one wait for the batch), or — the baseline — one synchronous
//! `pread`/`pwrite` per page with no engine (the way crosvm's vmm-swap and UMap do it).

use crate::errno::Errno;
use crate::iocb::{OwnedStorage, StorageConfig};
use crate::linux::direct::{Arena, Target};
use crate::linux::uring::{DriverConfig, Foreground, UringBackend};
use crate::map::{MapEntry, SwapMap};
use crate::page::{Folio, FolioId, FsContext, PageOps, SwapEvent};
use crate::{Engine, SwapError, PAGE_SIZE};
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One page to move: its swap slot and the arena page holding its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Xfer {
    pub slot: u64,
    pub staging: usize,
}

/// The pager's I/O path.
pub(crate) trait PageIo: Send + Sync {
    /// The staging memory the I/O uses.
    fn arena(&self) -> &Arena;
    /// Reads every item (slot -> staging page) on `lane`; `out[i]` is its result. One
    /// thread at a time uses a lane (each handler its own, eviction and prefetch theirs).
    fn read(&self, lane: usize, items: &[Xfer], out: &mut [Result<(), Errno>]);
    /// Writes every item (staging page -> slot) on `lane`; `out[i]` is its result.
    fn write(&self, lane: usize, items: &[Xfer], out: &mut [Result<(), Errno>]);
    /// Driver counters, for the report: requests submitted and faults injected.
    fn requests(&self) -> (u64, u64);
    /// Keeps `lane`'s reaper standing aside while the result is held: the lane's user
    /// thread reaps every completion itself (held for a handler's or the evictor's life).
    fn hold(&self, lane: usize) -> Option<Foreground<'_>>;
}

const PENDING: u8 = 0;
const DONE_OK: u8 = 1;
const DONE_FAILED: u8 = 2;
const DIR_READ: u8 = 0;
const DIR_WRITE: u8 = 1;

/// The page operations the engine calls for the pager's staging pages: each staging page
/// records how its request ended (the `folio_*` calls of `mm/page_io.c`: a write's
/// failure redirties before `folio_end_writeback`, a read's success marks uptodate
/// before `folio_unlock`).
pub(crate) struct StagingPages {
    state: Box<[AtomicU8]>,
    dir: Box<[AtomicU8]>,
    failed: Box<[AtomicU8]>,
    errno: Box<[AtomicU32]>,
}

impl StagingPages {
    fn new(pages: usize) -> StagingPages {
        let v = |n| (0..pages).map(|_| AtomicU8::new(n)).collect::<Box<[_]>>();
        StagingPages {
            state: v(DONE_OK),
            dir: v(DIR_READ),
            failed: v(0),
            errno: (0..pages).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    fn idx(&self, f: FolioId) -> Option<usize> {
        usize::try_from(f.0).ok().filter(|&i| i < self.state.len())
    }

    /// Reads start failed and `set_uptodate` clears it (a failed read only unlocks);
    /// writes start good and `set_dirty` (the redirty of a failed write) marks them.
    fn arm(&self, i: usize, dir: u8) {
        self.dir[i].store(dir, Ordering::Relaxed);
        self.failed[i].store(u8::from(dir == DIR_READ), Ordering::Relaxed);
        self.errno[i].store(0, Ordering::Relaxed);
        self.state[i].store(PENDING, Ordering::Release);
    }

    fn finish(&self, f: FolioId, dir: u8) {
        if let Some(i) = self.idx(f) {
            if self.dir[i].load(Ordering::Relaxed) == dir {
                let failed = self.failed[i].load(Ordering::Relaxed) != 0;
                self.state[i].store(if failed { DONE_FAILED } else { DONE_OK }, Ordering::Release);
            }
        }
    }

    fn result(&self, i: usize) -> Option<Result<(), Errno>> {
        match self.state[i].load(Ordering::Acquire) {
            PENDING => None,
            DONE_OK => Some(Ok(())),
            _ => {
                let e = self.errno[i].load(Ordering::Relaxed);
                Some(Err(if e == 0 { Errno::EIO } else { Errno(e as i32) }))
            }
        }
    }
}

impl PageOps for StagingPages {
    fn set_uptodate(&self, f: FolioId) {
        if let Some(i) = self.idx(f) {
            self.failed[i].store(0, Ordering::Relaxed);
        }
    }
    fn set_dirty(&self, f: FolioId) {
        if let Some(i) = self.idx(f) {
            self.failed[i].store(1, Ordering::Relaxed);
        }
    }
    fn clear_reclaim(&self, _: FolioId) {}
    fn start_writeback(&self, _: FolioId) {}
    fn end_writeback(&self, f: FolioId) {
        self.finish(f, DIR_WRITE);
    }
    fn unlock(&self, f: FolioId) {
        self.finish(f, DIR_READ);
    }
    fn pin(&self, _: FolioId) {}
    fn unpin(&self, _: FolioId) {}
    fn event(&self, e: SwapEvent) {
        let (folio, failure) = match e {
            SwapEvent::ReadFailed { folio, failure, .. } => (folio, failure),
            SwapEvent::WriteFailed { folio, failure, .. } => (folio, failure),
            _ => return,
        };
        if let Some(i) = self.idx(folio) {
            self.errno[i].store(failure.errno().0 as u32, Ordering::Relaxed);
        }
    }
}

type PagerEngine = Engine<Vec<MapEntry>, OwnedStorage, Arc<UringBackend>, StagingPages>;

/// One ring and engine, used by one thread at a time.
struct Lane {
    engine: Arc<PagerEngine>,
    uring: Arc<UringBackend>,
}

/// Pages through the engine and io_uring: one plug per batch. Each lane (a handler
/// thread, eviction, prefetch) has its own ring and engine over the same swap map and
/// arena, so the thread that submits a batch reaps its completions itself
/// ([`crate::linux::uring::Foreground`], the kernel's polled swap-in) with no hand-off
/// to a reaper thread and back.
pub(crate) struct EngineIo {
    lanes: Vec<Lane>,
    arena: Arc<Arena>,
}

impl EngineIo {
    /// Requests of a lane's engine pool unless told otherwise.
    pub(crate) const LANE_POOL: usize = 64;

    /// One lane per entry of `pools`, each an engine with that many requests (the
    /// most that lane has in flight) over its own io_uring.
    pub(crate) fn new(
        map: SwapMap<Vec<MapEntry>>,
        target: &Target,
        arena: Arc<Arena>,
        faults: DriverConfig,
        pools: &[usize],
    ) -> io::Result<EngineIo> {
        let mut out = Vec::with_capacity(pools.len());
        for &pool in pools {
            let storage = StorageConfig { pool, sync: 4, splits: 8 };
            let config = DriverConfig { requests: storage.pool + storage.sync, ..faults };
            let target = match target {
                Target::File { path, .. } => Target::file(path)?,
                Target::Device { path, fence, .. } => Target::device(path, fence.clone())?,
            };
            let uring = Arc::new(UringBackend::new(target, arena.clone(), config)?);
            let lane_map =
                SwapMap::new(map.entries().to_vec(), map.mode()).map_err(|e| io::Error::other(e.to_string()))?;
            let pages = StagingPages::new(arena.pages());
            let engine = Engine::new(
                lane_map,
                OwnedStorage::new(storage).map_err(|e| io::Error::other(format!("engine storage: {e}")))?,
                uring.clone(),
                pages,
            )
            .map_err(|e| io::Error::other(format!("engine setup: {e}")))?;
            let engine = Arc::new(engine);
            uring.connect(&engine);
            out.push(Lane { engine, uring });
        }
        Ok(EngineIo { lanes: out, arena })
    }

    fn run(&self, lane: usize, items: &[Xfer], out: &mut [Result<(), Errno>], dir: u8) {
        let Some(lane) = self.lanes.get(lane) else {
            out.iter_mut().for_each(|o| *o = Err(Errno::EINVAL));
            return;
        };
        let pages = lane.engine.page_ops();
        let mut fg = lane.uring.foreground();
        let mut next = 0;
        while next < items.len() {
            // Queue as many as the reserve takes, in one plug: adjacent slots share a request.
            {
                let mut plug = lane.engine.plug();
                while let Some(x) = items.get(next) {
                    pages.arm(x.staging, dir);
                    let folio = Folio::small(x.staging as u64, x.slot);
                    let r = if dir == DIR_WRITE { plug.write(folio, FsContext::MayEnterFs) } else { plug.read(folio) };
                    match r {
                        Ok(()) => next += 1,
                        Err(SwapError::WouldBlock) => {
                            pages.state[x.staging].store(DONE_OK, Ordering::Release);
                            break;
                        }
                        Err(e) => {
                            pages.state[x.staging].store(DONE_OK, Ordering::Release);
                            out[next] = Err(e.errno());
                            next += 1;
                        }
                    }
                }
            }
            // Wait for what is in flight when the reserve ran out; at the end, for all.
            let mut waits = 0u32;
            loop {
                let pending = items[..next]
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| out[*i].is_ok())
                    .any(|(_, x)| pages.result(x.staging).is_none());
                if !pending || (next < items.len() && waits > 0 && lane.engine.pool_free() > 0) {
                    break;
                }
                // This thread is the lane's only user: it reaps its own completions.
                fg.wait(Duration::from_millis(1));
                waits += 1;
            }
        }
        for (i, x) in items.iter().enumerate() {
            if out[i].is_ok() {
                out[i] = pages.result(x.staging).unwrap_or(Err(Errno::EIO));
            }
        }
    }
}

impl PageIo for EngineIo {
    fn arena(&self) -> &Arena {
        &self.arena
    }
    fn read(&self, lane: usize, items: &[Xfer], out: &mut [Result<(), Errno>]) {
        self.run(lane, items, out, DIR_READ);
    }
    fn write(&self, lane: usize, items: &[Xfer], out: &mut [Result<(), Errno>]) {
        self.run(lane, items, out, DIR_WRITE);
    }
    fn hold(&self, lane: usize) -> Option<Foreground<'_>> {
        self.lanes.get(lane).map(|l| l.uring.foreground())
    }
    fn requests(&self) -> (u64, u64) {
        self.lanes.iter().map(|l| l.uring.stats()).fold((0, 0), |a, s| (a.0 + s.submitted, a.1 + s.injected))
    }
}

/// The baseline: one synchronous `pread`/`pwrite` (`O_DIRECT`) per page at the slot's
/// position, no engine, no batching, no io_uring.
pub(crate) struct PreadIo {
    map: SwapMap<Vec<MapEntry>>,
    target: Target,
    arena: Arc<Arena>,
    calls: std::sync::atomic::AtomicU64,
}

impl PreadIo {
    pub(crate) fn new(map: SwapMap<Vec<MapEntry>>, target: Target, arena: Arc<Arena>) -> PreadIo {
        PreadIo { map, target, arena, calls: std::sync::atomic::AtomicU64::new(0) }
    }

    fn one(&self, x: Xfer, write: bool) -> Result<(), Errno> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let pos = self.map.lookup(x.slot).map_err(|_| Errno::EINVAL)?.pos;
        let buf = self.arena.segment_ptr(FolioId(x.staging as u64), 0, PAGE_SIZE as u32).ok_or(Errno::EINVAL)?;
        let fd = self.target.handle().as_raw_fd();
        let mut done = 0usize;
        while done < PAGE_SIZE {
            // SAFETY: `buf..buf + PAGE_SIZE` is the staging page, inside the arena, owned by
            // the caller for the duration of the call.
            let r = unsafe {
                let p = buf.add(done);
                let off = (pos + done as u64) as libc::off_t;
                if write {
                    libc::pwrite(fd, p.cast(), PAGE_SIZE - done, off)
                } else {
                    libc::pread(fd, p.cast(), PAGE_SIZE - done, off)
                }
            };
            if r < 0 {
                let e = io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
                if e == libc::EINTR {
                    continue;
                }
                return Err(Errno(e));
            }
            if r == 0 {
                return Err(Errno::EIO);
            }
            done += r as usize;
        }
        Ok(())
    }
}

impl PageIo for PreadIo {
    fn arena(&self) -> &Arena {
        &self.arena
    }
    fn read(&self, _lane: usize, items: &[Xfer], out: &mut [Result<(), Errno>]) {
        for (x, o) in items.iter().zip(out.iter_mut()) {
            *o = self.one(*x, false);
        }
    }
    fn write(&self, _lane: usize, items: &[Xfer], out: &mut [Result<(), Errno>]) {
        for (x, o) in items.iter().zip(out.iter_mut()) {
            *o = self.one(*x, true);
        }
    }
    fn requests(&self) -> (u64, u64) {
        (self.calls.load(Ordering::Relaxed), 0)
    }
    fn hold(&self, _lane: usize) -> Option<Foreground<'_>> {
        None
    }
}
