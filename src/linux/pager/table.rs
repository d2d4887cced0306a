//! The pager's page table: what each page of the region is, the resident count against
//! the budget, and the CLOCK hand that picks eviction victims.

/// What a page of the region is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageState {
    /// Never written (or dropped while all zero): not mapped, no slot content needed. A
    /// fault maps zeros without I/O.
    Zero,
    /// The shared zero page is mapped (`UFFDIO_ZEROPAGE` on a read fault). A write
    /// copies it on write without telling the pager, so eviction checks its content.
    ZeroMapped,
    /// Mapped, write-protected, equal to its slot: dropped without I/O.
    Clean,
    /// Mapped and written since its last write-out (or its last write-out failed).
    Dirty,
    /// Being read in; the copy into the region wakes every thread waiting on it.
    Reading,
    /// Write-protected and being written out; a write fault meanwhile is a redirty.
    Evicting,
    /// Not mapped; its content is at its slot.
    Swapped,
    /// Its read failed: every access gets `SIGBUS` (the kernel's swap-in I/O error).
    Failed,
}

impl PageState {
    /// Whether the page counts against the resident budget.
    pub const fn resident(self) -> bool {
        matches!(
            self,
            PageState::ZeroMapped | PageState::Clean | PageState::Dirty | PageState::Reading | PageState::Evicting
        )
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub state: PageState,
    /// CLOCK reference bit: set by the faults the pager sees (fault-in, first write).
    pub referenced: bool,
    /// A write fault arrived while the page was being written out.
    pub redirty: bool,
    /// The page's last write-out failed (counted when a later one succeeds).
    pub failed_write: bool,
    /// The page was dirty when it was last evicted: a read fault maps it writable (see
    /// [`super::PagerConfig::predict_writes`]).
    pub written: bool,
    /// The errno of a failed read.
    pub errno: i32,
}

/// Sequential-fault detection per faulting thread.
#[derive(Clone, Copy, Debug, Default)]
struct Stream {
    tid: u32,
    /// Last faulting page.
    last: usize,
    /// Last page its readahead covered.
    reach: usize,
    window: usize,
}

const STREAMS: usize = 16;

pub(crate) struct Table {
    pub pages: Vec<Entry>,
    pub resident: usize,
    hand: usize,
    streams: [Stream; STREAMS],
    stream_next: usize,
}

impl Table {
    pub fn new(pages: usize, initial: PageState) -> Table {
        let e =
            Entry { state: initial, referenced: false, redirty: false, failed_write: false, written: false, errno: 0 };
        Table { pages: vec![e; pages], resident: 0, hand: 0, streams: [Stream::default(); STREAMS], stream_next: 0 }
    }

    pub fn set(&mut self, page: usize, state: PageState) {
        let e = &mut self.pages[page];
        match (e.state.resident(), state.resident()) {
            (false, true) => self.resident += 1,
            (true, false) => self.resident -= 1,
            _ => {}
        }
        e.state = state;
    }

    /// CLOCK: sweeps from the hand, clearing reference bits and taking unreferenced
    /// resident pages that are not already moving, up to `max`, at most two full sweeps.
    /// Each victim is marked [`PageState::Evicting`] at once (so a second sweep never
    /// takes it twice) and pushed with its previous state.
    pub fn pick_victims(&mut self, max: usize, out: &mut Vec<(usize, PageState)>) {
        let n = self.pages.len();
        let mut scanned = 0;
        while out.len() < max && scanned < 2 * n {
            let p = self.hand;
            self.hand = if p + 1 == n { 0 } else { p + 1 };
            scanned += 1;
            let e = &mut self.pages[p];
            if !matches!(e.state, PageState::Clean | PageState::Dirty | PageState::ZeroMapped) {
                continue;
            }
            if e.referenced {
                e.referenced = false;
                continue;
            }
            let prev = e.state;
            e.state = PageState::Evicting;
            e.redirty = false;
            out.push((p, prev));
        }
    }

    /// Readahead window for a fault of `tid` at `page`: doubles (up to `max`) while the
    /// thread's faults are sequential, back to 0 when they are not (the kernel's
    /// `swap_vma_readahead` window logic, per thread instead of per VMA).
    pub fn readahead(&mut self, tid: u32, page: usize, max: usize) -> usize {
        if max == 0 {
            return 0;
        }
        let slot = self.streams.iter().position(|s| s.tid == tid && tid != 0);
        let i = slot.unwrap_or_else(|| {
            let i = self.stream_next;
            self.stream_next = (i + 1) % STREAMS;
            self.streams[i] = Stream { tid, last: usize::MAX, reach: 0, window: 0 };
            i
        });
        let s = &mut self.streams[i];
        // Sequential: past the previous fault and at most one page past its readahead.
        let sequential = s.last != usize::MAX && page > s.last && page <= s.reach + 1;
        s.window = if sequential { (s.window * 2).clamp(4, max) } else { 0 };
        s.last = page;
        s.reach = page + s.window;
        s.window
    }

    /// Pages in each state, in [`PageState`] order.
    pub fn census(&self) -> [usize; 8] {
        let mut c = [0usize; 8];
        for e in &self.pages {
            c[e.state as usize] += 1;
        }
        c
    }
}
