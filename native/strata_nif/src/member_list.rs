//! NIFs behind `Strata.MemberList` (prefix `member_list_`): the engine of
//! `strata_core::member_list` behind a lock, with the subscribers' terms and monitors.
//!
//! A change runs in two calls. The first validates, records and applies it under the write
//! lock, and takes out what each reached view's subscribers get (the core's ops, with shared
//! items, and the subscribers: no term is built under the lock). The second, after the
//! Elixir side has waited for the change to be durable, builds each view's ops term once and
//! hands it to every subscriber of the view: sent to pid subscribers (`delivery: :send`) or
//! gathered into the list the caller returns; it yields every ~250 µs, so a change that
//! reaches 50,000 sessions never holds a scheduler.
//!
//! Pid subscribers are monitored by the list's resource: when one exits, its subscription
//! ends in the `down` callback (or, if a change holds the lock at that moment, at the start
//! of the next call that takes it).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustler::{Atom, Encoder, Env, LocalPid, Monitor, NifResult, Resource, ResourceArc, Term};
use strata_core::member_list::{
    ranges, Changes, Item, Layout, Member, MemberList, Members, Mutation, Op, Span, SubId,
};
use strata_core::op::ListOp;
use strata_core::persist::Persist;
use strata_core::Term as Value;

use crate::durable::{self, JournalResource};
use crate::error::{arg, bad_arg};
use crate::resource::{Freeze, Log, Measured, Shared};
use crate::runtime::{consume_since, reschedule_normal, twin_nifs, yielding_nif, Budget, On};
use crate::term::{decode, encode};

mod atoms {
    rustler::atoms! {
        group,
        member,
        sync,
        insert,
        delete,
        update,
        invalidate,
        groups,
        id,
        count,
        first,
        last,
        step,
        __struct__,
        range = "Elixir.Range",
        none,
        upsert,
        remove,
        define_groups,
        strata_member_list,
    }
}

/// Most mutations one `batch` takes.
const MAX_BATCH: usize = 10_000;
/// Most positions one `slice` reads.
const MAX_SLICE: usize = 10_000;
/// Positions a read encodes on a normal scheduler before it moves to a dirty one.
const NORMAL_ITEMS: usize = 1_000;
/// How long one delivery call runs before it yields.
const DELIVERY_SLICE: Duration = Duration::from_micros(250);

/// A subscriber's term, kept without a process environment: a local pid or an atom as
/// itself, anything else in external term format.
#[derive(Clone)]
enum Who {
    Pid(LocalPid),
    Atom(Atom),
    Etf(Arc<[u8]>),
}

impl Who {
    fn term<'a>(&self, env: Env<'a>) -> Term<'a> {
        match self {
            Who::Pid(pid) => pid.encode(env),
            Who::Atom(atom) => atom.encode(env),
            Who::Etf(bytes) => env
                .binary_to_term(bytes)
                .map(|(t, _)| t)
                .unwrap_or_else(|| crate::nil().encode(env)),
        }
    }
}

struct Subscriber {
    who: Who,
    monitor: Option<Monitor>,
}

/// The subscribers' terms, numbered for the core (a number is a slot, reused once free).
#[derive(Default)]
struct Registry {
    slots: Vec<Option<Subscriber>>,
    free: Vec<usize>,
    pids: HashMap<LocalPid, SubId>,
    others: HashMap<Arc<[u8]>, SubId>,
}

impl Registry {
    fn find(&self, who: &Who) -> Option<SubId> {
        match who {
            Who::Pid(pid) => self.pids.get(pid).copied(),
            Who::Atom(_) | Who::Etf(_) => None,
        }
    }

    fn find_key(&self, key: &[u8]) -> Option<SubId> {
        self.others.get(key).copied()
    }

    fn add(&mut self, who: Who, key: Option<Arc<[u8]>>, monitor: Option<Monitor>) -> SubId {
        let slot = self.free.pop().unwrap_or(self.slots.len());
        let sub = slot as SubId;
        match (&who, key) {
            (Who::Pid(pid), _) => {
                self.pids.insert(*pid, sub);
            }
            (_, Some(key)) => {
                self.others.insert(key, sub);
            }
            (_, None) => {}
        }
        let entry = Some(Subscriber { who, monitor });
        if slot == self.slots.len() {
            self.slots.push(entry);
        } else {
            self.slots[slot] = entry;
        }
        sub
    }

