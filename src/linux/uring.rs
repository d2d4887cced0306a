//! The io_uring driver: the engine's `->swap_rw` on a real device or file.
//!
//! Mirrors the kernel's asynchronous swap I/O (`swap_rw` answering `-EIOCBQUEUED`,
//! `sio_read_complete` / `sio_write_complete` running later on another CPU): `submit`
//! turns a request into one SQE and answers [`Submit::Queued`]; a reaper thread takes
//! CQEs and calls the engine's completion entry point, concurrently with submission and
//! possibly before `submit` has returned.
//!
//! A thread that only waits for its own requests can open a [`Foreground`]: it then
//! submits and reaps on its own thread while the reaper stands aside (the kernel's
//! polled swap-in, `bio_poll` from the faulting task), so no completion is handed
//! between threads — one wake-up per batch instead of three on a loaded machine.
//! Other threads may share the ring meanwhile: while any request of a thread without a
//! [`Foreground`] is in flight the reaper keeps reaping, so such a request never waits
//! for a foreground holder that is busy elsewhere.
//!
//! * `user_data` is [`RequestId::to_u64`] (slot index + generation). The driver keeps
//!   which id each slot has in flight; a CQE naming anything else is stale and dropped
//!   (and the engine would refuse it too).
//! * In-flight requests never exceed what the completion queue holds (no CQ overflow).
//! * `EINTR`/`EAGAIN`/`EBUSY` from `io_uring_enter` are retried; a short transfer whose
//!   remainder is aligned is resubmitted for the remainder, otherwise the short count
//!   goes to the engine, which accounts it per segment.
//! * Fault injection ([`FaultPlan`]) rewrites results before the engine sees them.
//! * Dropping the driver cancels and reaps every in-flight request before the ring,
//!   the iovecs and the arena can go: the kernel never writes into freed memory.

use super::direct::{inject_fault, Arena, DriverCounters, DriverStats, IoVecs, Target};
use crate::backend::{Backend, Submit};
use crate::caps::BackendCaps;
use crate::engine::{CompleteError, Engine};
use crate::errno::Errno;
use crate::fault::{FaultConfig, FaultPlan};
use crate::iocb::{Request, RequestId, Storage, StorageConfig};
use crate::map::MapEntry;
use crate::page::{Direction, PageOps};
use io_uring::{opcode, squeue, types, IoUring};
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

/// Where completions go: the engine's completion entry point ([`Engine::complete`]).
/// The driver holds it weakly, so an engine that owns the driver is not kept alive by it.
pub trait CompletionSink: Send + Sync {
    /// Completes request `id` with `result` (bytes or errno).
    fn complete(&self, id: RequestId, result: Result<u64, Errno>) -> Result<(), CompleteError>;
}

impl<M, S, B, P> CompletionSink for Engine<M, S, B, P>
where
    M: AsRef<[MapEntry]> + Send + Sync,
    S: Storage + Send + Sync,
    B: Backend + Send + Sync,
    P: PageOps + Send + Sync,
{
    fn complete(&self, id: RequestId, result: Result<u64, Errno>) -> Result<(), CompleteError> {
        Engine::complete(self, id, result)
    }
}

/// How a driver is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverConfig {
    /// Request slots the engine has (pool + sync): the range of request indexes the
    /// driver tracks.
    pub requests: usize,
    /// Submission queue entries (the completion queue is twice as large).
    pub ring_entries: u32,
    /// Register the arena as fixed buffers (`IORING_OP_READ_FIXED` / `WRITE_FIXED`).
    pub register_buffers: bool,
    /// Register the target as a fixed file.
    pub register_files: bool,
    /// Faults to inject into completions.
    pub faults: FaultConfig,
    /// Which directions `faults` applies to (both by default).
    pub fault_reads: bool,
    /// See `fault_reads`.
    pub fault_writes: bool,
}

impl DriverConfig {
    /// A configuration for an engine whose storage has `storage`'s sizes.
    pub fn for_storage(storage: StorageConfig) -> Self {
        let requests = storage.pool + storage.sync;
        DriverConfig {
            requests,
            ring_entries: (requests as u32).next_power_of_two().clamp(64, 4096),
            register_buffers: true,
            register_files: true,
            faults: FaultConfig::NONE,
            fault_reads: true,
            fault_writes: true,
        }
    }
}

