//! `swapdio stress` ends on time and says what it could and could not check: bounded
//! loops when every write fails, "could not verify" apart from "lost", an exit status
//! per outcome, durations parsed without panics (issue 8 findings 5, 8, 11, 13); large
//! folios of mixed sizes, split across extents, verified byte for byte, rewritten whole
//! after a failed write (issue 10).

mod common;

use common::{finish, json_of, root_skip, swapdio, swapdio_within, text, LoopFs, Scratch, BIN};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use swapdio::{SwapHeader, PAGE_SIZE};

fn skip_unless_disk(s: &Scratch) -> bool {
    if s.usable_for_swap() {
        return false;
    }
    println!("SKIP: scratch directory is on tmpfs (no extent map for a swap file)");
    true
}

#[test]
fn stress_with_every_write_failing_ends_by_its_deadline_and_reports_unwritten_pages() {
    let s = Scratch::new("stress-allfail");
    if skip_unless_disk(&s) {
        return;
    }
    let dir = s.0.to_str().unwrap();
    let args =
        ["--json", "stress", "--inject-faults", "1.0", "--duration", "1s", "--size", "8M", "--seed", "7", "--dir", dir];
    // The end phase has its own deadline (30 s); the flush gives up after 3 fruitless rounds.
    let (out, took) = swapdio_within(&args, Duration::from_secs(120));
    assert!(took < Duration::from_secs(60), "ran {took:?}: the rewrite loop ignores its deadline");
    let v = json_of(&out);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(v["outcome"], "unverified");
    assert_eq!(v["lost_pages"], 0, "a failed read is not a lost page");
    assert_eq!(v["mismatches"], 0);
    let unwritten = v["unwritten_dirty_pages"].as_u64().unwrap();
    let unverified = v["unverified_pages"].as_u64().unwrap();
    assert!(unwritten + unverified > 0, "every I/O failed, yet everything was checked: {v}");
}