    fn remove(&mut self, sub: SubId, key: Option<&[u8]>) -> Option<Subscriber> {
        let gone = self.slots.get_mut(sub as usize)?.take()?;
        match (&gone.who, key) {
            (Who::Pid(pid), _) => {
                self.pids.remove(pid);
            }
            (_, Some(key)) => {
                self.others.remove(key);
            }
            (_, None) => {}
        }
        self.free.push(sub as usize);
        Some(gone)
    }

    fn who(&self, sub: SubId) -> Option<&Who> {
        self.slots.get(sub as usize)?.as_ref().map(|s| &s.who)
    }

    fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.slots.capacity() * size_of::<Option<Subscriber>>()
            + self.free.capacity() * size_of::<usize>()
            + self.pids.capacity() * (size_of::<(LocalPid, SubId)>() + 1)
            // A non-pid subscriber's key is shared with its slot: counted once, ~32 bytes.
            + self.others.capacity() * (size_of::<(Arc<[u8]>, SubId)>() + 1 + 32)
    }
}

/// A list and its subscribers' terms.
pub struct ListState {
    list: MemberList,
    subs: Registry,
}

impl ListState {
    fn new(list: MemberList) -> ListState {
        ListState {
            list,
            subs: Registry::default(),
        }
    }

    /// Ends the subscription of an exited pid.
    fn drop_pid(&mut self, pid: LocalPid) {
        if let Some(sub) = self.subs.find(&Who::Pid(pid)) {
            self.list.unsubscribe(sub);
            self.subs.remove(sub, None);
        }
    }
}

impl Measured for ListState {
    fn memory(&self) -> usize {
        self.list.memory() + self.subs.heap_bytes()
    }
}

impl Persist for ListState {
    const KIND: strata_core::codec::Kind = MemberList::KIND;

    fn put_payload(&self, out: &mut Vec<u8>) {
        self.list.put_payload(out);
    }

    fn get_payload(
        r: &mut strata_core::codec::Reader,
    ) -> Result<Self, strata_core::codec::DecodeError> {
        MemberList::get_payload(r).map(ListState::new)
    }

    fn replay(&mut self, record: &[u8]) -> Result<(), strata_core::codec::DecodeError> {
        self.list.replay(record)
    }
}

/// A snapshot is taken from a copy-on-write clone of the members (a pointer per bucket).
impl Freeze for ListState {
    type Frozen = Members;

    fn freeze(&self) -> Members {
        self.list.members().clone()
    }

    fn seal(frozen: Members, _live: &Shared<Self>) -> NifResult<Vec<u8>> {
        Ok(strata_core::codec::seal(MemberList::KIND, |out| {
            frozen.put_payload(out)
        }))
    }
}

/// A member list's resource: the state behind its lock, the owner (the only process that
/// changes it) and the exits of monitored subscribers not yet applied.
pub struct ListResource {
    shared: Shared<ListState>,
    owner: LocalPid,
    downs: Mutex<Vec<LocalPid>>,
}

#[rustler::resource_impl]
impl Resource for ListResource {
    fn down<'a>(&'a self, _env: Env<'a>, pid: LocalPid, _monitor: Monitor) {
        // A scheduler thread: never wait for the lock here.
        if self
            .shared
            .try_write_now(|state| state.drop_pid(pid))
            .is_none()
        {
            self.downs.lock().push(pid);
        }
    }
}

impl ListResource {
    fn new(env: Env, state: ListState, log: Log) -> ResourceArc<ListResource> {
        ResourceArc::new(ListResource {
            shared: Shared::with_log(state, log),
            owner: env.pid(),
            downs: Mutex::new(Vec::new()),
        })
    }

