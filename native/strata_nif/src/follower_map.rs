//! NIFs behind `Strata.FollowerMap` (prefix `follower_map_`).

use std::time::Instant;

use rustler::{Binary, Encoder, Env, NifResult, NifStruct, Resource, ResourceArc, Term};
use std::borrow::Cow;
use strata_core::follower_map::{GraphError, Page};

use strata_core::op::GraphOp;
use strata_core::FollowerMap;

use crate::durable::{self, JournalResource};
use crate::error::{arg, bad_arg};
use crate::resource::{Log, Shared};
use crate::runtime::{consume_since, yielding_nif, Slicer};

/// Most ids one page returns.
const MAX_PAGE: usize = 10_000;
/// Most edges one `follow_many` call takes on a normal scheduler.
const MAX_BATCH: usize = 1_000;
/// Edges the dirty bulk load adds under its first write lock (the next slices adapt their
/// size to stay well under a millisecond: see `Slicer`).
const BULK_SLICE: usize = 1024;

pub type FollowerMapResource = Shared<FollowerMap>;

#[rustler::resource_impl]
impl Resource for Shared<FollowerMap> {}

#[derive(NifStruct)]
#[module = "Strata.FollowerMap"]
pub struct FollowerMapHandle {
    pub resource: ResourceArc<FollowerMapResource>,
    pub journal: Option<ResourceArc<JournalResource>>,
}

impl FollowerMapHandle {
    /// A handle on a graph that is not durable on its own (in memory, or a durable
    /// timeline's).
    pub fn plain(resource: ResourceArc<FollowerMapResource>) -> FollowerMapHandle {
        FollowerMapHandle {
            resource,
            journal: None,
        }
    }
}

pub fn handle(term: Term) -> NifResult<ResourceArc<FollowerMapResource>> {
    arg::<FollowerMapHandle>(term, "map", "a %Strata.FollowerMap{}").map(|h| h.resource)
}

pub fn user(term: Term, name: &str) -> NifResult<u32> {
    arg(term, name, "a user id (an integer in 0..4294967295)")
}

fn after(term: Term) -> NifResult<Option<u32>> {
    arg(
        term,
        "after",
        "nil or a user id (an integer in 0..4294967295)",
    )
}

fn limit(term: Term) -> NifResult<usize> {
    let n: usize = arg(term, "limit", "a non-negative integer")?;
    if n > MAX_PAGE {
        return Err(bad_arg(format!(
            "argument limit: at most {MAX_PAGE} ids per call, got {n}"
        )));
    }
    Ok(n)
}

pub fn self_follow(e: GraphError) -> rustler::Error {
    match e {
        GraphError::SelfFollow(u) => {
            bad_arg(format!("argument followee: user {u} cannot follow itself"))
        }
    }
}

fn encode_page<'a>(env: Env<'a>, page: Page) -> Term<'a> {
    (page.ids, page.total).encode(env)
}

#[rustler::nif]
fn follower_map_new(env: Env) -> Term {
    FollowerMapHandle::plain(Shared::wrap(FollowerMap::new())).encode(env)
}

yielding_nif!(
    follower_map_follow,
    follower_map_follow_body,
    (map, follower, followee)
);

fn follower_map_follow_body<'a>(
    _env: Env<'a>,
    map: Term<'a>,
    follower: Term<'a>,
    followee: Term<'a>,
) -> NifResult<bool> {
    let map = handle(map)?;
    let (a, b) = (user(follower, "follower")?, user(followee, "followee")?);
    if a == b {
        return Err(self_follow(GraphError::SelfFollow(a)));
    }
    map.write_logged(|m, log| {
        if m.follows(a, b) {
            return Ok(false);
        }
        let op = GraphOp::Follow(a, b);
        log.record(&op)?;
        op.apply(m).map(|added| added == 1).map_err(self_follow)
    })
}

yielding_nif!(
    follower_map_unfollow,
    follower_map_unfollow_body,
    (map, follower, followee)
);

fn follower_map_unfollow_body<'a>(
    _env: Env<'a>,
    map: Term<'a>,
    follower: Term<'a>,
    followee: Term<'a>,
) -> NifResult<bool> {
    let map = handle(map)?;
    let (a, b) = (user(follower, "follower")?, user(followee, "followee")?);
    map.write_logged(|m, log| {
        if !m.follows(a, b) {
            return Ok(false);
        }
        let op = GraphOp::Unfollow(a, b);
        log.record(&op)?;
        Ok(op.apply(m).unwrap_or(0) == 1)
    })
}

yielding_nif!(
    follower_map_follows,
    follower_map_follows_body,
    (map, follower, followee)
);

