//! What each structure writes to a snapshot and to its journal.
//!
//! A structure that can be persisted implements [`Persist`]: its snapshot payload (inside the
//! [`codec`](crate::codec) envelope) and the replay of one journal record. Journal records
//! are the structure's [`Op`]s: a mutation is recorded *before* it is applied, by the same
//! code path for every caller, and replaying the records in order onto the snapshot they
//! follow rebuilds the state (an op that failed when it was made fails again the same way).

use crate::codec::{self, get_term, invalid, put_term, DecodeError, Kind, Put, Reader};
use crate::follower_map::FollowerMap;
use crate::interner::Interner;
use crate::sorted_set::{SortedSet, MAX_BUCKET_SIZE, MIN_BUCKET_SIZE};
use crate::term::Term;
use crate::timeline::{Local, Timeline};

/// A structure with a snapshot format and a journal.
pub trait Persist: Sized {
    const KIND: Kind;

    /// Appends the snapshot payload.
    fn put_payload(&self, out: &mut Vec<u8>);

    /// Reads and validates a snapshot payload.
    fn get_payload(r: &mut Reader) -> Result<Self, DecodeError>;

    /// Applies one journal record.
    fn replay(&mut self, record: &[u8]) -> Result<(), DecodeError>;

    /// The whole snapshot: header and payload.
    fn dump(&self) -> Vec<u8> {
        codec::seal(Self::KIND, |out| self.put_payload(out))
    }

    /// Checks and decodes a whole snapshot.
    fn load(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(codec::open(bytes, Self::KIND)?);
        let value = Self::get_payload(&mut r)?;
        r.finish()?;
        Ok(value)
    }
}

/// Decodes a record fully or refuses it.
fn record<'a, T>(
    bytes: &'a [u8],
    read: impl FnOnce(&mut Reader<'a>, u8) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let mut r = Reader::new(bytes);
    let tag = r.u8()?;
    let value = read(&mut r, tag)?;
    r.finish()?;
    Ok(value)
}

/// A change to a [`SortedSet`].
pub enum SetOp<'a> {
    Add(&'a Term),
    Remove(&'a Term),
    Update(&'a Term, &'a Term),
    AddAll(&'a [Term]),
}

impl SetOp<'_> {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            SetOp::Add(t) => {
                out.put_u8(1);
                put_term(out, t);
            }
            SetOp::Remove(t) => {
                out.put_u8(2);
                put_term(out, t);
            }
            SetOp::Update(old, new) => {
                out.put_u8(3);
                put_term(out, old);
                put_term(out, new);
            }
            SetOp::AddAll(items) => {
                out.put_u8(4);
                out.put_varint(items.len() as u64);
                for t in items.iter() {
                    put_term(out, t);
                }
            }
        }
    }
}

impl Persist for SortedSet {
    const KIND: Kind = Kind::SortedSet;

    /// The bucket size, the count, then the items ascending.
    fn put_payload(&self, out: &mut Vec<u8>) {
        out.put_varint(self.bucket_size() as u64);
        out.put_varint(self.len() as u64);
        for item in self.iter() {
            put_term(out, item);
        }
    }

    fn get_payload(r: &mut Reader) -> Result<Self, DecodeError> {
        let bucket_size = r.varint()? as usize;
        if !(MIN_BUCKET_SIZE..=MAX_BUCKET_SIZE).contains(&bucket_size) {
            return invalid(format!("bucket size {bucket_size} out of range"));
        }
        let n = r.count(2)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(get_term(r)?);
        }
        SortedSet::from_sorted(items, bucket_size)
            .or_else(|_| invalid("items are not strictly ascending"))
    }

    fn replay(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        record(bytes, |r, tag| {
            match tag {
                1 => {
                    self.insert(get_term(r)?);
                }
                2 => {
                    self.remove(&get_term(r)?);
                }
                3 => {
                    let old = get_term(r)?;
                    self.replace(&old, get_term(r)?);
                }
                4 => {
                    for _ in 0..r.count(2)? {
                        self.insert(get_term(r)?);
                    }
                }
                _ => return invalid(format!("unknown set op {tag}")),
            }
            Ok(())
        })
    }
}

