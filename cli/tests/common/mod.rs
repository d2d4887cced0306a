//! What the `swapdio` binary tests share: running the binary and reading its output,
//! and the host helpers every test shares (`tests/support`: scratch directories, tools,
//! root, loop devices, mounts).

#![allow(dead_code)]

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use swapdio::linux::layout::{probe, FsKind, LayoutError};

pub const BIN: &str = env!("CARGO_BIN_EXE_swapdio");

#[path = "../../../tests/support/mod.rs"]
pub mod support;
pub use support::*;

impl Scratch {
    /// Whether swap files here have an extent map (not tmpfs): `stress` needs one.
    pub fn usable_for_swap(&self) -> bool {
        let probe_file = self.0.join("probe");
        let _ = Command::new(BIN).args(["mkswap", "--quiet", "--size", "64K"]).arg(&probe_file).output();
        let ok = !matches!(probe(&probe_file), Err(LayoutError::NoExtentMap { fs: FsKind::Tmpfs, .. }));
        let _ = std::fs::remove_file(&probe_file);
        ok
    }
}

/// Runs `swapdio ARGS` to the end.
pub fn swapdio(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run swapdio")
}

/// Runs `swapdio ARGS`, killing it after `limit`; returns the output and how long it ran.
pub fn swapdio_within(args: &[&str], limit: Duration) -> (Output, Duration) {
    let child = Command::new(BIN).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    finish(child, limit)
}

/// Waits for `child` (SIGKILL after `limit`); returns its output and how long it ran.
pub fn finish(mut child: Child, limit: Duration) -> (Output, Duration) {
    let t = Instant::now();
    while child.try_wait().ok().flatten().is_none() && t.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = t.elapsed();
    if child.try_wait().ok().flatten().is_none() {
        let _ = child.kill();
    }
    (child.wait_with_output().expect("wait"), took)
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The JSON document on stdout.
pub fn json_of(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}\nstderr: {}", text(&o.stdout), text(&o.stderr)))
}
