//! The NBD wire protocol (the client side of the fixed newstyle handshake and of the
//! transmission phase), as pure functions over byte slices: no I/O, no allocation, no
//! panic on any input. Used by the handshake, the reply readers, the tests' fake
//! servers and the fuzz targets.
//!
//! Reference: the NBD protocol document (`doc/proto.md` of the NBD project), the same
//! protocol the kernel's NBD client (`drivers/block/nbd.c`) speaks after `nbd-client`
//! has done the handshake in userspace. Every integer on the wire is big-endian.

use crate::errno::Errno;

/// `NBDMAGIC`: the first 8 bytes a newstyle server sends.
pub const NBD_MAGIC: u64 = 0x4e42_444d_4147_4943;
/// `IHAVEOPT`: follows [`NBD_MAGIC`] in the newstyle greeting; also prefixes each option.
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// The oldstyle greeting's second magic (refused: no export names, no options).
pub const OLDSTYLE_MAGIC: u64 = 0x0000_4202_8186_1253;
/// Magic of an option reply.
pub const OPT_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// Magic of a transmission request.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// Magic of a simple reply.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
/// Magic of a structured reply chunk.
pub const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;

/// Server handshake flag: fixed newstyle (`NBD_FLAG_FIXED_NEWSTYLE`).
pub const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
/// Server handshake flag: may omit the 124 zero bytes (`NBD_FLAG_NO_ZEROES`).
pub const FLAG_NO_ZEROES: u16 = 1 << 1;
/// Client flag: fixed newstyle (`NBD_FLAG_C_FIXED_NEWSTYLE`).
pub const CLIENT_FIXED_NEWSTYLE: u32 = 1 << 0;
/// Client flag: no zeroes (`NBD_FLAG_C_NO_ZEROES`).
pub const CLIENT_NO_ZEROES: u32 = 1 << 1;

/// `NBD_OPT_EXPORT_NAME`: the old way to pick an export (no error reply possible).
pub const OPT_EXPORT_NAME: u32 = 1;
/// `NBD_OPT_ABORT`.
pub const OPT_ABORT: u32 = 2;
/// `NBD_OPT_GO`: pick the export and enter transmission, with info replies.
pub const OPT_GO: u32 = 7;
/// `NBD_OPT_STRUCTURED_REPLY`.
pub const OPT_STRUCTURED_REPLY: u32 = 8;

/// `NBD_REP_ACK`.
pub const REP_ACK: u32 = 1;
/// `NBD_REP_INFO`.
pub const REP_INFO: u32 = 3;
/// Bit 31 of a reply type marks an error reply (`NBD_REP_FLAG_ERROR`).
pub const REP_FLAG_ERROR: u32 = 1 << 31;
/// `NBD_REP_ERR_UNSUP`: the option is unknown to the server.
pub const REP_ERR_UNSUP: u32 = REP_FLAG_ERROR | 1;
/// `NBD_REP_ERR_UNKNOWN`: no such export.
pub const REP_ERR_UNKNOWN: u32 = REP_FLAG_ERROR | 6;

/// `NBD_INFO_EXPORT`: size and transmission flags.
pub const INFO_EXPORT: u16 = 0;
/// `NBD_INFO_BLOCK_SIZE`: minimum, preferred and maximum block size.
pub const INFO_BLOCK_SIZE: u16 = 3;

/// Transmission flag: the flags field is valid (`NBD_FLAG_HAS_FLAGS`).
pub const TX_HAS_FLAGS: u16 = 1 << 0;
/// Transmission flag: read-only export.
pub const TX_READ_ONLY: u16 = 1 << 1;
/// Transmission flag: `NBD_CMD_FLUSH` is supported.
pub const TX_SEND_FLUSH: u16 = 1 << 2;
/// Transmission flag: `NBD_CMD_FLAG_FUA` is supported.
pub const TX_SEND_FUA: u16 = 1 << 3;
/// Transmission flag: several connections see each other's writes once flushed
/// (`NBD_FLAG_CAN_MULTI_CONN`).
pub const TX_CAN_MULTI_CONN: u16 = 1 << 8;

