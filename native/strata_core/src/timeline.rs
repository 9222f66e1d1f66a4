//! A fan-out timeline store: posts are pushed into followers' bounded feeds, except posts of
//! large authors (more followers than `fanout_limit`), which are merged in when a timeline is
//! read (fan-in). The follow graph lives in a [`FollowerMap`] that every call receives, so
//! that it can be shared with other users of the graph.
//!
//! Items are posts and reposts, each with a time-ordered id (a snowflake or TID); one id space
//! covers both. A feed holds item ids, newest first, at most `feed_capacity` of them: when a
//! push makes it longer, its oldest ids fall off. Every author also keeps their own last
//! `feed_capacity` items, which fan-in and backfill read. Deletes are filtered at read time:
//! a deleted post (and every repost of it) is skipped, and its entries leave feeds as newer
//! items push them out.

use std::collections::VecDeque;
use std::mem::size_of;
use std::sync::Arc;

use crate::codec::{get_bitmap, invalid, put_bitmap, DecodeError, Put, Reader};
use crate::follower_map::{Bits, FollowerMap};
use crate::heap;
use crate::sharded::ShardedMap;

/// One feed item as a reader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Post(u64),
    /// `{repost id, post id, reposter}`.
    Repost(u64, u64, u32),
}

/// A reply's place in its thread: the post it answers and the thread's first post, with
/// their authors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub parent: u64,
    pub parent_author: u32,
    pub root: u64,
    pub root_author: u32,
}

/// What a post is besides a post: a reply, a quote of another post, both, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PostKind {
    pub reply: Option<Reply>,
    pub quote_of: Option<u64>,
}

impl PostKind {
    pub fn is_plain(&self) -> bool {
        self.reply.is_none() && self.quote_of.is_none()
    }

    /// Bytes of the kind as written in a snapshot or journal record (after its flag byte).
    fn put(&self, out: &mut Vec<u8>) {
        if let Some(r) = self.reply {
            out.put_u64(r.parent);
            out.put_u32(r.parent_author);
            out.put_u64(r.root);
            out.put_u32(r.root_author);
        }
        if let Some(q) = self.quote_of {
            out.put_u64(q);
        }
    }

    /// The flag bits of [`PostKind::put`]: 1 a reply, 2 a quote.
    fn flags(&self) -> u8 {
        u8::from(self.reply.is_some()) | u8::from(self.quote_of.is_some()) << 1
    }

    fn get(flags: u8, r: &mut Reader) -> Result<PostKind, DecodeError> {
        if flags & !3 != 0 {
            return invalid(format!("post kind flags {flags}"));
        }
        let reply = if flags & 1 == 1 {
            Some(Reply {
                parent: r.u64()?,
                parent_author: r.u32()?,
                root: r.u64()?,
                root_author: r.u32()?,
            })
        } else {
            None
        };
        let quote_of = if flags & 2 == 2 { Some(r.u64()?) } else { None };
        Ok(PostKind { reply, quote_of })
    }

    /// Writes the kind with its flag byte first.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(self.flags());
        self.put(out);
    }

    /// Reads what [`PostKind::encode`] wrote.
    pub fn decode(r: &mut Reader) -> Result<PostKind, DecodeError> {
        let flags = r.u8()?;
        PostKind::get(flags, r)
    }
}

/// Which items a read returns, beyond being visible (see [`Timeline::read_filtered`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter {
    pub exclude_replies: bool,
    pub exclude_reposts: bool,
    pub exclude_quotes: bool,
    /// Only items with ids above this one.
    pub since: Option<u64>,
    /// Whose read it is: that user's mutes and the blocks between them and the items'
    /// authors apply.
    pub viewer: Option<u32>,
    /// The home timeline's reply rule (see [`Timeline::read_filtered`]).
    pub reply_rule: bool,
}

/// A mute or a block between two users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Mute,
    Block,
}

#[derive(Debug, Clone, Copy)]
enum Record {
    Post {
        author: u32,
        deleted: bool,
        /// Begun and still being fanned out: invisible until it is finished.
        pending: bool,
    },
    Repost {
        post: u64,
        reposter: u32,
        deleted: bool,
        pending: bool,
    },
}

impl Record {
    /// Who put the item into feeds: the author of a post, the reposter of a repost.
    fn source(&self) -> u32 {
        match *self {
            Record::Post { author, .. } => author,
            Record::Repost { reposter, .. } => reposter,
        }
    }

    fn is_pending(&self) -> bool {
        matches!(
            self,
            Record::Post { pending: true, .. } | Record::Repost { pending: true, .. }
        )
    }

    fn pending_mut(&mut self) -> &mut bool {
        match self {
            Record::Post { pending, .. } | Record::Repost { pending, .. } => pending,
        }
    }
}

/// Followers a fan-out pushes to under one lock (~0.1-0.3 ms of work): the NIF layer makes
/// a longer fan-out in slices of this many ([`Timeline::begin_post`], [`Timeline::fan_out`],
/// [`Timeline::finish`]), giving the locks up between them.
pub const FANOUT_SLICE: usize = 1024;

/// The feeds one node of a cluster pushes a post into (see [`Timeline::deliver_post`]).
#[derive(Debug, Clone, Copy)]
pub struct Local<'a> {
    /// Whether the author lives on this node.
    pub author: bool,
    /// The author's followers who live on this node.
    pub followers: &'a [u32],
}

/// Errors of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimelineError {
    /// An item with this id exists already.
    DuplicateId(u64),
    /// A repost of a post that does not exist (or was deleted).
    UnknownPost(u64),
    /// No such post or repost.
    NotFound(u64),
}

/// Largest `feed_capacity` a timeline accepts.
pub const MAX_FEED_CAPACITY: usize = 100_000;

/// Options of a timeline.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub feed_capacity: usize,
    pub fanout_limit: u64,
    pub backfill: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            feed_capacity: 1000,
            fanout_limit: 10_000,
            backfill: 50,
        }
    }
}

/// Counts for `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub users: usize,
    pub posts: usize,
    pub reposts: usize,
    pub feed_entries: usize,
    pub large_authors: u64,
}

#[derive(Debug, Default, Clone)]
pub struct Timeline {
    options: Options,
    records: ShardedMap<u64, Record>,
    /// Each user's home feed: item ids, ascending (newest last).
    feeds: ShardedMap<u32, Arc<VecDeque<u64>>>,
    /// Each author's own items (posts and reposts), ascending.
    own: ShardedMap<u32, Arc<VecDeque<u64>>>,
    /// Authors whose follower count has passed `fanout_limit`: once large, always fanned in
    /// (so that nothing they posted while large goes missing if they fall back under it).
    large: Bits,
    /// The kinds of the posts that are replies or quotes (plain posts have none).
    kinds: ShardedMap<u64, PostKind>,
    /// Whom each user mutes, and whom each user blocks.
    mutes: ShardedMap<u32, Arc<Bits>>,
    blocks: ShardedMap<u32, Arc<Bits>>,
    /// Chunk bytes of the mute and block bitmaps.
    relation_bytes: usize,
    feed_entries: usize,
    own_entries: usize,
    /// Chunk bytes of every feed's and own list's buffer (capacities, not lengths).
    list_bytes: usize,
    reposts: usize,
}

