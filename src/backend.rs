//! The backend: the engine's `->swap_rw`.
//!
//! `submit` either finishes the request before returning (`Done`, the kernel's
//! synchronous return from `swap_rw`) or takes it (`Queued`, the kernel's
//! `-EIOCBQUEUED`) and later calls [`crate::Engine::complete`] with the request's id,
//! from any thread, possibly before `submit` has returned. Both outcomes reach the same
//! completion function.

use crate::caps::BackendCaps;
use crate::errno::Errno;
use crate::iocb::Request;

/// What `submit` did with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submit {
    /// Finished: bytes transferred, or the error.
    Done(Result<u64, Errno>),
    /// Taken: the backend will call `Engine::complete(id, result)` exactly once.
    Queued,
}

/// Moves the bytes of a request; implemented by drivers (io_uring, pread/pwrite), test
/// doubles and the C backend table.
pub trait Backend {
    /// What this backend can do; read once at activation.
    fn caps(&self) -> BackendCaps;
    /// Start the request. Must not keep `req` past the call: keep `req.id()` instead.
    fn submit(&self, req: &Request<'_>) -> Submit;
}

impl<T: Backend + ?Sized> Backend for &T {
    fn caps(&self) -> BackendCaps {
        (**self).caps()
    }
    fn submit(&self, req: &Request<'_>) -> Submit {
        (**self).submit(req)
    }
}

#[cfg(feature = "alloc")]
impl<T: Backend + ?Sized> Backend for alloc::sync::Arc<T> {
    fn caps(&self) -> BackendCaps {
        (**self).caps()
    }
    fn submit(&self, req: &Request<'_>) -> Submit {
        (**self).submit(req)
    }
}
