//! The fixture the C-ABI tests share: a C-style world (a backend that queues every
//! request, the core's rule-checking page recorder behind the page callbacks) and an
//! active engine in caller memory over a two-extent swap file.
#![allow(dead_code)]

use std::alloc::Layout;
use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::Mutex;

use swapdio::testkit::MemPages;
use swapdio::{FolioId, PageOps, SwapHeader};
use swapdio_ffi::*;

pub const EIO: i32 = 5;
pub const EAGAIN: i32 = 11;
pub const EDEADLK: i32 = 35;
pub const EFAULT: i32 = 14;
pub const EBUSY: i32 = 16;
pub const EINVAL: i32 = 22;
pub const EALREADY: i32 = 114;
pub const PAGE: u64 = SWAPDIO_PAGE_SIZE as u64;
pub const DEVICE_CAPS: u32 =
    SWAPDIO_CAP_DIO_READ | SWAPDIO_CAP_DIO_WRITE | SWAPDIO_CAP_OVERWRITE_IN_PLACE | SWAPDIO_CAP_STABLE_ON_COMPLETE;

/// The C side of the test: a backend that queues every request, and the core's
/// rule-checking page recorder behind the page callbacks.
#[derive(Default)]
pub struct World {
    pub pages: MemPages,
    pub queued: Mutex<Vec<u64>>,
    /// (id, pos, mode) of every submitted request.
    pub seen: Mutex<Vec<(u64, u64, u32)>>,
    pub events: Mutex<Vec<swapdio_event>>,
    /// Address of every submitted `swapdio_io`.
    pub ios: Mutex<Vec<usize>>,
    /// `swapdio_wake` reasons of every wake call.
    pub wakes: Mutex<Vec<u32>>,
    /// Signalled by the wake callback (a kernel's `wake_up`).
    pub woken: std::sync::Condvar,
}

/// # Safety
/// `ctx` is the `World` the fixture registered.
pub unsafe fn world<'a>(ctx: *mut c_void) -> &'a World {
    // SAFETY: the fixture registers a `World` that outlives the engine.
    unsafe { &*ctx.cast::<World>() }
}

unsafe extern "C" fn submit(ctx: *mut c_void, io: *const swapdio_io) -> i64 {
    // SAFETY: ctx is the fixture's World; io is valid during the call (ABI contract).
    let (w, io) = unsafe { (world(ctx), &*io) };
    w.queued.lock().unwrap().push(io.id);
    w.seen.lock().unwrap().push((io.id, io.pos, io.mode));
    w.ios.lock().unwrap().push(io as *const swapdio_io as usize);
    if !io.backend_data.is_null() {
        // The backend's private space: stamp it with the request id.
        // SAFETY: `backend_data` holds STORAGE.backend_data (>= 8) bytes, 16-aligned.
        unsafe { io.backend_data.cast::<u64>().write(io.id) };
    }
    SWAPDIO_QUEUED
}

macro_rules! page_op {
    ($name:ident) => {
        unsafe extern "C" fn $name(ctx: *mut c_void, folio: u64) {
            // SAFETY: ctx is the fixture's World.
            unsafe { world(ctx) }.pages.$name(FolioId(folio))
        }
    };
}
page_op!(set_uptodate);
page_op!(set_dirty);
page_op!(clear_reclaim);
page_op!(start_writeback);
page_op!(end_writeback);
page_op!(unlock);
page_op!(pin);
page_op!(unpin);

unsafe extern "C" fn event(ctx: *mut c_void, ev: *const swapdio_event) {
    // SAFETY: ctx is the fixture's World; ev is valid during the call.
    let (w, ev) = unsafe { (world(ctx), *ev) };
    w.events.lock().unwrap().push(ev);
}

unsafe extern "C" fn wake(ctx: *mut c_void, reason: u32) {
    // SAFETY: ctx is the fixture's World.
    let w = unsafe { world(ctx) };
    w.wakes.lock().unwrap().push(reason);
    w.woken.notify_all();
}

pub fn page_ops() -> swapdio_page_ops {
    swapdio_page_ops {
        set_uptodate: Some(set_uptodate),
        set_dirty: Some(set_dirty),
        clear_reclaim: Some(clear_reclaim),
        start_writeback: Some(start_writeback),
        end_writeback: Some(end_writeback),
        unlock: Some(unlock),
        pin: Some(pin),
        unpin: Some(unpin),
        event: Some(event),
        wake: Some(wake),
    }
}

pub fn backend_ops() -> swapdio_backend_ops {
    swapdio_backend_ops { caps: DEVICE_CAPS, reserved: 0, submit: Some(submit) }
}

/// Memory from the global allocator with a C-reported layout.
pub struct Block {
    pub ptr: *mut u8,
    pub layout: Layout,
}

