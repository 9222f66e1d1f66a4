//! A follow graph kept in both directions as Roaring bitmaps: for each user, who follows them
//! and whom they follow.
//!
//! | operation | cost |
//! |---|---|
//! | `follow`, `unfollow`, `follows` | `O(1)` expected (a hash lookup and a container search) |
//! | `follower_count`, `following_count` | `O(containers)` |
//! | a page of `limit` ids after `after` | `O(log + limit)` |
//! | `known_followers`, `mutuals`, `common_following` | `O(smaller set)` membership tests |

use std::mem::size_of;
use std::ops::Deref;
use std::sync::Arc;

use roaring::RoaringBitmap;

use crate::codec::{self, get_bitmap_with, invalid, put_bitmap_with, DecodeError, Put, Reader};
use crate::heap;
use crate::sharded::ShardedMap;

/// Bytes of one of roaring's containers in its container vector (a key and a store).
const CONTAINER_BYTES: usize = 32;
/// Bytes of a bitmap container's bits.
const BITSET_BYTES: usize = 8192;

/// A Roaring bitmap and the bytes its allocations hold, kept as it changes.
///
/// Roaring reports its array containers' capacities (`statistics`) but not its container
/// vector's: that is followed here. Roaring adds containers one at a time with `Vec::insert`
/// (the vector grows as a `Vec` grows: to 4, then doubling), allocates exactly when
/// deserializing or cloning, and never shrinks.
///
/// Measuring walks every container (`statistics`), ~1 µs for a set of 600: it is done after
/// one change in eight containers' worth (at least one), which keeps the count within a few
/// percent (a change adds at most a container and its array, or grows one array) at an
/// eighth of a container walk per change.
#[derive(Debug, Default)]
pub struct Bits {
    set: RoaringBitmap,
    containers: usize,
    slots: usize,
    /// Chunk bytes of the container vector and the stores, as last measured.
    heap: usize,
    /// Changes since then.
    unmeasured: usize,
}

impl Deref for Bits {
    type Target = RoaringBitmap;

    fn deref(&self) -> &RoaringBitmap {
        &self.set
    }
}

impl Clone for Bits {
    fn clone(&self) -> Bits {
        Bits::exact(self.set.clone())
    }
}

impl Bits {
    /// A bitmap whose allocations are exactly its contents (deserialized or cloned).
    pub fn exact(set: RoaringBitmap) -> Bits {
        let mut bits = Bits {
            set,
            ..Bits::default()
        };
        bits.slots = bits.set.statistics().n_containers as usize;
        bits.measure();
        bits
    }

    /// Adds `value`; whether it was new.
    pub fn insert(&mut self, value: u32) -> bool {
        let added = self.set.insert(value);
        if added {
            self.changed();
        }
        added
    }

    /// Counts a change; measures when enough have been made (see above).
    fn changed(&mut self) {
        self.unmeasured += 1;
        if self.unmeasured >= (self.containers / 8).max(1) {
            self.measure();
        }
    }

    /// Adds `values` (best ascending); how many were new.
    pub fn extend(&mut self, values: impl IntoIterator<Item = u32>) -> u64 {
        let before = self.set.len();
        // One at a time: `insert` is how roaring grows its vector as followed above.
        for v in values {
            self.set.insert(v);
        }
        let added = self.set.len() - before;
        if added > 0 {
            self.measure();
        }
        added
    }

    /// Removes `value`; whether it was there.
    pub fn remove(&mut self, value: u32) -> bool {
        let removed = self.set.remove(value);
        if removed {
            self.changed();
        }
        removed
    }

    /// Chunk bytes of the bitmap's own allocations (not its `Arc`).
    pub fn heap_bytes(&self) -> usize {
        self.heap
    }

    fn measure(&mut self) {
        let stats = self.set.statistics();
        let containers = stats.n_containers as usize;
        let mut slots = self.slots;
        while slots < containers {
            slots = (slots * 2).max(4); // one `Vec::insert` at a time: doubling from 4
        }
        let arrays = stats.n_array_containers as usize;
        // `statistics` counts array capacity at 4 bytes a value; values are `u16`s.
        let array_bytes = stats.n_bytes_array_containers as usize / 2;
        // Each array is its own allocation: chunks of the mean capacity (exact for one).
        let array_chunks = if arrays == 0 {
            0
        } else {
            arrays * heap::chunk(array_bytes / arrays)
        };
        self.containers = containers;
        self.slots = slots;
        self.unmeasured = 0;
        self.heap = heap::chunk(slots * CONTAINER_BYTES)
            + array_chunks
            + stats.n_bitset_containers as usize * heap::chunk(BITSET_BYTES);
    }
}

