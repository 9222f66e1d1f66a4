//! Process-wide facts about the native side: bytes held by live resources, and a no-op
//! NIF that benchmarks use as their floor.

use std::sync::atomic::{AtomicIsize, Ordering};

use std::time::Instant;

use rustler::{Atom, Encoder, Env, Term};

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

/// How much of a long operation one slice does under the locks: a number of items that
/// adapts to how long the last slice took, so that a slice stays near `TARGET` whatever an
/// item costs on this machine at this moment (a fan-out into feeds that do not exist yet
/// allocates, one into warm feeds does not). Each slice records its own bounds, so replay
/// does not depend on how they were chosen.
pub struct Slicer {
    size: usize,
}

impl Slicer {
    /// Time one slice aims at.
    const TARGET: std::time::Duration = std::time::Duration::from_micros(150);
    const MIN: usize = 32;
    const MAX: usize = 4096;

    pub fn new(first: usize) -> Slicer {
        Slicer {
            size: first.clamp(Self::MIN, Self::MAX),
        }
    }

    /// Items for the next slice.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Adapts to the time the last slice took under the lock.
    pub fn took(&mut self, elapsed: std::time::Duration) {
        if elapsed > Self::TARGET * 2 {
            self.size = (self.size / 2).max(Self::MIN);
        } else if elapsed < Self::TARGET / 2 {
            self.size = (self.size * 2).min(Self::MAX);
        }
    }
}

/// Longest a call on a normal scheduler waits for a structure's lock before it moves to a
/// dirty scheduler to wait there. A long operation holds a lock for one slice at a time
/// (~150 µs): a call that arrives during a slice usually gets the lock within this wait and
/// stays on its scheduler; one that finds the lock held longer (its holder's thread taken
/// off its core by the OS, say) frees the scheduler and waits on a dirty one. (With 10 µs,
/// most contended calls moved, and on two cores the one dirty scheduler left to them made
/// their latency worse: bench/stalls.exs, bulk follow p99.9 11 ms against ~1-4 ms.)
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_micros(200);

/// Whether this thread is a normal scheduler (not a dirty one, nor a thread of Strata's).
pub fn on_normal_scheduler() -> bool {
    // SAFETY: no arguments; reads the calling thread's type.
    unsafe { rustler::sys::enif_thread_type() == rustler::sys::ERL_NIF_THR_NORMAL_SCHEDULER }
}

const CONTENDED: &str = "strata_lock_busy";

/// The error of a lock not taken on a normal scheduler (see `Shared::read`): never seen by
/// Elixir, as every NIF that takes a lock is defined with `yielding_nif!` or `twin_nifs!`,
/// which reschedule the call on a dirty scheduler instead.
pub fn contended() -> rustler::Error {
    rustler::Error::Atom(CONTENDED)
}

pub fn is_contended(e: &rustler::Error) -> bool {
    matches!(e, rustler::Error::Atom(a) if *a == CONTENDED)
}