    fn owner(&self, env: Env) -> NifResult<()> {
        if env.pid() == self.owner {
            Ok(())
        } else {
            Err(bad_arg(
                "argument list: a member list is changed only by the process that created it",
            ))
        }
    }

    /// Runs a change under the write lock, after applying the exits that arrived while the
    /// lock was held.
    fn change<R>(
        &self,
        f: impl FnOnce(&mut ListState, &crate::resource::Recorder) -> NifResult<R>,
    ) -> NifResult<R> {
        self.shared.write_logged(|state, log| {
            for pid in std::mem::take(&mut *self.downs.lock()) {
                state.drop_pid(pid);
            }
            f(state, log)
        })
    }
}

fn handle(term: Term) -> NifResult<ResourceArc<ListResource>> {
    arg(term, "list", "a %Strata.MemberList{}")
}

fn heavy(args: &[Term]) -> bool {
    let mut budget = Budget::normal();
    args.iter().any(|&t| budget.term(t))
}

fn bucket_size(term: Term) -> NifResult<usize> {
    let size: usize = arg(term, "bucket_size", "an integer in 4..65536")?;
    if !(4..=strata_core::sorted_set::MAX_BUCKET_SIZE).contains(&size) {
        return Err(bad_arg(
            "argument bucket_size: expected an integer in 4..65536",
        ));
    }
    Ok(size)
}

/// Groups as the Elixir side passes them: `[{role_id, position}]`, checked.
fn layout(term: Term) -> NifResult<Layout> {
    let pairs: Vec<(Term, u64)> = arg(term, "groups", "a list of {role_id, position}")?;
    let roles = pairs
        .into_iter()
        .map(|(id, p)| Ok((decode(id, "groups")?, p)))
        .collect::<NifResult<Vec<_>>>()?;
    Layout::new(roles).map_err(|e| bad_arg(format!("argument groups: {e}")))
}

fn member(term: Term) -> NifResult<Member> {
    Member::parse(decode(term, "member")?).map_err(|e| bad_arg(format!("argument member: {e}")))
}

// --- building the list -------------------------------------------------------------------

#[rustler::nif]
fn member_list_new<'a>(env: Env<'a>, groups: Term<'a>, bucket: Term<'a>) -> NifResult<Term<'a>> {
    let layout = layout(groups)?;
    let bucket = bucket_size(bucket)?;
    let state = ListState::new(MemberList::new(layout, bucket));
    Ok(ListResource::new(env, state, Log::Off).encode(env))
}

/// `{:ok, list, journal, report}` for the durable list in `dir` (created with these groups
/// and bucket size when it holds none), or `{:error, reason}`.
#[rustler::nif(schedule = "DirtyIo")]
fn member_list_recover<'a>(
    env: Env<'a>,
    dir: Term<'a>,
    sync: Term<'a>,
    groups: Term<'a>,
    bucket: Term<'a>,
) -> NifResult<Term<'a>> {
    let dir = durable::path(dir, "durable")?;
    let mode = durable::sync_mode(sync)?;
    let layout = layout(groups)?;
    let bucket = bucket_size(bucket)?;
    let fresh = || ListState::new(MemberList::new(layout, bucket));
    Ok(match durable::recover(&dir, mode, fresh) {
        Ok((state, journal, report)) => {
            let list = ListResource::new(env, state, Log::Journal(journal.clone()));
            let journal = ResourceArc::new(JournalResource(journal));
            (crate::ok(), list, journal, durable::report(env, &report)).encode(env)
        }
        Err(e) => durable::error(env, &e),
    })
}

// --- changes -----------------------------------------------------------------------------

/// What a change's subscribers get, taken out under the lock: each reached view's ops
/// (items shared with the list) and subscribers, and the changed group counts. Delivered by
/// `member_list_deliver`.
pub struct Outbox {
    state: Mutex<Delivery>,
}

struct Delivery {
    views: Vec<(Vec<Op>, Vec<Who>)>,
    groups: Vec<(Value, usize)>,
    /// Where delivery stands: the view, and the subscriber in it.
    view: usize,
    sub: usize,
}

#[rustler::resource_impl]
impl Resource for Outbox {}

