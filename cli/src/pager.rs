//! `swapdio pager`: a verified paging workload on a userfaultfd region served by
//! `swapdio::linux::pager` (engine + io_uring), side by side in the same run with the same
//! pager moving pages by synchronous pread/pwrite (the crosvm/UMap way), with the kernel's
//! own swap (the workload as a child process in a memory cgroup limited to the same
//! budget, a temporary swap file of the same size on the same filesystem), and with fio's
//! 4 KiB QD1 random reads on the swap file. Then the snapshot case: a region restored from
//! the swap file by faults and by one bulk prefetch.

use crate::bench::{fio_available, fio_case, Case, Dir};
use crate::pattern::stamp;
use crate::setup::{
    activate_for_io, create_default_file, latency_histogram, open_target, record_latency, ModeArg, Rng, STOP,
};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use swapdio::linux::mkswap::parse_size;
use swapdio::linux::pager::{IoPath, Pager, PagerConfig, PagerStats};
use swapdio::PAGE_SIZE;

/// Arguments of `swapdio pager`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Region size N (K/M/G suffixes).
    #[arg(long, default_value = "128M", value_parser = parse_size)]
    pub size: u64,
    /// Resident budget M (< N).
    #[arg(long, default_value = "32M", value_parser = parse_size)]
    pub budget: u64,
    /// Read+rewrite rounds per phase (each touches every page once).
    #[arg(long, default_value_t = 2)]
    pub rounds: u32,
    /// Threads of the multi-threaded phases.
    #[arg(long, default_value_t = 8)]
    pub threads: usize,
    /// Pager fault handler threads.
    #[arg(long, default_value_t = 2)]
    pub handlers: usize,
    /// Largest readahead window in pages after the faulting one, for sequential faults
    /// (0: none; default: the library's `PagerConfig::readahead`).
    #[arg(long)]
    pub readahead: Option<usize>,
    /// Victims written out per eviction batch (default: the library's
    /// `PagerConfig::evict_batch`).
    #[arg(long)]
    pub evict_batch: Option<usize>,
    /// I/O mode of the pager's swap file.
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,
    /// Directory for the swap files (the kernel's too: same filesystem).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Skip the kernel swap comparison.
    #[arg(long)]
    pub no_kernel: bool,
    /// Skip the pread/pwrite pager.
    #[arg(long)]
    pub no_pread: bool,
    /// Skip fio.
    #[arg(long)]
    pub no_fio: bool,
    /// Snapshot region size (0: skip the snapshot case).
    #[arg(long, default_value = "128M", value_parser = parse_size)]
    pub snapshot: u64,
    /// Seed of the random orders.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Internal: run the workload on plain anonymous memory in this memory cgroup and
    /// print one JSON line per phase (the kernel swap side).
    #[arg(long, hide = true)]
    pub kernel_child: Option<PathBuf>,
}

/// One phase of the workload.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Phase {
    name: &'static str,
    random: bool,
    threads: usize,
    rounds: u32,
}

fn phases(a: &Args) -> Vec<Phase> {
    let t = a.threads.max(1);
    let r = a.rounds.max(1);
    vec![
        Phase { name: "fill", random: false, threads: 1, rounds: 1 },
        Phase { name: "random 1 thread", random: true, threads: 1, rounds: r },
        Phase { name: "random N threads", random: true, threads: t, rounds: r },
        Phase { name: "sequential 1 thread", random: false, threads: 1, rounds: r },
        Phase { name: "sequential N threads", random: false, threads: t, rounds: r },
    ]
}

/// What one phase measured (on either side).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Measured {
    phase: String,
    threads: usize,
    secs: f64,
    /// Pages visited (read, verified, rewritten).
    touches: u64,
    /// Faults that needed the pager or the kernel (missing-page faults; major faults).
    faults: u64,
    pages_in: u64,
    pages_out: u64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    mismatches: u64,
}

