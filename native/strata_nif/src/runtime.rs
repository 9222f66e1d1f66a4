//! Process-wide facts about the native side: bytes held by live resources, and a no-op
//! NIF that benchmarks use as their floor.

use std::sync::atomic::{AtomicIsize, Ordering};

use rustler::{Atom, Term};

static NATIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

/// Records that live resources now hold `delta` more (or fewer) bytes.
pub fn adjust_memory(delta: isize) {
    NATIVE_BYTES.fetch_add(delta, Ordering::Relaxed);
}

/// Bytes held by every live Strata resource in this VM.
#[rustler::nif]
fn runtime_memory() -> usize {
    NATIVE_BYTES.load(Ordering::Relaxed).max(0) as usize
}

/// Does nothing: the cost of a NIF call, for benchmarks.
#[rustler::nif]
fn runtime_noop(_term: Term) -> Atom {
    crate::ok()
}