#[test]
fn stress_stops_on_sigterm_while_every_write_fails_and_exits_interrupted() {
    let s = Scratch::new("stress-term");
    if skip_unless_disk(&s) {
        return;
    }
    let child = Command::new(BIN)
        .args(["--json", "stress", "--inject-faults", "1.0", "--duration", "60s", "--size", "8M", "--dir"])
        .arg(&s.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let (out, took) = finish(child, Duration::from_secs(60));
    assert!(took < Duration::from_secs(20), "SIGTERM took {took:?} to stop the run");
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    let v = json_of(&out);
    assert_eq!(v["outcome"], "interrupted");
    assert_eq!(v["interrupted"], true);
}

#[test]
fn stress_failed_verification_reads_count_as_unverified_not_lost() {
    let s = Scratch::new("stress-unverified");
    if skip_unless_disk(&s) {
        return;
    }
    let dir = s.0.to_str().unwrap();
    let out = swapdio(&[
        "--json",
        "stress",
        "--inject-faults",
        "0.9",
        "--duration",
        "1s",
        "--size",
        "8M",
        "--seed",
        "3",
        "--dir",
        dir,
    ]);
    let v = json_of(&out);
    assert_eq!(v["lost_pages"], 0, "{v}");
    assert_eq!(v["mismatches"], 0, "{v}");
    let unverified = v["unverified_pages"].as_u64().unwrap() + v["unwritten_dirty_pages"].as_u64().unwrap();
    let expect = if unverified > 0 { 3 } else { 0 };
    assert_eq!(out.status.code(), Some(expect), "{v}");
}

#[test]
fn duration_out_of_range_is_an_argument_error_not_a_panic() {
    for d in [
        "100000000000000s",
        "1e300",
        "99999999999999999999999999999999999999ms",
        "0",
        "0.0000001",
        "1ns",
        "-5s",
        ".",
        "",
    ] {
        let arg = format!("--duration={d}");
        let out = swapdio(&["stress", &arg, "--size", "64K", "--dir", "/nonexistent"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--duration {d:?}: {err}");
        assert!(!err.contains("panicked"), "--duration {d:?} panicked: {err}");
        assert!(err.contains("duration"), "--duration {d:?}: {err}");
    }
}

#[test]
fn duration_below_the_resolution_is_refused_rather_than_reported_ok_with_no_pages() {
    let out = swapdio(&["stress", "--duration", "500us", "--size", "64K", "--dir", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(2));
    let out = swapdio(&["stress", "--duration", "0.0001s", "--size", "64K", "--dir", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("below the resolution"), "{}", text(&out.stderr));
}

#[test]
fn stress_reports_throughput_beside_the_device_capacity_and_bench_runs_the_stress_case() {
    let s = Scratch::new("stress-capacity");
    if skip_unless_disk(&s) {
        return;
    }
    let dir = s.0.to_str().unwrap();
    let out = swapdio(&["--json", "stress", "--duration", "300ms", "--size", "8M", "--dir", dir]);
    let v = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert!(v["capacity"]["in_pages_per_s"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["capacity"]["out_pages_per_s"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["vs_capacity"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["latency_us_p99"].as_u64().unwrap() >= v["latency_us_p50"].as_u64().unwrap(), "{v}");
    let out = swapdio(&["--json", "stress", "--no-capacity", "--duration", "100ms", "--size", "8M", "--dir", dir]);
    assert!(json_of(&out)["capacity"].is_null());

    // bench: the stress workload beside the 4k random QD32 figure, in one run.
    let out = swapdio(&[
        "--json",
        "bench",
        "--no-fio",
        "--size",
        "8M",
        "--duration",
        "200ms",
        "--rounds",
        "1",
        "--only",
        "QD32",
        "--dir",
        dir,
    ]);
    let v = json_of(&out);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert!(v["stress"]["pages_per_s"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["qd32_pages_per_s"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["stress_vs_qd32"].as_f64().unwrap() > 0.0, "{v}");
}

/// `swapdio --json stress` for 1 s on a 16 MiB file in `s`, without the capacity
/// measurement, with `extra` arguments; its output and JSON report.
fn stress_1s_16m(s: &Scratch, extra: &[&str]) -> (std::process::Output, serde_json::Value) {
    let base = ["--json", "stress", "--no-capacity", "--duration", "1s", "--size", "16M", "--dir"];
    let out = swapdio(&[&base[..], &[s.0.to_str().unwrap()], extra].concat());
    let v = json_of(&out);
    (out, v)
}

/// The per-size counts of a `--json` report, by folio size.
fn folio_sizes(v: &serde_json::Value) -> Vec<(u64, serde_json::Value)> {
    v["folio_sizes"].as_array().unwrap().iter().map(|c| (c["pages"].as_u64().unwrap(), c.clone())).collect()
}

#[test]
fn stress_moves_every_folio_size_of_the_mix_and_verifies_every_page() {
    let s = Scratch::new("stress-folios");
    if skip_unless_disk(&s) {
        return;
    }
    let (out, v) = stress_1s_16m(&s, &["--seed", "11", "--folio-pages", "1,4,16"]);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["folio_pages"], "1,4,16");
    let sizes = folio_sizes(&v);
    for n in [1, 4, 16] {
        let c = &sizes.iter().find(|s| s.0 == n).unwrap_or_else(|| panic!("no {n}-page folios: {v}")).1;
        assert!(c["folios_out"].as_u64().unwrap() > 0 && c["folios_in"].as_u64().unwrap() > 0, "{n} pages: {v}");
    }
    assert!(sizes.iter().all(|s| [1, 4, 16].contains(&s.0)), "a size outside the mix: {v}");
    assert_eq!(v["mismatches"], 0, "{v}");
    assert_eq!(v["verified_pages"], v["slots_written"], "{v}");

    // A mix whose smallest folio cannot fit twice is refused before any I/O.
    let dir = s.0.to_str().unwrap();
    let out = swapdio(&["stress", "--folio-pages", "16", "--size", "64K", "--dir", dir]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("too small for folios of 16 pages"), "{}", text(&out.stderr));

    // Only the kernel's folio orders are accepted.
    for bad in ["3", "0", "1024", "1,x"] {
        let out = swapdio(&["stress", "--folio-pages", bad, "--size", "64K", "--dir", "/nonexistent"]);
        assert_eq!(out.status.code(), Some(2), "--folio-pages {bad}: {}", text(&out.stderr));
    }
}

#[test]
fn failed_large_folio_writes_are_redirtied_whole_and_rewritten_with_nothing_lost() {
    let s = Scratch::new("stress-folio-faults");
    if skip_unless_disk(&s) {
        return;
    }
    let (out, v) = stress_1s_16m(&s, &["--seed", "5", "--inject-faults", "0.03", "--folio-pages", "8,16"]);
    assert_eq!(out.status.code(), Some(0), "{v}");
    let failed: u64 =
        folio_sizes(&v).iter().filter(|s| s.0 >= 8).map(|s| s.1["write_failures"].as_u64().unwrap()).sum();
    assert!(failed > 0, "no large-folio write failed under injected faults: {v}");
    assert!(v["counts"]["rewrites"].as_u64().unwrap() >= failed, "{v}");
    assert_eq!(v["mismatches"], 0, "{v}");
    assert_eq!(v["lost_pages"], 0, "{v}");
    assert_eq!(v["unwritten_dirty_pages"], 0, "{v}");
    assert_eq!(v["page_rule_violations"], 0, "{v}");
    assert_eq!(v["verified_pages"], v["slots_written"], "{v}");
}

/// A swap file of `pages` pages on a filesystem whose only free space is runs of `piece`
/// blocks: a filler file takes every free block, then every `piece + 1` of its blocks
/// get `piece` punched out. The file's extents then end every `piece` pages or less,
/// mostly not at a folio-aligned slot.
fn fragmented_swap_file(dir: &Path, pages: u64, piece: u64) -> PathBuf {
    let filler = OpenOptions::new().create(true).write(true).truncate(true).open(dir.join("filler")).unwrap();
    let fd = filler.as_raw_fd();
    let page = PAGE_SIZE as i64;
    let mut end = 0i64;
    for step in [256 * page, page] {
        // SAFETY: fallocate on a file this test opened for writing; no memory is passed.
        while unsafe { libc::fallocate(fd, 0, end, step) } == 0 {
            end += step;
        }
    }
    let holes = (pages + 64) / piece + 1;
    assert!(end / page > (holes * (piece + 1)) as i64, "filesystem too small: {end} bytes free");
    for h in 0..holes as i64 {
        let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        // SAFETY: as above.
        let r = unsafe { libc::fallocate(fd, mode, h * (piece as i64 + 1) * page, piece as i64 * page) };
        assert_eq!(r, 0, "punch hole: {}", std::io::Error::last_os_error());
    }
    filler.sync_all().unwrap();
    let path = dir.join("swapfile");
    let mut swap = OpenOptions::new().create(true).write(true).truncate(true).open(&path).unwrap();
    let mut data = vec![0u8; pages as usize * PAGE_SIZE];
    SwapHeader::new(pages, [9; 16], [0; 16]).unwrap().write(&mut data[..PAGE_SIZE]).unwrap();
    swap.write_all(&data).unwrap();
    swap.sync_all().unwrap();
    path
}

#[test]
fn large_folios_crossing_extent_boundaries_are_split_and_read_back_intact_in_device_mode() {
    if let Some(r) = root_skip("SWAPDIO_REQUIRE_ROOT", &["losetup", "mkfs.ext4", "mount", "umount", "chattr"]) {
        println!("SKIP: {r} (device mode on a fragmented loop-device filesystem needs root)");
        return;
    }
    let l = LoopFs::ext4("stress-fs-folios", 64).unwrap();
    // 7-page extents: most 8- and 16-page folios at aligned slots cross one.
    let f = fragmented_swap_file(l.root(), 2048, 7);
    for faults in ["0", "0.02"] {
        let out = swapdio(&[
            "--json",
            "stress",
            "--mode",
            "device",
            "--no-capacity",
            "--duration",
            "1s",
            "--seed",
            "3",
            "--folio-pages",
            "1,8,16",
            "--inject-faults",
            faults,
            "--file",
            f.to_str().unwrap(),
        ]);
        let v = json_of(&out);
        println!("faults {faults}: {} extents, folio sizes {}", v["extents"], v["folio_sizes"]);
        assert_eq!(out.status.code(), Some(0), "faults {faults}: {v}");
        assert_eq!(v["mode"], "device", "{v}");
        assert!(v["extents"].as_u64().unwrap() > 100, "the file should be fragmented: {v}");
        let sizes = folio_sizes(&v);
        let split: u64 = sizes.iter().filter(|s| s.0 > 1).map(|s| s.1["split"].as_u64().unwrap()).sum();
        assert!(split > 0, "no large folio crossed an extent boundary: {v}");
        assert!(sizes.iter().all(|s| s.0 == 1 || s.1["split"].as_u64().unwrap() > 0), "{v}");
        assert_eq!(v["counts"]["too_fragmented"], 0, "{v}");
        assert_eq!(v["mismatches"], 0, "faults {faults}: {v}");
        assert_eq!(v["lost_pages"], 0, "{v}");
        assert_eq!(v["page_rule_violations"], 0, "{v}");
        assert_eq!(v["verified_pages"], v["slots_written"], "{v}");
        if faults != "0" {
            let failed: u64 = sizes.iter().filter(|s| s.0 > 1).map(|s| s.1["write_failures"].as_u64().unwrap()).sum();
            assert!(failed > 0, "no large-folio write failed: {v}");
        }
    }
}

/// A block device's bad-page list (`mkswap -c`; only block devices may carry one): the
/// kernel never maps those pages to slots, and neither may swapdio. Stress in device
/// mode on a loop device whose header lists four bad pages (the last page among them)
/// ends OK with every other slot usable, and the bytes of the bad pages are untouched.
#[test]
fn stress_on_a_block_device_never_writes_its_bad_pages() {
    if let Some(r) = root_skip("SWAPDIO_REQUIRE_ROOT", &["losetup"]) {
        println!("SKIP: {r} (a loop device needs root)");
        return;
    }
    const PAGES: u32 = 4096;
    const BAD: [u32; 4] = [7, 100, 2000, PAGES - 1];
    let s = Scratch::new("stress-badpages");
    let img = s.path("disk.img");
    // Every page starts with its own marker; page 0 is the header.
    let mut disk = vec![0u8; PAGES as usize * PAGE_SIZE];
    for (i, page) in disk.chunks_mut(PAGE_SIZE).enumerate() {
        page.fill((i % 251) as u8);
    }
    let header = &mut disk[..PAGE_SIZE];
    header.fill(0);
    SwapHeader::new(u64::from(PAGES), [7; 16], [0; 16]).unwrap().write(header).unwrap();
    header[1032..1036].copy_from_slice(&(BAD.len() as u32).to_ne_bytes());
    for (i, b) in BAD.iter().enumerate() {
        header[1536 + 4 * i..1540 + 4 * i].copy_from_slice(&b.to_ne_bytes());
    }
    std::fs::write(&img, &disk).unwrap();
    let before = disk;
    {
        let dev = common::LoopDev::attach(&img).unwrap();
        let check = swapdio(&["--json", "check", &dev.0]);
        assert!(check.status.success(), "{}", text(&check.stderr));
        let out =
            swapdio(&["--json", "stress", "--mode", "device", "--duration", "2s", "--no-capacity", "--file", &dev.0]);
        let v = json_of(&out);
        assert_eq!(out.status.code(), Some(0), "{v}\n{}", text(&out.stderr));
        assert_eq!(v["usable_pages"], u64::from(PAGES) - 1 - BAD.len() as u64, "{v}");
        assert_eq!(v["mismatches"], 0, "{v}");
        assert!(v["verified_pages"].as_u64().unwrap() > 1000, "{v}");
    }
    let after = std::fs::read(&img).unwrap();
    let page = |d: &[u8], i: u32| d[i as usize * PAGE_SIZE..(i as usize + 1) * PAGE_SIZE].to_vec();
    for b in BAD {
        assert!(page(&after, b) == page(&before, b), "bad page {b} was written");
    }
    // Sanity: the workload did write the device (a good page next to a bad one changed).
    assert!((1..PAGES).filter(|i| !BAD.contains(i)).any(|i| page(&after, i) != page(&before, i)));
    assert_eq!(page(&after, 0), page(&before, 0), "the header changed");
}