/// `NBD_CMD_READ`.
pub const CMD_READ: u16 = 0;
/// `NBD_CMD_WRITE`.
pub const CMD_WRITE: u16 = 1;
/// `NBD_CMD_DISC`: orderly disconnect (no reply).
pub const CMD_DISC: u16 = 2;
/// `NBD_CMD_FLUSH`.
pub const CMD_FLUSH: u16 = 3;
/// Command flag: force unit access (`NBD_CMD_FLAG_FUA`).
pub const CMD_FLAG_FUA: u16 = 1 << 0;

/// Structured reply flag: last chunk of the reply (`NBD_REPLY_FLAG_DONE`).
pub const REPLY_FLAG_DONE: u16 = 1 << 0;
/// `NBD_REPLY_TYPE_NONE`.
pub const REPLY_TYPE_NONE: u16 = 0;
/// `NBD_REPLY_TYPE_OFFSET_DATA`.
pub const REPLY_TYPE_OFFSET_DATA: u16 = 1;
/// `NBD_REPLY_TYPE_OFFSET_HOLE`.
pub const REPLY_TYPE_OFFSET_HOLE: u16 = 2;
/// Bit 15 of a chunk type marks an error chunk.
pub const REPLY_TYPE_ERROR_BIT: u16 = 1 << 15;
/// `NBD_REPLY_TYPE_ERROR`.
pub const REPLY_TYPE_ERROR: u16 = REPLY_TYPE_ERROR_BIT | 1;
/// `NBD_REPLY_TYPE_ERROR_OFFSET`.
pub const REPLY_TYPE_ERROR_OFFSET: u16 = REPLY_TYPE_ERROR_BIT | 2;

/// Bytes of the server greeting (magic, `IHAVEOPT`, handshake flags).
pub const GREETING_LEN: usize = 18;
/// Bytes of an option reply header.
pub const OPT_REPLY_LEN: usize = 20;
/// Bytes of a transmission request header.
pub const REQUEST_LEN: usize = 28;
/// Bytes of a simple reply.
pub const SIMPLE_REPLY_LEN: usize = 16;
/// Bytes of a structured reply chunk header.
pub const STRUCTURED_REPLY_LEN: usize = 20;
/// Largest option reply payload the client reads (servers send a few hundred bytes at most).
pub const MAX_OPT_REPLY_PAYLOAD: u32 = 64 << 10;
/// Largest non-data structured chunk payload the client accepts (error messages).
pub const MAX_CHUNK_META: u32 = 64 << 10;

/// What is wrong with bytes from the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// Fewer bytes than the message needs.
    #[error("short message: {got} of {need} bytes")]
    Short {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        got: usize,
    },
    /// A magic number did not match.
    #[error("bad magic {found:#x} in {what}")]
    BadMagic {
        /// Which message.
        what: &'static str,
        /// What was there.
        found: u64,
    },
    /// The server speaks the oldstyle protocol (no export names, no options).
    #[error("oldstyle NBD server: not supported (use a newstyle server)")]
    Oldstyle,
    /// The server does not offer the fixed newstyle handshake.
    #[error("server lacks the fixed newstyle handshake")]
    NotFixedNewstyle,
    /// An option reply answers another option than the one sent.
    #[error("reply to option {got}, expected {expected}")]
    WrongOption {
        /// Option sent.
        expected: u32,
        /// Option in the reply.
        got: u32,
    },
    /// A payload is larger than the client accepts.
    #[error("payload of {0} bytes is too large")]
    TooLarge(u32),
    /// A payload's length does not fit its type.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

impl ProtoError {
    /// The errno a request failed by this protocol error reports: `EPROTO`.
    pub const fn errno(&self) -> Errno {
        Errno(EPROTO)
    }
}

