//! What every workload subcommand shares: argument types, activating a swap file for
//! swapdio's own drivers, building the driver and the engine, the stop flag, scratch
//! swap files, and a seeded RNG.

use crate::target::Lease;
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use swapdio::fault::FaultConfig;
use swapdio::linux::check::mode_name;
use swapdio::linux::direct::{Arena, DriverStats, Target};
use swapdio::linux::guard::{process_alive, recover_stale_immutable, SwapFileGuard};
use swapdio::linux::layout::{probe, read_header, FileLayout};
use swapdio::linux::lease::LayoutLease;
use swapdio::linux::mkswap::create_anonymous_swap_file;
use swapdio::linux::nbd::{NbdBackend, NbdUri};
use swapdio::linux::pread::PreadBackend;
use swapdio::linux::uring::{DriverConfig, UringBackend};
use swapdio::{
    activate_owned, ActivationReport, Backend, BackendCaps, Engine, IoMode, MapEntry, ModeRequest, OwnedStorage,
    PageOps, Request, StorageConfig, Submit, SwapMap,
};

/// `--mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Device mode when the filesystem allows it (ext4, xfs), else file mode.
    Auto,
    /// O_DIRECT on the block device at the mapped positions (kernel block swap).
    Device,
    /// O_DIRECT on the file at slot * 4096 (kernel SWP_FS_OPS).
    File,
}

impl ModeArg {
    pub fn request(self) -> ModeRequest {
        match self {
            ModeArg::Auto => ModeRequest::Auto,
            ModeArg::Device => ModeRequest::Device,
            ModeArg::File => ModeRequest::File,
        }
    }
}

/// `--driver`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DriverArg {
    /// io_uring (falls back to pread, with a message, when io_uring is unavailable).
    Uring,
    /// Synchronous preadv/pwritev with O_DIRECT.
    Pread,
}

/// Parses `10s`, `500ms`, `2m`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}: expected e.g. 10s, 500ms, 2m"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        _ => return Err(format!("invalid duration unit {unit:?} in {s:?}: use ms, s or m")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("duration {s:?} must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The driver under the engine: io_uring or pread, or NBD for an export.
pub enum Driver {
    Uring(Arc<UringBackend>),
    Pread(PreadBackend),
    Nbd(Arc<NbdBackend>),
}

impl Driver {
    pub fn name(&self) -> &'static str {
        match self {
            Driver::Uring(_) => "uring",
            Driver::Pread(_) => "pread",
            Driver::Nbd(_) => "nbd",
        }
    }

    pub fn stats(&self) -> DriverStats {
        match self {
            Driver::Uring(u) => u.stats(),
            Driver::Pread(p) => p.stats(),
            Driver::Nbd(n) => n.stats(),
        }
    }
}

impl Backend for Driver {
    fn caps(&self) -> BackendCaps {
        match self {
            Driver::Uring(u) => u.caps(),
            Driver::Pread(p) => p.caps(),
            Driver::Nbd(n) => n.caps(),
        }
    }
    fn submit(&self, req: &Request<'_>) -> Submit {
        match self {
            Driver::Uring(u) => u.submit(req),
            Driver::Pread(p) => p.submit(req),
            Driver::Nbd(n) => n.submit(req),
        }
    }
}

/// A small, seeded PRNG (SplitMix64): the workload is reproducible from `--seed`.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

/// Stops the workload on SIGINT/SIGTERM/SIGHUP so cleanup runs (the swap file is removed,
/// the guard restores the file's flags).
pub static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Installs the SIGINT/SIGTERM/SIGHUP handler that sets [`STOP`] (a closed terminal
/// stops the run like Ctrl-C instead of killing it before cleanup).
pub fn install_stop_handler() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction with a handler that only stores to an atomic
        // (async-signal-safe); no SA_RESTART so blocking waits see EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// A swap file the command created: anonymous (no name in any directory), so it cannot
/// outlive the process, whatever ends it. `path` reaches it through `/proc` while the
/// descriptor is held.
pub struct CreatedFile {
    /// `/proc/<pid>/fd/<n>`: opens this very inode (for this process and for fio).
    pub path: PathBuf,
    /// What to call it in messages.
    pub shown: String,
    _file: std::fs::File,
}

/// Removes `swapdio-<what>-<pid>.swap` files that runs of older versions left in `dir`
/// when they were killed: only regular files whose process is gone, that no swapdio
/// process holds and that are not active swap.
fn remove_stale_files(dir: &Path, quiet: bool) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| {
            let rest = n.strip_prefix("swapdio-stress-").or_else(|| n.strip_prefix("swapdio-bench-"))?;
            rest.strip_suffix(".swap")?.parse::<i32>().ok()
        }) else {
            continue;
        };
        if process_alive(pid) || !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let p = e.path();
        // Held by a live swapdio (pid reused) or active swap: leave it.
        let Ok(_lock) = SwapFileGuard::acquire(&p) else { continue };
        if probe(&p).is_err_and(|e| matches!(e, swapdio::linux::layout::LayoutError::ActiveSwap { .. })) {
            continue;
        }
        if std::fs::remove_file(&p).is_ok() && !quiet {
            eprintln!("swapdio: removed {} left by a run that was killed (pid {pid})", p.display());
        }
    }
}

