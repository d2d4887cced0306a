//! `swapdio stress` — the main job: a verified swap-out/swap-in workload on a real swap
//! file, through the engine and the io_uring (or pread) driver.
//!
//! With no arguments: creates an anonymous 256 MiB swap file (`O_TMPFILE`) in the current directory, activates
//! it (layout probe + the core's activation, the kernel's swapon arithmetic), and for
//! 10 s mixes random and sequential (plugged) swap-outs and swap-ins of folios of mixed
//! sizes (`--folio-pages`, default 1, 2, 4, 8 and 16 pages; a folio crossing an extent
//! boundary is split by the engine). Every page written is stamped with its slot and a
//! generation; every page read back is checked against the latest generation written to
//! that slot, and a final pass reads back every slot ever written. A failed write leaves
//! the whole folio dirty (the kernel's redirty rule) and it is written again later. The file has no name and vanishes with the process (also after an error,
//! ctrl-c or kill -9). Exits non-zero on any mismatch, lost page, page-rule violation or moved extent.

mod folios;
mod pages;
mod report;
mod work;

use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::{Duration, Instant};
use swapdio::fault::{FaultConfig, FaultKinds};
use swapdio::linux::check::mode_name;
use swapdio::linux::direct::Arena;
use swapdio::linux::mkswap::parse_size;
use swapdio::linux::uring::UringBackend;
use swapdio::{StorageConfig, PAGE_SIZE};

use crate::setup::{
    activate_for_io, create_default_file, install_stop_handler, make_driver, make_engine, parse_duration,
    protect_file_mode, show_duration, Driver, DriverArg, LayoutWatch, ModeArg, STOP,
};
use folios::{FolioMix, DEFAULT_MIX};
use pages::StressPages;
pub use report::StressFigure;
use report::{measure_capacity, print_report, Outcome, Report};
use work::{arena_pages, Issued, Work};

const PAGE: usize = PAGE_SIZE;

// ---- the workload ---------------------------------------------------------------------------

/// Arguments of `swapdio stress`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Size of the swap file created in --dir (K/M/G suffixes). Not with --file, whose
    /// size is what it is.
    #[arg(long, default_value = "256M", value_parser = parse_size, conflicts_with = "file")]
    pub size: u64,
    /// How long the mixed workload runs (e.g. 10s, 500ms, 1m); a final pass then reads
    /// back every slot written.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Requests in flight (the engine's request pool).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub queue_depth: u32,
    /// I/O mode.
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,
    /// Driver.
    #[arg(long, value_enum, default_value_t = DriverArg::Uring)]
    pub driver: DriverArg,
    /// Driver-level fault rate per request (e.g. 0.01): EIO, EAGAIN and short transfers.
    /// Failed writes are redirtied and written again; nothing may be lost.
    #[arg(long, default_value_t = 0.0)]
    pub inject_faults: f64,
    /// Seed of the workload and of the fault plan (default: from the clock, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Use this existing swap file instead of creating one (it is not removed; its
    /// contents are overwritten).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Directory to create the swap file in. Not with --file.
    #[arg(long, default_value = ".", conflicts_with = "file")]
    pub dir: PathBuf,
    /// Skip measuring the device's capacity (a raw io_uring loop, 4k random at QD 32,
    /// 0.5 s each way, before the workload) that the report sets the throughput beside.
    #[arg(long)]
    pub no_capacity: bool,
    /// Folio sizes in pages, powers of two up to 512 (the kernel's mTHP orders): each
    /// swap-out or swap-in draws one size uniformly from the list (repeat a size to
    /// weight it) and moves folios of that size at slots aligned to it; a folio crossing
    /// an extent boundary is split by the engine.
    #[arg(long, default_value = DEFAULT_MIX, value_parser = FolioMix::parse)]
    pub folio_pages: FolioMix,
}

