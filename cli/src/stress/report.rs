//! What a `swapdio stress` run reports: its outcome and exit status, the report (text
//! and JSON), the device capacity it sets the throughput beside, and the figure `bench`
//! takes from it.

use serde::Serialize;
use std::time::Duration;
use swapdio::linux::direct::{Arena, DriverStats};

use super::folios::SizeCounts;
use super::work::Counts;
use crate::setup::{EXIT_INTERRUPTED, EXIT_LAYOUT_CHANGED};

/// How a run ended, and its exit status (documented in the README and `--help`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Everything written was read back intact: exit 0.
    Ok,
    /// A check failed (mismatch, lost page, page rule, leaked pin, submit error): exit 1.
    Failed,
    /// Nothing wrong was found but not everything could be checked (pages that could not
    /// be written back or read back, nothing written at all, or the end phase timed out): exit 3.
    Unverified,
    /// The layout changed during the run: exit 4.
    LayoutChanged,
    /// Stopped by SIGINT/SIGTERM/SIGHUP before the end: exit 130.
    Interrupted,
}

impl Outcome {
    pub fn exit_status(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::Failed => 1,
            Outcome::Unverified => EXIT_UNVERIFIED,
            Outcome::LayoutChanged => EXIT_LAYOUT_CHANGED,
            Outcome::Interrupted => EXIT_INTERRUPTED,
        }
    }
}

/// Exit status of a run that found nothing wrong but could not check everything.
const EXIT_UNVERIFIED: u8 = 3;

#[derive(Serialize)]
pub struct Report {
    pub ok: bool,
    pub outcome: Outcome,
    pub exit_status: u8,
    pub file: String,
    pub created: bool,
    pub size_bytes: u64,
    pub mode: &'static str,
    pub driver: &'static str,
    pub queue_depth: u32,
    pub duration_s: f64,
    pub seed: u64,
    pub inject_faults_ppm: u32,
    pub usable_pages: u64,
    pub extents: u64,
    pub pages_out: u64,
    pub pages_in: u64,
    pub pages_out_per_s: f64,
    pub pages_in_per_s: f64,
    pub mib_out_per_s: f64,
    pub mib_in_per_s: f64,
    pub latency_us_p50: u64,
    pub latency_us_p99: u64,
    pub latency_us_max: u64,
    pub latency_samples: u64,
    pub requests: u64,
    /// Per folio, over the whole run (workload, write-back and final read-back).
    pub counts: Counts,
    /// The `--folio-pages` mix.
    pub folio_pages: String,
    /// Per folio size that moved anything, over the whole run.
    pub folio_sizes: Vec<SizeCounts>,
    pub errors: u64,
    pub mismatches: u64,
    pub mismatch_examples: Vec<String>,
    pub slots_written: u64,
    pub verified_pages: u64,
    /// Read back at the end with content other than the last committed write.
    pub lost_pages: u64,
    /// Written pages the final pass could not read back (all reads failed, or stopped
    /// early): neither verified nor known to be lost.
    pub unverified_pages: u64,
    /// Pages whose every write failed: still only in memory (not lost), never written.
    pub unwritten_dirty_pages: u64,
    /// The write-back/read-back phase hit its deadline.
    pub end_phase_timed_out: bool,
    pub page_rule_violations: u64,
    pub pins_leaked: i64,
    pub lease: String,
    /// What kept others from changing the file during the run: `immutable` (device
    /// mode), `append-only` (file mode), or `none (why)`.
    pub protection: String,
    /// The device's capacity measured before the run (`None` with `--no-capacity`).
    pub capacity: Option<Capacity>,
    /// Pages/s both ways over the capacity's mean of swap-in and swap-out pages/s.
    pub vs_capacity: Option<f64>,
    /// The layout changed during the run (exit status 4): writing stopped, the final
    /// read-back was skipped.
    pub layout_changed: bool,
    pub interrupted: bool,
    pub driver_stats: DriverStats,
    /// NBD targets: connections, losses, reconnects, FUA writes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbd: Option<swapdio::linux::nbd::NbdStats>,
}

/// The device's capacity the throughput is set beside: a raw io_uring loop (no engine)
/// on the same target, 4 KiB random requests at QD 32, swap-in then swap-out.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Capacity {
    pub in_pages_per_s: f64,
    pub out_pages_per_s: f64,
}

/// Measures [`Capacity`] for 0.5 s each way before the workload (the slots hold no
/// data yet). `None` if io_uring or the target is unavailable.
pub fn measure_capacity(act: &crate::setup::Activated, arena: &Arena, seed: u64) -> Option<Capacity> {
    use crate::bench::{raw_case, CASES};
    let target = crate::setup::open_target(act).ok()?;
    let map = swapdio::SwapMap::new(act.map.entries().to_vec(), act.report.mode).ok()?;
    let case = |name: &str| CASES.iter().find(|c| c.name.contains(name) && c.qd == 32 && c.pages == 1 && c.random);
    let d = Duration::from_millis(500);
    let rin = raw_case(&target, &map, arena, case("swap-in")?, seed, d)?;
    let rout = raw_case(&target, &map, arena, case("swap-out")?, seed, d)?;
    Some(Capacity { in_pages_per_s: rin.iops, out_pages_per_s: rout.iops })
}

