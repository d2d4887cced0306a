//! The NBD driver: the engine's `->swap_rw` on an NBD export.
//!
//! Mirrors the kernel's NBD client (`drivers/block/nbd.c`) under block swap: a request
//! goes out on one of the export's connections with the engine's request id as its
//! cookie (the kernel's `nbd_cmd_handle`: tag + generation), [`Backend::submit`]
//! answers [`Submit::Queued`], and a receiver thread per connection (the kernel's
//! `recv_work`) reads replies and calls the engine's completion entry point.
//!
//! * **Connections.** One, or [`NbdConfig::connections`] when the server sets
//!   `NBD_FLAG_CAN_MULTI_CONN`; a request's connection is picked from its slot index.
//! * **Durability.** Synchronous writes (`SYNC`, the kernel's `WB_SYNC_ALL`) carry
//!   `NBD_CMD_FLAG_FUA` when the server offers it ([`FuaPolicy`]); dropping the driver
//!   sends `NBD_CMD_FLUSH` on every connection before `NBD_CMD_DISC`.
//! * **Connection loss.** Every request in flight on the connection fails with
//!   `ECONNRESET` (`EPROTO` when the server broke the protocol: unknown cookie, chunk
//!   outside its request, bad magic); the engine redirties failed writes and fails
//!   reads. The receiver reconnects with backoff; a submit while no connection is up
//!   waits up to [`NbdConfig::reconnect_wait`], then fails with `ENOTCONN`.
//! * Only a connection's receiver completes the requests sent on it (also when they
//!   fail), so a request's memory is never written after its completion.

use super::conn::{connect, Export, HandshakeOptions, NbdError, QuickAck, Stream};
use super::proto;
use super::replies::{read_reply, Coverage, Pending, ReplyError, ReplyTarget};
use super::uri::NbdUri;
use crate::backend::{Backend, Submit};
use crate::caps::{BackendCaps, IoMode};
use crate::errno::Errno;
use crate::fault::{FaultConfig, FaultPlan};
use crate::iocb::{ReqFlags, Request, RequestId, StorageConfig, MAX_SEGMENTS};
use crate::linux::direct::{inject_fault, Arena, DriverCounters, DriverStats, IoVecs};
use crate::linux::uring::CompletionSink;
use crate::page::Direction;
use std::io::{self, BufReader, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

/// When writes carry `NBD_CMD_FLAG_FUA`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FuaPolicy {
    /// Never (the server's write cache may hold acknowledged writes until a flush).
    Never,
    /// Synchronous writes only (`ReqFlags::SYNC`): the default.
    Sync,
    /// Every write: acknowledged pages survive a server crash, at a cost per write.
    Always,
}

/// How the NBD driver is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NbdConfig {
    /// Request slots the engine has (pool + sync): the cookies the driver tracks.
    pub requests: usize,
    /// Connections to open when the server allows several (`NBD_FLAG_CAN_MULTI_CONN`).
    pub connections: usize,
    /// Ask for structured replies.
    pub structured_replies: bool,
    /// When writes carry FUA.
    pub fua: FuaPolicy,
    /// How long a submit waits for a lost connection to come back before failing with
    /// `ENOTCONN`.
    pub reconnect_wait: Duration,
    /// Faults to inject into completions.
    pub faults: FaultConfig,
}

impl NbdConfig {
    /// A configuration for an engine whose storage has `storage`'s sizes.
    pub fn for_storage(storage: StorageConfig) -> Self {
        NbdConfig {
            requests: storage.pool + storage.sync,
            connections: 4,
            structured_replies: true,
            fua: FuaPolicy::Sync,
            reconnect_wait: Duration::from_secs(5),
            faults: FaultConfig::NONE,
        }
    }
}