/// `EPROTO`: a protocol error (reply that makes no sense for the request).
pub const EPROTO: i32 = 71;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(s);
    Some(u32::from_be_bytes(a))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_be_bytes(a))
}

fn need(b: &[u8], n: usize) -> Result<(), ProtoError> {
    if b.len() < n {
        Err(ProtoError::Short { need: n, got: b.len() })
    } else {
        Ok(())
    }
}

/// Parses the server greeting; returns the handshake flags. Refuses oldstyle servers
/// and servers without the fixed newstyle flag.
pub fn parse_greeting(b: &[u8]) -> Result<u16, ProtoError> {
    need(b, GREETING_LEN)?;
    let magic = be64(b, 0).unwrap_or(0);
    if magic != NBD_MAGIC {
        return Err(ProtoError::BadMagic { what: "greeting", found: magic });
    }
    match be64(b, 8).unwrap_or(0) {
        IHAVEOPT => {}
        OLDSTYLE_MAGIC => return Err(ProtoError::Oldstyle),
        m => return Err(ProtoError::BadMagic { what: "greeting", found: m }),
    }
    let flags = be16(b, 16).unwrap_or(0);
    if flags & FLAG_FIXED_NEWSTYLE == 0 {
        return Err(ProtoError::NotFixedNewstyle);
    }
    Ok(flags)
}

/// Encodes an option header (`IHAVEOPT`, option, payload length) into `out`.
pub fn encode_option_header(option: u32, len: u32, out: &mut [u8; 16]) {
    out[..8].copy_from_slice(&IHAVEOPT.to_be_bytes());
    out[8..12].copy_from_slice(&option.to_be_bytes());
    out[12..16].copy_from_slice(&len.to_be_bytes());
}

/// An option reply header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptReply {
    /// The option answered.
    pub option: u32,
    /// `NBD_REP_*`.
    pub kind: u32,
    /// Payload bytes that follow.
    pub len: u32,
}

impl OptReply {
    /// Whether this is an error reply.
    pub const fn is_error(&self) -> bool {
        self.kind & REP_FLAG_ERROR != 0
    }
}

/// Parses an option reply header answering `expected`.
pub fn parse_opt_reply(b: &[u8], expected: u32) -> Result<OptReply, ProtoError> {
    need(b, OPT_REPLY_LEN)?;
    let magic = be64(b, 0).unwrap_or(0);
    if magic != OPT_REPLY_MAGIC {
        return Err(ProtoError::BadMagic { what: "option reply", found: magic });
    }
    let r = OptReply { option: be32(b, 8).unwrap_or(0), kind: be32(b, 12).unwrap_or(0), len: be32(b, 16).unwrap_or(0) };
    if r.option != expected {
        return Err(ProtoError::WrongOption { expected, got: r.option });
    }
    if r.len > MAX_OPT_REPLY_PAYLOAD {
        return Err(ProtoError::TooLarge(r.len));
    }
    Ok(r)
}

/// What `NBD_REP_INFO` payloads said about the export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportInfo {
    /// Export size in bytes (`None` until `NBD_INFO_EXPORT` arrives).
    pub size: Option<u64>,
    /// Transmission flags (`TX_*`).
    pub flags: u16,
    /// `NBD_INFO_BLOCK_SIZE`: (minimum, preferred, maximum), if sent.
    pub block_size: Option<(u32, u32, u32)>,
}

