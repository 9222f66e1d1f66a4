//! NIFs behind `Strata.Timeline` (prefix `timeline_`).
//!
//! A timeline resource holds its state and a reference to the `FollowerMap` resource whose
//! graph it reads (which Elixir code may hold and use too). Locks are taken graph first,
//! then timeline.

use std::borrow::Cow;
use std::time::Instant;

use parking_lot::RwLockReadGuard;
use rustler::{Binary, Encoder, Env, NifResult, NifStruct, Resource, ResourceArc, Term};
use strata_core::follower_map::GraphError;
use strata_core::op::{Delivery, EdgeOp, Encode, FeedOp, GraphOp};
use strata_core::persist::{Persist, TimelineState};
use strata_core::timeline::{
    FeedPlan, Filter, Item, Options, PostKind, Relation, Reply, TimelineError, FANOUT_SLICE,
    MAX_FEED_CAPACITY,
};
use strata_core::{FollowerMap, Timeline};

use crate::durable::{self, JournalResource};
use crate::error::{arg, bad_arg};
use crate::follower_map::{self_follow, user, FollowerMapHandle, FollowerMapResource};
use crate::resource::{Log, Shared};
use crate::runtime::{consume_since, twin_nifs, yielding_nif, On, Slicer};

/// Most items one read returns.
const MAX_READ: usize = 100;

pub struct TimelineResource {
    graph: ResourceArc<FollowerMapResource>,
    state: Shared<Timeline>,
}

#[rustler::resource_impl]
impl Resource for TimelineResource {}

#[derive(NifStruct)]
#[module = "Strata.Timeline"]
pub struct TimelineHandle {
    resource: ResourceArc<TimelineResource>,
    follower_map: FollowerMapHandle,
    journal: Option<ResourceArc<JournalResource>>,
}

/// A timeline handle over a state and graph; a durable timeline owns its graph, which only
/// the timeline's own functions (recorded in its journal) may change.
fn wrap(
    state: TimelineState,
    journal: Option<std::sync::Arc<durable::SharedJournal>>,
) -> TimelineHandle {
    let (graph_log, log) = match &journal {
        Some(j) => (Log::Owned("Strata.Timeline"), Log::Journal(j.clone())),
        None => (Log::Off, Log::Off),
    };
    let graph = ResourceArc::new(Shared::with_log(state.graph, graph_log));
    TimelineHandle {
        resource: ResourceArc::new(TimelineResource {
            graph: graph.clone(),
            state: Shared::with_log(state.timeline, log),
        }),
        follower_map: FollowerMapHandle::plain(graph),
        journal: journal.map(|j| ResourceArc::new(JournalResource(j))),
    }
}

/// An in-memory timeline from a snapshot. A snapshot taken from a durable timeline's files
/// may hold items whose fan-out the journal after it completes: here they are completed.
fn wrap_loaded(mut state: TimelineState) -> TimelineHandle {
    let _ = state.complete_pending(|_| Ok::<(), ()>(()));
    wrap(state, None)
}

fn options(feed_capacity: Term, fanout_limit: Term, backfill: Term) -> NifResult<Options> {
    let options = Options {
        feed_capacity: arg(feed_capacity, "feed_capacity", "a positive integer")?,
        fanout_limit: arg(fanout_limit, "fanout_limit", "a non-negative integer")?,
        backfill: arg(backfill, "backfill", "a non-negative integer")?,
    };
    if options.feed_capacity == 0 || options.feed_capacity > MAX_FEED_CAPACITY {
        return Err(bad_arg(format!(
            "argument feed_capacity: expected an integer in 1..{MAX_FEED_CAPACITY}"
        )));
    }
    Ok(options)
}

fn handle(term: Term) -> NifResult<ResourceArc<TimelineResource>> {
    arg::<TimelineHandle>(term, "timeline", "a %Strata.Timeline{}").map(|h| h.resource)
}

fn item_id(term: Term, name: &str) -> NifResult<u64> {
    arg(term, name, "an id (an integer in 0..18446744073709551615)")
}

fn error<'a>(env: Env<'a>, e: TimelineError) -> Term<'a> {
    let reason = match e {
        TimelineError::DuplicateId(_) => crate::duplicate_id(),
        TimelineError::UnknownPost(_) => crate::unknown_post(),
        TimelineError::NotFound(_) => crate::not_found(),
    };
    (crate::error(), reason).encode(env)
}

fn result<'a, T: Encoder>(env: Env<'a>, r: Result<T, TimelineError>) -> Term<'a> {
    match r {
        Ok(v) => v.encode(env),
        Err(e) => error(env, e),
    }
}

