//! Reading replies in the transmission phase: one simple reply or one structured chunk
//! at a time, dispatched by cookie to whatever tracks the requests in flight
//! ([`ReplyTarget`]). Generic over the byte source, so the driver's reader threads and
//! the fuzz target run the same code.
//!
//! Anything the protocol does not allow — a bad magic, a cookie that names no request
//! in flight, a chunk outside its request, a reply cut short — is an error of the
//! connection: the reader cannot know where the next reply starts, so the driver drops
//! the connection, fails what was in flight on it and reconnects.

use super::proto::{self, ProtoError, ReplyHeader};
use crate::errno::Errno;
use std::io::{self, Read};

/// Which bytes of a structured read the chunks have delivered so far: up to
/// [`Coverage::MAX_SPANS`] disjoint byte ranges, merged when they touch. Chunks must not
/// overlap (the protocol forbids it); a read is complete only when one range covers it
/// all, so overlapping chunks that leave a gap can never pass for a full read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    spans: [(u64, u64); Coverage::MAX_SPANS],
    n: usize,
}

impl Coverage {
    /// Disjoint ranges tracked; more out-of-order fragments than this fail the request.
    pub const MAX_SPANS: usize = 8;

    /// Adds `[start, end)`. `false` if it overlaps what was covered, or if it would be
    /// one fragment too many (the request then fails with `EPROTO`).
    pub fn add(&mut self, start: u64, end: u64) -> bool {
        if start >= end {
            return true;
        }
        let spans = &self.spans[..self.n];
        if spans.iter().any(|&(s, e)| start < e && s < end) {
            return false;
        }
        let mut merged = (start, end);
        let mut keep = 0;
        for i in 0..self.n {
            let (s, e) = self.spans[i];
            if e == merged.0 || s == merged.1 {
                merged = (merged.0.min(s), merged.1.max(e));
            } else {
                self.spans[keep] = (s, e);
                keep += 1;
            }
        }
        if keep == Self::MAX_SPANS {
            return false;
        }
        self.spans[keep] = merged;
        self.n = keep + 1;
        true
    }

    /// Whether `[0, len)` is covered.
    pub fn covers(&self, len: u64) -> bool {
        len == 0 || (self.n == 1 && self.spans[0] == (0, len))
    }
}

/// A request in flight, as the reply reader needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// `NBD_CMD_*` sent.
    pub kind: u16,
    /// Export offset of the request.
    pub offset: u64,
    /// Bytes of the request.
    pub len: u64,
    /// Bytes covered so far by data and hole chunks (structured replies).
    pub covered: Coverage,
    /// First error chunk seen (structured replies).
    pub error: Option<Errno>,
}

/// What the reader talks to: the table of requests in flight on this connection.
pub trait ReplyTarget {
    /// The request in flight under `cookie` on this connection, if any.
    fn pending(&mut self, cookie: u64) -> Option<Pending>;
    /// Reads exactly `len` bytes from `src` into the read request's memory, starting
    /// `rel` bytes into the request (`rel + len <= pending.len` is checked before).
    fn receive<R: Read>(&mut self, cookie: u64, rel: u64, len: u64, src: &mut R) -> io::Result<()>;
    /// Zeroes `len` bytes of the read request's memory at `rel` (a hole chunk).
    fn zero(&mut self, cookie: u64, rel: u64, len: u64);
    /// Records chunk progress of a structured reply that is not done yet.
    fn progress(&mut self, cookie: u64, covered: Coverage, error: Option<Errno>);
    /// The request is finished: bytes transferred, or the error.
    fn finish(&mut self, cookie: u64, result: Result<u64, Errno>);
}

