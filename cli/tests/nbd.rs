//! `swapdio` end to end on NBD exports served by real servers the tests start and stop
//! (nbdkit's memory plugin on a Unix socket, qemu-nbd over a file on TCP loopback):
//! check and mkswap on a URI, stress with 0 mismatches with and without injected
//! faults, and stress across a server kill and restart. Skips with the reason when a
//! server is missing (`SWAPDIO_REQUIRE_NBD=1` makes that a failure).

#[path = "../../tests/nbd_common/mod.rs"]
mod nbd_common;

use nbd_common::{have, Scratch, Server};
use std::process::{Command, Output};
use std::time::Duration;

fn swapdio(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_swapdio")).args(args).output().unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {text}\nstderr: {}", String::from_utf8_lossy(&out.stderr)))
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
    if !have("nbdkit") {
        return;
    }
    let dir = Scratch::new("cli-check");
    let server = Server::nbdkit_memory(&dir.0, 16 << 20);
    let uri = server.uri.to_string();
    let out = swapdio(&["check", &uri]);
    assert_eq!(out.status.code(), Some(1), "no header yet");
    let out = swapdio(&["mkswap", &uri]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = json(&swapdio(&["--json", "check", &uri]));
    assert_eq!(r["usable"], true, "{r:#}");
    assert_eq!(r["swapon_prediction"]["usable_kib"], (16 << 10) - 4, "{r:#}");
    let out = swapdio(&["check", "nbd+unix:///x"]);
    assert_eq!(out.status.code(), Some(2), "a URI without socket= is an error, not a file name");
}

#[test]
fn stress_on_nbdkit_memory_has_no_mismatch_with_and_without_faults() {
    if !have("nbdkit") {
        return;
    }
    let dir = Scratch::new("cli-nbdkit");
    let server = Server::nbdkit_memory(&dir.0, 64 << 20);
    let uri = server.uri.to_string();
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
    let dir = Scratch::new("cli-restart");
    let mut server = Server::qemu_nbd_tcp(&dir.0, 64 << 20);
    let uri = server.uri.to_string();
    assert!(swapdio(&["mkswap", &uri]).status.success());
    // A plain run first: no faults, no kill.
    let r = json(&swapdio(&["--json", "stress", "--file", &uri, "--duration", "2s", "--seed", "4"]));
    assert_clean(&r);
    assert_eq!(r["errors"], 0, "{r:#}");
    let child = Command::new(env!("CARGO_BIN_EXE_swapdio"))
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
