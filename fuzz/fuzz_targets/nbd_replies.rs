//! The NBD reply reader (`linux::nbd::replies::read_reply`) on any byte stream, with a
//! table of requests in flight built from the input: no panic, no hang, data only ever
//! lands inside its request, every request finishes at most once, and a read that
//! finishes `Ok` had every byte covered by data or holes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::io::{self, Read};
use swapdio::linux::nbd::proto;
use swapdio::linux::nbd::replies::{read_reply, Coverage, Pending, ReplyTarget};
use swapdio::Errno;

struct Req {
    pending: Pending,
    /// Bytes written by data and hole chunks.
    written: Vec<bool>,
}

#[derive(Default)]
struct Table {
    inflight: HashMap<u64, Req>,
    finished: Vec<u64>,
}

impl ReplyTarget for Table {
    fn pending(&mut self, cookie: u64) -> Option<Pending> {
        self.inflight.get(&cookie).map(|r| r.pending)
    }
    fn receive<R: Read>(&mut self, cookie: u64, rel: u64, len: u64, src: &mut R) -> io::Result<()> {
        let r = self.inflight.get_mut(&cookie).expect("receive for a request in flight");
        assert_eq!(r.pending.kind, proto::CMD_READ, "data only for reads");
        let (a, b) = (rel as usize, (rel + len) as usize);
        assert!(b <= r.written.len(), "data past the request");
        let mut buf = vec![0u8; b - a];
        src.read_exact(&mut buf)?;
        r.written[a..b].iter_mut().for_each(|w| *w = true);
        Ok(())
    }
    fn zero(&mut self, cookie: u64, rel: u64, len: u64) {
        let r = self.inflight.get_mut(&cookie).expect("hole for a request in flight");
        let (a, b) = (rel as usize, (rel + len) as usize);
        assert!(b <= r.written.len(), "hole past the request");
        r.written[a..b].iter_mut().for_each(|w| *w = true);
    }
    fn progress(&mut self, cookie: u64, covered: Coverage, error: Option<Errno>) {
        let r = self.inflight.get_mut(&cookie).expect("progress for a request in flight");
        r.pending.covered = covered;
        r.pending.error = error;
    }
    fn finish(&mut self, cookie: u64, result: Result<u64, Errno>) {
        let r = self.inflight.remove(&cookie).expect("finish exactly once");
        if result.is_ok() && r.pending.kind == proto::CMD_READ {
            // Simple replies deliver the whole read; chunks must have covered it.
            assert!(r.written.iter().all(|&w| w), "a read finished Ok with bytes never written");
        }
        self.finished.push(cookie);
    }
}

fuzz_target!(|data: &[u8]| {
    // Up to 4 requests: (kind, length in 512-byte units) from the first bytes.
    let Some((&n, rest)) = data.split_first() else { return };
    let n = usize::from(n % 5);
    if rest.len() < 2 * n {
        return;
    }
    let (spec, mut stream) = rest.split_at(2 * n);
    let mut t = Table::default();
    for (i, s) in spec.chunks(2).enumerate() {
        let kind = [proto::CMD_READ, proto::CMD_WRITE, proto::CMD_FLUSH][usize::from(s[0] % 3)];
        let len = if kind == proto::CMD_FLUSH { 0 } else { u64::from(s[1] % 16 + 1) * 512 };
        let pending = Pending { kind, offset: 4096 * (i as u64 + 1), len, covered: Coverage::default(), error: None };
        t.inflight.insert(i as u64 + 1, Req { pending, written: vec![false; len as usize] });
    }
    // Every successful call consumes bytes, so this ends.
    while read_reply(&mut stream, &mut t).is_ok() {}
    let mut seen = t.finished.clone();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), t.finished.len(), "a request finished twice");
});