type Lists = ShardedMap<u32, Arc<VecDeque<u64>>>;

/// Chunk bytes of a list's buffer.
fn list_heap(list: &VecDeque<u64>) -> usize {
    heap::buffer::<u64>(list.capacity())
}

/// The bytes counted for `user`'s list: taken before a change, since a list that a snapshot
/// still shares is copied for it (a copy's buffer holds its length exactly).
fn counted(lists: &Lists, user: u32) -> usize {
    lists.get(&user).map_or(0, |l| list_heap(l))
}

/// Inserts `id` into an ascending list of at most `capacity` ids, dropping the oldest when
/// full. Returns whether it was added and by how much the list grew. Ids mostly arrive
/// newest, so the insert is usually a push at the back.
fn push_bounded(list: &mut VecDeque<u64>, id: u64, capacity: usize) -> (bool, usize) {
    let at = match list.back() {
        Some(&last) if last < id => list.len(),
        None => 0,
        _ => match list.binary_search(&id) {
            Ok(_) => return (false, 0),
            Err(at) => at,
        },
    };
    if list.len() >= capacity {
        if at == 0 {
            return (false, 0); // older than everything kept
        }
        list.pop_front();
        list.insert(at - 1, id);
        (true, 0)
    } else {
        list.insert(at, id);
        (true, 1)
    }
}

/// A follow's backfill or an unfollow's cleanup, computed ahead from the lists as they were
/// (outside the write lock: with a feed of 100,000 ids, that work would hold every writer
/// for a millisecond or more), with those lists themselves. It is installed under the lock
/// only if they are still the lists there (the same allocations: any change to a shared
/// copy-on-write list makes a new one); otherwise the work is done again under the lock. So
/// the result is always what the work under the lock would have made, and replay (which
/// never plans) makes the same.
#[derive(Debug)]
pub struct FeedPlan {
    feed: Option<Arc<VecDeque<u64>>>,
    /// The followee's own items, for a backfill.
    own: Option<Arc<VecDeque<u64>>>,
    result: VecDeque<u64>,
}

fn same(a: Option<&Arc<VecDeque<u64>>>, b: Option<&Arc<VecDeque<u64>>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// What a backfill merges: the follower's feed, the followee's own items, how many of them,
/// and the feed's capacity ([`Timeline::backfill_of`]).
#[derive(Debug)]
pub struct Backfill {
    feed: Option<Arc<VecDeque<u64>>>,
    own: Arc<VecDeque<u64>>,
    n: usize,
    capacity: usize,
}

impl Timeline {
    /// The lists a follow's backfill merges, taken in `O(1)` (under a read lock), or `None`
    /// when there is nothing to backfill.
    pub fn backfill_of(&self, follower: u32, followee: u32) -> Option<Backfill> {
        let own = self.own.get(&followee)?.clone();
        let n = own.len().min(self.options.backfill);
        (n > 0).then(|| Backfill {
            feed: self.feeds.get(&follower).cloned(),
            own,
            n,
            capacity: self.options.feed_capacity,
        })
    }
}

impl FeedPlan {
    /// The follower's feed with the followee's recent items merged in (no lock needed).
    pub fn backfill(inputs: Backfill) -> FeedPlan {
        let Backfill {
            feed,
            own,
            n,
            capacity,
        } = inputs;
        let empty = VecDeque::new();
        let list = feed.as_deref().unwrap_or(&empty);
        // One merge of two ascending lists, keeping the newest `capacity` ids: O(feed +
        // backfill), where pushing them one by one (newest first, each into the middle)
        // was quadratic.
        let recent = own.range(own.len() - n..);
        let mut merged = VecDeque::with_capacity((list.len() + n).min(capacity));
        let (mut a, mut b) = (list.iter().rev().peekable(), recent.rev().peekable());
        while merged.len() < capacity {
            let next = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x == y => {
                    b.next();
                    a.next()
                }
                (Some(&&x), Some(&&y)) if x > y => a.next(),
                (Some(_), None) => a.next(),
                (_, Some(_)) => b.next(),
                (None, None) => None,
            };
            match next {
                Some(&id) => merged.push_front(id),
                None => break,
            }
        }
        FeedPlan {
            feed,
            own: Some(own),
            result: merged,
        }
    }

    /// An unfollow's cleanup from the feed `feed` and the ids of it to keep (computed with
    /// [`Timeline::keep_not_from`]).
    pub fn cleanup(feed: Arc<VecDeque<u64>>, kept: VecDeque<u64>) -> FeedPlan {
        FeedPlan {
            feed: Some(feed),
            own: None,
            result: kept,
        }
    }

    /// Whether the lists the plan was made from are the ones here now.
    fn still_fits(
        &self,
        feeds: &ShardedMap<u32, Arc<VecDeque<u64>>>,
        follower: u32,
        own: Option<&ShardedMap<u32, Arc<VecDeque<u64>>>>,
        followee: u32,
    ) -> bool {
        same(self.feed.as_ref(), feeds.get(&follower))
            && own.is_none_or(|own| same(self.own.as_ref(), own.get(&followee)))
    }
}

impl Timeline {
    pub fn new(options: Options) -> Timeline {
        Timeline {
            options,
            ..Timeline::default()
        }
    }

    pub fn options(&self) -> Options {
        self.options
    }

    /// Bytes held (`O(1)`): the allocator's chunks for the maps' tables, each list's `Arc`
    /// and buffer (its capacity), and the large authors' bitmap (see [`crate::heap`]).
    pub fn memory(&self) -> usize {
        size_of::<Self>()
            + self.records.heap_bytes()
            + self.feeds.heap_bytes()
            + self.own.heap_bytes()
            + (self.feeds.len() + self.own.len()) * heap::arc::<VecDeque<u64>>()
            + self.list_bytes
            + self.large.heap_bytes()
            + self.kinds.heap_bytes()
            + self.mutes.heap_bytes()
            + self.blocks.heap_bytes()
            + (self.mutes.len() + self.blocks.len()) * heap::arc::<Bits>()
            + self.relation_bytes
    }

    pub fn stats(&self) -> Stats {
        Stats {
            users: self.feeds.len(),
            posts: self.records.len() - self.reposts,
            reposts: self.reposts,
            feed_entries: self.feed_entries,
            large_authors: self.large.len(),
        }
    }

    /// Whether `author` is fanned in at read time.
    pub fn is_large(&self, author: u32) -> bool {
        self.large.contains(author)
    }

    /// Marks `author` large once their follower count passes the limit.
    fn reclassify(&mut self, graph: &FollowerMap, author: u32) {
        if graph.follower_count(author) > self.options.fanout_limit {
            self.large.insert(author);
        }
    }

    fn push_own(&mut self, author: u32, id: u64) {
        let capacity = self.options.feed_capacity;
        let before = counted(&self.own, author);
        let own = self.own.value_or_default(author);
        let (_, grown) = push_bounded(own, id, capacity);
        self.list_bytes = self.list_bytes + list_heap(own) - before;
        self.own_entries += grown;
    }

