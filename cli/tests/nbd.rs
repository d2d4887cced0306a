//! `swapdio` end to end on NBD exports served by real servers the tests start and stop
//! (nbdkit's memory plugin on a Unix socket, qemu-nbd over a file on TCP loopback):
//! check and mkswap on a URI, stress with 0 mismatches with and without injected
//! faults, and stress across a server kill and restart. Skips with the reason when a
//! server is missing (`SWAPDIO_REQUIRE_NBD=1` makes that a failure).

mod common;
use common::support;
#[path = "../../tests/nbd_common/mod.rs"]
mod nbd_common;

use common::{json_of as json, swapdio, text, Scratch, BIN};
use nbd_common::{have, Server};
use serde_json::json;
use std::process::Command;
use std::time::Duration;

/// An nbdkit memory export of `size` bytes (nbdkit `options` too), or `None` (a skip, or a
/// failure under `SWAPDIO_REQUIRE_NBD=1`) without nbdkit. The server stops before its
/// scratch directory goes (field order).
struct Nbdkit {
    _server: Server,
    dir: Scratch,
    uri: String,
}

fn nbdkit(tag: &str, size: u64, options: &[&str]) -> Option<Nbdkit> {
    if !have("nbdkit") {
        return None;
    }
    let dir = Scratch::new(&format!("nbd-cli-{tag}"));
    let server = Server::nbdkit_memory_with(&dir.0, size, options);
    let uri = server.uri.to_string();
    Some(Nbdkit { _server: server, dir, uri })
}

/// A finished stress report that lost nothing.
fn assert_clean(r: &serde_json::Value) {
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["mismatches"], 0, "{r:#}");
    assert_eq!(r["lost_pages"], 0, "{r:#}");
    assert_eq!(r["unwritten_dirty_pages"], 0, "{r:#}");
    assert!(r["verified_pages"].as_u64().unwrap() > 0, "{r:#}");
    assert_eq!(r["driver"], "nbd");
}

