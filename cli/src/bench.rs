//! `swapdio bench`: swap-in and swap-out IOPS and bandwidth through the engine and the
//! io_uring driver, side by side in the same run with a raw io_uring loop on the same
//! target (no engine) and with fio on the same file when fio is installed.
//!
//! Cases: 4 KiB random swap-in and swap-out at QD 1 and 32, and sequential swap-out and
//! swap-in of 32 adjacent pages per request (the plug's batch, 128 KiB) at QD 8 — the
//! kernel's `SWAP_CLUSTER_MAX` batching compared with fio's 128 KiB sequential jobs.

use crate::setup::{
    activate_for_io, counters_text, create_default_file, install_stop_handler, latency_histogram, make_driver,
    make_engine, open_target, record_latency, show_duration, DriverArg, ModeArg, Rng, EXIT_INTERRUPTED,
    EXIT_LAYOUT_CHANGED, STOP,
};
use hdrhistogram::Histogram;
use io_uring::{opcode, types, IoUring};
use serde::Serialize;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};
use swapdio::fault::FaultConfig;
use swapdio::linux::check::mode_name;
use swapdio::linux::direct::{Arena, Target};
use swapdio::linux::guard::SwapFileGuard;
use swapdio::linux::mkswap::parse_size;
use swapdio::{Folio, FolioId, FsContext, MapEntry, PageOps, StorageConfig, SwapEvent, SwapMap, PAGE_SIZE};

mod nbd;

const PAGE: u64 = PAGE_SIZE as u64;

/// Arguments of `swapdio bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Size of the swap file created in --dir (K/M/G/T suffixes, powers of 1024). Not
    /// with --file, whose size is what it is.
    #[arg(long, default_value = "1G", value_parser = parse_size, conflicts_with = "file")]
    pub size: u64,
    /// Duration of each measurement.
    #[arg(long, default_value = "2s", value_parser = crate::setup::parse_duration)]
    pub duration: Duration,
    /// Rounds per case: engine, raw loop and fio run in turn this many times and the
    /// median of each is reported (a busy machine shifts all three alike).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub rounds: u32,
    /// I/O mode.
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,
    /// Use this existing swap file (its data pages are overwritten), or an NBD export
    /// (`nbd://host[:port]/export`, `nbd+unix:///export?socket=PATH`; after `swapdio
    /// mkswap` on it), measured beside fio's nbd engine on the same export.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Directory to create the swap file in (removed at the end). Not with --file.
    #[arg(long, default_value = ".", conflicts_with = "file")]
    pub dir: PathBuf,
    /// Skip fio even when it is installed.
    #[arg(long)]
    pub no_fio: bool,
    /// Only the cases whose name contains this, compared loosely: case, spaces,
    /// dashes and `x` are ignored ("swap-in 4k random QD32", "swapin4krandomqd32" and
    /// "4k random" all match). No matching case is an error, before anything is created.
    #[arg(long)]
    pub only: Option<String>,
    /// Seed of the random positions.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Dir {
    Read,
    Write,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) dir: Dir,
    pub(crate) random: bool,
    /// Pages per request.
    pub(crate) pages: u32,
    pub(crate) qd: usize,
}

/// The extra case: `swapdio stress --queue-depth 32` on the same file (mixed single
/// pages and plugged runs of 8-32 pages, both ways, every page verified), compared with
/// the engine's 4k random QD32 figure.
const STRESS_CASE: &str = "stress workload QD32";