    fn push_feed(&mut self, user: u32, id: u64) -> bool {
        let capacity = self.options.feed_capacity;
        let before = counted(&self.feeds, user);
        let feed = self.feeds.value_or_default(user);
        let (added, grown) = push_bounded(feed, id, capacity);
        self.list_bytes = self.list_bytes + list_heap(feed) - before;
        self.feed_entries += grown;
        added
    }

    /// Puts a new item into its author's own list and feed; returns the feeds it entered.
    fn publish_own(&mut self, graph: &FollowerMap, author: u32, id: u64) -> usize {
        // The graph may have grown without going through `followed`.
        self.reclassify(graph, author);
        self.push_own(author, id);
        usize::from(self.push_feed(author, id))
    }

    /// Pushes `id` into the feeds of `author`'s followers in `users` (unless the author is
    /// large); returns how many it entered.
    fn push_followers(
        &mut self,
        graph: &FollowerMap,
        author: u32,
        id: u64,
        users: std::ops::RangeInclusive<u32>,
    ) -> usize {
        let mut touched = 0;
        if !self.is_large(author) {
            if let Some(followers) = graph.followers_of(author) {
                for follower in followers.range(users) {
                    touched += usize::from(self.push_feed(follower, id));
                }
            }
        }
        touched
    }

    /// Puts a new item into its author's lists and, unless it is only begun (`pending`: its
    /// fan-out comes in slices), every follower's feed.
    fn publish(&mut self, graph: &FollowerMap, author: u32, id: u64, pending: bool) -> usize {
        let own = self.publish_own(graph, author, id);
        match pending {
            true => own,
            false => own + self.push_followers(graph, author, id, 0..=u32::MAX),
        }
    }

    /// The part of a post's fan-out that one node of a cluster makes: the author's own
    /// item list (on every node), the author's feed when `local.author` (the author lives
    /// here) and, unless the author is large, the feeds of `local.followers` (the author's
    /// followers who live here).
    fn publish_local(&mut self, graph: &FollowerMap, author: u32, id: u64, local: Local) -> usize {
        self.reclassify(graph, author);
        self.push_own(author, id);
        let mut touched = 0;
        if local.author {
            touched += usize::from(self.push_feed(author, id));
        }
        if !self.is_large(author) {
            for &follower in local.followers {
                touched += usize::from(self.push_feed(follower, id));
            }
        }
        touched
    }

    /// [`Timeline::insert_post`] for one node of a cluster: records the post and makes the
    /// part of its fan-out given by `local`. Delivering the same post again is allowed (a
    /// node may receive it twice during a handoff) and pushes nothing twice.
    pub fn deliver_post(
        &mut self,
        graph: &FollowerMap,
        post: u64,
        author: u32,
        local: Local,
    ) -> Result<usize, TimelineError> {
        match self.records.get(&post) {
            Some(Record::Post { author: a, .. }) if *a == author => {}
            Some(_) => return Err(TimelineError::DuplicateId(post)),
            None => self.record_post(post, author, false),
        }
        Ok(self.publish_local(graph, author, post, local))
    }

    /// [`Timeline::insert_repost`] for one node of a cluster, as [`Timeline::deliver_post`].
    pub fn deliver_repost(
        &mut self,
        graph: &FollowerMap,
        repost: u64,
        reposter: u32,
        post: u64,
        local: Local,
    ) -> Result<usize, TimelineError> {
        match self.records.get(&repost) {
            Some(Record::Repost {
                post: p,
                reposter: r,
                ..
            }) if *p == post && *r == reposter => {}
            Some(_) => return Err(TimelineError::DuplicateId(repost)),
            None => self.record_repost(repost, reposter, post, false)?,
        }
        Ok(self.publish_local(graph, reposter, repost, local))
    }

    /// After `followee` gained a follower who lives on another node: only the large-author
    /// classification changes here (the follower's feed, and its backfill, are elsewhere).
    pub fn followed_elsewhere(&mut self, graph: &FollowerMap, followee: u32) {
        self.reclassify(graph, followee);
    }

    /// Whether a post or repost with this id is recorded (deleted or not).
    pub fn has_item(&self, id: u64) -> bool {
        self.records.contains_key(&id)
    }

    /// The users that have a feed here, ascending.
    pub fn feed_users(&self) -> Vec<u32> {
        self.feeds.sorted_keys()
    }

    /// The ids in `user`'s feed, ascending.
    pub fn feed(&self, user: u32) -> Option<Vec<u64>> {
        self.feeds.get(&user).map(|f| f.iter().copied().collect())
    }

    /// Removes `user`'s feed and returns its ids, ascending (for a handoff).
    pub fn take_feed(&mut self, user: u32) -> Option<Vec<u64>> {
        let before = counted(&self.feeds, user);
        let feed = self.feeds.take(&user)?;
        self.feed_entries -= feed.len();
        self.list_bytes -= before;
        Some(feed.into())
    }

    /// Merges ids into `user`'s feed (a handoff's import): each is pushed as by a fan-out,
    /// so the feed keeps the newest `feed_capacity` of the union. Ids of unknown items are
    /// skipped.
    pub fn merge_feed(&mut self, user: u32, ids: &[u64]) {
        for &id in ids {
            if self.records.contains_key(&id) {
                self.push_feed(user, id);
            }
        }
    }

    /// Records a post and pushes it to the author's feed and, unless the author is large,
    /// every follower's. Returns how many feeds it entered.
    pub fn insert_post(
        &mut self,
        graph: &FollowerMap,
        post: u64,
        author: u32,
    ) -> Result<usize, TimelineError> {
        self.add_post(graph, post, author, false)
    }

    /// A new post, fanned out at once, or (`pending`) only begun (see [`Timeline::begin_post`]).
    fn add_post(
        &mut self,
        graph: &FollowerMap,
        post: u64,
        author: u32,
        pending: bool,
    ) -> Result<usize, TimelineError> {
        if self.records.contains_key(&post) {
            return Err(TimelineError::DuplicateId(post));
        }
        self.record_post(post, author, pending);
        Ok(self.publish(graph, author, post, pending))
    }

    fn record_post(&mut self, post: u64, author: u32, pending: bool) {
        let record = Record::Post {
            author,
            deleted: false,
            pending,
        };
        self.records.insert(post, record);
    }

    /// The first step of a post fanned out in slices: records it as pending (invisible to
    /// every reader until [`Timeline::finish`]) and puts it in its author's own list and
    /// feed. Returns how many feeds it entered.
    pub fn begin_post(
        &mut self,
        graph: &FollowerMap,
        post: u64,
        author: u32,
    ) -> Result<usize, TimelineError> {
        self.add_post(graph, post, author, true)
    }

    /// [`Timeline::insert_post`] of a reply or a quote: the kind is recorded with the post
    /// (a plain kind records nothing).
    pub fn insert_post_kind(
        &mut self,
        graph: &FollowerMap,
        post: u64,
        author: u32,
        kind: PostKind,
    ) -> Result<usize, TimelineError> {
        self.record_kind(post, kind)?;
        self.add_post(graph, post, author, false)
    }