/// `:none`, or the outbox of `changes`.
fn outbox<'a>(env: Env<'a>, state: &ListState, changes: Changes) -> Term<'a> {
    if changes.views.is_empty() {
        return atoms::none().encode(env);
    }
    let views = changes
        .views
        .into_iter()
        .map(|(v, ops)| {
            let subs = state.list.views().get(v).map_or(&[][..], |view| &view.subs);
            let who = subs
                .iter()
                .filter_map(|&s| state.subs.who(s).cloned())
                .collect();
            (ops, who)
        })
        .collect();
    ResourceArc::new(Outbox {
        state: Mutex::new(Delivery {
            views,
            groups: changes.groups,
            view: 0,
            sub: 0,
        }),
    })
    .encode(env)
}

/// Records and applies one mutation.
fn apply_one<'a>(env: Env<'a>, list: Term<'a>, mutation: Mutation) -> NifResult<Term<'a>> {
    let list = handle(list)?;
    list.owner(env)?;
    list.change(|state, log| {
        if !state.list.changes_anything(&mutation) {
            return Ok(atoms::none().encode(env));
        }
        log.record(&ListOp(Cow::Borrowed(std::slice::from_ref(&mutation))))?;
        let changes = match mutation {
            Mutation::Upsert(m) => state.list.upsert(m),
            Mutation::Remove(id) => state.list.remove(&id),
            Mutation::DefineGroups(l) => state.list.define_groups(l),
        };
        Ok(outbox(env, state, changes))
    })
}

fn upsert<'a>(env: Env<'a>, on: On, list: Term<'a>, m: Term<'a>) -> NifResult<Term<'a>> {
    if let Some(moved) = on.moves(env, &[list, m], || heavy(&[m])) {
        return Ok(moved);
    }
    let began = Instant::now();
    let done = apply_one(env, list, Mutation::Upsert(member(m)?));
    consume_since(env, began);
    done
}

twin_nifs!(
    member_list_upsert,
    member_list_upsert_dirty,
    upsert,
    (list, member)
);

fn remove<'a>(env: Env<'a>, on: On, list: Term<'a>, id: Term<'a>) -> NifResult<Term<'a>> {
    if let Some(moved) = on.moves(env, &[list, id], || heavy(&[id])) {
        return Ok(moved);
    }
    let began = Instant::now();
    let done = apply_one(env, list, Mutation::Remove(decode(id, "id")?));
    consume_since(env, began);
    done
}

twin_nifs!(
    member_list_remove,
    member_list_remove_dirty,
    remove,
    (list, id)
);

/// Sets the groups (dirty: `O(online members)`). The members are regrouped from a
/// copy-on-write clone with the lock released; the lock is taken again only to record the
/// change and put the new set in place.
#[rustler::nif(schedule = "DirtyCpu")]
fn member_list_define_groups<'a>(
    env: Env<'a>,
    list: Term<'a>,
    groups: Term<'a>,
) -> NifResult<Term<'a>> {
    let list = handle(list)?;
    list.owner(env)?;
    let layout = layout(groups)?;
    let mutation = Mutation::DefineGroups(layout.clone());
    let plan = {
        let state = list.shared.read()?;
        if !state.list.changes_anything(&mutation) {
            return Ok(atoms::none().encode(env));
        }
        state.list.plan_groups(layout)
    };
    // Only the owner changes the members, and it is here: nothing else can change them
    // until this call puts the rebuilt set in place.
    let built = plan.build();
    list.change(|state, log| {
        log.record(&ListOp(Cow::Borrowed(std::slice::from_ref(&mutation))))?;
        let changes = state.list.finish_groups(built);
        Ok(outbox(env, state, changes))
    })
}