/// `user_data` bit 63 marks the driver's own operations (cancel, wake-up). Request ids
/// never set it: generations are 30 bits.
const INTERNAL: u64 = 1 << 63;
const CANCEL_TAG: u64 = INTERNAL | 1;
const WAKE_TAG: u64 = INTERNAL | 2;
/// A parked reaper re-checks whether the foreground waiter left at least this often.
const PARK_TICK: Duration = Duration::from_millis(50);
/// No request in flight in a slot.
const IDLE: u64 = u64::MAX;
/// Completion queue entries kept free for the driver's own operations.
const INTERNAL_RESERVE: usize = 8;
/// Transient CQE errors retried per request before the error goes to the engine.
const MAX_TRANSIENT_RETRIES: u32 = 8;

/// What a slot has in flight.
#[derive(Debug, Default)]
struct Op {
    dir: Option<Direction>,
    pos: u64,
    len: u64,
    done: u64,
    retries: u32,
    contiguous: bool,
    /// Submitted by a thread without a [`Foreground`]: counted in `Inner::unowned`.
    unowned: bool,
    /// The request's iovecs.
    full: IoVecs,
    /// The iovecs of the current (re)submission: `full` advanced by `done`.
    cur: IoVecs,
}

/// The driver's record of one engine request slot.
#[derive(Debug)]
struct Slot {
    /// `user_data` in flight in this slot, [`IDLE`] when none.
    user_data: AtomicU64,
    op: Mutex<Op>,
}

struct Inner {
    ring: IoUring,
    /// Serialises producers of the submission queue.
    sq: Mutex<()>,
    target: Target,
    caps: BackendCaps,
    arena: Arc<Arena>,
    slots: Box<[Slot]>,
    fixed_buffers: bool,
    fixed_file: bool,
    align: u64,
    in_flight: AtomicUsize,
    limit: usize,
    /// Driver operations (cancel, wake-up, probes) whose CQE has not been reaped.
    internal: AtomicUsize,
    room: Mutex<()>,
    room_cv: Condvar,
    waiters: AtomicUsize,
    closing: AtomicBool,
    /// The reaper is between two waits (or parked under a [`Foreground`]): it, or the
    /// foreground waiter, will submit whatever is queued before waiting again, so a
    /// producer need not enter the kernel itself.
    reaper_awake: AtomicBool,
    /// Serialises consumers of the completion queue (the reaper, [`Foreground`] waiters).
    cq: Mutex<()>,
    /// Open [`Foreground`]s: while any is open, and no request of a thread without one
    /// is in flight (`unowned`), the reaper parks on `park_cv`.
    foreground: AtomicUsize,
    /// The threads holding the open [`Foreground`]s (one entry per open waiter).
    owners: Mutex<Vec<ThreadId>>,
    /// Requests in flight submitted by threads holding no [`Foreground`]: only the
    /// reaper is sure to reap them, so it does not park while any is.
    unowned: AtomicUsize,
    park: Mutex<()>,
    park_cv: Condvar,
    sink: OnceLock<Weak<dyn CompletionSink>>,
    faults: FaultPlan,
    fault_reads: bool,
    fault_writes: bool,
    counters: Arc<DriverCounters>,
}

/// The io_uring driver. Build it, build the engine over an `Arc` of it, then
/// [`UringBackend::connect`] the engine so completions reach it.
pub struct UringBackend {
    inner: Arc<Inner>,
    reaper: Option<JoinHandle<()>>,
    reaper_id: ThreadId,
}

fn is_retryable_enter(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN | libc::EBUSY))
}

