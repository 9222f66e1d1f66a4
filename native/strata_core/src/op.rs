//! The journaled changes of every structure, each defined once: its tag, its bytes
//! (`encode` and `decode`, side by side) and its effect (`apply`). The live path (the NIF
//! layer) builds an op, records it, then applies it; replay decodes the op and applies it the
//! same way, so that a change cannot be recorded one way and replayed another. An op that
//! failed when it was made fails again the same way on replay.
//!
//! Ops borrow what the live path already holds (`Cow::Borrowed`) and own what decoding
//! makes (`Cow::Owned`). Decoding is bounded by the record: every count is checked against
//! the bytes left ([`Reader::count`]) before anything is allocated for it.
//!
//! The format is the project's own codec rather than a serde format (postcard, bincode):
//! stored terms need the canonical term codec anyway (exact term order, bounded big
//! integers and nesting), which serde would only wrap; the counts here are refused before
//! allocation, where serde's sequence decoding preallocates up to a cautious size hint per
//! count; and a hand-written tag byte keeps the journals written by earlier builds readable.

use std::borrow::Cow;

use crate::codec::{get_term, invalid, put_term, DecodeError, Put, Reader};
use crate::follower_map::{FollowerMap, GraphError};
use crate::interner::{InternError, Interner};
use crate::member_list::{Changes, Layout, Member, MemberList, Mutation};
use crate::sorted_set::SortedSet;
use crate::term::Term;
use crate::timeline::{FeedPlan, Local, PostKind, Relation, Timeline, TimelineError};

/// An op's bytes in a journal record (each op's `decode` reads them back).
pub trait Encode {
    fn encode(&self, out: &mut Vec<u8>);
}

/// Decodes a whole record: its tag, then what `read` reads; trailing bytes are refused.
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

fn unknown<T>(what: &str, tag: u8) -> Result<T, DecodeError> {
    invalid(format!("unknown {what} op {tag}"))
}

// ---------------------------------------------------------------------------------------
// SortedSet

mod set_tag {
    pub const ADD: u8 = 1;
    pub const REMOVE: u8 = 2;
    pub const UPDATE: u8 = 3;
    pub const ADD_ALL: u8 = 4;
}

/// A change to a [`SortedSet`].
#[derive(Debug, Clone, PartialEq)]
pub enum SetOp<'a> {
    Add(Term),
    Remove(Term),
    /// `(old, new)`.
    Update(Term, Term),
    AddAll(Cow<'a, [Term]>),
}

/// What a [`SetOp`] did, as the caller reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetDone {
    /// The index the item was added at or removed from (`None`: already there / absent).
    Index(Option<usize>),
    /// An update: the old item's index and the new one's.
    Moved(Option<usize>, Option<usize>),
    /// Each added item's index.
    Indices(Vec<Option<usize>>),
}

impl Encode for SetOp<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            SetOp::Add(t) => {
                out.put_u8(set_tag::ADD);
                put_term(out, t);
            }
            SetOp::Remove(t) => {
                out.put_u8(set_tag::REMOVE);
                put_term(out, t);
            }
            SetOp::Update(old, new) => {
                out.put_u8(set_tag::UPDATE);
                put_term(out, old);
                put_term(out, new);
            }
            SetOp::AddAll(items) => {
                out.put_u8(set_tag::ADD_ALL);
                out.put_varint(items.len() as u64);
                for t in items.iter() {
                    put_term(out, t);
                }
            }
        }
    }
}