fn mutations(term: Term) -> NifResult<Vec<Mutation>> {
    let items: Vec<Term> = arg(term, "mutations", "a list")?;
    if items.len() > MAX_BATCH {
        return Err(bad_arg(format!(
            "argument mutations: at most {MAX_BATCH} mutations in a batch"
        )));
    }
    items
        .into_iter()
        .map(|t| {
            let bad = || {
                bad_arg(format!(
                    "argument mutations: expected {{:upsert, member}}, {{:remove, id}} or \
                     {{:define_groups, groups}}, got: {t:?}"
                ))
            };
            let (tag, value): (Atom, Term) = t.decode().map_err(|_| bad())?;
            if tag == atoms::upsert() {
                Ok(Mutation::Upsert(member(value)?))
            } else if tag == atoms::remove() {
                Ok(Mutation::Remove(decode(value, "id")?))
            } else if tag == atoms::define_groups() {
                Ok(Mutation::DefineGroups(layout(value)?))
            } else {
                Err(bad())
            }
        })
        .collect()
}

fn batch<'a>(env: Env<'a>, on: On, list: Term<'a>, ms: Term<'a>) -> NifResult<Term<'a>> {
    // Long (many mutations, large members, or a change of groups): dirty.
    let long = || {
        heavy(&[ms])
            || ms.list_length().is_ok_and(|n| n > 256)
            || ms.into_list_iterator().is_ok_and(|mut items| {
                items.any(|m| {
                    m.decode::<(Atom, Term)>()
                        .is_ok_and(|(tag, _)| tag == atoms::define_groups())
                })
            })
    };
    if let Some(moved) = on.moves(env, &[list, ms], long) {
        return Ok(moved);
    }
    let began = Instant::now();
    let handle = handle(list)?;
    handle.owner(env)?;
    let all = mutations(ms)?;
    let done = handle.change(|state, log| {
        if !all.iter().any(|m| state.list.changes_anything(m)) {
            return Ok(atoms::none().encode(env));
        }
        let op = ListOp(Cow::Owned(all));
        log.record(&op)?;
        let changes = op.apply(&mut state.list);
        Ok(outbox(env, state, changes))
    });
    consume_since(env, began);
    done
}

twin_nifs!(
    member_list_batch,
    member_list_batch_dirty,
    batch,
    (list, mutations)
);

// --- delivery ----------------------------------------------------------------------------

/// Hashes a member's address: one multiply (the default SipHash was a sixth of a slice).
#[derive(Default)]
struct PtrHasher(u64);

impl std::hash::Hasher for PtrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(26);
    }
}

type BuildPtrHasher = std::hash::BuildHasherDefault<PtrHasher>;

/// Builds item terms (each member's once per call, when shared).
struct Items<'a> {
    env: Env<'a>,
    /// Members already made in this call (a delivery shares them across views); `None` for
    /// a single list of items, where nothing repeats.
    members: Option<HashMap<*const Member, Term<'a>, BuildPtrHasher>>,
}

impl<'a> Items<'a> {
    /// Items shared across the ops of several views: each member is made once.
    fn shared(env: Env<'a>) -> Items<'a> {
        Items {
            env,
            members: Some(HashMap::default()),
        }
    }

    /// Items made once each (a SYNC, a slice): no lookups.
    fn once(env: Env<'a>) -> Items<'a> {
        Items { env, members: None }
    }

    fn item(&mut self, item: &Item) -> Term<'a> {
        let env = self.env;
        let make = |m: &Member| (atoms::member(), encode(env, m.term())).encode(env);
        match item {
            Item::Header(id, count) => (atoms::group(), encode(env, id), *count).encode(env),
            Item::Member(m) => match &mut self.members {
                Some(made) => *made.entry(Arc::as_ptr(m)).or_insert_with(|| make(m)),
                None => make(m),
            },
        }
    }

    fn list(&mut self, items: &[Item]) -> Term<'a> {
        let terms: Vec<Term> = items.iter().map(|i| self.item(i)).collect();
        terms.encode(self.env)
    }

    fn op(&mut self, op: &Op) -> Term<'a> {
        let env = self.env;
        match op {
            Op::Sync(span, items) => {
                (atoms::sync(), range(env, *span), self.list(items)).encode(env)
            }
            Op::Insert(i, item) => (atoms::insert(), *i, self.item(item)).encode(env),
            Op::Delete(i) => (atoms::delete(), *i).encode(env),
            Op::Update(i, item) => (atoms::update(), *i, self.item(item)).encode(env),
        }
    }
}