impl UringBackend {
    /// Sets up a ring for `target`, registers the arena and the target when asked
    /// (falling back silently to unregistered I/O if registration is refused), and
    /// starts the reaper. Fails with the kernel's error when io_uring is unavailable
    /// (`ENOSYS`, or `EPERM` with `kernel.io_uring_disabled`).
    pub fn new(target: Target, arena: Arc<Arena>, config: DriverConfig) -> io::Result<UringBackend> {
        let entries = config.ring_entries.max(8);
        let ring = IoUring::builder().setup_cqsize(entries.saturating_mul(2)).build(entries)?;
        let cq_entries = ring.params().cq_entries() as usize;
        let fixed_buffers = config.register_buffers && {
            let iov = arena.register_iovecs();
            // SAFETY: the iovecs describe the arena, which the driver keeps alive (Arc)
            // until the ring is closed, after every request has been reaped.
            iov.len() <= usize::from(u16::MAX) && unsafe { ring.submitter().register_buffers(&iov) }.is_ok()
        };
        let fixed_file =
            config.register_files && ring.submitter().register_files(&[target.handle().as_raw_fd()]).is_ok();
        let align = u64::from(super::direct::dio_alignment(target.handle()));
        let slots = (0..config.requests)
            .map(|_| Slot { user_data: AtomicU64::new(IDLE), op: Mutex::new(Op::default()) })
            .collect();
        let inner = Arc::new(Inner {
            ring,
            sq: Mutex::new(()),
            caps: target.caps(),
            target,
            arena,
            slots,
            fixed_buffers,
            fixed_file,
            align,
            in_flight: AtomicUsize::new(0),
            limit: cq_entries.saturating_sub(INTERNAL_RESERVE).max(1),
            internal: AtomicUsize::new(0),
            room: Mutex::new(()),
            room_cv: Condvar::new(),
            waiters: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            reaper_awake: AtomicBool::new(true),
            cq: Mutex::new(()),
            foreground: AtomicUsize::new(0),
            owners: Mutex::new(Vec::new()),
            unowned: AtomicUsize::new(0),
            park: Mutex::new(()),
            park_cv: Condvar::new(),
            sink: OnceLock::new(),
            faults: FaultPlan::new(config.faults),
            fault_reads: config.fault_reads,
            fault_writes: config.fault_writes,
            counters: Arc::new(DriverCounters::default()),
        });
        let r = Arc::clone(&inner);
        let reaper = std::thread::Builder::new().name("swapdio-reaper".into()).spawn(move || r.reap_loop())?;
        let reaper_id = reaper.thread().id();
        Ok(UringBackend { inner, reaper: Some(reaper), reaper_id })
    }

    /// Sends completions to `engine` from now on. Call once, before the first request.
    /// Returns `false` if a sink was already set.
    pub fn connect<E: CompletionSink + 'static>(&self, engine: &Arc<E>) -> bool {
        let weak: Weak<dyn CompletionSink> = Arc::downgrade(engine) as Weak<dyn CompletionSink>;
        self.inner.sink.set(weak).is_ok()
    }

    /// The driver's counters (the `Arc` outlives the driver).
    pub fn counters(&self) -> Arc<DriverCounters> {
        Arc::clone(&self.inner.counters)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> DriverStats {
        self.inner.counters.snapshot()
    }

    /// Requests submitted whose completion has not been reaped.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Acquire)
    }

    /// Most requests in flight at once (the completion queue's size less a reserve).
    pub fn max_in_flight(&self) -> usize {
        self.inner.limit
    }

    /// Whether the arena is registered as fixed buffers.
    pub fn fixed_buffers(&self) -> bool {
        self.inner.fixed_buffers
    }

    /// Whether the target is registered as a fixed file.
    pub fn fixed_file(&self) -> bool {
        self.inner.fixed_file
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.inner.target
    }

    /// Diagnostics: posts a no-op whose completion carries `user_data`, as a late or
    /// duplicated CQE of the device would. The reaper must recognise it as stale unless
    /// `user_data` is in flight (it is then completed with 0 bytes: only pass ids that
    /// are not in flight). Used by the tests that pin down stale-completion handling.
    pub fn post_nop(&self, user_data: u64) -> io::Result<()> {
        self.inner.internal.fetch_add(1, Ordering::AcqRel);
        let e = opcode::Nop::new().build().user_data(user_data & !INTERNAL);
        self.inner.push(&e).inspect_err(|_| {
            self.inner.internal.fetch_sub(1, Ordering::AcqRel);
        })
    }
}

