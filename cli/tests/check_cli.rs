//! `swapdio check` on targets that are not swap files: it must answer at once (never
//! open a FIFO or a character device for reading), with the errno swapon would give and
//! that errno's name, and one verdict per question in its JSON.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

mod common;
use common::{json_of, swapdio_within, Scratch};

/// Runs `swapdio --json check PATH`, killed after 20 s (a hang is a failure, not a stuck CI).
fn check_json(path: &std::path::Path) -> (Output, serde_json::Value, Duration) {
    let p = path.to_str().expect("UTF-8 test path");
    let (out, took) = swapdio_within(&["--json", "check", p], Duration::from_secs(20));
    assert!(took < Duration::from_secs(20), "swapdio check {p} hung");
    let v = json_of(&out);
    (out, v, took)
}

#[test]
fn check_on_a_fifo_or_char_device_does_not_block_and_is_einval() {
    let s = Scratch::new("fifo");
    let fifo = s.0.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for p in [fifo.clone(), PathBuf::from("/dev/null"), PathBuf::from("/dev/zero")] {
        let (out, v, took) = check_json(&p);
        assert_eq!(out.status.code(), Some(1), "{}", p.display());
        assert_eq!(v["swapon_prediction"]["errno_name"], "EINVAL", "{}: {v}", p.display());
        assert!(took < Duration::from_secs(10), "{} took {took:?}", p.display());
    }
}

#[test]
fn check_names_every_errno_and_says_which_verdict_the_exit_status_follows() {
    let s = Scratch::new("errno");
    let (out, v, _) = check_json(&s.0.join("missing"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        (v["swapon_prediction"]["errno"].as_i64(), v["swapon_prediction"]["errno_name"].as_str()),
        (Some(2), Some("ENOENT"))
    );
    let (_, v, _) = check_json(&s.0);
    assert_eq!(v["swapon_prediction"]["errno_name"], "EISDIR");
    assert_eq!(v["exit_status_follows"], "swapon_prediction");
    assert!(v.get("kernel").is_none() && v.get("verdict").is_none(), "one verdict per question: {v}");
    let out = Command::new(env!("CARGO_BIN_EXE_swapdio"))
        .args(["--json", "check", "--mode", "file"])
        .arg(&s.0)
        .output()
        .expect("run");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["exit_status_follows"], "swapdio");
}

/// `check --mode device` says whether the block device can be opened, and its verdict
/// (and exit status) follows: a device that cannot be opened is no device mode.
#[test]
fn check_mode_device_says_whether_the_device_can_be_opened() {
    let s = Scratch::new("devmode");
    let f = s.0.join("swap");
    let out =
        Command::new(env!("CARGO_BIN_EXE_swapdio")).args(["mkswap", "--size", "1M"]).arg(&f).output().expect("mkswap");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(env!("CARGO_BIN_EXE_swapdio"))
        .args(["--json", "check", "--mode", "device"])
        .arg(&f)
        .output()
        .expect("run");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let dev = &v["swapdio"]["device"];
    if dev.is_null() {
        println!("SKIP: no block device under {} ({})", f.display(), v["layout"]["fs"]);
        return;
    }
    if dev["openable"] == true {
        assert_eq!(out.status.code(), Some(0), "{v}");
        assert_eq!(v["swapdio"]["verdict"]["mode"], "device");
    } else {
        assert_eq!(out.status.code(), Some(1), "{v}");
        assert_eq!(v["swapdio"]["verdict"]["errno"], dev["errno"]);
        assert!(dev["errno_name"].is_string(), "{v}");
    }
}