/// Why the connection cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// The socket failed or closed (a short reply ends here too).
    #[error("connection lost: {0}")]
    Io(#[from] io::Error),
    /// The server broke the protocol.
    #[error("protocol error: {0}")]
    Proto(#[from] ProtoError),
    /// A reply named a cookie with no request in flight on this connection.
    #[error("reply for unknown cookie {0:#x}")]
    UnknownCookie(u64),
}

impl ReplyError {
    /// The errno the requests in flight fail with: `ECONNRESET` when the connection was
    /// lost, `EPROTO` when the server broke the protocol.
    pub fn errno(&self) -> Errno {
        match self {
            ReplyError::Io(_) => Errno(libc::ECONNRESET),
            ReplyError::Proto(_) | ReplyError::UnknownCookie(_) => Errno(proto::EPROTO),
        }
    }
}

/// Reads one reply (a simple reply with its data, or one structured chunk) from `src`
/// and hands it to `t`. Returns `Ok` when the connection can go on.
pub fn read_reply<R: Read, T: ReplyTarget>(src: &mut R, t: &mut T) -> Result<(), ReplyError> {
    let mut h = [0u8; proto::STRUCTURED_REPLY_LEN];
    src.read_exact(&mut h[..4])?;
    let n = proto::reply_header_len(u32::from_be_bytes([h[0], h[1], h[2], h[3]]))?;
    src.read_exact(&mut h[4..n])?;
    let header = proto::parse_reply_header(&h[..n])?;
    let cookie = header.cookie();
    let p = t.pending(cookie).ok_or(ReplyError::UnknownCookie(cookie))?;
    match header {
        ReplyHeader::Simple { error: 0, .. } => {
            if p.kind == proto::CMD_READ {
                t.receive(cookie, 0, p.len, src)?;
            }
            t.finish(cookie, Ok(p.len));
        }
        ReplyHeader::Simple { error, .. } => t.finish(cookie, Err(proto::errno_of(error))),
        ReplyHeader::Chunk { flags, kind, len, .. } => {
            let (mut covered, mut error) = (p.covered, p.error);
            let len64 = u64::from(len);
            match kind {
                proto::REPLY_TYPE_NONE if len == 0 => {}
                proto::REPLY_TYPE_OFFSET_DATA if p.kind == proto::CMD_READ && len > 8 => {
                    let mut off = [0u8; 8];
                    src.read_exact(&mut off)?;
                    let data = len64 - 8;
                    let rel = proto::chunk_place(p.offset, p.len, u64::from_be_bytes(off), data)?;
                    if !covered.add(rel, rel + data) {
                        error.get_or_insert(Errno(proto::EPROTO));
                    }
                    t.receive(cookie, rel, data, src)?;
                }
                proto::REPLY_TYPE_OFFSET_HOLE if p.kind == proto::CMD_READ && len == 12 => {
                    let mut b = [0u8; 12];
                    src.read_exact(&mut b)?;
                    let (offset, hole) = proto::parse_hole(&b)?;
                    let rel = proto::chunk_place(p.offset, p.len, offset, u64::from(hole))?;
                    if !covered.add(rel, rel + u64::from(hole)) {
                        error.get_or_insert(Errno(proto::EPROTO));
                    }
                    t.zero(cookie, rel, u64::from(hole));
                }
                k if k & proto::REPLY_TYPE_ERROR_BIT != 0 => {
                    if len > proto::MAX_CHUNK_META {
                        return Err(ProtoError::TooLarge(len).into());
                    }
                    let mut b = vec![0u8; len as usize];
                    src.read_exact(&mut b)?;
                    let e = proto::parse_error_chunk(&b)?;
                    error.get_or_insert(e);
                }
                _ => return Err(ProtoError::Malformed("structured chunk").into()),
            }
            if flags & proto::REPLY_FLAG_DONE != 0 {
                let result = match error {
                    Some(e) => Err(e),
                    // A read is done only when its chunks covered every byte.
                    None if p.kind == proto::CMD_READ && !covered.covers(p.len) => Err(Errno(proto::EPROTO)),
                    None => Ok(p.len),
                };
                t.finish(cookie, result);
            } else {
                t.progress(cookie, covered, error);
            }
        }
    }
    Ok(())
}

/// Discards `len` bytes from `src` (for targets that keep no memory, e.g. the fuzz
/// target); `UnexpectedEof` if the stream ends first.
pub fn discard<R: Read>(src: &mut R, len: u64) -> io::Result<()> {
    let n = io::copy(&mut src.take(len), &mut io::sink())?;
    if n < len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Table {
        inflight: HashMap<u64, Pending>,
        data: HashMap<u64, Vec<u8>>,
        done: Vec<(u64, Result<u64, Errno>)>,
    }

    impl Table {
        fn add(&mut self, cookie: u64, kind: u16, offset: u64, len: u64) {
            self.inflight.insert(cookie, Pending { kind, offset, len, covered: Coverage::default(), error: None });
            self.data.insert(cookie, vec![0xee; len as usize]);
        }
    }

    impl ReplyTarget for Table {
        fn pending(&mut self, cookie: u64) -> Option<Pending> {
            self.inflight.get(&cookie).copied()
        }
        fn receive<R: Read>(&mut self, cookie: u64, rel: u64, len: u64, src: &mut R) -> io::Result<()> {
            let buf = self.data.get_mut(&cookie).unwrap();
            src.read_exact(&mut buf[rel as usize..(rel + len) as usize])
        }
        fn zero(&mut self, cookie: u64, rel: u64, len: u64) {
            let buf = self.data.get_mut(&cookie).unwrap();
            buf[rel as usize..(rel + len) as usize].fill(0);
        }
        fn progress(&mut self, cookie: u64, covered: Coverage, error: Option<Errno>) {
            let p = self.inflight.get_mut(&cookie).unwrap();
            p.covered = covered;
            p.error = error;
        }
        fn finish(&mut self, cookie: u64, result: Result<u64, Errno>) {
            self.inflight.remove(&cookie);
            self.done.push((cookie, result));
        }
    }

    fn simple(error: u32, cookie: u64) -> Vec<u8> {
        let mut b = [0u8; proto::SIMPLE_REPLY_LEN];
        proto::encode_simple_reply(error, cookie, &mut b);
        b.to_vec()
    }

    fn chunk(flags: u16, kind: u16, cookie: u64, payload: &[u8]) -> Vec<u8> {
        let mut b = [0u8; proto::STRUCTURED_REPLY_LEN];
        proto::encode_chunk(flags, kind, cookie, payload.len() as u32, &mut b);
        let mut v = b.to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn simple_replies_complete_reads_with_data_and_writes_without() {
        let mut t = Table::default();
        t.add(1, proto::CMD_READ, 4096, 8);
        t.add(2, proto::CMD_WRITE, 0, 4096);
        t.add(3, proto::CMD_WRITE, 0, 4096);
        let mut wire = simple(0, 1);
        wire.extend_from_slice(b"abcdefgh");
        wire.extend(simple(0, 2));
        wire.extend(simple(28, 3));
        let mut src = &wire[..];
        for _ in 0..3 {
            read_reply(&mut src, &mut t).unwrap();
        }
        assert_eq!(t.done, vec![(1, Ok(8)), (2, Ok(4096)), (3, Err(Errno::ENOSPC))]);
        assert_eq!(t.data[&1], b"abcdefgh");
    }

    #[test]
    fn structured_reads_assemble_out_of_order_chunks_and_holes() {
        let mut t = Table::default();
        t.add(9, proto::CMD_READ, 8192, 16);
        let mut d = (8192u64 + 8).to_be_bytes().to_vec();
        d.extend_from_slice(b"BBBBBBBB");
        let mut hole = 8192u64.to_be_bytes().to_vec();
        hole.extend_from_slice(&8u32.to_be_bytes());
        let mut wire = chunk(0, proto::REPLY_TYPE_OFFSET_DATA, 9, &d);
        wire.extend(chunk(proto::REPLY_FLAG_DONE, proto::REPLY_TYPE_OFFSET_HOLE, 9, &hole));
        let mut src = &wire[..];
        read_reply(&mut src, &mut t).unwrap();
        assert!(t.done.is_empty());
        read_reply(&mut src, &mut t).unwrap();
        assert_eq!(t.done, vec![(9, Ok(16))]);
        assert_eq!(t.data[&9], b"\0\0\0\0\0\0\0\0BBBBBBBB");
    }

    #[test]
    fn a_structured_read_missing_bytes_or_with_an_error_chunk_fails() {
        let mut t = Table::default();
        t.add(1, proto::CMD_READ, 0, 16);
        t.add(2, proto::CMD_READ, 0, 16);
        let mut d = 0u64.to_be_bytes().to_vec();
        d.extend_from_slice(b"AAAAAAAA");
        let mut wire = chunk(proto::REPLY_FLAG_DONE, proto::REPLY_TYPE_OFFSET_DATA, 1, &d);
        wire.extend(chunk(proto::REPLY_FLAG_DONE, proto::REPLY_TYPE_ERROR, 2, &[0, 0, 0, 5, 0, 0]));
        let mut src = &wire[..];
        read_reply(&mut src, &mut t).unwrap();
        read_reply(&mut src, &mut t).unwrap();
        assert_eq!(t.done, vec![(1, Err(Errno(proto::EPROTO))), (2, Err(Errno::EIO))]);
    }

    #[test]
    fn overlapping_chunks_that_add_up_to_the_length_do_not_pass_for_a_full_read() {
        let mut t = Table::default();
        t.add(1, proto::CMD_READ, 0, 16);
        let mut d = 0u64.to_be_bytes().to_vec();
        d.extend_from_slice(b"AAAAAAAA");
        let mut wire = chunk(0, proto::REPLY_TYPE_OFFSET_DATA, 1, &d);
        wire.extend(chunk(proto::REPLY_FLAG_DONE, proto::REPLY_TYPE_OFFSET_DATA, 1, &d));
        let mut src = &wire[..];
        read_reply(&mut src, &mut t).unwrap();
        read_reply(&mut src, &mut t).unwrap();
        assert_eq!(t.done, vec![(1, Err(Errno(proto::EPROTO)))]);
        let mut c = Coverage::default();
        assert!(c.add(8, 16) && c.add(0, 8) && c.covers(16));
        assert!(!c.add(4, 5), "overlap");
        let mut c = Coverage::default();
        for i in 0..Coverage::MAX_SPANS as u64 {
            assert!(c.add(2 * i, 2 * i + 1));
        }
        assert!(!c.add(100, 101), "one fragment too many");
        assert!(c.add(1, 2), "touching fragments still merge");
    }

    #[test]
    fn unknown_cookie_short_reply_and_bad_magic_end_the_connection() {
        let mut t = Table::default();
        t.add(1, proto::CMD_READ, 0, 4096);
        let wire = simple(0, 77);
        assert!(matches!(read_reply(&mut &wire[..], &mut t), Err(ReplyError::UnknownCookie(77))));
        let mut wire = simple(0, 1);
        wire.extend_from_slice(&[1; 100]);
        let e = read_reply(&mut &wire[..], &mut t).unwrap_err();
        assert!(matches!(e, ReplyError::Io(_)) && e.errno() == Errno(libc::ECONNRESET), "short data: {e}");
        assert!(matches!(read_reply(&mut &[1u8, 2, 3, 4, 5][..], &mut t), Err(ReplyError::Proto(_))));
        let d = 4096u64.to_be_bytes().to_vec();
        let wire = chunk(0, proto::REPLY_TYPE_OFFSET_DATA, 1, &[d.clone(), vec![0; 8]].concat());
        assert!(matches!(read_reply(&mut &wire[..], &mut t), Err(ReplyError::Proto(_))), "chunk outside the request");
        assert!(t.done.is_empty());
    }
}
