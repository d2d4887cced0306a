//! Connecting to an NBD server: the socket ([`Stream`], TCP or Unix), the fixed
//! newstyle handshake ([`handshake`], generic over any byte stream so the fuzz target
//! can drive it), and a one-request-at-a-time client ([`NbdClient`]) for the header
//! page, `check` and `mkswap`.

use super::proto::{self, ExportInfo, ProtoError};
use super::uri::{Address, NbdUri};
use crate::errno::Errno;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Longest export name the protocol allows.
pub const MAX_EXPORT_NAME: usize = 4096;

/// Why connecting to an export failed.
#[derive(Debug, thiserror::Error)]
pub enum NbdError {
    /// The socket failed (refused, reset, timed out, closed mid-message). Shown as the
    /// OS's message without Rust's "(os error N)" (callers name the errno beside it).
    #[error("{}", crate::linux::claim::os_msg(.0))]
    Io(#[from] io::Error),
    /// The server sent something the protocol does not allow.
    #[error("protocol error: {0}")]
    Proto(#[from] ProtoError),
    /// The server refused an option with an error reply.
    #[error("server refused option {option} with reply {kind:#x}: {message}")]
    Refused {
        /// The option.
        option: u32,
        /// `NBD_REP_ERR_*`.
        kind: u32,
        /// The server's message, if any.
        message: String,
    },
    /// The export is unusable for swap (read-only, empty, block size incompatible with pages).
    #[error("export unusable for swap: {0}")]
    Unusable(&'static str),
}

impl NbdError {
    /// The errno of the failure: the socket's, `EPROTO` for protocol errors, `ENOENT`
    /// for an unknown export, `EROFS` for a read-only export, `EINVAL` otherwise.
    pub fn errno(&self) -> Errno {
        match self {
            NbdError::Io(e) => Errno(e.raw_os_error().unwrap_or(match e.kind() {
                io::ErrorKind::UnexpectedEof => libc::ECONNRESET,
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => libc::ETIMEDOUT,
                _ => libc::EIO,
            })),
            NbdError::Proto(p) => p.errno(),
            NbdError::Refused { kind: proto::REP_ERR_UNKNOWN, .. } => Errno(libc::ENOENT),
            NbdError::Refused { .. } => Errno::EINVAL,
            NbdError::Unusable("read-only export") => Errno(libc::EROFS),
            NbdError::Unusable(_) => Errno::EINVAL,
        }
    }
}

/// An export after a successful handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Export {
    /// Size in bytes.
    pub size: u64,
    /// Transmission flags (`proto::TX_*`).
    pub flags: u16,
    /// Block size constraints (minimum, preferred, maximum) as the server gave them, or
    /// the protocol's defaults (1, 4096, 32 MiB).
    pub block_size: (u32, u32, u32),
    /// Whether structured replies were negotiated.
    pub structured: bool,
}

impl Export {
    /// Whether the export is read-only.
    pub fn read_only(&self) -> bool {
        self.flags & proto::TX_READ_ONLY != 0
    }
    /// Whether `NBD_CMD_FLUSH` may be sent.
    pub fn can_flush(&self) -> bool {
        self.flags & proto::TX_SEND_FLUSH != 0
    }
    /// Whether `NBD_CMD_FLAG_FUA` may be set.
    pub fn can_fua(&self) -> bool {
        self.flags & proto::TX_SEND_FUA != 0
    }
    /// Whether several connections may be used (`NBD_FLAG_CAN_MULTI_CONN`).
    pub fn can_multi_conn(&self) -> bool {
        self.flags & proto::TX_CAN_MULTI_CONN != 0
    }
    /// Largest payload of one request: the server's maximum block size, at most 32 MiB
    /// (exports whose maximum is under a page are refused by [`Export::check_swappable`]).
    pub fn max_payload(&self) -> u64 {
        u64::from(self.block_size.2.clamp(crate::PAGE_SIZE as u32, 32 << 20))
    }
    /// Refuses exports a swap area cannot use: read-only, smaller than two pages, a
    /// minimum block size that does not divide the page size, or a maximum block size
    /// under a page (a single page could not be written).
    pub fn check_swappable(&self) -> Result<(), NbdError> {
        if self.read_only() {
            return Err(NbdError::Unusable("read-only export"));
        }
        if self.size < 2 * crate::PAGE_SIZE as u64 {
            return Err(NbdError::Unusable("smaller than two pages"));
        }
        if crate::PAGE_SIZE as u32 % self.block_size.0.max(1) != 0 {
            return Err(NbdError::Unusable("minimum block size larger than a page"));
        }
        if self.block_size.2 < crate::PAGE_SIZE as u32 {
            return Err(NbdError::Unusable("maximum block size smaller than a page"));
        }
        Ok(())
    }
}

/// What the client asks for in the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeOptions {
    /// Ask for structured replies (`NBD_OPT_STRUCTURED_REPLY`).
    pub structured_replies: bool,
}

impl Default for HandshakeOptions {
    fn default() -> Self {
        HandshakeOptions { structured_replies: true }
    }
}

fn send_option<S: Write>(s: &mut S, option: u32, payload: &[u8]) -> io::Result<()> {
    let mut h = [0u8; 16];
    let len = u32::try_from(payload.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    proto::encode_option_header(option, len, &mut h);
    let mut msg = Vec::with_capacity(16 + payload.len());
    msg.extend_from_slice(&h);
    msg.extend_from_slice(payload);
    s.write_all(&msg)?;
    s.flush()
}

fn read_opt_reply<S: Read>(s: &mut S, option: u32, payload: &mut Vec<u8>) -> Result<proto::OptReply, NbdError> {
    let mut h = [0u8; proto::OPT_REPLY_LEN];
    s.read_exact(&mut h)?;
    let r = proto::parse_opt_reply(&h, option)?;
    payload.clear();
    payload.resize(r.len as usize, 0);
    s.read_exact(payload)?;
    Ok(r)
}

fn refused(option: u32, r: proto::OptReply, payload: &[u8]) -> NbdError {
    NbdError::Refused { option, kind: r.kind, message: String::from_utf8_lossy(payload).into_owned() }
}

/// The fixed newstyle handshake on `s` for export `name`: greeting, client flags,
/// optionally `NBD_OPT_STRUCTURED_REPLY`, then `NBD_OPT_GO` asking for the block size
/// constraints (falling back to `NBD_OPT_EXPORT_NAME` if the server does not know
/// `NBD_OPT_GO`). On success the stream is in the transmission phase.
pub fn handshake<S: Read + Write>(s: &mut S, name: &str, opts: HandshakeOptions) -> Result<Export, NbdError> {
    if name.len() > MAX_EXPORT_NAME {
        return Err(NbdError::Unusable("export name longer than 4096 bytes"));
    }
    let mut g = [0u8; proto::GREETING_LEN];
    s.read_exact(&mut g)?;
    let hflags = proto::parse_greeting(&g)?;
    let no_zeroes = hflags & proto::FLAG_NO_ZEROES != 0;
    let cflags = proto::CLIENT_FIXED_NEWSTYLE | if no_zeroes { proto::CLIENT_NO_ZEROES } else { 0 };
    s.write_all(&cflags.to_be_bytes())?;
    let mut payload = Vec::new();
    let mut structured = false;
    if opts.structured_replies {
        send_option(s, proto::OPT_STRUCTURED_REPLY, &[])?;
        let r = read_opt_reply(s, proto::OPT_STRUCTURED_REPLY, &mut payload)?;
        match r.kind {
            proto::REP_ACK => structured = true,
            _ if r.is_error() => {}
            _ => return Err(ProtoError::Malformed("reply to NBD_OPT_STRUCTURED_REPLY").into()),
        }
    }
    let mut go = Vec::with_capacity(8 + name.len());
    go.extend_from_slice(&(name.len() as u32).to_be_bytes());
    go.extend_from_slice(name.as_bytes());
    go.extend_from_slice(&1u16.to_be_bytes());
    go.extend_from_slice(&proto::INFO_BLOCK_SIZE.to_be_bytes());
    send_option(s, proto::OPT_GO, &go)?;
    let mut info = ExportInfo::default();
    loop {
        let r = read_opt_reply(s, proto::OPT_GO, &mut payload)?;
        match r.kind {
            proto::REP_INFO => info.apply_info(&payload)?,
            proto::REP_ACK => break,
            proto::REP_ERR_UNSUP => {
                // An old server: NBD_OPT_EXPORT_NAME (success enters transmission at once,
                // failure closes the connection).
                send_option(s, proto::OPT_EXPORT_NAME, name.as_bytes())?;
                let mut reply = vec![0u8; if no_zeroes { 10 } else { 134 }];
                s.read_exact(&mut reply)?;
                info = ExportInfo::from_export_name_reply(&reply)?;
                structured = false;
                break;
            }
            _ if r.is_error() => return Err(refused(proto::OPT_GO, r, &payload)),
            // Replies the client did not ask for are ignored, as the protocol allows.
            _ => {}
        }
    }
    let size = info.size.ok_or(ProtoError::Malformed("NBD_OPT_GO finished without NBD_INFO_EXPORT"))?;
    if info.flags & proto::TX_HAS_FLAGS == 0 {
        info.flags = 0;
    }
    Ok(Export { size, flags: info.flags, block_size: info.block_size.unwrap_or((1, 4096, 32 << 20)), structured })
}

/// A connected socket: TCP (Nagle off) or Unix.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// Unix domain socket.
    Unix(UnixStream),
}

impl Stream {
    /// Connects to `address`, trying every resolved address in turn, each for at most
    /// `timeout`.
    pub fn connect(address: &Address, timeout: Duration) -> io::Result<Stream> {
        match address {
            Address::Unix(p) => Ok(Stream::Unix(UnixStream::connect(p)?)),
            Address::Tcp { host, port } => {
                let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address"));
                for a in (host.as_str(), *port).to_socket_addrs()? {
                    match TcpStream::connect_timeout(&a, timeout) {
                        Ok(t) => {
                            t.set_nodelay(true)?;
                            return Ok(Stream::Tcp(t));
                        }
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
        }
    }

    /// A second handle on the same socket (the reply reader's).
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(t) => Stream::Tcp(t.try_clone()?),
            Stream::Unix(u) => Stream::Unix(u.try_clone()?),
        })
    }

