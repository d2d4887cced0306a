//! What every `swapdio` subcommand prints: a closed stdout is a normal end, argument
//! errors are JSON under `--json`, exit statuses are documented in `--help`, errnos are
//! named, and no Rust `Debug` form reaches the user (issue 8 findings 8 and 13).

mod common;

use common::{json_of, swapdio, text, Scratch, BIN};
use std::process::{Command, Stdio};

/// Runs `swapdio ARGS` with stdout closed before it writes; returns (status, stderr).
fn with_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(BIN).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (out.status.code(), text(&out.stderr))
}

/// A short `bench` (QD1 cases only, no fio) in `dir`.
fn bench_smoke(json: bool, dir: &str) -> Vec<&str> {
    let mut v = if json { vec!["--json"] } else { vec![] };
    v.extend([
        "bench",
        "--no-fio",
        "--size",
        "1M",
        "--duration",
        "50ms",
        "--rounds",
        "1",
        "--only",
        "QD1",
        "--dir",
        dir,
    ]);
    v
}

#[test]
fn closed_stdout_is_a_normal_exit_for_every_subcommand() {
    let s = Scratch::new("epipe");
    let f = s.0.join("f.swap");
    let f = f.to_str().unwrap();
    let dir = s.0.to_str().unwrap();
    let runs: [&[&str]; 6] = [
        &["--help"],
        &["--json", "mkswap", "--size", "64K", f],
        &["--json", "check", f],
        &["check", "--all-extents", f],
        &["--json", "stress", "--size", "1M", "--duration", "200ms", "--dir", dir],
        &bench_smoke(true, dir),
    ];
    for args in runs {
        let expect = swapdio(args).status.code();
        let (code, err) = with_closed_stdout(args);
        assert!(!err.contains("panicked"), "{args:?} panicked on a closed stdout: {err}");
        assert_eq!(code, expect, "{args:?}: a closed stdout changed the exit status: {err}");
    }
}

#[test]
fn argument_errors_are_json_under_json_for_every_subcommand() {
    for args in [
        &["--json", "stress", "--duration", "forever"][..],
        &["--json", "bench", "--rounds", "0"],
        &["--json", "check"],
        &["--json", "mkswap", "x", "--size", "lots"],
        &["stress", "--json", "--no-such-flag"],
    ] {
        let out = swapdio(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let v = json_of(&out);
        assert_eq!(v["ok"], false, "{args:?}");
        assert_eq!(v["argument_error"], true, "{args:?}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{args:?}: {v}");
    }
    // Without --json: clap's text on stderr, nothing on stdout.
    let out = swapdio(&["stress", "--duration", "forever"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("invalid value"));
}

#[test]
fn help_documents_every_exit_status() {
    let top = text(&swapdio(&["--help"]).stdout);
    for code in ["0 ", "1 ", "2 ", "3 ", "4 ", "130"] {
        assert!(top.contains(&format!("\n  {code}")), "`swapdio --help` lacks exit status {code}: {top}");
    }
    let stress = text(&swapdio(&["stress", "--help"]).stdout);
    assert!(stress.contains("Exit status") && stress.contains("130 interrupted") && stress.contains("3 unverified"));
    assert!(stress.contains("p99"), "stress --help explains p99");
    for (cmd, codes) in [
        ("check", &["0 usable", "1 not usable", "2 bad arguments"][..]),
        ("mkswap", &["0 written", "1 refused", "2 bad arguments"]),
        ("bench", &["0 measured", "2 could not run", "130 interrupted"]),
    ] {
        let help = text(&swapdio(&[cmd, "--help"]).stdout);
        for code in codes {
            assert!(help.contains(code), "`swapdio {cmd} --help` lacks exit status {code:?}: {help}");
        }
    }
}

#[test]
fn errnos_are_named_one_way_and_no_debug_form_reaches_the_user() {
    let out = swapdio(&["--json", "check", "/nonexistent/swapdio-no-such-file"]);
    let v = json_of(&out);
    assert_eq!(v["swapon_prediction"]["errno_name"], "ENOENT", "{v}");
    let out = swapdio(&["check", "/nonexistent/swapdio-no-such-file"]);
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(all.contains("ENOENT (errno 2)"), "{all}");
    for debug in ["RefusalInfo", "Refused(", "DriverStats {", "ExtentFlags(", "(os error", "Some("] {
        assert!(!all.contains(debug), "Debug form {debug:?} in: {all}");
    }
    let s = Scratch::new("debugform");
    if !s.usable_for_swap() {
        println!("SKIP (bench part): scratch directory is on tmpfs");
        return;
    }
    let out = swapdio(&bench_smoke(false, s.0.to_str().unwrap()));
    let all = text(&out.stdout) + &text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(!all.contains("DriverStats {") && !all.contains(" { "), "Debug form in: {all}");
}
