//! NIFs behind `Strata.SortedSet` (prefix `sorted_set_`).
//!
//! Every NIF decodes and validates its arguments before it takes the lock and holds the
//! lock only for the core operation. Reads take the items they return as a `Run` (the
//! copy-on-write buckets that hold them, a pointer per bucket) and encode them under the read
//! lock when they are light (within a normal scheduler's budget, ~50 µs: cheaper than making
//! a writer copy a bucket), after releasing it when they are heavy (on the dirty twin), so
//! that no item, however large, is copied or encoded under the lock.

use std::borrow::Cow;
use std::time::Instant;

use rustler::{Encoder, Env, NifResult, NifStruct, Resource, ResourceArc, Term};
use strata_core::op::{SetDone, SetOp};
use strata_core::sorted_set::{Bound, BuildError, Run};
use strata_core::{SortedSet, Term as Value};

use crate::durable::{self, JournalResource};
use crate::error::{arg, bad_arg};
use crate::resource::{Log, Shared};
use crate::runtime::{consume_since, twin_nifs, yielding_nif, Budget, On};
use crate::term::{decode, decode_list, encode, encode_list};

/// Most items one `slice`/`range` call returns (the Elixir side pages through longer reads).
const MAX_READ: usize = 10_000;
/// Most items one `add_all` call takes on a normal scheduler.
const MAX_BATCH: usize = 2_000;

pub type SortedSetResource = Shared<SortedSet>;

#[rustler::resource_impl]
impl Resource for Shared<SortedSet> {}

#[derive(NifStruct)]
#[module = "Strata.SortedSet"]
pub struct SortedSetHandle {
    resource: ResourceArc<SortedSetResource>,
    journal: Option<ResourceArc<JournalResource>>,
}

fn wrap(set: SortedSet) -> SortedSetHandle {
    SortedSetHandle {
        resource: Shared::wrap(set),
        journal: None,
    }
}

fn handle(term: Term) -> NifResult<ResourceArc<SortedSetResource>> {
    arg::<SortedSetHandle>(term, "set", "a %Strata.SortedSet{}").map(|h| h.resource)
}

fn count(term: Term, name: &str) -> NifResult<usize> {
    arg(term, name, "a non-negative integer")
}

fn bucket_size(term: Term) -> NifResult<usize> {
    let size: usize = count(term, "bucket_size")?;
    if !(strata_core::sorted_set::MIN_BUCKET_SIZE..=strata_core::sorted_set::MAX_BUCKET_SIZE)
        .contains(&size)
    {
        return Err(bad_arg(format!(
            "argument bucket_size: expected an integer in {}..{}, got {size}",
            strata_core::sorted_set::MIN_BUCKET_SIZE,
            strata_core::sorted_set::MAX_BUCKET_SIZE
        )));
    }
    Ok(size)
}

/// What an op did, as the Elixir side expects it: an index or nil, `{old, new}`, or a list.
fn encode_done(env: Env, done: SetDone) -> Term {
    match done {
        SetDone::Index(i) => i.encode(env),
        SetDone::Moved(from, to) => (from, to).encode(env),
        SetDone::Indices(all) => all.encode(env),
    }
}

fn optional<'a>(env: Env<'a>, value: Option<&Value>) -> Term<'a> {
    match value {
        Some(v) => (crate::ok(), encode(env, v)).encode(env),
        None => crate::error().encode(env),
    }
}

// Handles are returned as encoded terms: a `parking_lot` lock is not `RefUnwindSafe`, which
// rustler asks of values it encodes itself.

#[rustler::nif]
fn sorted_set_new<'a>(env: Env<'a>, capacity: Term<'a>, bucket: Term<'a>) -> NifResult<Term<'a>> {
    let capacity = count(capacity, "capacity")?;
    let bucket = bucket_size(bucket)?;
    Ok(wrap(SortedSet::new(bucket, capacity)).encode(env))
}

/// Builds from an unsorted list: decode, sort, dedup. Dirty: O(n log n) over the whole input.
#[rustler::nif(schedule = "DirtyCpu")]
fn sorted_set_from_list<'a>(env: Env<'a>, list: Term<'a>, bucket: Term<'a>) -> NifResult<Term<'a>> {
    let bucket = bucket_size(bucket)?;
    let items = decode_list(list, "enumerable")?;
    Ok(wrap(SortedSet::from_unsorted(items, bucket)).encode(env))
}

