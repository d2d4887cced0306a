//! The pread/pwrite driver: synchronous `preadv`/`pwritev` with `O_DIRECT`.
//!
//! The kernel's synchronous `swap_rw` path (a filesystem whose `->swap_rw` finishes
//! before returning): `submit` does the I/O and answers [`Submit::Done`], so the engine
//! completes the request on the submitting thread. Used when io_uring is unavailable
//! and as a comparison for the io_uring driver. Same target rules (fence, mode), same
//! short-transfer handling (aligned remainders are continued) and the same fault plan.

use super::direct::{dio_alignment, inject_fault, Arena, DriverCounters, DriverStats, IoVecs, Target};
use crate::backend::{Backend, Submit};
use crate::caps::BackendCaps;
use crate::errno::Errno;
use crate::fault::{FaultConfig, FaultPlan};
use crate::iocb::Request;
use crate::page::Direction;
use std::os::fd::AsRawFd;
use std::sync::Arc;

/// Transient errors retried per request before the error goes to the engine.
const MAX_TRANSIENT_RETRIES: u32 = 8;

/// The pread/pwrite driver.
#[derive(Debug)]
pub struct PreadBackend {
    target: Target,
    arena: Arc<Arena>,
    align: u64,
    faults: FaultPlan,
    counters: Arc<DriverCounters>,
}

impl PreadBackend {
    /// A driver on `target` moving folios of `arena`, injecting `faults`.
    pub fn new(target: Target, arena: Arc<Arena>, faults: FaultConfig) -> PreadBackend {
        let align = u64::from(dio_alignment(target.handle()));
        PreadBackend {
            target,
            arena,
            align,
            faults: FaultPlan::new(faults),
            counters: Arc::new(DriverCounters::default()),
        }
    }

    /// The driver's counters.
    pub fn counters(&self) -> Arc<DriverCounters> {
        Arc::clone(&self.counters)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> DriverStats {
        self.counters.snapshot()
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Moves the whole request, continuing aligned short transfers and retrying
    /// transient errors. Returns the bytes moved or the error.
    fn transfer(&self, dir: Direction, full: &IoVecs, pos: u64, len: u64) -> Result<u64, Errno> {
        let fd = self.target.handle().as_raw_fd();
        let mut done = 0u64;
        let mut cur = *full;
        let mut retries = 0;
        while done < len {
            full.advance(done, &mut cur);
            let iov = cur.as_slice();
            let off = (pos + done) as libc::off_t;
            // SAFETY: the iovecs point into the arena (checked by `gather`), which
            // outlives this call; the kernel reads or writes only those ranges.
            let n = unsafe {
                match dir {
                    Direction::Read => libc::preadv(fd, iov.as_ptr(), iov.len() as libc::c_int, off),
                    Direction::Write => libc::pwritev(fd, iov.as_ptr(), iov.len() as libc::c_int, off),
                }
            };
            if n < 0 {
                let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
                if matches!(e, libc::EINTR | libc::EAGAIN) && retries < MAX_TRANSIENT_RETRIES {
                    retries += 1;
                    DriverCounters::bump(&self.counters.retried);
                    continue;
                }
                return Err(Errno(e));
            }
            done += n as u64;
            if n == 0 || done % self.align != 0 {
                break; // end of device, or a remainder O_DIRECT cannot address: short
            }
            if done < len {
                DriverCounters::bump(&self.counters.resubmitted);
            }
        }
        Ok(done.min(len))
    }
}

impl Backend for PreadBackend {
    fn caps(&self) -> BackendCaps {
        self.target.caps()
    }

    fn submit(&self, req: &Request<'_>) -> Submit {
        let c = &self.counters;
        DriverCounters::bump(&c.submitted);
        DriverCounters::bump(&c.completed);
        let mut iov = IoVecs::default();
        let admitted = self.target.admit(req.mode(), req.pos(), req.len()).and_then(|_| iov.gather(req, &self.arena));
        if let Err(e) = admitted {
            DriverCounters::bump(&c.refused);
            return Submit::Done(Err(e));
        }
        let result = self.transfer(req.direction(), &iov, req.pos(), req.len());
        Submit::Done(inject_fault(&self.faults, c, req.len(), result))
    }
}