/// A change to an [`Interner`]: a key given an id.
pub struct InternOp<'a>(pub &'a [u8]);

impl InternOp<'_> {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(1);
        out.put_bytes(self.0);
    }
}

impl Persist for Interner {
    const KIND: Kind = Kind::Interner;

    /// The count, then every key in id order.
    fn put_payload(&self, out: &mut Vec<u8>) {
        out.put_varint(self.len() as u64);
        for id in 0..self.len() as u32 {
            out.put_bytes(self.key(id).unwrap_or_default());
        }
    }

    fn get_payload(r: &mut Reader) -> Result<Self, DecodeError> {
        let n = r.count(1)?;
        let mut interner = Interner::new();
        for id in 0..n {
            match interner.intern(r.bytes()?) {
                Ok((_, true)) => {}
                _ => return invalid(format!("key {id} repeats an earlier key")),
            }
        }
        Ok(interner)
    }

    fn replay(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        record(bytes, |r, tag| match tag {
            1 => self
                .intern(r.bytes()?)
                .map(|_| ())
                .or_else(|_| invalid("interner full")),
            _ => invalid(format!("unknown interner op {tag}")),
        })
    }
}

/// A change to a [`FollowerMap`], or to a timeline's graph.
pub enum GraphOp<'a> {
    Follow(u32, u32),
    Unfollow(u32, u32),
    FollowMany(&'a [(u32, u32)]),
}

impl GraphOp<'_> {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            GraphOp::Follow(a, b) | GraphOp::Unfollow(a, b) => {
                out.put_u8(if matches!(self, GraphOp::Follow(..)) {
                    1
                } else {
                    2
                });
                out.put_u32(*a);
                out.put_u32(*b);
            }
            GraphOp::FollowMany(edges) => {
                out.put_u8(3);
                out.put_varint(edges.len() as u64);
                for (a, b) in edges.iter() {
                    out.put_u32(*a);
                    out.put_u32(*b);
                }
            }
        }
    }
}

fn edge(r: &mut Reader) -> Result<(u32, u32), DecodeError> {
    let edge = (r.u32()?, r.u32()?);
    if edge.0 == edge.1 {
        return invalid(format!("self-follow of {}", edge.0));
    }
    Ok(edge)
}

impl Persist for FollowerMap {
    const KIND: Kind = Kind::FollowerMap;

    fn put_payload(&self, out: &mut Vec<u8>) {
        FollowerMap::put_payload(self, out);
    }

    fn get_payload(r: &mut Reader) -> Result<Self, DecodeError> {
        FollowerMap::get_payload(r)
    }

    fn replay(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        record(bytes, |r, tag| {
            match tag {
                1 => {
                    let (a, b) = edge(r)?;
                    let _ = self.follow(a, b);
                }
                2 => {
                    let (a, b) = edge(r)?;
                    self.unfollow(a, b);
                }
                3 => {
                    let n = r.count(8)?;
                    let mut edges = Vec::with_capacity(n);
                    for _ in 0..n {
                        edges.push(edge(r)?);
                    }
                    let _ = self.follow_many(&mut edges);
                }
                _ => return invalid(format!("unknown graph op {tag}")),
            }
            Ok(())
        })
    }
}

/// A timeline with the graph it owns: what a timeline snapshot and journal hold.
#[derive(Debug, Default, Clone)]
pub struct TimelineState {
    pub graph: FollowerMap,
    pub timeline: Timeline,
}