/// Builds from a list already strictly ascending (verified). Dirty: O(n) over the input.
#[rustler::nif(schedule = "DirtyCpu")]
fn sorted_set_from_sorted_list<'a>(
    env: Env<'a>,
    list: Term<'a>,
    bucket: Term<'a>,
) -> NifResult<Term<'a>> {
    let bucket = bucket_size(bucket)?;
    let items = decode_list(list, "enumerable")?;
    Ok(match SortedSet::from_sorted(items, bucket) {
        Ok(set) => (crate::ok(), wrap(set)).encode(env),
        Err(BuildError::NotSorted(at)) => (crate::error(), (crate::not_sorted(), at)).encode(env),
    })
}

// Calls that take or return items of any size have a dirty twin: past the budget of a
// normal-scheduler call (`runtime::NORMAL_WEIGHT`: a 500k-key map to add, a 1M-element list
// to look up, a 200 MB binary to return), the call reschedules itself as the twin.

fn heavy_args(args: &[Term]) -> bool {
    let mut budget = Budget::normal();
    args.iter().any(|&t| budget.term(t))
}

fn add<'a>(env: Env<'a>, on: On, set: Term<'a>, item: Term<'a>) -> NifResult<Term<'a>> {
    if let Some(moved) = on.moves(env, &[set, item], || heavy_args(&[item])) {
        return Ok(moved);
    }
    let set = handle(set)?;
    let item = decode(item, "item")?;
    let done = set.write_logged(|s, log| {
        if s.contains(&item) {
            return Ok(SetDone::Index(None)); // nothing changes: nothing recorded
        }
        let op = SetOp::Add(item);
        log.record(&op)?;
        Ok(op.apply(s))
    })?;
    Ok(encode_done(env, done))
}

twin_nifs!(sorted_set_add, sorted_set_add_dirty, add, (set, item));

/// Adds a batch (at most `MAX_BATCH` items; the Elixir side chunks), returning each index.
fn add_all<'a>(env: Env<'a>, on: On, set: Term<'a>, items: Term<'a>) -> NifResult<Term<'a>> {
    let began = Instant::now();
    if items.list_length().map_or(true, |n| n > MAX_BATCH) {
        return Err(bad_arg(format!(
            "argument items: expected a proper list of at most {MAX_BATCH} items"
        )));
    }
    if let Some(moved) = on.moves(env, &[set, items], || heavy_args(&[items])) {
        return Ok(moved);
    }
    let set = handle(set)?;
    let items = decode_list(items, "items")?;
    let done = set.write_logged(|s, log| {
        let op = SetOp::AddAll(Cow::Owned(items));
        log.record(&op)?;
        Ok(op.apply(s))
    })?;
    consume_since(env, began);
    Ok(encode_done(env, done))
}

twin_nifs!(
    sorted_set_add_all,
    sorted_set_add_all_dirty,
    add_all,
    (set, items)
);

fn remove<'a>(env: Env<'a>, on: On, set: Term<'a>, item: Term<'a>) -> NifResult<Term<'a>> {
    if let Some(moved) = on.moves(env, &[set, item], || heavy_args(&[item])) {
        return Ok(moved);
    }
    let set = handle(set)?;
    let item = decode(item, "item")?;
    let done = set.write_logged(|s, log| {
        if !s.contains(&item) {
            return Ok(SetDone::Index(None));
        }
        let op = SetOp::Remove(item);
        log.record(&op)?;
        Ok(op.apply(s))
    })?;
    Ok(encode_done(env, done))
}

twin_nifs!(
    sorted_set_remove,
    sorted_set_remove_dirty,
    remove,
    (set, item)
);

fn update<'a>(
    env: Env<'a>,
    on: On,
    set: Term<'a>,
    old: Term<'a>,
    new: Term<'a>,
) -> NifResult<Term<'a>> {
    if let Some(moved) = on.moves(env, &[set, old, new], || heavy_args(&[old, new])) {
        return Ok(moved);
    }
    let set = handle(set)?;
    let old = decode(old, "old")?;
    let new = decode(new, "new")?;
    let done = set.write_logged(|s, log| {
        let op = SetOp::Update(old, new);
        log.record(&op)?;
        Ok(op.apply(s))
    })?;
    Ok(encode_done(env, done))
}