#[rustler::nif]
fn timeline_new<'a>(
    env: Env<'a>,
    map: Term<'a>,
    feed_capacity: Term<'a>,
    fanout_limit: Term<'a>,
    backfill: Term<'a>,
) -> NifResult<Term<'a>> {
    let follower_map: FollowerMapHandle = arg(map, "follower_map", "a %Strata.FollowerMap{}")?;
    // A graph owned by a durable timeline changes only through that timeline's journal:
    // a second timeline following and unfollowing on it would change it unrecorded.
    if let Some(owner) = follower_map.resource.owner() {
        return Err(bad_arg(format!(
            "argument follower_map: belongs to a durable {owner}, whose journal alone records \
             its changes; give this timeline a graph of its own"
        )));
    }
    let options = options(feed_capacity, fanout_limit, backfill)?;
    let resource = ResourceArc::new(TimelineResource {
        graph: follower_map.resource.clone(),
        state: Shared::new(Timeline::new(options)),
    });
    Ok(TimelineHandle {
        resource,
        follower_map,
        journal: None,
    }
    .encode(env))
}

/// Posts whose fan-out reaches more followers than this run on a dirty scheduler.
const DIRTY_FANOUT: u64 = 1000;

/// Whether posting as `author` would fan out to more than `DIRTY_FANOUT` feeds.
fn heavy_fanout(tl: Term, author: Term) -> bool {
    let (Ok(tl), Ok(author)) = (handle(tl), author.decode::<u32>()) else {
        return false; // the call itself raises, naming the argument
    };
    // A lock held by another call's slice: wait for it on the dirty twin.
    let Ok(graph) = tl.graph.read() else {
        return true;
    };
    let Ok(state) = tl.state.read() else {
        return true;
    };
    state.fan_out_size(&graph, author) > DIRTY_FANOUT
}

/// Applies a change to the feeds under the graph's read lock and the timeline's write lock,
/// recorded first.
fn apply_feed(tl: &TimelineResource, op: FeedOp) -> NifResult<Result<usize, TimelineError>> {
    let graph = tl.graph.read()?;
    tl.state.write_logged(|t, log| {
        log.record(&op)?;
        Ok(op.apply(&graph, t))
    })
}

/// [`apply_feed`] for one slice of a long operation (see `Shared::write_slice`).
fn apply_slice(tl: &TimelineResource, op: FeedOp) -> NifResult<Result<usize, TimelineError>> {
    let graph = tl.graph.read()?;
    let applied = tl.state.write_slice(|t, log| {
        log.record(&op)?;
        Ok(op.apply(&graph, t))
    });
    RwLockReadGuard::unlock_fair(graph);
    applied
}

/// Records a post or repost (`whole`) and fans it out. When it reaches more than
/// `FANOUT_SLICE` followers it goes in steps instead, each recorded and applied under the
/// locks on its own, the locks given up between them: `begin` records it (invisible to
/// readers) in its author's lists, each slice pushes it into `FANOUT_SLICE` followers' feeds
/// (the followers in the graph at that moment), and `Finish` makes it visible to every
/// reader at once. Returns how many feeds it entered.
fn publish(
    tl: &TimelineResource,
    whole: FeedOp,
    begin: FeedOp,
    id: u64,
    author: u32,
) -> NifResult<Result<usize, TimelineError>> {
    let size = {
        let graph = tl.graph.read()?;
        let size = tl.state.read()?.fan_out_size(&graph, author);
        size
    };
    if size <= FANOUT_SLICE as u64 {
        return apply_feed(tl, whole);
    }
    let mut touched = match apply_feed(tl, begin)? {
        Ok(n) => n,
        Err(e) => return Ok(Err(e)),
    };
    let (mut from, mut slicer) = (0, Slicer::new(FANOUT_SLICE));
    loop {
        let graph = tl.graph.read()?;
        let to = tl.state.write_slice(|t, log| {
            let began = Instant::now();
            let to = t.fan_out_slice_end(&graph, id, from, slicer.size());
            let op = FeedOp::FanOut(id, from, to);
            log.record(&op)?;
            touched += op.apply(&graph, t).unwrap_or(0);
            slicer.took(began.elapsed());
            Ok(to)
        })?;
        RwLockReadGuard::unlock_fair(graph);
        if to == u32::MAX {
            break;
        }
        from = to + 1;
    }
    let _ = apply_feed(tl, FeedOp::Finish(id))?;
    Ok(Ok(touched))
}

