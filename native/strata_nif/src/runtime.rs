//! Process-wide facts about the native side: bytes held by live resources, and a no-op
//! NIF that benchmarks use as their floor.

use std::sync::atomic::{AtomicIsize, Ordering};

use std::time::Instant;

use rustler::{Atom, Env, Term};

static NATIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

/// Records that live resources now hold `delta` more (or fewer) bytes.
pub fn adjust_memory(delta: isize) {
    NATIVE_BYTES.fetch_add(delta, Ordering::Relaxed);
}

/// Tells the scheduler how long a NIF ran, as the share of a 1 ms timeslice it used (at
/// least 1%), so that a process making many such calls in a row yields on time instead of
/// holding its scheduler for many milliseconds: a NIF call otherwise costs its caller almost
/// no reductions.
pub fn consume_since(env: Env, start: Instant) {
    let percent = (start.elapsed().as_micros() / 10).clamp(1, 100) as i32;
    rustler::schedule::consume_timeslice(env, percent);
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

/// `:ok` when `term` can be stored by Strata (the checks of every NIF that stores a term),
/// or raises `ArgumentError` naming argument `name`. For structures kept in Elixir, which
/// must refuse a change before they journal it.
#[rustler::nif]
fn runtime_check_term(term: Term, name: String) -> rustler::NifResult<Atom> {
    crate::term::decode(term, &name).map(|_| crate::ok())
}