impl SetOp<'_> {
    pub fn decode(bytes: &[u8]) -> Result<SetOp<'static>, DecodeError> {
        record(bytes, |r, tag| {
            Ok(match tag {
                set_tag::ADD => SetOp::Add(get_term(r)?),
                set_tag::REMOVE => SetOp::Remove(get_term(r)?),
                set_tag::UPDATE => SetOp::Update(get_term(r)?, get_term(r)?),
                set_tag::ADD_ALL => {
                    let n = r.count(2)?;
                    let items = (0..n).map(|_| get_term(r)).collect::<Result<Vec<_>, _>>()?;
                    SetOp::AddAll(Cow::Owned(items))
                }
                _ => return unknown("set", tag),
            })
        })
    }

    pub fn apply(self, set: &mut SortedSet) -> SetDone {
        match self {
            SetOp::Add(item) => SetDone::Index(set.insert(item)),
            SetOp::Remove(item) => SetDone::Index(set.remove(&item)),
            SetOp::Update(old, new) => {
                let (from, to) = set.replace(&old, new);
                SetDone::Moved(from, to)
            }
            SetOp::AddAll(items) => SetDone::Indices(
                items
                    .into_owned()
                    .into_iter()
                    .map(|i| set.insert(i))
                    .collect(),
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Interner

mod intern_tag {
    pub const INTERN: u8 = 1;
}

/// A change to an [`Interner`]: a key given the next id (if it has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternOp<'a>(pub Cow<'a, [u8]>);

impl Encode for InternOp<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(intern_tag::INTERN);
        out.put_bytes(&self.0);
    }
}

impl InternOp<'_> {
    pub fn decode(bytes: &[u8]) -> Result<InternOp<'_>, DecodeError> {
        record(bytes, |r, tag| match tag {
            intern_tag::INTERN => Ok(InternOp(Cow::Borrowed(r.bytes()?))),
            _ => unknown("interner", tag),
        })
    }

    /// `(id, new?)`.
    pub fn apply(self, interner: &mut Interner) -> Result<(u32, bool), InternError> {
        interner.intern(&self.0)
    }
}

// ---------------------------------------------------------------------------------------
// FollowerMap

mod graph_tag {
    pub const FOLLOW: u8 = 1;
    pub const UNFOLLOW: u8 = 2;
    pub const FOLLOW_MANY: u8 = 3;
}

/// A change to a [`FollowerMap`] (on its own, or shared with an in-memory timeline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphOp<'a> {
    Follow(u32, u32),
    Unfollow(u32, u32),
    FollowMany(Cow<'a, [(u32, u32)]>),
}

/// A `(follower, followee)` edge; a self-follow is no edge a write accepts.
fn get_edge(r: &mut Reader) -> Result<(u32, u32), DecodeError> {
    let edge = (r.u32()?, r.u32()?);
    if edge.0 == edge.1 {
        return invalid(format!("self-follow of {}", edge.0));
    }
    Ok(edge)
}

fn put_edge(out: &mut Vec<u8>, tag: u8, (a, b): (u32, u32)) {
    out.put_u8(tag);
    out.put_u32(a);
    out.put_u32(b);
}

impl Encode for GraphOp<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            GraphOp::Follow(a, b) => put_edge(out, graph_tag::FOLLOW, (*a, *b)),
            GraphOp::Unfollow(a, b) => put_edge(out, graph_tag::UNFOLLOW, (*a, *b)),
            GraphOp::FollowMany(edges) => {
                out.put_u8(graph_tag::FOLLOW_MANY);
                out.put_varint(edges.len() as u64);
                for &(a, b) in edges.iter() {
                    out.put_u32(a);
                    out.put_u32(b);
                }
            }
        }
    }
}