/// A thread that waits for its own requests reaps them itself while this is open, and
/// the reaper stands aside: submission and completion then run on one thread with no
/// hand-off between threads, as a task that waits for its swap-in polls the device
/// (`swap_readpage`'s `REQ_POLLED` / `bio_poll` loop) instead of sleeping until an
/// interrupt's completion wakes it. While it is open every request is entered at once
/// by the thread that submits it (fio's `iodepth_batch_submit=1`); on drop the reaper
/// takes over again.
///
/// The holder's own requests complete in its [`Foreground::wait`] calls: it must wait
/// for them. Other threads may use the ring at the same time: a thread holding no
/// `Foreground` has its requests reaped by the reaper, which stays awake while any such
/// request is in flight (so it never waits on a holder busy elsewhere); several holders
/// each reap in their own waits, and any of them may complete another's request (the
/// engine's completion is the same on every thread).
pub struct Foreground<'a> {
    inner: &'a Inner,
    batch: Vec<(u64, i32)>,
}

impl Foreground<'_> {
    /// Submits what is queued and waits up to `timeout` for at least one completion,
    /// then completes every request whose CQE arrived (the engine's page actions run
    /// on this thread). Returns how many CQEs were handled; 0 at once when nothing is
    /// in flight.
    pub fn wait(&mut self, timeout: Duration) -> usize {
        let inner = self.inner;
        let handled = inner.drain(&mut self.batch);
        if handled > 0 {
            return handled;
        }
        let queued = {
            let _g = inner.sq.lock().unwrap_or_else(|e| e.into_inner());
            // SAFETY: `sq` is held, so this is the only user of the submission queue.
            !unsafe { inner.ring.submission_shared() }.is_empty()
        };
        if inner.in_flight.load(Ordering::Acquire) == 0 && !queued {
            return 0;
        }
        let ts = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&ts);
        let waited = if inner.ring.params().is_feature_ext_arg() {
            inner.ring.submitter().submit_with_args(1, &args)
        } else {
            inner.ring.submit_and_wait(1)
        };
        if let Err(e) = waited {
            if !(is_retryable_enter(&e) || e.raw_os_error() == Some(libc::ETIME)) {
                DriverCounters::bump(&inner.counters.submit_errors);
            }
        }
        inner.drain(&mut self.batch)
    }
}

impl Drop for Foreground<'_> {
    fn drop(&mut self) {
        let inner = self.inner;
        {
            let mut owners = inner.owners.lock().unwrap_or_else(|e| e.into_inner());
            let me = std::thread::current().id();
            if let Some(i) = owners.iter().position(|t| *t == me) {
                owners.swap_remove(i);
            }
        }
        if inner.foreground.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _g = inner.park.lock().unwrap_or_else(|e| e.into_inner());
            inner.park_cv.notify_all();
        }
        // Submit what other threads queued meanwhile: the reaper may not be waiting yet.
        if inner.enter().is_err() {
            DriverCounters::bump(&inner.counters.submit_errors);
        }
    }
}

impl UringBackend {
    /// Opens a [`Foreground`]: the calling thread reaps its completions itself.
    pub fn foreground(&self) -> Foreground<'_> {
        self.inner.owners.lock().unwrap_or_else(|e| e.into_inner()).push(std::thread::current().id());
        self.inner.foreground.fetch_add(1, Ordering::AcqRel);
        Foreground { inner: &self.inner, batch: Vec::with_capacity(self.inner.limit + INTERNAL_RESERVE) }
    }
}

impl Backend for UringBackend {
    fn caps(&self) -> BackendCaps {
        self.inner.caps
    }

    fn submit(&self, req: &Request<'_>) -> Submit {
        self.inner.submit(req)
    }
}

