//! Shared by the NBD tests: real servers (nbdkit, qemu-nbd) started and stopped by the
//! tests, an in-process fake server that misbehaves on request, and an engine rig.
//! Needs `support` (tests/support) at the including crate's root.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use swapdio::linux::direct::Arena;
use swapdio::linux::nbd::proto;
use swapdio::linux::nbd::{NbdBackend, NbdConfig, NbdUri};
use swapdio::testkit::MemPages;
use swapdio::*;

pub const PAGE: usize = PAGE_SIZE;

// The includer provides `support` (tests/support) at its crate root.
use crate::support;

/// Whether `tool` is on PATH. When it is not: a skip with the reason, or a failure when
/// `SWAPDIO_REQUIRE_NBD=1` (CI).
pub fn have(tool: &str) -> bool {
    let found = support::have(tool);
    if !found {
        assert!(
            std::env::var("SWAPDIO_REQUIRE_NBD").as_deref() != Ok("1"),
            "{tool} is missing and SWAPDIO_REQUIRE_NBD=1 (install nbdkit and qemu-utils)"
        );
        println!("SKIP: {tool} is not installed (apt-get install nbdkit qemu-utils)");
    }
    found
}

/// A server process, killed (and reaped) when dropped: also when a test fails.
pub struct Server {
    child: Option<Child>,
    argv: Vec<String>,
    pub uri: NbdUri,
}

impl Server {
    fn spawn(argv: &[String], uri: NbdUri) -> Server {
        let mut s = Server { child: None, argv: argv.to_vec(), uri };
        s.start();
        s
    }

