//! A bucketed sorted set that reports the index of every change.
//!
//! Items live in sorted buckets ("cells") of at most `bucket_size` items. A bucket that
//! overflows splits in two; one that runs thin (under a quarter full) merges with a neighbour.
//! A copy of each bucket's first item makes finding the bucket a binary search over one
//! contiguous array, and a Fenwick tree over the bucket sizes answers "how many items come
//! before bucket `b`" and "which bucket holds index `i`" in `O(log(n / B))`, so no index
//! operation walks the bucket list.
//!
//! | operation | cost |
//! |---|---|
//! | `insert`, `remove`, `replace` | `O(log n + B)` (the `B` is one `memmove` in a bucket) |
//! | `find_index`, `rank`, `contains` | `O(log n)` |
//! | `at` | `O(log(n / B))` |
//! | `slice(start, k)`, `range` | `O(log n + k)` |
//! | a split or merge (once per ~`B/4` changes) | `O(n / B)` to rebuild the Fenwick tree |

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::mem::size_of;
use std::sync::Arc;

use crate::term::Term;

/// Default maximum bucket size.
pub const DEFAULT_BUCKET_SIZE: usize = 512;
/// Smallest maximum bucket size the structure supports (`Strata.SortedSet` asks for at least
/// 4, `Strata.DiscordSortedSet` accepts what Discord's set does).
pub const MIN_BUCKET_SIZE: usize = 1;

/// Bytes of each bucket's own allocation besides its items: the `Arc`'s two counts and the
/// `Vec` header.
const BUCKET_HEADER: usize = 2 * size_of::<usize>() + size_of::<Vec<Term>>();
/// Largest accepted maximum bucket size (bounds the cost of one insert's `memmove`).
pub const MAX_BUCKET_SIZE: usize = 65_536;

/// Errors from building a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// Items were not strictly ascending at this position.
    NotSorted(usize),
}

/// What a set can hold: ordered, cheap enough to clone (the first item of each bucket is
/// kept twice), and able to say how many heap bytes it owns (for `memory`).
pub trait Item: Ord + Clone + std::fmt::Debug {
    /// Bytes this item owns on the heap, beyond its own slot.
    fn heap_bytes(&self) -> usize;
}

impl Item for Term {
    fn heap_bytes(&self) -> usize {
        Term::heap_bytes(self)
    }
}