impl GraphOp<'_> {
    pub fn decode(bytes: &[u8]) -> Result<GraphOp<'static>, DecodeError> {
        record(bytes, |r, tag| {
            Ok(match tag {
                graph_tag::FOLLOW => {
                    let (a, b) = get_edge(r)?;
                    GraphOp::Follow(a, b)
                }
                graph_tag::UNFOLLOW => {
                    let (a, b) = get_edge(r)?;
                    GraphOp::Unfollow(a, b)
                }
                graph_tag::FOLLOW_MANY => {
                    let n = r.count(8)?;
                    let edges = (0..n).map(|_| get_edge(r)).collect::<Result<Vec<_>, _>>()?;
                    GraphOp::FollowMany(Cow::Owned(edges))
                }
                _ => return unknown("graph", tag),
            })
        })
    }

    /// How many edges were added (follows) or removed (an unfollow).
    pub fn apply(self, graph: &mut FollowerMap) -> Result<u64, GraphError> {
        match self {
            GraphOp::Follow(a, b) => graph.follow(a, b).map(u64::from),
            GraphOp::Unfollow(a, b) => Ok(u64::from(graph.unfollow(a, b))),
            GraphOp::FollowMany(edges) => graph.follow_many(&mut edges.into_owned()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Timeline

mod timeline_tag {
    pub const POST: u8 = 1;
    pub const REPOST: u8 = 2;
    pub const DELETE_POST: u8 = 3;
    pub const DELETE_REPOST: u8 = 4;
    pub const FOLLOW: u8 = 5;
    pub const UNFOLLOW: u8 = 6;
    pub const DELIVER_POST: u8 = 7;
    pub const DELIVER_REPOST: u8 = 8;
    pub const FOLLOW_EDGE: u8 = 9;
    pub const DROP_FEEDS: u8 = 10;
    pub const MERGE_FEED: u8 = 11;
    pub const BEGIN_POST: u8 = 12;
    pub const BEGIN_REPOST: u8 = 13;
    pub const FAN_OUT: u8 = 14;
    pub const FINISH: u8 = 15;
    pub const POST_KIND: u8 = 16;
    pub const BEGIN_POST_KIND: u8 = 17;
    pub const RELATE: u8 = 18;
}

/// The part of a post's fan-out one node of a cluster makes (see [`Local`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<'a> {
    pub author_here: bool,
    pub followers: Cow<'a, [u32]>,
}

impl Delivery<'_> {
    fn local(&self) -> Local<'_> {
        Local {
            author: self.author_here,
            followers: &self.followers,
        }
    }

    fn put(&self, out: &mut Vec<u8>) {
        out.put_u8(u8::from(self.author_here));
        put_users(out, &self.followers);
    }

    fn get(r: &mut Reader) -> Result<Delivery<'static>, DecodeError> {
        let author_here = match r.u8()? {
            0 => false,
            1 => true,
            b => return invalid(format!("bad flag {b}")),
        };
        Ok(Delivery {
            author_here,
            followers: Cow::Owned(get_users(r)?),
        })
    }
}

fn put_users(out: &mut Vec<u8>, users: &[u32]) {
    out.put_varint(users.len() as u64);
    for &u in users {
        out.put_u32(u);
    }
}

fn get_users(r: &mut Reader) -> Result<Vec<u32>, DecodeError> {
    let n = r.count(4)?;
    (0..n).map(|_| r.u32()).collect()
}

