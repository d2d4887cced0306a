//! The example kernel module (ffi/kernel/) in QEMU: `ffi/kernel/qemu-test.sh` builds the
//! kernel object and the module, boots a Debian kernel under TCG with 2 CPUs and then 1
//! CPU, and checks the guest log (every PASS line, no FAIL, oops, WARN, BUG or lockup)
//! and the disk images from the host (the swap header and every page at its mapped
//! position, for the device-mode and the file-mode backend).
//!
//! The boot takes a minute or two, so the test is opt-in: `SWAPDIO_QEMU=1` runs it where
//! the tools exist (else it prints why it skips); `SWAPDIO_REQUIRE_QEMU=1` (CI) runs it
//! and turns a missing tool into a failure.

use std::path::Path;
use std::process::Command;

fn env_is_1(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| v == "1")
}

#[test]
fn example_module_swaps_out_and_in_through_both_backends_in_qemu() {
    let require = env_is_1("SWAPDIO_REQUIRE_QEMU");
    if !require && !env_is_1("SWAPDIO_QEMU") {
        eprintln!("SKIP QEMU module test: opt-in, it boots a kernel twice (set SWAPDIO_QEMU=1)");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernel/qemu-test.sh");
    let out = Command::new("bash").arg(&script).output().expect("bash runs");
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{log}");
    match out.status.code() {
        Some(0) => {
            assert!(log.contains("PASS host check device") && log.contains("PASS host check file"), "{log}");
            assert!(!log.contains("FAIL"), "{log}");
        }
        Some(77) if !require => {
            let why = log.lines().find(|l| l.starts_with("SKIP")).unwrap_or("SKIP: tools missing");
            eprintln!("SKIP QEMU module test: {why}");
        }
        Some(77) => panic!("QEMU module test skipped under SWAPDIO_REQUIRE_QEMU=1:\n{log}"),
        _ => panic!("QEMU module test failed ({}):\n{log}", out.status),
    }
}