/// Most ids a user's set keeps in a sorted vector; past this, a roaring bitmap.
pub const SMALL_IDS: usize = 4096;

/// A user's followers or follows: a sorted vector of ids while there are few (most users
/// have few: roaring spends ~200 bytes on its container vector and an array for a set of
/// one), a roaring bitmap past [`SMALL_IDS`].
#[derive(Debug, Clone)]
pub enum Ids {
    Small(Vec<u32>),
    Big(Box<Bits>),
}

impl Default for Ids {
    fn default() -> Self {
        Ids::Small(Vec::new())
    }
}

/// The ids of an [`Ids`], ascending.
pub enum IdsIter<'a> {
    Small(std::iter::Copied<std::slice::Iter<'a, u32>>),
    Big(roaring::bitmap::Iter<'a>),
}

impl Iterator for IdsIter<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        match self {
            IdsIter::Small(i) => i.next(),
            IdsIter::Big(i) => i.next(),
        }
    }

    fn nth(&mut self, n: usize) -> Option<u32> {
        match self {
            IdsIter::Small(i) => i.nth(n),
            IdsIter::Big(i) => i.nth(n),
        }
    }
}

impl Ids {
    /// The set of a decoded bitmap: a vector (exact) when small enough.
    pub fn from_bitmap(set: RoaringBitmap) -> Ids {
        if set.len() <= SMALL_IDS as u64 {
            Ids::Small(set.iter().collect())
        } else {
            Ids::Big(Box::new(Bits::exact(set)))
        }
    }

    /// The ids as a roaring bitmap (built for a small set: for writing a snapshot).
    pub fn to_bitmap(&self) -> std::borrow::Cow<'_, RoaringBitmap> {
        match self {
            Ids::Small(v) => std::borrow::Cow::Owned(
                RoaringBitmap::from_sorted_iter(v.iter().copied()).unwrap_or_default(),
            ),
            Ids::Big(b) => std::borrow::Cow::Borrowed(&b.set),
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            Ids::Small(v) => v.len() as u64,
            Ids::Big(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, id: u32) -> bool {
        match self {
            Ids::Small(v) => v.binary_search(&id).is_ok(),
            Ids::Big(b) => b.contains(id),
        }
    }

    pub fn iter(&self) -> IdsIter<'_> {
        match self {
            Ids::Small(v) => IdsIter::Small(v.iter().copied()),
            Ids::Big(b) => IdsIter::Big(b.iter()),
        }
    }

    /// The ids in `range`, ascending.
    pub fn range(&self, range: impl std::ops::RangeBounds<u32>) -> IdsIter<'_> {
        use std::ops::Bound;
        match self {
            Ids::Small(v) => {
                let from = match range.start_bound() {
                    Bound::Included(&a) => v.partition_point(|&x| x < a),
                    Bound::Excluded(&a) => v.partition_point(|&x| x <= a),
                    Bound::Unbounded => 0,
                };
                let to = match range.end_bound() {
                    Bound::Included(&b) => v.partition_point(|&x| x <= b),
                    Bound::Excluded(&b) => v.partition_point(|&x| x < b),
                    Bound::Unbounded => v.len(),
                };
                IdsIter::Small(v[from..to.max(from)].iter().copied())
            }
            Ids::Big(b) => IdsIter::Big(b.range(range)),
        }
    }

    /// How many ids both sets hold.
    pub fn intersection_len(&self, other: &Ids) -> u64 {
        match (self, other) {
            (Ids::Big(a), Ids::Big(b)) => a.intersection_len(b),
            _ => {
                let (small, large) = if self.len() <= other.len() {
                    (self, other)
                } else {
                    (other, self)
                };
                small.iter().filter(|&id| large.contains(id)).count() as u64
            }
        }
    }

    /// Adds `id`; whether it was new.
    pub fn insert(&mut self, id: u32) -> bool {
        match self {
            Ids::Small(v) => match v.binary_search(&id) {
                Ok(_) => false,
                Err(at) => {
                    if v.len() == SMALL_IDS {
                        let mut bits = Bits::exact(
                            RoaringBitmap::from_sorted_iter(v.iter().copied()).unwrap_or_default(),
                        );
                        bits.insert(id);
                        *self = Ids::Big(Box::new(bits));
                        return true;
                    }
                    if v.len() == v.capacity() {
                        // An eighth more (at least one): slack stays small for small sets.
                        v.reserve_exact((v.len() / 8).max(1));
                    }
                    v.insert(at, id);
                    true
                }
            },
            Ids::Big(b) => b.insert(id),
        }
    }

    /// Adds ascending `ids`; how many were new.
    pub fn extend(&mut self, ids: impl IntoIterator<Item = u32>) -> u64 {
        let mut added = 0;
        for id in ids {
            added += u64::from(self.insert(id));
        }
        added
    }

    /// Removes `id`; whether it was there. A set that falls to half of [`SMALL_IDS`] becomes
    /// a vector again, and a vector gives back slack over half its capacity.
    pub fn remove(&mut self, id: u32) -> bool {
        match self {
            Ids::Small(v) => match v.binary_search(&id) {
                Ok(at) => {
                    v.remove(at);
                    if v.capacity() > 8 && v.len() < v.capacity() / 2 {
                        v.shrink_to(v.len() + v.len() / 8);
                    }
                    true
                }
                Err(_) => false,
            },
            Ids::Big(b) => {
                let removed = b.remove(id);
                if b.len() <= SMALL_IDS as u64 / 2 {
                    *self = Ids::Small(b.iter().collect());
                }
                removed
            }
        }
    }

    /// Chunk bytes of the set's own allocations (not its `Arc`).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Ids::Small(v) => heap::buffer::<u32>(v.capacity()),
            Ids::Big(b) => heap::chunk(size_of::<Bits>()) + b.heap_bytes(),
        }
    }
}