/// A lower or upper bound of a [`SortedSet::range`].
#[derive(Debug)]
pub enum Bound<'a, T = Term> {
    Unbounded,
    Included(&'a T),
    Excluded(&'a T),
}

impl<T> Clone for Bound<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Bound<'_, T> {}

/// Prefix sums over bucket sizes.
#[derive(Debug, Default, Clone)]
struct Fenwick {
    tree: Vec<usize>,
}

impl Fenwick {
    fn rebuild(&mut self, sizes: impl Iterator<Item = usize>) {
        self.tree.clear();
        self.tree.extend(sizes);
        let n = self.tree.len();
        for i in 0..n {
            let parent = i | (i + 1);
            if parent < n {
                self.tree[parent] += self.tree[i];
            }
        }
    }

    fn add(&mut self, mut i: usize, delta: isize) {
        while i < self.tree.len() {
            self.tree[i] = self.tree[i].wrapping_add_signed(delta);
            i |= i + 1;
        }
    }

    /// Sum of the sizes of buckets `0..i`.
    fn prefix(&self, mut i: usize) -> usize {
        let mut sum = 0;
        while i > 0 {
            sum += self.tree[i - 1];
            i &= i - 1;
        }
        sum
    }

    /// The bucket holding the item at `index` (which must be < the total), and the offset in it.
    fn find(&self, mut index: usize) -> (usize, usize) {
        let n = self.tree.len();
        let mut pos = 0;
        let mut step = n.next_power_of_two();
        while step > 0 {
            let next = pos + step;
            if next <= n && self.tree[next - 1] <= index {
                index -= self.tree[next - 1];
                pos = next;
            }
            step >>= 1;
        }
        (pos, index)
    }

    fn capacity_bytes(&self) -> usize {
        self.tree.capacity() * size_of::<usize>()
    }
}

/// Consecutive items of a set, held through the (copy-on-write) buckets that store them: a
/// reader takes one under the set's lock in time that does not depend on the items' size,
/// then copies or encodes them with the lock released; a writer that changes one of those
/// buckets meanwhile changes a copy.
#[derive(Debug, Clone)]
pub struct Run<T = Term> {
    buckets: Vec<Arc<Vec<T>>>,
    skip: usize,
    len: usize,
}

impl<T> Default for Run<T> {
    fn default() -> Self {
        Run {
            buckets: Vec::new(),
            skip: 0,
            len: 0,
        }
    }
}

impl<T> Run<T> {
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.buckets
            .iter()
            .flat_map(|b| b.iter())
            .skip(self.skip)
            .take(self.len)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn first(&self) -> Option<&T> {
        self.iter().next()
    }
}

/// The set. Not synchronised: the NIF layer wraps it in a lock.
#[derive(Debug, Clone)]
pub struct SortedSet<T = Term> {
    /// Copy-on-write buckets: a clone of the set shares them (a snapshot costs a pointer per
    /// bucket), and the first change to a shared bucket copies that bucket alone.
    buckets: Vec<Arc<Vec<T>>>,
    /// `firsts[b]` is a copy of `buckets[b][0]`.
    firsts: Vec<T>,
    counts: Fenwick,
    len: usize,
    bucket_size: usize,
    /// Running total of heap bytes owned by the items (not counting their 16-byte slots).
    item_heap: usize,
    /// Running total of bucket slot capacity, in items.
    slots: usize,
}

impl<T: Item> Default for SortedSet<T> {
    fn default() -> Self {
        SortedSet::new(DEFAULT_BUCKET_SIZE, 0)
    }
}

impl<T: Item> SortedSet<T> {
    /// An empty set whose buckets hold at most `bucket_size` items, with room reserved for
    /// `capacity` items' worth of buckets. `bucket_size` is clamped into
    /// [`MIN_BUCKET_SIZE`]`..=`[`MAX_BUCKET_SIZE`].
    pub fn new(bucket_size: usize, capacity: usize) -> SortedSet<T> {
        let bucket_size = bucket_size.clamp(MIN_BUCKET_SIZE, MAX_BUCKET_SIZE);
        let buckets = capacity.div_ceil(bucket_size).min(1 << 20);
        SortedSet {
            buckets: Vec::with_capacity(buckets),
            firsts: Vec::with_capacity(buckets),
            counts: Fenwick::default(),
            len: 0,
            bucket_size,
            item_heap: 0,
            slots: 0,
        }
    }

    /// Builds a set from items already strictly ascending, in `O(n)`.
    pub fn from_sorted(items: Vec<T>, bucket_size: usize) -> Result<SortedSet<T>, BuildError> {
        if let Some(i) = items.windows(2).position(|w| w[0] >= w[1]) {
            return Err(BuildError::NotSorted(i + 1));
        }
        Ok(SortedSet::from_ascending(items, bucket_size))
    }

    /// Fills buckets from items known to be strictly ascending.
    fn from_ascending(items: Vec<T>, bucket_size: usize) -> SortedSet<T> {
        let mut set = SortedSet::new(bucket_size, items.len());
        // Fill buckets to 7/8 so that the first inserts do not all split.
        let fill = (set.bucket_size - set.bucket_size / 8).max(1);
        let mut rest = items.into_iter().peekable();
        while rest.peek().is_some() {
            // Room to grow to a full bucket without reallocating (and faulting in new pages)
            // on the first inserts.
            let mut bucket = Vec::with_capacity(set.bucket_size);
            bucket.extend(rest.by_ref().take(fill));
            set.item_heap += bucket.iter().map(T::heap_bytes).sum::<usize>();
            set.len += bucket.len();
            set.slots += bucket.capacity();
            set.firsts.push(bucket[0].clone());
            set.buckets.push(Arc::new(bucket));
        }
        set.item_heap += set.firsts.iter().map(T::heap_bytes).sum::<usize>();
        set.rebuild_counts();
        set
    }

    /// Builds a set from items in any order; of items equal by `==`, the first one is kept.
    pub fn from_unsorted(mut items: Vec<T>, bucket_size: usize) -> SortedSet<T> {
        items.sort(); // stable: the first of equal items stays first
        items.dedup_by(|later, earlier| later == earlier);
        SortedSet::from_ascending(items, bucket_size)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn bucket_size(&self) -> usize {
        self.bucket_size
    }

    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Bytes held: item slots, item heap data, the bucket index and the Fenwick tree. `O(1)`.
    pub fn memory(&self) -> usize {
        size_of::<Self>()
            + self.slots * size_of::<T>()
            + self.item_heap
            + self.buckets.capacity() * size_of::<Arc<Vec<T>>>()
            + self.buckets.len() * BUCKET_HEADER
            + self.firsts.capacity() * size_of::<T>()
            + self.counts.capacity_bytes()
    }

    /// The bucket that holds, or would hold, `item`.
    fn bucket_for(&self, item: &T) -> usize {
        self.firsts
            .partition_point(|first| first <= item)
            .saturating_sub(1)
    }

    /// `Ok((bucket, pos))` when present, `Err((bucket, pos))` for the insertion point.
    fn locate(&self, item: &T) -> Result<(usize, usize), (usize, usize)> {
        if self.buckets.is_empty() {
            return Err((0, 0));
        }
        let b = self.bucket_for(item);
        match self.buckets[b].binary_search(item) {
            Ok(pos) => Ok((b, pos)),
            Err(pos) => Err((b, pos)),
        }
    }

    fn rebuild_counts(&mut self) {
        let n = self.buckets.len();
        if self.buckets.capacity() > 4 * n + 16 {
            // The set shrank a lot: give the index memory back.
            self.buckets.shrink_to(2 * n);
            self.firsts.shrink_to(2 * n);
            self.counts.tree.shrink_to(2 * n);
        }
        self.counts.rebuild(self.buckets.iter().map(|b| b.len()));
    }

    /// Inserts `item`; returns its index, or `None` (and drops `item`) if an equal item is
    /// already present.
    pub fn insert(&mut self, item: T) -> Option<usize> {
        let (b, pos) = match self.locate(&item) {
            Ok(_) => return None,
            Err(at) => at,
        };
        self.item_heap += item.heap_bytes();
        if self.buckets.is_empty() {
            let first = item.clone(); // a clone may have less spare capacity: count its own
            self.item_heap += first.heap_bytes();
            self.firsts.push(first);
            self.buckets.push(Arc::new(Vec::with_capacity(4)));
            self.slots += 4;
            self.bucket_mut(0).push(item);
            self.len = 1;
            self.rebuild_counts();
            return Some(0);
        }
        let index = self.counts.prefix(b) + pos;
        if pos == 0 {
            self.set_first(b, item.clone());
        }
        self.own_bucket(b);
        let bucket = Arc::make_mut(&mut self.buckets[b]);
        if bucket.len() == bucket.capacity() {
            // Grow by a quarter, not by doubling: bounds the slack to ~25%.
            let before = bucket.capacity();
            bucket.reserve_exact((before / 4).max(4));
            self.slots += bucket.capacity() - before;
        }
        bucket.insert(pos, item);
        self.len += 1;
        self.counts.add(b, 1);
        if bucket.len() > self.bucket_size {
            let len = bucket.len();
            // Items arriving in ascending (or descending) order would leave every bucket half
            // full after an even split: at the ends of the set, split off only an eighth.
            let at = if b + 1 == self.buckets.len() && pos + 1 == len {
                len - len / 8
            } else if b == 0 && pos == 0 {
                len / 8
            } else {
                len / 2
            };
            self.split(b, at.clamp(1, len - 1));
        }
        Some(index)
    }

    /// Removes the item equal to `item`; returns the index it had.
    pub fn remove(&mut self, item: &T) -> Option<usize> {
        let (b, pos) = self.locate(item).ok()?;
        let index = self.counts.prefix(b) + pos;
        let removed = self.bucket_mut(b).remove(pos);
        self.item_heap -= removed.heap_bytes();
        self.len -= 1;
        self.counts.add(b, -1);
        let remaining = self.buckets[b].len();
        if remaining == 0 {
            self.drop_bucket(b);
            self.rebuild_counts();
        } else {
            if pos == 0 {
                let first = self.buckets[b][0].clone();
                self.set_first(b, first);
            }
            if remaining < self.bucket_size / 4 && self.buckets.len() > 1 {
                self.merge(b);
            }
        }
        Some(index)
    }

    /// Removes `old` and inserts `new` in one step. Returns `old`'s index before the change
    /// (`None` if absent) and `new`'s index after it (`None` if an equal item was already there,
    /// in which case nothing is inserted).
    pub fn replace(&mut self, old: &T, new: T) -> (Option<usize>, Option<usize>) {
        let old_index = self.remove(old);
        (old_index, self.insert(new))
    }

    /// Bucket `b` for a change. A bucket that a clone of the set (a snapshot being encoded)
    /// still shares is copied first, with the same capacity, so that the slot count holds;
    /// the copies' heap is counted in place of the originals'.
    fn bucket_mut(&mut self, b: usize) -> &mut Vec<T> {
        self.own_bucket(b);
        Arc::make_mut(&mut self.buckets[b])
    }

    /// Makes bucket `b` the set's own (see [`SortedSet::bucket_mut`]): afterwards
    /// `Arc::make_mut` on it copies nothing.
    fn own_bucket(&mut self, b: usize) {
        let slot = &mut self.buckets[b];
        if Arc::get_mut(slot).is_none() {
            let mut copy = Vec::with_capacity(slot.capacity());
            copy.extend(slot.iter().cloned());
            let before: usize = slot.iter().map(T::heap_bytes).sum();
            let after: usize = copy.iter().map(T::heap_bytes).sum();
            self.item_heap = self.item_heap + after - before;
            *slot = Arc::new(copy);
        }
    }

    /// The items of a bucket taken out of the set (copied if a clone still shares it).
    fn unshare(&mut self, bucket: Arc<Vec<T>>) -> Vec<T> {
        Arc::try_unwrap(bucket).unwrap_or_else(|shared| {
            let copy: Vec<T> = shared.to_vec();
            let before: usize = shared.iter().map(T::heap_bytes).sum();
            let after: usize = copy.iter().map(T::heap_bytes).sum();
            self.item_heap = self.item_heap + after - before;
            copy
        })
    }

    fn set_first(&mut self, b: usize, first: T) {
        self.item_heap += first.heap_bytes();
        let old = std::mem::replace(&mut self.firsts[b], first);
        self.item_heap -= old.heap_bytes();
    }

    fn drop_bucket(&mut self, b: usize) {
        let bucket = self.buckets.remove(b);
        self.slots -= bucket.capacity();
        let first = self.firsts.remove(b);
        self.item_heap -= first.heap_bytes();
    }

    /// Splits bucket `b` at position `at` (`0 < at < len`).
    fn split(&mut self, b: usize, at: usize) {
        self.own_bucket(b);
        let bucket = Arc::make_mut(&mut self.buckets[b]);
        let moved = bucket.len() - at;
        let mut upper = Vec::with_capacity(moved + moved / 4 + 1);
        upper.extend(bucket.drain(at..));
        let before = bucket.capacity();
        bucket.shrink_to(bucket.len() + bucket.len() / 4);
        self.slots = self.slots - before + bucket.capacity() + upper.capacity();
        let first = upper[0].clone();
        self.item_heap += first.heap_bytes();
        self.firsts.insert(b + 1, first);
        self.buckets.insert(b + 1, Arc::new(upper));
        self.rebuild_counts();
    }

    /// Merges thin bucket `b` into a neighbour, splitting again if the result overflows.
    fn merge(&mut self, b: usize) {
        let (left, right) = if b + 1 < self.buckets.len() {
            (b, b + 1)
        } else {
            (b - 1, b)
        };
        let moved = self.buckets.remove(right);
        let first = self.firsts.remove(right);
        self.item_heap -= first.heap_bytes();
        self.slots -= moved.capacity();
        let moved = self.unshare(moved);
        self.own_bucket(left);
        let target = Arc::make_mut(&mut self.buckets[left]);
        let before = target.capacity();
        target.extend(moved);
        self.slots = self.slots - before + target.capacity();
        if target.len() > self.bucket_size {
            let half = target.len() / 2;
            self.split(left, half);
        } else {
            self.rebuild_counts();
        }
    }

    /// The item equal to `item`, if present.
    pub fn get(&self, item: &T) -> Option<&T> {
        self.locate(item).ok().map(|(b, pos)| &self.buckets[b][pos])
    }

    pub fn contains(&self, item: &T) -> bool {
        self.locate(item).is_ok()
    }

    /// The index of the item equal to `item`.
    pub fn find_index(&self, item: &T) -> Option<usize> {
        let (b, pos) = self.locate(item).ok()?;
        Some(self.counts.prefix(b) + pos)
    }

    /// How many items are strictly less than `item` (its index if present, else where it
    /// would go).
    pub fn rank(&self, item: &T) -> usize {
        match self.locate(item) {
            Ok((b, pos)) | Err((b, pos)) => {
                if self.buckets.is_empty() {
                    0
                } else {
                    self.counts.prefix(b) + pos
                }
            }
        }
    }

    /// The item at `index`.
    pub fn at(&self, index: usize) -> Option<&T> {
        if index >= self.len {
            return None;
        }
        let (b, off) = self.counts.find(index);
        self.buckets.get(b)?.get(off)
    }

    pub fn first(&self) -> Option<&T> {
        self.buckets.first()?.first()
    }

    pub fn last(&self) -> Option<&T> {
        self.buckets.last()?.last()
    }

    /// Items from `start`, in order.
    pub fn iter_from(&self, start: usize) -> impl Iterator<Item = &T> + '_ {
        let (b, off) = if start >= self.len {
            (self.buckets.len(), 0)
        } else {
            self.counts.find(start)
        };
        let head = self.buckets.get(b).map(|x| &x[off..]).unwrap_or(&[]);
        head.iter()
            .chain(self.buckets.iter().skip(b + 1).flat_map(|b| b.iter()))
    }

    /// Up to `amount` items from index `start`.
    pub fn slice(&self, start: usize, amount: usize) -> impl Iterator<Item = &T> + '_ {
        self.iter_from(start).take(amount)
    }

    /// [`SortedSet::slice`] as a [`Run`]: taken in `O(log n + buckets it spans)`, readable
    /// after the set's lock is released.
    pub fn run(&self, start: usize, amount: usize) -> Run<T> {
        let amount = amount.min(self.len.saturating_sub(start));
        if amount == 0 {
            return Run::default();
        }
        let (mut b, skip) = self.counts.find(start);
        let mut buckets = Vec::new();
        let mut spanned = 0;
        while spanned < skip + amount {
            let Some(bucket) = self.buckets.get(b) else {
                break;
            };
            spanned += bucket.len();
            buckets.push(bucket.clone());
            b += 1;
        }
        Run {
            buckets,
            skip,
            len: amount,
        }
    }

    /// Up to `limit` items within the bounds, as a [`Run`] (see [`SortedSet::range`]).
    pub fn range_run(&self, min: Bound<T>, max: Bound<T>, limit: usize) -> Run<T> {
        let start = match min {
            Bound::Unbounded => 0,
            Bound::Included(t) => self.rank(t),
            Bound::Excluded(t) => self.rank(t) + usize::from(self.contains(t)),
        };
        let end = match max {
            Bound::Unbounded => self.len,
            Bound::Included(t) => self.rank(t) + usize::from(self.contains(t)),
            Bound::Excluded(t) => self.rank(t),
        };
        self.run(start, end.saturating_sub(start).min(limit))
    }

    /// Items within the bounds, ascending, starting at the lower bound.
    pub fn range<'s>(
        &'s self,
        min: Bound<'s, T>,
        max: Bound<'s, T>,
    ) -> impl Iterator<Item = &'s T> + 's {
        let start = match min {
            Bound::Unbounded => 0,
            Bound::Included(t) => self.rank(t),
            Bound::Excluded(t) => match self.find_index(t) {
                Some(i) => i + 1,
                None => self.rank(t),
            },
        };
        self.iter_from(start).take_while(move |item| match max {
            Bound::Unbounded => true,
            Bound::Included(t) => *item <= t,
            Bound::Excluded(t) => *item < t,
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.buckets.iter().flat_map(|b| b.iter())
    }

    /// A human-readable description of the internal layout (bucket sizes, first items of the
    /// first buckets), bounded in length.
    pub fn debug(&self) -> String {
        let mut out = format!(
            "SortedSet {{ size: {}, bucket_size: {}, buckets: {}, memory: {}, bucket_sizes: [",
            self.len,
            self.bucket_size,
            self.buckets.len(),
            self.memory()
        );
        for (i, b) in self.buckets.iter().enumerate().take(64) {
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(out, "{sep}{}", b.len());
        }
        if self.buckets.len() > 64 {
            out.push_str(", ...");
        }
        out.push_str("] }");
        out
    }

    /// Checks every internal invariant; used by tests.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut total = 0;
        let mut prev: Option<&T> = None;
        if self.buckets.len() != self.firsts.len() {
            return Err("firsts out of step with buckets".into());
        }
        for (b, bucket) in self.buckets.iter().enumerate() {
            if bucket.is_empty() {
                return Err(format!("bucket {b} is empty"));
            }
            if bucket.len() > self.bucket_size {
                return Err(format!("bucket {b} overflows: {}", bucket.len()));
            }
            if self.firsts[b].cmp(&bucket[0]) != Ordering::Equal {
                return Err(format!("firsts[{b}] is stale"));
            }
            if self.counts.prefix(b) != total {
                return Err(format!("prefix({b}) wrong"));
            }
            for item in bucket.iter() {
                if let Some(p) = prev {
                    if p >= item {
                        return Err(format!("not ascending at {p:?} / {item:?}"));
                    }
                }
                prev = Some(item);
            }
            total += bucket.len();
        }
        if total != self.len {
            return Err(format!("len {} but {} items", self.len, total));
        }
        let heap: usize = self
            .iter()
            .chain(self.firsts.iter())
            .map(T::heap_bytes)
            .sum();
        if heap != self.item_heap {
            return Err(format!("item_heap {} but {}", self.item_heap, heap));
        }
        let slots: usize = self.buckets.iter().map(|b| b.capacity()).sum();
        if slots != self.slots {
            return Err(format!("slots {} but {}", self.slots, slots));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(i64),
        Remove(i64),
        Replace(i64, i64),
        At(usize),
        Rank(i64),
        Slice(usize, usize),
        Range(i64, i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let v = -300i64..300;
        prop_oneof![
            4 => v.clone().prop_map(Op::Insert),
            3 => v.clone().prop_map(Op::Remove),
            1 => (v.clone(), v.clone()).prop_map(|(a, b)| Op::Replace(a, b)),
            1 => (0usize..700).prop_map(Op::At),
            1 => v.clone().prop_map(Op::Rank),
            1 => (0usize..700, 0usize..40).prop_map(|(a, b)| Op::Slice(a, b)),
            1 => (v.clone(), v).prop_map(|(a, b)| Op::Range(a, b)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn matches_btreeset(ops in prop::collection::vec(op(), 1..600), bucket in 1usize..12) {
            let mut set = SortedSet::new(bucket, 0);
            let mut model = BTreeSet::new();
            // Runs taken along the way, with what they held: later writes must not touch them.
            let mut held: Vec<(Run, Vec<Term>)> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(v) => {
                        let expected = (!model.contains(&v)).then(|| model.range(..v).count());
                        model.insert(v);
                        prop_assert_eq!(set.insert(Term::Int(v)), expected);
                    }
                    Op::Remove(v) => {
                        let expected = model.contains(&v).then(|| model.range(..v).count());
                        model.remove(&v);
                        prop_assert_eq!(set.remove(&Term::Int(v)), expected);
                    }
                    Op::Replace(a, b) => {
                        let old = model.contains(&a).then(|| model.range(..a).count());
                        model.remove(&a);
                        let new = (!model.contains(&b)).then(|| model.range(..b).count());
                        model.insert(b);
                        prop_assert_eq!(set.replace(&Term::Int(a), Term::Int(b)), (old, new));
                    }
                    Op::At(i) => {
                        let expected = model.iter().nth(i).map(|v| Term::Int(*v));
                        prop_assert_eq!(set.at(i).cloned(), expected);
                    }
                    Op::Rank(v) => {
                        prop_assert_eq!(set.rank(&Term::Int(v)), model.range(..v).count());
                        let idx = model.contains(&v).then(|| model.range(..v).count());
                        prop_assert_eq!(set.find_index(&Term::Int(v)), idx);
                    }
                    Op::Slice(s, n) => {
                        let got: Vec<Term> = set.slice(s, n).cloned().collect();
                        let want: Vec<Term> = model.iter().skip(s).take(n).map(|v| Term::Int(*v)).collect();
                        prop_assert_eq!(&got, &want);
                        let run = set.run(s, n);
                        prop_assert_eq!(run.iter().cloned().collect::<Vec<_>>(), want.clone());
                        prop_assert_eq!(run.len(), want.len());
                        held.push((run, want));
                    }
                    Op::Range(a, b) => {
                        let (lo, hi) = (Term::Int(a), Term::Int(b));
                        let got: Vec<Term> = set.range(Bound::Excluded(&lo), Bound::Included(&hi)).cloned().collect();
                        let want: Vec<Term> = if a < b {
                            model.range(a + 1..=b).map(|v| Term::Int(*v)).collect()
                        } else { vec![] };
                        prop_assert_eq!(got, want);
                        for (lo_in, hi_in) in [(false, false), (false, true), (true, false), (true, true)] {
                            let min = if lo_in { Bound::Included(&lo) } else { Bound::Excluded(&lo) };
                            let max = if hi_in { Bound::Included(&hi) } else { Bound::Excluded(&hi) };
                            let want: Vec<Term> = model
                                .iter()
                                .filter(|&&v| (v > a || (lo_in && v == a)) && (v < b || (hi_in && v == b)))
                                .take(7)
                                .map(|v| Term::Int(*v))
                                .collect();
                            let run = set.range_run(min, max, 7);
                            prop_assert_eq!(run.iter().cloned().collect::<Vec<_>>(), want);
                        }
                        let all = set.range_run(Bound::Unbounded, Bound::Unbounded, usize::MAX);
                        prop_assert_eq!(all.len(), model.len());
                    }
                }
                prop_assert_eq!(set.len(), model.len());
                if let Err(e) = set.check_invariants() {
                    return Err(TestCaseError::fail(e));
                }
            }
            let all: Vec<Term> = set.iter().cloned().collect();
            let want: Vec<Term> = model.iter().map(|v| Term::Int(*v)).collect();
            prop_assert_eq!(all, want);
            for (run, want) in held {
                prop_assert_eq!(run.iter().cloned().collect::<Vec<_>>(), want);
            }
        }

        #[test]
        fn from_unsorted_matches_sort_dedup(items in prop::collection::vec(-1000i64..1000, 0..2000), bucket in 4usize..40) {
            let set = SortedSet::from_unsorted(items.iter().map(|v| Term::Int(*v)).collect(), bucket);
            let model: BTreeSet<i64> = items.into_iter().collect();
            prop_assert_eq!(set.iter().cloned().collect::<Vec<_>>(), model.iter().map(|v| Term::Int(*v)).collect::<Vec<_>>());
            if let Err(e) = set.check_invariants() {
                return Err(TestCaseError::fail(e));
            }
        }
    }

    #[test]
    fn from_sorted_rejects_unsorted_input() {
        let items = vec![Term::Int(1), Term::Int(3), Term::Float(3.0)];
        assert_eq!(
            SortedSet::from_sorted(items, 8).err(),
            Some(BuildError::NotSorted(2))
        );
    }

    #[test]
    fn first_of_equal_items_is_kept() {
        let set = SortedSet::from_unsorted(vec![Term::Float(1.0), Term::Int(1)], 8);
        assert!(matches!(set.first(), Some(Term::Float(_))));
        let mut set = SortedSet::new(8, 0);
        set.insert(Term::Int(1));
        assert_eq!(set.insert(Term::Float(1.0)), None);
        assert!(matches!(set.get(&Term::Float(1.0)), Some(Term::Int(1))));
    }

    #[test]
    fn memory_goes_back_down() {
        let mut set = SortedSet::new(16, 0);
        let empty = set.memory();
        for i in 0..5000 {
            set.insert(Term::binary(format!("member-{i:08}-padding").as_bytes()));
        }
        assert!(set.memory() > empty + 5000 * 16);
        for i in 0..5000 {
            set.remove(&Term::binary(format!("member-{i:08}-padding").as_bytes()));
        }
        set.check_invariants().unwrap();
        assert!(set.memory() < empty + 4096, "{}", set.memory());
    }
}