/// What `bench` reports of one stress run on its file.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct StressFigure {
    /// Pages moved per second, both ways (the timed workload only).
    pub pages_per_s: f64,
    /// The same in MiB/s.
    pub mib_s: f64,
    /// Per-request latency percentiles (a request is one page or a plugged run).
    pub p50_us: u64,
    pub p99_us: u64,
    /// The run's exit status (0: every page verified).
    pub exit_status: u8,
}

pub fn print_report(r: &Report, json: bool) {
    if json {
        outln!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
        return;
    }
    outln!(
        "swapdio stress: {} mode, {} driver, QD {}, {:.1} s, seed {}",
        r.mode,
        r.driver,
        r.queue_depth,
        r.duration_s,
        r.seed
    );
    outln!(
        "  swap file       {} ({} usable pages, {} extent(s){})",
        r.file,
        r.usable_pages,
        r.extents,
        if r.created { ", removed" } else { "" }
    );
    outln!("  swap-out        {} pages, {:.0} pages/s ({:.1} MiB/s)", r.pages_out, r.pages_out_per_s, r.mib_out_per_s);
    outln!("  swap-in         {} pages, {:.0} pages/s ({:.1} MiB/s)", r.pages_in, r.pages_in_per_s, r.mib_in_per_s);
    if let (Some(c), Some(x)) = (r.capacity, r.vs_capacity) {
        outln!(
            "  capacity        raw io_uring 4k random QD32 before the run: in {:.0}, out {:.0} pages/s; this run {:.0} pages/s both ways = {x:.2}x",
            c.in_pages_per_s,
            c.out_pages_per_s,
            r.pages_in_per_s + r.pages_out_per_s
        );
    }
    outln!(
        "  latency         p50 {} us, p99 {} us, max {} us ({} requests; per request, submission to last page done)",
        r.latency_us_p50,
        r.latency_us_p99,
        r.latency_us_max,
        r.latency_samples
    );
    outln!("  folios          sizes {} pages (per size over the whole run: written, read, failed writes rewritten whole, split across extents)", r.folio_pages);
    for c in &r.folio_sizes {
        outln!(
            "    {:>3} pages     out {}, in {}, failed writes {}, failed reads {}, split {}",
            c.pages,
            c.folios_out,
            c.folios_in,
            c.write_failures,
            c.read_failures,
            c.split
        );
    }
    if r.inject_faults_ppm > 0 {
        outln!(
            "  faults          {} injected ({} ppm): {} failed writes rewritten ({} rewrites), {} failed reads, {} resubmitted short",
            r.driver_stats.injected,
            r.inject_faults_ppm,
            r.counts.write_failures,
            r.counts.rewrites,
            r.counts.read_failures,
            r.driver_stats.resubmitted
        );
    }
    outln!(
        "  errors          {} (write failures {}, read failures {}, submit errors {})",
        r.errors,
        r.counts.write_failures,
        r.counts.read_failures,
        r.counts.submit_errors
    );
    outln!(
        "  verified        {} of {} written slots read back intact at the end; lost {}, could not verify {}",
        r.verified_pages,
        r.slots_written,
        r.lost_pages,
        r.unverified_pages
    );
    if r.unwritten_dirty_pages > 0 {
        outln!(
            "  not written     {} dirty pages could not be written back (every rewrite failed); they were never on disk",
            r.unwritten_dirty_pages
        );
    }
    if r.end_phase_timed_out {
        outln!("  end phase       write-back and read-back stopped at their deadline");
    }
    outln!("  page rules      {} violations, {} pins leaked", r.page_rule_violations, r.pins_leaked);
    outln!("  layout lease    {}", r.lease);
    outln!("  protection      {}", r.protection);
    if let Some(n) = &r.nbd {
        outln!("{}", crate::target::nbd_stats_line(n));
    }
    outln!("  mismatches      {}", r.mismatches);
    for m in &r.mismatch_examples {
        outln!("    {m}");
    }
    if r.interrupted {
        outln!("  interrupted     stopped by a signal before the end; the final read-back was cut short or skipped");
    }
    outln!(
        "{} (exit status {})",
        match r.outcome {
            Outcome::Ok => "OK",
            Outcome::Failed => "FAILED",
            Outcome::Unverified => "UNVERIFIED: nothing wrong found, but not everything could be checked",
            Outcome::LayoutChanged => "STOPPED: the swap file's layout changed",
            Outcome::Interrupted => "INTERRUPTED",
        },
        r.exit_status
    );
}