/// A change to a timeline's feeds and items (its graph is only read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedOp<'a> {
    /// `(post, author)`: recorded and fanned out at once.
    Post(u64, u32),
    /// `(repost, reposter, post)`.
    Repost(u64, u32, u64),
    DeletePost(u64),
    DeleteRepost(u64),
    /// `(post, author)`: the first step of a fan-out made in slices
    /// ([`Timeline::begin_post`]).
    BeginPost(u64, u32),
    /// `(repost, reposter, post)`: as `BeginPost`.
    BeginRepost(u64, u32, u64),
    /// `(item, first follower, last follower)`: one slice of a fan-out.
    FanOut(u64, u32, u32),
    /// The last step of a fan-out in slices: the item becomes visible.
    Finish(u64),
    /// One node's part of a post's fan-out: `(post, author, delivery)`.
    DeliverPost(u64, u32, Delivery<'a>),
    /// One node's part of a repost's fan-out: `(repost, reposter, post, delivery)`.
    DeliverRepost(u64, u32, u64, Delivery<'a>),
    /// `(post, author, kind)`: a reply or a quote, as `Post`.
    PostKind(u64, u32, PostKind),
    /// `(post, author, kind)`: as `BeginPost`.
    BeginPostKind(u64, u32, PostKind),
    /// `(relation, user, other, on)`: `user` mutes or blocks `other`, or stops.
    Relate(Relation, u32, u32, bool),
    /// Feeds handed off to another node.
    DropFeeds(Cow<'a, [u32]>),
    /// A feed handed over from another node.
    MergeFeed(u32, Cow<'a, [u64]>),
}

/// A change to a timeline's graph (and the feeds it affects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeOp {
    /// Follows and backfills.
    Follow(u32, u32),
    /// Unfollows and clears the followee's items from the follower's feed.
    Unfollow(u32, u32),
    /// A follow whose follower lives on another node: the graph changes, no feed does.
    FollowEdge(u32, u32),
}

/// One record of a timeline's journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimelineOp<'a> {
    Feed(FeedOp<'a>),
    Edge(EdgeOp),
}

impl Encode for FeedOp<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        use timeline_tag as t;
        match self {
            &FeedOp::Post(id, author) | &FeedOp::BeginPost(id, author) => {
                let tag = if matches!(self, FeedOp::Post(..)) {
                    t::POST
                } else {
                    t::BEGIN_POST
                };
                out.put_u8(tag);
                out.put_u64(id);
                out.put_u32(author);
            }
            &FeedOp::Repost(id, reposter, post) | &FeedOp::BeginRepost(id, reposter, post) => {
                let tag = if matches!(self, FeedOp::Repost(..)) {
                    t::REPOST
                } else {
                    t::BEGIN_REPOST
                };
                out.put_u8(tag);
                out.put_u64(id);
                out.put_u32(reposter);
                out.put_u64(post);
            }
            &FeedOp::DeletePost(id) => {
                out.put_u8(t::DELETE_POST);
                out.put_u64(id);
            }
            &FeedOp::DeleteRepost(id) => {
                out.put_u8(t::DELETE_REPOST);
                out.put_u64(id);
            }
            &FeedOp::FanOut(id, from, to) => {
                out.put_u8(t::FAN_OUT);
                out.put_u64(id);
                out.put_u32(from);
                out.put_u32(to);
            }
            &FeedOp::Finish(id) => {
                out.put_u8(t::FINISH);
                out.put_u64(id);
            }
            FeedOp::DeliverPost(id, author, delivery) => {
                out.put_u8(t::DELIVER_POST);
                out.put_u64(*id);
                out.put_u32(*author);
                delivery.put(out);
            }
            FeedOp::DeliverRepost(id, reposter, post, delivery) => {
                out.put_u8(t::DELIVER_REPOST);
                out.put_u64(*id);
                out.put_u32(*reposter);
                out.put_u64(*post);
                delivery.put(out);
            }
            FeedOp::PostKind(id, author, kind) | FeedOp::BeginPostKind(id, author, kind) => {
                let tag = if matches!(self, FeedOp::PostKind(..)) {
                    t::POST_KIND
                } else {
                    t::BEGIN_POST_KIND
                };
                out.put_u8(tag);
                out.put_u64(*id);
                out.put_u32(*author);
                kind.encode(out);
            }
            &FeedOp::Relate(relation, user, other, on) => {
                out.put_u8(t::RELATE);
                out.put_u8(u8::from(relation == Relation::Block) << 1 | u8::from(on));
                out.put_u32(user);
                out.put_u32(other);
            }
            FeedOp::DropFeeds(users) => {
                out.put_u8(t::DROP_FEEDS);
                put_users(out, users);
            }
            FeedOp::MergeFeed(user, ids) => {
                out.put_u8(t::MERGE_FEED);
                out.put_u32(*user);
                out.put_varint(ids.len() as u64);
                for &id in ids.iter() {
                    out.put_u64(id);
                }
            }
        }
    }
}

impl FeedOp<'_> {
    /// Applies the change; `Ok(n)` counts the feeds an item entered (0 for the others).
    pub fn apply(self, graph: &FollowerMap, tl: &mut Timeline) -> Result<usize, TimelineError> {
        match self {
            FeedOp::Post(id, author) => tl.insert_post(graph, id, author),
            FeedOp::Repost(id, reposter, post) => tl.insert_repost(graph, id, reposter, post),
            FeedOp::DeletePost(id) => tl.delete_post(id).map(|_| 0),
            FeedOp::DeleteRepost(id) => tl.delete_repost(id).map(|_| 0),
            FeedOp::BeginPost(id, author) => tl.begin_post(graph, id, author),
            FeedOp::BeginRepost(id, reposter, post) => tl.begin_repost(graph, id, reposter, post),
            FeedOp::FanOut(id, from, to) => Ok(tl.fan_out(graph, id, from..=to)),
            FeedOp::Finish(id) => {
                tl.finish(id);
                Ok(0)
            }
            FeedOp::DeliverPost(id, author, d) => tl.deliver_post(graph, id, author, d.local()),
            FeedOp::DeliverRepost(id, reposter, post, d) => {
                tl.deliver_repost(graph, id, reposter, post, d.local())
            }
            FeedOp::PostKind(id, author, kind) => tl.insert_post_kind(graph, id, author, kind),
            FeedOp::BeginPostKind(id, author, kind) => tl.begin_post_kind(graph, id, author, kind),
            FeedOp::Relate(relation, user, other, on) => {
                Ok(usize::from(tl.relate(relation, user, other, on)))
            }
            FeedOp::DropFeeds(users) => {
                for &user in users.iter() {
                    tl.take_feed(user);
                }
                Ok(0)
            }
            FeedOp::MergeFeed(user, ids) => {
                tl.merge_feed(user, &ids);
                Ok(0)
            }
        }
    }
}