impl ExportInfo {
    /// Applies one `NBD_REP_INFO` payload. Unknown info types are ignored, as the
    /// protocol asks.
    pub fn apply_info(&mut self, payload: &[u8]) -> Result<(), ProtoError> {
        let kind = be16(payload, 0).ok_or(ProtoError::Malformed("NBD_REP_INFO"))?;
        match kind {
            INFO_EXPORT => {
                if payload.len() != 12 {
                    return Err(ProtoError::Malformed("NBD_INFO_EXPORT"));
                }
                self.size = be64(payload, 2);
                self.flags = be16(payload, 10).unwrap_or(0);
            }
            INFO_BLOCK_SIZE => {
                if payload.len() != 14 {
                    return Err(ProtoError::Malformed("NBD_INFO_BLOCK_SIZE"));
                }
                let (min, pref, max) =
                    (be32(payload, 2).unwrap_or(0), be32(payload, 6).unwrap_or(0), be32(payload, 10).unwrap_or(0));
                let sane = min.is_power_of_two()
                    && min <= 65536
                    && pref.is_power_of_two()
                    && pref >= min.max(512)
                    && max >= pref.min(32 << 20)
                    && (max == u32::MAX || max % min == 0);
                if !sane {
                    return Err(ProtoError::Malformed("NBD_INFO_BLOCK_SIZE constraints"));
                }
                self.block_size = Some((min, pref, max));
            }
            _ => {}
        }
        Ok(())
    }

    /// Parses the reply to `NBD_OPT_EXPORT_NAME` (size, flags, then 124 zeroes unless
    /// no-zeroes was agreed; only the first 10 bytes are looked at).
    pub fn from_export_name_reply(b: &[u8]) -> Result<ExportInfo, ProtoError> {
        need(b, 10)?;
        Ok(ExportInfo { size: be64(b, 0), flags: be16(b, 8).unwrap_or(0), block_size: None })
    }
}

/// Encodes a transmission request header.
pub fn encode_request(flags: u16, kind: u16, cookie: u64, offset: u64, len: u32, out: &mut [u8; REQUEST_LEN]) {
    out[..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
    out[4..6].copy_from_slice(&flags.to_be_bytes());
    out[6..8].copy_from_slice(&kind.to_be_bytes());
    out[8..16].copy_from_slice(&cookie.to_be_bytes());
    out[16..24].copy_from_slice(&offset.to_be_bytes());
    out[24..28].copy_from_slice(&len.to_be_bytes());
}

/// A transmission request as a server sees it (for fake servers in tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHeader {
    /// Command flags.
    pub flags: u16,
    /// `NBD_CMD_*`.
    pub kind: u16,
    /// The cookie.
    pub cookie: u64,
    /// Byte offset.
    pub offset: u64,
    /// Bytes.
    pub len: u32,
}

/// Parses a transmission request header (the server side; for fake servers in tests).
pub fn parse_request(b: &[u8]) -> Result<RequestHeader, ProtoError> {
    need(b, REQUEST_LEN)?;
    let magic = be32(b, 0).unwrap_or(0);
    if magic != REQUEST_MAGIC {
        return Err(ProtoError::BadMagic { what: "request", found: u64::from(magic) });
    }
    Ok(RequestHeader {
        flags: be16(b, 4).unwrap_or(0),
        kind: be16(b, 6).unwrap_or(0),
        cookie: be64(b, 8).unwrap_or(0),
        offset: be64(b, 16).unwrap_or(0),
        len: be32(b, 24).unwrap_or(0),
    })
}

/// The fixed part of a reply: simple or one structured chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyHeader {
    /// A simple reply: `error` (0 on success) for `cookie`; a successful read's data
    /// follows (as many bytes as the request asked for).
    Simple {
        /// NBD error value.
        error: u32,
        /// The request's cookie.
        cookie: u64,
    },
    /// A structured chunk: `len` payload bytes follow.
    Chunk {
        /// `REPLY_FLAG_*`.
        flags: u16,
        /// `REPLY_TYPE_*`.
        kind: u16,
        /// The request's cookie.
        cookie: u64,
        /// Payload bytes.
        len: u32,
    },
}

impl ReplyHeader {
    /// The cookie the reply answers.
    pub const fn cookie(&self) -> u64 {
        match *self {
            ReplyHeader::Simple { cookie, .. } | ReplyHeader::Chunk { cookie, .. } => cookie,
        }
    }
}

