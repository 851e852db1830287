//! A global allocator for property-test binaries: the system allocator, counting per thread the
//! bytes allocated, so a test can state how much memory one call of a core may hold at its peak.
//!
//! A test binary installs it with
//! `#[global_allocator] static ALLOCATOR: counting_alloc::Counting = counting_alloc::Counting;`
//! (after `#[path = "../../../tests/support/counting_alloc.rs"] mod counting_alloc;`) and wraps
//! the call it measures in [`measure`]. Counts are per thread, so tests running side by side in
//! one binary do not see each other's allocations; memory freed on another thread than the one
//! that allocated it is counted where it is freed (the cores run on the caller's thread).
#![allow(dead_code)]
// The one use of `unsafe` in test code: implementing `GlobalAlloc` requires it. Each method only
// forwards to `System` with the same arguments and updates thread-local counters.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The counting allocator (forwards every call to [`System`]).
pub struct Counting;

thread_local! {
    /// Bytes allocated and not yet freed by this thread (negative when it frees others' memory).
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// The highest `LIVE` since the last [`measure`] started.
    static PEAK: Cell<isize> = const { Cell::new(0) };
    /// Allocation calls (alloc, alloc_zeroed, realloc) since the last [`measure`] started.
    static CALLS: Cell<usize> = const { Cell::new(0) };
}

fn record(grown: isize, calls: usize) {
    // `try_with`: a thread being torn down may still allocate; it is then simply not counted.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + grown;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
    let _ = CALLS.try_with(|c| c.set(c.get() + calls));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees are ours; the counters are thread-local `Cell`s with const initializers and no
// destructors, so touching them never allocates or re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as `GlobalAlloc::alloc`, passed through.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            record(layout.size() as isize, 1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as `GlobalAlloc::alloc_zeroed`, passed through.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            record(layout.size() as isize, 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as `GlobalAlloc::dealloc`, passed through.
        unsafe { System.dealloc(ptr, layout) };
        record(-(layout.size() as isize), 0);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as `GlobalAlloc::realloc`, passed through.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            record(new_size as isize - layout.size() as isize, 1);
        }
        p
    }
}

/// What one measured call allocated on this thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The most bytes held at once above what was held when the call started (what it returns
    /// included).
    pub peak_bytes: usize,
    /// Allocation calls made (alloc, alloc_zeroed, realloc).
    pub allocations: usize,
}

/// Runs `f` and says what it allocated on this thread at its peak. Not reentrant: a `measure`
/// inside `f` restarts the counts.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Usage) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    CALLS.with(|c| c.set(0));
    let out = f();
    let peak = PEAK.with(Cell::get);
    let usage = Usage {
        peak_bytes: (peak - base).max(0) as usize,
        allocations: CALLS.with(Cell::get),
    };
    (out, usage)
}