/// A change to a timeline (follows change its graph too).
pub enum TimelineOp<'a> {
    Post(u64, u32),
    /// `(repost, reposter, post)`.
    Repost(u64, u32, u64),
    DeletePost(u64),
    DeleteRepost(u64),
    Follow(u32, u32),
    Unfollow(u32, u32),
    /// One node's part of a post's fan-out: `(post, author, local)`.
    DeliverPost(u64, u32, Local<'a>),
    /// One node's part of a repost's fan-out: `(repost, reposter, post, local)`.
    DeliverRepost(u64, u32, u64, Local<'a>),
    /// A follow whose follower lives on another node: the graph changes, no feed does.
    FollowEdge(u32, u32),
    /// Feeds handed off to another node.
    DropFeeds(&'a [u32]),
    /// A feed handed over from another node.
    MergeFeed(u32, &'a [u64]),
}

fn put_local(out: &mut Vec<u8>, local: &Local) {
    out.put_u8(u8::from(local.author));
    out.put_varint(local.followers.len() as u64);
    for &f in local.followers {
        out.put_u32(f);
    }
}

fn get_users(r: &mut Reader) -> Result<Vec<u32>, DecodeError> {
    let n = r.count(4)?;
    (0..n).map(|_| r.u32()).collect()
}

fn get_author_here(r: &mut Reader) -> Result<bool, DecodeError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        b => invalid(format!("bad flag {b}")),
    }
}

impl TimelineOp<'_> {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            TimelineOp::Post(id, author) => {
                out.put_u8(1);
                out.put_u64(id);
                out.put_u32(author);
            }
            TimelineOp::Repost(id, reposter, post) => {
                out.put_u8(2);
                out.put_u64(id);
                out.put_u32(reposter);
                out.put_u64(post);
            }
            TimelineOp::DeletePost(id) | TimelineOp::DeleteRepost(id) => {
                out.put_u8(if matches!(self, TimelineOp::DeletePost(_)) {
                    3
                } else {
                    4
                });
                out.put_u64(id);
            }
            TimelineOp::Follow(a, b)
            | TimelineOp::Unfollow(a, b)
            | TimelineOp::FollowEdge(a, b) => {
                out.put_u8(match self {
                    TimelineOp::Follow(..) => 5,
                    TimelineOp::Unfollow(..) => 6,
                    _ => 9,
                });
                out.put_u32(a);
                out.put_u32(b);
            }
            TimelineOp::DeliverPost(id, author, ref local) => {
                out.put_u8(7);
                out.put_u64(id);
                out.put_u32(author);
                put_local(out, local);
            }
            TimelineOp::DeliverRepost(id, reposter, post, ref local) => {
                out.put_u8(8);
                out.put_u64(id);
                out.put_u32(reposter);
                out.put_u64(post);
                put_local(out, local);
            }
            TimelineOp::DropFeeds(users) => {
                out.put_u8(10);
                out.put_varint(users.len() as u64);
                for &u in users {
                    out.put_u32(u);
                }
            }
            TimelineOp::MergeFeed(user, ids) => {
                out.put_u8(11);
                out.put_u32(user);
                out.put_varint(ids.len() as u64);
                for &id in ids {
                    out.put_u64(id);
                }
            }
        }
    }
}

impl TimelineState {
    /// Follows and backfills; whether the edge is new.
    pub fn follow(&mut self, a: u32, b: u32) -> Result<bool, crate::follower_map::GraphError> {
        let added = self.graph.follow(a, b)?;
        if added {
            self.timeline.followed(&self.graph, a, b);
        }
        Ok(added)
    }

    /// A follow whose follower's feed lives on another node: the graph and the large-author
    /// classification change, no feed does. Whether the edge is new.
    pub fn follow_edge(&mut self, a: u32, b: u32) -> bool {
        let added = self.graph.follow(a, b).unwrap_or(false);
        if added {
            self.timeline.followed_elsewhere(&self.graph, b);
        }
        added
    }

    /// Unfollows and clears the feed; whether there was an edge.
    pub fn unfollow(&mut self, a: u32, b: u32) -> bool {
        let removed = self.graph.unfollow(a, b);
        if removed {
            self.timeline.unfollowed(a, b);
        }
        removed
    }
}