impl Block {
    pub fn new(l: swapdio_mem_layout) -> Block {
        let layout = Layout::from_size_align(l.size, l.align).expect("valid layout");
        // SAFETY: every layout the library reports has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        Block { ptr, layout }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: allocated in `Block::new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

pub fn header(pages: u64) -> Vec<u8> {
    let mut p = vec![0u8; SWAPDIO_PAGE_SIZE];
    SwapHeader::new(pages, [7; 16], [0; 16]).unwrap().write(&mut p).unwrap();
    p
}

/// Two 32-page extents, physically apart: 64 slots.
pub fn extents() -> [swapdio_extent; 2] {
    [
        swapdio_extent { logical: 0, physical: 1 << 20, length: 32 * PAGE, device: 9, ..Default::default() },
        swapdio_extent { logical: 32 * PAGE, physical: 8 << 20, length: 32 * PAGE, device: 9, ..Default::default() },
    ]
}

pub fn activation<'a>(hdr: &'a [u8], ext: &'a [swapdio_extent]) -> swapdio_activation {
    swapdio_activation {
        header: hdr.as_ptr(),
        header_len: hdr.len(),
        file_size: 64 * PAGE,
        extents: ext.as_ptr(),
        nr_extents: ext.len(),
        allocated_bytes: 0,
        main_device: 9,
        max_pages: 0,
        layout: swapdio_layout::Extents as u32,
        mode: swapdio_mode_request::Auto as u32,
        caps: DEVICE_CAPS,
        attrs: 0,
    }
}

pub const STORAGE: swapdio_storage_config = swapdio_storage_config { pool: 4, sync: 1, splits: 2, backend_data: 24 };

/// An active engine in caller memory over the two-extent file.
pub struct Fixture {
    pub world: Box<World>,
    pub map: Vec<swapdio_map_entry>,
    pub report: swapdio_activation_report,
    pub storage: Block,
    pub _mem: Block,
    pub engine: *mut swapdio_engine,
    pub ops: (swapdio_backend_ops, swapdio_page_ops),
}

impl Fixture {
    pub fn new() -> Fixture {
        let hdr = header(64);
        let ext = extents();
        let mut map = vec![swapdio_map_entry::default(); 2];
        let mut report = swapdio_activation_report::default();
        // SAFETY: every pointer is valid for the lengths given.
        let rc = unsafe { swapdio_activate(&activation(&hdr, &ext), map.as_mut_ptr(), map.len(), &mut report) };
        assert_eq!(rc, 0, "activation refused: {report:?}");
        let mut el = swapdio_mem_layout::default();
        let mut sl = swapdio_mem_layout::default();
        // SAFETY: valid out pointers.
        unsafe {
            assert_eq!(swapdio_engine_layout(&mut el), 0);
            assert_eq!(swapdio_storage_layout(&STORAGE, &mut sl), 0);
        }
        let mut f = Fixture {
            world: Box::default(),
            map,
            report,
            storage: Block::new(sl),
            _mem: Block::new(el),
            engine: null_mut(),
            ops: (backend_ops(), page_ops()),
        };
        let cfg = f.config();
        // SAFETY: memory sized by the library's layouts, kept alive by the fixture until
        // Drop finishes the engine.
        let rc = unsafe { swapdio_engine_init(f._mem.ptr.cast(), el.size, &cfg, &mut f.engine) };
        assert_eq!(rc, 0);
        f
    }

    pub fn config(&mut self) -> swapdio_engine_config {
        swapdio_engine_config {
            map: self.map.as_ptr(),
            map_entries: self.report.map_entries as usize,
            storage: self.storage.ptr.cast(),
            storage_size: self.storage.layout.size(),
            storage_config: STORAGE,
            backend: &self.ops.0,
            backend_ctx: (&*self.world as *const World).cast_mut().cast(),
            page_ops: &self.ops.1,
            page_ctx: (&*self.world as *const World).cast_mut().cast(),
            mode: self.report.mode,
            reserved: 0,
        }
    }

    pub fn write(&self, plug: *mut swapdio_plug, folio: swapdio_folio) -> i32 {
        self.world.pages.prepare_write(FolioId(folio.id));
        // SAFETY: a live engine, valid folio, plug NULL or started.
        unsafe { swapdio_write(self.engine, plug, &folio, swapdio_fs_context::MayEnterFs as u32) }
    }

    pub fn complete_all(&self, result: i64) {
        for id in std::mem::take(&mut *self.world.queued.lock().unwrap()) {
            // SAFETY: a live engine.
            assert_eq!(unsafe { swapdio_complete(self.engine, id, result) }, 0);
        }
    }

    pub fn stats(&self) -> swapdio_stats {
        let mut s = swapdio_stats::default();
        // SAFETY: a live engine, valid out pointer.
        assert_eq!(unsafe { swapdio_engine_stats(self.engine, &mut s) }, 0);
        s
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.complete_all(PAGE as i64);
        // SAFETY: a live engine; nothing else runs.
        let rc = unsafe { swapdio_engine_fini(self.engine) };
        if !std::thread::panicking() {
            assert_eq!(rc, 0);
            assert_eq!(self.world.pages.violations(), Vec::<String>::new());
            assert_eq!(self.world.pages.pins_held(), 0);
        }
    }
}

pub fn folio(id: u64, slot: u64, pages: u32) -> swapdio_folio {
    swapdio_folio { id, slot, pages, flags: 0 }
}

/// A config for a second engine over the fixture's map and ops (its own storage is
/// irrelevant: these calls fail before using it).
pub fn config_without_storage(f: &Fixture) -> swapdio_engine_config {
    swapdio_engine_config {
        map: f.map.as_ptr(),
        map_entries: f.report.map_entries as usize,
        storage: null_mut(),
        storage_size: 0,
        storage_config: STORAGE,
        backend: &f.ops.0,
        backend_ctx: null_mut(),
        page_ops: &f.ops.1,
        page_ctx: null_mut(),
        mode: f.report.mode,
        reserved: 0,
    }
}