/// The stress workload exactly as `swapdio stress --file FILE --queue-depth 32` runs it
/// (io_uring, foreground, verified), quietly, for `bench`'s side-by-side figure.
pub fn figure_for_bench(
    file: &std::path::Path,
    mode: ModeArg,
    duration: Duration,
    seed: u64,
) -> Result<StressFigure, String> {
    let args = Args {
        size: 0,
        duration,
        queue_depth: 32,
        mode,
        driver: DriverArg::Uring,
        inject_faults: 0.0,
        seed: Some(seed),
        file: Some(file.to_path_buf()),
        dir: PathBuf::from("."),
        no_capacity: true,
        folio_pages: FolioMix::parse(DEFAULT_MIX)?,
    };
    let r = stress(&args, true)?;
    let secs = r.duration_s.max(1e-9);
    Ok(StressFigure {
        pages_per_s: (r.pages_out + r.pages_in) as f64 / secs,
        mib_s: r.mib_out_per_s + r.mib_in_per_s,
        p50_us: r.latency_us_p50,
        p99_us: r.latency_us_p99,
        exit_status: r.exit_status,
    })
}

/// Runs `swapdio stress`.
pub fn run(args: Args, json: bool) -> ExitCode {
    install_stop_handler();
    match stress(&args, json) {
        Ok(report) => {
            print_report(&report, json);
            ExitCode::from(report.exit_status)
        }
        Err(e) => {
            if json {
                outln!("{}", serde_json::json!({"ok": false, "error": e}));
            } else {
                errln!("swapdio stress: {e}");
            }
            ExitCode::from(2)
        }
    }
}