twin_nifs!(
    sorted_set_update,
    sorted_set_update_dirty,
    update,
    (set, old, new)
);

yielding_nif!(sorted_set_size, sorted_set_size_body, (set));

fn sorted_set_size_body<'a>(_env: Env<'a>, set: Term<'a>) -> NifResult<usize> {
    Ok(handle(set)?.read()?.len())
}

/// A lookup of `item`: decoded (here or, when heavy, on a dirty scheduler), then `f` under
/// the read lock.
fn lookup<'a, R: Encoder>(
    env: Env<'a>,
    on: On,
    set: Term<'a>,
    item: Term<'a>,
    f: impl FnOnce(&SortedSet, &Value) -> R,
) -> NifResult<Term<'a>> {
    if let Some(moved) = on.moves(env, &[set, item], || heavy_args(&[item])) {
        return Ok(moved);
    }
    let set = handle(set)?;
    let item = decode(item, "item")?;
    let result = f(&*set.read()?, &item);
    Ok(result.encode(env))
}

fn member<'a>(env: Env<'a>, on: On, set: Term<'a>, item: Term<'a>) -> NifResult<Term<'a>> {
    lookup(env, on, set, item, |s, v| s.contains(v))
}

fn find_index<'a>(env: Env<'a>, on: On, set: Term<'a>, item: Term<'a>) -> NifResult<Term<'a>> {
    lookup(env, on, set, item, |s, v| s.find_index(v))
}

fn rank<'a>(env: Env<'a>, on: On, set: Term<'a>, item: Term<'a>) -> NifResult<Term<'a>> {
    lookup(env, on, set, item, |s, v| s.rank(v))
}

twin_nifs!(
    sorted_set_member,
    sorted_set_member_dirty,
    member,
    (set, item)
);
twin_nifs!(
    sorted_set_find_index,
    sorted_set_find_index_dirty,
    find_index,
    (set, item)
);
twin_nifs!(sorted_set_rank, sorted_set_rank_dirty, rank, (set, item));

/// One stored item, found by `pick` under the read lock and held through its bucket (see
/// `Run`): encoded here with the lock released when it is light, on a dirty scheduler when
/// it is heavy (checked before anything is copied).
fn one<'a>(
    env: Env<'a>,
    on: On,
    args: &[Term<'a>],
    set: &SortedSetResource,
    pick: impl Fn(&SortedSet) -> Option<usize>,
) -> NifResult<Term<'a>> {
    let take = |s: &SortedSet| pick(s).map(|i| s.run(i, 1));
    read_then(set, on, take, |run| {
        let item = run.as_ref().and_then(Run::first);
        let heavy = || item.is_some_and(|v| Budget::normal().value(v));
        on.moves(env, args, heavy)
            .unwrap_or_else(|| optional(env, item))
    })
}

/// Takes what a read returns (as `Run`s: shared pointers to the buckets holding the items)
/// under the read lock, and converts it with `finish`. On a normal scheduler, where the
/// conversion is within the call's budget (heavier items move the call to its dirty twin),
/// that happens under the lock and the runs are dropped before it is released, so that no
/// writer ever has to copy a bucket for them; on a dirty scheduler, after the lock is
/// released, so that however large the items, writers are not held while they are copied.
fn read_then<R, T>(
    set: &SortedSetResource,
    on: On,
    take: impl FnOnce(&SortedSet) -> R,
    finish: impl FnOnce(&R) -> T,
) -> NifResult<T> {
    let guard = set.read()?;
    let taken = take(&guard);
    if matches!(on, On::Dirty) {
        drop(guard);
        return Ok(finish(&taken));
    }
    let result = finish(&taken);
    drop(taken);
    drop(guard);
    Ok(result)
}

fn at<'a>(env: Env<'a>, on: On, set: Term<'a>, index: Term<'a>) -> NifResult<Term<'a>> {
    let resource = handle(set)?;
    let i = count(index, "index")?;
    one(env, on, &[set, index], &resource, |s| {
        (i < s.len()).then_some(i)
    })
}