/// Undoes what killed runs left behind: the immutable flag the guard sets in device
/// mode (restored), and says so.
pub fn recover_stale(quiet: bool) {
    for p in recover_stale_immutable() {
        if !quiet {
            eprintln!("swapdio: restored the inode flags of {} (left immutable by a run that was killed)", p.display());
        }
    }
}

/// Creates an anonymous swap file of `size` bytes in `dir` (`O_TMPFILE`, or a file
/// unlinked as soon as it is open), with a progress bar; first removes stale files of
/// killed runs there.
pub fn create_default_file(dir: &Path, what: &str, size: u64, quiet: bool) -> Result<CreatedFile, String> {
    remove_stale_files(dir, quiet);
    let shown = format!("anonymous {what} file in {} (gone when swapdio exits)", dir.display());
    let bar = (!quiet).then(|| {
        let b = ProgressBar::new(size);
        b.set_style(
            ProgressStyle::with_template("creating {msg} [{bar:30}] {bytes}/{total_bytes}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b.set_message(format!("swap file in {}", dir.display()));
        b
    });
    let res = create_anonymous_swap_file(dir, size, &mut |done, _| {
        if let Some(b) = &bar {
            b.set_position(done);
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let file = res.map_err(|e| format!("cannot create swap file: {e}"))?;
    let path = PathBuf::from(format!("/proc/{}/fd/{}", std::process::id(), file.as_raw_fd()));
    Ok(CreatedFile { path, shown, _file: file })
}

/// An activated swap file or NBD export: its layout, the core's map and report, the
/// lease, and for a file the guard (lock; in device mode the file is immutable until
/// the guard drops).
pub struct Activated {
    pub layout: FileLayout,
    pub map: SwapMap<Vec<MapEntry>>,
    pub report: ActivationReport,
    pub lease: Lease,
    /// `None` for an NBD export (nothing local to lock).
    pub guard: Option<SwapFileGuard>,
    /// The export, when the target is an NBD URI (see `target`).
    pub nbd: Option<NbdUri>,
}

/// swapon for swapdio's own drivers: probe the layout (fsync + FIEMAP), read page 0,
/// run the core's activation, record the lease. `guard` must hold `path`.
fn activate_file(path: &Path, mode: ModeRequest, guard: SwapFileGuard) -> Result<Activated, String> {
    let layout = probe(path).map_err(|e| format!("swapon: {e}"))?;
    if (layout.device, layout.inode) != guard.id() && layout.fs != swapdio::linux::layout::FsKind::BlockDevice {
        return Err(format!("{}: replaced while being activated", path.display()));
    }
    let header = read_header(path).map_err(|e| format!("swapon: {e}"))?;
    let (map, report) = activate_owned(&layout.activation_request(&header, mode))
        .map_err(|e| format!("{}: {e} (errno {})", path.display(), e.errno().0))?;
    let lease = Lease::File(LayoutLease::new(&layout, report.mode));
    Ok(Activated { layout, map, report, lease, guard: Some(guard), nbd: None })
}

/// Opens where the activated mode's I/O goes: the block device (device mode) or the file.
pub fn open_target(act: &Activated) -> Result<Target, String> {
    match act.report.mode {
        IoMode::Device => Target::device_for(&act.layout, act.map.entries()),
        IoMode::File => Target::file(&act.layout.path),
    }
    .map_err(|e| format!("cannot open the {} mode target: {e}", mode_name(act.report.mode)))
}

/// Activates `path` in `mode` under the swap-file guard: first an exclusive lock
/// (another swapdio process using the file is refused). In device mode the file is then
/// made immutable (its blocks cannot be freed and handed to another file while swapdio
/// writes to them) and its layout checked again, unchanged since activation. With
/// `auto`, if device mode was chosen but the block device cannot be opened or the file
/// cannot be made immutable, activates again in file mode and says so.
pub fn activate_for_io(path: &Path, mode: ModeArg, quiet: bool) -> Result<Activated, String> {
    if let Some(uri) = crate::target::nbd_uri(path)? {
        return crate::target::activate_nbd(&uri, mode, quiet);
    }
    recover_stale(quiet);
    let guard = SwapFileGuard::acquire(path).map_err(|e| e.to_string())?;
    let mut act = activate_file(path, mode.request(), guard)?;
    if act.report.mode != IoMode::Device {
        return Ok(act);
    }
    let protected = open_target(&act).map(drop).and_then(|()| {
        act.guard.as_mut().map_or(Ok(()), SwapFileGuard::freeze).map_err(|e| {
            format!("{e}: device mode writes to the file's blocks and needs the file immutable (CAP_LINUX_IMMUTABLE)")
        })
    });
    match protected {
        Ok(()) => {
            act.lease.verify().map_err(|e| format!("{e}; not started"))?;
            Ok(act)
        }
        Err(e) if mode == ModeArg::Auto => {
            if !quiet {
                eprintln!("swapdio: {e}; using file mode (pass --mode device to insist)");
            }
            let guard = act.guard.take().ok_or("no swap-file guard")?;
            activate_file(path, ModeRequest::File, guard)
        }
        Err(e) => Err(e),
    }
}

/// Builds the driver on the activated mode's target. io_uring failing to set up falls
/// back to pread with a message on stderr.
pub fn make_driver(
    kind: DriverArg,
    act: &Activated,
    arena: &Arc<Arena>,
    storage: StorageConfig,
    faults: FaultConfig,
    quiet: bool,
) -> Result<Driver, String> {
    if let Some(uri) = &act.nbd {
        return crate::target::nbd_driver(uri, arena, storage, faults).map(Driver::Nbd);
    }
    let target = || open_target(act);
    if kind == DriverArg::Uring {
        let config = DriverConfig { faults, ..DriverConfig::for_storage(storage) };
        match UringBackend::new(target()?, arena.clone(), config) {
            Ok(u) => return Ok(Driver::Uring(Arc::new(u))),
            Err(e) => {
                if !quiet {
                    eprintln!(
                        "swapdio: io_uring is unavailable ({e}); falling back to the pread driver \
                         (check kernel.io_uring_disabled, seccomp, or pass --driver pread)"
                    );
                }
            }
        }
    }
    Ok(Driver::Pread(PreadBackend::new(target()?, arena.clone(), faults)))
}

/// The engine over an activated file and a Linux driver.
pub type SwapEngine<P> = Engine<Vec<MapEntry>, OwnedStorage, Driver, P>;

/// Builds the engine over the driver and connects io_uring completions to it.
pub fn make_engine<P: PageOps + Send + Sync + 'static>(
    map: SwapMap<Vec<MapEntry>>,
    storage: StorageConfig,
    driver: Driver,
    pages: P,
) -> Result<Arc<SwapEngine<P>>, String> {
    let (uring, nbd) = match &driver {
        Driver::Uring(u) => (Some(u.clone()), None),
        Driver::Pread(_) => (None, None),
        Driver::Nbd(n) => (None, Some(n.clone())),
    };
    let engine = Arc::new(
        Engine::new(map, OwnedStorage::new(storage), driver, pages).map_err(|e| format!("engine setup: {e}"))?,
    );
    if let Some(u) = uring {
        u.connect(&engine);
    }
    if let Some(n) = nbd {
        n.connect_sink(&engine);
    }
    Ok(engine)
}

/// Re-checks an activated file's layout while a workload runs: every `every`, and soon
/// (within 50 ms) whenever the error count grew (a hole punched under file mode shows up as
/// `ENOSPC`, a kernel swapon as `ETXTBSY`). [`LayoutLease::verify`] reports a moved,
/// freed or added extent, a size change, a replaced file, and a file the kernel has
/// activated as swap; the caller then stops writing.
pub struct LayoutWatch {
    every: Duration,
    last: std::time::Instant,
    errors: u64,
}

impl LayoutWatch {
    /// A watch that re-checks every `every`.
    pub fn new(every: Duration) -> LayoutWatch {
        LayoutWatch { every, last: std::time::Instant::now(), errors: 0 }
    }

    /// `Some(what changed)` when it is time to look (or `errors` grew) and the layout
    /// is no longer the one activated, or (device mode) the file is no longer immutable.
    pub fn poll(&mut self, lease: &Lease, guard: Option<&SwapFileGuard>, errors: u64) -> Option<String> {
        // After an error look again soon, but not on every error: under injected faults
        // (or a failing disk) a re-read per failed request would swamp the workload.
        let since = self.last.elapsed();
        if since < self.every && (errors == self.errors || since < ERROR_RECHECK_GAP) {
            return None;
        }
        self.errors = errors;
        self.last = std::time::Instant::now();
        if let Some(g) = guard.filter(|g| !g.still_frozen()) {
            return Some(format!("{}: the immutable flag was cleared during the run", g.path().display()));
        }
        lease.verify().err()
    }
}

/// The shortest time between two error-triggered layout checks.
const ERROR_RECHECK_GAP: Duration = Duration::from_millis(50);

/// Exit status of `stress` and `bench` when the swap file's layout changed during the
/// run (or the kernel activated it): writing stopped at once; what was written since the
/// last check cannot be trusted.
pub const EXIT_LAYOUT_CHANGED: u8 = 4;

/// Latency percentile (`q` in 0..=100) of sorted samples.
pub fn percentile(sorted: &[u32], q: usize) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = (sorted.len() * q / 100).min(sorted.len() - 1);
    sorted[i]
}