/// Records a post and fans it out (see `publish`); dirty past `DIRTY_FANOUT` followers.
fn insert_post<'a>(
    env: Env<'a>,
    on: On,
    tl: Term<'a>,
    post: Term<'a>,
    author: Term<'a>,
    kind: Term<'a>,
) -> NifResult<Term<'a>> {
    let args = [tl, post, author, kind];
    if let Some(moved) = on.moves(env, &args, || heavy_fanout(tl, author)) {
        return Ok(moved);
    }
    let began = Instant::now();
    let tl = handle(tl)?;
    let (post, author) = (item_id(post, "post_id")?, user(author, "author_id")?);
    let kind = post_kind(kind)?;
    let (whole, begin) = if kind.is_plain() {
        (FeedOp::Post(post, author), FeedOp::BeginPost(post, author))
    } else {
        (
            FeedOp::PostKind(post, author, kind),
            FeedOp::BeginPostKind(post, author, kind),
        )
    };
    let r = publish(&tl, whole, begin, post, author)?;
    consume_since(env, began);
    Ok(result(env, r))
}

twin_nifs!(
    timeline_insert_post,
    timeline_insert_post_dirty,
    insert_post,
    (tl, post, author, kind)
);

/// `nil` (a plain post) or `{reply, quote_of}`: `reply` nil or `{parent_id, parent_author,
/// root_id, root_author}`, `quote_of` nil or a post id.
fn post_kind(term: Term) -> NifResult<PostKind> {
    if term == crate::nil().encode(term.get_env()) {
        return Ok(PostKind::default());
    }
    type Raw = (Option<(u64, u32, u64, u32)>, Option<u64>);
    let (reply, quote_of): Raw = arg(
        term,
        "kind",
        "nil or {nil | {parent_id, parent_author, root_id, root_author}, nil | quote_id}",
    )?;
    Ok(PostKind {
        reply: reply.map(|(parent, parent_author, root, root_author)| Reply {
            parent,
            parent_author,
            root,
            root_author,
        }),
        quote_of,
    })
}

yielding_nif!(
    timeline_relate,
    timeline_relate_body,
    (tl, relation, who, other, on)
);

/// `user` mutes or blocks `other` (`relation`), or stops (`on` false); whether it changed.
fn timeline_relate_body<'a>(
    env: Env<'a>,
    tl: Term<'a>,
    relation: Term<'a>,
    who: Term<'a>,
    other: Term<'a>,
    on: Term<'a>,
) -> NifResult<Term<'a>> {
    let tl = handle(tl)?;
    let relation = if relation == crate::mute().encode(env) {
        Relation::Mute
    } else if relation == crate::block().encode(env) {
        Relation::Block
    } else {
        return Err(bad_arg("argument relation: expected :mute or :block"));
    };
    let (who, other) = (user(who, "user_id")?, user(other, "other_id")?);
    let on: bool = arg(on, "on", "a boolean")?;
    let op = FeedOp::Relate(relation, who, other, on);
    // Only a change is recorded (a repeated mute is not journaled again).
    let changed = {
        let graph = tl.graph.read()?;
        tl.state.write_logged(|t, log| {
            if t.relates(relation, who, other) == on {
                return Ok(false);
            }
            log.record(&op)?;
            Ok(op.apply(&graph, t).is_ok_and(|n| n > 0))
        })?
    };
    Ok(changed.encode(env))
}

fn insert_repost<'a>(
    env: Env<'a>,
    on: On,
    tl: Term<'a>,
    repost: Term<'a>,
    reposter: Term<'a>,
    post: Term<'a>,
) -> NifResult<Term<'a>> {
    let args = [tl, repost, reposter, post];
    if let Some(moved) = on.moves(env, &args, || heavy_fanout(tl, reposter)) {
        return Ok(moved);
    }
    let began = Instant::now();
    let tl = handle(tl)?;
    let repost = item_id(repost, "repost_id")?;
    let reposter = user(reposter, "reposter_id")?;
    let post = item_id(post, "post_id")?;
    let whole = FeedOp::Repost(repost, reposter, post);
    let begin = FeedOp::BeginRepost(repost, reposter, post);
    let r = publish(&tl, whole, begin, repost, reposter)?;
    consume_since(env, began);
    Ok(result(env, r))
}

twin_nifs!(
    timeline_insert_repost,
    timeline_insert_repost_dirty,
    insert_repost,
    (tl, repost, reposter, post)
);

yielding_nif!(timeline_delete_post, timeline_delete_post_body, (tl, post));

fn timeline_delete_post_body<'a>(
    env: Env<'a>,
    tl: Term<'a>,
    post: Term<'a>,
) -> NifResult<Term<'a>> {
    let tl = handle(tl)?;
    let post = item_id(post, "post_id")?;
    let r = apply_feed(&tl, FeedOp::DeletePost(post))?.map(|_| crate::ok());
    Ok(result(env, r))
}

yielding_nif!(
    timeline_delete_repost,
    timeline_delete_repost_body,
    (tl, repost)
);

fn timeline_delete_repost_body<'a>(
    env: Env<'a>,
    tl: Term<'a>,
    repost: Term<'a>,
) -> NifResult<Term<'a>> {
    let tl = handle(tl)?;
    let repost = item_id(repost, "repost_id")?;
    let r = apply_feed(&tl, FeedOp::DeleteRepost(repost))?.map(|_| crate::ok());
    Ok(result(env, r))
}

