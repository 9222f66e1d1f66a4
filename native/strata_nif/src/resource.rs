//! The one shape every Strata resource has: a core structure behind a `parking_lot` RwLock,
//! whose native memory is added to the VM-wide counter as it changes and removed when the
//! last reference to the resource goes away.

use std::cell::RefCell;
use std::sync::Arc;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use rustler::{NifResult, Resource, ResourceArc};
use strata_core::op::Encode;
use strata_core::persist::Persist;

use crate::durable::{durability_error, SharedJournal};
use crate::error::bad_arg;
use crate::runtime::{adjust_memory, contended, on_normal_scheduler, LOCK_WAIT};

/// A structure that knows how many bytes it holds.
pub trait Measured {
    fn memory(&self) -> usize;
}

impl Measured for strata_core::SortedSet {
    fn memory(&self) -> usize {
        strata_core::SortedSet::memory(self)
    }
}

impl Measured for strata_core::FollowerMap {
    fn memory(&self) -> usize {
        strata_core::FollowerMap::memory(self)
    }
}

impl Measured for strata_core::Timeline {
    fn memory(&self) -> usize {
        strata_core::Timeline::memory(self)
    }
}

impl Measured for strata_core::Interner {
    fn memory(&self) -> usize {
        strata_core::Interner::memory(self)
    }
}

/// How a snapshot of a live structure is taken without holding up its writers: a frozen
/// copy of the state is taken under the read lock, in time that does not grow with the data
/// (pointer copies of copy-on-write buckets and shards, or a length), and encoded after the
/// lock is released while writers go on.
pub trait Freeze: Measured + Persist + Sized {
    /// What is taken under the lock.
    type Frozen: Send;

    fn freeze(&self) -> Self::Frozen;

    /// The snapshot bytes of a frozen state; `live` is the structure it was taken from.
    fn seal(frozen: Self::Frozen, live: &Shared<Self>) -> NifResult<Vec<u8>>;
}

/// A structure whose clone is a copy-on-write snapshot.
macro_rules! freeze_by_clone {
    ($($t:ty),*) => {$(
        impl Freeze for $t {
            type Frozen = $t;

            fn freeze(&self) -> $t {
                self.clone()
            }

            fn seal(frozen: $t, _live: &Shared<$t>) -> NifResult<Vec<u8>> {
                Ok(frozen.dump())
            }
        }
    )*};
}

freeze_by_clone!(strata_core::SortedSet, strata_core::FollowerMap);

/// Keys encoded under one read lock when an interner's snapshot is sealed.
const INTERNER_CHUNK: u32 = 16_384;

/// An interner only grows (ids are never reused), so its state at a moment is its first
/// `len` keys: the snapshot copies them out a chunk under the read lock at a time.
impl Freeze for strata_core::Interner {
    type Frozen = usize;

    fn freeze(&self) -> usize {
        self.len()
    }

    fn seal(len: usize, live: &Shared<Self>) -> NifResult<Vec<u8>> {
        let mut failed = Ok(());
        let bytes = strata_core::codec::seal(strata_core::codec::Kind::Interner, |out| {
            let len = len as u32;
            strata_core::persist::put_interner_header(len, out);
            let mut from = 0;
            while from < len {
                let to = from.saturating_add(INTERNER_CHUNK).min(len);
                match live.read() {
                    Ok(interner) => interner.put_keys(from..to, out),
                    Err(e) => {
                        failed = Err(e);
                        return;
                    }
                }
                from = to;
            }
        });
        failed.map(|()| bytes)
    }
}

/// Where a structure's changes are recorded.
pub enum Log {
    /// Nowhere: an in-memory structure.
    Off,
    /// In this journal, before they are applied.
    Journal(Arc<SharedJournal>),
    /// Part of another durable structure (a durable timeline's graph): changed only through
    /// that structure, which records the change.
    Owned(&'static str),
}

/// Writes a structure's change records to its journal, if it has one.
pub struct Recorder<'a> {
    journal: Option<&'a SharedJournal>,
}

impl Recorder<'_> {
    /// Appends `op`'s record (nothing when not durable).
    pub fn record(&self, op: &impl Encode) -> NifResult<()> {
        let Some(journal) = self.journal else {
            return Ok(());
        };
        RECORD.with_borrow_mut(|buf| {
            buf.clear();
            op.encode(buf);
            journal.append(buf).map(|_| ()).map_err(durability_error)
        })
    }
}

pub struct Shared<T: Measured> {
    inner: RwLock<T>,
    log: Log,
}