impl Inner {
    fn submit(&self, req: &Request<'_>) -> Submit {
        let c = &self.counters;
        DriverCounters::bump(&c.submitted);
        let id = req.id();
        let refuse = |e: Errno| {
            DriverCounters::bump(&c.refused);
            DriverCounters::bump(&c.completed);
            Submit::Done(Err(e))
        };
        if self.sink.get().is_none() || self.closing.load(Ordering::Acquire) {
            return refuse(Errno::EINVAL);
        }
        if let Err(e) = self.target.admit(req.mode(), req.pos(), req.len()) {
            return refuse(e);
        }
        let Some(slot) = self.slots.get(id.index()) else { return refuse(Errno::EINVAL) };
        let user_data = id.to_u64();
        // A request of a thread holding no Foreground is the reaper's to reap.
        let unowned = self.foreground.load(Ordering::Acquire) == 0 || {
            let me = std::thread::current().id();
            !self.owners.lock().unwrap_or_else(|e| e.into_inner()).contains(&me)
        };
        let entry = {
            let mut op = slot.op.lock().unwrap_or_else(|e| e.into_inner());
            let contiguous = match op.full.gather(req, &self.arena) {
                Ok(c) => c,
                Err(e) => return refuse(e),
            };
            op.dir = Some(req.direction());
            op.pos = req.pos();
            op.len = req.len();
            op.done = 0;
            op.retries = 0;
            op.contiguous = contiguous;
            op.unowned = unowned;
            op.cur = op.full;
            self.entry(&op, user_data)
        };
        self.acquire_room();
        if unowned {
            // Counted before the SQE can complete; a parked reaper is woken to reap it.
            self.unowned.fetch_add(1, Ordering::AcqRel);
            if self.foreground.load(Ordering::Acquire) > 0 {
                let _g = self.park.lock().unwrap_or_else(|e| e.into_inner());
                self.park_cv.notify_all();
            }
        }
        // The slot is free: the engine reuses an index only after its completion.
        slot.user_data.store(user_data, Ordering::Release);
        if let Err(e) = self.push(&entry) {
            // Nothing reached the ring: undo and fail the request synchronously.
            slot.user_data.store(IDLE, Ordering::Release);
            if unowned {
                self.unowned.fetch_sub(1, Ordering::AcqRel);
            }
            self.release_room();
            return refuse(Errno(e.raw_os_error().unwrap_or(libc::EIO)));
        }
        Submit::Queued
    }

    /// The SQE for `op`'s current remainder.
    fn entry(&self, op: &Op, user_data: u64) -> squeue::Entry {
        let pos = op.pos + op.done;
        let write = op.dir == Some(Direction::Write);
        let first = op.cur.iov[0];
        let remaining = op.cur.bytes();
        let fixed = if self.fixed_buffers && op.contiguous && remaining <= u64::from(u32::MAX) {
            let off = first.iov_base as usize - self.arena.base() as usize;
            self.arena.register_index(off, remaining as usize)
        } else {
            None
        };
        let iov = op.cur.iov.as_ptr();
        let nr = op.cur.nr as u32;
        let raw = types::Fd(self.target.handle().as_raw_fd());
        macro_rules! build {
            ($fd:expr) => {
                match (fixed, write) {
                    (Some(b), false) => {
                        opcode::ReadFixed::new($fd, first.iov_base.cast(), remaining as u32, b).offset(pos).build()
                    }
                    (Some(b), true) => {
                        opcode::WriteFixed::new($fd, first.iov_base.cast::<u8>().cast_const(), remaining as u32, b)
                            .offset(pos)
                            .build()
                    }
                    (None, false) => opcode::Readv::new($fd, iov, nr).offset(pos).build(),
                    (None, true) => opcode::Writev::new($fd, iov, nr).offset(pos).build(),
                }
            };
        }
        let e = if self.fixed_file { build!(types::Fixed(0)) } else { build!(raw) };
        e.user_data(user_data)
    }

