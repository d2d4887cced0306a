//! The NBD client handshake (`linux::nbd::conn::handshake`) against any server bytes:
//! every greeting, option reply, info payload and export-name reply is answered with an
//! export or an error, never a panic or a hang; an accepted export has a size and sane
//! block size constraints.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{self, Read, Write};
use swapdio::linux::nbd::conn::{handshake, HandshakeOptions};

/// The server's bytes to read; what the client writes is discarded.
struct Script<'a>(&'a [u8]);

impl Read for Script<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Script<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let opts = HandshakeOptions { structured_replies: flags & 1 != 0 };
    if let Ok(export) = handshake(&mut Script(rest), "swap", opts) {
        let (min, pref, max) = export.block_size;
        assert!(min.is_power_of_two() && pref.is_power_of_two() && max >= pref.min(32 << 20));
        assert!(export.max_payload() >= 4096);
        assert!(!export.structured || opts.structured_replies, "structured replies only when asked for");
    }
});