/// Follows and backfills the followee's recent items (at most `backfill` of them). The graph
/// and the timeline change under both write locks (graph first), recorded once: in the
/// timeline's journal if it is durable, else in the graph's if the graph is.
fn follow_here<'a>(
    env: Env<'a>,
    on: On,
    tl: Term<'a>,
    follower: Term<'a>,
    followee: Term<'a>,
) -> NifResult<Term<'a>> {
    feed_edit(env, on, [tl, follower, followee], |env| {
        follow(env, tl, follower, followee, true)
    })
}

/// A follow or unfollow: here, or as its dirty twin past `DIRTY_FEED_WORK` feed entries.
fn feed_edit<'a>(
    env: Env<'a>,
    on: On,
    args: [Term<'a>; 3],
    edit: impl FnOnce(Env<'a>) -> NifResult<bool>,
) -> NifResult<Term<'a>> {
    let [tl, follower, followee] = args;
    if let Some(moved) = on.moves(env, &args, || heavy_follow(tl, follower, followee)) {
        return Ok(moved);
    }
    edit(env).map(|changed| changed.encode(env))
}

twin_nifs!(
    timeline_follow,
    timeline_follow_dirty,
    follow_here,
    (tl, follower, followee)
);

/// Feed entries past which a follow's backfill merge or an unfollow's scan runs dirty (about
/// 100 µs of work at this size; 100,000 entries took ~0.9 ms).
const DIRTY_FEED_WORK: usize = 10_000;

fn heavy_follow(tl: Term, follower: Term, followee: Term) -> bool {
    let (Ok(tl), Ok(a), Ok(b)) = (
        handle(tl),
        follower.decode::<u32>(),
        followee.decode::<u32>(),
    ) else {
        return false; // the call itself raises, naming the argument
    };
    let Ok(state) = tl.state.read() else {
        return true; // a lock held by another call's slice: wait for it on the dirty twin
    };
    state.follow_work(a, b) > DIRTY_FEED_WORK
}

yielding_nif!(
    timeline_follow_edge,
    timeline_follow_edge_body,
    (tl, follower, followee)
);

/// A follow whose follower lives on another node of a cluster: the graph (and the large-author
/// classification) changes here, no feed does.
fn timeline_follow_edge_body<'a>(
    env: Env<'a>,
    tl: Term<'a>,
    follower: Term<'a>,
    followee: Term<'a>,
) -> NifResult<bool> {
    follow(env, tl, follower, followee, false)
}

fn follow(env: Env, tl: Term, follower: Term, followee: Term, feed_here: bool) -> NifResult<bool> {
    let began = Instant::now();
    let tl = handle(tl)?;
    let (a, b) = (user(follower, "follower")?, user(followee, "followee")?);
    if a == b {
        return Err(self_follow(GraphError::SelfFollow(a)));
    }
    let op = if feed_here {
        EdgeOp::Follow(a, b)
    } else {
        EdgeOp::FollowEdge(a, b)
    };
    if tl.graph.read()?.follows(a, b) {
        return Ok(false);
    }
    // A large backfill is merged before the write locks are taken (see `FeedPlan`).
    let inputs = match feed_here {
        true => {
            let state = tl.state.read()?;
            let large = state.follow_work(a, b) > PLAN_WORK;
            large.then(|| state.backfill_of(a, b)).flatten()
        }
        false => None,
    };
    let mut plan = inputs.map(FeedPlan::backfill);
    let added = tl.graph.write_as_owner(|g, graph_log| {
        tl.state.write_logged(|t, log| {
            if g.follows(a, b) {
                return Ok(false);
            }
            if t_is_durable(&tl) {
                log.record(&op)?;
            } else {
                graph_log.record(&GraphOp::Follow(a, b))?;
            }
            op.apply_planned(g, t, plan.take()).map_err(self_follow)
        })
    })?;
    consume_since(env, began);
    Ok(added)
}

fn t_is_durable(tl: &TimelineResource) -> bool {
    tl.state.journal().is_some()
}

/// Unfollows and removes the followee's items from the follower's feed (O(feed capacity):
/// dirty past `DIRTY_FEED_WORK` entries).
fn unfollow<'a>(
    env: Env<'a>,
    on: On,
    tl: Term<'a>,
    follower: Term<'a>,
    followee: Term<'a>,
) -> NifResult<Term<'a>> {
    feed_edit(env, on, [tl, follower, followee], |env| {
        unfollow_now(env, tl, follower, followee)
    })
}

twin_nifs!(
    timeline_unfollow,
    timeline_unfollow_dirty,
    unfollow,
    (tl, follower, followee)
);