/// The snapshot of a timeline and its graph, from references (the NIF layer holds them
/// behind separate locks).
pub fn dump_timeline(graph: &FollowerMap, timeline: &Timeline) -> Vec<u8> {
    codec::seal(Kind::Timeline, |out| {
        graph.put_payload(out);
        timeline.put_payload(out);
    })
}

impl Persist for TimelineState {
    const KIND: Kind = Kind::Timeline;

    /// The graph, then the timeline.
    fn put_payload(&self, out: &mut Vec<u8>) {
        self.graph.put_payload(out);
        self.timeline.put_payload(out);
    }

    fn get_payload(r: &mut Reader) -> Result<Self, DecodeError> {
        let graph = FollowerMap::get_payload(r)?;
        let timeline = Timeline::get_payload(r)?;
        Ok(TimelineState { graph, timeline })
    }

    fn replay(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        record(bytes, |r, tag| {
            let (graph, tl) = (&self.graph, &mut self.timeline);
            match tag {
                1 => {
                    let _ = tl.insert_post(graph, r.u64()?, r.u32()?);
                }
                2 => {
                    let (id, reposter, post) = (r.u64()?, r.u32()?, r.u64()?);
                    let _ = tl.insert_repost(graph, id, reposter, post);
                }
                3 => {
                    let _ = tl.delete_post(r.u64()?);
                }
                4 => {
                    let _ = tl.delete_repost(r.u64()?);
                }
                5 => {
                    let (a, b) = edge(r)?;
                    let _ = self.follow(a, b);
                }
                6 => {
                    let (a, b) = edge(r)?;
                    self.unfollow(a, b);
                }
                7 => {
                    let (id, author) = (r.u64()?, r.u32()?);
                    let author_here = get_author_here(r)?;
                    let followers = get_users(r)?;
                    let local = Local {
                        author: author_here,
                        followers: &followers,
                    };
                    let _ = self.timeline.deliver_post(&self.graph, id, author, local);
                }
                8 => {
                    let (id, reposter, post) = (r.u64()?, r.u32()?, r.u64()?);
                    let author_here = get_author_here(r)?;
                    let followers = get_users(r)?;
                    let local = Local {
                        author: author_here,
                        followers: &followers,
                    };
                    let _ = self
                        .timeline
                        .deliver_repost(&self.graph, id, reposter, post, local);
                }
                9 => {
                    let (a, b) = edge(r)?;
                    self.follow_edge(a, b);
                }
                10 => {
                    for user in get_users(r)? {
                        self.timeline.take_feed(user);
                    }
                }
                11 => {
                    let user = r.u32()?;
                    let n = r.count(8)?;
                    let ids = (0..n).map(|_| r.u64()).collect::<Result<Vec<u64>, _>>()?;
                    self.timeline.merge_feed(user, &ids);
                }
                _ => return invalid(format!("unknown timeline op {tag}")),
            }
            Ok(())
        })
    }
}

/// An opaque snapshot and its records, for structures kept in Elixir (`Strata.MemberList`):
/// the checksums and the journal are Strata's, the contents the caller's.
#[derive(Debug, Default)]
pub struct Blob {
    pub snapshot: Vec<u8>,
    pub records: Vec<Vec<u8>>,
}

impl Persist for Blob {
    const KIND: Kind = Kind::Blob;