pub(crate) const CASES: [Case; 6] = [
    Case { name: "swap-in  4k random QD1", dir: Dir::Read, random: true, pages: 1, qd: 1 },
    Case { name: "swap-in  4k random QD32", dir: Dir::Read, random: true, pages: 1, qd: 32 },
    Case { name: "swap-out 4k random QD1", dir: Dir::Write, random: true, pages: 1, qd: 1 },
    Case { name: "swap-out 4k random QD32", dir: Dir::Write, random: true, pages: 1, qd: 32 },
    Case { name: "swap-out seq 32x4k plugged QD8", dir: Dir::Write, random: false, pages: 32, qd: 8 },
    Case { name: "swap-in  seq 32x4k plugged QD8", dir: Dir::Read, random: false, pages: 32, qd: 8 },
];

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub(crate) struct Measure {
    pub(crate) iops: f64,
    pub(crate) mib_s: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
}

impl Measure {
    fn from_samples(ops: u64, bytes: u64, secs: f64, lat: &Histogram<u64>) -> Measure {
        Measure {
            iops: ops as f64 / secs,
            mib_s: bytes as f64 / secs / (1 << 20) as f64,
            p50_us: lat.value_at_quantile(0.50) as f64,
            p99_us: lat.value_at_quantile(0.99) as f64,
        }
    }
}

#[derive(Debug, Serialize)]
struct Row {
    case: Case,
    engine: Measure,
    raw: Option<Measure>,
    fio: Option<Measure>,
    engine_vs_fio: Option<f64>,
    engine_vs_raw: Option<f64>,
}

/// Where the next request of a case goes.
struct Positions {
    rng: Rng,
    next: u64,
    slots: u64,
    pages: u64,
    random: bool,
}

impl Positions {
    fn new(seed: u64, slots: u64, case: &Case) -> Positions {
        Positions { rng: Rng::with_seed(seed), next: 1, slots, pages: u64::from(case.pages), random: case.random }
    }

    /// First slot of the next request: its `pages` slots lie inside the map.
    fn next_slot(&mut self) -> u64 {
        let last = self.slots.saturating_sub(self.pages).max(1); // highest valid first slot
        if self.random {
            return self.rng.u64(1..=last.max(1));
        }
        if self.next > last {
            self.next = 1;
        }
        let s = self.next;
        self.next += self.pages;
        s
    }
}

// ---- through the engine ------------------------------------------------------------------

/// Page operations for the bench: only completions matter. Reads finish at `unlock`,
/// writes at `end_writeback` (the write prelude's unlock is not a completion).
struct BenchPages {
    dir: AtomicU8,
    done: Sender<u32>,
}

impl PageOps for BenchPages {
    fn set_uptodate(&self, _: FolioId) {}
    fn set_dirty(&self, _: FolioId) {}
    fn clear_reclaim(&self, _: FolioId) {}
    fn start_writeback(&self, _: FolioId) {}
    fn end_writeback(&self, f: FolioId) {
        let _ = self.done.send(f.0 as u32);
    }
    fn unlock(&self, f: FolioId) {
        if self.dir.load(Ordering::Relaxed) == 0 {
            let _ = self.done.send(f.0 as u32);
        }
    }
    fn pin(&self, _: FolioId) {}
    fn unpin(&self, _: FolioId) {}
    fn event(&self, _: SwapEvent) {}
}

type BenchEngine = crate::setup::SwapEngine<BenchPages>;