impl Encode for EdgeOp {
    fn encode(&self, out: &mut Vec<u8>) {
        use timeline_tag as t;
        match *self {
            EdgeOp::Follow(a, b) => put_edge(out, t::FOLLOW, (a, b)),
            EdgeOp::Unfollow(a, b) => put_edge(out, t::UNFOLLOW, (a, b)),
            EdgeOp::FollowEdge(a, b) => put_edge(out, t::FOLLOW_EDGE, (a, b)),
        }
    }
}

impl EdgeOp {
    /// Applies the change to the graph and the feeds; whether the edge changed.
    pub fn apply(self, graph: &mut FollowerMap, tl: &mut Timeline) -> Result<bool, GraphError> {
        self.apply_planned(graph, tl, None)
    }

    /// [`EdgeOp::apply`] with the feed work planned ahead, outside the write lock (see
    /// [`FeedPlan`]): the same result, whether the plan is used or not.
    pub fn apply_planned(
        self,
        graph: &mut FollowerMap,
        tl: &mut Timeline,
        plan: Option<FeedPlan>,
    ) -> Result<bool, GraphError> {
        match self {
            EdgeOp::Follow(a, b) => {
                let added = graph.follow(a, b)?;
                if added {
                    tl.followed_planned(graph, a, b, plan);
                }
                Ok(added)
            }
            EdgeOp::FollowEdge(a, b) => {
                let added = graph.follow(a, b)?;
                if added {
                    tl.followed_elsewhere(graph, b);
                }
                Ok(added)
            }
            EdgeOp::Unfollow(a, b) => {
                let removed = graph.unfollow(a, b);
                if removed {
                    tl.unfollowed_planned(a, b, plan);
                }
                Ok(removed)
            }
        }
    }
}

impl Encode for TimelineOp<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            TimelineOp::Feed(op) => op.encode(out),
            TimelineOp::Edge(op) => op.encode(out),
        }
    }
}