/// NBD-specific counters.
#[derive(Debug, Default)]
pub struct NbdCounters {
    /// Connections lost (socket error, EOF, protocol error).
    pub connection_losses: AtomicU64,
    /// Connections re-established after a loss.
    pub reconnects: AtomicU64,
    /// Losses caused by a protocol error (unknown cookie, bad chunk, bad magic).
    pub protocol_errors: AtomicU64,
    /// Requests failed because their connection was lost.
    pub failed_in_flight: AtomicU64,
    /// Requests the server answered with an error.
    pub error_replies: AtomicU64,
    /// Submits that found no connection up within `reconnect_wait` (`ENOTCONN`).
    pub not_connected: AtomicU64,
    /// Writes sent with FUA.
    pub fua_writes: AtomicU64,
    /// Flushes that completed.
    pub flushes: AtomicU64,
    /// Reconnects refused because the export was no longer the one activated (size,
    /// read-only flag or minimum block size changed).
    pub export_changes: AtomicU64,
}

/// A snapshot of [`NbdCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[allow(missing_docs)]
pub struct NbdStats {
    pub connections: usize,
    pub connection_losses: u64,
    pub reconnects: u64,
    pub protocol_errors: u64,
    pub failed_in_flight: u64,
    pub error_replies: u64,
    pub not_connected: u64,
    pub fua_writes: u64,
    pub flushes: u64,
    pub export_changes: u64,
}

/// No request in flight in a slot.
const IDLE: u64 = u64::MAX;
/// Cookies of the driver's own requests (flush) set bit 63; request ids never do.
const INTERNAL: u64 = 1 << 63;
/// Socket send timeout: a server that stops reading is a lost connection.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a flush waits for its reply.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// Reply reader buffer: many small replies per `recv`.
const READ_BUFFER: usize = 256 << 10;

#[derive(Debug, Default)]
struct Op {
    kind: u16,
    offset: u64,
    len: u64,
    conn: usize,
    epoch: u64,
    covered: Coverage,
    error: Option<Errno>,
    iov: IoVecs,
}

#[derive(Debug)]
struct Slot {
    cookie: AtomicU64,
    op: Mutex<Op>,
}

#[derive(Debug, Default)]
struct ConnState {
    stream: Option<Arc<Stream>>,
    epoch: u64,
}

#[derive(Debug, Default)]
struct FlushState {
    /// Cookie of the flush in flight on this connection (0: none).
    cookie: u64,
    result: Option<Result<(), Errno>>,
}

#[derive(Debug, Default)]
struct Conn {
    state: Mutex<ConnState>,
    up: Condvar,
    flush: Mutex<FlushState>,
    flushed: Condvar,
}