    /// Shuts both directions down: a reader blocked on the socket wakes with EOF.
    pub fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(t) => t.shutdown(Shutdown::Both),
            Stream::Unix(u) => u.shutdown(Shutdown::Both),
        };
    }

    /// Read timeout (`None`: block).
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(t),
            Stream::Unix(s) => s.set_read_timeout(t),
        }
    }

    /// Write timeout (`None`: block).
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(t),
            Stream::Unix(s) => s.set_write_timeout(t),
        }
    }

    /// Sends all of `iov` (a request header and its payload) with `sendmsg`, resuming
    /// after partial sends; `MSG_NOSIGNAL`, so a closed peer is `EPIPE`, never `SIGPIPE`.
    pub fn send_all(&self, iov: &mut [libc::iovec]) -> io::Result<()> {
        let fd = self.as_raw_fd();
        let mut first = 0;
        while first < iov.len() {
            let rest = &mut iov[first..];
            // SAFETY: a zeroed msghdr is valid; iov points at `rest`, live for the call.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = rest.as_mut_ptr();
            msg.msg_iovlen = rest.len() as _;
            // SAFETY: the iovecs name memory the caller keeps alive and readable for the call.
            let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut n = n as usize;
            while first < iov.len() && n >= iov[first].iov_len {
                n -= iov[first].iov_len;
                first += 1;
            }
            if let Some(v) = iov.get_mut(first) {
                v.iov_base = (v.iov_base as usize + n) as *mut libc::c_void;
                v.iov_len -= n;
            }
        }
        Ok(())
    }
}

