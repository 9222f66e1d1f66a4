//! The one shape every Strata resource has: a core structure behind a `parking_lot` RwLock,
//! whose native memory is added to the VM-wide counter as it changes and removed when the
//! last reference to the resource goes away.

use parking_lot::{RwLock, RwLockReadGuard};
use rustler::{Resource, ResourceArc};

use crate::runtime::adjust_memory;

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

pub struct Shared<T: Measured> {
    inner: RwLock<T>,
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
        adjust_memory(value.memory() as isize);
        Shared {
            inner: RwLock::new(value),
        }
    }

    /// A read lock; readers run in parallel.
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        self.inner.read()
    }

    /// Runs `f` under the write lock and accounts for the memory it changed.
    pub fn write<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut inner = self.inner.write();
        let before = inner.memory();
        let result = f(&mut inner);
        let after = inner.memory();
        drop(inner);
        adjust_memory(after as isize - before as isize);
        result
    }
}

impl<T: Measured> Drop for Shared<T> {
    fn drop(&mut self) {
        adjust_memory(-(self.inner.get_mut().memory() as isize));
    }
}