struct Shared {
    uri: NbdUri,
    export: Export,
    config: NbdConfig,
    arena: Arc<Arena>,
    slots: Box<[Slot]>,
    conns: Box<[Conn]>,
    closing: AtomicBool,
    in_flight: AtomicUsize,
    flush_seq: AtomicU64,
    sink: OnceLock<Weak<dyn CompletionSink>>,
    faults: FaultPlan,
    counters: Arc<DriverCounters>,
    nbd: NbdCounters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The NBD driver. Build it, build the engine over an `Arc` of it, then
/// [`NbdBackend::connect_sink`] the engine so completions reach it.
pub struct NbdBackend {
    shared: Arc<Shared>,
    readers: Vec<JoinHandle<()>>,
    reader_ids: Vec<ThreadId>,
}

impl NbdBackend {
    /// Connects to `uri` (several connections if the server allows it and `config`
    /// asks), checks the export can hold swap, and starts a receiver per connection.
    pub fn new(uri: &NbdUri, arena: Arc<Arena>, config: NbdConfig) -> Result<NbdBackend, NbdError> {
        let opts = HandshakeOptions { structured_replies: config.structured_replies };
        let (first, export) = connect(uri, opts)?;
        export.check_swappable()?;
        let n = if export.can_multi_conn() { config.connections.clamp(1, 64) } else { 1 };
        let mut streams = vec![first];
        for _ in 1..n {
            let (s, e) = connect(uri, opts)?;
            if e.size != export.size {
                return Err(NbdError::Unusable("export size differs between connections"));
            }
            streams.push(s);
        }
        let conns: Box<[Conn]> = streams
            .into_iter()
            .map(|s| {
                let _ = s.set_write_timeout(Some(SEND_TIMEOUT));
                Conn { state: Mutex::new(ConnState { stream: Some(Arc::new(s)), epoch: 0 }), ..Conn::default() }
            })
            .collect();
        let slots = (0..config.requests).map(|_| Slot { cookie: AtomicU64::new(IDLE), op: Mutex::new(Op::default()) });
        let shared = Arc::new(Shared {
            uri: uri.clone(),
            export,
            config,
            arena,
            slots: slots.collect(),
            conns,
            closing: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            flush_seq: AtomicU64::new(1),
            sink: OnceLock::new(),
            faults: FaultPlan::new(config.faults),
            counters: Arc::new(DriverCounters::default()),
            nbd: NbdCounters::default(),
        });
        let mut readers = Vec::with_capacity(n);
        for i in 0..n {
            let s = Arc::clone(&shared);
            let h = std::thread::Builder::new().name(format!("swapdio-nbd{i}")).spawn(move || s.receive_loop(i));
            match h {
                Ok(h) => readers.push(h),
                Err(e) => {
                    shared.close_all();
                    for h in readers {
                        let _ = h.join();
                    }
                    return Err(e.into());
                }
            }
        }
        let reader_ids = readers.iter().map(|h| h.thread().id()).collect();
        Ok(NbdBackend { shared, readers, reader_ids })
    }

    /// Sends completions to `engine` from now on. Call once, before the first request.
    /// Returns `false` if a sink was already set.
    pub fn connect_sink<E: CompletionSink + 'static>(&self, engine: &Arc<E>) -> bool {
        let weak: Weak<dyn CompletionSink> = Arc::downgrade(engine) as Weak<dyn CompletionSink>;
        self.shared.sink.set(weak).is_ok()
    }

    /// The export as the handshake described it.
    pub fn export(&self) -> &Export {
        &self.shared.export
    }

    /// The URI connected to.
    pub fn uri(&self) -> &NbdUri {
        &self.shared.uri
    }

    /// Connections in use.
    pub fn connections(&self) -> usize {
        self.shared.conns.len()
    }

    /// Requests sent whose reply has not arrived.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Acquire)
    }

    /// The driver's generic counters (the `Arc` outlives the driver).
    pub fn counters(&self) -> Arc<DriverCounters> {
        Arc::clone(&self.shared.counters)
    }

    /// A snapshot of the generic counters.
    pub fn stats(&self) -> DriverStats {
        self.shared.counters.snapshot()
    }

    /// A snapshot of the NBD counters.
    pub fn nbd_stats(&self) -> NbdStats {
        let c = &self.shared.nbd;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        NbdStats {
            connections: self.connections(),
            connection_losses: l(&c.connection_losses),
            reconnects: l(&c.reconnects),
            protocol_errors: l(&c.protocol_errors),
            failed_in_flight: l(&c.failed_in_flight),
            error_replies: l(&c.error_replies),
            not_connected: l(&c.not_connected),
            fua_writes: l(&c.fua_writes),
            flushes: l(&c.flushes),
            export_changes: l(&c.export_changes),
        }
    }

    /// `NBD_CMD_FLUSH` on every connection that is up, waiting for each reply: writes
    /// acknowledged before the call are on the server's stable storage after it. `Ok`
    /// at once if the server does not support flush (it then has no volatile cache).
    pub fn flush(&self) -> Result<(), Errno> {
        if !self.shared.export.can_flush() {
            return Ok(());
        }
        (0..self.shared.conns.len()).try_for_each(|i| self.shared.flush_conn(i))
    }

    /// Diagnostics: shuts connection `i` down as a network failure would (the receiver
    /// fails what was in flight on it and reconnects). Used by the fault tests.
    pub fn break_connection(&self, i: usize) {
        if let Some(c) = self.shared.conns.get(i) {
            if let Some(s) = &lock(&c.state).stream {
                s.shutdown();
            }
        }
    }
}