/// Errors from changing the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphError {
    /// A user cannot follow themselves.
    SelfFollow(u32),
}

#[derive(Clone, Copy)]
enum Direction {
    Following,
    Followers,
}

/// A page of ids and how many there are in all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    pub ids: Vec<u32>,
    pub total: u64,
}

/// The graph. Not synchronised: the NIF layer wraps it in a lock.
#[derive(Debug, Default, Clone)]
pub struct FollowerMap {
    followers: ShardedMap<u32, Arc<Ids>>,
    following: ShardedMap<u32, Arc<Ids>>,
    edges: u64,
    users: u64,
    /// Running total of the sets' allocations ([`Ids::heap_bytes`]).
    bitmap_bytes: usize,
}

impl FollowerMap {
    pub fn new() -> FollowerMap {
        FollowerMap::default()
    }

    /// Number of follow edges.
    pub fn edges(&self) -> u64 {
        self.edges
    }

    /// Number of users with at least one edge.
    pub fn users(&self) -> u64 {
        self.users
    }

    /// Bytes held, kept as a running count (`O(1)`): the allocator's chunks for the maps'
    /// tables, each bitmap's `Arc`, container vector and stores (see [`crate::heap`]).
    pub fn memory(&self) -> usize {
        size_of::<Self>()
            + self.bitmap_bytes
            + self.followers.heap_bytes()
            + self.following.heap_bytes()
            + (self.followers.len() + self.following.len()) * heap::arc::<Ids>()
    }

    fn has_edges(&self, user: u32) -> bool {
        self.followers.contains_key(&user) || self.following.contains_key(&user)
    }

    /// `follower` follows `followee`; `Ok(false)` when it already did.
    pub fn follow(&mut self, follower: u32, followee: u32) -> Result<bool, GraphError> {
        if follower == followee {
            return Err(GraphError::SelfFollow(follower));
        }
        if self.follows(follower, followee) {
            return Ok(false);
        }
        let new_users = u64::from(!self.has_edges(follower)) + u64::from(!self.has_edges(followee));
        self.users += new_users;
        self.edges += 1;
        insert(
            &mut self.following,
            follower,
            followee,
            &mut self.bitmap_bytes,
        );
        insert(
            &mut self.followers,
            followee,
            follower,
            &mut self.bitmap_bytes,
        );
        Ok(true)
    }

    /// `follower` stops following `followee`; `false` when it did not.
    pub fn unfollow(&mut self, follower: u32, followee: u32) -> bool {
        if !self.follows(follower, followee) {
            return false;
        }
        self.edges -= 1;
        remove(
            &mut self.following,
            follower,
            followee,
            &mut self.bitmap_bytes,
        );
        remove(
            &mut self.followers,
            followee,
            follower,
            &mut self.bitmap_bytes,
        );
        self.users -= u64::from(!self.has_edges(follower)) + u64::from(!self.has_edges(followee));
        true
    }

