//! NIFs behind `Strata.Timeline` (prefix `timeline_`).
//!
//! A timeline resource holds its state and a reference to the `FollowerMap` resource whose
//! graph it reads (which Elixir code may hold and use too). Locks are taken graph first,
//! then timeline.

use std::time::Instant;

use rustler::{Encoder, Env, NifResult, NifStruct, Resource, ResourceArc, Term};
use strata_core::timeline::{Item, Options, TimelineError};
use strata_core::Timeline;

use crate::error::{arg, bad_arg};
use crate::follower_map::{self_follow, user, FollowerMapHandle, FollowerMapResource};
use crate::resource::Shared;
use crate::runtime::consume_since;

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
    let options = Options {
        feed_capacity: arg(feed_capacity, "feed_capacity", "a positive integer")?,
        fanout_limit: arg(fanout_limit, "fanout_limit", "a non-negative integer")?,
        backfill: arg(backfill, "backfill", "a non-negative integer")?,
    };
    if options.feed_capacity == 0 || options.feed_capacity > 100_000 {
        return Err(bad_arg(
            "argument feed_capacity: expected an integer in 1..100000",
        ));
    }
    let resource = ResourceArc::new(TimelineResource {
        graph: follower_map.resource.clone(),
        state: Shared::new(Timeline::new(options)),
    });
    Ok(TimelineHandle {
        resource,
        follower_map,
    }
    .encode(env))
}

fn insert_post<'a>(
    env: Env<'a>,
    tl: Term<'a>,
    post: Term<'a>,
    author: Term<'a>,
) -> NifResult<Term<'a>> {
    let began = Instant::now();
    let tl = handle(tl)?;
    let (post, author) = (item_id(post, "post_id")?, user(author, "author_id")?);
    let graph = tl.graph.read();
    let r = tl.state.write(|t| t.insert_post(&graph, post, author));
    consume_since(env, began);
    Ok(result(env, r))
}

/// Records a post and fans it out; for authors with few followers (the Elixir side sends
/// the others to the dirty variant).
#[rustler::nif]
fn timeline_insert_post<'a>(
    env: Env<'a>,
    tl: Term<'a>,
    post: Term<'a>,
    author: Term<'a>,
) -> NifResult<Term<'a>> {
    insert_post(env, tl, post, author)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn timeline_insert_post_dirty<'a>(
    env: Env<'a>,
    tl: Term<'a>,
    post: Term<'a>,
    author: Term<'a>,
) -> NifResult<Term<'a>> {
    insert_post(env, tl, post, author)
}

fn insert_repost<'a>(
    env: Env<'a>,
    tl: Term<'a>,
    repost: Term<'a>,
    reposter: Term<'a>,
    post: Term<'a>,
) -> NifResult<Term<'a>> {
    let began = Instant::now();
    let tl = handle(tl)?;
    let repost = item_id(repost, "repost_id")?;
    let reposter = user(reposter, "reposter_id")?;
    let post = item_id(post, "post_id")?;
    let graph = tl.graph.read();
    let r = tl
        .state
        .write(|t| t.insert_repost(&graph, repost, reposter, post));
    consume_since(env, began);
    Ok(result(env, r))
}

#[rustler::nif]
fn timeline_insert_repost<'a>(
    env: Env<'a>,
    tl: Term<'a>,
    repost: Term<'a>,
    reposter: Term<'a>,
    post: Term<'a>,
) -> NifResult<Term<'a>> {
    insert_repost(env, tl, repost, reposter, post)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn timeline_insert_repost_dirty<'a>(
    env: Env<'a>,
    tl: Term<'a>,
    repost: Term<'a>,
    reposter: Term<'a>,
    post: Term<'a>,
) -> NifResult<Term<'a>> {
    insert_repost(env, tl, repost, reposter, post)
}

#[rustler::nif]
fn timeline_delete_post<'a>(env: Env<'a>, tl: Term<'a>, post: Term<'a>) -> NifResult<Term<'a>> {
    let tl = handle(tl)?;
    let post = item_id(post, "post_id")?;
    let r = tl.state.write(|t| t.delete_post(post)).map(|_| crate::ok());
    Ok(result(env, r))
}

#[rustler::nif]
fn timeline_delete_repost<'a>(env: Env<'a>, tl: Term<'a>, repost: Term<'a>) -> NifResult<Term<'a>> {
    let tl = handle(tl)?;
    let repost = item_id(repost, "repost_id")?;
    let r = tl
        .state
        .write(|t| t.delete_repost(repost))
        .map(|_| crate::ok());
    Ok(result(env, r))
}

/// Follows and backfills the followee's recent items (at most `backfill` of them).
#[rustler::nif]
fn timeline_follow(env: Env, tl: Term, follower: Term, followee: Term) -> NifResult<bool> {
    let began = Instant::now();
    let tl = handle(tl)?;
    let (a, b) = (user(follower, "follower")?, user(followee, "followee")?);
    let added = tl.graph.write(|g| g.follow(a, b)).map_err(self_follow)?;
    if added {
        let graph = tl.graph.read();
        tl.state.write(|t| t.followed(&graph, a, b));
        consume_since(env, began);
    }
    Ok(added)
}

/// Unfollows and removes the followee's items from the follower's feed (O(feed capacity)).
#[rustler::nif]
fn timeline_unfollow(env: Env, tl: Term, follower: Term, followee: Term) -> NifResult<bool> {
    let began = Instant::now();
    let tl = handle(tl)?;
    let (a, b) = (user(follower, "follower")?, user(followee, "followee")?);
    let removed = tl.graph.write(|g| g.unfollow(a, b));
    if removed {
        tl.state.write(|t| t.unfollowed(a, b));
        consume_since(env, began);
    }
    Ok(removed)
}

fn encode_item<'a>(env: Env<'a>, item: Item) -> Term<'a> {
    match item {
        Item::Post(id) => id.encode(env),
        Item::Repost(_, post, reposter) => (crate::repost(), post, reposter).encode(env),
    }
}

/// `{items, before}`: up to `limit` items older than `before` (nil: the newest), and the id
/// to continue from (nil at the end).
#[rustler::nif]
fn timeline_read<'a>(
    env: Env<'a>,
    tl: Term<'a>,
    who: Term<'a>,
    before: Term<'a>,
    limit: Term<'a>,
) -> NifResult<Term<'a>> {
    let began = Instant::now();
    let tl = handle(tl)?;
    let u = user(who, "user_id")?;
    let before: Option<u64> = arg(before, "cursor", "nil or an id")?;
    let limit: usize = arg(limit, "limit", "an integer in 0..100")?;
    if limit > MAX_READ {
        return Err(bad_arg(format!(
            "argument limit: expected an integer in 0..{MAX_READ}, got {limit}"
        )));
    }
    let graph = tl.graph.read();
    let (items, next) = tl.state.read().read(&graph, u, before, limit);
    drop(graph);
    let items: Vec<Term> = items.into_iter().map(|i| encode_item(env, i)).collect();
    let page = (items, next).encode(env);
    consume_since(env, began);
    Ok(page)
}

/// `{users, posts, reposts, feed_entries, large_authors, memory}`.
#[rustler::nif]
fn timeline_info(tl: Term) -> NifResult<(usize, usize, usize, usize, u64, usize)> {
    let tl = handle(tl)?;
    let t = tl.state.read();
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