#[test]
fn check_and_mkswap_take_nbd_uris() {
    let Some(export) = nbdkit("check", 16 << 20, &[]) else { return };
    let uri = export.uri.clone();
    let out = swapdio(&["check", &uri]);
    assert_eq!(out.status.code(), Some(1), "no header yet");
    let out = swapdio(&["mkswap", &uri]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r = json(&swapdio(&["--json", "check", &uri]));
    assert_eq!(r["usable"], true, "{r:#}");
    assert_eq!(r["swapon_prediction"]["usable_kib"], (16 << 10) - 4, "{r:#}");
    let out = swapdio(&["check", "nbd+unix:///x"]);
    assert_eq!(out.status.code(), Some(2), "a URI without socket= is an error, not a file name");
}

/// What `check` says of a local file or device and cannot be true of a remote export.
const NOT_OF_AN_EXPORT: [&str; 5] = ["FIEMAP", "device 0:0", "allocated", "attributes [", "block-device (block size"];

/// `check` on an export describes the export (its handshake: size, block sizes,
/// flags), not a local file: no FIEMAP, no device number, no allocation; its JSON names
/// the target "nbd-export" and no local device; `--mode file`, which swapdio's NBD
/// driver cannot do, is refused as `stress --mode file` refuses it.
#[test]
fn check_on_an_export_describes_the_export_not_a_local_file() {
    let Some(export) = nbdkit("truth", 16 << 20, &[]) else { return };
    let uri = export.uri.clone();
    assert!(swapdio(&["mkswap", "-q", &uri]).status.success());
    let out = swapdio(&["check", &uri]);
    let t = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{t}");
    for wrong in NOT_OF_AN_EXPORT {
        assert!(!t.contains(wrong), "{wrong:?} in check of an export:\n{t}");
    }
    assert!(t.contains("NBD export, size 16777216 bytes"), "{t}");
    assert!(t.contains("swapped on whole: one extent, bytes 0..16777216 of the export"), "{t}");
    assert!(t.contains("attached as a block device"), "{t}");

    let v = json(&swapdio(&["--json", "check", &uri]));
    assert_eq!(v["target"], "nbd-export", "{v:#}");
    assert_eq!(v["nbd"]["connected"], true, "{v:#}");
    assert_eq!(v["nbd"]["size"], 16 << 20, "{v:#}");
    assert_eq!(v["nbd"]["read_only"], false, "{v:#}");
    assert!(v["nbd"]["block_size"]["maximum"].as_u64().unwrap() >= 4096, "{v:#}");
    let l = &v["layout"];
    assert_eq!((&l["device"], &l["device_path"], &l["allocated_bytes"]), (&json!(null), &json!(null), &json!(null)));
    assert_eq!(l["extent_source"], "whole-export", "{v:#}");
    assert_eq!(l["fs"], "nbd-export", "{v:#}");
    assert_eq!(v["swapdio"]["verdict"]["mode"], "device", "{v:#}");

    let out = swapdio(&["--json", "check", "--mode", "file", &uri]);
    assert_eq!(out.status.code(), Some(1), "file mode on an export is refused");
    let v = json(&out);
    assert_eq!(v["swapdio"]["verdict"]["errno_name"], "EINVAL", "{v:#}");
    assert!(v["swapdio"]["verdict"]["reason"].as_str().unwrap().contains("device mode only"), "{v:#}");
    let stress = swapdio(&["stress", "--mode", "file", "--duration", "100ms", "--file", &uri]);
    assert_ne!(stress.status.code(), Some(0), "check and stress agree: {}", text(&stress.stderr));
    assert!(text(&stress.stderr).contains("device mode only"), "{}", text(&stress.stderr));
}

/// An export that cannot hold swap or cannot be reached is still named as an export:
/// a read-only one with what its handshake said (`EROFS`), an unreachable one as not
/// connected, with the socket's errno named and no Rust "(os error N)" form.
#[test]
fn check_on_a_read_only_or_unreachable_export_says_so() {
    let Some(export) = nbdkit("ro", 16 << 20, &["-r"]) else { return };
    let uri = export.uri.clone();
    let out = swapdio(&["--json", "check", &uri]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["target"], "nbd-export", "{v:#}");
    assert_eq!(v["nbd"]["read_only"], true, "{v:#}");
    assert_eq!(v["swapon_prediction"]["errno_name"], "EROFS", "{v:#}");
    let t = text(&swapdio(&["check", &uri]).stdout);
    assert!(t.contains("NBD export, size 16777216 bytes") && t.contains("read-only"), "{t}");

    let gone = format!("nbd+unix:///?socket={}", export.dir.0.join("no-server.sock").display());
    let out = swapdio(&["--json", "check", &gone]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["target"], "nbd-export", "{v:#}");
    assert_eq!(v["nbd"]["connected"], false, "{v:#}");
    assert_eq!(v["swapon_prediction"]["errno_name"], "ENOENT", "{v:#}");
    let t = text(&swapdio(&["check", &gone]).stdout);
    assert!(t.contains("NBD export: no connection") && !t.contains("(os error"), "{t}");
}

#[test]
fn stress_on_nbdkit_memory_has_no_mismatch_with_and_without_faults() {
    let Some(export) = nbdkit("nbdkit", 64 << 20, &[]) else { return };
    let uri = export.uri.clone();
    assert!(swapdio(&["mkswap", &uri]).status.success());
    let r = json(&swapdio(&["--json", "stress", "--file", &uri, "--duration", "3s", "--seed", "1"]));
    assert_clean(&r);
    assert_eq!(r["nbd"]["connections"], 4, "nbdkit's memory plugin allows multi-conn");
    assert_eq!(r["nbd"]["connection_losses"], 0);
    let r = json(&swapdio(&[
        "--json",
        "stress",
        "--file",
        &uri,
        "--duration",
        "3s",
        "--seed",
        "2",
        "--inject-faults",
        "0.02",
    ]));
    assert_clean(&r);
    assert!(r["driver_stats"]["injected"].as_u64().unwrap() > 0, "{r:#}");
    assert!(r["counts"]["rewrites"].as_u64().unwrap() > 0, "failed writes were rewritten: {r:#}");
}

#[test]
fn stress_on_qemu_nbd_is_clean_and_survives_a_server_kill_and_restart_with_faults() {
    if !have("qemu-nbd") {
        return;
    }
    let dir = Scratch::new("nbd-cli-restart");
    let mut server = Server::qemu_nbd_tcp(&dir.0, 64 << 20);
    let uri = server.uri.to_string();
    assert!(swapdio(&["mkswap", &uri]).status.success());
    // A plain run first: no faults, no kill.
    let r = json(&swapdio(&["--json", "stress", "--file", &uri, "--duration", "2s", "--seed", "4"]));
    assert_clean(&r);
    assert_eq!(r["errors"], 0, "{r:#}");
    let child = Command::new(BIN)
        .args(["--json", "stress", "--file", &uri, "--duration", "6s", "--seed", "3", "--inject-faults", "0.01"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    server.kill();
    std::thread::sleep(Duration::from_millis(500));
    server.start();
    let out = child.wait_with_output().unwrap();
    let r = json(&out);
    assert_clean(&r);
    assert!(r["nbd"]["connection_losses"].as_u64().unwrap() >= 1, "the kill was felt: {r:#}");
    assert!(r["nbd"]["reconnects"].as_u64().unwrap() >= 1, "{r:#}");
}