fn first<'a>(env: Env<'a>, on: On, set: Term<'a>) -> NifResult<Term<'a>> {
    let resource = handle(set)?;
    one(env, on, &[set], &resource, |s| (!s.is_empty()).then_some(0))
}

fn last<'a>(env: Env<'a>, on: On, set: Term<'a>) -> NifResult<Term<'a>> {
    let resource = handle(set)?;
    one(env, on, &[set], &resource, |s| s.len().checked_sub(1))
}

twin_nifs!(sorted_set_at, sorted_set_at_dirty, at, (set, index));
twin_nifs!(sorted_set_first, sorted_set_first_dirty, first, (set));
twin_nifs!(sorted_set_last, sorted_set_last_dirty, last, (set));

/// The items at several indices (at most `MAX_READ`), in the order given; `default` for an
/// index past the end. Looks them up in ascending order, under one read lock.
fn at_many<'a>(
    env: Env<'a>,
    on: On,
    set: Term<'a>,
    indices: Term<'a>,
    default: Term<'a>,
) -> NifResult<Term<'a>> {
    let began = Instant::now();
    let resource = handle(set)?;
    let list: Vec<usize> = arg(indices, "indices", "a list of non-negative integers")?;
    if list.len() > MAX_READ {
        return Err(bad_arg(format!(
            "argument indices: at most {MAX_READ} indices per call, got {}",
            list.len()
        )));
    }
    let mut order: Vec<usize> = (0..list.len()).collect();
    order.sort_unstable_by_key(|&k| list[k]);
    let take = |s: &SortedSet| {
        let mut found: Vec<Option<Run>> = vec![None; list.len()];
        for k in order {
            found[k] = (list[k] < s.len()).then(|| s.run(list[k], 1));
        }
        found
    };
    let args = [set, indices, default];
    let terms = read_then(&resource, on, take, |found| {
        let items = || found.iter().map(|run| run.as_ref().and_then(Run::first));
        let mut budget = Budget::normal();
        if let Some(moved) = on.moves(env, &args, || items().flatten().any(|v| budget.value(v))) {
            return moved;
        }
        let terms: Vec<Term> = items()
            .map(|item| item.map_or(default, |v| encode(env, v)))
            .collect();
        terms.encode(env)
    })?;
    consume_since(env, began);
    Ok(terms)
}

twin_nifs!(
    sorted_set_at_many,
    sorted_set_at_many_dirty,
    at_many,
    (set, indices, default)
);

fn slice<'a>(
    env: Env<'a>,
    on: On,
    set: Term<'a>,
    start: Term<'a>,
    amount: Term<'a>,
) -> NifResult<Term<'a>> {
    let began = Instant::now();
    let resource = handle(set)?;
    let first = count(start, "start")?;
    let n = read_limit(amount, "amount")?;
    encode_run(
        env,
        on,
        &[set, start, amount],
        &resource,
        |s| s.run(first, n),
        began,
    )
}

/// Encodes the items of a read (see `read_then`), here or as the dirty twin when they weigh
/// more than a normal scheduler's budget.
fn encode_run<'a>(
    env: Env<'a>,
    on: On,
    args: &[Term<'a>],
    set: &SortedSetResource,
    take: impl FnOnce(&SortedSet) -> Run,
    began: Instant,
) -> NifResult<Term<'a>> {
    let list = read_then(set, on, take, |run| {
        let heavy = || {
            let mut budget = Budget::normal();
            run.iter().any(|v| budget.value(v))
        };
        on.moves(env, args, heavy)
            .unwrap_or_else(|| encode_list(env, run.iter()))
    })?;
    consume_since(env, began);
    Ok(list)
}

twin_nifs!(
    sorted_set_slice,
    sorted_set_slice_dirty,
    slice,
    (set, start, amount)
);

fn read_limit(term: Term, name: &str) -> NifResult<usize> {
    let n = count(term, name)?;
    if n > MAX_READ {
        return Err(bad_arg(format!(
            "argument {name}: at most {MAX_READ} items per call, got {n}"
        )));
    }
    Ok(n)
}

/// A bound as the Elixir side passes it: `:unbounded`, `{:included, t}` or `{:excluded, t}`.
enum OwnedBound {
    Unbounded,
    Included(Value),
    Excluded(Value),
}

