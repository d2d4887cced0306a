//! Regression tests for the ways a careless or unlucky user could lose data or share a
//! swap file with another user through the `swapdio` binary: fio pointed at other files,
//! `mkswap` destroying what it replaces, a second user of a running swap file, layout
//! changes during a run, leftovers. Root-only tests print `SKIP:` with the reason unless
//! `SWAPDIO_REQUIRE_ROOT=1` (CI), which turns a skip into a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_swapdio");

/// A scratch directory next to the build output (a disk filesystem, unlike a tmpfs /tmp),
/// removed on drop.
struct Scratch(PathBuf);
impl Scratch {
    fn new(tag: &str) -> Scratch {
        let base = std::env::var_os("CARGO_TARGET_TMPDIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        let p = base.join(format!("swapdio-safety-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch dir");
        Scratch(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn swapdio(args: &[&str], paths: &[&Path]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args);
    for p in paths {
        c.arg(p);
    }
    c.output().expect("run swapdio")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bench_only_without_a_match_fails_before_creating_anything() {
    let s = Scratch::new("only");
    let out = swapdio(&["bench", "--only", "no such case", "--size", "1M", "--dir"], &[&s.0]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("matches no case"), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&s.0).unwrap().count(), 0, "bench created files for nothing");
}

#[test]
fn bench_fio_with_a_colon_in_the_path_touches_no_other_file() {
    let s = Scratch::new("colon");
    if Command::new("fio").arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        println!("SKIP: fio is not installed");
        return;
    }
    // The user's file `x`, which fio would open for `x:y.swap` unescaped.
    let precious = s.path("x");
    std::fs::write(&precious, b"the user's data").unwrap();
    let swap = s.path("x:y.swap");
    let out = swapdio(&["mkswap", "--size", "1M"], &[&swap]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = swapdio(
        &[
            "bench",
            "--mode",
            "file",
            "--duration",
            "200ms",
            "--rounds",
            "1",
            "--only",
            "swap-out 4k random QD1",
            "--file",
        ],
        &[&swap],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&precious).unwrap(), b"the user's data", "fio wrote into x");
    assert!(!s.path("y.swap").exists(), "fio created y.swap");
    assert!(!stderr(&out).contains("fio failed"), "{}", stderr(&out));
}