fn engine_case(
    engine: &BenchEngine,
    rx: &Receiver<u32>,
    case: &Case,
    slots: u64,
    seed: u64,
    d: Duration,
) -> Option<Measure> {
    engine.page_ops().dir.store(u8::from(case.dir == Dir::Write), Ordering::Relaxed);
    let pages = case.pages as usize;
    let mut pos = Positions::new(seed, slots, case);
    let mut remaining = vec![0usize; case.qd];
    let mut started = vec![Instant::now(); case.qd];
    let mut free: Vec<usize> = (0..case.qd).collect();
    let mut lat = latency_histogram().ok()?;
    let (mut ops, mut bytes) = (0u64, 0u64);
    let start = Instant::now();
    let deadline = start + d;
    let mut measuring = true;
    // Like fio's single thread, the bench thread reaps its own completions: it has
    // nothing else to do while it waits, so no completion is handed between threads.
    let mut fg = match engine.backend() {
        crate::setup::Driver::Uring(u) => Some(u.foreground()),
        crate::setup::Driver::Pread(_) | crate::setup::Driver::Nbd(_) => None,
    };
    loop {
        if measuring && (Instant::now() >= deadline || STOP.load(Ordering::Relaxed)) {
            measuring = false;
        }
        if measuring {
            // Under the foreground waiter nothing enters the kernel here: its next wait
            // submits everything issued in this pass with one io_uring_enter.
            while let Some(k) = free.pop() {
                let first = pos.next_slot();
                // Stamped before submission, as the raw loop does.
                started[k] = Instant::now();
                let mut plug = engine.plug();
                let mut queued = 0;
                for i in 0..pages {
                    // Request k's folios are arena pages k*pages.., contiguous.
                    let folio = Folio::small((k * pages + i) as u64, first + i as u64);
                    let r = match case.dir {
                        Dir::Write => plug.write(folio, FsContext::MayEnterFs),
                        Dir::Read => plug.read(folio),
                    };
                    if r.is_err() {
                        break;
                    }
                    queued += 1;
                }
                drop(plug);
                if queued == 0 {
                    // The pool frees a request just after its completions arrive.
                    free.push(k);
                    if free.len() == case.qd {
                        std::thread::yield_now();
                        continue;
                    }
                    break;
                }
                remaining[k] = queued;
            }
        } else if free.len() == case.qd {
            break;
        }
        let p = match fg.as_mut() {
            None => rx.recv_timeout(Duration::from_secs(5)).ok(),
            Some(fg) => {
                let give_up = Instant::now() + Duration::from_secs(5);
                loop {
                    if let Ok(p) = rx.try_recv() {
                        break Some(p);
                    }
                    if Instant::now() >= give_up {
                        break None;
                    }
                    fg.wait(Duration::from_millis(1));
                }
            }
        };
        let Some(p) = p else { break };
        let mut handle = |p: u32| {
            let k = p as usize / pages;
            remaining[k] -= 1;
            if remaining[k] == 0 {
                free.push(k);
                if measuring {
                    ops += 1;
                    bytes += pages as u64 * PAGE;
                    record_latency(&mut lat, started[k]);
                }
            }
        };
        handle(p);
        while let Ok(p) = rx.try_recv() {
            handle(p);
        }
    }
    Some(Measure::from_samples(ops, bytes, d.as_secs_f64().min(start.elapsed().as_secs_f64()), &lat))
}

// ---- raw io_uring loop (no engine) ---------------------------------------------------------

