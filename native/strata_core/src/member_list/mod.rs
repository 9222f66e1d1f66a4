//! The lazy member list engine: members kept in display order, grouped under hoisted roles,
//! online and offline; subscribers watching ranges of the rendered list; and, for each
//! change, the minimal ops for each view it reaches (see [`ops`]).
//!
//! The rendered list is, for each non-empty group in display order, a header
//! `{group, count}` followed by its members. Members are held in a [`SortedSet`] of
//! [`Keyed`] members (the set gives the index of every insert and remove); a member's
//! position is its index plus the headers before it. Group counts are kept beside.
//!
//! | operation | cost |
//! |---|---|
//! | `upsert`, `remove` | `O(log n + B + g)` plus `O(spans)` for each view the change reaches |
//! | `batch` of `k` | the changes, then once per view reached: `O(k)` replay |
//! | `subscribe` | `O(log n + width)` |
//! | `define_groups` | `O(online members · log)`, building a new set off the old one |

pub mod layout;
pub mod ops;
pub mod ranges;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::sorted_set::{SortedSet, DEFAULT_BUCKET_SIZE, MAX_BUCKET_SIZE};
use crate::term::{compare_exact, Term};

pub use layout::{IdKey, Keyed, Layout, LayoutError, Member, OFFLINE, ONLINE};
pub use ops::{Change, Edit, Item, Op};
pub use ranges::{RangeError, Region, Span, SubId, View, Views};

/// A change to a list, as a batch takes it.
#[derive(Debug, Clone)]
pub enum Mutation {
    Upsert(Member),
    Remove(Term),
    DefineGroups(Layout),
}

/// What subscribers get from a change: the ops of each view it reached (never empty), and
/// the group counts that changed (sent to those views after their ops).
#[derive(Debug, Default)]
pub struct Changes {
    pub views: Vec<(usize, Vec<Op>)>,
    pub groups: Vec<(Term, usize)>,
}

/// What a new subscription gets.
#[derive(Debug)]
pub struct Subscribed {
    /// Ranges watched before and no longer.
    pub invalidate: Vec<Span>,
    /// The items of each range.
    pub syncs: Vec<(Span, Vec<Item>)>,
    /// Every non-empty group's count.
    pub groups: Vec<(Term, usize)>,
}

/// The items of some views' ranges, by view.
pub type Windows = Vec<(usize, Vec<Vec<Item>>)>;

/// A change of groups in progress (see [`MemberList::plan_groups`]).
pub struct GroupsPlan {
    members: Members,
    layout: Layout,
    regroup: bool,
    before: Windows,
    counts: Vec<(Term, usize)>,
}

/// A change of groups built, to put in place with [`MemberList::finish_groups`].
pub struct GroupsBuilt {
    members: Members,
    regroup: bool,
    before: Windows,
    counts: Vec<(Term, usize)>,
}

impl GroupsPlan {
    /// Step two: the members regrouped (`O(online members)`, reading only the clone).
    pub fn build(self) -> GroupsBuilt {
        let members = if self.regroup {
            regroup(&self.members, self.layout)
        } else {
            // The same groups in the same order: the keys hold; only positions changed.
            Members {
                layout: self.layout,
                ..self.members
            }
        };
        GroupsBuilt {
            members,
            regroup: self.regroup,
            before: self.before,
            counts: self.counts,
        }
    }
}

/// The members and groups of a list, without its subscribers: what a snapshot holds.
#[derive(Debug, Clone, Default)]
pub struct Members {
    set: SortedSet<Keyed>,
    layout: Layout,
    counts: Vec<usize>,
}