    /// Adds many edges at once, in `O(e log e)` for the sort and then bitmap by bitmap (each
    /// touched once per direction); returns how many were new. Self-follows are refused
    /// before anything changes.
    pub fn follow_many(&mut self, edges: &mut [(u32, u32)]) -> Result<u64, GraphError> {
        if let Some(&(a, _)) = edges.iter().find(|(a, b)| a == b) {
            return Err(GraphError::SelfFollow(a));
        }
        edges.sort_unstable();
        let added = self.add_sorted(edges, Direction::Following);
        for edge in edges.iter_mut() {
            *edge = (edge.1, edge.0);
        }
        edges.sort_unstable();
        self.add_sorted(edges, Direction::Followers);
        self.edges += added;
        Ok(added)
    }

    /// Inserts `(key, value)` pairs sorted by key into one direction; returns how many were
    /// new. A key new to both directions counts as a new user.
    fn add_sorted(&mut self, pairs: &[(u32, u32)], direction: Direction) -> u64 {
        let (map, other) = match direction {
            Direction::Following => (&mut self.following, &self.followers),
            Direction::Followers => (&mut self.followers, &self.following),
        };
        let mut added = 0;
        for group in pairs.chunk_by(|x, y| x.0 == y.0) {
            let key = group[0].0;
            if !map.contains_key(&key) && !other.contains_key(&key) {
                self.users += 1;
            }
            let size = counted(map, key);
            let bitmap = map.value_or_default(key);
            added += bitmap.extend(group.iter().map(|&(_, value)| value));
            self.bitmap_bytes = self.bitmap_bytes + bitmap.heap_bytes() - size;
        }
        added
    }

    pub fn follows(&self, follower: u32, followee: u32) -> bool {
        self.following
            .get(&follower)
            .is_some_and(|b| b.contains(followee))
    }

    pub fn follower_count(&self, user: u32) -> u64 {
        self.followers_of(user).map_or(0, Ids::len)
    }

    pub fn following_count(&self, user: u32) -> u64 {
        self.following_of(user).map_or(0, Ids::len)
    }

    /// The bitmap of `user`'s followers, if any.
    pub fn followers_of(&self, user: u32) -> Option<&Ids> {
        self.followers.get(&user).map(|b| &**b)
    }

    /// The bitmap of the users `user` follows, if any.
    pub fn following_of(&self, user: u32) -> Option<&Ids> {
        self.following.get(&user).map(|b| &**b)
    }

    /// Up to `limit` of `user`'s followers with ids above `after`, ascending.
    pub fn followers(&self, user: u32, after: Option<u32>, limit: usize) -> Page {
        page(self.followers_of(user), after, limit)
    }

    /// Up to `limit` of the users `user` follows with ids above `after`, ascending.
    pub fn following(&self, user: u32, after: Option<u32>, limit: usize) -> Page {
        page(self.following_of(user), after, limit)
    }

    /// The users `viewer` follows who follow `target` ("followed by A, B and 12 others").
    pub fn known_followers(
        &self,
        viewer: u32,
        target: u32,
        after: Option<u32>,
        limit: usize,
    ) -> Page {
        intersect(
            self.following_of(viewer),
            self.followers_of(target),
            after,
            limit,
        )
    }

    /// The users who follow `user` and whom `user` follows.
    pub fn mutuals(&self, user: u32, after: Option<u32>, limit: usize) -> Page {
        intersect(
            self.following_of(user),
            self.followers_of(user),
            after,
            limit,
        )
    }

    /// The users both `a` and `b` follow.
    pub fn common_following(&self, a: u32, b: u32, after: Option<u32>, limit: usize) -> Page {
        intersect(self.following_of(a), self.following_of(b), after, limit)
    }
}

impl FollowerMap {
    /// Writes the graph: the edge and user counts, then each direction as a count of users
    /// and, per user ascending, its id and its bitmap in the Roaring portable format. The
    /// two directions are encoded on two threads (unless [`codec::parallel`] says not to).
    pub(crate) fn put_payload(&self, out: &mut Vec<u8>) {
        out.put_u64(self.edges);
        out.put_u64(self.users);
        if !codec::parallel() {
            out.extend_from_slice(&put_direction(&self.followers));
            out.extend_from_slice(&put_direction(&self.following));
            return;
        }
        let following = std::thread::scope(|scope| {
            let other = scope.spawn(|| put_direction(&self.following));
            out.extend_from_slice(&put_direction(&self.followers));
            other.join()
        });
        match following {
            Ok(bytes) => out.extend_from_slice(&bytes),
            // Not reached (encoding does not panic); a second pass keeps the output whole.
            Err(_) => out.extend_from_slice(&put_direction(&self.following)),
        }
    }