fn unfollow_now(env: Env, tl: Term, follower: Term, followee: Term) -> NifResult<bool> {
    let began = Instant::now();
    let tl = handle(tl)?;
    let (a, b) = (user(follower, "follower")?, user(followee, "followee")?);
    if !tl.graph.read()?.follows(a, b) {
        return Ok(false);
    }
    let feed = tl.state.read()?.feed_list(a);
    let feed = feed.filter(|f| f.len() > PLAN_WORK);
    let mut plan = cleanup_plan(&tl, b, feed)?;
    let removed = tl.graph.write_as_owner(|g, graph_log| {
        tl.state.write_logged(|t, log| {
            if !g.follows(a, b) {
                return Ok(false);
            }
            let op = EdgeOp::Unfollow(a, b);
            if t_is_durable(&tl) {
                log.record(&op)?;
            } else {
                graph_log.record(&GraphOp::Unfollow(a, b))?;
            }
            op.apply_planned(g, t, plan.take()).map_err(self_follow)
        })
    })?;
    consume_since(env, began);
    Ok(removed)
}

/// Feed entries past which a follow's backfill or an unfollow's cleanup is planned before
/// the write locks are taken (below it, the work under the locks is under ~50 µs, less than
/// a plan's copy of the feed costs).
const PLAN_WORK: usize = 4096;

/// Feed ids looked up under one read lock while an unfollow's cleanup is planned.
const CLEANUP_SLICE: usize = 8192;

/// An unfollow's cleanup of `feed`, planned before the write locks are taken (see
/// `FeedPlan`): the ids `followee` did not put there, looked up a slice at a time.
fn cleanup_plan(
    tl: &TimelineResource,
    followee: u32,
    feed: Option<std::sync::Arc<std::collections::VecDeque<u64>>>,
) -> NifResult<Option<FeedPlan>> {
    let Some(feed) = feed else {
        return Ok(None);
    };
    let mut kept = std::collections::VecDeque::with_capacity(feed.len());
    let (front, back) = feed.as_slices();
    for slice in front
        .chunks(CLEANUP_SLICE)
        .chain(back.chunks(CLEANUP_SLICE))
    {
        tl.state.read()?.keep_not_from(slice, followee, &mut kept);
    }
    Ok(Some(FeedPlan::cleanup(feed, kept)))
}

/// An item as Elixir sees it: a plain post's id, `{:repost, post, reposter}`, and for a
/// reply or quote (or a repost of one) `{:post, id, kind}` / `{:repost, post, reposter,
/// kind}` with `kind` a map `%{reply: nil | {parent, parent_author, root, root_author},
/// quote_of: nil | id}`.
fn encode_item<'a>(env: Env<'a>, (item, kind): (Item, PostKind)) -> Term<'a> {
    let kind_term = || {
        let reply = kind
            .reply
            .map(|r| (r.parent, r.parent_author, r.root, r.root_author));
        Term::map_from_pairs(
            env,
            &[
                (crate::reply().encode(env), reply.encode(env)),
                (crate::quote_of().encode(env), kind.quote_of.encode(env)),
            ],
        )
        .unwrap_or_else(|_| crate::nil().encode(env))
    };
    match (item, kind.is_plain()) {
        (Item::Post(id), true) => id.encode(env),
        (Item::Post(id), false) => (crate::post(), id, kind_term()).encode(env),
        (Item::Repost(_, post, reposter), true) => (crate::repost(), post, reposter).encode(env),
        (Item::Repost(_, post, reposter), false) => {
            (crate::repost(), post, reposter, kind_term()).encode(env)
        }
    }
}

/// The items of a page with their posts' kinds (taken while the timeline is held).
fn with_kinds(t: &Timeline, items: Vec<Item>) -> Vec<(Item, PostKind)> {
    items
        .into_iter()
        .map(|item| {
            let post = match item {
                Item::Post(id) => id,
                Item::Repost(_, post, _) => post,
            };
            (item, t.kind(post))
        })
        .collect()
}

/// `{exclude_replies, exclude_reposts, exclude_quotes, since, viewer}` (`since` nil or an
/// id, `viewer` nil or a user).
fn filter(term: Term) -> NifResult<Filter> {
    type Raw = (bool, bool, bool, Option<u64>, Option<u32>);
    let (exclude_replies, exclude_reposts, exclude_quotes, since, viewer): Raw = arg(
        term,
        "filter",
        "{bool, bool, bool, nil | id, nil | user id}",
    )?;
    Ok(Filter {
        exclude_replies,
        exclude_reposts,
        exclude_quotes,
        since,
        viewer,
        reply_rule: false,
    })
}

fn page_args(before: Term, limit: Term) -> NifResult<(Option<u64>, usize)> {
    let before: Option<u64> = arg(before, "cursor", "nil or an id")?;
    let limit: usize = arg(limit, "limit", "an integer in 0..100")?;
    if limit > MAX_READ {
        return Err(bad_arg(format!(
            "argument limit: expected an integer in 0..{MAX_READ}, got {limit}"
        )));
    }
    Ok((before, limit))
}