impl TimelineOp<'_> {
    pub fn decode(bytes: &[u8]) -> Result<TimelineOp<'static>, DecodeError> {
        use timeline_tag as t;
        record(bytes, |r, tag| {
            let feed = match tag {
                t::POST => FeedOp::Post(r.u64()?, r.u32()?),
                t::REPOST => FeedOp::Repost(r.u64()?, r.u32()?, r.u64()?),
                t::DELETE_POST => FeedOp::DeletePost(r.u64()?),
                t::DELETE_REPOST => FeedOp::DeleteRepost(r.u64()?),
                t::BEGIN_POST => FeedOp::BeginPost(r.u64()?, r.u32()?),
                t::BEGIN_REPOST => FeedOp::BeginRepost(r.u64()?, r.u32()?, r.u64()?),
                t::FAN_OUT => {
                    let (id, from, to) = (r.u64()?, r.u32()?, r.u32()?);
                    if from > to {
                        return invalid(format!("fan-out of {id} over {from}..{to}"));
                    }
                    FeedOp::FanOut(id, from, to)
                }
                t::FINISH => FeedOp::Finish(r.u64()?),
                t::DELIVER_POST => FeedOp::DeliverPost(r.u64()?, r.u32()?, Delivery::get(r)?),
                t::DELIVER_REPOST => {
                    let (id, reposter, post) = (r.u64()?, r.u32()?, r.u64()?);
                    FeedOp::DeliverRepost(id, reposter, post, Delivery::get(r)?)
                }
                t::POST_KIND => FeedOp::PostKind(r.u64()?, r.u32()?, PostKind::decode(r)?),
                t::BEGIN_POST_KIND => {
                    FeedOp::BeginPostKind(r.u64()?, r.u32()?, PostKind::decode(r)?)
                }
                t::RELATE => {
                    let flags = r.u8()?;
                    if flags > 3 {
                        return invalid(format!("relation flags {flags}"));
                    }
                    let relation = if flags & 2 == 2 {
                        Relation::Block
                    } else {
                        Relation::Mute
                    };
                    let (user, other) = (r.u32()?, r.u32()?);
                    FeedOp::Relate(relation, user, other, flags & 1 == 1)
                }
                t::DROP_FEEDS => FeedOp::DropFeeds(Cow::Owned(get_users(r)?)),
                t::MERGE_FEED => {
                    let user = r.u32()?;
                    let n = r.count(8)?;
                    let ids = (0..n).map(|_| r.u64()).collect::<Result<Vec<u64>, _>>()?;
                    FeedOp::MergeFeed(user, Cow::Owned(ids))
                }
                t::FOLLOW | t::UNFOLLOW | t::FOLLOW_EDGE => {
                    let (a, b) = get_edge(r)?;
                    return Ok(TimelineOp::Edge(match tag {
                        t::FOLLOW => EdgeOp::Follow(a, b),
                        t::UNFOLLOW => EdgeOp::Unfollow(a, b),
                        _ => EdgeOp::FollowEdge(a, b),
                    }));
                }
                _ => return unknown("timeline", tag),
            };
            Ok(TimelineOp::Feed(feed))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: PartialEq + std::fmt::Debug>(
        op: T,
        encode: impl Fn(&T, &mut Vec<u8>),
        decode: impl Fn(&[u8]) -> Result<T, DecodeError>,
    ) {
        let mut bytes = Vec::new();
        encode(&op, &mut bytes);
        assert_eq!(decode(&bytes).unwrap(), op);
        // No prefix of a record is a record, and no record takes a trailing byte.
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "{op:?} cut at {n}");
        }
        bytes.push(0);
        assert!(decode(&bytes).is_err(), "{op:?} with a trailing byte");
    }

    #[test]
    fn every_op_round_trips_and_refuses_cuts() {
        let set_ops = [
            SetOp::Add(Term::Int(7)),
            SetOp::Remove(Term::atom("x")),
            SetOp::Update(Term::Int(1), Term::Float(2.5)),
            SetOp::AddAll(Cow::Owned(vec![Term::Int(1), Term::Int(2)])),
        ];
        for op in set_ops {
            round_trip(op, SetOp::encode, SetOp::decode);
        }
        round_trip(
            InternOp(Cow::Owned(b"did:plc:x".to_vec())),
            InternOp::encode,
            |b| InternOp::decode(b).map(|InternOp(k)| InternOp(Cow::Owned(k.into_owned()))),
        );
        let graph_ops = [
            GraphOp::Follow(1, 2),
            GraphOp::Unfollow(3, 4),
            GraphOp::FollowMany(Cow::Owned(vec![(1, 2), (2, 1)])),
        ];
        for op in graph_ops {
            round_trip(op, GraphOp::encode, GraphOp::decode);
        }
        let delivery = Delivery {
            author_here: true,
            followers: Cow::Owned(vec![4, 5]),
        };
        let timeline_ops = [
            TimelineOp::Feed(FeedOp::Post(1, 2)),
            TimelineOp::Feed(FeedOp::Repost(3, 4, 1)),
            TimelineOp::Feed(FeedOp::DeletePost(1)),
            TimelineOp::Feed(FeedOp::DeleteRepost(3)),
            TimelineOp::Feed(FeedOp::BeginPost(5, 6)),
            TimelineOp::Feed(FeedOp::BeginRepost(7, 8, 5)),
            TimelineOp::Feed(FeedOp::FanOut(5, 0, 99)),
            TimelineOp::Feed(FeedOp::Finish(5)),
            TimelineOp::Feed(FeedOp::DeliverPost(9, 1, delivery.clone())),
            TimelineOp::Feed(FeedOp::DeliverRepost(10, 2, 9, delivery)),
            TimelineOp::Feed(FeedOp::DropFeeds(Cow::Owned(vec![1, 2]))),
            TimelineOp::Feed(FeedOp::MergeFeed(1, Cow::Owned(vec![1, 9]))),
            TimelineOp::Edge(EdgeOp::Follow(1, 2)),
            TimelineOp::Edge(EdgeOp::Unfollow(1, 2)),
            TimelineOp::Edge(EdgeOp::FollowEdge(1, 2)),
        ];
        for op in timeline_ops {
            round_trip(op, TimelineOp::encode, TimelineOp::decode);
        }
    }

    #[test]
    fn self_follows_and_reversed_slices_are_no_records() {
        let mut bytes = Vec::new();
        GraphOp::Follow(3, 3).encode(&mut bytes);
        assert!(GraphOp::decode(&bytes).is_err());
        bytes.clear();
        FeedOp::FanOut(1, 9, 2).encode(&mut bytes);
        assert!(TimelineOp::decode(&bytes).is_err());
    }
}

