//! What the integration tests of the library and of the `swapdio` binary share about
//! the host: scratch directories on a disk filesystem, external tools, root, loop
//! devices, filesystems on them and mounts. Everything is undone on drop (umount,
//! `losetup -d`, rm), also when a test fails.
//!
//! Included by path (`#[path = ".../tests/support/mod.rs"] mod support;`) where needed:
//! the library's tests, `tests/nbd_common`, and the CLI's `cli/tests/common`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The build's scratch directory (`target/tmp`): a disk filesystem, unlike a tmpfs `/tmp`.
pub fn target_tmpdir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// A scratch directory, `swapdio-TAG-PID`, removed (with everything in it) on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A fresh scratch directory under [`target_tmpdir`].
    pub fn new(tag: &str) -> Scratch {
        Scratch::in_dir(&target_tmpdir(), tag)
    }

    /// A fresh scratch directory under `base`.
    pub fn in_dir(base: &Path, tag: &str) -> Scratch {
        let p = base.join(format!("swapdio-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("scratch dir {}: {e}", p.display()));
        Scratch(p)
    }

    /// `name` inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A scratch file, `target/tmp/DIR/NAME-PID`, removed on drop.
pub struct ScratchFile(pub PathBuf);

impl ScratchFile {
    /// `len` bytes of written zeros (allocated, as a swap file is).
    pub fn written(dir: &str, name: &str, len: usize) -> ScratchFile {
        let f = ScratchFile::path_for(dir, name);
        std::fs::write(&f.0, vec![0u8; len]).unwrap_or_else(|e| panic!("{}: {e}", f.0.display()));
        f
    }

    /// `len` bytes, sparse (a hole until written).
    pub fn sparse(dir: &str, name: &str, len: u64) -> ScratchFile {
        let f = ScratchFile::path_for(dir, name);
        image(&f.0, len).unwrap_or_else(|e| panic!("{e}"));
        f
    }

    fn path_for(dir: &str, name: &str) -> ScratchFile {
        let dir = target_tmpdir().join(dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        ScratchFile(dir.join(format!("{name}-{}", std::process::id())))
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Whether `tool` is on `PATH`.
pub fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success())
}

/// Runs `cmd ARGS`; its trimmed stdout, or what failed with its stderr.
pub fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd).args(args).output().map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `Some(reason)` when a root-only test cannot run here (not root, or one of `tools`
/// missing). With `require` set to "1" in the environment (CI) that is a failure
/// instead of a skip.
pub fn root_skip(require: &str, tools: &[&str]) -> Option<String> {
    let reason = if !is_root() {
        Some("not root".to_string())
    } else {
        tools.iter().find(|t| !have(t)).map(|t| format!("{t} not installed"))
    };
    if let Some(r) = &reason {
        assert!(std::env::var(require).as_deref() != Ok("1"), "{require}=1 but: {r}");
    }
    reason
}

/// Whether `dir` is on tmpfs (no extent map, no swap).
pub fn on_tmpfs(dir: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: all-zero bytes are a valid `statfs`.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is writable for the call.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    #[allow(clippy::unnecessary_cast)] // `f_type`'s width differs between architectures
    let tmpfs = st.f_type as i64 == libc::TMPFS_MAGIC as i64;
    rc == 0 && tmpfs
}

/// A sparse image file of `bytes` bytes.
pub fn image(path: &Path, bytes: u64) -> Result<(), String> {
    std::fs::File::create(path).and_then(|f| f.set_len(bytes)).map_err(|e| format!("image {}: {e}", path.display()))
}

/// A loop device (its node, `/dev/loopN`), detached on drop.
pub struct LoopDev(pub String);

impl LoopDev {
    /// `losetup --find --show IMAGE`.
    pub fn attach(image: &Path) -> Result<LoopDev, String> {
        run("losetup", &["--find", "--show", &image.to_string_lossy()]).map(LoopDev)
    }

    /// The same with `--partscan`: the kernel reads the image's partition table.
    pub fn attach_partscan(image: &Path) -> Result<LoopDev, String> {
        run("losetup", &["--find", "--show", "--partscan", &image.to_string_lossy()]).map(LoopDev)
    }

    /// The node as a path.
    pub fn path(&self) -> &Path {
        Path::new(&self.0)
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        let _ = run("losetup", &["-d", &self.0]);
    }
}

/// A mounted filesystem, unmounted on drop (lazily if something still holds it).
pub struct Mount(pub PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let p = self.0.to_string_lossy().to_string();
        if run("umount", &[&p]).is_err() {
            let _ = run("umount", &["-l", &p]);
        }
    }
}

/// A filesystem made by `mkfs` on loop devices over sparse images in a scratch
/// directory, mounted (from the first device) at `mnt` in that directory. Field order is
/// drop order: unmount, detach, remove the images; before that every file in it loses
/// its immutable and append-only flags (a failed test must not keep the umount from
/// working).
pub struct LoopFs {
    pub mount: Mount,
    pub loops: Vec<LoopDev>,
    pub dir: Scratch,
}

impl LoopFs {
    /// `mkfs ARGS DEV` on one `image_mib` MiB loop device, mounted.
    pub fn new(dir: Scratch, image_mib: u64, mkfs: &str, mkfs_args: &[&str]) -> Result<LoopFs, String> {
        LoopFs::multi(dir, 1, image_mib, mkfs, mkfs_args)
    }

    /// `mkfs ARGS DEV...` over `n` loop devices of `image_mib` MiB each, mounted from the
    /// first (btrfs's devices are scanned first).
    pub fn multi(dir: Scratch, n: usize, image_mib: u64, mkfs: &str, mkfs_args: &[&str]) -> Result<LoopFs, String> {
        let mut loops = Vec::new();
        for i in 0..n {
            let img = dir.path(&format!("image{i}"));
            image(&img, image_mib << 20)?;
            loops.push(LoopDev::attach(&img)?);
        }
        let mut args: Vec<&str> = mkfs_args.to_vec();
        args.extend(loops.iter().map(|l| l.0.as_str()));
        run(mkfs, &args)?;
        if mkfs == "mkfs.btrfs" {
            let _ = run("btrfs", &["device", "scan"]);
        }
        let mnt = dir.path("mnt");
        std::fs::create_dir_all(&mnt).map_err(|e| e.to_string())?;
        run("mount", &[&loops[0].0, &mnt.to_string_lossy()])?;
        Ok(LoopFs { mount: Mount(mnt), loops, dir })
    }

    /// A 4 KiB-block ext4 (no discard) on one loop device: what most root-only tests use.
    pub fn ext4(tag: &str, image_mib: u64) -> Result<LoopFs, String> {
        LoopFs::new(Scratch::new(tag), image_mib, "mkfs.ext4", &["-q", "-F", "-b", "4096", "-E", "nodiscard"])
    }

    /// The mount point.
    pub fn root(&self) -> &Path {
        &self.mount.0
    }

    /// The (first) loop device.
    pub fn dev(&self) -> &LoopDev {
        &self.loops[0]
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-R").arg("-ia").arg(&self.mount.0).output();
    }
}