/// `first..last` (a `%Range{}` with step 1).
fn range(env: Env, (first, last): Span) -> Term {
    let keys = [
        atoms::__struct__().encode(env),
        atoms::first().encode(env),
        atoms::last().encode(env),
        atoms::step().encode(env),
    ];
    let values = [
        atoms::range().encode(env),
        first.encode(env),
        last.encode(env),
        1.encode(env),
    ];
    Term::map_from_term_arrays(env, &keys, &values).unwrap_or_else(|_| (first, last).encode(env))
}

/// `[%{id: id, count: count}]`.
fn count_maps<'a>(env: Env<'a>, groups: &[(Value, usize)]) -> Vec<Term<'a>> {
    groups
        .iter()
        .map(|(id, c)| {
            let keys = [atoms::id().encode(env), atoms::count().encode(env)];
            let values = [encode(env, id), c.encode(env)];
            Term::map_from_term_arrays(env, &keys, &values)
                .unwrap_or_else(|_| (encode(env, id), *c).encode(env))
        })
        .collect()
}

/// `{:groups, [%{id: id, count: count}]}`.
fn groups_op<'a>(env: Env<'a>, groups: &[(Value, usize)]) -> Term<'a> {
    (atoms::groups(), count_maps(env, groups)).encode(env)
}

/// Hands a change's ops to its subscribers: `{:strata_member_list, id, ops}` sent to each
/// pid subscriber when `send` is true; `{subscriber, ops}` prepended to `acc` for the others
/// (and for every subscriber when `send` is false). Returns `acc`; yields (continues as
/// itself, `current` holding the ops term of the view in progress) every ~250 µs.
#[rustler::nif]
fn member_list_deliver<'a>(
    env: Env<'a>,
    outbox: Term<'a>,
    id: Term<'a>,
    send: Term<'a>,
    acc: Term<'a>,
    current: Term<'a>,
) -> NifResult<Term<'a>> {
    let began = Instant::now();
    let boxed: ResourceArc<Outbox> = arg(outbox, "outbox", "an outbox")?;
    let send: bool = arg(send, "send", "a boolean")?;
    let mut state = boxed.state.lock();
    let delivery = &mut *state;
    let mut items = Items::shared(env);
    let mut acc = acc;
    let mut current = (delivery.sub > 0).then_some(current);
    let mut done = 0usize;
    while delivery.view < delivery.views.len() {
        let (ops, subs) = &delivery.views[delivery.view];
        let ops_term = *current.get_or_insert_with(|| {
            let mut terms: Vec<Term> = ops.iter().map(|op| items.op(op)).collect();
            if !delivery.groups.is_empty() {
                terms.push(groups_op(env, &delivery.groups));
            }
            terms.encode(env)
        });
        let message = send.then(|| (atoms::strata_member_list(), id, ops_term).encode(env));
        while let Some(who) = subs.get(delivery.sub) {
            match (who, message) {
                (Who::Pid(pid), Some(message)) => {
                    // A subscriber that exited is unsubscribed by its monitor.
                    let _ = env.send(pid, message);
                }
                _ => acc = acc.list_prepend((who.term(env), ops_term).encode(env)),
            }
            delivery.sub += 1;
            done += 1;
            if done.is_multiple_of(64) && began.elapsed() > DELIVERY_SLICE {
                drop(state);
                consume_since(env, began);
                let args = [outbox, id, send.encode(env), acc, ops_term];
                return Ok(reschedule_normal(env, "member_list_deliver", &args));
            }
        }
        delivery.view += 1;
        delivery.sub = 0;
        current = None;
    }
    consume_since(env, began);
    Ok(acc)
}

// --- subscribers -------------------------------------------------------------------------

fn spans(term: Term) -> NifResult<Vec<Span>> {
    let pairs: Vec<(usize, usize)> = arg(term, "ranges", "a list of {first, last}")?;
    ranges::normalize(pairs).map_err(|e| bad_arg(format!("argument ranges: {e}")))
}