impl Backend for NbdBackend {
    fn caps(&self) -> BackendCaps {
        BackendCaps::BLOCK_DEVICE
    }

    fn submit(&self, req: &Request<'_>) -> Submit {
        self.shared.submit(req)
    }
}

impl Shared {
    fn refuse(&self, e: Errno) -> Submit {
        DriverCounters::bump(&self.counters.refused);
        DriverCounters::bump(&self.counters.completed);
        Submit::Done(Err(e))
    }

    fn submit(&self, req: &Request<'_>) -> Submit {
        DriverCounters::bump(&self.counters.submitted);
        let id = req.id();
        let cookie = id.to_u64();
        let Some(slot) = self.slots.get(id.index()) else { return self.refuse(Errno::EINVAL) };
        let (pos, len) = (req.pos(), req.len());
        let inside = pos.checked_add(len).is_some_and(|end| end <= self.export.size);
        if req.mode() != IoMode::Device || !inside || !self.aligned(pos, len) {
            return self.refuse(Errno::EINVAL);
        }
        let mut iov = IoVecs::default();
        if let Err(e) = iov.gather(req, &self.arena) {
            return self.refuse(e);
        }
        // Over the server's maximum payload: send what fits, the engine accounts the
        // rest as a short transfer (only folios not fully moved fail).
        let sent = len.min(self.export.max_payload());
        if sent < len {
            let mut clipped = IoVecs::default();
            clip(&iov, sent, &mut clipped);
            iov = clipped;
        }
        let (kind, mut flags) = match req.direction() {
            Direction::Read => (proto::CMD_READ, 0),
            Direction::Write => (proto::CMD_WRITE, 0),
        };
        let fua = match self.config.fua {
            FuaPolicy::Never => false,
            FuaPolicy::Sync => req.flags().contains(ReqFlags::SYNC),
            FuaPolicy::Always => true,
        };
        if kind == proto::CMD_WRITE && fua && self.export.can_fua() {
            flags |= proto::CMD_FLAG_FUA;
            DriverCounters::bump(&self.nbd.fua_writes);
        }
        let preferred = id.index() % self.conns.len();
        let Some((ci, state)) = self.live_conn(preferred) else {
            DriverCounters::bump(&self.nbd.not_connected);
            return self.refuse(Errno(libc::ENOTCONN));
        };
        let Some(stream) = state.stream.clone() else { return self.refuse(Errno(libc::ENOTCONN)) };
        {
            let mut op = lock(&slot.op);
            *op = Op {
                kind,
                offset: pos,
                len: sent,
                conn: ci,
                epoch: state.epoch,
                covered: Coverage::default(),
                error: None,
                iov,
            };
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        slot.cookie.store(cookie, Ordering::Release);
        let mut h = [0u8; proto::REQUEST_LEN];
        proto::encode_request(flags, kind, cookie, pos, sent as u32, &mut h);
        let mut vecs = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; MAX_SEGMENTS + 1];
        vecs[0] = libc::iovec { iov_base: h.as_mut_ptr().cast(), iov_len: h.len() };
        let mut n = 1;
        if kind == proto::CMD_WRITE {
            for (d, s) in vecs[1..].iter_mut().zip(iov.as_slice()) {
                *d = *s;
                n += 1;
            }
        }
        if stream.send_all(&mut vecs[..n]).is_err() {
            // The receiver sees the shut-down socket and fails this request with the
            // rest of the connection's: only it completes requests sent on it.
            stream.shutdown();
        }
        drop(state);
        Submit::Queued
    }