/// Reads a page under the graph's and the timeline's read locks (with each item's kind),
/// and encodes it after releasing them.
fn serve_page<'a>(
    env: Env<'a>,
    tl: &TimelineResource,
    began: Instant,
    read: impl FnOnce(&Timeline, &FollowerMap) -> (Vec<Item>, Option<u64>),
) -> NifResult<Term<'a>> {
    let (items, next) = {
        let graph = tl.graph.read()?;
        let state = tl.state.read()?;
        let (items, next) = read(&state, &graph);
        (with_kinds(&state, items), next)
    };
    let items: Vec<Term> = items.into_iter().map(|i| encode_item(env, i)).collect();
    let encoded = (items, next).encode(env);
    consume_since(env, began);
    Ok(encoded)
}

yielding_nif!(
    timeline_author_feed,
    timeline_author_feed_body,
    (tl, author, before, limit, filter_term)
);

/// A page of `author`'s own items (see [`Timeline::author_feed`]).
fn timeline_author_feed_body<'a>(
    env: Env<'a>,
    tl: Term<'a>,
    author: Term<'a>,
    before: Term<'a>,
    limit: Term<'a>,
    filter_term: Term<'a>,
) -> NifResult<Term<'a>> {
    let began = Instant::now();
    let tl = handle(tl)?;
    let author = user(author, "author_id")?;
    let (before, limit) = page_args(before, limit)?;
    let f = filter(filter_term)?;
    serve_page(env, &tl, began, |t, graph| {
        t.author_feed(graph, author, before, limit, &f)
    })
}

/// Most members of a list feed.
const MAX_LIST_MEMBERS: usize = 10_000;

/// A page of the items of `members` (see [`Timeline::list_feed`]); dirty past 1,000 members.
fn list_feed<'a>(
    env: Env<'a>,
    on: On,
    tl: Term<'a>,
    members: Term<'a>,
    before: Term<'a>,
    limit: Term<'a>,
    filter_term: Term<'a>,
) -> NifResult<Term<'a>> {
    let args = [tl, members, before, limit, filter_term];
    let many = || members.list_length().map_or(true, |n| n > 1000);
    if let Some(moved) = on.moves(env, &args, many) {
        return Ok(moved);
    }
    let began = Instant::now();
    let tl = handle(tl)?;
    let ids: Vec<u32> = arg(members, "members", "a list of user ids")?;
    if ids.len() > MAX_LIST_MEMBERS {
        return Err(bad_arg(format!(
            "argument members: at most {MAX_LIST_MEMBERS} users, got {}",
            ids.len()
        )));
    }
    let (before, limit) = page_args(before, limit)?;
    let f = filter(filter_term)?;
    serve_page(env, &tl, began, |t, graph| {
        t.list_feed(graph, &ids, before, limit, &f)
    })
}

twin_nifs!(
    timeline_list_feed,
    timeline_list_feed_dirty,
    list_feed,
    (tl, members, before, limit, filter_term)
);

yielding_nif!(
    timeline_read,
    timeline_read_body,
    (tl, who, before, limit, filter_term)
);

/// `{items, before}`: up to `limit` items older than `before` (nil: the newest), and the id
/// to continue from (nil at the end).
fn timeline_read_body<'a>(
    env: Env<'a>,
    tl: Term<'a>,
    who: Term<'a>,
    before: Term<'a>,
    limit: Term<'a>,
    filter_term: Term<'a>,
) -> NifResult<Term<'a>> {
    let began = Instant::now();
    let tl = handle(tl)?;
    let u = user(who, "user_id")?;
    let (before, limit) = page_args(before, limit)?;
    let f = Filter {
        viewer: Some(u),
        reply_rule: true,
        ..filter(filter_term)?
    };
    serve_page(env, &tl, began, |t, graph| {
        t.read_filtered(graph, u, before, limit, &f)
    })
}

yielding_nif!(timeline_info, timeline_info_body, (tl));

/// `{users, posts, reposts, feed_entries, large_authors, memory}`.
fn timeline_info_body<'a>(
    _env: Env<'a>,
    tl: Term<'a>,
) -> NifResult<(usize, usize, usize, usize, u64, usize)> {
    let tl = handle(tl)?;
    let t = tl.state.read()?;
    let s = t.stats();
    Ok((
        s.users,
        s.posts,
        s.reposts,
        s.feed_entries,
        s.large_authors,
        t.memory(),
    ))
}