/// How many header bytes a reply starting with magic `magic` has: 16 (simple) or 20
/// (structured).
pub fn reply_header_len(magic: u32) -> Result<usize, ProtoError> {
    match magic {
        SIMPLE_REPLY_MAGIC => Ok(SIMPLE_REPLY_LEN),
        STRUCTURED_REPLY_MAGIC => Ok(STRUCTURED_REPLY_LEN),
        m => Err(ProtoError::BadMagic { what: "reply", found: u64::from(m) }),
    }
}

/// Parses a reply header (16 or 20 bytes, per [`reply_header_len`]).
pub fn parse_reply_header(b: &[u8]) -> Result<ReplyHeader, ProtoError> {
    need(b, 4)?;
    let magic = be32(b, 0).unwrap_or(0);
    need(b, reply_header_len(magic)?)?;
    if magic == SIMPLE_REPLY_MAGIC {
        return Ok(ReplyHeader::Simple { error: be32(b, 4).unwrap_or(0), cookie: be64(b, 8).unwrap_or(0) });
    }
    Ok(ReplyHeader::Chunk {
        flags: be16(b, 4).unwrap_or(0),
        kind: be16(b, 6).unwrap_or(0),
        cookie: be64(b, 8).unwrap_or(0),
        len: be32(b, 16).unwrap_or(0),
    })
}

