//! `swapdio check` on targets that are not swap files: it must answer at once (never
//! open a FIFO or a character device for reading), with the errno swapon would give and
//! that errno's name, and one verdict per question in its JSON.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

mod common;
use common::{image, json_of, root_skip, swapdio, swapdio_within, text, LoopDev, Scratch};

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
    let v = json_of(&swapdio(&["--json", "check", "--mode", "file", s.0.to_str().unwrap()]));
    assert_eq!(v["exit_status_follows"], "swapdio");
}

/// `check --mode device` says whether the block device can be opened, and its verdict
/// (and exit status) follows: a device that cannot be opened is no device mode.
#[test]
fn check_mode_device_says_whether_the_device_can_be_opened() {
    let s = Scratch::new("devmode");
    let f = s.path("swap");
    let f = f.to_str().unwrap();
    let out = swapdio(&["mkswap", "--size", "1M", f]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = swapdio(&["--json", "check", "--mode", "device", f]);
    let v = json_of(&out);
    let dev = &v["swapdio"]["device"];
    if dev.is_null() {
        println!("SKIP: no block device under {f} ({})", v["layout"]["fs"]);
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

/// `check` on a swap file names its filesystem, device and FIEMAP extents; on a block
/// device, the device, swapped on whole as one extent, with no FIEMAP (swapon maps a
/// block device whole); JSON's `target` and `layout.extent_source` say which.
#[test]
fn check_describes_a_file_by_its_extents_and_a_block_device_as_one_whole_extent() {
    let s = Scratch::new("check-kinds");
    let f = s.path("swap");
    let f = f.to_str().unwrap();
    assert!(swapdio(&["mkswap", "-q", "--size", "1M", f]).status.success());
    let v = json_of(&swapdio(&["--json", "check", f]));
    assert_eq!(v["target"], "file", "{v:#}");
    if v["layout"]["fs"] != "tmpfs" {
        assert_eq!(v["layout"]["extent_source"], "fiemap", "{v:#}");
        assert!(v["layout"]["device"].is_u64() && v["layout"]["allocated_bytes"].is_u64(), "{v:#}");
        let t = text(&swapdio(&["check", f]).stdout);
        assert!(t.contains("FIEMAP extent(s)") && t.contains("allocated"), "{t}");
        assert!(!t.contains("NBD") && !t.contains("swapped on whole"), "{t}");
    }

    if let Some(r) = root_skip("SWAPDIO_REQUIRE_ROOT", &["losetup"]) {
        println!("SKIP (block device part): {r}");
        return;
    }
    image(&s.path("image"), 4 << 20).unwrap();
    let dev = LoopDev::attach(&s.path("image")).unwrap();
    let out = swapdio(&["mkswap", "-q", "--force", "--size", "4M", &dev.0]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&swapdio(&["check", &dev.0]).stdout);
    assert!(t.contains("block device ") && t.contains("swapped on whole: one extent, bytes 0..4194304"), "{t}");
    for wrong in ["FIEMAP", "allocated", "NBD"] {
        assert!(!t.contains(wrong), "{wrong:?} in check of a block device:\n{t}");
    }
    let v = json_of(&swapdio(&["--json", "check", &dev.0]));
    assert_eq!(v["target"], "block-device", "{v:#}");
    assert_eq!(v["layout"]["extent_source"], "whole-device", "{v:#}");
    assert_eq!(v["layout"]["device_path"], dev.0.as_str(), "{v:#}");
    assert!(v["nbd"].is_null(), "{v:#}");
}

/// A procfs file is refused as swapon refuses it (no `read_folio`: `EINVAL`), not with
/// the I/O error of reading it, and every errno is named once.
#[test]
fn check_on_a_procfs_file_is_einval_and_names_the_errno_once() {
    let (out, v, _) = check_json(std::path::Path::new("/proc/self/mem"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(v["swapon_prediction"]["errno_name"], "EINVAL", "{v:#}");
    assert!(v["swapon_prediction"]["reason"].as_str().unwrap().contains("no read_folio"), "{v:#}");
    let t = text(&swapdio(&["check", "/proc/self/mem"]).stdout);
    for line in t.lines() {
        assert!(line.matches("(errno").count() <= 1, "errno named twice: {line}");
    }
}