    /// Waits until one more request fits in the completion queue, then counts it.
    fn acquire_room(&self) {
        loop {
            let n = self.in_flight.load(Ordering::Acquire);
            if n < self.limit {
                if self.in_flight.compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                    return;
                }
                continue;
            }
            DriverCounters::bump(&self.counters.capacity_waits);
            let g = self.room.lock().unwrap_or_else(|e| e.into_inner());
            self.waiters.fetch_add(1, Ordering::AcqRel);
            if self.in_flight.load(Ordering::Acquire) >= self.limit {
                let _ = self.room_cv.wait_timeout(g, Duration::from_millis(1));
            }
            self.waiters.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn release_room(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        if self.waiters.load(Ordering::Acquire) > 0 {
            let _g = self.room.lock().unwrap_or_else(|e| e.into_inner());
            self.room_cv.notify_all();
        }
    }

    /// Pushes one SQE (flushing the queue if it is full) and submits it. `Err` means the
    /// entry never reached the ring.
    fn push(&self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            let pushed = {
                let _g = self.sq.lock().unwrap_or_else(|e| e.into_inner());
                // SAFETY: `self.sq` is held, so this is the only submission queue
                // producer; the reaper only consumes the completion queue.
                let mut sq = unsafe { self.ring.submission_shared() };
                // SAFETY: every pointer in the entry (arena memory, the slot's iovecs)
                // stays valid until its CQE is reaped: the slot is not reused before, and
                // the arena and slots are dropped only after the ring is drained.
                let ok = unsafe { sq.push(entry) }.is_ok();
                sq.sync();
                ok
            };
            if pushed {
                // Pairs with the fence in `reap_loop`: either the reaper, about to wait,
                // sees this SQE and submits it with its wait, or we see it asleep and
                // submit ourselves. Letting the reaper submit keeps completions' task
                // work on the reaper (no cross-thread wake-ups) under load.
                // Under a [`Foreground`] the request is entered at once, as fio does with
                // its default `iodepth_batch_submit=1`: the device starts on it now rather
                // than with the waiter's next batch (measured: +40 % IOPS at QD32 on
                // virtio-blk), and its completion work lands on that waiter's thread.
                fence(Ordering::SeqCst);
                let foreground = self.foreground.load(Ordering::Relaxed) > 0;
                if self.reaper_awake.load(Ordering::Relaxed) && !foreground {
                    return Ok(());
                }
                // Once queued the request will run: a failed enter leaves it for the
                // next one (the reaper's wait submits too), so it is never failed here.
                if self.enter().is_err() {
                    DriverCounters::bump(&self.counters.submit_errors);
                }
                return Ok(());
            }
            // Full: submit what is queued to make room, then retry. Nothing of this
            // entry reached the ring if this fails.
            self.enter()?;
            std::thread::yield_now();
        }
    }

