//! What every workload subcommand shares: argument types, activating a swap file for
//! swapdio's own drivers, building the driver and the engine, the stop flag, scratch
//! swap files, and a seeded RNG.

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use swapdio::fault::FaultConfig;
use swapdio::linux::check::mode_name;
use swapdio::linux::direct::{Arena, DriverStats, Target};
use swapdio::linux::layout::{probe, read_header, FileLayout};
use swapdio::linux::lease::LayoutLease;
use swapdio::linux::mkswap::create_swap_file_with_progress;
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

/// The driver under the engine: io_uring or pread.
pub enum Driver {
    Uring(Arc<UringBackend>),
    Pread(PreadBackend),
}

impl Driver {
    pub fn name(&self) -> &'static str {
        match self {
            Driver::Uring(_) => "uring",
            Driver::Pread(_) => "pread",
        }
    }

    pub fn stats(&self) -> DriverStats {
        match self {
            Driver::Uring(u) => u.stats(),
            Driver::Pread(p) => p.stats(),
        }
    }
}

impl Backend for Driver {
    fn caps(&self) -> BackendCaps {
        match self {
            Driver::Uring(u) => u.caps(),
            Driver::Pread(p) => p.caps(),
        }
    }
    fn submit(&self, req: &Request<'_>) -> Submit {
        match self {
            Driver::Uring(u) => u.submit(req),
            Driver::Pread(p) => p.submit(req),
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

/// Stops the workload on SIGINT/SIGTERM so cleanup runs (the swap file is removed).
pub static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Installs the SIGINT/SIGTERM handler that sets [`STOP`].
pub fn install_stop_handler() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
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

/// A swap file the command created: removed when dropped (error paths, ctrl-c).
pub struct CreatedFile(pub PathBuf);

impl Drop for CreatedFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Creates `dir/swapdio-<what>-<pid>.swap` of `size` bytes with a progress bar.
pub fn create_default_file(dir: &Path, what: &str, size: u64, quiet: bool) -> Result<CreatedFile, String> {
    let path = dir.join(format!("swapdio-{what}-{}.swap", std::process::id()));
    let guard = CreatedFile(path.clone());
    let bar = (!quiet).then(|| {
        let b = ProgressBar::new(size);
        b.set_style(
            ProgressStyle::with_template("creating {msg} [{bar:30}] {bytes}/{total_bytes}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b.set_message(path.display().to_string());
        b
    });
    let res = create_swap_file_with_progress(&path, size, &mut |done, _| {
        if let Some(b) = &bar {
            b.set_position(done);
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    res.map_err(|e| format!("cannot create swap file: {e}"))?;
    Ok(guard)
}

/// An activated swap file: its layout, the core's map and report, and the lease.
pub struct Activated {
    pub layout: FileLayout,
    pub map: SwapMap<Vec<MapEntry>>,
    pub report: ActivationReport,
    pub lease: LayoutLease,
}

/// swapon for swapdio's own drivers: probe the layout (fsync + FIEMAP), read page 0,
/// run the core's activation, record the lease.
pub fn activate_file(path: &Path, mode: ModeRequest) -> Result<Activated, String> {
    let layout = probe(path).map_err(|e| format!("swapon: {e}"))?;
    let header = read_header(path).map_err(|e| format!("swapon: {e}"))?;
    let (map, report) = activate_owned(&layout.activation_request(&header, mode))
        .map_err(|e| format!("{}: {e} (errno {})", path.display(), e.errno().0))?;
    let lease = LayoutLease::new(&layout, report.mode);
    Ok(Activated { layout, map, report, lease })
}

/// Opens where the activated mode's I/O goes: the block device (device mode) or the file.
pub fn open_target(act: &Activated) -> Result<Target, String> {
    match act.report.mode {
        IoMode::Device => Target::device_for(&act.layout, act.map.entries()),
        IoMode::File => Target::file(&act.layout.path),
    }
    .map_err(|e| format!("cannot open the {} mode target: {e}", mode_name(act.report.mode)))
}

/// Activates `path` in `mode`. With `auto`, if device mode was chosen but the block
/// device cannot be opened (a container without access to the disk), activates again in
/// file mode and says so.
pub fn activate_for_io(path: &Path, mode: ModeArg, quiet: bool) -> Result<Activated, String> {
    let act = activate_file(path, mode.request())?;
    if mode != ModeArg::Auto || act.report.mode != IoMode::Device {
        return Ok(act);
    }
    match open_target(&act) {
        Ok(_) => Ok(act),
        Err(e) => {
            if !quiet {
                eprintln!("swapdio: {e}; using file mode (pass --mode device to insist)");
            }
            activate_file(path, ModeRequest::File)
        }
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
    let uring = match &driver {
        Driver::Uring(u) => Some(u.clone()),
        Driver::Pread(_) => None,
    };
    let engine = Arc::new(
        Engine::new(map, OwnedStorage::new(storage), driver, pages).map_err(|e| format!("engine setup: {e}"))?,
    );
    if let Some(u) = uring {
        u.connect(&engine);
    }
    Ok(engine)
}

/// Latency percentile (`q` in 0..=100) of sorted samples.
pub fn percentile(sorted: &[u32], q: usize) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = (sorted.len() * q / 100).min(sorted.len() - 1);
    sorted[i]
}