    fn aligned(&self, pos: u64, len: u64) -> bool {
        let min = u64::from(self.export.block_size.0.max(1));
        pos % min == 0 && len % min == 0
    }

    /// A connection that is up, preferring `preferred`; waits up to `reconnect_wait`
    /// for one to come back. Returns it locked.
    fn live_conn(&self, preferred: usize) -> Option<(usize, MutexGuard<'_, ConnState>)> {
        let n = self.conns.len();
        for k in 0..n {
            let i = (preferred + k) % n;
            let g = lock(&self.conns[i].state);
            if g.stream.is_some() {
                return Some((i, g));
            }
        }
        let deadline = Instant::now() + self.config.reconnect_wait;
        let c = &self.conns[preferred];
        let mut g = lock(&c.state);
        while g.stream.is_none() && !self.closing.load(Ordering::Acquire) {
            let left = deadline.checked_duration_since(Instant::now())?;
            g = c.up.wait_timeout(g, left.min(Duration::from_millis(100))).unwrap_or_else(|e| e.into_inner()).0;
        }
        g.stream.is_some().then_some((preferred, g))
    }

    fn deliver(&self, slot: &Slot, cookie: u64, len: u64, result: Result<u64, Errno>) {
        if slot.cookie.compare_exchange(cookie, IDLE, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return;
        }
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        let result = inject_fault(&self.faults, &self.counters, len, result);
        DriverCounters::bump(&self.counters.completed);
        match self.sink.get().and_then(Weak::upgrade) {
            // The cookie matched the slot's, which holds an engine id: always well formed.
            Some(sink) => {
                if let Ok(id) = RequestId::from_u64(cookie) {
                    let _ = sink.complete(id, result);
                }
            }
            None => DriverCounters::bump(&self.counters.undelivered),
        }
    }

    /// Fails every request sent on connection `ci` in `epoch` with `errno`.
    fn fail_in_flight(&self, ci: usize, epoch: u64, errno: Errno) {
        for slot in self.slots.iter() {
            let cookie = slot.cookie.load(Ordering::Acquire);
            if cookie == IDLE {
                continue;
            }
            let (mine, len) = {
                let op = lock(&slot.op);
                (op.conn == ci && op.epoch == epoch, op.len)
            };
            if mine {
                DriverCounters::bump(&self.nbd.failed_in_flight);
                self.deliver(slot, cookie, len, Err(errno));
            }
        }
        let c = &self.conns[ci];
        let mut f = lock(&c.flush);
        if f.cookie != 0 {
            f.cookie = 0;
            f.result = Some(Err(errno));
            c.flushed.notify_all();
        }
    }