/// Defines NIF `$name` on a normal scheduler calling `body(env, args...)` (which returns
/// `NifResult<impl Encoder>`): when a lock it needs is held, it runs again, the same NIF
/// with the same arguments, on a dirty scheduler, where it waits for the lock. A body must
/// take its locks before it changes anything.
macro_rules! yielding_nif {
    ($name:ident, $body:path, ($($arg:ident),*)) => {
        #[rustler::nif]
        fn $name<'a>(env: rustler::Env<'a>, $($arg: rustler::Term<'a>),*) -> rustler::NifResult<rustler::Term<'a>> {
            match $body(env, $($arg),*) {
                Err(e) if $crate::runtime::is_contended(&e) => {
                    Ok($crate::runtime::reschedule_dirty(env, stringify!($name), &[$($arg),*]))
                }
                result => result.map(|value| rustler::Encoder::encode(&value, env)),
            }
        }
    };
}

pub(crate) use yielding_nif;

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

/// Bytes the C allocator has handed out and not had back (glibc's `mallinfo2`: chunks in use
/// plus mmapped ones, in the main arena only), for benchmarks that check `memory/1`; `-1`
/// where that is not known.
#[rustler::nif]
fn runtime_malloc_in_use() -> i64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallinfo2` reads the allocator's counters; no arguments, no side effects.
        let info = unsafe { strata_core::heap::mallinfo2() };
        (info.uordblks + info.hblkhd) as i64
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        -1
    }
}

/// Work one call on a normal scheduler may do on a single term (decode, copy or encode), in
/// weight units (about a byte each, see [`term_weight`]): 64 KiB is ~50 µs of copying. A
/// call with more reschedules itself on a dirty scheduler ([`reschedule_dirty`]).
pub const NORMAL_WEIGHT: usize = 64 << 10;

/// What a call may still weigh on a normal scheduler: terms are weighed against it one by
/// one (their binary bytes, plus 16 a number, atom or container element), each walk
/// stopping as soon as the budget is spent, so weighing costs at most the budget.
pub struct Budget(isize);

impl Budget {
    pub fn new(units: usize) -> Budget {
        Budget(units as isize)
    }

    /// The budget of one normal-scheduler call ([`NORMAL_WEIGHT`]).
    pub fn normal() -> Budget {
        Budget::new(NORMAL_WEIGHT)
    }

    pub fn spent(&self) -> bool {
        self.0 < 0
    }

    /// Weighs a VM term; whether the budget is now spent.
    pub fn term(&mut self, term: Term) -> bool {
        self.walk_term(term, 0);
        self.spent()
    }

    /// Weighs a stored value; whether the budget is now spent.
    pub fn value(&mut self, value: &strata_core::Term) -> bool {
        self.walk_value(value);
        self.spent()
    }

    fn walk_term(&mut self, term: Term, depth: usize) {
        use rustler::TermType;
        self.0 -= 16;
        if self.spent() || depth > crate::term::MAX_DEPTH {
            return;
        }
        match term.get_type() {
            TermType::Binary => {
                // A bitstring that is not a binary weighs nothing here: decode refuses it.
                if let Ok(bin) = rustler::Binary::from_term(term) {
                    self.0 -= bin.len() as isize;
                }
            }
            // An integer beyond 64 bits could be megabytes, and measuring it would copy it:
            // it is taken as heavy (such keys are rare, and run dirty).
            TermType::Integer if term.decode::<i64>().is_err() && term.decode::<u64>().is_err() => {
                self.0 -= NORMAL_WEIGHT as isize;
            }
            TermType::Tuple => {
                if let Ok(items) = rustler::types::tuple::get_tuple(term) {
                    for t in items {
                        self.walk_term(t, depth + 1);
                        if self.spent() {
                            return;
                        }
                    }
                }
            }
            TermType::List => {
                let mut rest = term;
                while let Ok((head, tail)) = rest.list_get_cell() {
                    self.walk_term(head, depth + 1);
                    if self.spent() {
                        return;
                    }
                    rest = tail;
                }
            }
            TermType::Map => {
                if let Some(iter) = rustler::MapIterator::new(term) {
                    for (k, v) in iter {
                        self.walk_term(k, depth + 1);
                        self.walk_term(v, depth + 1);
                        if self.spent() {
                            return;
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn walk_value(&mut self, value: &strata_core::Term) {
        use strata_core::Term as V;
        self.0 -= 16;
        if self.spent() {
            return;
        }
        match value {
            V::Binary(_, b) => self.0 -= b.len() as isize,
            V::BigInt(b) => self.0 -= (b.bits() / 8) as isize,
            V::Tuple(_, items) | V::List(_, items) => {
                for v in items.iter() {
                    self.walk_value(v);
                    if self.spent() {
                        return;
                    }
                }
            }
            V::Map(_, pairs) => {
                for (k, v) in pairs.iter() {
                    self.walk_value(k);
                    self.walk_value(v);
                    if self.spent() {
                        return;
                    }
                }
            }
            _ => {}
        }
    }
}

/// Where a call with a dirty twin is running: on a normal scheduler (with the twin's name,
/// to reschedule to) or already dirty.
#[derive(Clone, Copy)]
pub enum On {
    Normal(&'static str),
    Dirty,
}

impl On {
    /// On a normal scheduler, when `heavy()` says the call would take too long here: the
    /// term to return after rescheduling the call (same `args`) as its dirty twin.
    pub fn moves<'a>(
        self,
        env: Env<'a>,
        args: &[Term<'a>],
        heavy: impl FnOnce() -> bool,
    ) -> Option<Term<'a>> {
        match self {
            On::Normal(twin) if heavy() => Some(reschedule_dirty(env, twin, args)),
            _ => None,
        }
    }
}

/// Defines a NIF on the normal scheduler and its dirty CPU twin `<name>_dirty`, both
/// calling `body(env, on, args...)`: the body checks its weight with [`On::moves`] and the
/// normal one reschedules itself as the twin when its work would exceed the budget. Both
/// take only `Term` arguments and return `NifResult<Term>`.
macro_rules! twin_nifs {
    ($normal:ident, $dirty:ident, $body:path, ($($arg:ident),*)) => {
        #[rustler::nif]
        fn $normal<'a>(env: rustler::Env<'a>, $($arg: rustler::Term<'a>),*) -> rustler::NifResult<rustler::Term<'a>> {
            match $body(env, $crate::runtime::On::Normal(stringify!($dirty)), $($arg),*) {
                // A lock held by a long operation's slice: wait for it on the dirty twin.
                Err(e) if $crate::runtime::is_contended(&e) => {
                    Ok($crate::runtime::reschedule_dirty(env, stringify!($dirty), &[$($arg),*]))
                }
                result => result,
            }
        }

        #[rustler::nif(schedule = "DirtyCpu")]
        fn $dirty<'a>(env: rustler::Env<'a>, $($arg: rustler::Term<'a>),*) -> rustler::NifResult<rustler::Term<'a>> {
            $body(env, $crate::runtime::On::Dirty, $($arg),*)
        }
    };
}

pub(crate) use twin_nifs;

/// Reschedules the current call as the NIF named `name` (its dirty CPU twin, or itself,
/// taking the same arguments) on a dirty CPU scheduler, and returns the term the NIF must
/// return. The twin's function is found in
/// rustler's table of this library's NIFs.
pub fn reschedule_dirty<'a>(env: Env<'a>, name: &str, args: &[Term<'a>]) -> Term<'a> {
    reschedule(
        env,
        name,
        args,
        rustler::sys::ERL_NIF_DIRTY_JOB_CPU_BOUND as i32,
    )
}

/// Continues the current call as the NIF named `name` on a normal scheduler, after the
/// calling process has been given a chance to be preempted: how a long loop yields.
pub fn reschedule_normal<'a>(env: Env<'a>, name: &str, args: &[Term<'a>]) -> Term<'a> {
    reschedule(env, name, args, 0)
}

fn reschedule<'a>(env: Env<'a>, name: &str, args: &[Term<'a>], flags: i32) -> Term<'a> {
    use rustler::codegen_runtime::inventory;
    let found = inventory::iter::<rustler::Nif>.into_iter().find(|nif| {
        // SAFETY: every registered name is a NUL-terminated static string.
        let registered = unsafe { std::ffi::CStr::from_ptr(nif.name) };
        registered.to_bytes() == name.as_bytes() && nif.arity as usize == args.len()
    });
    let Some(nif) = found else {
        // A missing twin is a bug of this library: fail loudly, never run long here.
        return rustler::Atom::from_str(env, "strata_no_dirty_twin")
            .map(|a| a.encode(env))
            .unwrap_or_else(|_| crate::error().encode(env));
    };
    let raw: Vec<rustler::sys::ErlNifTerm> = args.iter().map(|t| t.as_c_arg()).collect();
    // SAFETY: `nif` is a NIF of this library with this arity; its name is static; `raw` holds
    // terms of `env`, which the VM copies before this returns.
    unsafe {
        let t = rustler::sys::enif_schedule_nif(
            env.as_c_arg(),
            nif.name,
            flags,
            nif.raw_func,
            raw.len() as i32,
            raw.as_ptr(),
        );
        Term::new(env, t)
    }
}

/// `:ok` when `term` can be stored by Strata (the checks of every NIF that stores a term),
/// or raises `ArgumentError` naming argument `name`. For structures kept in Elixir, which
/// must refuse a change before they journal it.
fn check_term<'a>(
    env: Env<'a>,
    on: On,
    term: Term<'a>,
    name: Term<'a>,
) -> rustler::NifResult<Term<'a>> {
    if let Some(moved) = on.moves(env, &[term, name], || Budget::normal().term(term)) {
        return Ok(moved);
    }
    let name: String = crate::error::arg(name, "name", "a string")?;
    crate::term::decode(term, &name).map(|_| crate::ok().encode(env))
}

twin_nifs!(
    runtime_check_term,
    runtime_check_term_dirty,
    check_term,
    (term, name)
);
