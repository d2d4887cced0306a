//! What every workload subcommand shares: argument types, activating a swap file for
//! swapdio's own drivers, building the driver and the engine, the stop flag, scratch
//! swap files, and a seeded RNG.

use crate::target::Lease;
use clap::ValueEnum;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use swapdio::fault::FaultConfig;
use swapdio::linux::check::mode_name;
use swapdio::linux::direct::{Arena, DriverStats, Target};
use swapdio::linux::guard::{process_alive, recover_stale_immutable, SwapFileGuard};
use swapdio::linux::io_text;
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

/// Shortest `--duration` accepted: the resolution of the workload's clock checks.
pub const MIN_DURATION: Duration = Duration::from_millis(1);
/// Longest `--duration` accepted (a deadline past it could not be represented on every
/// clock; nobody means more).
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses `10s`, `500ms`, `2m`, `1h`, `1.5s` or a plain number of seconds into a
/// [`Duration`] with integer arithmetic only (checked: no float rounding, no overflow,
/// no panic on any input), between [`MIN_DURATION`] and [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("invalid duration {s:?}: expected e.g. 10s, 500ms, 2m, 1h");
    let nanos_per_unit: u128 = match unit.trim() {
        "" | "s" => 1_000_000_000,
        "ms" => 1_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        u => return Err(format!("invalid duration unit {u:?} in {s:?}: use ms, s, m or h")),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(bad());
    }
    let too_long = || format!("duration {s:?} is too long: at most {} days", MAX_DURATION.as_secs() / 86_400);
    // Integer part, then up to 9 fraction digits of the unit (finer digits are below any
    // unit's nanosecond and are dropped).
    let whole: u128 = if int.is_empty() { 0 } else { int.parse().map_err(|_| too_long())? };
    let mut nanos = whole.checked_mul(nanos_per_unit).ok_or_else(too_long)?;
    let mut scale = nanos_per_unit;
    for d in frac.bytes().take(18) {
        scale /= 10;
        nanos = nanos.checked_add(u128::from(d - b'0') * scale).ok_or_else(too_long)?;
    }
    let max = MAX_DURATION.as_nanos();
    if nanos > max {
        return Err(too_long());
    }
    let d = Duration::from_nanos(u64::try_from(nanos).map_err(|_| too_long())?);
    if d < MIN_DURATION {
        return Err(format!("duration {s:?} is below the resolution of 1ms"));
    }
    Ok(d)
}

/// `d` as users write it: `1.5s`, `250ms`, `10s`.
pub fn show_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}.{:03}s", d.as_secs(), d.subsec_millis())
    }
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

/// The workload's seeded PRNG: the workload is reproducible from `--seed`.
pub type Rng = fastrand::Rng;

/// Set when SIGINT, SIGTERM or SIGHUP arrives: the workload stops so cleanup runs (the
/// swap file is removed, the guard restores the file's flags).
pub static STOP: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// Exit status of a run that a signal stopped early (`128 + SIGINT`, what a shell shows
/// for Ctrl-C); what was checked before the stop is still reported.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Installs the SIGINT/SIGTERM/SIGHUP handlers that set [`STOP`] (a closed terminal
/// stops the run like Ctrl-C instead of killing it before cleanup).
pub fn install_stop_handler() {
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&STOP)) {
            errln!("swapdio: cannot handle signal {sig}: {e}");
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
            errln!("swapdio: removed {} left by a run that was killed (pid {pid})", p.display());
        }
    }
}

