//! A hash map split into 256 shards by key. A hash map grows by moving every entry into a
//! table twice the size, all at once; with millions of entries that one insert takes
//! milliseconds. Split 256 ways, a growth moves 1/256 of the entries, which keeps every
//! call short enough for a normal BEAM scheduler.
//!
//! Keys spread evenly, so shards fill at the same pace: grown only when full, all 256 would
//! grow within the same few thousand inserts, and one slice of a long write (a fan-out into
//! a million new feeds) would pay for all of them at once (5-10 ms, measured). So each
//! shard grows early, at its own fill between half and full ([`make_room`]): growths are
//! spread over the whole interval between doublings.
//!
//! Shards are copy-on-write: [`Clone`] copies 256 pointers, and the first change to a shard
//! that a clone still shares copies that shard alone (1/256 of the entries). A snapshot of a
//! live structure is therefore a clone taken in microseconds under its lock, encoded after
//! the lock is released, while writers go on. Values that are large themselves (bitmaps,
//! feeds) are kept behind an `Arc` by their owner, so that a shard copy copies pointers and
//! only the value that changes is copied ([`ShardedMap::value_mut`]).

use std::hash::Hash;
use std::sync::Arc;

use hashbrown::hash_map::Entry;
use hashbrown::HashMap;

use crate::heap;

const SHARDS: usize = 256;

/// Keys that pick their shard from their own bits (ids: already well spread after mixing).
pub trait ShardKey: Hash + Eq + Copy {
    fn shard(self) -> usize;
}

impl ShardKey for u32 {
    fn shard(self) -> usize {
        (self.wrapping_mul(0x9E37_79B1) >> 24) as usize
    }
}

impl ShardKey for u64 {
    fn shard(self) -> usize {
        (self.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize
    }
}

/// Grows shard number `index` before a new key goes in, once it holds more than its own
/// share of its capacity (from half to all of it, by index).
fn make_room<K: ShardKey, V>(shard: &mut HashMap<K, V>, index: usize, key: &K) {
    let capacity = shard.capacity();
    let threshold = if capacity < 64 {
        capacity
    } else {
        capacity / 2 + capacity / 2 * (index + 1) / SHARDS
    };
    if shard.len() < threshold || shard.contains_key(key) {
        return;
    }
    shard.reserve(capacity + 1 - shard.len());
}

#[derive(Debug, Clone)]
pub struct ShardedMap<K, V> {
    shards: Vec<Arc<HashMap<K, V>>>,
    len: usize,
    /// Sum of the shards' capacities, kept as they grow (maps never shrink on removal), so
    /// that memory accounting on every write stays `O(1)`.
    capacity: usize,
    /// Sum of the shards' table allocations (`heap::table`), kept likewise.
    tables: usize,
}

impl<K: ShardKey, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        ShardedMap {
            shards: (0..SHARDS).map(|_| Arc::new(HashMap::new())).collect(),
            len: 0,
            capacity: 0,
            tables: 0,
        }
    }
}

