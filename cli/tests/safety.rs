//! Regression tests for the ways a careless or unlucky user could lose data or share a
//! swap file with another user through the `swapdio` binary: fio pointed at other files,
//! `mkswap` destroying what it replaces, a second user of a running swap file, layout
//! changes during a run, leftovers. Root-only tests print `SKIP:` with the reason unless
//! `SWAPDIO_REQUIRE_ROOT=1` (CI), which turns a skip into a failure.

mod common;

use common::{image, on_tmpfs, root_skip, run as sh, LoopDev, LoopFs, Scratch, BIN};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
    let s = Scratch::new("safety-only");
    let out = swapdio(&["bench", "--only", "no such case", "--size", "1M", "--dir"], &[&s.0]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("matches no case"), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&s.0).unwrap().count(), 0, "bench created files for nothing");
}

#[test]
fn bench_fio_with_a_colon_in_the_path_touches_no_other_file() {
    let s = Scratch::new("safety-colon");
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

// ---- helpers for runs in the background and for root-only tests --------------------------

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use swapdio::linux::guard::{SwapFileGuard, FS_APPEND_FL, FS_IMMUTABLE_FL};
use swapdio::linux::layout::inode_flags;
use swapdio::linux::layout::LayoutError;

/// `Some(reason)` when root-only tests cannot run here; with `SWAPDIO_REQUIRE_ROOT=1`
/// (CI) that is a failure instead of a skip.
fn skip_unless_root(tools: &[&str]) -> Option<String> {
    root_skip("SWAPDIO_REQUIRE_ROOT", tools)
}

/// A background `swapdio` run, killed (SIGKILL) and reaped on drop if still running.
struct Bg(Option<Child>);

impl Bg {
    fn spawn(args: &[&str], paths: &[&Path]) -> Bg {
        let mut c = Command::new(BIN);
        c.args(args).args(paths).stdout(Stdio::piped()).stderr(Stdio::piped());
        Bg(Some(c.spawn().expect("spawn swapdio")))
    }
    fn pid(&self) -> i32 {
        self.0.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }
    /// Waits until the child printed a line starting with `prefix` on stderr (then
    /// keeps draining stderr in a thread so the child never blocks on it).
    fn wait_for_stderr(&mut self, prefix: &str, limit: Duration) -> bool {
        let Some(err) = self.0.as_mut().and_then(|c| c.stderr.take()) else { return false };
        let (tx, rx) = std::sync::mpsc::channel();
        let prefix = prefix.to_string();
        std::thread::spawn(move || {
            let mut seen = false;
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if !seen && line.starts_with(&prefix) {
                    seen = true;
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(limit).is_ok()
    }
    fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.pid(), sig) };
    }
    /// Waits for the exit (SIGKILL after `limit`) and returns the output.
    fn finish(mut self, limit: Duration) -> Output {
        common::finish(self.0.take().expect("child"), limit).0
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `swapoff` of a file a test `swapon`ed, on drop (also when an assertion failed).
struct Swapoff(PathBuf);

impl Drop for Swapoff {
    fn drop(&mut self) {
        let _ = Command::new("swapoff").arg(&self.0).output();
    }
}

/// Waits until another process holds `path`'s swapdio lock.
fn wait_locked(path: &Path, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if matches!(SwapFileGuard::acquire(path), Err(LayoutError::InUse { .. })) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn has_flag(path: &Path, bit: u32) -> bool {
    let f = std::fs::File::open(path).unwrap();
    inode_flags(&f).unwrap() & bit != 0
}

fn is_immutable(path: &Path) -> bool {
    has_flag(path, FS_IMMUTABLE_FL)
}

fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

// ---- mkswap (findings 3, 4, 13) ----------------------------------------------------------

#[test]
fn mkswap_refuses_existing_data_and_too_large_sizes_without_touching_the_file() {
    let s = Scratch::new("safety-precious");
    let p = s.path("precious.txt");
    std::fs::write(&p, b"irreplaceable").unwrap();
    let out = swapdio(&["mkswap", "--size", "1T"], &[&p]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a swap area"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&p).unwrap(), b"irreplaceable");
    // Forced but larger than the free space: refused before anything is written.
    let out = swapdio(&["mkswap", "--force", "--size", "8T"], &[&p]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not enough free space"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&p).unwrap(), b"irreplaceable");
    assert_eq!(std::fs::read_dir(&s.0).unwrap().count(), 1, "mkswap left files behind");
    // Forced and fitting: replaced.
    let out = swapdio(&["mkswap", "--force", "--size", "64K"], &[&p]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 64 << 10);
}

#[test]
fn mkswap_killed_or_failing_midway_leaves_nothing_behind_and_the_old_file_intact() {
    let s = Scratch::new("safety-killed");
    let p = s.path("new.swap");
    // The file-size limit kills mkswap (SIGXFSZ) while it allocates.
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -f 1024; exec \"$0\" mkswap --size 64M \"$1\"")
        .arg(BIN)
        .arg(&p)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let left: Vec<_> = std::fs::read_dir(&s.0).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "a failed mkswap left {left:?}");

    // The same limit with SIGXFSZ ignored: fallocate fails (EFBIG) after the checks, and
    // the forced replacement of an existing file leaves that file as it was.
    let precious = s.path("precious.txt");
    std::fs::write(&precious, b"irreplaceable").unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 1024; exec \"$0\" mkswap --force --size 64M \"$1\"")
        .arg(BIN)
        .arg(&precious)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("fallocate") || stderr(&out).contains("write"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&precious).unwrap(), b"irreplaceable", "a failed mkswap destroyed the file");
    let left: Vec<_> = std::fs::read_dir(&s.0).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("precious.txt")], "a failed mkswap left files behind");
}

