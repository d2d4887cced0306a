//! The `swapdio` binary end to end: exit statuses and JSON output on real files (no root needed).

use std::process::Command;

mod common;
use common::{on_tmpfs, Scratch};

#[test]
fn cli_check_exit_status_is_zero_only_when_usable() {
    let s = Scratch::new("cli");
    let bin = env!("CARGO_BIN_EXE_swapdio");
    let good = s.0.join("good");
    let out = Command::new(bin).args(["mkswap", "--size", "64K"]).arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    if on_tmpfs(&good) {
        println!("SKIP: scratch directory is on tmpfs");
        return;
    }
    let out = Command::new(bin).args(["--json", "check"]).arg(&good).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["usable"], true);
    assert_eq!(v["swapon_prediction"]["usable_kib"], 60);

    let bad = s.0.join("bad");
    std::fs::write(&bad, vec![0u8; 8 * 4096]).unwrap();
    let out = Command::new(bin).args(["--json", "check"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["swapon_prediction"]["reason"], "Unable to find swap-space signature");
    assert_eq!(v["swapon_prediction"]["errno"], 22);

    let out = Command::new(bin).args(["mkswap", "--size", "10000"]).arg(s.0.join("odd")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a multiple of the page size"));
}