impl Members {
    /// Bucket size of the member set.
    pub fn bucket_size(&self) -> usize {
        self.set.bucket_size()
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The members, in display order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Member>> + '_ {
        self.set.iter().map(|k| &k.member)
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// A member list.
#[derive(Debug, Clone)]
pub struct MemberList {
    members: Members,
    ids: BTreeMap<IdKey, Arc<Member>>,
    views: Views,
}

impl Default for MemberList {
    fn default() -> Self {
        MemberList::new(Layout::default(), DEFAULT_BUCKET_SIZE)
    }
}

impl MemberList {
    /// An empty list with these groups; `bucket_size` is clamped into the set's range.
    pub fn new(layout: Layout, bucket_size: usize) -> MemberList {
        let counts = vec![0; layout.groups()];
        MemberList {
            members: Members {
                set: SortedSet::new(bucket_size.min(MAX_BUCKET_SIZE), 0),
                layout,
                counts,
            },
            ids: BTreeMap::new(),
            views: Views::default(),
        }
    }

    /// A list of `members` (ids must not repeat: `Err(id)` names the first that does).
    pub fn build(
        layout: Layout,
        bucket_size: usize,
        members: Vec<Member>,
    ) -> Result<MemberList, Term> {
        let mut list = MemberList::new(layout, bucket_size);
        let mut keyed = Vec::with_capacity(members.len());
        for member in members {
            let member = Arc::new(member);
            let key = IdKey(member.id().clone());
            if list.ids.insert(key, member.clone()).is_some() {
                return Err(member.id().clone());
            }
            let sort = list.members.layout.sort_of(&member);
            keyed.push(Keyed::new(sort, member));
        }
        list.members.set = SortedSet::from_unsorted(keyed, list.members.set.bucket_size());
        list.members.counts = count_groups(&list.members.set, &list.members.layout);
        Ok(list)
    }

    /// The members and groups (a copy-on-write clone: a pointer per bucket).
    pub fn members(&self) -> &Members {
        &self.members
    }

    pub fn views(&self) -> &Views {
        &self.views
    }

    pub fn layout(&self) -> &Layout {
        &self.members.layout
    }

    /// Members in the list.
    pub fn len(&self) -> usize {
        self.members.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.set.is_empty()
    }

    /// Items in the rendered list: members plus a header per non-empty group.
    pub fn size(&self) -> usize {
        size_of_list(&self.members.counts)
    }

    /// Every group in display order with its count.
    pub fn group_counts(&self) -> Vec<(Term, usize)> {
        (0..self.members.layout.groups())
            .map(|g| (self.members.layout.group_id(g), self.members.counts[g]))
            .collect()
    }

    /// The member with this id (exactly).
    pub fn get(&self, id: &Term) -> Option<&Arc<Member>> {
        self.ids.get(&IdKey(id.clone()))
    }

    /// The position of the member with this id in the rendered list.
    pub fn index_of(&self, id: &Term) -> Option<usize> {
        let member = self.get(id)?;
        let key = self.key_of(member);
        let index = self.members.set.find_index(&key)?;
        let g = self.members.layout.group_of(key.sort);
        Some(position(index, g, &self.members.counts))
    }

    fn key_of(&self, member: &Arc<Member>) -> Keyed {
        Keyed::new(self.members.layout.sort_of(member), member.clone())
    }

    /// The item at position `p`.
    pub fn item(&self, p: usize) -> Option<Item> {
        item_at(&self.members, p)
    }

    /// The items at positions `first..=last` (fewer past the end).
    pub fn slice(&self, first: usize, last: usize) -> Vec<Item> {
        slice(&self.members, first, last)
    }

    /// Bytes held: the member set (members included), the id index, the views. `O(1)`
    /// (the index's nodes are estimated at their average fill).
    pub fn memory(&self) -> usize {
        // A B-tree leaf holds up to 11 entries; it is about half full after ascending
        // inserts, 2/3 to 3/4 after random ones, and internal nodes add about a tenth:
        // ~6.5 entries per node's chunk.
        const ENTRY: usize =
            crate::heap::chunk(16 + 11 * std::mem::size_of::<(IdKey, Arc<Member>)>()) * 2 / 13;
        std::mem::size_of::<Self>()
            + self.members.set.memory()
            + self.members.layout.heap_bytes()
            + self.members.counts.capacity() * std::mem::size_of::<usize>()
            + self.ids.len() * ENTRY
            + self.views.heap_bytes()
    }

    // --- changes --------------------------------------------------------------------------

    /// Adds or changes a member; the ops for the views it reaches.
    pub fn upsert(&mut self, member: Member) -> Changes {
        let before = self.members.counts.clone();
        let size = self.size();
        let edits = self.upsert_edits(member);
        self.changes(&edits, size, &before, true)
    }

    /// Removes the member with this id (nothing when there is none).
    pub fn remove(&mut self, id: &Term) -> Changes {
        let before = self.members.counts.clone();
        let size = self.size();
        let edits = self.remove_edits(id);
        self.changes(&edits, size, &before, true)
    }

    /// Whether `member` would change the list (an upsert of the same map changes nothing).
    pub fn changes_anything(&self, mutation: &Mutation) -> bool {
        match mutation {
            Mutation::Upsert(m) => self.get(m.id()).is_none_or(|old| !old.same(m)),
            Mutation::Remove(id) => self.get(id).is_some(),
            Mutation::DefineGroups(layout) => !self.layout().same(layout),
        }
    }

    fn upsert_edits(&mut self, member: Member) -> Vec<Edit> {
        let member = Arc::new(member);
        let new = self.key_of(&member);
        let key = IdKey(member.id().clone());
        match self.ids.get_mut(&key) {
            Some(old) if old.same(&member) => Vec::new(),
            Some(slot) => {
                let old = std::mem::replace(slot, member);
                let old = self.key_of(&old);
                let (from, to) = self.members.set.replace(&old, new.clone());
                match (from, to) {
                    (Some(from), Some(to)) => self.change(Some((old, from)), Some((new, to))),
                    _ => Vec::new(), // unreachable: the old key is there, the new one unique
                }
            }
            None => match self.members.set.insert(new.clone()) {
                Some(to) => {
                    self.ids.insert(key, member);
                    self.change(None, Some((new, to)))
                }
                None => Vec::new(), // unreachable: the id is new, so is the key
            },
        }
    }

    fn remove_edits(&mut self, id: &Term) -> Vec<Edit> {
        let Some(member) = self.ids.remove(&IdKey(id.clone())) else {
            return Vec::new();
        };
        let old = self.key_of(&member);
        match self.members.set.remove(&old) {
            Some(from) => self.change(Some((old, from)), None),
            None => Vec::new(), // unreachable: every indexed member is in the set
        }
    }

    /// The edits of one member moving from `old` (key, index in the set before) to `new`
    /// (key, index after), applied to the group counts as they go.
    fn change(&mut self, old: Option<(Keyed, usize)>, new: Option<(Keyed, usize)>) -> Vec<Edit> {
        let layout = &self.members.layout;
        let counts = &mut self.members.counts;
        let mut edits = Vec::with_capacity(4);
        match (old, new) {
            (Some((o, from)), Some((n, to))) => {
                let (og, ng) = (layout.group_of(o.sort), layout.group_of(n.sort));
                let (old_item, new_item) = (Item::Member(o.member), Item::Member(n.member));
                if og == ng && from == to {
                    edits.push(Edit::Update(position(from, og, counts), old_item, new_item));
                } else if og == ng {
                    edits.push(Edit::Delete(position(from, og, counts), old_item));
                    edits.push(Edit::Insert(position(to, ng, counts), new_item));
                } else {
                    leave(layout, counts, og, from, old_item, &mut edits);
                    join(layout, counts, ng, to, new_item, &mut edits);
                }
            }
            (Some((o, from)), None) => {
                let og = layout.group_of(o.sort);
                leave(layout, counts, og, from, Item::Member(o.member), &mut edits);
            }
            (None, Some((n, to))) => {
                let ng = layout.group_of(n.sort);
                join(layout, counts, ng, to, Item::Member(n.member), &mut edits);
            }
            (None, None) => {}
        }
        edits
    }

    /// The ops for every view that `edits` reach, and the group counts that differ from
    /// `before`.
    fn changes(&self, edits: &[Edit], size: usize, before: &[usize], single: bool) -> Changes {
        if edits.is_empty() {
            return Changes::default();
        }
        let change = Change {
            edits,
            before: size,
            after: self.size(),
            single,
        };
        let item = |p: usize| self.item(p);
        let views = self
            .views
            .reached(region(edits))
            .into_iter()
            .filter_map(|v| {
                let ops = ops::view_ops(&self.views.get(v)?.spans, &change, &item);
                (!ops.is_empty()).then_some((v, ops))
            })
            .collect();
        Changes {
            views,
            groups: self.changed_groups(before),
        }
    }

    fn changed_groups(&self, before: &[usize]) -> Vec<(Term, usize)> {
        let counts = &self.members.counts;
        (0..counts.len())
            .filter(|&g| before.get(g) != Some(&counts[g]))
            .map(|g| (self.members.layout.group_id(g), counts[g]))
            .collect()
    }

    /// Applies `mutations` in order and returns the changes of the whole batch: per view,
    /// the ops from the state before the batch to the state after it.
    ///
    /// Mutations of the same member are applied together, as its last one (the list ends the
    /// same); a batch that redefines the groups gives a SYNC for each watched range that
    /// changed.
    pub fn batch(&mut self, mutations: Vec<Mutation>) -> Changes {
        let before_counts = self.members.counts.clone();
        let size = self.size();
        if mutations
            .iter()
            .any(|m| matches!(m, Mutation::DefineGroups(_)))
        {
            let counts = self.group_counts();
            let before = self.windows_from(0);
            for m in mutations {
                match m {
                    Mutation::Upsert(member) => {
                        self.upsert_edits(member);
                    }
                    Mutation::Remove(id) => {
                        self.remove_edits(&id);
                    }
                    Mutation::DefineGroups(layout) => {
                        let built = self.plan_groups(layout).build();
                        self.members = built.members;
                    }
                }
            }
            return self.resync(before, &counts);
        }
        // The last mutation of each member, in the order of their first.
        let mut last: BTreeMap<IdKey, usize> = BTreeMap::new();
        let mut order: Vec<Option<Mutation>> = Vec::with_capacity(mutations.len());
        for m in mutations {
            let id = match &m {
                Mutation::Upsert(member) => member.id().clone(),
                Mutation::Remove(id) => id.clone(),
                Mutation::DefineGroups(_) => continue, // handled above
            };
            match last.get(&IdKey(id.clone())) {
                Some(&at) => order[at] = Some(m),
                None => {
                    last.insert(IdKey(id), order.len());
                    order.push(Some(m));
                }
            }
        }
        let mut edits = Vec::new();
        for m in order.into_iter().flatten() {
            edits.extend(match m {
                Mutation::Upsert(member) => self.upsert_edits(member),
                Mutation::Remove(id) => self.remove_edits(&id),
                Mutation::DefineGroups(_) => Vec::new(),
            });
        }
        self.changes(&edits, size, &before_counts, false)
    }

    // --- groups ---------------------------------------------------------------------------

    /// Sets the groups; a SYNC for each watched range whose items changed.
    pub fn define_groups(&mut self, layout: Layout) -> Changes {
        let plan = self.plan_groups(layout);
        let built = plan.build();
        self.finish_groups(built)
    }

    /// A change of groups, step one (reads only): what [`GroupsPlan::build`] needs, taken in
    /// time that does not grow with the members (a copy-on-write clone), plus the items of
    /// the watched ranges that can change.
    pub fn plan_groups(&self, layout: Layout) -> GroupsPlan {
        let first = self.members.layout.first_difference(&layout);
        let before = match first {
            Some(g) => self.windows_from(header_position(&self.members.counts, g)),
            None => Vec::new(),
        };
        GroupsPlan {
            members: self.members.clone(),
            layout,
            regroup: first.is_some(),
            before,
            counts: self.group_counts(),
        }
    }

    /// Step three (after [`GroupsPlan::build`], which locks nothing): puts the regrouped
    /// members in place; a SYNC for each watched range whose items changed.
    pub fn finish_groups(&mut self, built: GroupsBuilt) -> Changes {
        self.members = built.members;
        if built.regroup {
            self.resync(built.before, &built.counts)
        } else {
            Changes::default()
        }
    }

    /// The items of every watched range of the views with a range ending at or after
    /// `bound`.
    pub fn windows_from(&self, bound: usize) -> Windows {
        self.views
            .reached(Region::From(bound))
            .into_iter()
            .filter_map(|v| {
                let view = self.views.get(v)?;
                let items = view.spans.iter().map(|&(a, b)| self.slice(a, b)).collect();
                Some((v, items))
            })
            .collect()
    }

    /// A SYNC for each range whose items differ from `before`, and the groups whose counts
    /// differ from `counts` (by id).
    fn resync(&self, before: Windows, counts: &[(Term, usize)]) -> Changes {
        let mut views = Vec::new();
        for (v, old) in before {
            let Some(view) = self.views.get(v) else {
                continue;
            };
            let ops: Vec<Op> = view
                .spans
                .iter()
                .zip(old)
                .filter_map(|(&(a, b), old)| {
                    let new = self.slice(a, b);
                    let same =
                        old.len() == new.len() && old.iter().zip(&new).all(|(x, y)| x.same(y));
                    (!same).then_some(Op::Sync((a, b), new))
                })
                .collect();
            if !ops.is_empty() {
                views.push((v, ops));
            }
        }
        let groups = self
            .group_counts()
            .into_iter()
            .filter(|(id, c)| {
                let old = counts
                    .iter()
                    .find(|(o, _)| compare_exact(o, id) == std::cmp::Ordering::Equal);
                old.map_or(0, |(_, n)| *n) != *c
            })
            .collect();
        Changes { views, groups }
    }

    // --- subscribers ----------------------------------------------------------------------

    /// Makes `sub` watch `spans` (normalized by [`ranges::normalize`]; none for a passive
    /// subscriber, which gets no ops from changes).
    pub fn subscribe(&mut self, sub: SubId, spans: Vec<Span>) -> Subscribed {
        let old = self.views.set(sub, spans.clone()).unwrap_or_default();
        let mut got = self.subscribe_once(spans.clone());
        got.invalidate = old.into_iter().filter(|s| !spans.contains(s)).collect();
        got
    }

    /// What a subscription to `spans` gets, without subscribing (for a subscriber that will
    /// not be kept).
    pub fn subscribe_once(&self, spans: Vec<Span>) -> Subscribed {
        let invalidate = Vec::new();
        let syncs = spans
            .iter()
            .map(|&(a, b)| ((a, b), self.slice(a, b)))
            .collect();
        let groups = self
            .group_counts()
            .into_iter()
            .filter(|(_, c)| *c > 0)
            .collect();
        Subscribed {
            invalidate,
            syncs,
            groups,
        }
    }

    /// Ends `sub`'s subscription; the ranges it watched (`None`: it had none).
    pub fn unsubscribe(&mut self, sub: SubId) -> Option<Vec<Span>> {
        self.views.remove(sub)
    }
}

/// Items in a rendered list of these group counts.
fn size_of_list(counts: &[usize]) -> usize {
    counts.iter().map(|&c| if c > 0 { c + 1 } else { 0 }).sum()
}

/// Non-empty groups among the first `g`.
fn nonempty_before(counts: &[usize], g: usize) -> usize {
    counts[..g.min(counts.len())]
        .iter()
        .filter(|&&c| c > 0)
        .count()
}

/// The position of group `g`'s header.
fn header_position(counts: &[usize], g: usize) -> usize {
    size_of_list(&counts[..g.min(counts.len())])
}

/// The position of the member at `index` of the set, in group `g`.
fn position(index: usize, g: usize, counts: &[usize]) -> usize {
    index + nonempty_before(counts, g + 1)
}

fn leave(
    layout: &Layout,
    counts: &mut [usize],
    g: usize,
    from: usize,
    item: Item,
    edits: &mut Vec<Edit>,
) {
    edits.push(Edit::Delete(position(from, g, counts), item));
    counts[g] -= 1;
    let c = counts[g];
    let h = header_position(counts, g);
    let id = layout.group_id(g);
    edits.push(if c == 0 {
        Edit::Delete(h, Item::Header(id, 1))
    } else {
        Edit::Update(h, Item::Header(id.clone(), c + 1), Item::Header(id, c))
    });
}

fn join(
    layout: &Layout,
    counts: &mut [usize],
    g: usize,
    to: usize,
    item: Item,
    edits: &mut Vec<Edit>,
) {
    counts[g] += 1;
    let c = counts[g];
    let h = header_position(counts, g);
    let id = layout.group_id(g);
    edits.push(if c == 1 {
        Edit::Insert(h, Item::Header(id, 1))
    } else {
        Edit::Update(h, Item::Header(id.clone(), c - 1), Item::Header(id, c))
    });
    edits.push(Edit::Insert(position(to, g, counts), item));
}

/// Which views edits can reach: every view at or below the first edit when the list's size
/// changes, else those meeting the stretch of the edits (an item can move up at most once
/// per delete before it comes back).
fn region(edits: &[Edit]) -> Region {
    let lo = edits.iter().map(Edit::position).min().unwrap_or(0);
    let hi = edits.iter().map(Edit::position).max().unwrap_or(0);
    let inserts = edits
        .iter()
        .filter(|e| matches!(e, Edit::Insert(..)))
        .count();
    let deletes = edits
        .iter()
        .filter(|e| matches!(e, Edit::Delete(..)))
        .count();
    if inserts != deletes {
        Region::From(lo)
    } else {
        Region::Between(lo, hi + deletes + 1)
    }
}

fn count_groups(set: &SortedSet<Keyed>, layout: &Layout) -> Vec<usize> {
    let mut counts = vec![0; layout.groups()];
    for k in set.iter() {
        counts[layout.group_of(k.sort)] += 1;
    }
    counts
}

/// The item at position `p` of the rendered list.
fn item_at(members: &Members, p: usize) -> Option<Item> {
    let (mut pos, mut before) = (0, 0);
    for (g, &c) in members.counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        if p == pos {
            return Some(Item::Header(members.layout.group_id(g), c));
        }
        if p <= pos + c {
            let k = members.set.at(before + p - pos - 1)?;
            return Some(Item::Member(k.member.clone()));
        }
        pos += c + 1;
        before += c;
    }
    None
}

fn slice(members: &Members, first: usize, last: usize) -> Vec<Item> {
    let mut out = Vec::new();
    let (mut pos, mut before) = (0, 0);
    for (g, &c) in members.counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        if pos > last {
            break;
        }
        if pos >= first {
            out.push(Item::Header(members.layout.group_id(g), c));
        }
        // This group's members sit at positions pos + 1 ..= pos + c.
        let from = first.max(pos + 1);
        let to = last.min(pos + c);
        if from <= to {
            out.extend(
                members
                    .set
                    .slice(before + from - pos - 1, to - from + 1)
                    .map(|k| Item::Member(k.member.clone())),
            );
        }
        pos += c + 1;
        before += c;
    }
    out
}

/// The members re-keyed under `layout`. Offline members keep their keys (and their place
/// at the end of the set); the others are re-keyed and sorted again.
fn regroup(members: &Members, layout: Layout) -> Members {
    let offline = members.counts.last().copied().unwrap_or(0);
    let online = members.set.len() - offline;
    let mut keyed: Vec<Keyed> = members
        .set
        .slice(0, online)
        .map(|k| Keyed::new(layout.sort_of(&k.member), k.member.clone()))
        .collect();
    keyed.sort_unstable();
    keyed.extend(members.set.slice(online, offline).cloned());
    let bucket_size = members.set.bucket_size();
    let set = SortedSet::from_sorted(keyed, bucket_size).unwrap_or_else(|_| {
        // unreachable: online keys sort before offline ones and are unique
        SortedSet::new(bucket_size, 0)
    });
    let counts = count_groups(&set, &layout);
    Members {
        set,
        layout,
        counts,
    }
}

#[cfg(test)]
mod tests;