pub(crate) fn raw_case(
    target: &Target,
    map: &SwapMap<Vec<MapEntry>>,
    arena: &Arena,
    case: &Case,
    seed: u64,
    d: Duration,
) -> Option<Measure> {
    let ring: IoUring = IoUring::builder().build((case.qd as u32).next_power_of_two().max(8)).ok()?;
    let iov = arena.register_iovecs();
    // SAFETY: the arena outlives the ring (it is dropped at the end of this function,
    // after every request has been reaped below).
    unsafe { ring.submitter().register_buffers(&iov) }.ok()?;
    ring.submitter().register_files(&[target.handle().as_raw_fd()]).ok()?;
    let len = case.pages * PAGE_SIZE as u32;
    let mut pos = Positions::new(seed, map.slots(), case);
    let mut started = vec![Instant::now(); case.qd];
    let mut lat = latency_histogram().ok()?;
    let (mut ops, mut in_flight) = (0u64, 0usize);
    let mut push = |ring: &IoUring, k: usize, started: &mut Vec<Instant>| -> bool {
        // The pages of one request lie in one extent of the map (as the engine's plug
        // guarantees); pick again otherwise.
        let at = loop {
            let s = pos.next_slot();
            match map.lookup(s) {
                Ok(run) if run.pages >= u64::from(case.pages) => break run.pos,
                _ => continue,
            }
        };
        let buf = arena.segment_ptr(FolioId((k * case.pages as usize) as u64), 0, len).unwrap_or(arena.base());
        let e = match case.dir {
            Dir::Read => opcode::ReadFixed::new(types::Fixed(0), buf, len, 0).offset(at).build(),
            Dir::Write => opcode::WriteFixed::new(types::Fixed(0), buf.cast_const(), len, 0).offset(at).build(),
        }
        .user_data(k as u64);
        started[k] = Instant::now();
        // SAFETY: the ring is used by this thread only; the buffer is registered arena
        // memory that outlives every request.
        unsafe { ring.submission_shared().push(&e) }.is_ok()
    };
    for k in 0..case.qd {
        if push(&ring, k, &mut started) {
            in_flight += 1;
        }
    }
    let start = Instant::now();
    let deadline = start + d;
    let mut errors = 0u64;
    while in_flight > 0 {
        if ring.submit_and_wait(1).is_err() {
            continue;
        }
        let done: Vec<(u64, i32)> = {
            // SAFETY: this thread is the only consumer of the completion queue.
            let cq = unsafe { ring.completion_shared() };
            cq.map(|c| (c.user_data(), c.result())).collect()
        };
        let measuring = Instant::now() < deadline && !STOP.load(Ordering::Relaxed);
        for (k, res) in done {
            in_flight -= 1;
            let k = k as usize;
            if res == len as i32 {
                ops += 1;
                record_latency(&mut lat, started[k]);
            } else {
                errors += 1;
            }
            if measuring && push(&ring, k, &mut started) {
                // Entered at once, like fio's default `iodepth_batch_submit=1` (and the
                // engine's foreground waiter): the device starts on it without waiting
                // for the rest of the batch.
                let _ = ring.submit();
                in_flight += 1;
            }
        }
    }
    if errors > 0 {
        errln!("swapdio bench: raw loop saw {errors} failed requests in {}", case.name);
    }
    let secs = d.as_secs_f64().min(start.elapsed().as_secs_f64());
    Some(Measure::from_samples(ops, ops * u64::from(len), secs, &lat))
}

// ---- fio --------------------------------------------------------------------------------------

pub(crate) fn fio_available() -> bool {
    std::process::Command::new("fio").arg("--version").output().map(|o| o.status.success()).unwrap_or(false)
}

/// `path` as a fio `--filename` value. fio splits that option on `:` (several files
/// for one job) unless the colon is escaped as `\:`, so `x:y.swap` would make fio
/// write into `x` and `y.swap` instead of the swap file. A path fio cannot take
/// unambiguously (not UTF-8, or holding a backslash that an escape would change) is
/// refused: the fio column is then skipped, never pointed at other files.
fn fio_filename(path: &Path) -> Option<String> {
    let s = path.to_str()?;
    if s.contains('\\') {
        return None;
    }
    Some(s.replace(':', "\\:"))
}

/// A case name reduced for loose `--only` matching: lower case, `sequential` as `seq`,
/// without spaces, dashes, underscores and the `x`/`×` of `32x4k` (so the README's and
/// the table's spellings both match).
fn loose(s: &str) -> String {
    s.to_ascii_lowercase()
        .replace("sequential", "seq")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() && *c != 'x')
        .collect()
}

/// The cases `--only` selects (all without it); an error when it matches none, naming
/// the cases there are.
fn selected_cases(only: Option<&str>, stress_matches: bool) -> Result<Vec<&'static Case>, String> {
    let Some(o) = only else { return Ok(CASES.iter().collect()) };
    let want = loose(o);
    let cases: Vec<&Case> = CASES.iter().filter(|c| loose(c.name).contains(&want)).collect();
    if cases.is_empty() && !stress_matches {
        let names: Vec<&str> = CASES.iter().map(|c| c.name).chain([STRESS_CASE]).collect();
        return Err(format!("--only {o:?} matches no case; the cases are: {}", names.join(", ")));
    }
    Ok(cases)
}

