//! What a careless user of `swapdio` runs into: paths that name directories, pseudo
//! filesystems and read-only mounts, sizes in the other unit, options that cannot go
//! together, and argument errors under `--json`. Each test pins one finding: the
//! command refuses at once, with the reason and the documented exit status, and leaves
//! nothing behind.

mod common;

use common::{json_of, root_skip, run, swapdio, text, LoopFs, Scratch};
use std::time::{Duration, Instant};

/// `mkswap --size 1M f/`: a trailing slash names a directory (open(2) with `O_CREAT`:
/// `EISDIR`); refused before the file is written, nothing left behind.
#[test]
fn mkswap_on_a_path_with_a_trailing_slash_is_eisdir_before_writing() {
    let s = Scratch::new("careless-slash");
    let p = format!("{}/f/", s.0.display());
    let t = Instant::now();
    let out = swapdio(&["mkswap", "--size", "64M", &p]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("EISDIR"), "{}", text(&out.stderr));
    assert!(t.elapsed() < Duration::from_secs(5), "wrote 64 MiB before refusing");
    assert_eq!(std::fs::read_dir(&s.0).unwrap().count(), 0, "mkswap left files behind");
}

/// `--size 1GB`: util-linux reads `GB` as 10^9, swapdio's sizes are powers of 1024;
/// the ambiguous spelling is an argument error (2) naming both, not a silent GiB.
#[test]
fn sizes_in_decimal_units_are_refused_as_ambiguous() {
    let s = Scratch::new("careless-units");
    let f = s.path("f");
    for args in [
        &["mkswap", "--size", "1MB", f.to_str().unwrap()][..],
        &["bench", "--size", "1GB"],
        &["stress", "--size", "8MB"],
    ] {
        let out = swapdio(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains("ambiguous size suffix"), "{args:?}: {}", text(&out.stderr));
    }
    assert!(!f.exists());
    assert!(swapdio(&["mkswap", "-q", "--size", "1MiB", f.to_str().unwrap()]).status.success());
    assert_eq!(std::fs::metadata(&f).unwrap().len(), 1 << 20);
}

/// `bench --file F --size S` (or `--dir D`), and the same for `stress`: the size and
/// directory are for a file the command creates; with an existing file they were
/// silently ignored. Now an argument error, in JSON under `--json`.
#[test]
fn bench_and_stress_refuse_size_or_dir_beside_an_existing_file() {
    for (cmd, extra) in [
        ("bench", ["--size", "2M"]),
        ("bench", ["--dir", "/tmp"]),
        ("stress", ["--size", "2M"]),
        ("stress", ["--dir", "/tmp"]),
    ] {
        let mut args = vec!["--json", cmd, "--file", "/nonexistent/f.swap"];
        args.extend(extra);
        let out = swapdio(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let v = json_of(&out);
        assert_eq!(v["argument_error"], true, "{v}");
        assert!(v["error"].as_str().unwrap().contains("cannot be used with"), "{v}");
    }
}

/// A swap file on procfs: refused as the kernel refuses it (no `read_folio`), not as
/// "not enough free space" after statvfs says 0 bytes.
#[test]
fn mkswap_and_bench_refuse_a_pseudo_filesystem_by_its_real_reason() {
    let out = swapdio(&["mkswap", "--size", "1M", "/proc/swapdio-test"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("proc has no read_folio"), "{}", text(&out.stderr));
    let out = swapdio(&["bench", "--dir", "/proc", "--size", "1M", "--no-fio", "--rounds", "1", "--only", "QD1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("proc has no read_folio") && !err.contains("free space"), "{err}");
}

/// Errors a subcommand finds in its arguments after parsing (a missing `--size`, a URI
/// that does not parse) are argument errors like clap's: JSON under `--json`, exit 2.
#[test]
fn late_argument_errors_are_json_under_json() {
    for args in
        [&["--json", "mkswap", "x"][..], &["--json", "mkswap", "nbd+unix:///x"], &["--json", "check", "nbd+unix:///x"]]
    {
        let out = swapdio(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let v = json_of(&out);
        assert_eq!((v["ok"].as_bool(), v["argument_error"].as_bool()), (Some(false), Some(true)), "{args:?}: {v}");
    }
    assert!(!std::path::Path::new("x").exists(), "mkswap without --size created x");
}

/// `stress`/`bench --file` on a read-only mount: refused once with `EROFS`, not blamed
/// on the immutable flag (`CAP_LINUX_IMMUTABLE`) and retried in file mode. `check` and
/// `mkswap` say `EROFS` too.
#[test]
fn read_only_mount_is_refused_once_with_erofs() {
    if let Some(r) = root_skip("SWAPDIO_REQUIRE_ROOT", &["losetup", "mkfs.ext4", "mount", "umount"]) {
        println!("SKIP: {r} (a read-only loop mount needs root)");
        return;
    }
    let fs = LoopFs::ext4("careless-ro", 32).unwrap();
    let f = fs.root().join("swap");
    let f = f.to_str().unwrap();
    assert!(swapdio(&["mkswap", "-q", "--size", "8M", f]).status.success());
    run("mount", &["-o", "remount,ro", &fs.root().to_string_lossy()]).unwrap();
    for args in [
        &["stress", "--duration", "100ms", "--file", f][..],
        &["bench", "--no-fio", "--rounds", "1", "--only", "QD1", "--duration", "50ms", "--file", f],
    ] {
        let out = swapdio(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("EROFS") && !err.contains("CAP_LINUX_IMMUTABLE") && !err.contains("using file mode"),
            "{err}"
        );
    }
    let v = json_of(&swapdio(&["--json", "check", f]));
    assert_eq!(v["swapon_prediction"]["errno_name"], "EROFS", "{v}");
    let out = swapdio(&["mkswap", "--size", "8M", f]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("EROFS"), "{}", text(&out.stderr));
}
