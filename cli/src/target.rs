//! Where a command's swap area is: a file or block device path, or an NBD export
//! written as a URI (`nbd://host[:port]/export`, `nbd+unix:///export?socket=PATH`).
//! Every command that takes a swap file takes either; this module resolves the string
//! and does the NBD side of each command, so the commands only branch once.

use crate::setup::{Activated, ModeArg};
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock, Weak};
use swapdio::fault::FaultConfig;
use swapdio::linux::check::CheckReport;
use swapdio::linux::direct::Arena;
use swapdio::linux::lease::LayoutLease;
use swapdio::linux::nbd::{self, NbdBackend, NbdConfig, NbdStats, NbdUri};
use swapdio::{ModeRequest, StorageConfig};

/// The export named by `path`, if it is an NBD URI; an error if it looks like one but
/// does not parse (a typo must not fall back to creating a local file of that name).
pub fn nbd_uri(path: &Path) -> Result<Option<NbdUri>, String> {
    let Some(s) = path.to_str() else { return Ok(None) };
    if !nbd::is_nbd_uri(s) {
        return Ok(None);
    }
    NbdUri::parse(s).map(Some).map_err(|e| format!("{s}: {e}"))
}

/// What was recorded at activation, checked again at the end of a run: a file's extent
/// layout, or an export's size and flags.
pub enum Lease {
    /// A swap file or block device: its FIEMAP layout.
    File(LayoutLease),
    /// An NBD export: the handshake's description, and the driver once there is one
    /// (it checks the export again on every reconnect).
    Nbd(NbdUri, nbd::Export, OnceLock<Weak<NbdBackend>>),
}

impl Lease {
    /// Whether the swap area is still what was activated. For an export with a driver:
    /// whether the driver found it changed on a reconnect (it then refuses the
    /// connection, so no page goes to another export); the server is not asked again
    /// (a server with one client slot would stall). Before there is a driver: a new
    /// handshake, compared with the one at activation.
    pub fn verify(&self) -> Result<(), String> {
        match self {
            Lease::File(l) => l.verify().map_err(|e| e.to_string()),
            Lease::Nbd(uri, before, driver) => {
                if let Some(d) = driver.get().and_then(Weak::upgrade) {
                    return match d.nbd_stats().export_changes {
                        0 => Ok(()),
                        n => Err(format!("{uri}: export changed ({n} reconnects refused)")),
                    };
                }
                let now = nbd::NbdClient::connect(uri).map_err(|e| format!("{uri}: {e}"))?;
                let now = *now.export();
                if now.size != before.size || now.read_only() != before.read_only() {
                    return Err(format!(
                        "{uri}: export changed: size {} -> {}, read-only {} -> {}",
                        before.size,
                        now.size,
                        before.read_only(),
                        now.read_only()
                    ));
                }
                Ok(())
            }
        }
    }
}

/// swapon of an export for swapdio's driver: header over NBD, the core's activation
/// (device mode: an export is a block device), and the process prepared for swap I/O
/// over the network (`PR_SET_IO_FLUSHER`, `mlockall`; a failure is reported, not fatal).
pub fn activate_nbd(uri: &NbdUri, mode: ModeArg, quiet: bool) -> Result<Activated, String> {
    if mode == ModeArg::File {
        return Err(format!("{uri}: {}", nbd::FILE_MODE_REFUSED));
    }
    let act = nbd::activate(uri, ModeRequest::Device).map_err(|e| match e {
        nbd::ActivateError::Refused(r) => {
            format!("{uri}: {r}, {}; is there a swap header? run `swapdio mkswap {uri}`", r.errno())
        }
        e => format!("{uri}: {e}"),
    })?;
    prepare_process(quiet);
    Ok(Activated {
        lease: Lease::Nbd(uri.clone(), act.export, OnceLock::new()),
        layout: act.layout,
        map: act.map,
        report: act.report,
        guard: None,
        nbd: Some(uri.clone()),
    })
}