    /// Reads what [`FollowerMap::put_payload`] wrote and checks that it is a graph: users
    /// ascend, no bitmap is empty or holds its own user, both directions hold the same
    /// edges (equal counts and an equal order-independent hash of the edges), and the
    /// counts agree with them. The two directions are decoded on two threads (unless
    /// [`codec::parallel`] says not to).
    pub(crate) fn get_payload(r: &mut Reader) -> Result<FollowerMap, DecodeError> {
        let edges = r.u64()?;
        let users = r.u64()?;
        // Find where each direction ends without decoding it.
        let mut scan = r.clone();
        let start = scan.remaining();
        let skip = |scan: &mut Reader| -> Result<usize, DecodeError> {
            for _ in 0..scan.count(4 + 9)? {
                scan.u32()?;
                scan.bytes()?;
            }
            Ok(start - scan.remaining())
        };
        let first_len = skip(&mut scan)?;
        let both_len = skip(&mut scan)?;
        let first = r.take(first_len)?;
        let second = r.take(both_len - first_len)?;
        let (followers, following) = if codec::parallel() {
            std::thread::scope(|scope| {
                let other = scope.spawn(|| get_direction(second, Direction::Following));
                let followers = get_direction(first, Direction::Followers);
                let following = other
                    .join()
                    .unwrap_or_else(|_| invalid("graph decoder failed"));
                (followers, following)
            })
        } else {
            (
                get_direction(first, Direction::Followers),
                get_direction(second, Direction::Following),
            )
        };
        let (followers, following) = (followers?, following?);
        for (name, d) in [("followers", &followers), ("following", &following)] {
            if d.edges != edges {
                return invalid(format!(
                    "{} edges stored as {name}, {edges} announced",
                    d.edges
                ));
            }
        }
        if followers.fingerprint != following.fingerprint {
            return invalid("the two directions hold different edges");
        }
        let distinct = union_len(&followers.keys, &following.keys);
        if distinct != users {
            return invalid(format!("{distinct} users stored, {users} announced"));
        }
        Ok(FollowerMap {
            bitmap_bytes: followers.bitmap_bytes + following.bitmap_bytes,
            followers: followers.map,
            following: following.map,
            edges,
            users,
        })
    }
}

/// One direction of the graph as written to a snapshot.
fn put_direction(map: &ShardedMap<u32, Arc<Ids>>) -> Vec<u8> {
    let mut out = Vec::with_capacity(map.len() * 16);
    let (mut values, mut containers) = (Vec::new(), Vec::new());
    let keys = map.sorted_keys();
    out.put_varint(keys.len() as u64);
    for key in keys {
        out.put_u32(key);
        if let Some(bitmap) = map.get(&key) {
            put_bitmap_with(&mut out, &bitmap.to_bitmap(), &mut values, &mut containers);
        }
    }
    out
}

/// One direction decoded: its map, users, edges and edge hash.
struct DecodedDirection {
    map: ShardedMap<u32, Arc<Ids>>,
    keys: Vec<u32>,
    edges: u64,
    fingerprint: u64,
    bitmap_bytes: usize,
}

fn get_direction(bytes: &[u8], direction: Direction) -> Result<DecodedDirection, DecodeError> {
    let mut r = Reader::new(bytes);
    let n = r.count(4 + 9)?;
    let mut d = DecodedDirection {
        map: ShardedMap::default(),
        keys: Vec::with_capacity(n),
        edges: 0,
        fingerprint: 0,
        bitmap_bytes: 0,
    };
    let mut entries = Vec::with_capacity(n);
    let mut scratch = Vec::new();
    for _ in 0..n {
        let key = r.u32()?;
        if d.keys.last().is_some_and(|&l| l >= key) {
            return invalid("graph users do not ascend");
        }
        let bitmap = get_bitmap_with(&mut r, &mut scratch)?;
        if bitmap.is_empty() || bitmap.contains(key) {
            return invalid(format!("user {key}: empty bitmap or a self-follow"));
        }
        d.edges += bitmap.len();
        // (follower, followee) whichever direction it is read from.
        for &other in scratch.iter() {
            let edge = match direction {
                Direction::Followers => (other, key),
                Direction::Following => (key, other),
            };
            d.fingerprint = d.fingerprint.wrapping_add(mix(edge));
        }
        let bitmap = Ids::from_bitmap(bitmap);
        d.bitmap_bytes += bitmap.heap_bytes();
        d.keys.push(key);
        entries.push((key, Arc::new(bitmap)));
    }
    r.finish()?;
    d.map = ShardedMap::from_distinct(entries);
    Ok(d)
}

