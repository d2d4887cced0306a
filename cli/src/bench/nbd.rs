//! `swapdio bench --file nbd://...`: the engine and the NBD driver against an NBD
//! export, side by side in the same run with fio's `nbd` engine (libnbd, no swapdio)
//! on the same server and export: the raw baseline of the network path.
//!
//! Same cases as for a file. fio's `nbd` engine uses one connection, so the engine is
//! measured on one connection too (the comparison), and, when the server sets
//! `NBD_FLAG_CAN_MULTI_CONN`, also on `NbdConfig::connections` connections.

use super::{engine_case, median, BenchEngine, BenchPages, Case, Measure};
use crate::setup::{activate_for_io, counters_text, make_engine, show_duration, Driver, STOP};
use serde::Serialize;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::Duration;
use swapdio::linux::direct::Arena;
use swapdio::linux::nbd::{NbdBackend, NbdConfig, NbdUri};
use swapdio::StorageConfig;

/// fio with its `nbd` engine on `uri`, the case's pattern over the export past the
/// header page; `None` if fio or its nbd engine is missing or fails.
fn fio_nbd_case(uri: &NbdUri, size: u64, case: &Case, d: Duration) -> Option<Measure> {
    super::run_fio("fio (nbd engine)", &["--ioengine=nbd".into(), format!("--uri={uri}")], size, case, d)
}

#[derive(Debug, Serialize)]
struct NbdRow {
    case: Case,
    /// The engine on one connection, as fio.
    engine: Measure,
    /// The engine on several connections (multi-conn servers only).
    engine_multi_conn: Option<Measure>,
    /// fio's nbd engine, one connection.
    fio: Option<Measure>,
    engine_vs_fio: Option<f64>,
}

struct Rig {
    nbd: Arc<NbdBackend>,
    engine: Arc<BenchEngine>,
    rx: Receiver<u32>,
}

fn rig(uri: &NbdUri, act: &crate::setup::Activated, connections: usize) -> Result<Rig, String> {
    let arena = Arc::new(Arena::new(32 * 32).map_err(|e| format!("arena: {e}"))?);
    let storage = StorageConfig { pool: 32, sync: 4, splits: 8 };
    let config = NbdConfig { connections, ..NbdConfig::for_storage(storage) };
    let nbd = Arc::new(NbdBackend::new(uri, arena, config).map_err(|e| format!("{uri}: {e}"))?);
    let map = swapdio::SwapMap::new(act.map.entries().to_vec(), act.report.mode).map_err(|e| e.to_string())?;
    let (tx, rx) = channel();
    let pages = BenchPages { dir: AtomicU8::new(0), done: tx };
    let engine = make_engine(map, storage, Driver::Nbd(nbd.clone()), pages)?;
    Ok(Rig { nbd, engine, rx })
}

/// The bench on an export.
pub fn bench(args: &super::Args, json: bool, uri: &NbdUri, cases: &[&'static Case]) -> Result<(), String> {
    let path = std::path::PathBuf::from(uri.to_string());
    let act = activate_for_io(&path, args.mode, json)?;
    let slots = act.map.slots();
    let size = act.layout.file_size;
    let one = rig(uri, &act, 1)?;
    let multi = if one.nbd.export().can_multi_conn() { Some(rig(uri, &act, 4)?) } else { None };
    let fio = !args.no_fio && super::fio_available();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    if !json {
        errln!(
            "swapdio bench: {uri} ({} MiB export, multi-conn {}, structured replies {}), {} per measurement, \
             median of {} rounds, baseline fio nbd engine {}; load average {}",
            size >> 20,
            if multi.is_some() { "allowed: also measured on 4 connections" } else { "not allowed" },
            if one.nbd.export().structured { "on" } else { "off" },
            show_duration(args.duration),
            args.rounds,
            if fio { "on the same export" } else { "skipped (no fio)" },
            load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
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
        let (mut es, mut ms, mut fios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..u64::from(args.rounds) {
            let seed = args.seed.wrapping_add(round);
            es.extend(engine_case(&one.engine, &one.rx, case, slots, seed, args.duration));
            if let Some(m) = &multi {
                ms.extend(engine_case(&m.engine, &m.rx, case, slots, seed, args.duration));
            }
            if fio {
                fios.extend(fio_nbd_case(uri, size, case, args.duration));
            }
        }
        let Some(e) = median(es) else { continue };
        let f = median(fios);
        rows.push(NbdRow {
            case: **case,
            engine: e,
            engine_multi_conn: median(ms),
            fio: f,
            engine_vs_fio: f.map(|f| e.iops / f.iops),
        });
    }
    let mut driver_stats = Vec::new();
    for r in std::iter::once(&one).chain(multi.as_ref()) {
        let _ = r.engine.deactivate();
        driver_stats.push((r.nbd.connections(), r.nbd.stats(), r.nbd.nbd_stats()));
    }
    if json {
        let v = serde_json::json!({
            "target": uri.to_string(),
            "export_size": size,
            "baseline": "fio --ioengine=nbd (one connection)",
            "duration_s": args.duration.as_secs_f64(),
            "rounds": args.rounds,
            "load_average": load.trim(),
            "rows": rows,
            "drivers": driver_stats.iter().map(|(c, d, n)| serde_json::json!({"connections": c, "driver_stats": d, "nbd_stats": n})).collect::<Vec<_>>(),
        });
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    super::print_table(
        ["engine+nbd, 1 connection", "fio nbd engine, 1 connection", "engine+nbd, 4 connections"],
        &["e/fio"],
        rows.iter().map(|r| (r.case.name, [Some(r.engine), r.fio, r.engine_multi_conn], vec![r.engine_vs_fio])),
    );
    for (c, d, n) in &driver_stats {
        outln!("{c} connection(s): driver {}; nbd {}", counters_text(d), counters_text(n));
    }
    Ok(())
}