/// A TCP stream's read side that re-arms `TCP_QUICKACK` after every read, so the
/// client acknowledges replies at once instead of after the delayed-ACK timer: a server
/// that leaves Nagle on (qemu-nbd) otherwise holds its next small reply until that ACK
/// (measured: 40 ms stalls with 32 requests in flight on one connection).
#[derive(Debug)]
pub struct QuickAck(pub Stream);

impl Read for QuickAck {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        if let Stream::Tcp(t) = &self.0 {
            let one: libc::c_int = 1;
            // SAFETY: setsockopt reads one int from a valid pointer for the given length.
            unsafe {
                libc::setsockopt(
                    t.as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_QUICKACK,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
        Ok(n)
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(t) => t.as_raw_fd(),
            Stream::Unix(u) => u.as_raw_fd(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(t) => t.read(buf),
            Stream::Unix(u) => u.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut iov = [libc::iovec { iov_base: buf.as_ptr() as *mut libc::c_void, iov_len: buf.len() }];
        self.send_all(&mut iov)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How long the handshake may take before the connection is given up.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `uri` and does the handshake (bounded by [`HANDSHAKE_TIMEOUT`]); the
/// stream is left blocking, in the transmission phase.
pub fn connect(uri: &NbdUri, opts: HandshakeOptions) -> Result<(Stream, Export), NbdError> {
    let mut s = Stream::connect(&uri.address, HANDSHAKE_TIMEOUT)?;
    s.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    s.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let export = handshake(&mut s, &uri.export, opts)?;
    s.set_read_timeout(None)?;
    s.set_write_timeout(None)?;
    Ok((s, export))
}

/// One request at a time over one connection, simple replies only: reads and writes
/// the header page, `mkswap` and `check` on an export. Not the I/O path (that is
/// [`super::NbdBackend`]).
#[derive(Debug)]
pub struct NbdClient {
    stream: Stream,
    export: Export,
    cookie: u64,
}

impl NbdClient {
    /// Connects to `uri` (no structured replies: every reply is simple).
    pub fn connect(uri: &NbdUri) -> Result<NbdClient, NbdError> {
        let (stream, export) = connect(uri, HandshakeOptions { structured_replies: false })?;
        stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
        Ok(NbdClient { stream, export, cookie: 1 })
    }

    /// The export.
    pub fn export(&self) -> &Export {
        &self.export
    }

    fn request(&mut self, kind: u16, flags: u16, offset: u64, data: &mut [u8]) -> Result<(), NbdError> {
        let len = u32::try_from(data.len()).map_err(|_| NbdError::Unusable("request too large"))?;
        let cookie = self.cookie;
        self.cookie += 1;
        let mut h = [0u8; proto::REQUEST_LEN];
        proto::encode_request(flags, kind, cookie, offset, len, &mut h);
        let mut iov = [
            libc::iovec { iov_base: h.as_mut_ptr().cast(), iov_len: h.len() },
            libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() },
        ];
        let n = if kind == proto::CMD_WRITE { 2 } else { 1 };
        self.stream.send_all(&mut iov[..n])?;
        let mut r = [0u8; proto::SIMPLE_REPLY_LEN];
        self.stream.read_exact(&mut r)?;
        match proto::parse_reply_header(&r)? {
            proto::ReplyHeader::Simple { cookie: c, .. } if c != cookie => {
                Err(ProtoError::Malformed("reply to another cookie").into())
            }
            proto::ReplyHeader::Simple { error: 0, .. } => {
                if kind == proto::CMD_READ {
                    self.stream.read_exact(data)?;
                }
                Ok(())
            }
            proto::ReplyHeader::Simple { error, .. } => {
                Err(io::Error::from_raw_os_error(proto::errno_of(error).0).into())
            }
            proto::ReplyHeader::Chunk { .. } => Err(ProtoError::Malformed("structured reply not negotiated").into()),
        }
    }

    /// Reads `buf.len()` bytes at `offset`.
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), NbdError> {
        self.request(proto::CMD_READ, 0, offset, buf)
    }

    /// Writes `buf` at `offset`, with FUA when the server offers it (the header page
    /// must be on stable storage before the export is used as swap).
    pub fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), NbdError> {
        let mut copy = buf.to_vec();
        let flags = if self.export.can_fua() { proto::CMD_FLAG_FUA } else { 0 };
        self.request(proto::CMD_WRITE, flags, offset, &mut copy)
    }

    /// `NBD_CMD_FLUSH` if the server supports it.
    pub fn flush(&mut self) -> Result<(), NbdError> {
        if self.export.can_flush() {
            self.request(proto::CMD_FLUSH, 0, 0, &mut [])?;
        }
        Ok(())
    }
}

impl Drop for NbdClient {
    /// Orderly disconnect (`NBD_CMD_DISC`), best effort.
    fn drop(&mut self) {
        let mut h = [0u8; proto::REQUEST_LEN];
        proto::encode_request(0, proto::CMD_DISC, 0, 0, 0, &mut h);
        let mut iov = [libc::iovec { iov_base: h.as_mut_ptr().cast(), iov_len: h.len() }];
        let _ = self.stream.send_all(&mut iov);
        self.stream.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(flags: u16, size: u64, block_size: (u32, u32, u32)) -> Export {
        Export { size, flags, block_size, structured: false }
    }

    #[test]
    fn exports_that_cannot_hold_swap_pages_are_refused_with_a_reason() {
        let rw = proto::TX_HAS_FLAGS;
        assert!(export(rw, 1 << 20, (1, 4096, 32 << 20)).check_swappable().is_ok());
        let e = export(rw | proto::TX_READ_ONLY, 1 << 20, (1, 4096, 32 << 20)).check_swappable().unwrap_err();
        assert_eq!(e.errno(), Errno(libc::EROFS));
        assert!(export(rw, 4096, (1, 4096, 32 << 20)).check_swappable().is_err(), "one page");
        assert!(export(rw, 1 << 20, (8192, 8192, 32 << 20)).check_swappable().is_err(), "min above a page");
        assert!(export(rw, 1 << 20, (512, 512, 1024)).check_swappable().is_err(), "max under a page");
        assert_eq!(export(rw, 1 << 20, (1, 4096, u32::MAX)).max_payload(), 32 << 20);
    }
}