fn follower_map_follows_body<'a>(
    _env: Env<'a>,
    map: Term<'a>,
    follower: Term<'a>,
    followee: Term<'a>,
) -> NifResult<bool> {
    let map = handle(map)?;
    let (a, b) = (user(follower, "follower")?, user(followee, "followee")?);
    let follows = map.read()?.follows(a, b);
    Ok(follows)
}

fn pairs(term: Term) -> NifResult<Vec<(u32, u32)>> {
    let pairs: Vec<(u32, u32)> = arg(
        term,
        "edges",
        "a list of {follower, followee} user id pairs",
    )?;
    if let Some((a, _)) = pairs.iter().find(|(a, b)| a == b) {
        return Err(bad_arg(format!(
            "argument edges: user {a} cannot follow itself"
        )));
    }
    Ok(pairs)
}

/// Adds a batch of edges (self-follows refused already) under one write lock, recorded as
/// one op; returns how many were new.
fn follow_all(map: &FollowerMapResource, pairs: &[(u32, u32)]) -> NifResult<u64> {
    map.write_logged(|m, log| {
        let op = GraphOp::FollowMany(Cow::Borrowed(pairs));
        log.record(&op)?;
        Ok(op.apply(m).unwrap_or(0))
    })
}

yielding_nif!(
    follower_map_follow_many,
    follower_map_follow_many_body,
    (map, edges)
);

/// Follows a batch of at most `MAX_BATCH` edges; returns how many were new.
fn follower_map_follow_many_body<'a>(
    env: Env<'a>,
    map: Term<'a>,
    edges: Term<'a>,
) -> NifResult<u64> {
    let began = Instant::now();
    let map = handle(map)?;
    if edges.list_length().map_or(true, |n| n > MAX_BATCH) {
        return Err(bad_arg(format!(
            "argument edges: expected a list of at most {MAX_BATCH} pairs"
        )));
    }
    let pairs = pairs(edges)?;
    let added = follow_all(&map, &pairs)?;
    consume_since(env, began);
    Ok(added)
}

/// Follows edges packed as `<<follower::32-little, followee::32-little, ...>>`, any number,
/// on a dirty scheduler; returns how many were new. Self-follows are refused before any
/// edge is added. Holds the write lock for one slice of edges at a time (see `Slicer`).
#[rustler::nif(schedule = "DirtyCpu")]
fn follower_map_follow_packed(map: Term, edges: Binary) -> NifResult<u64> {
    let map = handle(map)?;
    let bytes = edges.as_slice();
    if !bytes.len().is_multiple_of(8) {
        return Err(bad_arg("argument edges: expected a binary of 8-byte edges"));
    }
    let mut pairs: Vec<(u32, u32)> = bytes
        .chunks_exact(8)
        .map(|e| {
            (
                u32::from_le_bytes([e[0], e[1], e[2], e[3]]),
                u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
            )
        })
        .collect();
    if let Some((a, _)) = pairs.iter().find(|(a, b)| a == b) {
        return Err(bad_arg(format!(
            "argument edges: user {a} cannot follow itself"
        )));
    }
    // Sorted first, without the lock (each slice's own sort then finds it sorted), then
    // added in slices, each recorded as its own op, so that the write lock is given up
    // between them.
    pairs.sort_unstable();
    pairs.dedup();
    let (mut rest, mut slicer, mut added) = (&pairs[..], Slicer::new(BULK_SLICE), 0);
    while !rest.is_empty() {
        let (slice, next) = rest.split_at(slicer.size().min(rest.len()));
        added += map.write_slice(|m, log| {
            let began = Instant::now();
            let op = GraphOp::FollowMany(Cow::Borrowed(slice));
            log.record(&op)?;
            let added = op.apply(m).unwrap_or(0);
            slicer.took(began.elapsed()); // the time under the lock, not waiting for it
            Ok(added)
        })?;
        rest = next;
    }
    Ok(added)
}

yielding_nif!(
    follower_map_follower_count,
    follower_map_follower_count_body,
    (map, who)
);

fn follower_map_follower_count_body<'a>(
    _env: Env<'a>,
    map: Term<'a>,
    who: Term<'a>,
) -> NifResult<u64> {
    let map = handle(map)?;
    let u = user(who, "user")?;
    let n = map.read()?.follower_count(u);
    Ok(n)
}

yielding_nif!(
    follower_map_following_count,
    follower_map_following_count_body,
    (map, who)
);

fn follower_map_following_count_body<'a>(
    _env: Env<'a>,
    map: Term<'a>,
    who: Term<'a>,
) -> NifResult<u64> {
    let map = handle(map)?;
    let u = user(who, "user")?;
    let n = map.read()?.following_count(u);
    Ok(n)
}