    /// [`Timeline::begin_post`] of a reply or a quote.
    pub fn begin_post_kind(
        &mut self,
        graph: &FollowerMap,
        post: u64,
        author: u32,
        kind: PostKind,
    ) -> Result<usize, TimelineError> {
        self.record_kind(post, kind)?;
        self.add_post(graph, post, author, true)
    }

    fn record_kind(&mut self, post: u64, kind: PostKind) -> Result<(), TimelineError> {
        if self.records.contains_key(&post) {
            return Err(TimelineError::DuplicateId(post));
        }
        if !kind.is_plain() {
            self.kinds.insert(post, kind);
        }
        Ok(())
    }

    /// The kind of a post (plain for an unknown id).
    pub fn kind(&self, post: u64) -> PostKind {
        self.kinds.get(&post).copied().unwrap_or_default()
    }

    /// `user` mutes or blocks `other` (`Relation`), or (`on == false`) no longer does;
    /// whether that changed anything.
    pub fn relate(&mut self, relation: Relation, user: u32, other: u32, on: bool) -> bool {
        let map = match relation {
            Relation::Mute => &mut self.mutes,
            Relation::Block => &mut self.blocks,
        };
        let before = map.get(&user).map_or(0, |b| b.heap_bytes());
        let changed = if on {
            map.value_or_default(user).insert(other)
        } else {
            match map.value_mut(&user) {
                Some(bits) => bits.remove(other),
                None => return false,
            }
        };
        let after = match map.get(&user) {
            Some(bits) if bits.is_empty() => {
                map.remove(&user);
                0
            }
            Some(bits) => bits.heap_bytes(),
            None => 0,
        };
        self.relation_bytes = self.relation_bytes + after - before;
        changed
    }

    /// Whether `user` mutes or blocks (`relation`) `other`.
    pub fn relates(&self, relation: Relation, user: u32, other: u32) -> bool {
        let map = match relation {
            Relation::Mute => &self.mutes,
            Relation::Block => &self.blocks,
        };
        map.get(&user).is_some_and(|b| b.contains(other))
    }

    /// [`Timeline::begin_post`] for a repost.
    pub fn begin_repost(
        &mut self,
        graph: &FollowerMap,
        repost: u64,
        reposter: u32,
        post: u64,
    ) -> Result<usize, TimelineError> {
        self.add_repost(graph, repost, reposter, post, true)
    }

    /// Pushes item `id` into the feeds of its author's followers whose ids are in `users`
    /// (the followers in the graph now, unless the author is large). Returns how many feeds
    /// it entered.
    pub fn fan_out(
        &mut self,
        graph: &FollowerMap,
        id: u64,
        users: std::ops::RangeInclusive<u32>,
    ) -> usize {
        match self.records.get(&id) {
            Some(record) => {
                let author = record.source();
                self.push_followers(graph, author, id, users)
            }
            None => 0,
        }
    }

    /// The end of the next slice of item `id`'s fan-out starting at follower `from`: the
    /// `limit`-th of its author's followers from `from` on, or `u32::MAX` when fewer remain.
    pub fn fan_out_slice_end(&self, graph: &FollowerMap, id: u64, from: u32, limit: usize) -> u32 {
        let author = self.records.get(&id).map(Record::source);
        let followers = author.and_then(|a| graph.followers_of(a));
        match followers {
            Some(f) if !self.is_large(author.unwrap_or_default()) && limit > 0 => {
                f.range(from..).nth(limit - 1).unwrap_or(u32::MAX)
            }
            _ => u32::MAX,
        }
    }

    /// How many followers' feeds posting as `author` would push into (0 for a large author).
    pub fn fan_out_size(&self, graph: &FollowerMap, author: u32) -> u64 {
        let followers = graph.follower_count(author);
        if self.is_large(author) || followers > self.options.fanout_limit {
            0
        } else {
            followers
        }
    }

    /// Makes a pending item visible (nothing for an item that is not pending).
    pub fn finish(&mut self, id: u64) {
        // Looked at first: a change would copy the record's shard if a snapshot shares it.
        if self.records.get(&id).is_some_and(Record::is_pending) {
            if let Some(record) = self.records.get_mut(&id) {
                *record.pending_mut() = false;
            }
        }
    }

