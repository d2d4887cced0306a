//! `swapdio stress` ends on time and says what it could and could not check: bounded
//! loops when every write fails, "could not verify" apart from "lost", an exit status
//! per outcome, durations parsed without panics (issue 8 findings 5, 8, 11, 13).

mod common;

use common::{finish, json_of, swapdio, swapdio_within, text, Scratch, BIN};
use std::process::{Command, Stdio};
use std::time::Duration;

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