/// The subscriber's term kept, and its key when it is not a pid.
fn who(term: Term) -> NifResult<(Who, Option<Arc<[u8]>>)> {
    if let Ok(pid) = term.decode::<LocalPid>() {
        return Ok((Who::Pid(pid), None));
    }
    let key: Arc<[u8]> = term.to_binary().as_slice().into();
    let who = match term.decode::<Atom>() {
        Ok(atom) => Who::Atom(atom),
        Err(_) => Who::Etf(key.clone()),
    };
    Ok((who, Some(key)))
}

fn subscribed<'a>(env: Env<'a>, got: strata_core::member_list::Subscribed) -> Term<'a> {
    let mut items = Items::once(env);
    let mut ops: Vec<Term> = got
        .invalidate
        .iter()
        .map(|&s| (atoms::invalidate(), range(env, s)).encode(env))
        .collect();
    ops.extend(
        got.syncs
            .iter()
            .map(|(s, xs)| (atoms::sync(), range(env, *s), items.list(xs)).encode(env)),
    );
    ops.push(groups_op(env, &got.groups));
    ops.encode(env)
}

fn subscribe<'a>(
    env: Env<'a>,
    on: On,
    list: Term<'a>,
    subscriber: Term<'a>,
    ranges: Term<'a>,
) -> NifResult<Term<'a>> {
    let spans = spans(ranges)?;
    let width: usize = spans.iter().map(|(a, b)| b - a + 1).sum();
    let args = [list, subscriber, ranges];
    if let Some(moved) = on.moves(env, &args, || width > NORMAL_ITEMS || heavy(&[subscriber])) {
        return Ok(moved);
    }
    let handle = handle(list)?;
    handle.owner(env)?;
    let (who, key) = who(subscriber)?;
    let got = handle.change(|state, _log| {
        let known = match &key {
            Some(key) => state.subs.find_key(key),
            None => state.subs.find(&who),
        };
        let sub = match known {
            Some(sub) => sub,
            None => {
                let monitor = match &who {
                    Who::Pid(pid) => match handle.monitor(Some(env), pid) {
                        Some(m) => Some(m),
                        // Already exited: nothing to keep.
                        None => return Ok(state.list.subscribe_once(spans)),
                    },
                    _ => None,
                };
                state.subs.add(who.clone(), key.clone(), monitor)
            }
        };
        Ok(state.list.subscribe(sub, spans))
    })?;
    Ok(subscribed(env, got))
}

twin_nifs!(
    member_list_subscribe,
    member_list_subscribe_dirty,
    subscribe,
    (list, subscriber, ranges)
);

fn unsubscribe<'a>(env: Env<'a>, list: Term<'a>, subscriber: Term<'a>) -> NifResult<Term<'a>> {
    let handle = handle(list)?;
    handle.owner(env)?;
    let (who, key) = who(subscriber)?;
    let (spans, monitor) = handle.change(|state, _log| {
        let known = match &key {
            Some(key) => state.subs.find_key(key),
            None => state.subs.find(&who),
        };
        let Some(sub) = known else {
            return Ok((Vec::new(), None));
        };
        let spans = state.list.unsubscribe(sub).unwrap_or_default();
        let gone = state.subs.remove(sub, key.as_deref());
        Ok((spans, gone.and_then(|s| s.monitor)))
    })?;
    if let Some(monitor) = monitor {
        handle.demonitor(Some(env), &monitor);
    }
    let ops: Vec<Term> = spans
        .into_iter()
        .map(|s| (atoms::invalidate(), range(env, s)).encode(env))
        .collect();
    Ok(ops.encode(env))
}

yielding_nif!(member_list_unsubscribe, unsubscribe, (list, subscriber));

// --- reads -------------------------------------------------------------------------------