thread_local! {
    /// The buffer records are encoded into, reused across calls.
    static RECORD: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl<T: Measured + Send + Sync + 'static> Shared<T>
where
    Shared<T>: Resource,
{
    /// Wraps `value` in a new resource.
    pub fn wrap(value: T) -> ResourceArc<Shared<T>> {
        ResourceArc::new(Shared::new(value))
    }
}

impl<T: Measured> Shared<T> {
    /// Puts `value` behind a lock, counting its memory.
    pub fn new(value: T) -> Shared<T> {
        Shared::with_log(value, Log::Off)
    }

    /// Puts `value` behind a lock, recording its changes in `log`.
    pub fn with_log(value: T, log: Log) -> Shared<T> {
        adjust_memory(value.memory() as isize);
        Shared {
            inner: RwLock::new(value),
            log,
        }
    }

    /// The structure that owns this one (whose journal records its changes), if any.
    pub fn owner(&self) -> Option<&'static str> {
        match self.log {
            Log::Owned(owner) => Some(owner),
            _ => None,
        }
    }

    /// The journal, if the structure is durable.
    pub fn journal(&self) -> Option<&Arc<SharedJournal>> {
        match &self.log {
            Log::Journal(j) => Some(j),
            _ => None,
        }
    }

    /// Runs `f` under the write lock with a [`Recorder`]: `f` records its change (when it
    /// has one) *before* applying it, so that the journal's order is the order of changes,
    /// and when the journal takes no more records (failed or closed) nothing is applied and
    /// the call raises `Strata.DurabilityError`.
    pub fn write_logged<R>(
        &self,
        f: impl FnOnce(&mut T, &Recorder) -> NifResult<R>,
    ) -> NifResult<R> {
        self.not_owned()?;
        self.write_as_owner(f)
    }

    /// Refuses a change of a structure owned by another (which journals its changes).
    fn not_owned(&self) -> NifResult<()> {
        match self.log {
            Log::Owned(owner) => Err(bad_arg(format!(
                "this structure belongs to a durable {owner}: change it through {owner}'s functions"
            ))),
            _ => Ok(()),
        }
    }

    /// [`Shared::write_logged`] for one slice of a long operation, which takes the lock again
    /// right after: the lock is handed to the threads waiting for it, if any (a fair unlock),
    /// so that the operation cannot take it back before them. (Short calls unlock normally: a
    /// fair unlock costs a thread switch per call when others wait, which made 8 writers on
    /// one set 4x slower.)
    pub fn write_slice<R>(
        &self,
        f: impl FnOnce(&mut T, &Recorder) -> NifResult<R>,
    ) -> NifResult<R> {
        self.not_owned()?;
        let journal = self.journal().map(|j| &**j);
        self.write_unlocking(true, |inner| f(inner, &Recorder { journal }))
    }

    /// [`Shared::write_logged`] for the structure that owns this one (which records the
    /// change in its own journal): allowed on an owned structure.
    pub fn write_as_owner<R>(
        &self,
        f: impl FnOnce(&mut T, &Recorder) -> NifResult<R>,
    ) -> NifResult<R> {
        let journal = match &self.log {
            Log::Journal(j) => Some(&**j),
            Log::Off | Log::Owned(_) => None,
        };
        self.write(|inner| f(inner, &Recorder { journal }))
    }

    /// A read lock; readers run in parallel. On a normal scheduler a lock that a writer holds
    /// (a slice of a long operation) is waited for at most `LOCK_WAIT`: then the call gets
    /// [`contended`], and moves to a dirty scheduler to wait there (see `runtime::yielding`),
    /// so that no normal scheduler, and no process queued on it, waits behind a lock.
    pub fn read(&self) -> NifResult<RwLockReadGuard<'_, T>> {
        if !on_normal_scheduler() {
            return Ok(self.inner.read());
        }
        self.inner
            .try_read()
            .or_else(|| self.inner.try_read_for(LOCK_WAIT))
            .ok_or_else(contended)
    }

    /// The structure's snapshot bytes, taken as [`Freeze`] says: the lock is held only to
    /// take the frozen state.
    pub fn snapshot(&self) -> NifResult<Vec<u8>>
    where
        T: Freeze,
    {
        let frozen = self.read()?.freeze();
        T::seal(frozen, self)
    }

    /// Runs `f` under the write lock if it is free now (`None` if not), without waiting:
    /// for callbacks that run on a scheduler and cannot move (a monitor's `down`).
    pub fn try_write_now<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let mut inner = self.inner.try_write()?;
        let before = inner.memory();
        let result = f(&mut inner);
        let after = inner.memory();
        drop(inner);
        adjust_memory(after as isize - before as isize);
        Some(result)
    }

    /// Runs `f` under the write lock and accounts for the memory it changed. On a normal
    /// scheduler, a held lock is waited for as by [`Shared::read`].
    pub fn write<R>(&self, f: impl FnOnce(&mut T) -> NifResult<R>) -> NifResult<R> {
        self.write_unlocking(false, f)
    }

    fn write_unlocking<R>(
        &self,
        fair: bool,
        f: impl FnOnce(&mut T) -> NifResult<R>,
    ) -> NifResult<R> {
        let mut inner = if on_normal_scheduler() {
            self.inner
                .try_write()
                .or_else(|| self.inner.try_write_for(LOCK_WAIT))
                .ok_or_else(contended)?
        } else {
            self.inner.write()
        };
        let before = inner.memory();
        let result = f(&mut inner);
        let after = inner.memory();
        if fair {
            RwLockWriteGuard::unlock_fair(inner);
        } else {
            drop(inner);
        }
        adjust_memory(after as isize - before as isize);
        result
    }
}

impl<T: Measured> Drop for Shared<T> {
    fn drop(&mut self) {
        adjust_memory(-(self.inner.get_mut().memory() as isize));
    }
}
