//! The comparison: [`compare`] judges one case by swapdio's dry-run swapon and by the
//! kernel's swapon, and records a [`Row`]; plus the guards the cases need (active swap
//! areas, running processes, inode flags), each undone on drop.

use crate::support::{run, LoopFs, Scratch};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;
use swapdio::linux::check::{check, swapoff, swapon, Verdict};
use swapdio::linux::layout::{inode_flags, proc_swaps, set_inode_flags};
use swapdio::{Errno, ModeRequest};

// ---------------------------------------------------------------- environment

/// Where images live: `/dev/shm` when it exists (a memory-backed image makes the loop
/// device's flushes free, which is most of this test's runtime), else the temp dir;
/// `SWAPDIO_KDIFF_DIR` overrides both.
fn scratch_base() -> PathBuf {
    if let Some(dir) = std::env::var_os("SWAPDIO_KDIFF_DIR") {
        return PathBuf::from(dir);
    }
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        return shm;
    }
    std::env::temp_dir()
}

/// A scratch directory for the images of case group `tag`.
pub fn scratch(tag: &str) -> Scratch {
    Scratch::in_dir(&scratch_base(), &format!("kdiff-{tag}"))
}

/// `mkfs ARGS` on an `image_mib` MiB loop device, mounted.
pub fn make_fs(tag: &str, image_mib: u64, mkfs: &str, mkfs_args: &[&str]) -> Result<LoopFs, String> {
    LoopFs::new(scratch(tag), image_mib, mkfs, mkfs_args)
}

/// `mkfs ARGS` over `n` loop devices of `image_mib` MiB, mounted from the first.
pub fn make_multi_fs(tag: &str, n: usize, image_mib: u64, mkfs: &str, mkfs_args: &[&str]) -> Result<LoopFs, String> {
    LoopFs::multi(scratch(tag), n, image_mib, mkfs, mkfs_args)
}

/// Reports a case group that could not run.
pub fn skip(reason: &str) {
    println!("SKIP kernel_diff: {reason}");
}

// ---------------------------------------------------------------- guards

/// An active kernel swap area, swapped off on drop.
pub struct ActiveSwap(pub PathBuf);
impl Drop for ActiveSwap {
    fn drop(&mut self) {
        let _ = swapoff(&self.0);
    }
}

/// A process running a copy of `sleep` stored at a path, killed on drop.
pub struct Running(pub std::process::Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `chattr` flags set on a file, cleared on drop (so the image can be cleaned up).
pub struct Chattr(PathBuf, u32);
impl Drop for Chattr {
    fn drop(&mut self) {
        if let Ok(f) = File::open(&self.0) {
            if let Ok(fl) = inode_flags(&f) {
                let _ = set_inode_flags(&f, fl & !self.1);
            }
        }
    }
}

/// Sets `flag` on `p` until the guard is dropped.
pub fn chattr(p: &Path, flag: u32) -> Chattr {
    let f = File::open(p).expect("open");
    set_inode_flags(&f, inode_flags(&f).expect("getflags") | flag).expect("chattr");
    Chattr(p.to_path_buf(), flag)
}

// ---------------------------------------------------------------- comparison

/// One side's verdict.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Usable(u64),
    Refused(Errno),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Usable(k) => write!(f, "{k} KiB"),
            Outcome::Refused(e) => write!(f, "refused {e:?}"),
        }
    }
}

/// `extents:N across:Sk` from the kernel's "Adding ...k swap on PATH." line, if dmesg
/// is readable.
fn kernel_log(path: &Path) -> Option<(u64, u64)> {
    let log = run("dmesg", &[]).ok()?;
    let needle = format!("swap on {}.", path.display());
    let line = log.lines().rev().find(|l| l.contains(&needle))?;
    let field = |key: &str| -> Option<u64> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    Some((field("extents:")?, field("across:")?))
}

/// The kernel's verdict: swapon(2), the size in /proc/swaps, swapoff(2).
pub fn kernel(path: &Path) -> Outcome {
    match swapon(path, 0) {
        Err(e) => Outcome::Refused(e),
        Ok(()) => {
            let guard = ActiveSwap(path.to_path_buf());
            let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            let kib = proc_swaps()
                .expect("/proc/swaps")
                .into_iter()
                .find(|(p, _)| *p == canon || p == path)
                .map(|(_, k)| k)
                .expect("swapon succeeded but the file is not in /proc/swaps");
            drop(guard);
            Outcome::Usable(kib)
        }
    }
}

/// One case's result: both verdicts, the FIEMAP extent count, what the verdict says
/// (bytes lost or the reason), and whether the merged extents and span agree.
pub struct Row {
    pub case: String,
    pub kernel: Outcome,
    pub ours: Outcome,
    pub extents: usize,
    pub detail: String,
    pub same_map: bool,
}

/// Judges `path` both ways and records the row as `FS/CASE`: same verdict, same errno,
/// same usable KiB, and (where dmesg tells) the same merged extent count and span.
pub fn compare(rows: &mut Vec<Row>, fs: &str, case: &str, path: &Path) {
    let t = Instant::now();
    let rep = check(path, ModeRequest::Auto);
    let t_check = t.elapsed();
    let ours = match &rep.kernel {
        Verdict::Usable(r) => Outcome::Usable(r.usable_kib()),
        Verdict::Refused(r) => Outcome::Refused(r.errno),
    };
    let detail = match &rep.kernel {
        Verdict::Usable(r) => format!(
            "lost misaligned {} too-short {} beyond-header {} tail {}",
            r.lost.misaligned, r.lost.too_short, r.lost.beyond_header, r.lost.file_tail
        ),
        Verdict::Refused(r) => r.reason.clone(),
    };
    let extents = rep.layout.as_ref().map(|l| l.extents.len()).unwrap_or(0);
    let kernel = kernel(path);
    let t_kernel = t.elapsed() - t_check;
    // Where dmesg tells, the merged extent count and the span must agree too.
    let (map, log) = match (&rep.kernel, kernel_log(path)) {
        (Verdict::Usable(r), Some(k)) if matches!(kernel, Outcome::Usable(_)) => {
            (Some((r.extents, r.span_pages * 4)), Some(k))
        }
        _ => (None, None),
    };
    let ok = if kernel == ours && map == log { "ok" } else { "MISMATCH" };
    let shape = |m: Option<(u64, u64)>| m.map(|(e, s)| format!("{e}x/{s}k")).unwrap_or_else(|| "-".into());
    let case = format!("{fs}/{case}");
    println!(
        "{case:<34} kernel {:<16} swapdio {:<16} map(kernel/swapdio) {:>10} {:>10}  fiemap {extents:<4} {ok}  ({detail}) [check {t_check:.0?}, swapon {t_kernel:.0?}]",
        kernel.to_string(),
        ours.to_string(),
        shape(log),
        shape(map)
    );
    let detail = if map == log {
        detail
    } else {
        format!("extents/span kernel {} swapdio {}; {detail}", shape(log), shape(map))
    };
    rows.push(Row { case, kernel, ours, extents, detail, same_map: map == log });
}