    /// The items begun and not finished (a fan-out cut short), ascending.
    pub fn pending(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .records
            .iter()
            .filter(|(_, r)| r.is_pending())
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Records a repost (its own feed item, ordered by `repost`) and fans it out like a post
    /// of the reposter.
    pub fn insert_repost(
        &mut self,
        graph: &FollowerMap,
        repost: u64,
        reposter: u32,
        post: u64,
    ) -> Result<usize, TimelineError> {
        self.add_repost(graph, repost, reposter, post, false)
    }

    /// A new repost, fanned out at once, or (`pending`) only begun.
    fn add_repost(
        &mut self,
        graph: &FollowerMap,
        repost: u64,
        reposter: u32,
        post: u64,
        pending: bool,
    ) -> Result<usize, TimelineError> {
        if self.records.contains_key(&repost) {
            return Err(TimelineError::DuplicateId(repost));
        }
        self.record_repost(repost, reposter, post, pending)?;
        Ok(self.publish(graph, reposter, repost, pending))
    }

    /// Records a new repost of a live post (a pending post is not live yet).
    fn record_repost(
        &mut self,
        repost: u64,
        reposter: u32,
        post: u64,
        pending: bool,
    ) -> Result<(), TimelineError> {
        match self.records.get(&post) {
            Some(Record::Post {
                deleted: false,
                pending: false,
                ..
            }) => {}
            _ => return Err(TimelineError::UnknownPost(post)),
        }
        self.records.insert(
            repost,
            Record::Repost {
                post,
                reposter,
                deleted: false,
                pending,
            },
        );
        self.reposts += 1;
        Ok(())
    }

    /// Deletes a post: it and every repost of it disappear from every timeline. It leaves
    /// its author's own list at once (so that fan-in and backfill never walk over it) and
    /// followers' feeds as newer items push it out (reads skip it meanwhile).
    pub fn delete_post(&mut self, post: u64) -> Result<(), TimelineError> {
        match self.records.get_mut(&post) {
            Some(Record::Post {
                deleted, author, ..
            }) if !*deleted => {
                *deleted = true;
                let author = *author;
                self.drop_own(author, post);
                Ok(())
            }
            _ => Err(TimelineError::NotFound(post)),
        }
    }

    /// Deletes a repost (it leaves the reposter's own list at once, as a post does).
    pub fn delete_repost(&mut self, repost: u64) -> Result<(), TimelineError> {
        match self.records.get_mut(&repost) {
            Some(Record::Repost {
                deleted, reposter, ..
            }) if !*deleted => {
                *deleted = true;
                let reposter = *reposter;
                self.drop_own(reposter, repost);
                Ok(())
            }
            _ => Err(TimelineError::NotFound(repost)),
        }
    }

    /// Removes `id` from `owner`'s own items (`O(log n)` to find, a shift of the shorter
    /// side to remove).
    fn drop_own(&mut self, owner: u32, id: u64) {
        let before = counted(&self.own, owner);
        let Some(list) = self.own.value_mut(&owner) else {
            return;
        };
        if let Ok(at) = list.binary_search(&id) {
            list.remove(at);
            self.own_entries -= 1;
        }
        let after = if list.is_empty() { 0 } else { list_heap(list) };
        if list.is_empty() {
            self.own.remove(&owner);
        }
        self.list_bytes = self.list_bytes + after - before;
    }

    /// After `follower` followed `followee` in `graph`: backfills the followee's recent items
    /// into the follower's feed (unless the followee is large: those are fanned in).
    pub fn followed(&mut self, graph: &FollowerMap, follower: u32, followee: u32) {
        self.followed_planned(graph, follower, followee, None);
    }

    /// [`Timeline::followed`], using `plan` (made by [`FeedPlan::backfill`] before the write
    /// lock was taken) when the lists it was made from are still the ones here.
    pub fn followed_planned(
        &mut self,
        graph: &FollowerMap,
        follower: u32,
        followee: u32,
        plan: Option<FeedPlan>,
    ) {
        self.reclassify(graph, followee);
        if self.is_large(followee) {
            return;
        }
        let plan = match plan {
            Some(plan) if plan.still_fits(&self.feeds, follower, Some(&self.own), followee) => plan,
            _ => match self.backfill_of(follower, followee) {
                Some(inputs) => FeedPlan::backfill(inputs),
                None => return,
            },
        };
        self.install(follower, plan.result);
    }

    /// Replaces `user`'s feed by `ids`.
    fn install(&mut self, user: u32, ids: VecDeque<u64>) {
        let before = self.feeds.get(&user).map_or(0, |f| f.len());
        self.feed_entries = self.feed_entries + ids.len() - before;
        self.list_bytes = self.list_bytes + list_heap(&ids) - counted(&self.feeds, user);
        self.feeds.insert(user, Arc::new(ids));
    }

    /// Feed entries a follow of `followee` by `follower` would merge (its backfill and the
    /// follower's feed), and an unfollow would scan: for deciding where to run one.
    pub fn follow_work(&self, follower: u32, followee: u32) -> usize {
        let backfill = self
            .own
            .get(&followee)
            .map_or(0, |own| own.len().min(self.options.backfill));
        backfill + self.feeds.get(&follower).map_or(0, |f| f.len())
    }

    /// After `follower` unfollowed `followee`: removes the followee's posts and
    /// reposts from the follower's feed.
    pub fn unfollowed(&mut self, follower: u32, followee: u32) {
        self.unfollowed_planned(follower, followee, None);
    }

    /// [`Timeline::unfollowed`], using `plan` (made by [`FeedPlan::cleanup`] before the
    /// write lock was taken) when the feed it was made from is still the one here.
    pub fn unfollowed_planned(&mut self, follower: u32, followee: u32, plan: Option<FeedPlan>) {
        match plan {
            Some(plan) if plan.still_fits(&self.feeds, follower, None, followee) => {
                self.install(follower, plan.result);
            }
            _ => {
                let bytes = counted(&self.feeds, follower);
                let Some(feed) = self.feeds.value_mut(&follower) else {
                    return;
                };
                let records = &self.records;
                let before = feed.len();
                feed.retain(|id| source(records.get(id)) != Some(followee));
                self.feed_entries -= before - feed.len();
                self.list_bytes = self.list_bytes + list_heap(feed) - bytes;
            }
        }
    }

    /// Appends to `kept` the ids of `ids` that `followee` did not put into feeds (a step of
    /// [`FeedPlan::cleanup`], run under a read lock a slice of the feed at a time).
    pub fn keep_not_from(&self, ids: &[u64], followee: u32, kept: &mut VecDeque<u64>) {
        let records = &self.records;
        kept.extend(
            ids.iter()
                .filter(|id| source(records.get(id)) != Some(followee)),
        );
    }

    /// The follower's feed (shared, copy-on-write): what a [`FeedPlan`] starts from.
    pub fn feed_list(&self, user: u32) -> Option<Arc<VecDeque<u64>>> {
        self.feeds.get(&user).cloned()
    }

    /// Whether an item is visible: it exists, is not deleted, and neither is its post.
    fn visible(&self, id: u64) -> Option<Item> {
        match self.records.get(&id)? {
            Record::Post {
                deleted: false,
                pending: false,
                ..
            } => Some(Item::Post(id)),
            Record::Repost {
                post,
                reposter,
                deleted: false,
                pending: false,
            } => match self.records.get(post) {
                Some(Record::Post {
                    deleted: false,
                    pending: false,
                    ..
                }) => Some(Item::Repost(id, *post, *reposter)),
                _ => None,
            },
            _ => None,
        }
    }

    /// Up to `limit` items of `user`'s home timeline with ids below `before` (all when
    /// `None`), newest first: the user's feed merged with the items of the large authors the
    /// user follows, without duplicates. Also returns the id to pass as `before` for the next
    /// page (`None` at the end).
    ///
    /// The sources are merged through a heap (`O(log sources)` an id), and one call looks at
    /// no more than [`READ_WORK`] ids, for no longer than [`READ_TIME`]: when deleted or
    /// filtered items fill that much of the sources, the page comes back short (possibly
    /// empty) with a cursor to go on from, so that no read costs more than a bounded amount
    /// of work however many items it must skip.
    pub fn read(
        &self,
        graph: &FollowerMap,
        user: u32,
        before: Option<u64>,
        limit: usize,
    ) -> (Vec<Item>, Option<u64>) {
        let filter = Filter {
            viewer: Some(user),
            reply_rule: true,
            ..Filter::default()
        };
        self.read_filtered(graph, user, before, limit, &filter)
    }

    /// [`Timeline::read`] through `filter`, which also drops, for its viewer: items whose
    /// author or reposter the viewer mutes; items whose author, reposter, or (for a reply)
    /// parent's or root's author blocks the viewer or is blocked by them; and, with the reply
    /// rule, replies unless they continue their author's own thread (parent and root by the
    /// same author) or the viewer is, or follows, an author above them other than the
    /// reply's own (the parent's or the root's). Reposts of replies are not subject to the
    /// reply rule (the reposter is who the viewer follows). All of it is decided when the
    /// page is read, from the graph and the mutes and blocks at that moment.
    pub fn read_filtered(
        &self,
        graph: &FollowerMap,
        user: u32,
        before: Option<u64>,
        limit: usize,
        filter: &Filter,
    ) -> (Vec<Item>, Option<u64>) {
        let mut sources: Vec<&VecDeque<u64>> = Vec::new();
        if let Some(feed) = self.feeds.get(&user) {
            sources.push(feed);
        }
        if let Some(following) = graph.following_of(user) {
            // The large authors the user follows, from whichever side is smaller.
            let authors: Vec<u32> = if following.len() <= self.large.len() {
                following
                    .iter()
                    .filter(|&a| self.large.contains(a))
                    .collect()
            } else {
                self.large
                    .iter()
                    .filter(|&a| following.contains(a))
                    .collect()
            };
            for author in authors {
                if let Some(own) = self.own.get(&author) {
                    sources.push(own);
                }
            }
        }
        self.merge(graph, &sources, before, limit, filter)
    }

    /// `author`'s own posts and reposts, newest first, through `filter` (Bluesky's author
    /// feed), paged as [`Timeline::read`].
    pub fn author_feed(
        &self,
        graph: &FollowerMap,
        author: u32,
        before: Option<u64>,
        limit: usize,
        filter: &Filter,
    ) -> (Vec<Item>, Option<u64>) {
        let sources: Vec<&VecDeque<u64>> =
            self.own.get(&author).map(|l| &**l).into_iter().collect();
        self.merge(graph, &sources, before, limit, filter)
    }

    /// The posts and reposts of `members`, newest first, through `filter` (a list feed),
    /// paged as [`Timeline::read`].
    pub fn list_feed(
        &self,
        graph: &FollowerMap,
        members: &[u32],
        before: Option<u64>,
        limit: usize,
        filter: &Filter,
    ) -> (Vec<Item>, Option<u64>) {
        let mut members = members.to_vec();
        members.sort_unstable();
        members.dedup();
        let sources: Vec<&VecDeque<u64>> = members
            .iter()
            .filter_map(|m| self.own.get(m).map(|l| &**l))
            .collect();
        self.merge(graph, &sources, before, limit, filter)
    }

    /// Whether `filter` lets the visible `item` through; `seen` holds the viewer's own mute
    /// and block sets, looked up once per read.
    fn passes(&self, graph: &FollowerMap, item: &Item, filter: &Filter, seen: &Seen) -> bool {
        let (post, reposter) = match *item {
            Item::Post(post) => (post, None),
            Item::Repost(_, post, reposter) => (post, Some(reposter)),
        };
        if filter.exclude_reposts && reposter.is_some() {
            return false;
        }
        let kind = if self.kinds.is_empty() {
            PostKind::default()
        } else {
            self.kind(post)
        };
        if (filter.exclude_replies && kind.reply.is_some())
            || (filter.exclude_quotes && kind.quote_of.is_some())
        {
            return false;
        }
        let Some(viewer) = filter.viewer else {
            return true;
        };
        let author = source(self.records.get(&post)).unwrap_or(u32::MAX);
        let people = [Some(author), reposter];
        let thread = kind.reply.map(|r| [r.parent_author, r.root_author]);
        let muted = |u: u32| seen.mutes.is_some_and(|m| m.contains(u));
        // Blocked either way: the viewer's own blocks, then (only if anyone blocks anyone)
        // whether `u` blocks the viewer.
        let blocked = |u: u32| {
            seen.blocks.is_some_and(|b| b.contains(u))
                || (!self.blocks.is_empty() && self.relates(Relation::Block, u, viewer))
        };
        if people.iter().flatten().any(|&u| muted(u) || blocked(u))
            || thread.iter().flatten().any(|&u| blocked(u))
        {
            return false;
        }
        if let (true, None, Some(thread)) = (filter.reply_rule, reposter, thread) {
            let mut others = thread.iter().filter(|&&u| u != author).peekable();
            if others.peek().is_some() && !others.any(|&u| u == viewer || graph.follows(viewer, u))
            {
                return false;
            }
        }
        true
    }

    /// Up to `limit` items of the merged `sources` (ascending id lists) below `before`,
    /// newest first, visible and through `filter`; and the cursor of the next page.
    fn merge(
        &self,
        graph: &FollowerMap,
        sources: &[&VecDeque<u64>],
        before: Option<u64>,
        limit: usize,
        filter: &Filter,
    ) -> (Vec<Item>, Option<u64>) {
        let below = |list: &VecDeque<u64>| -> usize {
            match before {
                None => list.len(),
                Some(b) => list.partition_point(|&id| id < b),
            }
        };
        // (next id, source, its index): the newest unread id of each source on top.
        let mut heap = std::collections::BinaryHeap::with_capacity(sources.len());
        for (k, list) in sources.iter().enumerate() {
            let pos = below(list);
            if pos > 0 {
                heap.push((list[pos - 1], k, pos - 1));
            }
        }
        let since = filter.since;
        let pop = |heap: &mut std::collections::BinaryHeap<(u64, usize, usize)>| {
            let (id, k, at) = heap.pop()?;
            if since.is_some_and(|s| id <= s) {
                heap.clear(); // newest first: everything after is as old
                return None;
            }
            if at > 0 {
                heap.push((sources[k][at - 1], k, at - 1));
            }
            Some(id)
        };
        let seen = Seen {
            mutes: filter.viewer.and_then(|v| self.mutes.get(&v)).map(|b| &**b),
            blocks: filter
                .viewer
                .and_then(|v| self.blocks.get(&v))
                .map(|b| &**b),
        };
        let shown = |id: u64| {
            self.visible(id)
                .filter(|item| self.passes(graph, item, filter, &seen))
        };
        let began = std::time::Instant::now();
        let mut items = Vec::with_capacity(limit);
        let mut last: Option<u64> = None;
        let mut work = 0;
        while items.len() < limit {
            if work == READ_WORK || (work % 64 == 63 && began.elapsed() > READ_TIME) {
                // Out of work for this call: go on below the last id looked at.
                return (items, last);
            }
            let Some(id) = pop(&mut heap) else {
                return (items, None);
            };
            work += 1;
            if last == Some(id) {
                continue; // the same item from two sources
            }
            last = Some(id);
            if let Some(item) = shown(id) {
                items.push(item);
            }
        }
        // A full page: is there anything after it? (Looked for within the same bound.)
        let next = last;
        while work < READ_WORK {
            match pop(&mut heap) {
                None => return (items, None),
                Some(id) if Some(id) == last => {}
                Some(id) if shown(id).is_some() => return (items, next),
                Some(id) => last = Some(id),
            }
            work += 1;
        }
        (items, next)
    }
}

/// Most ids one [`Timeline::read`] looks at (visible or not): the bound on a read's work.
pub const READ_WORK: usize = 4096;

/// Longest a read goes on looking for items (checked every 64 ids) before it returns a short
/// page and a cursor: filters and cold caches can make 4096 ids cost more than a normal
/// scheduler may spend.
pub const READ_TIME: std::time::Duration = std::time::Duration::from_micros(300);

/// A reader's own mute and block sets, looked up once per read.
struct Seen<'a> {
    mutes: Option<&'a Bits>,
    blocks: Option<&'a Bits>,
}