impl<K: ShardKey + Clone, V: Clone> ShardedMap<K, V> {
    /// A map of `entries`, whose keys must be distinct. Entries are first grouped by shard,
    /// then each shard is built on its own, its table small enough to stay in cache:
    /// inserting millions of keys spread over all 256 tables at once missed the cache on
    /// nearly every insert.
    pub fn from_distinct(entries: Vec<(K, V)>) -> Self {
        let mut groups: Vec<Vec<(K, V)>> = (0..SHARDS).map(|_| Vec::new()).collect();
        let each = entries.len() / SHARDS + entries.len() / SHARDS / 4 + 1;
        for group in groups.iter_mut() {
            group.reserve(each);
        }
        for (k, v) in entries {
            groups[k.shard()].push((k, v));
        }
        let mut len = 0;
        let shards: Vec<Arc<HashMap<K, V>>> = groups
            .into_iter()
            .map(|group| {
                let mut shard = HashMap::with_capacity(group.len());
                shard.extend(group);
                len += shard.len();
                Arc::new(shard)
            })
            .collect();
        let capacity = shards.iter().map(|s| s.capacity()).sum();
        let tables = shards
            .iter()
            .map(|s| heap::table::<K, V>(s.capacity()))
            .sum();
        ShardedMap {
            shards,
            len,
            capacity,
            tables,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entries the shards have room for.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes the map itself allocates (its tables, their `Arc`s and the shard list), not
    /// counting what its keys and values own. `O(1)`.
    pub fn heap_bytes(&self) -> usize {
        self.tables + SHARDS * heap::arc::<HashMap<K, V>>() + heap::buffer::<usize>(SHARDS)
    }

    /// Counts a shard's growth from `before` to `after` entries of capacity.
    fn grew(&mut self, before: usize, after: usize) {
        if after != before {
            self.capacity = self.capacity + after - before;
            self.tables = self.tables + heap::table::<K, V>(after) - heap::table::<K, V>(before);
        }
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.shards[key.shard()].get(key)
    }

    /// The shard of `key`, for a change: copied first if a clone of the map shares it.
    fn shard_mut(&mut self, key: &K) -> &mut HashMap<K, V> {
        Arc::make_mut(&mut self.shards[key.shard()])
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        if !self.contains_key(key) {
            return None; // no copy of a shared shard for a key it does not hold
        }
        self.shard_mut(key).get_mut(key)
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.shards[key.shard()].contains_key(key)
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let index = key.shard();
        let shard = Arc::make_mut(&mut self.shards[index]);
        let before = shard.capacity();
        make_room(shard, index, &key);
        let old = shard.insert(key, value);
        let after = shard.capacity();
        self.grew(before, after);
        self.len += usize::from(old.is_none());
        old
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        if !self.contains_key(key) {
            return None;
        }
        let old = self.shard_mut(key).remove(key);
        self.len -= usize::from(old.is_some());
        old
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.shards.iter().flat_map(|shard| shard.iter())
    }

    /// Every key, ascending (for output that does not depend on hashing).
    pub fn sorted_keys(&self) -> Vec<K>
    where
        K: Ord,
    {
        let mut keys: Vec<K> = self.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        keys
    }

    /// The value of `key`, inserting the default first if there is none.
    pub fn entry_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        let index = key.shard();
        let shard = Arc::make_mut(&mut self.shards[index]);
        // Grown first (when due), so that the entry below never grows it uncounted.
        let before = shard.capacity();
        make_room(shard, index, &key);
        let after = shard.capacity();
        self.grew(before, after);
        let shard = Arc::make_mut(&mut self.shards[index]);
        match shard.entry(key) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                self.len += 1;
                entry.insert(V::default())
            }
        }
    }
}

impl<K: ShardKey + Clone, X: Clone + Default> ShardedMap<K, Arc<X>> {
    /// The value of `key` for a change, copied first if a clone of the map still shares it.
    pub fn value_mut(&mut self, key: &K) -> Option<&mut X> {
        self.get_mut(key).map(Arc::make_mut)
    }

    /// [`ShardedMap::value_mut`], inserting the default first if there is none.
    pub fn value_or_default(&mut self, key: K) -> &mut X {
        Arc::make_mut(self.entry_or_default(key))
    }

    /// Removes `key`'s value and returns it (a copy if a clone still shares it).
    pub fn take(&mut self, key: &K) -> Option<X> {
        self.remove(key)
            .map(|v| Arc::try_unwrap(v).unwrap_or_else(|shared| (*shared).clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_one_map() {
        let mut map: ShardedMap<u32, u32> = ShardedMap::default();
        for k in 0..10_000u32 {
            *map.entry_or_default(k % 3000) += 1;
        }
        assert_eq!(map.len(), 3000);
        assert_eq!(map.get(&7), Some(&4));
        assert_eq!(map.remove(&7), Some(4));
        assert_eq!(
            (map.len(), map.get(&7), map.contains_key(&8)),
            (2999, None, true)
        );
        assert_eq!(map.insert(7, 1), None);
        assert_eq!(map.insert(7, 2), Some(1));
        assert_eq!(map.len(), 3000);
        assert_eq!(
            map.capacity(),
            map.shards.iter().map(|s| s.capacity()).sum::<usize>()
        );
        let built = ShardedMap::from_distinct((0..3000u32).map(|k| (k, k)).collect());
        assert_eq!(
            (built.len(), built.get(&2999), built.get(&3000)),
            (3000, Some(&2999), None)
        );
        assert_eq!(
            built.capacity(),
            built.shards.iter().map(|s| s.capacity()).sum::<usize>()
        );
        for m in [&map, &built] {
            let tables: usize = m
                .shards
                .iter()
                .map(|s| heap::table::<u32, u32>(s.capacity()))
                .sum();
            assert_eq!(m.tables, tables);
        }
        let used = map.shards.iter().filter(|s| !s.is_empty()).count();
        assert!(used > 200, "keys spread over {used} shards");
    }
}