    /// Starts the process and waits until the export answers a handshake.
    pub fn start(&mut self) {
        let child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", self.argv));
        self.child = Some(child);
        let t = Instant::now();
        loop {
            if swapdio::linux::nbd::NbdClient::connect(&self.uri).is_ok() {
                return;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "{:?} never became ready", self.argv);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// nbdkit's memory plugin (`size` bytes, multi-conn) on a Unix socket in `dir`.
    pub fn nbdkit_memory(dir: &Path, size: u64) -> Server {
        Server::nbdkit_memory_with(dir, size, &[])
    }

    /// The same with more nbdkit options (`-r`: a read-only export).
    pub fn nbdkit_memory_with(dir: &Path, size: u64, options: &[&str]) -> Server {
        let sock = dir.join("nbdkit.sock");
        let argv: Vec<String> = ["nbdkit", "--foreground", "--exit-with-parent"]
            .iter()
            .chain(options)
            .map(|s| s.to_string())
            .chain(["-U".into(), sock.display().to_string(), "memory".into(), format!("size={size}")])
            .collect();
        let uri = NbdUri::parse(&format!("nbd+unix:///?socket={}", sock.display())).unwrap();
        Server::spawn(&argv, uri)
    }

    /// qemu-nbd over a raw file of `size` bytes in `dir`, export `swap`, on TCP
    /// loopback at a free port (the file is created once and kept across restarts).
    pub fn qemu_nbd_tcp(dir: &Path, size: u64) -> Server {
        let file = dir.join("disk.raw");
        if !file.exists() {
            std::fs::File::create(&file).unwrap().set_len(size).unwrap();
        }
        let port = free_port();
        let argv: Vec<String> = ["qemu-nbd", "-f", "raw", "-t", "-x", "swap", "-b", "127.0.0.1", "-e", "8", "-p"]
            .iter()
            .map(|s| s.to_string())
            .chain([port.to_string(), "--cache=writeback".into(), file.display().to_string()])
            .collect();
        let uri = NbdUri::parse(&format!("nbd://127.0.0.1:{port}/swap")).unwrap();
        Server::spawn(&argv, uri)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// How the fake server answers on one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behavior {
    /// Correct replies.
    Good,
    /// The first read is answered with a cookie that was never sent.
    UnknownCookie,
    /// The first read's reply carries half its data, then the connection closes.
    ShortReply,
    /// Every write is answered with `ENOSPC`.
    ErrorReply,
    /// Structured replies: reads answered as two data chunks, second half first.
    Structured,
    /// `NBD_INFO_BLOCK_SIZE` with a maximum payload of 8 KiB; larger requests get `EINVAL`.
    SmallMaxBlock,
}

/// An in-process NBD server over a Unix socket with an in-memory export. Each new
/// connection takes the next behavior from the queue (then `Good`).
pub struct FakeServer {
    pub uri: NbdUri,
    pub behaviors: Arc<Mutex<VecDeque<Behavior>>>,
    pub disk: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    path: PathBuf,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeServer {
    pub fn start(dir: &Path, size: usize, behaviors: &[Behavior]) -> FakeServer {
        let path = dir.join("fake.sock");
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let behaviors = Arc::new(Mutex::new(behaviors.iter().copied().collect::<VecDeque<_>>()));
        let disk = Arc::new(Mutex::new(vec![0u8; size]));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, d, s) = (behaviors.clone(), disk.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        let behavior = b.lock().unwrap().pop_front().unwrap_or(Behavior::Good);
                        let (d, s) = (d.clone(), s.clone());
                        std::thread::spawn(move || serve(conn, behavior, d, s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        let uri = NbdUri::parse(&format!("nbd+unix:///fake?socket={}", path.display())).unwrap();
        FakeServer { uri, behaviors, disk, stop, path, thread: Some(thread) }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn opt_reply(c: &mut UnixStream, option: u32, kind: u32, payload: &[u8]) -> std::io::Result<()> {
    let mut m = proto::OPT_REPLY_MAGIC.to_be_bytes().to_vec();
    m.extend_from_slice(&option.to_be_bytes());
    m.extend_from_slice(&kind.to_be_bytes());
    m.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    m.extend_from_slice(payload);
    c.write_all(&m)
}

fn serve(mut c: UnixStream, behavior: Behavior, disk: Arc<Mutex<Vec<u8>>>, stop: Arc<AtomicBool>) {
    let _ = serve_inner(&mut c, behavior, &disk, &stop);
}

fn serve_inner(
    c: &mut UnixStream,
    behavior: Behavior,
    disk: &Mutex<Vec<u8>>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let mut g = proto::NBD_MAGIC.to_be_bytes().to_vec();
    g.extend_from_slice(&proto::IHAVEOPT.to_be_bytes());
    g.extend_from_slice(&(proto::FLAG_FIXED_NEWSTYLE | proto::FLAG_NO_ZEROES).to_be_bytes());
    c.write_all(&g)?;
    let mut cf = [0u8; 4];
    c.read_exact(&mut cf)?;
    let mut structured = false;
    loop {
        let mut h = [0u8; 16];
        c.read_exact(&mut h)?;
        let option = u32::from_be_bytes(h[8..12].try_into().unwrap());
        let len = u32::from_be_bytes(h[12..16].try_into().unwrap());
        let mut data = vec![0u8; len as usize];
        c.read_exact(&mut data)?;
        match option {
            proto::OPT_STRUCTURED_REPLY if behavior == Behavior::Structured => {
                structured = true;
                opt_reply(c, option, proto::REP_ACK, &[])?;
            }
            proto::OPT_GO => {
                let size = disk.lock().unwrap().len() as u64;
                let mut info = vec![0, 0];
                info.extend_from_slice(&size.to_be_bytes());
                let flags = proto::TX_HAS_FLAGS | proto::TX_SEND_FLUSH | proto::TX_SEND_FUA;
                info.extend_from_slice(&flags.to_be_bytes());
                opt_reply(c, option, proto::REP_INFO, &info)?;
                if behavior == Behavior::SmallMaxBlock {
                    let mut bs = proto::INFO_BLOCK_SIZE.to_be_bytes().to_vec();
                    for v in [512u32, 4096, 8192] {
                        bs.extend_from_slice(&v.to_be_bytes());
                    }
                    opt_reply(c, option, proto::REP_INFO, &bs)?;
                }
                opt_reply(c, option, proto::REP_ACK, &[])?;
                break;
            }
            _ => opt_reply(c, option, proto::REP_ERR_UNSUP, &[])?,
        }
    }
    let mut first_read = true;
    while !stop.load(Ordering::Relaxed) {
        let mut h = [0u8; proto::REQUEST_LEN];
        c.read_exact(&mut h)?;
        let r = proto::parse_request(&h).map_err(|_| std::io::ErrorKind::InvalidData)?;
        let (off, len) = (r.offset as usize, r.len as usize);
        let mut reply = [0u8; proto::SIMPLE_REPLY_LEN];
        if behavior == Behavior::SmallMaxBlock && len > 8192 {
            if r.kind == proto::CMD_WRITE {
                std::io::copy(&mut (&mut *c).take(len as u64), &mut std::io::sink())?;
            }
            proto::encode_simple_reply(22, r.cookie, &mut reply);
            c.write_all(&reply)?;
            continue;
        }
        match r.kind {
            proto::CMD_WRITE => {
                let mut data = vec![0u8; len];
                c.read_exact(&mut data)?;
                if behavior == Behavior::ErrorReply {
                    proto::encode_simple_reply(28, r.cookie, &mut reply);
                } else {
                    disk.lock().unwrap()[off..off + len].copy_from_slice(&data);
                    proto::encode_simple_reply(0, r.cookie, &mut reply);
                }
                c.write_all(&reply)?;
            }
            proto::CMD_READ => {
                let data = disk.lock().unwrap()[off..off + len].to_vec();
                let once = std::mem::replace(&mut first_read, false);
                match behavior {
                    Behavior::UnknownCookie if once => {
                        proto::encode_simple_reply(0, r.cookie ^ 0x5a5a_0000, &mut reply);
                        c.write_all(&reply)?;
                        c.write_all(&data)?;
                    }
                    Behavior::ShortReply if once => {
                        proto::encode_simple_reply(0, r.cookie, &mut reply);
                        c.write_all(&reply)?;
                        c.write_all(&data[..len / 2])?;
                        return Ok(());
                    }
                    _ if structured => {
                        let half = len / 2;
                        for (at, last) in [(half, false), (0, true)] {
                            let end = if last { half } else { len };
                            let mut ch = [0u8; proto::STRUCTURED_REPLY_LEN];
                            let flags = if last { proto::REPLY_FLAG_DONE } else { 0 };
                            let n = (end - at) as u32 + 8;
                            proto::encode_chunk(flags, proto::REPLY_TYPE_OFFSET_DATA, r.cookie, n, &mut ch);
                            c.write_all(&ch)?;
                            c.write_all(&((off + at) as u64).to_be_bytes())?;
                            c.write_all(&data[at..end])?;
                        }
                    }
                    _ => {
                        proto::encode_simple_reply(0, r.cookie, &mut reply);
                        c.write_all(&reply)?;
                        c.write_all(&data)?;
                    }
                }
            }
            proto::CMD_FLUSH => {
                proto::encode_simple_reply(0, r.cookie, &mut reply);
                c.write_all(&reply)?;
            }
            proto::CMD_DISC => return Ok(()),
            _ => {
                proto::encode_simple_reply(22, r.cookie, &mut reply);
                c.write_all(&reply)?;
            }
        }
    }
    Ok(())
}

pub type NbdEngine = Engine<Vec<MapEntry>, OwnedStorage, Arc<NbdBackend>, &'static MemPages>;

/// An engine over an activated export.
pub struct Rig {
    pub arena: Arc<Arena>,
    pub backend: Arc<NbdBackend>,
    pub engine: Arc<NbdEngine>,
    pub pages: &'static MemPages,
    pub slots: u64,
}

/// mkswap + activation + driver + engine on `uri`.
pub fn rig(uri: &NbdUri, config: impl FnOnce(NbdConfig) -> NbdConfig) -> Rig {
    swapdio::linux::nbd::mkswap(uri, None).unwrap();
    let act = swapdio::linux::nbd::activate(uri, ModeRequest::Auto).unwrap();
    assert_eq!(act.report.mode, IoMode::Device, "an export is a block device");
    let slots = act.map.slots();
    let arena = Arc::new(Arena::new(512).unwrap());
    let storage = StorageConfig::default();
    let backend = Arc::new(NbdBackend::new(uri, arena.clone(), config(NbdConfig::for_storage(storage))).unwrap());
    let pages: &'static MemPages = Box::leak(Box::new(MemPages::new()));
    let engine = Arc::new(Engine::new(act.map, OwnedStorage::new(storage).unwrap(), backend.clone(), pages).unwrap());
    assert!(backend.connect_sink(&engine));
    Rig { arena, backend, engine, pages, slots }
}

pub fn stamp(slot: u64, tag: u64) -> Vec<u8> {
    (0..PAGE / 8).flat_map(|i| (slot << 40 ^ tag << 20 ^ i as u64).to_le_bytes()).collect()
}

pub fn page(arena: &Arena, p: usize) -> Vec<u8> {
    let mut v = vec![0u8; PAGE];
    assert!(arena.copy_out(p, &mut v));
    v
}

pub fn wait_idle(engine: &NbdEngine) {
    let t = Instant::now();
    while engine.in_flight() != 0 {
        assert!(t.elapsed() < Duration::from_secs(30), "requests never completed");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Writes slots `first..first + n` from arena pages of the same numbers, plugged.
pub fn write_run(rig: &Rig, first: u64, n: u64, tag: u64) {
    let mut plug = rig.engine.plug();
    for s in first..first + n {
        assert!(rig.arena.copy_in(s as usize, &stamp(s, tag)));
        rig.pages.prepare_write(FolioId(s));
        plug.write(Folio::small(s, s), FsContext::MayEnterFs).unwrap();
    }
}

/// Reads slots `first..first + n` into arena pages `dst..`, plugged.
pub fn read_run(rig: &Rig, first: u64, n: u64, dst: u64) {
    let mut plug = rig.engine.plug();
    for i in 0..n {
        rig.arena.copy_in((dst + i) as usize, &[0xee; PAGE]);
        rig.pages.prepare_read(FolioId(dst + i));
        plug.read(Folio::small(dst + i, first + i)).unwrap();
    }
}