impl Timeline {
    /// Writes the options, the records (ascending ids), the feeds and own lists (ascending
    /// users, each an ascending list of ids) and the large authors.
    pub(crate) fn put_payload(&self, out: &mut Vec<u8>) {
        out.put_varint(self.options.feed_capacity as u64);
        out.put_varint(self.options.fanout_limit);
        out.put_varint(self.options.backfill as u64);
        let ids = self.records.sorted_keys();
        out.put_varint(ids.len() as u64);
        for id in ids {
            out.put_u64(id);
            // The tag: bit 0 deleted, bit 1 a repost, bit 2 pending.
            let flags = |deleted: bool, pending: bool| u8::from(deleted) | u8::from(pending) << 2;
            match self.records.get(&id) {
                Some(&Record::Post {
                    author,
                    deleted,
                    pending,
                }) => {
                    // Bit 3: a kind follows (its flag byte, then its fields).
                    let kind = self.kind(id);
                    out.put_u8(flags(deleted, pending) | u8::from(!kind.is_plain()) << 3);
                    out.put_u32(author);
                    if !kind.is_plain() {
                        kind.encode(out);
                    }
                }
                Some(&Record::Repost {
                    post,
                    reposter,
                    deleted,
                    pending,
                }) => {
                    out.put_u8(2 | flags(deleted, pending));
                    out.put_u32(reposter);
                    out.put_u64(post);
                }
                None => {}
            }
        }
        for lists in [&self.feeds, &self.own] {
            let users = lists.sorted_keys();
            out.put_varint(users.len() as u64);
            for user in users {
                out.put_u32(user);
                let list = lists.get(&user);
                out.put_varint(list.map_or(0, |l| l.len()) as u64);
                for &id in list.into_iter().flat_map(|l| l.iter()) {
                    out.put_u64(id);
                }
            }
        }
        put_bitmap(out, &self.large);
        // Mutes, then blocks: users ascending, each with a bitmap (absent from snapshots
        // written before there were any: they end after the large authors).
        for map in [&self.mutes, &self.blocks] {
            let users = map.sorted_keys();
            out.put_varint(users.len() as u64);
            for user in users {
                out.put_u32(user);
                if let Some(bits) = map.get(&user) {
                    put_bitmap(out, bits);
                }
            }
        }
    }