fn slice<'a>(
    env: Env<'a>,
    on: On,
    list: Term<'a>,
    first: Term<'a>,
    last: Term<'a>,
) -> NifResult<Term<'a>> {
    let first: usize = arg(
        first,
        "range",
        "a first..last range of non-negative integers",
    )?;
    let last: usize = arg(
        last,
        "range",
        "a first..last range of non-negative integers",
    )?;
    if last >= first && last - first >= MAX_SLICE {
        return Err(bad_arg(format!(
            "argument range: at most {MAX_SLICE} positions per call"
        )));
    }
    let wide = last >= first && last - first >= NORMAL_ITEMS;
    if let Some(moved) = on.moves(env, &[list, first.encode(env), last.encode(env)], || wide) {
        return Ok(moved);
    }
    let handle = handle(list)?;
    let got = if last < first {
        Vec::new()
    } else {
        handle.shared.read()?.list.slice(first, last)
    };
    // Items are encoded with the lock released.
    Ok(Items::once(env).list(&got))
}

twin_nifs!(
    member_list_slice,
    member_list_slice_dirty,
    slice,
    (list, first, last)
);

fn index_of<'a>(env: Env<'a>, list: Term<'a>, id: Term<'a>) -> NifResult<Term<'a>> {
    let handle = handle(list)?;
    let id = decode(id, "id")?;
    let state = handle.shared.read()?;
    Ok(state.list.index_of(&id).encode(env))
}

yielding_nif!(member_list_index_of, index_of, (list, id));

fn size<'a>(env: Env<'a>, list: Term<'a>) -> NifResult<Term<'a>> {
    Ok(handle(list)?.shared.read()?.list.size().encode(env))
}

yielding_nif!(member_list_size, size, (list));

fn group_counts<'a>(env: Env<'a>, list: Term<'a>) -> NifResult<Term<'a>> {
    let counts = handle(list)?.shared.read()?.list.group_counts();
    Ok(count_maps(env, &counts).encode(env))
}

yielding_nif!(member_list_group_counts, group_counts, (list));

/// `{members, subscribers, views, memory}`.
fn info<'a>(env: Env<'a>, list: Term<'a>) -> NifResult<Term<'a>> {
    let handle = handle(list)?;
    let state = handle.shared.read()?;
    let views = state.list.views();
    Ok((
        state.list.len(),
        views.subscribers(),
        views.views(),
        state.memory(),
    )
        .encode(env))
}

yielding_nif!(member_list_info, info, (list));

// --- snapshots ---------------------------------------------------------------------------

/// The list as a snapshot binary, encoded from a copy-on-write clone.
#[rustler::nif(schedule = "DirtyCpu")]
fn member_list_dump<'a>(env: Env<'a>, list: Term<'a>) -> NifResult<Term<'a>> {
    let bytes = handle(list)?.shared.snapshot()?;
    durable::binary(env, &bytes)
}

/// `{:ok, list}` (owned by the caller) from a snapshot binary, or `{:error, reason}`.
#[rustler::nif(schedule = "DirtyCpu")]
fn member_list_load<'a>(env: Env<'a>, bytes: rustler::Binary<'a>) -> NifResult<Term<'a>> {
    Ok(match durable::load::<ListState>(env, bytes) {
        Ok(state) => (crate::ok(), ListResource::new(env, state, Log::Off)).encode(env),
        Err(e) => e,
    })
}

#[rustler::nif(schedule = "DirtyIo")]
fn member_list_save<'a>(env: Env<'a>, list: Term<'a>, path: Term<'a>) -> NifResult<Term<'a>> {
    let list = handle(list)?;
    let path = durable::path(path, "path")?;
    let bytes = list.shared.snapshot()?;
    Ok(durable::save(env, &path, &bytes))
}

#[rustler::nif(schedule = "DirtyIo")]
fn member_list_open<'a>(env: Env<'a>, path: Term<'a>) -> NifResult<Term<'a>> {
    let path = durable::path(path, "path")?;
    Ok(match durable::open_file::<ListState>(env, &path) {
        Ok(state) => (crate::ok(), ListResource::new(env, state, Log::Off)).encode(env),
        Err(e) => e,
    })
}

#[rustler::nif(schedule = "DirtyIo")]
fn member_list_checkpoint<'a>(env: Env<'a>, list: Term<'a>) -> NifResult<Term<'a>> {
    let list = handle(list)?;
    durable::checkpoint(env, &list.shared)
}