/// Undoes what killed runs left behind: the immutable flag the guard sets in device
/// mode (restored), and says so.
pub fn recover_stale(quiet: bool) {
    for p in recover_stale_immutable() {
        if !quiet {
            errln!("swapdio: restored the inode flags of {} (left immutable by a run that was killed)", p.display());
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
        .map_err(|e| format!("{}: {e}, {}", path.display(), e.errno()))?;
    let lease = Lease::File(LayoutLease::new(&layout, report.mode));
    Ok(Activated { layout, map, report, lease, guard: Some(guard), nbd: None })
}

/// Opens where the activated mode's I/O goes: the block device (device mode) or the file.
pub fn open_target(act: &Activated) -> Result<Target, String> {
    match act.report.mode {
        IoMode::Device => Target::device_for(&act.layout, act.map.entries()),
        IoMode::File => Target::file(&act.layout.path),
    }
    .map_err(|e| format!("cannot open the {} mode target: {}", mode_name(act.report.mode), io_text(&e)))
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
    // Every mode writes (to the file or to its blocks): a read-only mount is refused
    // once, with its reason, not blamed on the immutable flag and retried in file mode.
    let writable = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => std::fs::OpenOptions::new().read(true).write(true).open(path).map(drop),
        _ => Ok(()),
    };
    if let Err(e) = writable {
        if e.raw_os_error() == Some(libc::EROFS) {
            return Err(format!(
                "{}: {}: every mode writes to the swap file or its blocks",
                path.display(),
                io_text(&e)
            ));
        }
    }
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
                errln!("swapdio: {e}; using file mode (pass --mode device to insist)");
            }
            let guard = act.guard.take().ok_or("no swap-file guard")?;
            activate_file(path, ModeRequest::File, guard)
        }
        Err(e) => Err(e),
    }
}

/// File mode's stand-in for `S_SWAPFILE`, called once the driver's descriptor on the
/// file is open: makes the file append-only ([`SwapFileGuard::freeze_append_only`]), so
/// that nobody can punch a hole in it, truncate it or `swapon` it while swapdio writes.
/// Returns what protects the file, for the report: `"immutable"` (device mode),
/// `"append-only"`, or why there is none (no `CAP_LINUX_IMMUTABLE`, a filesystem without
/// inode flags, an NBD export); without it the layout is only re-checked periodically
/// and after errors, and a change stops the run.
pub fn protect_file_mode(act: &mut Activated, quiet: bool) -> String {
    let Some(g) = act.guard.as_mut() else { return "none (NBD export: nothing local to protect)".into() };
    if act.report.mode == IoMode::File {
        if let Err(e) = g.freeze_append_only() {
            if !quiet {
                errln!(
                    "swapdio: {e}: the file stays writable by others during the run (its layout is \
                     re-checked every 0.5 s and after errors instead)"
                );
            }
            return format!("none ({e})");
        }
    }
    g.frozen_as().unwrap_or("none (a block device: no filesystem under it)").to_string()
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
        return crate::target::nbd_driver(uri, &act.lease, arena, storage, faults).map(Driver::Nbd);
    }
    let target = || open_target(act);
    if kind == DriverArg::Uring {
        let config = DriverConfig { faults, ..DriverConfig::for_storage(storage) };
        match UringBackend::new(target()?, arena.clone(), config) {
            Ok(u) => return Ok(Driver::Uring(Arc::new(u))),
            Err(e) => {
                if !quiet {
                    errln!(
                        "swapdio: io_uring is unavailable ({}); falling back to the pread driver \
                         (check kernel.io_uring_disabled, seccomp, or pass --driver pread)",
                        io_text(&e)
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
        Engine::new(map, OwnedStorage::new(storage).map_err(|e| format!("engine storage: {e}"))?, driver, pages)
            .map_err(|e| format!("engine setup: {e}"))?,
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
            let flag = g.frozen_as().unwrap_or("immutable");
            return Some(format!("{}: the {flag} flag was cleared during the run", g.path().display()));
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

/// A latency histogram in microseconds, 1 us to 10 min at 3 significant digits.
pub fn latency_histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, 600_000_000, 3).map_err(|e| format!("latency histogram: {e}"))
}

/// Records the time since `start` in `h`, in microseconds (clamped to the histogram's range).
pub fn record_latency(h: &mut Histogram<u64>, start: std::time::Instant) {
    let us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    h.saturating_record(us.clamp(1, h.high()));
}

/// Counters as users read them: `completed 12, submitted 12` (zero counters left out),
/// instead of Rust's `Debug` form.
pub fn counters_text<T: serde::Serialize>(counters: &T) -> String {
    let Ok(serde_json::Value::Object(m)) = serde_json::to_value(counters) else { return String::new() };
    let mut parts = Vec::new();
    for (k, v) in &m {
        if v.as_u64() != Some(0) {
            parts.push(format!("{} {v}", k.replace('_', " ")));
        }
    }
    if parts.is_empty() {
        "all counters 0".into()
    } else {
        parts.join(", ")
    }
}