    /// Reads what [`Timeline::put_payload`] wrote, checking that ids ascend and are unique,
    /// that reposts point at posts, that lists fit the capacity and hold only known items,
    /// and that an author's own list holds only their items.
    pub(crate) fn get_payload(r: &mut Reader) -> Result<Timeline, DecodeError> {
        let options = Options {
            feed_capacity: r.varint()? as usize,
            fanout_limit: r.varint()?,
            backfill: r.varint()? as usize,
        };
        if !(1..=MAX_FEED_CAPACITY).contains(&options.feed_capacity) {
            return invalid("feed capacity out of range");
        }
        let mut tl = Timeline::new(options);
        let n = r.count(13)?;
        let mut last = None;
        for _ in 0..n {
            let id = r.u64()?;
            if last.is_some_and(|l| l >= id) {
                return invalid("record ids do not ascend");
            }
            last = Some(id);
            let tag = r.u8()?;
            let (deleted, pending) = (tag & 1 == 1, tag & 4 == 4);
            let record = match tag & !5 {
                0 | 8 => {
                    let author = r.u32()?;
                    if tag & 8 == 8 {
                        let kind = PostKind::decode(r)?;
                        if kind.is_plain() {
                            return invalid(format!("post {id}: a plain kind written"));
                        }
                        tl.kinds.insert(id, kind);
                    }
                    Record::Post {
                        author,
                        deleted,
                        pending,
                    }
                }
                2 => {
                    let reposter = r.u32()?;
                    let post = r.u64()?;
                    tl.reposts += 1;
                    Record::Repost {
                        post,
                        reposter,
                        deleted,
                        pending,
                    }
                }
                _ => return invalid(format!("record {id}: unknown tag {tag}")),
            };
            tl.records.insert(id, record);
        }
        // Ids are any u64: a repost may have a smaller id than its post.
        for (id, record) in tl.records.iter() {
            if let Record::Repost { post, .. } = record {
                if !matches!(tl.records.get(post), Some(Record::Post { .. })) {
                    return invalid(format!("repost {id} of a missing post {post}"));
                }
            }
        }
        for own in [false, true] {
            let users = r.count(5)?;
            let mut last = None;
            for _ in 0..users {
                let user = r.u32()?;
                if last.is_some_and(|l| l >= user) {
                    return invalid("users do not ascend");
                }
                last = Some(user);
                let len = r.count(8)?;
                if len > options.feed_capacity {
                    return invalid(format!("user {user}: list longer than the capacity"));
                }
                let mut list = VecDeque::with_capacity(len);
                for _ in 0..len {
                    let id = r.u64()?;
                    if list.back().is_some_and(|&l| l >= id) {
                        return invalid(format!("user {user}: ids do not ascend"));
                    }
                    let record = tl.records.get(&id);
                    if record.is_none() || (own && source(record) != Some(user)) {
                        return invalid(format!("user {user}: item {id} is not theirs"));
                    }
                    list.push_back(id);
                }
                tl.list_bytes += list_heap(&list);
                if own {
                    tl.own_entries += list.len();
                    tl.own.insert(user, Arc::new(list));
                } else {
                    tl.feed_entries += list.len();
                    tl.feeds.insert(user, Arc::new(list));
                }
            }
        }
        tl.large = Bits::exact(get_bitmap(r)?);
        if r.remaining() > 0 {
            for relation in [Relation::Mute, Relation::Block] {
                let users = r.count(5)?;
                let mut last = None;
                for _ in 0..users {
                    let user = r.u32()?;
                    if last.is_some_and(|l| l >= user) {
                        return invalid("users do not ascend");
                    }
                    last = Some(user);
                    let bits = Bits::exact(get_bitmap(r)?);
                    if bits.is_empty() {
                        return invalid(format!("user {user}: an empty bitmap"));
                    }
                    tl.relation_bytes += bits.heap_bytes();
                    match relation {
                        Relation::Mute => tl.mutes.insert(user, Arc::new(bits)),
                        Relation::Block => tl.blocks.insert(user, Arc::new(bits)),
                    };
                }
            }
        }
        Ok(tl)
    }
}