    /// `io_uring_enter` for submission, retrying `EINTR`, `EAGAIN` and `EBUSY` (the
    /// completion queue is being drained by the reaper; the SQEs stay queued).
    fn enter(&self) -> io::Result<()> {
        loop {
            match self.ring.submit() {
                Ok(_) => return Ok(()),
                Err(e) if is_retryable_enter(&e) => {
                    DriverCounters::bump(&self.counters.submit_retries);
                    std::thread::yield_now();
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn reap_loop(self: Arc<Self>) {
        let mut batch: Vec<(u64, i32)> = Vec::with_capacity(self.ring.params().cq_entries() as usize);
        loop {
            let closing = self.closing.load(Ordering::Acquire);
            if closing && self.in_flight.load(Ordering::Acquire) == 0 && self.internal.load(Ordering::Acquire) == 0 {
                return;
            }
            let stand_aside =
                || self.foreground.load(Ordering::Acquire) > 0 && self.unowned.load(Ordering::Acquire) == 0;
            if stand_aside() && !closing {
                // A foreground waiter reaps (and submits) on its own thread: stand aside,
                // still counted awake so producers leave submission to that waiter. A
                // request of a thread without a Foreground wakes the reaper (`submit`).
                let g = self.park.lock().unwrap_or_else(|e| e.into_inner());
                if stand_aside() {
                    let _ = self.park_cv.wait_timeout(g, PARK_TICK);
                }
                continue;
            }
            // Announce the wait, then submit what producers queued meanwhile along with it.
            self.reaper_awake.store(false, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            let waited = self.ring.submit_and_wait(1);
            self.reaper_awake.store(true, Ordering::Relaxed);
            match waited {
                Ok(_) => {}
                Err(e) if is_retryable_enter(&e) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
            self.drain(&mut batch);
        }
    }

    /// Takes every CQE from the completion queue and handles it; returns how many.
    fn drain(&self, batch: &mut Vec<(u64, i32)>) -> usize {
        let _g = self.cq.lock().unwrap_or_else(|e| e.into_inner());
        {
            // SAFETY: `cq` is held, so this is the only consumer of the completion queue.
            let cq = unsafe { self.ring.completion_shared() };
            batch.extend(cq.map(|c| (c.user_data(), c.result())));
        }
        let n = batch.len();
        for (user_data, res) in batch.drain(..) {
            self.handle(user_data, res);
        }
        n
    }

    /// One CQE.
    fn handle(&self, user_data: u64, res: i32) {
        if user_data & INTERNAL != 0 {
            self.internal.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let found = RequestId::from_u64(user_data).ok().and_then(|id| {
            let slot = self.slots.get(id.index()).filter(|s| s.user_data.load(Ordering::Acquire) == user_data);
            slot.map(|slot| (id, slot))
        });
        let Some((id, slot)) = found else {
            DriverCounters::bump(&self.counters.stale);
            // A probe's CQE (`post_nop`) is counted with the driver's own operations.
            let _ = self.internal.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
            return;
        };
        let (len, dir, result) = {
            let mut op = slot.op.lock().unwrap_or_else(|e| e.into_inner());
            let closing = self.closing.load(Ordering::Acquire);
            let result = if res < 0 {
                let e = -res;
                if matches!(e, libc::EAGAIN | libc::EINTR) && op.retries < MAX_TRANSIENT_RETRIES && !closing {
                    op.retries += 1;
                    DriverCounters::bump(&self.counters.retried);
                    if self.resubmit(&op, user_data) {
                        return;
                    }
                }
                if e == libc::ECANCELED {
                    DriverCounters::bump(&self.counters.cancelled);
                }
                Err(Errno(e))
            } else {
                let n = res as u64;
                op.done = op.done.saturating_add(n).min(op.len);
                if op.done < op.len && n > 0 && op.done % self.align == 0 && !closing {
                    let (full, done) = (op.full, op.done);
                    full.advance(done, &mut op.cur);
                    DriverCounters::bump(&self.counters.resubmitted);
                    if self.resubmit(&op, user_data) {
                        return;
                    }
                }
                Ok(op.done)
            };
            if op.unowned {
                self.unowned.fetch_sub(1, Ordering::AcqRel);
            }
            (op.len, op.dir, result)
        };
        let inject = match dir {
            Some(Direction::Read) => self.fault_reads,
            Some(Direction::Write) => self.fault_writes,
            None => false,
        };
        let result = if inject { inject_fault(&self.faults, &self.counters, len, result) } else { result };
        // Free the slot before the engine can hand the index out again.
        slot.user_data.store(IDLE, Ordering::Release);
        self.release_room();
        DriverCounters::bump(&self.counters.completed);
        match self.sink.get().and_then(Weak::upgrade) {
            Some(sink) => {
                let _ = sink.complete(id, result);
            }
            None => DriverCounters::bump(&self.counters.undelivered),
        }
    }

    /// Resubmits `op`'s remainder from the reaper; `false` if it could not be queued.
    fn resubmit(&self, op: &Op, user_data: u64) -> bool {
        let e = self.entry(op, user_data);
        let pushed = {
            let _g = self.sq.lock().unwrap_or_else(|e| e.into_inner());
            // SAFETY: as in `push`: the lock makes this the only producer, and the
            // entry's memory lives until the request's final CQE.
            let mut sq = unsafe { self.ring.submission_shared() };
            // SAFETY: see above.
            let ok = unsafe { sq.push(&e) }.is_ok();
            sq.sync();
            ok
        };
        // Submitted by this enter or by the reaper's next wait (which submits too):
        // once pushed, the request is in flight whatever the enter says.
        if pushed && self.ring.submit().is_err() {
            DriverCounters::bump(&self.counters.submit_errors);
        }
        pushed
    }
}

impl Drop for UringBackend {
    /// Cancels everything in flight and reaps every CQE before the ring, the slots'
    /// iovecs and the arena can be freed.
    fn drop(&mut self) {
        let inner = &self.inner;
        inner.internal.fetch_add(2, Ordering::AcqRel);
        inner.closing.store(true, Ordering::Release);
        let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::any()).build().user_data(CANCEL_TAG);
        let wake = opcode::Nop::new().build().user_data(WAKE_TAG);
        let queued = inner.push(&cancel).is_ok() && inner.push(&wake).is_ok();
        if !queued {
            // The ring refused: leak the reaper (and with it the memory the kernel may
            // still use) rather than free anything under in-flight I/O.
            eprintln!("swapdio: io_uring refused the cancel at drop; leaking the ring");
            if let Some(h) = self.reaper.take() {
                std::mem::forget(h);
            }
            return;
        }
        // Dropped from the reaper itself (the engine's last reference went there): the
        // reaper finishes draining and frees the ring when it exits.
        if std::thread::current().id() == self.reaper_id {
            return;
        }
        if let Some(h) = self.reaper.take() {
            let _ = h.join();
        }
    }
}