impl OwnedBound {
    fn decode(term: Term, name: &str) -> NifResult<OwnedBound> {
        if let Ok(atom) = term.decode::<rustler::Atom>() {
            if atom == crate::unbounded() {
                return Ok(OwnedBound::Unbounded);
            }
        }
        let (tag, value): (rustler::Atom, Term) = arg(
            term,
            name,
            "{:included, term}, {:excluded, term} or :unbounded",
        )?;
        let value = decode(value, name)?;
        if tag == crate::included() {
            Ok(OwnedBound::Included(value))
        } else if tag == crate::excluded() {
            Ok(OwnedBound::Excluded(value))
        } else {
            Err(bad_arg(format!(
                "argument {name}: expected {{:included, term}}, {{:excluded, term}} or :unbounded"
            )))
        }
    }

    fn as_bound(&self) -> Bound<'_> {
        match self {
            OwnedBound::Unbounded => Bound::Unbounded,
            OwnedBound::Included(v) => Bound::Included(v),
            OwnedBound::Excluded(v) => Bound::Excluded(v),
        }
    }
}

/// Up to `limit` items between two bounds, ascending.
fn range<'a>(
    env: Env<'a>,
    on: On,
    set: Term<'a>,
    min: Term<'a>,
    max: Term<'a>,
    limit: Term<'a>,
) -> NifResult<Term<'a>> {
    let began = Instant::now();
    let args = [set, min, max, limit];
    if let Some(moved) = on.moves(env, &args, || heavy_args(&[min, max])) {
        return Ok(moved);
    }
    let resource = handle(set)?;
    let lo = OwnedBound::decode(min, "min")?;
    let hi = OwnedBound::decode(max, "max")?;
    let n = read_limit(limit, "limit")?;
    let take = |s: &SortedSet| s.range_run(lo.as_bound(), hi.as_bound(), n);
    encode_run(env, on, &args, &resource, take, began)
}

twin_nifs!(
    sorted_set_range,
    sorted_set_range_dirty,
    range,
    (set, min, max, limit)
);

yielding_nif!(sorted_set_memory, sorted_set_memory_body, (set));

fn sorted_set_memory_body<'a>(_env: Env<'a>, set: Term<'a>) -> NifResult<usize> {
    Ok(handle(set)?.read()?.memory())
}

yielding_nif!(sorted_set_debug, sorted_set_debug_body, (set));

fn sorted_set_debug_body<'a>(_env: Env<'a>, set: Term<'a>) -> NifResult<String> {
    Ok(handle(set)?.read()?.debug())
}

/// Checks every internal invariant (tests use it): `:ok` or `{:error, description}`. O(n).
#[rustler::nif(schedule = "DirtyCpu")]
fn sorted_set_check<'a>(env: Env<'a>, set: Term<'a>) -> NifResult<Term<'a>> {
    Ok(match handle(set)?.read()?.check_invariants() {
        Ok(()) => crate::ok().encode(env),
        Err(e) => (crate::error(), e).encode(env),
    })
}

/// `{:ok, set, report}` for the durable set in `dir` (created with `bucket_size` when the
/// directory holds none), or `{:error, reason}`.
#[rustler::nif(schedule = "DirtyIo")]
fn sorted_set_recover<'a>(
    env: Env<'a>,
    dir: Term<'a>,
    sync: Term<'a>,
    bucket: Term<'a>,
) -> NifResult<Term<'a>> {
    let dir = durable::path(dir, "durable")?;
    let mode = durable::sync_mode(sync)?;
    let bucket = bucket_size(bucket)?;
    Ok(
        match durable::recover(&dir, mode, || SortedSet::new(bucket, 0)) {
            Ok((set, journal, report)) => {
                let handle = SortedSetHandle {
                    resource: ResourceArc::new(Shared::with_log(
                        set,
                        Log::Journal(journal.clone()),
                    )),
                    journal: Some(ResourceArc::new(JournalResource(journal))),
                };
                (crate::ok(), handle, durable::report(env, &report)).encode(env)
            }
            Err(e) => durable::error(env, &e),
        },
    )
}

durable::snapshot_nifs!(
    SortedSet,
    handle,
    wrap,
    sorted_set_dump,
    sorted_set_load,
    sorted_set_save,
    sorted_set_open,
    sorted_set_checkpoint
);