    fn receive_loop(self: Arc<Self>, ci: usize) {
        let mut backoff = Duration::from_millis(10);
        loop {
            let (stream, epoch) = {
                let g = lock(&self.conns[ci].state);
                (g.stream.clone(), g.epoch)
            };
            if let Some(stream) = stream {
                let reason = match stream.try_clone() {
                    Ok(rd) => {
                        let mut src = BufReader::with_capacity(READ_BUFFER, QuickAck(rd));
                        let mut target = Target { shared: &self, ci, epoch };
                        loop {
                            if let Err(e) = read_reply(&mut src, &mut target) {
                                break e;
                            }
                        }
                    }
                    Err(e) => ReplyError::Io(e),
                };
                let closing = self.closing.load(Ordering::Acquire);
                {
                    let mut g = lock(&self.conns[ci].state);
                    if let Some(s) = g.stream.take() {
                        s.shutdown();
                    }
                    g.epoch += 1;
                }
                let errno = if closing {
                    Errno(libc::ESHUTDOWN)
                } else {
                    DriverCounters::bump(&self.nbd.connection_losses);
                    if !matches!(reason, ReplyError::Io(_)) {
                        DriverCounters::bump(&self.nbd.protocol_errors);
                    }
                    reason.errno()
                };
                self.fail_in_flight(ci, epoch, errno);
                backoff = Duration::from_millis(10);
            }
            if self.closing.load(Ordering::Acquire) {
                return;
            }
            match self.reconnect() {
                Ok(s) => {
                    let mut g = lock(&self.conns[ci].state);
                    if self.closing.load(Ordering::Acquire) {
                        s.shutdown();
                        return;
                    }
                    g.stream = Some(Arc::new(s));
                    DriverCounters::bump(&self.nbd.reconnects);
                    self.conns[ci].up.notify_all();
                }
                Err(_) => {
                    let until = Instant::now() + backoff;
                    while Instant::now() < until && !self.closing.load(Ordering::Acquire) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    fn reconnect(&self) -> Result<Stream, NbdError> {
        let opts = HandshakeOptions { structured_replies: self.config.structured_replies };
        let (s, e) = connect(&self.uri, opts)?;
        // The export must be the same one: same size, still writable, same block rules.
        if e.size != self.export.size || e.read_only() || e.block_size.0 != self.export.block_size.0 {
            DriverCounters::bump(&self.nbd.export_changes);
            s.shutdown();
            return Err(NbdError::Unusable("the export changed across the reconnect"));
        }
        let _ = s.set_write_timeout(Some(SEND_TIMEOUT));
        Ok(s)
    }

    fn flush_conn(&self, ci: usize) -> Result<(), Errno> {
        let c = &self.conns[ci];
        let cookie = INTERNAL | self.flush_seq.fetch_add(1, Ordering::Relaxed);
        let state = lock(&c.state);
        let Some(stream) = state.stream.clone() else { return Err(Errno(libc::ENOTCONN)) };
        *lock(&c.flush) = FlushState { cookie, result: None };
        let mut h = [0u8; proto::REQUEST_LEN];
        proto::encode_request(0, proto::CMD_FLUSH, cookie, 0, 0, &mut h);
        let mut v = [libc::iovec { iov_base: h.as_mut_ptr().cast(), iov_len: h.len() }];
        if stream.send_all(&mut v).is_err() {
            stream.shutdown();
        }
        drop(state);
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        let mut f = lock(&c.flush);
        loop {
            if let Some(r) = f.result.take() {
                f.cookie = 0;
                if r.is_ok() {
                    DriverCounters::bump(&self.nbd.flushes);
                }
                return r;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                f.cookie = 0;
                return Err(Errno(libc::ETIMEDOUT));
            };
            f = c.flushed.wait_timeout(f, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    fn close_all(&self) {
        self.closing.store(true, Ordering::Release);
        for c in self.conns.iter() {
            let g = lock(&c.state);
            if let Some(s) = &g.stream {
                let mut h = [0u8; proto::REQUEST_LEN];
                proto::encode_request(0, proto::CMD_DISC, 0, 0, 0, &mut h);
                let mut v = [libc::iovec { iov_base: h.as_mut_ptr().cast(), iov_len: h.len() }];
                let _ = s.send_all(&mut v);
                s.shutdown();
            }
            c.up.notify_all();
        }
    }
}

/// `iov` cut to its first `keep` bytes.
fn clip(iov: &IoVecs, keep: u64, out: &mut IoVecs) {
    out.nr = 0;
    let mut left = keep as usize;
    for v in iov.as_slice() {
        if left == 0 {
            break;
        }
        if let Some(o) = out.iov.get_mut(out.nr) {
            *o = libc::iovec { iov_base: v.iov_base, iov_len: v.iov_len.min(left) };
            left -= o.iov_len;
            out.nr += 1;
        }
    }
}

/// The receiver's view of the requests in flight on one connection in one epoch.
struct Target<'a> {
    shared: &'a Shared,
    ci: usize,
    epoch: u64,
}

impl Target<'_> {
    fn slot(&self, cookie: u64) -> Option<&Slot> {
        let slot = self.shared.slots.get(RequestId::from_u64(cookie).ok()?.index())?;
        (slot.cookie.load(Ordering::Acquire) == cookie).then_some(slot)
    }
}

impl ReplyTarget for Target<'_> {
    fn pending(&mut self, cookie: u64) -> Option<Pending> {
        if cookie & INTERNAL != 0 {
            let f = lock(&self.shared.conns[self.ci].flush);
            return (f.cookie == cookie).then_some(Pending {
                kind: proto::CMD_FLUSH,
                offset: 0,
                len: 0,
                covered: Coverage::default(),
                error: None,
            });
        }
        let slot = self.slot(cookie)?;
        let op = lock(&slot.op);
        (op.conn == self.ci && op.epoch == self.epoch).then_some(Pending {
            kind: op.kind,
            offset: op.offset,
            len: op.len,
            covered: op.covered,
            error: op.error,
        })
    }

    fn receive<R: Read>(&mut self, cookie: u64, rel: u64, len: u64, src: &mut R) -> io::Result<()> {
        let Some(slot) = self.slot(cookie) else { return Err(io::ErrorKind::InvalidData.into()) };
        let iov = lock(&slot.op).iov;
        let mut at = IoVecs::default();
        iov.advance(rel, &mut at);
        let mut left = len as usize;
        for v in at.as_slice() {
            if left == 0 {
                break;
            }
            let n = v.iov_len.min(left);
            // SAFETY: the iovec names arena pages of a request in flight: the engine has
            // pinned them for this request until its completion, which only this thread
            // delivers, after this read. `gather` checked they lie inside the arena.
            let buf = unsafe { std::slice::from_raw_parts_mut(v.iov_base.cast::<u8>(), n) };
            src.read_exact(buf)?;
            left -= n;
        }
        if left > 0 {
            return Err(io::ErrorKind::InvalidData.into());
        }
        Ok(())
    }

    fn zero(&mut self, cookie: u64, rel: u64, len: u64) {
        let Some(slot) = self.slot(cookie) else { return };
        let iov = lock(&slot.op).iov;
        let mut at = IoVecs::default();
        iov.advance(rel, &mut at);
        let mut left = len as usize;
        for v in at.as_slice() {
            let n = v.iov_len.min(left);
            // SAFETY: as in `receive`: pinned arena pages of a request in flight.
            unsafe { std::ptr::write_bytes(v.iov_base.cast::<u8>(), 0, n) };
            left -= n;
        }
    }

    fn progress(&mut self, cookie: u64, covered: Coverage, error: Option<Errno>) {
        if let Some(slot) = self.slot(cookie) {
            let mut op = lock(&slot.op);
            op.covered = covered;
            op.error = error;
        }
    }

    fn finish(&mut self, cookie: u64, result: Result<u64, Errno>) {
        if cookie & INTERNAL != 0 {
            let c = &self.shared.conns[self.ci];
            let mut f = lock(&c.flush);
            if f.cookie == cookie {
                f.result = Some(result.map(|_| ()));
                c.flushed.notify_all();
            }
            return;
        }
        if let Some(slot) = self.slot(cookie) {
            if result.is_err() {
                DriverCounters::bump(&self.shared.nbd.error_replies);
            }
            let len = lock(&slot.op).len;
            self.shared.deliver(slot, cookie, len, result);
        }
    }
}

impl Drop for NbdBackend {
    /// Flushes (when the server supports it), disconnects every connection, fails what
    /// is still in flight with `ESHUTDOWN`, and joins the receivers.
    fn drop(&mut self) {
        let me = std::thread::current().id();
        // A receiver cannot wait for a flush reply it would have to read itself.
        if !self.reader_ids.contains(&me) {
            let _ = self.flush();
        }
        self.shared.close_all();
        for (h, id) in self.readers.drain(..).zip(self.reader_ids.iter()) {
            // Dropped from a receiver (the engine's last reference went there): it
            // exits on its own once it sees `closing`.
            if *id != me {
                let _ = h.join();
            }
        }
    }
}
