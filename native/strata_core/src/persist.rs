//! What each structure writes to a snapshot and to its journal.
//!
//! A structure that can be persisted implements [`Persist`]: its snapshot payload (inside the
//! [`codec`](crate::codec) envelope) and the replay of one journal record. Journal records
//! are the structure's ops ([`crate::op`]): a mutation is recorded *before* it is applied, by
//! the same code path for every caller, and replaying the records in order onto the snapshot
//! they follow rebuilds the state (an op that failed when it was made fails again the same
//! way).

use crate::codec::{self, get_term, invalid, put_term, DecodeError, Kind, Put, Reader};
use crate::follower_map::FollowerMap;
use crate::interner::Interner;
use crate::member_list::{MemberList, Members};
use crate::op::{
    get_layout, get_member, put_layout, EdgeOp, FeedOp, GraphOp, InternOp, ListOp, SetOp,
    TimelineOp,
};
use crate::sorted_set::{SortedSet, MAX_BUCKET_SIZE, MIN_BUCKET_SIZE};
use crate::timeline::Timeline;

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
        SetOp::decode(bytes)?.apply(self);
        Ok(())
    }
}

/// The head of an interner's payload: its count of keys, which follow
/// ([`Interner::put_keys`]).
pub fn put_interner_header(len: u32, out: &mut Vec<u8>) {
    out.put_varint(u64::from(len));
}

impl Interner {
    /// The keys of `ids`, in order, as a snapshot payload holds them.
    pub fn put_keys(&self, ids: std::ops::Range<u32>, out: &mut Vec<u8>) {
        for id in ids {
            out.put_bytes(self.key(id).unwrap_or_default());
        }
    }
}

impl Persist for Interner {
    const KIND: Kind = Kind::Interner;

    /// The count, then every key in id order.
    fn put_payload(&self, out: &mut Vec<u8>) {
        let len = self.len() as u32;
        put_interner_header(len, out);
        self.put_keys(0..len, out);
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
        match InternOp::decode(bytes)?.apply(self) {
            Ok(_) => Ok(()),
            Err(_) => invalid("interner full"),
        }
    }
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
        // A follow that failed live (a self-follow) is refused by decode already.
        let _ = GraphOp::decode(bytes)?.apply(self);
        Ok(())
    }
}

/// A timeline with the graph it owns: what a timeline snapshot and journal hold.
#[derive(Debug, Default, Clone)]
pub struct TimelineState {
    pub graph: FollowerMap,
    pub timeline: Timeline,
}

impl TimelineState {
    /// Follows and backfills; whether the edge is new.
    pub fn follow(&mut self, a: u32, b: u32) -> bool {
        self.apply(TimelineOp::Edge(EdgeOp::Follow(a, b)))
    }

    /// Unfollows and clears the follower's feed of the followee's items; whether there was
    /// an edge.
    pub fn unfollow(&mut self, a: u32, b: u32) -> bool {
        self.apply(TimelineOp::Edge(EdgeOp::Unfollow(a, b)))
    }

    /// Completes the items whose fan-out was cut short (a crash between its slices): each
    /// is fanned out to all its author's followers and made visible, by ops that `record`
    /// sees before they are applied (a durable timeline journals them).
    pub fn complete_pending<E>(
        &mut self,
        mut record: impl FnMut(&FeedOp) -> Result<(), E>,
    ) -> Result<(), E> {
        for id in self.timeline.pending() {
            for op in [FeedOp::FanOut(id, 0, u32::MAX), FeedOp::Finish(id)] {
                record(&op)?;
                self.apply(TimelineOp::Feed(op));
            }
        }
        Ok(())
    }

    /// Applies one op to the timeline and its graph; whether it changed anything.
    pub fn apply(&mut self, op: TimelineOp) -> bool {
        match op {
            TimelineOp::Feed(op) => op.apply(&self.graph, &mut self.timeline).is_ok(),
            TimelineOp::Edge(op) => op
                .apply(&mut self.graph, &mut self.timeline)
                .unwrap_or(false),
        }
    }
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
        // An op that failed live fails again here, the same way, and changes nothing.
        self.apply(TimelineOp::decode(bytes)?);
        Ok(())
    }
}

/// Version of a member list's payload (the first byte; the Elixir-encoded payloads of
/// earlier builds began with 131).
const MEMBER_LIST_FORMAT: u8 = 2;

impl Members {
    /// A member list's snapshot payload: format, bucket size, groups, members in order.
    pub fn put_payload(&self, out: &mut Vec<u8>) {
        out.put_u8(MEMBER_LIST_FORMAT);
        out.put_varint(self.bucket_size() as u64);
        put_layout(out, self.layout());
        out.put_varint(self.len() as u64);
        for member in self.iter() {
            put_term(out, member.term());
        }
    }
}

impl Persist for MemberList {
    const KIND: Kind = Kind::MemberList;

    fn put_payload(&self, out: &mut Vec<u8>) {
        self.members().put_payload(out);
    }

