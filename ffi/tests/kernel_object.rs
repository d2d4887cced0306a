//! The kernel object (`ffi/build-kernel.sh`, gated by `ffi/kernel-objcheck.py`):
//!
//! * built with the kernel codegen flags it passes every gate (no SSE, no red zone, only
//!   relocation types the x86-64 module loader applies, no undefined symbol beyond mem*
//!   and the panic hook, no core::fmt/core::panicking code, stack within budget) and
//!   exports exactly the functions `include/swapdio.h` declares;
//! * the same gates reject the userspace archive of `ffi/build-lib.sh` (SSE stores and
//!   GOT relocations: the two failures a module built from it hits at load and at run time),
//!   so the gates are known to catch what they exist for.
//!
//! Skips with a reason without python3 or binutils; `SWAPDIO_REQUIRE_C=1` makes that a
//! failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("ffi/ has a parent").to_path_buf()
}

fn run(cmd: &mut Command) -> Result<Output, String> {
    cmd.output().map_err(|e| format!("cannot run {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `Some(reason)` when a tool the gates need is missing; panics instead under
/// `SWAPDIO_REQUIRE_C=1` (CI).
fn missing_tools(test: &str) -> Option<String> {
    let tools: [(&str, &str); 5] = [
        ("python3", "--version"),
        ("ld", "--version"),
        ("objcopy", "--version"),
        ("objdump", "--version"),
        ("nm", "--version"),
    ];
    let missing: Vec<&str> =
        tools.iter().filter(|(t, arg)| run(Command::new(t).arg(arg)).is_err()).map(|(t, _)| *t).collect();
    if missing.is_empty() || std::env::consts::ARCH != "x86_64" {
        if std::env::consts::ARCH != "x86_64" {
            return Some("the kernel object is built for x86-64 only".into());
        }
        return None;
    }
    let why = format!("{} not found (python3, binutils)", missing.join(", "));
    if std::env::var_os("SWAPDIO_REQUIRE_C").is_some_and(|v| v == "1") {
        panic!("{test}: {why} (SWAPDIO_REQUIRE_C=1 forbids skipping)");
    }
    eprintln!("SKIP {test}: {why}");
    Some(why)
}

fn header_exports() -> Vec<String> {
    let out = run(Command::new("python3")
        .arg(root().join("ffi/kernel-objcheck.py"))
        .arg("exports")
        .arg(root().join("include/swapdio.h")))
    .expect("python3");
    assert!(out.status.success(), "kernel-objcheck.py exports failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn kernel_object_passes_every_gate_and_exports_exactly_the_header_functions() {
    if missing_tools("kernel object gates").is_some() {
        return;
    }
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kernel-obj");
    let out = run(Command::new("sh").arg(root().join("ffi/build-kernel.sh")).arg(&out_dir)).expect("sh");
    let log = text(&out);
    assert!(out.status.success(), "ffi/build-kernel.sh failed its gates:\n{log}");
    assert!(log.contains("gates passed"), "no gate verdict in:\n{log}");

    let exports = header_exports();
    assert!(exports.iter().any(|e| e == "swapdio_complete"), "header parse found {exports:?}");
    assert!(!exports.iter().any(|e| e == "swapdio_panic_hook" || e == "swapdio_engine_new"), "{exports:?}");
    let obj = out_dir.join("swapdio_rs.o_shipped");
    let nm = run(Command::new("nm").args(["--defined-only", "-g", "--format=just-symbols"]).arg(&obj)).expect("nm");
    let mut globals: Vec<String> = String::from_utf8_lossy(&nm.stdout).lines().map(str::to_owned).collect();
    globals.sort();
    assert_eq!(globals, exports, "the object's globals differ from the header's functions");
    assert!(out_dir.join(".swapdio_rs.o.cmd").is_file(), "Kbuild's .cmd file is missing");
    let report = std::fs::read_to_string(out_dir.join("stack-report.txt")).expect("stack report");
    assert!(report.contains("swapdio_write ") && report.contains("via"), "stack report:\n{report}");
}

#[test]
fn userspace_archive_fails_the_sse_and_relocation_gates() {
    if missing_tools("userspace archive rejected").is_some() {
        return;
    }
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("userspace-obj");
    let out = run(Command::new("sh").arg(root().join("ffi/build-lib.sh")).arg(&tmp)).expect("sh");
    assert!(out.status.success(), "ffi/build-lib.sh failed: {}", text(&out));
    let mut ld = Command::new("ld");
    ld.args(["-r", "--gc-sections"]);
    for e in header_exports() {
        ld.arg("-u").arg(e);
    }
    let obj = tmp.join("userspace.o");
    let out = run(ld.arg("-o").arg(&obj).arg(tmp.join("lib/libswapdio.a"))).expect("ld");
    assert!(out.status.success(), "ld -r failed: {}", text(&out));
    let out = run(Command::new("python3")
        .arg(root().join("ffi/kernel-objcheck.py"))
        .arg("check")
        .arg(&obj)
        .arg(root().join("include/swapdio.h")))
    .expect("python3");
    let log = text(&out);
    assert!(!out.status.success(), "the gates accepted a userspace build:\n{log}");
    assert!(log.contains("sse: "), "SSE instructions not caught:\n{log}");
    assert!(log.contains("relocs: ") && log.contains("GOTPCREL"), "GOT relocations not caught:\n{log}");
}

/// The errno values compiled into the library are the generic Linux ones; architectures
/// that number them differently (alpha, mips, parisc, sparc) are refused at compile time.
#[test]
fn header_refuses_architectures_with_other_errno_numbers() {
    if run(Command::new("gcc").arg("--version")).is_err() {
        if std::env::var_os("SWAPDIO_REQUIRE_C").is_some_and(|v| v == "1") {
            panic!("errno architecture check: gcc not found (SWAPDIO_REQUIRE_C=1 forbids skipping)");
        }
        eprintln!("SKIP errno architecture check: gcc not found");
        return;
    }
    let compile = |define: Option<&str>| {
        let mut gcc = Command::new("gcc");
        gcc.args(["-fsyntax-only", "-x", "c", "-std=gnu11"]);
        if let Some(d) = define {
            gcc.arg(format!("-D{d}"));
        }
        run(gcc.arg(root().join("include/swapdio.h"))).expect("gcc")
    };
    assert!(compile(None).status.success(), "the header does not compile for this host");
    for arch in ["__alpha__", "__mips__", "__hppa__", "__sparc__"] {
        let out = compile(Some(arch));
        assert!(!out.status.success(), "{arch}: the header compiled");
        assert!(text(&out).contains("numbers them differently"), "{arch}: {}", text(&out));
    }
}