/// The timeline and its graph as one snapshot binary.
#[rustler::nif(schedule = "DirtyCpu")]
fn timeline_dump<'a>(env: Env<'a>, tl: Term<'a>) -> NifResult<Term<'a>> {
    let tl = handle(tl)?;
    let bytes = freeze(&tl)?.dump();
    durable::binary(env, &bytes)
}

/// A copy-on-write copy of the timeline and its graph, taken under both read locks (in time
/// that does not grow with the data) and encoded by the caller with them released.
fn freeze(tl: &TimelineResource) -> NifResult<TimelineState> {
    let graph = tl.graph.read()?;
    let state = tl.state.read()?;
    Ok(frozen(&graph, &state))
}

fn frozen(graph: &FollowerMap, timeline: &Timeline) -> TimelineState {
    TimelineState {
        graph: graph.clone(),
        timeline: timeline.clone(),
    }
}

#[rustler::nif(schedule = "DirtyCpu")]
fn timeline_load<'a>(env: Env<'a>, bytes: Binary<'a>) -> NifResult<Term<'a>> {
    Ok(match durable::load::<TimelineState>(env, bytes) {
        Ok(state) => (crate::ok(), wrap_loaded(state)).encode(env),
        Err(e) => e,
    })
}

#[rustler::nif(schedule = "DirtyIo")]
fn timeline_save<'a>(env: Env<'a>, tl: Term<'a>, path: Term<'a>) -> NifResult<Term<'a>> {
    let tl = handle(tl)?;
    let path = durable::path(path, "path")?;
    let bytes = freeze(&tl)?.dump();
    Ok(durable::save(env, &path, &bytes))
}

#[rustler::nif(schedule = "DirtyIo")]
fn timeline_open<'a>(env: Env<'a>, path: Term<'a>) -> NifResult<Term<'a>> {
    let path = durable::path(path, "path")?;
    Ok(match durable::open_file::<TimelineState>(env, &path) {
        Ok(state) => (crate::ok(), wrap_loaded(state)).encode(env),
        Err(e) => e,
    })
}

/// `{:ok, timeline, report}` for the durable timeline in `dir` (created with these options
/// when the directory holds none), or `{:error, reason}`.
#[rustler::nif(schedule = "DirtyIo")]
fn timeline_recover<'a>(
    env: Env<'a>,
    dir: Term<'a>,
    sync: Term<'a>,
    feed_capacity: Term<'a>,
    fanout_limit: Term<'a>,
    backfill: Term<'a>,
) -> NifResult<Term<'a>> {
    let dir = durable::path(dir, "durable")?;
    let mode = durable::sync_mode(sync)?;
    let options = options(feed_capacity, fanout_limit, backfill)?;
    let fresh = || TimelineState {
        graph: Default::default(),
        timeline: Timeline::new(options),
    };
    let recovered = durable::recover(&dir, mode, fresh).and_then(|(mut state, journal, report)| {
        // A fan-out a crash cut short between its slices is finished now, journaled first.
        state.complete_pending(|op| {
            let mut record = Vec::new();
            op.encode(&mut record);
            journal.append(&record).map(|_| ())
        })?;
        Ok((state, journal, report))
    });
    Ok(match recovered {
        Ok((state, journal, report)) => (
            crate::ok(),
            wrap(state, Some(journal)),
            durable::report(env, &report),
        )
            .encode(env),
        Err(e) => durable::error(env, &e),
    })
}

/// Checkpoints a durable timeline (graph and feeds in one snapshot), as `durable::checkpoint`.
#[rustler::nif(schedule = "DirtyIo")]
fn timeline_checkpoint<'a>(env: Env<'a>, tl: Term<'a>) -> NifResult<Term<'a>> {
    let tl = handle(tl)?;
    let Some(journal) = tl.state.journal() else {
        return Ok(durable::not_durable(env));
    };
    durable::checkpoint_with::<TimelineState>(env, journal, || {
        let next = journal.next_segment()?;
        let (gen, frozen) = {
            let graph = tl.graph.read()?;
            let state = tl.state.read()?;
            (journal.switch_to(next)?, frozen(&graph, &state))
        };
        Ok((gen, frozen.dump()))
    })
}

// One node's part of a cluster (`Strata.Cluster.Timeline`): posts delivered with the
// followers who live here, follows whose follower lives elsewhere, and feed handoffs.

