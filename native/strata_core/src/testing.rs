//! Test support: a global allocator that counts, per thread, the bytes live and the peak,
//! so that tests can check that a decoder allocates no more than its input justifies; and
//! the bytes of the allocator's chunks live (what `malloc` really holds for them: header,
//! rounding, minimum size), so that tests can check `memory()` against them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static CHUNKS: Cell<isize> = const { Cell::new(0) };
}

/// The bytes of the chunk that holds `ptr` (glibc: its usable size and an 8-byte header).
fn chunk_of(ptr: *mut u8) -> isize {
    if ptr.is_null() {
        return 0;
    }
    // SAFETY: `ptr` is a live allocation of the system allocator (glibc's malloc).
    (unsafe { libc::malloc_usable_size(ptr.cast()) } + 8) as isize
}

fn add_chunk(delta: isize) {
    let _ = CHUNKS.try_with(|c| c.set(c.get() + delta));
}

fn add(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: forwards to the system allocator; the counting touches only const-initialised
// thread-locals (no allocation, and `try_with` during thread teardown).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        let ptr = System.alloc(layout);
        add_chunk(chunk_of(ptr));
        ptr
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as isize));
        add_chunk(-chunk_of(ptr));
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        let ptr = System.alloc_zeroed(layout);
        add_chunk(chunk_of(ptr));
        ptr
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        add(new as isize - layout.size() as isize);
        let before = chunk_of(ptr);
        let moved = System.realloc(ptr, layout, new);
        if !moved.is_null() {
            add_chunk(chunk_of(moved) - before);
        }
        moved
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Runs `f` and returns its result and the most bytes it had allocated at once on this
/// thread (beyond what was live when it started).
pub fn peak_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let r = f();
    let peak = PEAK.with(Cell::get);
    (r, (peak - start).max(0) as usize)
}

/// The bytes of allocator chunks live on this thread now.
pub fn live_chunks() -> isize {
    CHUNKS.with(Cell::get)
}

/// Checks that `reported` is within 10% of the chunk bytes `built` allocated on this thread
/// and kept; returns the ratio.
pub fn memory_within_10pct<T>(
    what: &str,
    built: impl FnOnce() -> T,
    reported: impl Fn(&T) -> usize,
) -> (T, f64) {
    let start = live_chunks();
    let value = built();
    let real = (live_chunks() - start) as f64;
    let ratio = reported(&value) as f64 / real;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "{what}: memory() reports {} bytes, the allocator holds {real} ({ratio:.3}x)",
        reported(&value)
    );
    (value, ratio)
}