/// Decodes `after` and `limit` and answers a page query under the read lock.
fn page_of<'a>(
    env: Env<'a>,
    map: Term<'a>,
    from: Term<'a>,
    n: Term<'a>,
    query: impl FnOnce(&FollowerMap, Option<u32>, usize) -> Page,
) -> NifResult<Term<'a>> {
    let began = Instant::now();
    let map = handle(map)?;
    let (from, n) = (after(from)?, limit(n)?);
    let page = query(&*map.read()?, from, n);
    let term = encode_page(env, page);
    consume_since(env, began);
    Ok(term)
}

yielding_nif!(
    follower_map_followers,
    follower_map_followers_body,
    (map, who, from, n)
);

fn follower_map_followers_body<'a>(
    env: Env<'a>,
    map: Term<'a>,
    who: Term<'a>,
    from: Term<'a>,
    n: Term<'a>,
) -> NifResult<Term<'a>> {
    let u = user(who, "user")?;
    page_of(env, map, from, n, |m, a, l| m.followers(u, a, l))
}

yielding_nif!(
    follower_map_following,
    follower_map_following_body,
    (map, who, from, n)
);

fn follower_map_following_body<'a>(
    env: Env<'a>,
    map: Term<'a>,
    who: Term<'a>,
    from: Term<'a>,
    n: Term<'a>,
) -> NifResult<Term<'a>> {
    let u = user(who, "user")?;
    page_of(env, map, from, n, |m, a, l| m.following(u, a, l))
}

yielding_nif!(
    follower_map_known_followers,
    follower_map_known_followers_body,
    (map, viewer, target, from, n)
);

fn follower_map_known_followers_body<'a>(
    env: Env<'a>,
    map: Term<'a>,
    viewer: Term<'a>,
    target: Term<'a>,
    from: Term<'a>,
    n: Term<'a>,
) -> NifResult<Term<'a>> {
    let (v, t) = (user(viewer, "viewer")?, user(target, "target")?);
    page_of(env, map, from, n, |m, a, l| m.known_followers(v, t, a, l))
}

yielding_nif!(
    follower_map_mutuals,
    follower_map_mutuals_body,
    (map, who, from, n)
);

fn follower_map_mutuals_body<'a>(
    env: Env<'a>,
    map: Term<'a>,
    who: Term<'a>,
    from: Term<'a>,
    n: Term<'a>,
) -> NifResult<Term<'a>> {
    let u = user(who, "user")?;
    page_of(env, map, from, n, |m, a, l| m.mutuals(u, a, l))
}

yielding_nif!(
    follower_map_common_following,
    follower_map_common_following_body,
    (map, a, b, from, n)
);

fn follower_map_common_following_body<'a>(
    env: Env<'a>,
    map: Term<'a>,
    a: Term<'a>,
    b: Term<'a>,
    from: Term<'a>,
    n: Term<'a>,
) -> NifResult<Term<'a>> {
    let (a, b) = (user(a, "a")?, user(b, "b")?);
    page_of(env, map, from, n, |m, x, l| m.common_following(a, b, x, l))
}

yielding_nif!(follower_map_info, follower_map_info_body, (map));

/// `{users, edges, memory}`, in `O(1)`.
fn follower_map_info_body<'a>(_env: Env<'a>, map: Term<'a>) -> NifResult<(u64, u64, usize)> {
    let map = handle(map)?;
    let m = map.read()?;
    Ok((m.users(), m.edges(), m.memory()))
}

fn wrap(graph: FollowerMap) -> FollowerMapHandle {
    FollowerMapHandle::plain(Shared::wrap(graph))
}

/// `{:ok, map, report}` for the durable graph in `dir`, or `{:error, reason}`.
#[rustler::nif(schedule = "DirtyIo")]
fn follower_map_recover<'a>(env: Env<'a>, dir: Term<'a>, sync: Term<'a>) -> NifResult<Term<'a>> {
    let dir = durable::path(dir, "durable")?;
    let mode = durable::sync_mode(sync)?;
    Ok(match durable::recover(&dir, mode, FollowerMap::new) {
        Ok((graph, journal, report)) => {
            let handle = FollowerMapHandle {
                resource: ResourceArc::new(Shared::with_log(graph, Log::Journal(journal.clone()))),
                journal: Some(ResourceArc::new(JournalResource(journal))),
            };
            (crate::ok(), handle, durable::report(env, &report)).encode(env)
        }
        Err(e) => durable::error(env, &e),
    })
}

durable::snapshot_nifs!(
    FollowerMap,
    handle,
    wrap,
    follower_map_dump,
    follower_map_load,
    follower_map_save,
    follower_map_open,
    follower_map_checkpoint
);