/// User ids packed as `<<id::32-little, ...>>`.
fn packed_users(bin: Binary, name: &str) -> NifResult<Vec<u32>> {
    let bytes = bin.as_slice();
    if !bytes.len().is_multiple_of(4) {
        return Err(bad_arg(format!(
            "argument {name}: expected a binary of 32-bit little-endian user ids"
        )));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// One node's part of a post's fan-out (`repost_of` nil) or a repost's (`repost_of` the post
/// it reposts): records the item here and pushes it into the feeds of `followers` (those
/// living here) and of its author when `author_here`.
#[allow(clippy::too_many_arguments)]
fn deliver<'a>(
    env: Env<'a>,
    on: On,
    tl: Term<'a>,
    id: Term<'a>,
    by: Term<'a>,
    repost_of: Term<'a>,
    author_here: Term<'a>,
    followers: Term<'a>,
) -> NifResult<Term<'a>> {
    let args = [tl, id, by, repost_of, author_here, followers];
    let packed: Binary = arg(followers, "followers", "a binary of packed user ids")?;
    // More than one slice: made on a dirty scheduler (a call that moves there after a slice
    // was made would make it twice).
    let heavy = || packed.len() / 4 > (DIRTY_FANOUT as usize).min(FANOUT_SLICE);
    if let Some(moved) = on.moves(env, &args, heavy) {
        return Ok(moved);
    }
    let began = Instant::now();
    let tl = handle(tl)?;
    let (id, by) = (item_id(id, "id")?, user(by, "author_id")?);
    let repost_of: Option<u64> = arg(repost_of, "repost_of", "nil or a post id")?;
    let author_here: bool = arg(author_here, "author_here", "a boolean")?;
    let followers = packed_users(packed, "followers")?;
    // Delivered in slices of `FANOUT_SLICE` followers, each recorded on its own, with the
    // locks given up between them (a follower here sees the item once their slice is in).
    let mut touched = 0;
    let slices: Vec<&[u32]> = match followers.is_empty() {
        true => vec![&[]],
        false => followers.chunks(FANOUT_SLICE).collect(),
    };
    for (n, slice) in slices.into_iter().enumerate() {
        let delivery = Delivery {
            author_here: author_here && n == 0,
            followers: Cow::Borrowed(slice),
        };
        let op = match repost_of {
            None => FeedOp::DeliverPost(id, by, delivery),
            Some(post) => FeedOp::DeliverRepost(id, by, post, delivery),
        };
        match apply_slice(&tl, op)? {
            Ok(n) => touched += n,
            Err(e) => return Ok(error(env, e)),
        }
    }
    consume_since(env, began);
    Ok(touched.encode(env))
}

twin_nifs!(
    timeline_deliver,
    timeline_deliver_dirty,
    deliver,
    (tl, id, by, repost_of, author_here, followers)
);

/// The users with a feed here, packed as 32-bit little-endian ids.
#[rustler::nif(schedule = "DirtyCpu")]
fn timeline_feed_users<'a>(env: Env<'a>, tl: Term<'a>) -> NifResult<Term<'a>> {
    let tl = handle(tl)?;
    let users = tl.state.read()?.feed_users();
    let bytes: Vec<u8> = users.iter().flat_map(|u| u.to_le_bytes()).collect();
    durable::binary(env, &bytes)
}

/// Removes the feeds of `users` (packed ids) and returns `[{user, ids}]` for those that had
/// one, for a handoff.
#[rustler::nif(schedule = "DirtyCpu")]
fn timeline_take_feeds<'a>(env: Env<'a>, tl: Term<'a>, users: Binary<'a>) -> NifResult<Term<'a>> {
    let tl = handle(tl)?;
    let users = packed_users(users, "users")?;
    // A slice of users at a time, each recorded on its own.
    let mut taken: Vec<(u32, Vec<u64>)> = Vec::new();
    for slice in users.chunks(FANOUT_SLICE) {
        let graph = tl.graph.read()?;
        tl.state.write_slice(|t, log| {
            taken.extend(slice.iter().filter_map(|&u| t.feed(u).map(|ids| (u, ids))));
            let op = FeedOp::DropFeeds(Cow::Borrowed(slice));
            log.record(&op)?;
            let _ = op.apply(&graph, t);
            Ok(())
        })?;
    }
    Ok(taken.encode(env))
}

/// Merges handed-over ids into `user`'s feed.
#[rustler::nif(schedule = "DirtyCpu")]
fn timeline_merge_feed<'a>(
    env: Env<'a>,
    tl: Term<'a>,
    who: Term<'a>,
    ids: Term<'a>,
) -> NifResult<Term<'a>> {
    let tl = handle(tl)?;
    let u = user(who, "user_id")?;
    let ids: Vec<u64> = arg(ids, "ids", "a list of item ids")?;
    let _ = apply_feed(&tl, FeedOp::MergeFeed(u, Cow::Owned(ids)))?;
    Ok(crate::ok().encode(env))
}

yielding_nif!(timeline_has_item, timeline_has_item_body, (tl, id));

/// Whether a post or repost with this id is recorded here (deleted or not).
fn timeline_has_item_body<'a>(_env: Env<'a>, tl: Term<'a>, id: Term<'a>) -> NifResult<bool> {
    let tl = handle(tl)?;
    let id = item_id(id, "id")?;
    let found = tl.state.read()?.has_item(id);
    Ok(found)
}