/// Encodes a simple reply header (for fake servers in tests).
pub fn encode_simple_reply(error: u32, cookie: u64, out: &mut [u8; SIMPLE_REPLY_LEN]) {
    out[..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    out[4..8].copy_from_slice(&error.to_be_bytes());
    out[8..16].copy_from_slice(&cookie.to_be_bytes());
}

/// Encodes a structured chunk header (for fake servers in tests).
pub fn encode_chunk(flags: u16, kind: u16, cookie: u64, len: u32, out: &mut [u8; STRUCTURED_REPLY_LEN]) {
    out[..4].copy_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
    out[4..6].copy_from_slice(&flags.to_be_bytes());
    out[6..8].copy_from_slice(&kind.to_be_bytes());
    out[8..16].copy_from_slice(&cookie.to_be_bytes());
    out[16..20].copy_from_slice(&len.to_be_bytes());
}

/// The Linux errno for an NBD error value. The protocol's values are Linux's
/// (`EPERM`, `EIO`, `ENOMEM`, `EINVAL`, `ENOSPC`, `EOVERFLOW`, `ENOTSUP`, `ESHUTDOWN`);
/// anything else, and 0 where an error was announced, is `EIO`, as the protocol asks.
pub const fn errno_of(nbd_error: u32) -> Errno {
    match nbd_error {
        1 | 5 | 12 | 22 | 28 | 75 | 95 | 108 => Errno(nbd_error as i32),
        _ => Errno::EIO,
    }
}

/// The error value of an error chunk's payload (`NBD_REPLY_TYPE_ERROR` and
/// `NBD_REPLY_TYPE_ERROR_OFFSET`: error, message length, message, ...).
pub fn parse_error_chunk(payload: &[u8]) -> Result<Errno, ProtoError> {
    let error = be32(payload, 0).ok_or(ProtoError::Malformed("error chunk"))?;
    let msg = be16(payload, 4).ok_or(ProtoError::Malformed("error chunk"))?;
    if 6 + usize::from(msg) > payload.len() {
        return Err(ProtoError::Malformed("error chunk message length"));
    }
    Ok(errno_of(error))
}

/// The offset and hole length of an `NBD_REPLY_TYPE_OFFSET_HOLE` payload.
pub fn parse_hole(payload: &[u8]) -> Result<(u64, u32), ProtoError> {
    if payload.len() != 12 {
        return Err(ProtoError::Malformed("hole chunk"));
    }
    Ok((be64(payload, 0).unwrap_or(0), be32(payload, 8).unwrap_or(0)))
}

/// Where the data of a chunk (`offset`, `len` bytes, absolute export offsets) lands in a
/// read request of `req_len` bytes at `req_offset`: the byte offset inside the request,
/// or an error if the chunk is not entirely inside the request.
pub fn chunk_place(req_offset: u64, req_len: u64, offset: u64, len: u64) -> Result<u64, ProtoError> {
    let rel = offset.checked_sub(req_offset).ok_or(ProtoError::Malformed("chunk before the request"))?;
    let end = rel.checked_add(len).ok_or(ProtoError::Malformed("chunk length"))?;
    if end > req_len {
        return Err(ProtoError::Malformed("chunk past the request"));
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_requires_fixed_newstyle_and_refuses_oldstyle() {
        let mut g = [0u8; GREETING_LEN];
        g[..8].copy_from_slice(&NBD_MAGIC.to_be_bytes());
        g[8..16].copy_from_slice(&IHAVEOPT.to_be_bytes());
        g[16..].copy_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
        assert_eq!(parse_greeting(&g), Ok(3));
        g[17] = 0;
        assert_eq!(parse_greeting(&g), Err(ProtoError::NotFixedNewstyle));
        g[8..16].copy_from_slice(&OLDSTYLE_MAGIC.to_be_bytes());
        assert_eq!(parse_greeting(&g), Err(ProtoError::Oldstyle));
        assert!(matches!(parse_greeting(&g[..10]), Err(ProtoError::Short { .. })));
    }

    #[test]
    fn replies_round_trip_and_unknown_magic_is_refused() {
        let mut s = [0u8; SIMPLE_REPLY_LEN];
        encode_simple_reply(5, 0xdead_beef_0000_0001, &mut s);
        assert_eq!(parse_reply_header(&s), Ok(ReplyHeader::Simple { error: 5, cookie: 0xdead_beef_0000_0001 }));
        let mut c = [0u8; STRUCTURED_REPLY_LEN];
        encode_chunk(REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, 7, 4104, &mut c);
        assert_eq!(parse_reply_header(&c), Ok(ReplyHeader::Chunk { flags: 1, kind: 1, cookie: 7, len: 4104 }));
        assert!(matches!(parse_reply_header(&[0, 1, 2, 3, 4]), Err(ProtoError::BadMagic { .. })));
        assert!(matches!(parse_reply_header(&c[..17]), Err(ProtoError::Short { .. })));
    }

    #[test]
    fn block_size_constraints_are_validated() {
        let mut info = ExportInfo::default();
        let mut p = vec![0, 3];
        p.extend_from_slice(&512u32.to_be_bytes());
        p.extend_from_slice(&4096u32.to_be_bytes());
        p.extend_from_slice(&(32u32 << 20).to_be_bytes());
        assert_eq!(info.apply_info(&p), Ok(()));
        assert_eq!(info.block_size, Some((512, 4096, 32 << 20)));
        p[2..6].copy_from_slice(&3u32.to_be_bytes());
        assert!(info.apply_info(&p).is_err(), "minimum not a power of two");
        assert!(info.apply_info(&[0, 0, 1]).is_err(), "short export info");
        assert_eq!(info.apply_info(&[0, 99]), Ok(()), "unknown info types are ignored");
    }

    #[test]
    fn nbd_errors_map_to_linux_errno_and_unknown_ones_to_eio() {
        assert_eq!(errno_of(28), Errno::ENOSPC);
        assert_eq!(errno_of(108), Errno(108));
        assert_eq!(errno_of(0), Errno::EIO);
        assert_eq!(errno_of(12345), Errno::EIO);
        assert_eq!(parse_error_chunk(&[0, 0, 0, 5, 0, 2, b'h', b'i']), Ok(Errno::EIO));
        assert!(parse_error_chunk(&[0, 0, 0, 5, 0, 9, b'h']).is_err());
    }

    #[test]
    fn chunks_must_land_inside_the_request() {
        assert_eq!(chunk_place(4096, 8192, 8192, 4096), Ok(4096));
        assert!(chunk_place(4096, 8192, 0, 4096).is_err());
        assert!(chunk_place(4096, 8192, 8192, 8192).is_err());
        assert!(chunk_place(0, 8192, u64::MAX, 2).is_err());
    }
}