/// fio with io_uring and `O_DIRECT` on the swap file, the case's pattern past the header
/// page; `None` if fio fails or cannot be given the path unambiguously.
pub(crate) fn fio_case(path: &Path, file_size: u64, case: &Case, d: Duration) -> Option<Measure> {
    let target = [
        format!("--filename={}", fio_filename(path)?),
        "--ioengine=io_uring".into(),
        "--direct=1".into(),
        "--fixedbufs=1".into(),
        "--registerfiles=1".into(),
    ];
    run_fio("fio", &target, file_size, case, d)
}

/// Runs one fio job (`target`: where and with which engine) with the case's pattern
/// (direction, block size, queue depth) over `[PAGE, size)` for `d`; its measurement, or
/// `None` with fio's error (`what` names it) on stderr.
pub(crate) fn run_fio(what: &str, target: &[String], size: u64, case: &Case, d: Duration) -> Option<Measure> {
    let rw = match (case.dir, case.random) {
        (Dir::Read, true) => "randread",
        (Dir::Write, true) => "randwrite",
        (Dir::Read, false) => "read",
        (Dir::Write, false) => "write",
    };
    let pattern = [
        format!("--rw={rw}"),
        format!("--bs={}k", case.pages * 4),
        format!("--iodepth={}", case.qd),
        format!("--offset={PAGE}"),
        format!("--size={}", size.checked_sub(PAGE)?),
        format!("--runtime={}ms", d.as_millis()),
    ];
    let out = std::process::Command::new("fio")
        .arg("--name=swapdio-bench")
        .args(target)
        .args(pattern)
        .args(["--time_based=1", "--norandommap=1", "--randrepeat=0", "--output-format=json"])
        .output()
        .ok()?;
    if !out.status.success() {
        errln!("swapdio bench: {what} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        return None;
    }
    fio_measure(&String::from_utf8_lossy(&out.stdout), case)
}

/// The case's direction's IOPS, bandwidth and latency from fio's JSON output (fio may
/// print warnings before the JSON object).
fn fio_measure(text: &str, case: &Case) -> Option<Measure> {
    let json: serde_json::Value = serde_json::from_str(&text[text.find('{')?..]).ok()?;
    let job = &json["jobs"][0][match case.dir {
        Dir::Read => "read",
        Dir::Write => "write",
    }];
    let pct = |p: &str| job["clat_ns"]["percentile"][p].as_f64().unwrap_or(0.0) / 1000.0;
    Some(Measure {
        iops: job["iops"].as_f64()?,
        mib_s: job["bw_bytes"].as_f64()? / (1 << 20) as f64,
        p50_us: pct("50.000000"),
        p99_us: pct("99.000000"),
    })
}

// ---- the command ---------------------------------------------------------------------------

/// One table cell: IOPS, MiB/s, p50 and p99 latency (dashes when not measured).
fn cell(m: Option<Measure>) -> String {
    match m {
        Some(m) => format!("{:>8.0} {:>7.1} {:>6.0} {:>6.0}", m.iops, m.mib_s, m.p50_us, m.p99_us),
        None => format!("{:>8} {:>7} {:>6} {:>6}", "-", "-", "-", "-"),
    }
}

/// Prints the result table: per case three measured columns (`titles`) and the ratio
/// columns (`ratios`, two decimals, a dash when not measured).
pub(crate) fn print_table<'a>(
    titles: [&str; 3],
    ratios: &[&str],
    rows: impl Iterator<Item = (&'a str, [Option<Measure>; 3], Vec<Option<f64>>)>,
) {
    let ratio_cols = |v: Vec<String>| v.iter().map(|x| format!("{x:>6}")).collect::<Vec<_>>().join(" ");
    let [a, b, c] = titles;
    outln!(
        "{:<32} | {a:^30} | {b:^30} | {c:^30} | {}",
        "case",
        ratio_cols(ratios.iter().map(|r| r.to_string()).collect())
    );
    outln!("{}", units_row());
    for (name, [x, y, z], rs) in rows {
        let rs = rs.into_iter().map(|r| r.map_or("-".into(), |x| format!("{x:.2}"))).collect();
        outln!("{name:<32} | {} | {} | {} | {}", cell(x), cell(y), cell(z), ratio_cols(rs));
    }
}

/// The table's second header row: the units of each cell.
fn units_row() -> String {
    format!(
        "{:<32} | {:>8} {:>7} {:>6} {:>6} | (same columns)                 | (same columns)                 |",
        "", "IOPS", "MiB/s", "p50us", "p99us"
    )
}

/// The measurement with the median IOPS.
fn median(mut v: Vec<Measure>) -> Option<Measure> {
    v.sort_by(|a, b| a.iops.total_cmp(&b.iops));
    v.get(v.len() / 2).copied()
}

/// Why `bench` ended without its table.
enum Stopped {
    /// It could not run (exit status 2).
    Failed(String),
    /// The swap file's layout changed during the run; writing stopped (exit status
    /// [`EXIT_LAYOUT_CHANGED`], as `stress`).
    LayoutChanged(String),
}

impl From<String> for Stopped {
    fn from(e: String) -> Stopped {
        Stopped::Failed(e)
    }
}

impl From<&str> for Stopped {
    fn from(e: &str) -> Stopped {
        Stopped::Failed(e.to_string())
    }
}

/// Runs `swapdio bench`.
pub fn run(args: Args, json: bool) -> ExitCode {
    install_stop_handler();
    let (e, layout_changed) = match bench(&args, json) {
        Ok(()) if STOP.load(Ordering::Relaxed) => return ExitCode::from(EXIT_INTERRUPTED),
        Ok(()) => return ExitCode::SUCCESS,
        Err(Stopped::Failed(e)) => (e, false),
        Err(Stopped::LayoutChanged(e)) => (e, true),
    };
    if json {
        outln!("{}", serde_json::json!({"ok": false, "error": e, "layout_changed": layout_changed}));
    } else {
        errln!("swapdio bench: {e}");
    }
    ExitCode::from(if layout_changed { EXIT_LAYOUT_CHANGED } else { 2 })
}

fn bench(args: &Args, json: bool) -> Result<(), Stopped> {
    let run_stress = args.only.as_deref().is_none_or(|o| loose(STRESS_CASE).contains(&loose(o)));
    let cases = selected_cases(args.only.as_deref(), run_stress)?;
    if let Some(uri) = args.file.as_deref().map(crate::target::nbd_uri).transpose()?.flatten() {
        return Ok(nbd::bench(args, json, &uri, &cases)?);
    }
    let (path, shown, _created) = match &args.file {
        Some(p) => (p.clone(), p.display().to_string(), None),
        None => {
            let c = create_default_file(&args.dir, "bench", args.size, json)?;
            (c.path.clone(), c.shown.clone(), Some(c))
        }
    };
    let mut act = activate_for_io(&path, args.mode, json)?;
    let mode = act.report.mode;
    let slots = act.map.slots();
    let arena = Arc::new(Arena::new(32 * 32).map_err(|e| format!("arena: {e}"))?);
    let storage = StorageConfig { pool: 32, sync: 4, splits: 8 };
    let driver = make_driver(DriverArg::Uring, &act, &arena, storage, FaultConfig::NONE, json)?;
    if driver.name() != "uring" {
        return Err("io_uring is unavailable: nothing to compare".into());
    }
    let raw_target = open_target(&act)?;
    let raw_map = SwapMap::new(act.map.entries().to_vec(), mode).map_err(|e| e.to_string())?;
    let (tx, rx) = channel();
    let engine = make_engine(act.map, storage, driver, BenchPages { dir: AtomicU8::new(0), done: tx })?;
    let fio_name_ok = fio_filename(&path).is_some();
    if !fio_name_ok && !args.no_fio && !json {
        errln!("swapdio bench: fio cannot be given {} unambiguously: fio column skipped", path.display());
    }
    let fio = !args.no_fio && fio_name_ok && fio_available();
    if !json {
        errln!(
            "swapdio bench: {} ({} MiB, {} mode), {} per measurement, median of {} rounds, fio {}",
            shown,
            act.layout.file_size >> 20,
            mode_name(mode),
            show_duration(args.duration),
            args.rounds,
            if fio {
                "on the same file"
            } else if args.no_fio {
                "skipped"
            } else {
                "not installed (apt-get install -y fio)"
            }
        );
    }
    let mut rows = Vec::new();
    for case in cases {
        if STOP.load(Ordering::Relaxed) {
            break;
        }
        if !json {
            errln!("  {} ...", case.name);
        }
        let (mut es, mut raws, mut fios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..u64::from(args.rounds) {
            let seed = args.seed.wrapping_add(round);
            es.extend(engine_case(&engine, &rx, case, slots, seed, args.duration));
            raws.extend(raw_case(&raw_target, &raw_map, &arena, case, seed, args.duration));
            if fio {
                // fio writes through the file: in device mode the guard lifts the
                // immutable flag for it (the engine is idle meanwhile) and checks on
                // setting it again that the layout did not change.
                let frozen = act.guard.as_ref().is_some_and(SwapFileGuard::is_frozen);
                if let (true, Some(g)) = (frozen, act.guard.as_mut()) {
                    g.thaw().map_err(|e| e.to_string())?;
                }
                fios.extend(fio_case(&path, act.layout.file_size, case, args.duration));
                if let (true, Some(g)) = (frozen, act.guard.as_mut()) {
                    g.freeze().map_err(|e| e.to_string())?;
                    act.lease.verify().map_err(|e| Stopped::LayoutChanged(format!("{e} (while fio ran); stopped")))?;
                }
            }
        }
        // The layout must still be the one activated (else stop: later writes could
        // land where the file no longer is).
        act.lease.verify().map_err(|e| Stopped::LayoutChanged(format!("{e}; stopped after {}", case.name)))?;
        let Some(e) = median(es) else { continue };
        let (raw, f) = (median(raws), median(fios));
        rows.push(Row {
            case: *case,
            engine: e,
            raw,
            fio: f,
            engine_vs_fio: f.map(|f| e.iops / f.iops),
            engine_vs_raw: raw.map(|r| e.iops / r.iops),
        });
    }
    let _ = engine.deactivate();
    let driver_stats = engine.backend().stats();
    // Past this check the layout is the one activated: the report's lease is "unchanged".
    act.lease.verify().map_err(|e| Stopped::LayoutChanged(format!("{e}; stopped after the last case")))?;
    let file_size = act.layout.file_size;
    // The stress workload on the same file, in this run: the engine and the file's guard
    // are released first (stress takes them itself).
    drop(engine);
    drop(act.guard.take());
    let stress = if run_stress && !STOP.load(Ordering::Relaxed) {
        if !json {
            errln!("  {STRESS_CASE} ...");
        }
        let mut figures = Vec::new();
        for round in 0..u64::from(args.rounds) {
            if STOP.load(Ordering::Relaxed) {
                break;
            }
            let f = crate::stress::figure_for_bench(&path, args.mode, args.duration, args.seed.wrapping_add(round))?;
            if f.exit_status == EXIT_LAYOUT_CHANGED {
                return Err(Stopped::LayoutChanged("the layout changed during the stress workload; stopped".into()));
            }
            if f.exit_status != 0 {
                return Err(format!("the stress workload failed its checks (exit status {})", f.exit_status).into());
            }
            figures.push(f);
        }
        figures.sort_by(|a, b| a.pages_per_s.total_cmp(&b.pages_per_s));
        figures.get(figures.len() / 2).copied()
    } else {
        None
    };
    // The engine's 4k random QD32 figure: the mean of swap-in and swap-out (stress mixes both).
    let qd32: Vec<f64> =
        rows.iter().filter(|r| r.case.qd == 32 && r.case.pages == 1 && r.case.random).map(|r| r.engine.iops).collect();
    let qd32_mean = (qd32.len() == 2).then(|| qd32.iter().sum::<f64>() / 2.0);
    let stress_vs_qd32 = stress.zip(qd32_mean).map(|(s, q)| s.pages_per_s / q);
    if json {
        let v = serde_json::json!({
            "file": shown,
            "file_size": file_size,
            "mode": mode_name(mode),
            "duration_s": args.duration.as_secs_f64(),
            "rounds": args.rounds,
            "rows": rows,
            "stress": stress,
            "qd32_pages_per_s": qd32_mean,
            "stress_vs_qd32": stress_vs_qd32,
            "driver_stats": driver_stats,
            "lease": "unchanged",
        });
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    print_table(
        ["engine+io_uring", "raw io_uring loop", "fio (io_uring)"],
        &["e/raw", "e/fio"],
        rows.iter().map(|r| (r.case.name, [Some(r.engine), r.raw, r.fio], vec![r.engine_vs_raw, r.engine_vs_fio])),
    );
    if let Some(s) = stress {
        outln!(
            "{:<32} | {:>8.0} {:>7.1} {:>6} {:>6} | pages/s both ways, verified; 4k random QD32 (in+out)/2: {} pages/s; stress/QD32 {}",
            STRESS_CASE,
            s.pages_per_s,
            s.mib_s,
            s.p50_us,
            s.p99_us,
            qd32_mean.map_or("-".into(), |q| format!("{q:.0}")),
            stress_vs_qd32.map_or("-".into(), |x| format!("{x:.2}")),
        );
    }
    outln!("layout lease: unchanged; driver: {}", counters_text(&driver_stats));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_fio_filename_escapes_colons_so_fio_opens_one_file() {
        assert_eq!(fio_filename(Path::new("x:y.swap")).as_deref(), Some("x\\:y.swap"));
        assert_eq!(fio_filename(Path::new("/a:b/c:d")).as_deref(), Some("/a\\:b/c\\:d"));
        assert_eq!(fio_filename(Path::new("plain.swap")).as_deref(), Some("plain.swap"));
        assert_eq!(fio_filename(Path::new("back\\slash:x")), None);
    }

    #[test]
    fn bench_only_matches_loosely_and_fails_on_no_match() {
        let names = |o: &str| selected_cases(Some(o), false).map(|v| v.iter().map(|c| c.name).collect::<Vec<_>>());
        assert_eq!(names("swap-in 4k random QD32").unwrap(), vec!["swap-in  4k random QD32"]);
        assert_eq!(names("swapin-4k-random-qd1").unwrap(), vec!["swap-in  4k random QD1"]);
        assert_eq!(names("swap-in 4k random").unwrap().len(), 2);
        assert_eq!(names("seq 32x4k").unwrap().len(), 2);
        // The README's spelling.
        assert_eq!(names("swap-out sequential 32×4k plugged QD8").unwrap(), vec!["swap-out seq 32x4k plugged QD8"]);
        assert_eq!(names("SWAP-OUT SEQ").unwrap(), vec!["swap-out seq 32x4k plugged QD8"]);
        let err = names("nothing like it").unwrap_err();
        assert!(err.contains("matches no case") && err.contains("swap-in  4k random QD1"), "{err}");
        assert_eq!(selected_cases(None, true).unwrap().len(), CASES.len());
    }
}