    fn put_payload(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.snapshot);
    }

    fn get_payload(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Blob {
            snapshot: r.take(r.remaining())?.to_vec(),
            records: Vec::new(),
        })
    }

    fn replay(&mut self, record: &[u8]) -> Result<(), DecodeError> {
        self.records.push(record.to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set_of(items: &[i64], bucket: usize) -> SortedSet {
        let mut set = SortedSet::new(bucket, 0);
        for &i in items {
            set.insert(Term::Int(i));
        }
        set
    }

    fn items(set: &SortedSet) -> Vec<String> {
        set.iter().map(|t| format!("{t:?}")).collect()
    }

    #[test]
    fn checksum_valid_but_unsorted_sets_are_refused() {
        let bytes = codec::seal(Kind::SortedSet, |out| {
            out.put_varint(8);
            out.put_varint(2);
            put_term(out, &Term::Int(2));
            put_term(out, &Term::Int(1));
        });
        assert!(matches!(
            SortedSet::load(&bytes),
            Err(DecodeError::Invalid(_))
        ));
    }

    #[test]
    fn checksum_valid_but_one_sided_graphs_are_refused() {
        let mut graph = FollowerMap::new();
        graph.follow(1, 2).unwrap();
        graph.follow(3, 2).unwrap();
        let mut other = FollowerMap::new();
        other.follow(1, 2).unwrap();
        other.follow(2, 3).unwrap();
        // Followers of one graph, following of the other: same counts, different edges.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        graph.put_payload(&mut a);
        other.put_payload(&mut b);
        let split = |p: &[u8]| -> usize {
            let mut r = Reader::new(&p[16..]);
            let n = r.count(13).unwrap();
            for _ in 0..n {
                r.u32().unwrap();
                get_bitmap_len(&mut r);
            }
            p.len() - r.remaining()
        };
        let mixed = [&a[..split(&a)], &b[split(&b)..]].concat();
        let bytes = codec::seal(Kind::FollowerMap, |out| out.extend_from_slice(&mixed));
        let err = FollowerMap::load(&bytes).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Invalid("the two directions hold different edges".into())
        );
    }

    fn get_bitmap_len(r: &mut Reader) {
        codec::get_bitmap(r).unwrap();
    }

    proptest! {
        #[test]
        fn sets_round_trip_and_replay(
            base in prop::collection::vec(-50i64..50, 0..200),
            ops in prop::collection::vec((0u8..3, -60i64..60, -60i64..60), 0..100),
            bucket in 4usize..9,
        ) {
            let mut live = set_of(&base, bucket);
            let mut replayed = SortedSet::load(&live.dump()).unwrap();
            prop_assert_eq!(items(&replayed), items(&live));
            for (kind, x, y) in ops {
                let (x, y) = (Term::Int(x), Term::Int(y));
                let mut rec = Vec::new();
                match kind {
                    0 => { SetOp::Add(&x).encode(&mut rec); live.insert(x); }
                    1 => { SetOp::Remove(&x).encode(&mut rec); live.remove(&x); }
                    _ => { SetOp::Update(&x, &y).encode(&mut rec); live.replace(&x, y); }
                }
                replayed.replay(&rec).unwrap();
            }
            prop_assert_eq!(items(&replayed), items(&live));
            replayed.check_invariants().unwrap();
        }

        #[test]
        fn graphs_and_timelines_round_trip(
            edges in prop::collection::vec((0u32..40, 0u32..40), 0..300),
            posts in prop::collection::vec((0u32..40, any::<bool>()), 0..100),
        ) {
            let mut state = TimelineState {
                graph: FollowerMap::new(),
                timeline: Timeline::new(crate::timeline::Options {
                    feed_capacity: 7,
                    fanout_limit: 5,
                    backfill: 2,
                }),
            };
            for &(a, b) in &edges {
                let _ = state.follow(a, b);
            }
            for (id, &(author, delete)) in posts.iter().enumerate() {
                let id = id as u64 * 3;
                state.timeline.insert_post(&state.graph, id, author).unwrap();
                if delete {
                    state.timeline.delete_post(id).unwrap();
                }
            }
            // Reposts with ids below their posts' (ids are any u64).
            for i in 0..posts.len() as u64 {
                let _ = state.timeline.insert_repost(&state.graph, i * 3 + 1, 7, (i + 5) * 3);
            }
            let graph = FollowerMap::load(&Persist::dump(&state.graph)).unwrap();
            prop_assert_eq!(Persist::dump(&graph), Persist::dump(&state.graph));
            let back = TimelineState::load(&state.dump()).unwrap();
            prop_assert_eq!(back.dump(), state.dump());
            prop_assert_eq!(back.timeline.stats(), state.timeline.stats());
            for user in 0..40 {
                prop_assert_eq!(
                    back.timeline.read(&back.graph, user, None, 100),
                    state.timeline.read(&state.graph, user, None, 100)
                );
            }
        }

        /// A clone is a snapshot: the live structure changing afterwards (copying the
        /// buckets and shards it shared) leaves the clone as it was, and both keep their
        /// invariants and their memory counts.
        #[test]
        fn clones_are_snapshots_that_writes_do_not_touch(
            base in prop::collection::vec(-300i64..300, 0..600),
            ops in prop::collection::vec((0u8..3, -320i64..320, 0u32..60, 0u32..60), 1..200),
        ) {
            let mut set = set_of(&base, 8);
            let mut graph = FollowerMap::new();
            let mut tl = TimelineState {
                graph: FollowerMap::new(),
                timeline: Timeline::new(crate::timeline::Options {
                    feed_capacity: 9, fanout_limit: 40, backfill: 3,
                }),
            };
            for (i, &x) in base.iter().enumerate() {
                let (a, b) = ((x.unsigned_abs() % 60) as u32, (i % 60) as u32);
                let _ = graph.follow(a, b);
                let _ = tl.follow(a, b);
                let _ = tl.timeline.insert_post(&tl.graph, i as u64 * 2, a);
            }
            let (set_copy, graph_copy, tl_copy) = (set.clone(), graph.clone(), tl.clone());
            let (set_bytes, graph_bytes, tl_bytes) = (set.dump(), graph.dump(), tl.dump());
            let copy_memory = set_copy.memory();
            for (n, &(kind, x, a, b)) in ops.iter().enumerate() {
                match kind {
                    0 => {
                        set.insert(Term::Int(x));
                        let _ = graph.follow(a, b);
                        let _ = tl.follow(a, b);
                    }
                    1 => {
                        set.remove(&Term::Int(x));
                        graph.unfollow(a, b);
                        tl.unfollow(a, b);
                    }
                    _ => {
                        let _ = tl.timeline.insert_post(&tl.graph, 10_000 + n as u64, a);
                        let _ = tl.timeline.delete_post(x.unsigned_abs() * 2);
                    }
                }
                set.check_invariants().unwrap();
            }
            prop_assert_eq!(set_copy.dump(), set_bytes);
            prop_assert_eq!(set_copy.memory(), copy_memory);
            set_copy.check_invariants().unwrap();
            prop_assert_eq!(graph_copy.dump(), graph_bytes);
            prop_assert_eq!(tl_copy.dump(), tl_bytes);
            // And the live ones equal what a fresh decode of their own bytes holds.
            prop_assert_eq!(SortedSet::load(&set.dump()).unwrap().dump(), set.dump());
            prop_assert_eq!(TimelineState::load(&tl.dump()).unwrap().dump(), tl.dump());
        }

        #[test]
        fn damaged_snapshots_never_panic(
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut state = TimelineState::default();
            for a in 1..30u32 {
                state.follow(a, a % 7).ok();
                state.timeline.insert_post(&state.graph, u64::from(a), a % 5).unwrap();
            }
            let mut bytes = state.dump();
            for (at, byte) in flips {
                let i = at.index(bytes.len());
                bytes[i] ^= byte | 1;
            }
            prop_assert!(TimelineState::load(&bytes).is_err());
            // With the checksum recomputed, the structure checks alone must hold.
            let payload = bytes[codec::HEADER..].to_vec();
            let resealed = codec::seal(Kind::Timeline, |out| out.extend_from_slice(&payload));
            let _ = TimelineState::load(&resealed);
        }
    }
}