impl Measured {
    fn rate(&self, n: u64) -> f64 {
        if self.secs > 0.0 {
            n as f64 / self.secs
        } else {
            0.0
        }
    }
}

#[derive(Clone, Copy)]
struct Region(*mut u8);
// SAFETY: the region is shared memory; each thread touches only its own pages.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

/// Runs one phase on `pages` pages at `base`: every round each thread visits its pages
/// (random: every `threads`-th page in a shuffled order; sequential: a contiguous
/// share in order), timing the first touch of each page (the fault, if any), then checks
/// every byte against the page's current generation and writes the next one.
fn run_phase(
    base: Region,
    pages: usize,
    gens: &[AtomicU32],
    ph: Phase,
    seed: u64,
) -> Result<(f64, u64, Histogram<u64>, u64), String> {
    let mut all = latency_histogram()?;
    let bad = AtomicU64::new(0);
    let touches = AtomicU64::new(0);
    let start = Instant::now();
    let lats: Vec<Option<Histogram<u64>>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..ph.threads)
            .map(|t| {
                let (bad, touches) = (&bad, &touches);
                sc.spawn(move || {
                    let base = base;
                    let mut mine: Vec<usize> = if ph.random {
                        (t..pages).step_by(ph.threads).collect()
                    } else {
                        let share = pages.div_ceil(ph.threads);
                        (t * share..((t + 1) * share).min(pages)).collect()
                    };
                    let mut rng = Rng::with_seed(seed ^ (t as u64) << 32);
                    let mut lat = latency_histogram().ok()?;
                    let mut want = vec![0u8; PAGE_SIZE];
                    for _ in 0..ph.rounds {
                        if ph.random {
                            for i in (1..mine.len()).rev() {
                                mine.swap(i, rng.usize(0..=i));
                            }
                        }
                        for &p in &mine {
                            if STOP.load(Ordering::Relaxed) {
                                break;
                            }
                            let ptr = base.0.wrapping_add(p * PAGE_SIZE);
                            let t0 = Instant::now();
                            // SAFETY: inside the region, page owned by this thread.
                            let first = unsafe { ptr.cast::<u64>().read_volatile() };
                            record_latency(&mut lat, t0);
                            std::hint::black_box(first);
                            // SAFETY: as above; no other thread touches this page.
                            let page = unsafe { std::slice::from_raw_parts_mut(ptr, PAGE_SIZE) };
                            let g = gens[p].load(Ordering::Relaxed);
                            if g == 0 {
                                want.fill(0);
                            } else {
                                stamp(p as u64, g, &mut want);
                            }
                            if page != want.as_slice() {
                                bad.fetch_add(1, Ordering::Relaxed);
                            }
                            stamp(p as u64, g + 1, page);
                            gens[p].store(g + 1, Ordering::Relaxed);
                            touches.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Some(lat)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().ok().flatten()).collect()
    });
    let secs = start.elapsed().as_secs_f64();
    for h in lats.iter().flatten() {
        all.add(h).map_err(|e| format!("latency histogram: {e}"))?;
    }
    Ok((secs, touches.load(Ordering::Relaxed), all, bad.load(Ordering::Relaxed)))
}

/// p50, p99 and max in microseconds (1 us resolution: a touch of a resident page counts 1).
fn lat_us(h: &Histogram<u64>) -> (f64, f64, f64) {
    (h.value_at_quantile(0.5) as f64, h.value_at_quantile(0.99) as f64, h.max() as f64)
}

/// Final check: every page holds its last generation. Returns mismatched pages.
fn verify_all(base: Region, pages: usize, gens: &[AtomicU32]) -> u64 {
    let mut want = vec![0u8; PAGE_SIZE];
    let mut bad = 0;
    for (p, g) in gens.iter().enumerate().take(pages) {
        let g = g.load(Ordering::Relaxed);
        if g == 0 {
            want.fill(0);
        } else {
            stamp(p as u64, g, &mut want);
        }
        // SAFETY: inside the region.
        let page = unsafe { std::slice::from_raw_parts(base.0.wrapping_add(p * PAGE_SIZE), PAGE_SIZE) };
        if page != want.as_slice() {
            bad += 1;
        }
    }
    bad
}

fn new_pager(path: &Path, a: &Args, pages: usize, budget: usize, io: IoPath, restore: bool) -> Result<Pager, String> {
    let act = activate_for_io(path, a.mode, true)?;
    let target = open_target(&act)?;
    let mut c = PagerConfig::new(pages, budget);
    c.handlers = a.handlers;
    if let Some(r) = a.readahead {
        c.readahead = r;
    }
    if let Some(b) = a.evict_batch {
        c.evict_batch = b;
    }
    c.io = io;
    c.restore = restore;
    Pager::new(c, act.map, target).map_err(|e| e.to_string())
}

fn delta(a: &PagerStats, b: &PagerStats) -> (u64, u64, u64) {
    (b.faults - a.faults, b.pages_in - a.pages_in, b.pages_out - a.pages_out)
}

/// The workload on a pager: every phase, then a final check of every page.
fn pager_side(path: &Path, a: &Args, io: IoPath, json: bool) -> Result<(Vec<Measured>, u64, PagerStats), String> {
    let pages = (a.size / PAGE_SIZE as u64) as usize;
    let budget = (a.budget / PAGE_SIZE as u64) as usize;
    let mut pager = new_pager(path, a, pages, budget, io, false)?;
    let base = Region(pager.as_ptr());
    let gens: Vec<AtomicU32> = (0..pages).map(|_| AtomicU32::new(0)).collect();
    let mut out = Vec::new();
    for (i, ph) in phases(a).into_iter().enumerate() {
        if STOP.load(Ordering::Relaxed) {
            break;
        }
        let s0 = pager.stats();
        let (secs, touches, lat, bad) = run_phase(base, pages, &gens, ph, a.seed.wrapping_add(i as u64))?;
        let (faults, pages_in, pages_out) = delta(&s0, &pager.stats());
        let (p50_us, p99_us, max_us) = lat_us(&lat);
        let m = Measured {
            phase: ph.name.into(),
            threads: ph.threads,
            secs,
            touches,
            faults,
            pages_in,
            pages_out,
            p50_us,
            p99_us,
            max_us,
            mismatches: bad,
        };
        if !json {
            errln!(
                "  {:<8} {:<22} {:>6.2} s  {:>8.0} pages/s  in {:>8.0}/s  out {:>8.0}/s  p99 {:>7.0} us  mismatches {}",
                if io == IoPath::Engine { "engine" } else { "pread" },
                ph.name,
                secs,
                m.rate(touches),
                m.rate(pages_in),
                m.rate(pages_out),
                p99_us,
                bad
            );
        }
        out.push(m);
    }
    let bad = verify_all(base, pages, &gens);
    let stats = pager.stats();
    let census = pager.shutdown();
    if census.total() != pages || census.moving != 0 {
        return Err(format!("pager shutdown left pages unaccounted for: {census:?}"));
    }
    Ok((out, bad, stats))
}

// ---- the kernel's swap, in a memory cgroup ----------------------------------------------

fn vmstat() -> (u64, u64, u64) {
    let text = std::fs::read_to_string("/proc/vmstat").unwrap_or_default();
    let get = |k: &str| text.lines().find_map(|l| l.strip_prefix(k).and_then(|v| v.trim().parse().ok())).unwrap_or(0);
    (get("pgmajfault "), get("pswpin "), get("pswpout "))
}

/// The child: joins the cgroup, runs every phase on anonymous memory, prints JSON lines.
fn kernel_child(a: &Args, cg: &Path) -> Result<(), String> {
    std::fs::write(cg.join("tasks"), std::process::id().to_string()).map_err(|e| format!("joining {cg:?}: {e}"))?;
    let pages = (a.size / PAGE_SIZE as u64) as usize;
    // SAFETY: a fresh anonymous private mapping, unmapped at exit.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            pages * PAGE_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(format!("mmap: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: advice on the mapping above (4 KiB pages, as the pager uses).
    unsafe { libc::madvise(base, pages * PAGE_SIZE, libc::MADV_NOHUGEPAGE) };
    let region = Region(base.cast());
    let gens: Vec<AtomicU32> = (0..pages).map(|_| AtomicU32::new(0)).collect();
    for (i, ph) in phases(a).into_iter().enumerate() {
        let v0 = vmstat();
        let (secs, touches, lat, bad) = run_phase(region, pages, &gens, ph, a.seed.wrapping_add(i as u64))?;
        let v1 = vmstat();
        let (p50_us, p99_us, max_us) = lat_us(&lat);
        let m = Measured {
            phase: ph.name.into(),
            threads: ph.threads,
            secs,
            touches,
            faults: v1.0 - v0.0,
            pages_in: v1.1 - v0.1,
            pages_out: v1.2 - v0.2,
            p50_us,
            p99_us,
            max_us,
            mismatches: bad,
        };
        outln!("{}", serde_json::to_string(&m).unwrap_or_default());
    }
    let bad = verify_all(region, pages, &gens);
    outln!("{}", serde_json::json!({ "final_mismatches": bad }));
    Ok(())
}

/// Removes what the kernel side set up, in reverse order.
struct KernelGuard {
    swap: Option<CString>,
    cgroup: Option<PathBuf>,
    file: Option<PathBuf>,
}

impl Drop for KernelGuard {
    fn drop(&mut self) {
        if let Some(p) = self.swap.take() {
            // SAFETY: swapoff on the path we swapped on.
            unsafe { libc::swapoff(p.as_ptr()) };
        }
        if let Some(cg) = self.cgroup.take() {
            let _ = std::fs::remove_dir(cg);
        }
        if let Some(f) = self.file.take() {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Why the kernel side cannot run here, if it cannot.
fn kernel_skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (swapon and a memory cgroup)".into());
    }
    if !Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() {
        return Some("no cgroup v1 memory controller at /sys/fs/cgroup/memory".into());
    }
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    if swaps.lines().count() > 1 {
        return Some("another swap area is active (its pages would mix into /proc/vmstat)".into());
    }
    None
}

/// Slack above the budget for the child's own memory (binary, stacks, latency samples).
const CHILD_SLACK: u64 = 2 << 20;

fn kernel_side(a: &Args, json: bool) -> Result<(Vec<Measured>, u64), String> {
    // swapon needs a name: a named file (removed by the guard), not an anonymous one.
    let path = a.dir.join(format!("swapdio-pager-kernel-{}.swap", std::process::id()));
    let mut guard = KernelGuard { swap: None, cgroup: None, file: Some(path.clone()) };
    swapdio::linux::mkswap::create_swap_file(&path, a.size + (16 << 20)).map_err(|e| format!("mkswap: {e}"))?;
    let cpath = CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: swapon with a valid C path and no flags.
    if unsafe { libc::swapon(cpath.as_ptr(), 0) } != 0 {
        return Err(format!("swapon {}: {}", path.display(), std::io::Error::last_os_error()));
    }
    guard.swap = Some(cpath);
    let cg = PathBuf::from(format!("/sys/fs/cgroup/memory/swapdio-pager-{}", std::process::id()));
    std::fs::create_dir(&cg).map_err(|e| format!("mkdir {}: {e}", cg.display()))?;
    guard.cgroup = Some(cg.clone());
    std::fs::write(cg.join("memory.limit_in_bytes"), (a.budget + CHILD_SLACK).to_string())
        .map_err(|e| format!("memory.limit_in_bytes: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["pager", "--kernel-child"])
        .arg(&cg)
        .args(["--size", &a.size.to_string(), "--rounds", &a.rounds.to_string()])
        .args(["--threads", &a.threads.to_string(), "--seed", &a.seed.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning the kernel-swap child: {e}"))?;
    let mut out = Vec::new();
    let mut final_bad = 0;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(m) = serde_json::from_str::<Measured>(&line) {
                if !json {
                    errln!(
                        "  {:<8} {:<22} {:>6.2} s  {:>8.0} pages/s  in {:>8.0}/s  out {:>8.0}/s  p99 {:>7.0} us  mismatches {}",
                        "kernel",
                        m.phase,
                        m.secs,
                        m.rate(m.touches),
                        m.rate(m.pages_in),
                        m.rate(m.pages_out),
                        m.p99_us,
                        m.mismatches
                    );
                }
                out.push(m);
            } else if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                final_bad = v["final_mismatches"].as_u64().unwrap_or(0);
            }
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        let oom = std::fs::read_to_string(cg.join("memory.oom_control")).unwrap_or_default();
        let kills = oom.lines().find_map(|l| l.strip_prefix("oom_kill ")).unwrap_or("?").trim().to_string();
        return Err(format!("the kernel-swap child failed: {status} (memcg OOM kills: {kills})"));
    }
    drop(guard);
    Ok((out, final_bad))
}

// ---- snapshot ------------------------------------------------------------------------

#[derive(Debug, Default, Serialize)]
struct Snapshot {
    mib: u64,
    fault_secs: f64,
    prefetch_secs: f64,
    mismatches: u64,
}

/// Writes a region of stamped pages, flushes it to the swap file, then restores it in a
/// fresh pager by faults (one thread, touching each page in order) and by one prefetch.
fn snapshot(path: &Path, a: &Args, bytes: u64) -> Result<Snapshot, String> {
    let pages = (bytes / PAGE_SIZE as u64) as usize;
    let touch_all = |p: &Pager| -> u64 {
        let mut want = vec![0u8; PAGE_SIZE];
        let mut bad = 0;
        for i in 0..pages {
            stamp(i as u64, 7, &mut want);
            // SAFETY: inside the region.
            let page = unsafe { std::slice::from_raw_parts(p.as_ptr().add(i * PAGE_SIZE), PAGE_SIZE) };
            if page != want.as_slice() {
                bad += 1;
            }
        }
        bad
    };
    {
        let mut w = new_pager(path, a, pages, pages, IoPath::Engine, false)?;
        for i in 0..pages {
            // SAFETY: inside the region, one thread.
            let page = unsafe { std::slice::from_raw_parts_mut(w.as_ptr().add(i * PAGE_SIZE), PAGE_SIZE) };
            stamp(i as u64, 7, page);
        }
        w.flush().map_err(|e| e.to_string())?;
        w.shutdown();
    }
    let mut r = Snapshot { mib: bytes >> 20, ..Snapshot::default() };
    {
        let mut f = new_pager(path, a, pages, pages, IoPath::Engine, true)?;
        let t = Instant::now();
        for i in 0..pages {
            // SAFETY: inside the region.
            std::hint::black_box(unsafe { f.as_ptr().add(i * PAGE_SIZE).read_volatile() });
        }
        r.fault_secs = t.elapsed().as_secs_f64();
        r.mismatches += touch_all(&f);
        f.shutdown();
    }
    {
        let mut p = new_pager(path, a, pages, pages, IoPath::Engine, true)?;
        let t = Instant::now();
        p.prefetch(std::slice::from_ref(&(0..pages))).map_err(|e| e.to_string())?;
        r.prefetch_secs = t.elapsed().as_secs_f64();
        r.mismatches += touch_all(&p);
        p.shutdown();
    }
    Ok(r)
}

// ---- the command ---------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct Target {
    what: &'static str,
    value: f64,
    goal: f64,
    met: bool,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `swapdio pager`.
pub fn run(args: Args, json: bool) -> ExitCode {
    crate::setup::install_stop_handler();
    if let Some(cg) = &args.kernel_child {
        return match kernel_child(&args, cg) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                errln!("swapdio pager (kernel child): {e}");
                ExitCode::from(2)
            }
        };
    }
    match pager_cmd(&args, json) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            if json {
                outln!("{}", serde_json::json!({"ok": false, "error": e}));
            } else {
                errln!("swapdio pager: {e}");
            }
            ExitCode::from(2)
        }
    }
}

fn pager_cmd(a: &Args, json: bool) -> Result<bool, String> {
    if a.budget >= a.size || a.budget == 0 {
        return Err("--budget must be below --size".into());
    }
    let load_before = loadavg();
    let file_bytes = a.size.max(a.snapshot) + (4 << 20);
    let file = create_default_file(&a.dir, "pager", file_bytes, json)?;
    if !json {
        errln!(
            "swapdio pager: region {} MiB, budget {} MiB, {} rounds, {} threads, {} handlers; load {}",
            a.size >> 20,
            a.budget >> 20,
            a.rounds,
            a.threads,
            a.handlers,
            load_before
        );
    }
    let (engine, engine_final, engine_stats) = pager_side(&file.path, a, IoPath::Engine, json)?;
    let pread = if a.no_pread { None } else { Some(pager_side(&file.path, a, IoPath::Pread, json)?) };
    let kernel = match (a.no_kernel, kernel_skip_reason()) {
        (true, _) => None,
        (false, Some(why)) => {
            if !json {
                errln!("  kernel swap comparison skipped: {why}");
            }
            None
        }
        // The comparison failing (e.g. the memcg OOM-killing the child) is reported, not
        // fatal: the pager's own results and checks stand.
        (false, None) => match kernel_side(a, json) {
            Ok(k) => Some(k),
            Err(e) => {
                errln!("  kernel swap comparison failed: {e}");
                None
            }
        },
    };
    let fio = if !a.no_fio && fio_available() {
        let case = Case { name: "randread QD1", dir: Dir::Read, random: true, pages: 1, qd: 1 };
        fio_case(&file.path, file_bytes, &case, Duration::from_secs(3))
    } else {
        None
    };
    let snap = if a.snapshot > 0 { Some(snapshot(&file.path, a, a.snapshot)?) } else { None };
    let load_after = loadavg();

    // Targets, from the same run: (what, ours / theirs, goal); the p99 one must be below.
    let find = |v: &[Measured], name: &str| v.iter().find(|m| m.phase == name).cloned();
    let side = |v: Option<&Vec<Measured>>, name: &str| v.and_then(|v| find(v, name));
    let kernel_v = kernel.as_ref().map(|(k, _)| k);
    let pread_v = pread.as_ref().map(|(p, _, _)| p);
    let in_rate = |m: &Measured| m.rate(m.pages_in);
    let ratio = |ours: Option<Measured>, theirs: Option<f64>, f: &dyn Fn(&Measured) -> f64| {
        ours.zip(theirs).map(|(o, t)| f(&o) / t.max(1e-9))
    };
    let e = |name: &str| find(&engine, name);
    let rows: [(&'static str, Option<f64>, f64, bool); 5] = [
        (
            "random N threads: pages in/s vs kernel swap",
            ratio(e("random N threads"), side(kernel_v, "random N threads").map(|k| in_rate(&k)), &in_rate),
            2.0,
            true,
        ),
        (
            "random N threads: pages in/s vs pread pager",
            ratio(e("random N threads"), side(pread_v, "random N threads").map(|p| in_rate(&p)), &in_rate),
            1.5,
            true,
        ),
        (
            "sequential 1 thread: pages in/s vs kernel swap",
            ratio(e("sequential 1 thread"), side(kernel_v, "sequential 1 thread").map(|k| in_rate(&k)), &in_rate),
            3.0,
            true,
        ),
        (
            "random 1 thread: pages in/s vs fio 4k QD1 randread IOPS",
            ratio(e("random 1 thread"), fio.map(|f| f.iops), &in_rate),
            0.9,
            true,
        ),
        (
            "random 1 thread: p99 fault latency vs kernel (below 1)",
            ratio(e("random 1 thread"), side(kernel_v, "random 1 thread").map(|k| k.p99_us), &|m| m.p99_us),
            1.0,
            false,
        ),
    ];
    let mut targets: Vec<Target> = rows
        .into_iter()
        .filter_map(|(what, v, goal, at_least)| {
            v.map(|value| Target { what, value, goal, met: if at_least { value >= goal } else { value < goal } })
        })
        .collect();
    if let Some(s) = &snap {
        targets.push(Target {
            what: "snapshot populate with bulk prefetch, seconds",
            value: s.prefetch_secs,
            goal: 0.5,
            met: s.prefetch_secs < 0.5,
        });
    }
    let mismatches: u64 = engine.iter().map(|m| m.mismatches).sum::<u64>()
        + engine_final
        + pread.as_ref().map_or(0, |(p, f, _)| p.iter().map(|m| m.mismatches).sum::<u64>() + f)
        + kernel.as_ref().map_or(0, |(k, f)| k.iter().map(|m| m.mismatches).sum::<u64>() + f)
        + snap.as_ref().map_or(0, |s| s.mismatches);
    let ok = mismatches == 0;

    if json {
        let v = serde_json::json!({
            "ok": ok,
            "size": a.size, "budget": a.budget, "rounds": a.rounds, "threads": a.threads, "handlers": a.handlers,
            "engine": engine, "engine_stats": engine_stats,
            "pread": pread.as_ref().map(|(p, _, s)| serde_json::json!({"phases": p, "stats": s})),
            "kernel": kernel.as_ref().map(|(k, _)| k),
            "fio_qd1_randread": fio,
            "snapshot": snap,
            "targets": targets,
            "mismatches": mismatches,
            "load_before": load_before, "load_after": load_after,
        });
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(ok);
    }
    outln!(
        "{:<22} | {:^44} | {:^44} | {:^44}",
        "phase",
        "swapdio pager (engine+io_uring)",
        "pread/pwrite pager",
        "kernel swap (memcg)"
    );
    outln!(
        "{:<22} | {:>9} {:>9} {:>8} {:>7} {:>7}  | (same columns)                               | (same columns)",
        "",
        "pages/s",
        "in/s",
        "out/s",
        "p50us",
        "p99us"
    );
    let cell = |m: Option<Measured>| match m {
        Some(m) => format!(
            "{:>9.0} {:>9.0} {:>8.0} {:>7.0} {:>7.0} ",
            m.rate(m.touches),
            m.rate(m.pages_in),
            m.rate(m.pages_out),
            m.p50_us,
            m.p99_us
        ),
        None => format!("{:>9} {:>9} {:>8} {:>7} {:>7} ", "-", "-", "-", "-", "-"),
    };
    for ph in phases(a) {
        outln!(
            "{:<22} | {} | {} | {}",
            ph.name.replace('N', &a.threads.to_string()),
            cell(find(&engine, ph.name)),
            cell(pread.as_ref().and_then(|(p, _, _)| find(p, ph.name))),
            cell(kernel.as_ref().and_then(|(k, _)| find(k, ph.name))),
        );
    }
    if let Some(f) = &fio {
        outln!("fio 4k randread QD1 on the swap file: {:.0} IOPS, p99 {:.0} us", f.iops, f.p99_us);
    }
    if let Some(s) = &snap {
        outln!(
            "snapshot {} MiB: by faults {:.3} s, by bulk prefetch {:.3} s, mismatches {}",
            s.mib,
            s.fault_secs,
            s.prefetch_secs,
            s.mismatches
        );
    }
    for t in &targets {
        outln!("target {:<58} {:>7.2} (goal {}) {}", t.what, t.value, t.goal, if t.met { "met" } else { "NOT met" });
    }
    outln!(
        "mismatches {mismatches}; pager: {} write failures, {} redirtied, {} requests; load {load_before} -> {load_after}",
        engine_stats.write_failures, engine_stats.redirtied, engine_stats.requests
    );
    Ok(ok)
}