    /// Every part checked as a live change checks it; members may come in any order.
    fn get_payload(r: &mut Reader) -> Result<Self, DecodeError> {
        match r.u8()? {
            MEMBER_LIST_FORMAT => {}
            131 => {
                return invalid("a member list in the format of pre-release builds (Elixir terms)")
            }
            other => return invalid(format!("unknown member list format {other}")),
        }
        let bucket_size = r.varint()? as usize;
        if !(MIN_BUCKET_SIZE..=MAX_BUCKET_SIZE).contains(&bucket_size) {
            return invalid(format!("bucket size {bucket_size} out of range"));
        }
        let layout = get_layout(r)?;
        let n = r.count(2)?;
        let mut members = Vec::with_capacity(n);
        for _ in 0..n {
            members.push(get_member(r)?);
        }
        MemberList::build(layout, bucket_size, members)
            .or_else(|id| invalid(format!("member id {id:?} repeats")))
    }

    fn replay(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        ListOp::decode(bytes)?.apply(self);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::Encode;
    use crate::term::Term;
    use crate::timeline::{PostKind, Relation, Reply};
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

    /// A timeline of 40 users where user 0 has every other user as a follower.
    fn star(capacity: usize) -> TimelineState {
        let mut state = TimelineState {
            graph: FollowerMap::new(),
            timeline: Timeline::new(crate::timeline::Options {
                feed_capacity: capacity,
                fanout_limit: 1000,
                backfill: 2,
            }),
        };
        for u in 1..40 {
            state.follow(u, 0);
        }
        state
    }

    /// Applies `op` to `state` and appends its record to `log`, as the NIF layer does.
    fn run(state: &mut TimelineState, log: &mut Vec<Vec<u8>>, op: TimelineOp) {
        let mut record = Vec::new();
        op.encode(&mut record);
        log.push(record);
        state.apply(op);
    }

    /// A reply to `parent` (by `author`), in a thread rooted at `parent`.
    fn reply(parent: u64, author: u32) -> PostKind {
        PostKind {
            reply: Some(Reply {
                parent,
                parent_author: author,
                root: parent,
                root_author: author,
            }),
            quote_of: None,
        }
    }

    fn page(state: &TimelineState, user: u32) -> Vec<crate::timeline::Item> {
        state.timeline.read(&state.graph, user, None, 100).0
    }

    proptest! {
        /// A post fanned out in slices, with other changes between the slices (follows,
        /// unfollows, posts, deletes, handoffs): invisible to every reader until finished,
        /// and replaying the journal in order rebuilds exactly the live state.
        #[test]
        fn sliced_fan_outs_replay_exactly_and_show_only_when_finished(
            slice in 1usize..9,
            between in prop::collection::vec((0u8..8, 1u32..40, 0u32..40), 0..40),
        ) {
            let mut live = star(6);
            let base = live.dump();
            let mut log = Vec::new();
            for i in 0..5u64 {
                run(&mut live, &mut log, TimelineOp::Feed(FeedOp::Post(100 + i, 0)));
            }
            run(&mut live, &mut log, TimelineOp::Feed(FeedOp::BeginPost(500, 0)));
            let (mut from, mut steps) = (0, between.iter());
            loop {
                let to = live.timeline.fan_out_slice_end(&live.graph, 500, from, slice);
                run(&mut live, &mut log, TimelineOp::Feed(FeedOp::FanOut(500, from, to)));
                if let Some(&(kind, a, b)) = steps.next() {
                    let op = match kind {
                        // (a self-follow is refused before it is recorded)
                        0 if a != b => TimelineOp::Edge(EdgeOp::Follow(a, b)),
                        0 => TimelineOp::Edge(EdgeOp::Follow(a, 0)),
                        1 => TimelineOp::Edge(EdgeOp::Unfollow(a, 0)),
                        2 => TimelineOp::Feed(FeedOp::Post(600 + u64::from(a), b)),
                        3 => TimelineOp::Feed(FeedOp::DeletePost(100 + u64::from(a % 6))),
                        4 => TimelineOp::Feed(FeedOp::DropFeeds(vec![a].into())),
                        5 => TimelineOp::Feed(FeedOp::PostKind(700 + u64::from(a), b, reply(100, 0))),
                        6 => TimelineOp::Feed(FeedOp::Relate(Relation::Block, a, b, a % 3 != 0)),
                        _ => TimelineOp::Feed(FeedOp::Relate(Relation::Mute, a, b, a % 3 != 0)),
                    };
                    run(&mut live, &mut log, op);
                }
                for user in 0..40 {
                    let shown = page(&live, user);
                    prop_assert!(!shown.contains(&crate::timeline::Item::Post(500)));
                }
                if to == u32::MAX {
                    break;
                }
                from = to + 1;
            }
            run(&mut live, &mut log, TimelineOp::Feed(FeedOp::Finish(500)));
            prop_assert!(page(&live, 0).contains(&crate::timeline::Item::Post(500)));
            let mut replayed = TimelineState::load(&base).unwrap();
            for record in &log {
                replayed.replay(record).unwrap();
            }
            prop_assert_eq!(replayed.dump(), live.dump());
        }

        /// A follow's backfill and an unfollow's cleanup planned before the lock, with other
        /// changes between the plan and the lock (which may make it stale), end as the same
        /// change made without a plan.
        #[test]
        fn planned_feed_work_equals_unplanned(
            posts in prop::collection::vec((0u32..8, 0u8..3), 0..60),
            between in 0u8..4,
            unfollow in any::<bool>(),
        ) {
            let mut state = TimelineState {
                graph: FollowerMap::new(),
                timeline: Timeline::new(crate::timeline::Options {
                    feed_capacity: 7, fanout_limit: 1000, backfill: 4,
                }),
            };
            for u in 2..8 {
                state.follow(1, u);
            }
            for (i, &(author, kind)) in posts.iter().enumerate() {
                let id = 10 + i as u64;
                let op = match kind {
                    0 | 1 => FeedOp::Post(id, author),
                    _ => FeedOp::DeletePost(id - 1),
                };
                state.apply(TimelineOp::Feed(op));
            }
            if unfollow {
                state.follow(1, 0); // the followee's items must be in the feed to clean up
                state.apply(TimelineOp::Feed(FeedOp::Post(900, 0)));
            }
            let plan = if unfollow {
                state.timeline.feed_list(1).map(|feed| {
                    let mut kept = std::collections::VecDeque::new();
                    let ids: Vec<u64> = feed.iter().copied().collect();
                    state.timeline.keep_not_from(&ids, 0, &mut kept);
                    crate::timeline::FeedPlan::cleanup(feed, kept)
                })
            } else {
                state.timeline.backfill_of(1, 0).map(crate::timeline::FeedPlan::backfill)
            };
            // Changes between the plan and the lock.
            match between {
                0 => {}
                1 => { state.apply(TimelineOp::Feed(FeedOp::Post(1000, 3))); }
                2 => { state.apply(TimelineOp::Feed(FeedOp::Post(1001, 0))); }
                _ => { state.apply(TimelineOp::Feed(FeedOp::DropFeeds(vec![1].into()))); }
            }
            let mut unplanned = TimelineState::load(&state.dump()).unwrap();
            let op = if unfollow { EdgeOp::Unfollow(1, 0) } else { EdgeOp::Follow(1, 0) };
            let _ = op.apply_planned(&mut state.graph, &mut state.timeline, plan);
            unplanned.apply(TimelineOp::Edge(op));
            prop_assert_eq!(state.dump(), unplanned.dump());
        }

        /// With nothing between its slices, a sliced fan-out ends as the whole one does; cut
        /// short (a crash between slices), `complete_pending` finishes it the same way.
        #[test]
        fn sliced_and_completed_fan_outs_equal_the_whole_one(slice in 1usize..9, cut in 0usize..12) {
            let mut whole = star(6);
            whole.apply(TimelineOp::Feed(FeedOp::Post(500, 0)));
            let mut sliced = star(6);
            sliced.apply(TimelineOp::Feed(FeedOp::BeginPost(500, 0)));
            let mut from = 0;
            for _ in 0..cut {
                let to = sliced.timeline.fan_out_slice_end(&sliced.graph, 500, from, slice);
                sliced.apply(TimelineOp::Feed(FeedOp::FanOut(500, from, to)));
                // Exactly the followers up to the slice's end have it in their feeds.
                for user in 1..40 {
                    let has = sliced.timeline.feed(user).is_some_and(|f| f.contains(&500));
                    prop_assert_eq!(has, user <= to, "user {} after a slice to {}", user, to);
                }
                if to == u32::MAX {
                    break;
                }
                from = to + 1;
            }
            prop_assert_eq!(sliced.timeline.pending(), vec![500]);
            let mut recorded = Vec::new();
            sliced.complete_pending(|op| { recorded.push(format!("{op:?}")); Ok::<(), ()>(()) }).unwrap();
            prop_assert_eq!(recorded.len(), 2);
            prop_assert!(sliced.timeline.pending().is_empty());
            prop_assert_eq!(sliced.dump(), whole.dump());
        }

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
                    0 => { SetOp::Add(x.clone()).encode(&mut rec); live.insert(x); }
                    1 => { SetOp::Remove(x.clone()).encode(&mut rec); live.remove(&x); }
                    _ => { SetOp::Update(x.clone(), y.clone()).encode(&mut rec); live.replace(&x, y); }
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
                // Replies and quotes among them (their kinds are written with the records).
                let kind = match id % 4 {
                    1 => reply(id / 2, author / 2),
                    2 => PostKind { reply: None, quote_of: Some(id / 3) },
                    3 => PostKind { quote_of: Some(1), ..reply(7, 3) },
                    _ => PostKind::default(),
                };
                state.timeline.insert_post_kind(&state.graph, id, author, kind).unwrap();
                if delete {
                    state.timeline.delete_post(id).unwrap();
                }
            }
            for &(a, b) in &edges {
                if (a + b) % 5 == 0 {
                    state.timeline.relate(Relation::Mute, a, b, true);
                }
                if (a * b) % 7 == 1 {
                    state.timeline.relate(Relation::Block, b, a, true);
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
                state.follow(a, a % 7);
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