#[test]
fn mkswap_checks_the_type_before_touching_a_fifo() {
    let s = Scratch::new("safety-fifo");
    let p = s.path("fifo");
    assert!(Command::new("mkfifo").arg("-m").arg("644").arg(&p).status().unwrap().success());
    let out = swapdio(&["mkswap", "--size", "64K"], &[&p]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a regular file or block device"), "{}", stderr(&out));
    assert_eq!(mode_of(&p), 0o644, "mkswap changed the FIFO's mode");
}

#[test]
fn mkswap_checks_the_type_before_touching_a_character_device() {
    if let Some(r) = skip_unless_root(&["mknod"]) {
        println!("SKIP: {r} (mknod needs root)");
        return;
    }
    let s = Scratch::new("safety-chardev");
    let p = s.path("null");
    sh("mknod", &["-m", "666", &p.display().to_string(), "c", "1", "3"]).unwrap();
    let out = swapdio(&["mkswap", "--size", "64K"], &[&p]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(mode_of(&p), 0o666, "mkswap changed the device's mode");
}

#[test]
fn mkswap_on_a_block_device_writes_a_header_without_ftruncate() {
    if let Some(r) = skip_unless_root(&["losetup"]) {
        println!("SKIP: {r} (loop devices need root)");
        return;
    }
    let s = Scratch::new("safety-blk");
    image(&s.path("image"), 16 << 20).unwrap();
    let l = LoopDev::attach(&s.path("image")).unwrap();
    let dev = l.path().to_path_buf();
    // All zeros: no swap signature, so not without --force.
    let out = swapdio(&["mkswap", "--size", "8M"], &[&dev]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a swap area"), "{}", stderr(&out));
    let out = swapdio(&["mkswap", "--force", "--size", "32M"], &[&dev]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("fewer than"), "{}", stderr(&out));
    let out = swapdio(&["mkswap", "--force", "--size", "8M"], &[&dev]);
    assert!(out.status.success(), "{}", stderr(&out));
    let page = swapdio::linux::layout::read_header(&dev).unwrap();
    let h = swapdio::SwapHeader::parse(&page).unwrap();
    assert_eq!(h.last_page, 2047);
    // Now a swap area: replaced without --force.
    let out = swapdio(&["mkswap", "--size", "16M"], &[&dev]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrote a swap header"));
    // And driven in device mode (the guard has nothing to freeze on a device).
    let out = swapdio(&["stress", "--mode", "device", "--duration", "500ms", "--file"], &[&dev]);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
}

// ---- exclusion, layout changes, leftovers (findings 2, 9, 10, 12) --------------------------

#[test]
fn stress_refuses_a_second_user_and_mkswap_over_the_running_file() {
    let s = Scratch::new("safety-excl");
    let f = s.path("f.swap");
    assert!(swapdio(&["mkswap", "-q", "--size", "8M"], &[&f]).status.success());
    if on_tmpfs(&s.0) {
        println!("SKIP: scratch directory is on tmpfs");
        return;
    }
    let first = Bg::spawn(&["stress", "--mode", "file", "--duration", "30s", "--file"], &[&f]);
    assert!(wait_locked(&f, Duration::from_secs(20)), "first stress never took the lock");
    let out = swapdio(&["stress", "--duration", "1s", "--file"], &[&f]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("in use by another swapdio process"), "{}", stderr(&out));
    let out = swapdio(&["mkswap", "--size", "8M"], &[&f]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("in use by another swapdio process"), "{}", stderr(&out));
    first.signal(libc::SIGINT);
    let out = first.finish(Duration::from_secs(30));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("mismatches      1") && !text.contains("CHANGED"), "{text}");
}

/// Waits until the file has inode flag `bit` (the run's protection is in force).
fn wait_flag(path: &Path, bit: u32, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if has_flag(path, bit) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A file-mode run that ends normally with the file protected throughout: `OK`, no
/// mismatch, the layout unchanged, and the append-only flag gone again afterwards.
fn assert_protected_run_ok(out: &Output, f: &Path) {
    assert_eq!(out.status.code(), Some(0), "{}\n{}", String::from_utf8_lossy(&out.stdout), stderr(out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["protection"], "append-only");
    assert_eq!(v["lease"], "unchanged");
    assert_eq!(v["counts"]["mismatches"], 0);
    assert!(v["verified_pages"].as_u64().unwrap() > 0, "{v}");
    assert!(!has_flag(f, FS_APPEND_FL), "the append-only flag outlived the run");
}

#[test]
fn stress_file_mode_refuses_a_hole_punch_and_truncate_while_it_writes() {
    if let Some(r) = skip_unless_root(&["fallocate", "truncate"]) {
        println!("SKIP: {r} (file mode's append-only protection needs CAP_LINUX_IMMUTABLE)");
        return;
    }
    let s = Scratch::new("safety-punch");
    let f = s.path("f.swap");
    assert!(swapdio(&["mkswap", "-q", "--size", "16M"], &[&f]).status.success());
    if on_tmpfs(&s.0) {
        println!("SKIP: scratch directory is on tmpfs");
        return;
    }
    let run = Bg::spawn(&["--json", "stress", "--mode", "file", "--duration", "4s", "--file"], &[&f]);
    assert!(wait_flag(&f, FS_APPEND_FL, Duration::from_secs(20)), "file mode did not protect the file");
    // The reproduction: a hole punched while stress writes. Refused at open
    // (the kernel refuses it on an active swap file too, with ETXTBSY).
    let name = f.display().to_string();
    let punch = sh("fallocate", &["-p", "-o", "1M", "-l", "1M", &name]);
    assert!(punch.as_ref().is_err_and(|e| e.contains("Operation not permitted")), "{punch:?}");
    let cut = sh("truncate", &["-s", "1M", &name]);
    assert!(cut.as_ref().is_err_and(|e| e.contains("Operation not permitted")), "{cut:?}");
    assert_protected_run_ok(&run.finish(Duration::from_secs(90)), &f);
    // The file is the user's again.
    assert!(sh("fallocate", &["-p", "-o", "1M", "-l", "1M", &name]).is_ok());
}

#[test]
fn stress_default_file_does_not_outlive_kill_9_and_sighup_cleans_up() {
    let s = Scratch::new("safety-leftover");
    if on_tmpfs(&s.0) {
        println!("SKIP: scratch directory is on tmpfs");
        return;
    }
    // A file an older, killed run left: its process is gone.
    let dead = {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let stale = s.path(&format!("swapdio-stress-{dead}.swap"));
    std::fs::write(&stale, vec![0u8; 8192]).unwrap();
    // One of a live process is kept.
    let live = s.path(&format!("swapdio-stress-{}.swap", std::process::id()));
    std::fs::write(&live, b"live").unwrap();

    let mut run = Bg::spawn(&["stress", "--size", "8M", "--duration", "60s", "--dir"], &[&s.0]);
    assert!(run.wait_for_stderr("swapdio stress:", Duration::from_secs(30)), "stress did not start");
    run.signal(libc::SIGKILL);
    let out = run.finish(Duration::from_secs(10));
    assert_eq!(out.status.signal(), Some(libc::SIGKILL));
    let mut left: Vec<_> = std::fs::read_dir(&s.0).unwrap().flatten().map(|e| e.path()).collect();
    left.sort();
    assert_eq!(left, vec![live.clone()], "after kill -9");

    let mut run = Bg::spawn(&["stress", "--size", "8M", "--duration", "60s", "--dir"], &[&s.0]);
    assert!(run.wait_for_stderr("swapdio stress:", Duration::from_secs(30)), "stress did not start");
    run.signal(libc::SIGHUP);
    let out = run.finish(Duration::from_secs(30));
    assert!(out.status.code().is_some(), "SIGHUP killed stress before its cleanup: {:?}", out.status);
    let left: Vec<_> = std::fs::read_dir(&s.0).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(left, vec![live], "after SIGHUP");
}

#[test]
fn device_mode_hole_punch_cannot_hand_the_swap_files_blocks_to_another_file() {
    if let Some(r) =
        skip_unless_root(&["losetup", "mkfs.ext4", "mount", "umount", "fallocate", "chattr", "swapon", "swapoff"])
    {
        println!("SKIP: {r} (device mode on a loop-device filesystem needs root)");
        return;
    }
    let l = LoopFs::ext4("safety-fs-punch", 96).unwrap();
    let f = l.root().join("swapfile");
    assert!(swapdio(&["mkswap", "-q", "--size", "60M"], &[&f]).status.success());
    let run = Bg::spawn(&["--json", "stress", "--mode", "device", "--duration", "10s", "--file"], &[&f]);
    assert!(wait_locked(&f, Duration::from_secs(20)), "stress did not start");
    let t = Instant::now();
    while !is_immutable(&f) && t.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    // Free 56 MiB of the swap file's blocks while device mode writes to them...
    let punched = sh("fallocate", &["-p", "-o", "4096", "-l", "56M", &f.display().to_string()]);
    // ...and let a new file take whatever is free.
    let victim = l.root().join("victim");
    let pattern = vec![0xa5u8; 1 << 20];
    {
        use std::io::Write;
        let mut v = std::fs::File::create(&victim).unwrap();
        for _ in 0..56 {
            if v.write_all(&pattern).is_err() {
                break;
            }
        }
        let _ = v.sync_all();
    }
    // A kernel swapon of the file is refused too (the kernel opens it for writing).
    let _off = Swapoff(f.clone());
    let swapon = Command::new("swapon").arg(&f).output().unwrap();
    let out = run.finish(Duration::from_secs(60));
    // Read what reached the disk, not the page cache.
    let _ = Command::new("sh").arg("-c").arg("echo 3 > /proc/sys/vm/drop_caches").status();
    let data = std::fs::read(&victim).unwrap();
    let bad = data.chunks(4096).filter(|p| p.iter().any(|&b| b != 0xa5)).count();
    assert_eq!(bad, 0, "{bad} of {} pages of another file were overwritten", data.len() / 4096);
    assert!(punched.is_err(), "the hole punch succeeded while device mode was writing");
    assert!(!swapon.status.success(), "the kernel activated the file while device mode was writing to it");
    assert_eq!(out.status.code(), Some(0), "{}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(!is_immutable(&f), "the immutable flag was not restored");
}

#[test]
fn device_mode_immutable_flag_is_restored_after_kill_9() {
    if let Some(r) = skip_unless_root(&["losetup", "mkfs.ext4", "mount", "umount", "chattr"]) {
        println!("SKIP: {r} (device mode on a loop-device filesystem needs root)");
        return;
    }
    let l = LoopFs::ext4("safety-fs-crash", 48).unwrap();
    let f = l.root().join("swapfile");
    assert!(swapdio(&["mkswap", "-q", "--size", "16M"], &[&f]).status.success());
    let run = Bg::spawn(&["stress", "--mode", "device", "--duration", "60s", "--file"], &[&f]);
    let t = Instant::now();
    while !is_immutable(&f) && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(is_immutable(&f), "device mode did not protect the file");
    run.signal(libc::SIGKILL);
    let _ = run.finish(Duration::from_secs(10));
    // The next swapdio command restores it (and then can replace the file). Tests run
    // in parallel: another test's swapdio command may have restored it already (the
    // records are machine-wide), but only from the record, never by the dead process.
    let left_immutable = is_immutable(&f);
    let out = swapdio(&["mkswap", "-q", "--size", "16M"], &[&f]);
    assert!(out.status.success(), "{}", stderr(&out));
    if left_immutable {
        assert!(stderr(&out).contains("restored the inode flags"), "{}", stderr(&out));
    }
    assert!(!is_immutable(&f));
}

#[test]
fn stress_file_mode_refuses_a_kernel_swapon_while_it_writes() {
    if let Some(r) = skip_unless_root(&["losetup", "mkfs.ext4", "mount", "umount", "swapon", "swapoff"]) {
        println!("SKIP: {r} (swapon on a loop-device filesystem needs root)");
        return;
    }
    let l = LoopFs::ext4("safety-fs-swapon", 64).unwrap();
    let f = l.root().join("swapfile");
    assert!(swapdio(&["mkswap", "-q", "--size", "16M"], &[&f]).status.success());
    let run = Bg::spawn(&["--json", "stress", "--mode", "file", "--duration", "4s", "--file"], &[&f]);
    assert!(wait_flag(&f, FS_APPEND_FL, Duration::from_secs(20)), "file mode did not protect the file");
    let _off = Swapoff(f.clone());
    let swapon = Command::new("swapon").arg(&f).output().unwrap();
    assert!(!swapon.status.success(), "the kernel swapped to a file stress was writing");
    assert!(String::from_utf8_lossy(&swapon.stderr).contains("Operation not permitted"));
    assert_protected_run_ok(&run.finish(Duration::from_secs(90)), &f);
}

/// Clearing the protection flag during a run (`chattr -i` in device mode, `chattr -a`
/// in file mode) stops the writing within the watch's period: exit status 4.
fn stops_writing_when_the_protection_flag_is_cleared(mode: &str, bit: u32, chattr: &str, name: &str) {
    if let Some(r) = skip_unless_root(&["losetup", "mkfs.ext4", "mount", "umount", "chattr"]) {
        println!("SKIP: {r} ({mode} mode's protection on a loop-device filesystem needs root)");
        return;
    }
    let l = LoopFs::ext4(&format!("safety-fs-chattr-{mode}"), 48).unwrap();
    let f = l.root().join("swapfile");
    assert!(swapdio(&["mkswap", "-q", "--size", "16M"], &[&f]).status.success());
    let t = Instant::now();
    let run = Bg::spawn(&["--json", "stress", "--mode", mode, "--duration", "60s", "--file"], &[&f]);
    assert!(wait_flag(&f, bit, Duration::from_secs(20)), "{mode} mode did not protect the file");
    sh("chattr", &[chattr, &f.display().to_string()]).unwrap();
    let out = run.finish(Duration::from_secs(90));
    assert!(t.elapsed() < Duration::from_secs(45), "{mode} mode kept writing to an unprotected file");
    assert_eq!(out.status.code(), Some(4), "{}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["lease"].as_str().unwrap().contains(&format!("{name} flag was cleared")), "{}", v["lease"]);
}

#[test]
fn device_mode_stops_writing_when_the_immutable_flag_is_cleared() {
    stops_writing_when_the_protection_flag_is_cleared("device", FS_IMMUTABLE_FL, "-i", "immutable");
}

#[test]
fn file_mode_stops_writing_when_the_append_only_flag_is_cleared() {
    stops_writing_when_the_protection_flag_is_cleared("file", FS_APPEND_FL, "-a", "append-only");
}

/// `statvfs` free bytes of the filesystem holding `dir`.
fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("stat").args(["-f", "-c", "%a %S"]).arg(dir).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|x| x.parse::<u64>().unwrap());
    it.next().unwrap() * it.next().unwrap()
}

#[test]
fn device_mode_default_file_is_protected_and_freed_after_kill_9() {
    if let Some(r) = skip_unless_root(&["losetup", "mkfs.ext4", "mount", "umount", "stat"]) {
        println!("SKIP: {r} (device mode on a loop-device filesystem needs root)");
        return;
    }
    let l = LoopFs::ext4("safety-fs-anon", 64).unwrap();
    let before = free_bytes(l.root());
    let mut run =
        Bg::spawn(&["stress", "--mode", "device", "--size", "24M", "--duration", "60s", "--dir"], &[l.root()]);
    assert!(run.wait_for_stderr("swapdio stress:", Duration::from_secs(30)), "device mode did not start");
    assert!(free_bytes(l.root()) + (20 << 20) <= before, "the swap file does not take space");
    run.signal(libc::SIGKILL);
    let _ = run.finish(Duration::from_secs(10));
    let left: Vec<_> = std::fs::read_dir(l.root()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("lost+found")], "kill -9 left files");
    // The anonymous, immutable file is freed with its last descriptor.
    let t = Instant::now();
    while free_bytes(l.root()) + (1 << 20) < before && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(free_bytes(l.root()) + (1 << 20) >= before, "the killed run's swap file still holds its blocks");
}

/// `bench` re-checks the layout after every case: a hole punched during a swap-in case
/// (which only reads, so nothing refills the hole) stops the run with exit status 4, as
/// `stress` does.
#[test]
fn bench_stops_with_status_4_when_the_layout_changes_during_a_case() {
    let s = Scratch::new("safety-bench-punch");
    let f = s.path("f.swap");
    assert!(swapdio(&["mkswap", "-q", "--size", "16M"], &[&f]).status.success());
    if on_tmpfs(&s.0) {
        println!("SKIP: scratch directory is on tmpfs");
        return;
    }
    let args = ["bench", "--mode", "file", "--no-fio", "--rounds", "1", "--duration", "2s", "--only"];
    let mut run = Bg::spawn(&[&args[..], &["swap-in 4k random QD1", "--file"]].concat(), &[&f]);
    assert!(run.wait_for_stderr("  swap-in", Duration::from_secs(30)), "bench never started its case");
    std::thread::sleep(Duration::from_millis(300));
    sh("fallocate", &["-p", "-o", "1M", "-l", "1M", &f.display().to_string()]).unwrap();
    let out = run.finish(Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stdout));
}