// ---------------------------------------------------------------------------------------
// MemberList

mod list_tag {
    /// A record of one or more mutations (a single change is a batch of one).
    pub const MUTATIONS: u8 = 1;
    pub const UPSERT: u8 = 1;
    pub const REMOVE: u8 = 2;
    pub const DEFINE_GROUPS: u8 = 3;
}

/// A change to a [`MemberList`]: its mutations, applied together as a batch.
#[derive(Debug)]
pub struct ListOp<'a>(pub Cow<'a, [Mutation]>);

impl Encode for ListOp<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(list_tag::MUTATIONS);
        out.put_varint(self.0.len() as u64);
        for m in self.0.iter() {
            match m {
                Mutation::Upsert(member) => {
                    out.put_u8(list_tag::UPSERT);
                    put_term(out, member.term());
                }
                Mutation::Remove(id) => {
                    out.put_u8(list_tag::REMOVE);
                    put_term(out, id);
                }
                Mutation::DefineGroups(layout) => {
                    out.put_u8(list_tag::DEFINE_GROUPS);
                    put_layout(out, layout);
                }
            }
        }
    }
}

/// A layout's bytes: the count of hoisted roles, then each id and position.
pub fn put_layout(out: &mut Vec<u8>, layout: &Layout) {
    out.put_varint(layout.roles().len() as u64);
    for (id, position) in layout.roles() {
        put_term(out, id);
        out.put_varint(*position);
    }
}

/// Reads a layout, checked as a live change checks it.
pub fn get_layout(r: &mut Reader) -> Result<Layout, DecodeError> {
    let n = r.count(2)?;
    let mut roles = Vec::with_capacity(n);
    for _ in 0..n {
        roles.push((get_term(r)?, r.varint()?));
    }
    Layout::new(roles).or_else(|e| invalid(format!("groups: {e}")))
}

/// Reads a member, checked as a live change checks it.
pub fn get_member(r: &mut Reader) -> Result<Member, DecodeError> {
    Member::parse(get_term(r)?).or_else(|e| invalid(format!("member: {e}")))
}

impl ListOp<'_> {
    pub fn decode(bytes: &[u8]) -> Result<ListOp<'static>, DecodeError> {
        record(bytes, |r, tag| {
            if tag != list_tag::MUTATIONS {
                return unknown("member list", tag);
            }
            let n = r.count(2)?;
            let mut mutations = Vec::with_capacity(n);
            for _ in 0..n {
                mutations.push(match r.u8()? {
                    list_tag::UPSERT => Mutation::Upsert(get_member(r)?),
                    list_tag::REMOVE => Mutation::Remove(get_term(r)?),
                    list_tag::DEFINE_GROUPS => Mutation::DefineGroups(get_layout(r)?),
                    other => return unknown("member list mutation", other),
                });
            }
            Ok(ListOp(Cow::Owned(mutations)))
        })
    }

    /// Applies the mutations as one batch (the list ends the same as applying them one by
    /// one); the changes for subscribers.
    pub fn apply(self, list: &mut MemberList) -> Changes {
        list.batch(self.0.into_owned())
    }
}