/// Who put an item into feeds (see [`Record::source`]).
fn source(record: Option<&Record>) -> Option<u32> {
    record.map(Record::source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_what_the_allocator_holds() {
        use crate::testing::memory_within_10pct;
        // 5,000 users following 20 others each (user 0 by everyone: large), posts, reposts,
        // deletes, unfollows (cleanups), a handoff, and a snapshot alive during changes.
        let mut graph = FollowerMap::new();
        let mut state = 3u64;
        let mut next = move |n: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % n) as u32
        };
        for u in 1..5000u32 {
            graph.follow(u, 0).unwrap();
            for _ in 0..20 {
                let v = next(5000);
                if v != u {
                    graph.follow(u, v).unwrap();
                }
            }
        }
        let ops: Vec<(u32, u32)> = (0..60_000).map(|_| (next(10), next(5000))).collect();
        let run = |tl: &mut Timeline, graph: &mut FollowerMap| {
            let mut snapshot = None;
            for (i, &(op, u)) in ops.iter().enumerate() {
                let id = i as u64 + 1;
                match op {
                    0..=5 => {
                        tl.insert_post(graph, id, u).unwrap();
                    }
                    6 => {
                        let _ = tl.insert_repost(graph, id, u, id / 2 + 1);
                    }
                    7 => {
                        let _ = tl.delete_post(id / 3 + 1);
                    }
                    8 => {
                        let v = (u * 7 + 1) % 5000;
                        if graph.unfollow(u, v) {
                            tl.unfollowed(u, v);
                        } else if u != v && graph.follow(u, v).unwrap() {
                            tl.followed(graph, u, v);
                        }
                    }
                    _ => {
                        if let Some(ids) = tl.take_feed(u) {
                            tl.merge_feed(u, &ids);
                        }
                    }
                }
                if i % 20_000 == 0 {
                    snapshot = Some(tl.clone()); // dropped at the next one, or the end
                }
            }
            drop(snapshot);
        };
        let (tl, ratio) = memory_within_10pct(
            "a timeline after 60,000 changes",
            || {
                let mut tl = Timeline::new(options(300, 1000));
                run(&mut tl, &mut graph);
                tl
            },
            Timeline::memory,
        );
        let mut bytes = Vec::new();
        tl.put_payload(&mut bytes);
        let (_, decoded) = memory_within_10pct(
            "decoded",
            || Timeline::get_payload(&mut Reader::new(&bytes)).unwrap(),
            Timeline::memory,
        );
        eprintln!("memory()/allocated: built {ratio:.3}, decoded {decoded:.3}");
    }

    fn options(feed_capacity: usize, fanout_limit: u64) -> Options {
        Options {
            feed_capacity,
            fanout_limit,
            backfill: 2,
        }
    }

    #[test]
    fn fan_out_fan_in_and_cursors() {
        let mut graph = FollowerMap::new();
        let mut tl = Timeline::new(options(3, 1));
        graph.follow(1, 10).unwrap();
        tl.followed(&graph, 1, 10);
        assert_eq!(tl.insert_post(&graph, 100, 10), Ok(2)); // author's feed and follower's
        graph.follow(2, 10).unwrap();
        tl.followed(&graph, 2, 10); // 10 now has 2 followers: large, fanned in
        assert!(tl.is_large(10));
        assert_eq!(tl.insert_post(&graph, 101, 10), Ok(1));
        let (items, next) = tl.read(&graph, 1, None, 10);
        assert_eq!(items, vec![Item::Post(101), Item::Post(100)]);
        assert_eq!(next, None);
        let (items, next) = tl.read(&graph, 2, None, 1);
        assert_eq!((items, next), (vec![Item::Post(101)], Some(101)));
        assert_eq!(tl.read(&graph, 2, Some(101), 1).0, vec![Item::Post(100)]);
        assert_eq!(tl.insert_repost(&graph, 102, 1, 100), Ok(1));
        assert_eq!(
            tl.read(&graph, 1, None, 1).0,
            vec![Item::Repost(102, 100, 1)]
        );
        tl.delete_post(100).unwrap();
        assert_eq!(tl.read(&graph, 1, None, 10).0, vec![Item::Post(101)]);
        assert_eq!(
            tl.insert_repost(&graph, 103, 1, 100),
            Err(TimelineError::UnknownPost(100))
        );
        assert_eq!(
            tl.insert_post(&graph, 101, 3),
            Err(TimelineError::DuplicateId(101))
        );
    }

    #[test]
    fn feeds_keep_the_newest_items() {
        let graph = FollowerMap::new();
        let mut tl = Timeline::new(options(3, 100));
        for id in [5, 1, 9, 7, 3] {
            tl.insert_post(&graph, id, 1).unwrap();
        }
        let ids: Vec<Item> = tl.read(&graph, 1, None, 10).0;
        assert_eq!(ids, vec![Item::Post(9), Item::Post(7), Item::Post(5)]);
        assert_eq!(tl.stats().feed_entries, 3);
    }

    #[test]
    fn a_read_over_many_deletes_does_bounded_work_and_pages_on() {
        // 30 large authors, each with many deleted posts above one visible post.
        let mut graph = FollowerMap::new();
        let mut tl = Timeline::new(Options {
            feed_capacity: 100_000,
            fanout_limit: 0,
            backfill: 0,
        });
        let authors = 30u32;
        for a in 1..=authors {
            graph.follow(1000, a).unwrap();
            tl.followed(&graph, 1000, a);
            tl.insert_post(&graph, u64::from(a), a).unwrap();
        }
        let mut id = 1000;
        for _ in 0..1000 {
            for a in 1..=authors {
                id += 1;
                tl.insert_post(&graph, id, a).unwrap();
                tl.delete_post(id).unwrap();
            }
        }
        // Deleted posts left their authors' lists: the 30 visible posts come in one page.
        let (items, next) = tl.read(&graph, 1000, None, 100);
        assert_eq!(items.len(), authors as usize);
        assert_eq!(next, None);
        // Feeds keep deleted ids until pushed out: a reader's own feed full of them.
        let mut tl = Timeline::new(options(100_000, 1_000_000));
        tl.insert_post(&graph, 1, 7).unwrap();
        for id in 2..20_000u64 {
            tl.insert_post(&graph, id, 7).unwrap();
        }
        for id in 2..20_000u64 {
            tl.delete_post(id).unwrap();
        }
        let mut pages = 0;
        let mut cursor = None;
        let mut seen = Vec::new();
        loop {
            let (items, next) = tl.read(&graph, 7, cursor, 10);
            pages += 1;
            seen.extend(items);
            match next {
                None => break,
                Some(c) => cursor = Some(c),
            }
        }
        assert_eq!(seen, vec![Item::Post(1)]);
        // Each call looked at no more than READ_WORK ids of the 20,000.
        assert!(pages >= 20_000 / READ_WORK, "{pages} pages");
    }

    #[test]
    fn backfill_merges_as_pushing_one_by_one_would() {
        for (capacity, backfill, feed, own) in [
            (5usize, 3usize, vec![1u64, 4, 9], vec![2u64, 4, 6, 8, 10]),
            (3, 10, vec![20, 30], vec![1, 2, 3, 25]),
            (4, 2, vec![], vec![1, 2, 3]),
            (
                100,
                100,
                (0..50).map(|i| i * 2).collect(),
                (0..80).map(|i| i * 3).collect(),
            ),
        ] {
            let mut graph = FollowerMap::new();
            let mut tl = Timeline::new(Options {
                feed_capacity: capacity,
                fanout_limit: 1000,
                backfill,
            });
            for &id in &own {
                tl.insert_post(&graph, id + 1_000_000, 2).unwrap();
            }
            for &id in &feed {
                tl.insert_post(&graph, id, 1).unwrap();
            }
            graph.follow(1, 2).unwrap();
            tl.followed(&graph, 1, 2);
            // The model: push the newest `backfill` own ids one at a time.
            let mut model: VecDeque<u64> = VecDeque::new();
            for &id in &feed {
                push_bounded(&mut model, id, capacity);
            }
            let own_ids: Vec<u64> = own.iter().map(|i| i + 1_000_000).collect();
            for &id in own_ids.iter().rev().take(backfill) {
                push_bounded(&mut model, id, capacity);
            }
            assert_eq!(tl.feeds.get(&1).map(|f| &**f), Some(&model));
            let entries: usize = tl.feeds.iter().map(|(_, f)| f.len()).sum();
            assert_eq!(tl.stats().feed_entries, entries);
        }
    }
}