fn stress(args: &Args, json: bool) -> Result<Report, String> {
    if !(0.0..=1.0).contains(&args.inject_faults) {
        return Err(format!("--inject-faults {} must be between 0 and 1", args.inject_faults));
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    // The swap file: the caller's, or a fresh anonymous one that is gone when `_created` drops.
    let (path, shown, _created) = match &args.file {
        Some(p) => (p.clone(), p.display().to_string(), None),
        None => {
            let c = create_default_file(&args.dir, "stress", args.size, json)?;
            (c.path.clone(), c.shown.clone(), Some(c))
        }
    };
    if STOP.load(Ordering::SeqCst) {
        return Err("interrupted".into());
    }
    let mut act = activate_for_io(&path, args.mode, json)?;
    // Slot 0 is the header; a folio of n pages starts at a multiple of n.
    let smallest = args.folio_pages.min();
    if act.map.slots() / u64::from(smallest) < 2 {
        return Err(format!(
            "{shown} has {} usable pages: too small for folios of {smallest} pages (--folio-pages)",
            act.report.usable_pages
        ));
    }
    let qd = args.queue_depth as usize;
    let arena_pages = arena_pages(qd, args.folio_pages.max());
    let arena = Arc::new(Arena::new(arena_pages).map_err(|e| format!("cannot map {arena_pages} pages: {e}"))?);
    let storage = StorageConfig { pool: qd, sync: 4, splits: qd };
    let faults = FaultConfig {
        rate_ppm: (args.inject_faults * 1e6).round() as u32,
        seed,
        kinds: FaultKinds::EIO | FaultKinds::EAGAIN | FaultKinds::SHORT,
    };
    let capacity = if args.no_capacity || act.nbd.is_some() { None } else { measure_capacity(&act, &arena, seed) };
    let driver = make_driver(args.driver, &act, &arena, storage, faults, json)?;
    // File mode writes through the driver's descriptor, open now: from here on nobody
    // else may open the file for writing (no hole punch, truncate or swapon).
    let protection = protect_file_mode(&mut act, json);
    let driver_name = driver.name();
    let (tx, rx) = channel();
    let mode = act.report.mode;
    let engine = make_engine(act.map, storage, driver, StressPages::new(arena_pages, tx))?;
    if !json {
        errln!(
            "swapdio stress: {} ({} usable pages, {} extent(s)), {} mode, {} driver, QD {}, folios of {} pages, {}, seed {}{}",
            shown,
            act.report.usable_pages,
            act.report.extents,
            mode_name(mode),
            driver_name,
            qd,
            args.folio_pages.text(),
            show_duration(args.duration),
            seed,
            if faults.rate_ppm > 0 { format!(", faults {} ppm", faults.rate_ppm) } else { String::new() }
        );
    }
    // The driver's fast path: with io_uring this thread submits and reaps itself.
    let uring = match engine.backend() {
        Driver::Uring(u) => Some(Arc::clone(u)),
        _ => None,
    };
    let mut w = Work::new(
        uring.as_deref().map(UringBackend::foreground),
        engine.clone(),
        arena,
        rx,
        args.folio_pages.clone(),
        seed,
        qd,
    )?;
    // A block device's bad pages are not in the map: never written, read or verified.
    if act.report.bad_pages > 0 {
        for s in (1..engine.map().slots()).filter(|&s| !engine.map().is_usable(s)) {
            w.slots[s as usize].busy = true;
        }
    }

    let bar = if json { ProgressBar::hidden() } else { ProgressBar::new(args.duration.as_millis() as u64) };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let start = Instant::now();
    let deadline = start.checked_add(args.duration).ok_or("--duration is too long for this clock")?;
    let mut last_draw = start;
    let mut watch = LayoutWatch::new(Duration::from_millis(500));
    let mut layout_changed = None;
    while Instant::now() < deadline && !STOP.load(Ordering::Relaxed) {
        let mut progressed = w.drain_ready() > 0;
        if let Some(change) = watch.poll(&act.lease, act.guard.as_ref(), w.counts.errors()) {
            layout_changed = Some(change);
            break;
        }
        let mut idle_tries = 0;
        let mut blocked = false;
        while w.in_flight_ops < qd && idle_tries < 8 {
            match w.issue_one() {
                Issued::Yes => progressed = true,
                Issued::Blocked => {
                    blocked = true;
                    break;
                }
                // Nothing eligible for that op (e.g. no slot written yet for a read).
                Issued::Nothing => idle_tries += 1,
            }
        }
        // The pool frees a request just after its folios' completions arrive: when
        // blocked by it, look again very soon instead of sleeping.
        let nap = if blocked { Duration::from_micros(100) } else { Duration::from_millis(50) };
        if !progressed && !w.wait_one(nap) && w.stalled() {
            return Err(format!("no completion for 30 s with {} requests outstanding", w.in_flight_ops));
        }
        let now = Instant::now();
        if now.duration_since(last_draw) >= Duration::from_millis(200) {
            last_draw = now;
            let st = engine.stats();
            let secs = now.duration_since(start).as_secs_f64().max(1e-3);
            bar.set_position(now.duration_since(start).as_millis() as u64);
            bar.set_message(format!(
                "out {:.0} pages/s, in {:.0} pages/s, mismatches {}",
                st.pages_out as f64 / secs,
                st.pages_in as f64 / secs,
                w.counts.mismatches
            ));
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let timed = engine.stats();
    let latencies = w.latencies.clone();
    // The write-back and read-back get as long as the workload had, at least 30 s.
    w.end_by = Instant::now() + args.duration.max(Duration::from_secs(30));
    // Write back whatever is still dirty, then read back every slot ever written.
    w.drain_all();
    let mut to_verify = 0;
    // No write after a layout change: the blocks may no longer be the file's.
    if layout_changed.is_none() {
        layout_changed = act.lease.verify().err().map(|e| e.to_string());
    }
    if !STOP.load(Ordering::Relaxed) && layout_changed.is_none() {
        bar.set_message("writing back dirty pages");
        w.flush_dirty();
        to_verify = w.final_pass(&bar);
    }
    w.drain_all();
    bar.finish_and_clear();
    let interrupted = STOP.load(Ordering::Relaxed);
    let end_timed_out = !interrupted && Instant::now() >= w.end_by;
    // Hand completions back to the reaper before deactivating.
    w.fg = None;

    let deactivated = {
        let t = Instant::now();
        loop {
            match engine.deactivate() {
                Ok(()) => break true,
                Err(_) if t.elapsed() < Duration::from_secs(10) => std::thread::sleep(Duration::from_millis(1)),
                Err(_) => break false,
            }
        }
    };
    let lease = match (&layout_changed, act.lease.verify()) {
        (Some(change), _) => format!("CHANGED during the run, writing stopped: {change}"),
        (None, Ok(())) => "unchanged".to_string(),
        (None, Err(e)) => format!("CHANGED: {e}"),
    };
    let driver_stats = engine.backend().stats();
    let nbd = crate::target::nbd_stats(engine.backend());
    let pages = engine.page_ops();
    let violations = pages.violations.load(Ordering::Relaxed) + u64::from(!deactivated);
    let pins_leaked = pages.pins_held();
    let slots_written = w.slots.iter().filter(|s| s.committed > 0).count() as u64;
    let unwritten_dirty = w.dirty_pages();
    let lost = w.lost;
    // Written, committed slots the final pass could not read back (every read failed,
    // or the run was stopped or timed out first): not known to be lost, not verified.
    let unverified = to_verify.saturating_sub(w.verified + lost);
    let counts = w.counts;
    let mismatches = counts.mismatches;
    let errors = counts.errors();
    let failed = mismatches > 0
        || lost > 0
        || violations > 0
        || pins_leaked != 0
        || lease != "unchanged"
        || counts.submit_errors > 0;
    // Nothing wrong found, but not everything could be checked.
    let skipped_verify = layout_changed.is_some() || interrupted;
    let inconclusive = unverified > 0 || unwritten_dirty > 0 || timed.pages_out == 0 || end_timed_out;
    let outcome = if layout_changed.is_some() {
        Outcome::LayoutChanged
    } else if failed {
        Outcome::Failed
    } else if interrupted {
        Outcome::Interrupted
    } else if inconclusive || skipped_verify {
        Outcome::Unverified
    } else {
        Outcome::Ok
    };
    Ok(Report {
        ok: outcome == Outcome::Ok,
        outcome,
        exit_status: outcome.exit_status(),
        file: shown,
        created: args.file.is_none(),
        size_bytes: act.layout.file_size,
        mode: mode_name(mode),
        driver: driver_name,
        queue_depth: args.queue_depth,
        duration_s: elapsed,
        seed,
        inject_faults_ppm: faults.rate_ppm,
        usable_pages: act.report.usable_pages,
        extents: act.report.extents,
        pages_out: timed.pages_out,
        pages_in: timed.pages_in,
        pages_out_per_s: timed.pages_out as f64 / elapsed,
        pages_in_per_s: timed.pages_in as f64 / elapsed,
        mib_out_per_s: (timed.pages_out * PAGE as u64) as f64 / elapsed / (1 << 20) as f64,
        mib_in_per_s: (timed.pages_in * PAGE as u64) as f64 / elapsed / (1 << 20) as f64,
        latency_us_p50: latencies.value_at_quantile(0.50),
        latency_us_p99: latencies.value_at_quantile(0.99),
        latency_us_max: latencies.max(),
        latency_samples: latencies.len(),
        requests: engine.stats().requests_submitted,
        counts,
        folio_pages: args.folio_pages.text(),
        folio_sizes: w.sizes.used(),
        errors,
        mismatches,
        mismatch_examples: w.mismatch_examples.clone(),
        slots_written,
        verified_pages: w.verified,
        lost_pages: lost,
        unverified_pages: unverified,
        unwritten_dirty_pages: unwritten_dirty,
        end_phase_timed_out: end_timed_out,
        page_rule_violations: violations,
        pins_leaked,
        lease,
        protection,
        capacity,
        vs_capacity: capacity.map(|c| {
            (timed.pages_out + timed.pages_in) as f64 / elapsed / ((c.in_pages_per_s + c.out_pages_per_s) / 2.0)
        }),
        layout_changed: layout_changed.is_some(),
        interrupted,
        driver_stats,
        nbd,
    })
}