/// A well-mixed 64-bit hash of an edge (splitmix64 of its two ids).
fn mix((a, b): (u32, u32)) -> u64 {
    let mut z = (u64::from(a) << 32 | u64::from(b)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Size of the union of two ascending lists.
fn union_len(a: &[u32], b: &[u32]) -> u64 {
    let (mut i, mut j, mut n) = (0, 0, 0u64);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
        n += 1;
    }
    n + (a.len() - i + b.len() - j) as u64
}

/// The bytes counted for `key`'s bitmap (taken before a change: a bitmap that a snapshot
/// still shares is copied for the change, and the copy's allocations are exact).
fn counted(map: &ShardedMap<u32, Arc<Ids>>, key: u32) -> usize {
    map.get(&key).map_or(0, |b| b.heap_bytes())
}

fn insert(map: &mut ShardedMap<u32, Arc<Ids>>, key: u32, value: u32, bytes: &mut usize) {
    let before = counted(map, key);
    let bitmap = map.value_or_default(key);
    bitmap.insert(value);
    *bytes = *bytes + bitmap.heap_bytes() - before;
}

fn remove(map: &mut ShardedMap<u32, Arc<Ids>>, key: u32, value: u32, bytes: &mut usize) {
    let before = counted(map, key);
    if let Some(bitmap) = map.value_mut(&key) {
        bitmap.remove(value);
        let after = bitmap.heap_bytes();
        if bitmap.is_empty() {
            map.remove(&key);
            *bytes -= before;
        } else {
            *bytes = *bytes + after - before;
        }
    }
}

fn start(after: Option<u32>) -> Option<u32> {
    match after {
        None => Some(0),
        Some(a) => a.checked_add(1),
    }
}

fn page(ids: Option<&Ids>, after: Option<u32>, limit: usize) -> Page {
    let (Some(ids), Some(from)) = (ids, start(after)) else {
        return Page {
            ids: Vec::new(),
            total: ids.map_or(0, Ids::len),
        };
    };
    Page {
        ids: ids.range(from..).take(limit).collect(),
        total: ids.len(),
    }
}

fn intersect(a: Option<&Ids>, b: Option<&Ids>, after: Option<u32>, limit: usize) -> Page {
    let (Some(a), Some(b)) = (a, b) else {
        return Page::default();
    };
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let total = small.intersection_len(large);
    let Some(from) = start(after) else {
        return Page {
            ids: Vec::new(),
            total,
        };
    };
    if let (Ids::Big(x), Ids::Big(y)) = (small, large) {
        if x.len() > 4096 {
            // Testing each id could walk the whole set for a short page: intersect by
            // container.
            let both = &x.set & &y.set;
            let mut iter = both.iter();
            iter.advance_to(from);
            return Page {
                ids: iter.take(limit).collect(),
                total,
            };
        }
    }
    Page {
        ids: small
            .range(from..)
            .filter(|&id| large.contains(id))
            .take(limit)
            .collect(),
        total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        #[test]
        fn matches_a_set_of_edges(ops in prop::collection::vec((any::<bool>(), 0u32..30, 0u32..30), 1..400)) {
            let mut graph = FollowerMap::new();
            let mut model: BTreeSet<(u32, u32)> = BTreeSet::new();
            for (follow, a, b) in ops {
                if a == b {
                    prop_assert_eq!(graph.follow(a, b), Err(GraphError::SelfFollow(a)));
                    continue;
                }
                if follow {
                    prop_assert_eq!(graph.follow(a, b), Ok(model.insert((a, b))));
                } else {
                    prop_assert_eq!(graph.unfollow(a, b), model.remove(&(a, b)));
                }
            }
            prop_assert_eq!(graph.edges(), model.len() as u64);
            let users: BTreeSet<u32> = model.iter().flat_map(|&(a, b)| [a, b]).collect();
            prop_assert_eq!(graph.users(), users.len() as u64);
            for u in 0..30u32 {
                let followers: Vec<u32> = model.iter().filter(|e| e.1 == u).map(|e| e.0).collect();
                let following: Vec<u32> = model.iter().filter(|e| e.0 == u).map(|e| e.1).collect();
                prop_assert_eq!(graph.followers(u, None, 100).ids, followers.clone());
                prop_assert_eq!(graph.following(u, Some(3), 2).ids, following.iter().copied().filter(|&x| x > 3).take(2).collect::<Vec<_>>());
                let mutual: Vec<u32> = following.iter().copied().filter(|x| followers.contains(x)).collect();
                let page = graph.mutuals(u, None, 100);
                prop_assert_eq!(page.ids, mutual.clone());
                prop_assert_eq!(page.total, mutual.len() as u64);
                for t in 0..30u32 {
                    let known: Vec<u32> = following.iter().copied().filter(|&x| model.contains(&(x, t))).collect();
                    let page = graph.known_followers(u, t, None, 100);
                    prop_assert_eq!(page.ids, known.clone());
                    prop_assert_eq!(page.total, known.len() as u64);
                }
            }
        }
    }

    #[test]
    fn bulk_follows_equal_single_follows() {
        let mut edges: Vec<(u32, u32)> = (0..3000u32)
            .map(|i| (i % 97, (i * 7919) % 101))
            .filter(|(a, b)| a != b)
            .collect();
        let mut one = FollowerMap::new();
        let added: u64 = edges
            .iter()
            .map(|&(a, b)| u64::from(one.follow(a, b).unwrap()))
            .sum();
        // On a graph that already holds one of the edges.
        let mut bulk = FollowerMap::new();
        bulk.follow(edges[0].0, edges[0].1).unwrap();
        assert_eq!(bulk.follow_many(&mut edges).unwrap(), added - 1);
        assert_eq!((bulk.edges(), bulk.users()), (one.edges(), one.users()));
        assert_eq!(bulk.bitmap_bytes, one.bitmap_bytes);
        for u in 0..101 {
            assert_eq!(bulk.followers(u, None, 1000), one.followers(u, None, 1000));
        }
        assert_eq!(
            bulk.follow_many(&mut [(1, 1)]),
            Err(GraphError::SelfFollow(1))
        );
    }

    #[test]
    fn memory_follows_the_edges() {
        let mut graph = FollowerMap::new();
        let empty = graph.memory();
        for a in 0..200u32 {
            for b in 0..200u32 {
                if a != b {
                    graph.follow(a, b).unwrap();
                }
            }
        }
        assert!(graph.memory() > empty + 200 * 199 * 4);
        for a in 0..200u32 {
            for b in 0..200u32 {
                graph.unfollow(a, b);
            }
        }
        assert_eq!(graph.edges(), 0);
        assert_eq!(graph.users(), 0);
        assert_eq!(graph.bitmap_bytes, 0);
    }

    /// A Bluesky-like graph: most users follow and are followed by few, some by many
    /// (followee ids skewed toward 0), over a wide id space.
    fn skewed_edges(n: usize, seed: u64) -> Vec<(u32, u32)> {
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u32
        };
        (0..n)
            .filter_map(|_| {
                let a = next() % 200_000;
                let r = next() % 1000;
                // 1/1000 of ids take a third of the follows.
                let b = if r < 333 {
                    next() % 200
                } else {
                    next() % 200_000
                };
                (a != b).then_some((a, b))
            })
            .collect()
    }

    #[test]
    fn memory_is_what_the_allocator_holds() {
        use crate::testing::memory_within_10pct;
        let edges = skewed_edges(300_000, 7);
        let one = |edges: &[(u32, u32)]| {
            let mut g = FollowerMap::new();
            for &(a, b) in edges {
                g.follow(a, b).unwrap();
            }
            g
        };
        let (graph, r1) =
            memory_within_10pct("follow one by one", || one(&edges), FollowerMap::memory);
        let (_, r2) = memory_within_10pct(
            "follow_many",
            || {
                let mut g = FollowerMap::new();
                g.follow_many(&mut edges.clone()).unwrap();
                g
            },
            FollowerMap::memory,
        );
        let mut bytes = Vec::new();
        graph.put_payload(&mut bytes);
        let (_, r3) = memory_within_10pct(
            "decoded",
            // On this thread: the counts are per thread.
            || codec::serially(|| FollowerMap::get_payload(&mut Reader::new(&bytes)).unwrap()),
            FollowerMap::memory,
        );
        // Half unfollowed, while a snapshot (a clone) shared the bitmaps, then dropped.
        let (_, r4) = memory_within_10pct(
            "half unfollowed under a snapshot",
            || {
                let mut g = one(&edges);
                let snapshot = g.clone();
                for &(a, b) in edges.iter().step_by(2) {
                    g.unfollow(a, b);
                }
                drop(snapshot);
                g
            },
            FollowerMap::memory,
        );
        // Large sets (roaring bitmaps, measured lazily): five users followed by 30,000 each
        // over a wide id range, then a third of those unfollowed.
        let (_, r6) = memory_within_10pct(
            "large sets",
            || {
                let mut g = FollowerMap::new();
                for f in 1..30_000u32 {
                    for t in 0..5u32 {
                        g.follow(f * 1297 % 40_000_000 + 10, t).unwrap();
                    }
                }
                for f in (1..30_000u32).step_by(3) {
                    for t in 0..5u32 {
                        g.unfollow(f * 1297 % 40_000_000 + 10, t);
                    }
                }
                g
            },
            FollowerMap::memory,
        );
        eprintln!("large sets {r6:.3}");
        // Small graphs: a few edges, where fixed costs dominate.
        let (_, r5) = memory_within_10pct("100 edges", || one(&edges[..100]), FollowerMap::memory);
        eprintln!("memory()/allocated: one by one {r1:.3}, follow_many {r2:.3}, decoded {r3:.3}, unfollowed {r4:.3}, 100 edges {r5:.3}");
    }

    /// A user's sets cross between vector and bitmap both ways (past `SMALL_IDS` and back
    /// under half of it) and answer as a plain set does throughout, through snapshots too.
    #[test]
    fn sets_cross_between_vector_and_bitmap() {
        use std::collections::BTreeSet;
        let mut graph = FollowerMap::new();
        let mut model: BTreeSet<u32> = BTreeSet::new();
        let mut state = 11u64;
        let mut next = move |n: u32| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as u32) % n
        };
        // Up past the threshold, down under half of it, up again, then to nothing.
        for (phase, target) in [(0, 6000usize), (1, 1000), (2, 5000), (3, 0)] {
            while model.len() != target {
                let f = 1 + next(3_000_000);
                if model.len() < target {
                    assert_eq!(graph.follow(f, 0).unwrap(), model.insert(f));
                } else if let Some(&g) = model.iter().nth(next(model.len() as u32) as usize) {
                    assert!(graph.unfollow(g, 0));
                    model.remove(&g);
                }
            }
            let kind = |g: &FollowerMap| match g.followers_of(0) {
                Some(Ids::Small(_)) => "vector",
                Some(Ids::Big(_)) => "bitmap",
                None => "none",
            };
            let expected = match phase {
                0 | 2 => "bitmap",
                1 => "vector",
                _ => "none",
            };
            assert_eq!(kind(&graph), expected, "phase {phase}");
            let mut bytes = Vec::new();
            graph.put_payload(&mut bytes);
            let back = FollowerMap::get_payload(&mut Reader::new(&bytes)).unwrap();
            for g in [&graph, &back] {
                assert_eq!(g.follower_count(0), model.len() as u64);
                let after = model.iter().nth(model.len() / 3).copied();
                let want: Vec<u32> = model
                    .iter()
                    .copied()
                    .filter(|&x| after.is_none_or(|a| x > a))
                    .take(100)
                    .collect();
                assert_eq!(g.followers(0, after, 100).ids, want);
                for _ in 0..200 {
                    let x = 1 + next(3_000_000);
                    assert_eq!(g.follows(x, 0), model.contains(&x));
                }
            }
            let mut again = Vec::new();
            back.put_payload(&mut again);
            assert_eq!(again, bytes);
        }
    }

    #[test]
    fn large_intersections_page_like_small_ones() {
        let mut graph = FollowerMap::new();
        for u in 1..20_000u32 {
            graph.follow(0, u).unwrap(); // 0 follows everyone
            if u % 3 == 0 {
                graph.follow(u, 0).unwrap(); // every third follows back
            }
        }
        let page = graph.mutuals(0, Some(299), 4);
        assert_eq!(page.ids, vec![300, 303, 306, 309]);
        assert_eq!(page.total, 6666);
    }

    #[test]
    fn pages_past_the_last_id_are_empty() {
        let mut graph = FollowerMap::new();
        graph.follow(1, u32::MAX).unwrap();
        assert_eq!(
            graph.followers(u32::MAX, Some(u32::MAX), 10).ids,
            Vec::<u32>::new()
        );
        assert_eq!(
            graph.following(1, Some(u32::MAX - 1), 10).ids,
            vec![u32::MAX]
        );
    }
}