/// `PR_SET_IO_FLUSHER` and `mlockall`, with a note on stderr for what failed.
pub fn prepare_process(quiet: bool) {
    let (flusher, locked) = nbd::prepare_for_swap_io();
    if quiet {
        return;
    }
    if let Err(e) = flusher {
        errln!(
            "swapdio: PR_SET_IO_FLUSHER refused ({e}): needs CAP_SYS_RESOURCE; fine for a test run, not for real swap"
        );
    }
    if let Err(e) = locked {
        errln!("swapdio: mlockall refused ({e}): raise RLIMIT_MEMLOCK for real swap use");
    }
}

/// The NBD driver for an activated export; the lease watches it from now on.
pub fn nbd_driver(
    uri: &NbdUri,
    lease: &Lease,
    arena: &Arc<Arena>,
    storage: StorageConfig,
    faults: FaultConfig,
) -> Result<Arc<NbdBackend>, String> {
    let config = NbdConfig { faults, ..NbdConfig::for_storage(storage) };
    let d = NbdBackend::new(uri, arena.clone(), config).map(Arc::new).map_err(|e| format!("{uri}: {e}"))?;
    if let Lease::Nbd(_, _, watch) = lease {
        let _ = watch.set(Arc::downgrade(&d));
    }
    Ok(d)
}

/// The NBD driver's counters, when `driver` is one.
pub fn nbd_stats(driver: &crate::setup::Driver) -> Option<NbdStats> {
    match driver {
        crate::setup::Driver::Nbd(n) => Some(n.nbd_stats()),
        _ => None,
    }
}

/// The report line of an NBD run.
pub fn nbd_stats_line(n: &NbdStats) -> String {
    format!(
        "  nbd             {} connection(s), {} lost ({} protocol errors), {} reconnects, {} requests failed in flight, \
         {} error replies, {} not connected, {} FUA writes, {} export changes",
        n.connections,
        n.connection_losses,
        n.protocol_errors,
        n.reconnects,
        n.failed_in_flight,
        n.error_replies,
        n.not_connected,
        n.fua_writes,
        n.export_changes
    )
}

/// `swapdio check` on a file or an export.
pub fn check(path: &Path, mode: ModeRequest) -> Result<CheckReport, String> {
    Ok(match nbd_uri(path)? {
        Some(uri) => nbd::check(&uri, mode),
        None => swapdio::linux::check::check(path, mode),
    })
}

/// `swapdio mkswap URI [--size S]`: writes the swap header into page 0 of the export
/// (the whole export unless `--size`), then a dry-run swapon of it.
pub fn mkswap_nbd(uri: &NbdUri, size: Option<u64>, json: bool) -> ExitCode {
    let written = nbd::mkswap(uri, size);
    let report = nbd::check(uri, ModeRequest::Auto);
    match written {
        Ok(h) => {
            if json {
                outln!(
                    "{}",
                    serde_json::json!({"path": uri.to_string(), "created": true, "pages": h.last_page + 1, "check": report.to_json()})
                );
            } else {
                outln!("wrote a swap header to {uri} ({} pages)", h.last_page + 1);
                match report.kernel.usable_kib() {
                    Some(kib) => outln!("swapon would accept it as a block device: {kib} KiB usable"),
                    None => outln!("warning: still refused: {}", crate::check::verdict_text(&report.kernel)),
                }
            }
            if report.kernel.is_usable() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            if json {
                outln!("{}", serde_json::json!({"path": uri.to_string(), "created": false, "error": e.to_string()}));
            } else {
                errln!("swapdio mkswap: {uri}: {e}");
            }
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_strings_resolve_to_files_or_exports_and_bad_uris_are_errors() {
        assert_eq!(nbd_uri(Path::new("/swapfile")), Ok(None));
        assert_eq!(nbd_uri(Path::new("nbd.swap")), Ok(None));
        let u = nbd_uri(Path::new("nbd://127.0.0.1:10809/swap")).unwrap().unwrap();
        assert_eq!(u.export, "swap");
        assert!(nbd_uri(Path::new("nbd+unix:///swap")).is_err(), "no socket=");
        assert!(nbd_uri(Path::new("nbds://host/x")).is_err(), "TLS is not supported, and not a file name");
    }
}
