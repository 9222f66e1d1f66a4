//! The ops a view's clients need after a change, and as few of them as the change allows.
//!
//! A change (one mutation, or a whole batch) is a sequence of *edits* to the rendered list:
//! inserts, deletes and updates at positions, each carrying the items it writes and
//! removes. A client holds only the positions inside its ranges; the ops that bring it
//! through the edits are found by replaying the edits on those ranges: an edit that lands in
//! a range, or before a held position (it shifts them), is sent; a position whose item slid
//! in from outside the ranges becomes a *hole*, filled with an update from the final list.
//!
//! Replay is usually the fewest ops (one insert shifts a whole window), but not always: a
//! member that moves three times in a batch is six edits. When replay might send more ops
//! than there are positions whose item changed, those are counted exactly (each position
//! traced back through the edits, and compared by value), and the client gets one update
//! per changed position, or one SYNC per range when most of its positions changed.

use std::cmp::Ordering;
use std::sync::Arc;

use super::layout::Member;
use super::ranges::Span;
use crate::term::{compare_exact, Term};

/// An item of the rendered list.
#[derive(Debug, Clone)]
pub enum Item {
    /// A group's header: its id and member count.
    Header(Term, usize),
    Member(Arc<Member>),
}

impl Item {
    /// Equal by value (`===`).
    pub fn same(&self, other: &Item) -> bool {
        match (self, other) {
            (Item::Header(a, n), Item::Header(b, m)) => {
                n == m && compare_exact(a, b) == Ordering::Equal
            }
            (Item::Member(a), Item::Member(b)) => Arc::ptr_eq(a, b) || a.same(b),
            _ => false,
        }
    }
}

/// One edit of the rendered list, with the items it writes and removes.
#[derive(Debug, Clone)]
pub enum Edit {
    Insert(usize, Item),
    /// The position and the item removed.
    Delete(usize, Item),
    /// The position, the item replaced and the new one.
    Update(usize, Item, Item),
}

impl Edit {
    pub fn position(&self) -> usize {
        match self {
            Edit::Insert(i, _) | Edit::Delete(i, _) | Edit::Update(i, _, _) => *i,
        }
    }
}

/// An op for a client (group counts are added by the caller).
#[derive(Debug, Clone)]
pub enum Op {
    Sync(Span, Vec<Item>),
    Insert(usize, Item),
    Delete(usize),
    Update(usize, Item),
}

/// What the ops of a change are computed from.
pub struct Change<'a> {
    pub edits: &'a [Edit],
    /// The list's size before and after the edits.
    pub before: usize,
    pub after: usize,
    /// Whether the edits are one mutation's (every op replay sends then changes what its
    /// client shows), or a batch's (where edits may undo each other).
    pub single: bool,
}

/// The ops that bring a client watching `spans` through `change`; `item(p)` is the item at
/// position `p` of the list after it. Empty when nothing the client shows changed.
pub fn view_ops(spans: &[Span], change: &Change, item: &dyn Fn(usize) -> Option<Item>) -> Vec<Op> {
    let beyond = change.before.max(change.after);
    if spans
        .iter()
        .all(|&span| span.0 >= beyond || untouched(span, change.edits).is_some_and(|s| s == 0))
    {
        return Vec::new();
    }
    let (mut ops, mut holes) = replay(spans, change);
    holes.sort_unstable();
    fill(&holes, change.after, item, &mut ops);
    let count = ops.len();
    if count == 0 || (change.single && count <= 1) || count <= shifted_lower_bound(spans, change) {
        return ops;
    }
    let changed: Vec<usize> = spans
        .iter()
        .flat_map(|&span| changed_positions(span, change, item))
        .collect();
    let width: usize = spans.iter().map(|(a, b)| b - a + 1).sum();
    if changed.len() >= count {
        ops
    } else if changed.len() * 2 <= width || spans.len() >= changed.len() {
        // One update per changed position; positions past the new end are emptied from the
        // top down, so that no delete shifts another held position.
        let mut updates = Vec::with_capacity(changed.len());
        fill(&changed, change.after, item, &mut updates);
        updates.extend(
            changed
                .iter()
                .rev()
                .filter(|&&p| p >= change.after)
                .map(|&p| Op::Delete(p)),
        );
        updates
    } else {
        // Most positions changed: one SYNC for each range that changed.
        spans
            .iter()
            .filter(|&&(a, b)| changed.iter().any(|&p| a <= p && p <= b))
            .map(|&(a, b)| {
                let items = (a..=b).map_while(item).collect();
                Op::Sync((a, b), items)
            })
            .collect()
    }
}

/// Follows a range through the edits: `None` when an edit lands in it (at its position at
/// that moment), else how far its items moved in all.
fn untouched((a, b): Span, edits: &[Edit]) -> Option<isize> {
    let (mut lo, mut hi) = (a as isize, b as isize);
    let start = lo;
    for edit in edits {
        let i = edit.position() as isize;
        if lo <= i && i <= hi {
            return None;
        }
        if i < lo {
            match edit {
                Edit::Insert(..) => {
                    lo += 1;
                    hi += 1;
                }
                Edit::Delete(..) => {
                    lo -= 1;
                    hi -= 1;
                }
                Edit::Update(..) => {}
            }
        }
    }
    Some(lo - start)
}

/// A lower bound of the changed positions: every held position of a range whose items all
/// moved (no edit landed in it, and they did not come back).
fn shifted_lower_bound(spans: &[Span], change: &Change) -> usize {
    let held_end = change.before.max(change.after);
    spans
        .iter()
        .map(|&(a, b)| match untouched((a, b), change.edits) {
            Some(shift) if shift != 0 && a < held_end => b.min(held_end - 1) - a + 1,
            _ => 0,
        })
        .sum()
}

fn inside(p: usize, spans: &[Span]) -> bool {
    spans.iter().any(|&(a, b)| a <= p && p <= b)
}

/// Replays the edits on the client's ranges: the ops to send, and the held positions whose
/// item slid in from outside them (holes). An insert or delete that lands outside the
/// ranges with no held position after it changes nothing the client shows, and is not sent.
fn replay(spans: &[Span], change: &Change) -> (Vec<Op>, Vec<usize>) {
    let last = spans.last().map_or(0, |s| s.1);
    let mut n = change.before;
    let mut ops = Vec::new();
    let mut holes: Vec<usize> = Vec::new();
    for edit in change.edits {
        match edit {
            Edit::Insert(i, item) => {
                let i = *i;
                if i <= last {
                    if visible(spans, i, n) {
                        ops.push(Op::Insert(i, item.clone()));
                    }
                    holes = holes
                        .into_iter()
                        .map(|h| if h >= i { h + 1 } else { h })
                        .filter(|&h| inside(h, spans))
                        .collect();
                    // An insert above a range pulls in the item above its first position.
                    for &(a, _) in spans {
                        if i < a && !inside(a - 1, spans) && !holes.contains(&a) {
                            holes.push(a);
                        }
                    }
                }
                n += 1;
            }
            Edit::Delete(i, _) => {
                let i = *i;
                if i <= last {
                    if visible(spans, i, n) {
                        ops.push(Op::Delete(i));
                    }
                    holes = holes
                        .into_iter()
                        .filter(|&h| h != i)
                        .map(|h| if h > i { h - 1 } else { h })
                        .filter(|&h| inside(h, spans))
                        .collect();
                    // A delete at or above a range's end pulls in the item below its last
                    // position (unless a neighbouring range holds it).
                    for &(_, b) in spans {
                        if i <= b && !inside(b + 1, spans) && !holes.contains(&b) {
                            holes.push(b);
                        }
                    }
                }
                n = n.saturating_sub(1);
            }
            Edit::Update(i, _, item) => {
                if inside(*i, spans) && !holes.contains(i) {
                    ops.push(Op::Update(*i, item.clone()));
                }
            }
        }
    }
    (ops, holes)
}

/// Whether an edit at `i`, in a list of `n` items, lands inside a range or before a held
/// position.
fn visible(spans: &[Span], i: usize, n: usize) -> bool {
    spans
        .iter()
        .any(|&(a, b)| (a <= i && i <= b) || (i <= b && a < n && i < n))
}

/// An update for each of `positions` (ascending) inside the list of `size` items.
fn fill(positions: &[usize], size: usize, item: &dyn Fn(usize) -> Option<Item>, ops: &mut Vec<Op>) {
    for &p in positions.iter().take_while(|&&p| p < size) {
        if let Some(x) = item(p) {
            ops.push(Op::Update(p, x));
        }
    }
}

/// Final positions traced back through the edits, as runs: `(final, len, then)` says that
/// the items at final positions `final..final + len` were at `then..then + len` before the
/// edits, untouched; `written` holds the final positions whose item an edit wrote (an
/// insert or an update). Each edit costs a step per run, and splits at most one run.
fn trace_back(
    first: usize,
    last: usize,
    edits: &[Edit],
) -> (Vec<(usize, usize, usize)>, Vec<usize>) {
    let mut runs = vec![(first, last - first + 1, first)];
    let mut written = Vec::new();
    for edit in edits.iter().rev() {
        let mut next = Vec::with_capacity(runs.len() + 1);
        for (f, len, c) in runs {
            let end = c + len; // exclusive
            match *edit {
                // After an insert at i, position i holds the new item and those above came
                // from one below.
                Edit::Insert(i, _) if i < c => next.push((f, len, c - 1)),
                Edit::Insert(i, _) | Edit::Update(i, _, _) if c <= i && i < end => {
                    let k = i - c;
                    if k > 0 {
                        next.push((f, k, c));
                    }
                    written.push(f + k);
                    if len > k + 1 {
                        let shift = usize::from(matches!(edit, Edit::Insert(..)));
                        next.push((f + k + 1, len - k - 1, i + 1 - shift));
                    }
                }
                // After a delete at i, the items from i up came from one above.
                Edit::Delete(i, _) if i <= c => next.push((f, len, c + 1)),
                Edit::Delete(i, _) if i < end => {
                    let k = i - c;
                    next.push((f, k, c));
                    next.push((f + k, len - k, i + 1));
                }
                _ => next.push((f, len, c)),
            }
        }
        runs = next;
    }
    (runs, written)
}

/// The item at position `p` before the edits (`p` held one then).
fn item_before(p: usize, change: &Change, item: &dyn Fn(usize) -> Option<Item>) -> Option<Item> {
    let mut pos = p;
    for edit in change.edits {
        match edit {
            Edit::Insert(i, _) if pos >= *i => pos += 1,
            Edit::Delete(i, old) if pos == *i => return Some(old.clone()),
            Edit::Delete(i, _) if pos > *i => pos -= 1,
            Edit::Update(i, old, _) if pos == *i => return Some(old.clone()),
            _ => {}
        }
    }
    item(pos)
}

/// The positions of a range whose item differs after the edits, by value, ascending.
fn changed_positions(
    (a, b): Span,
    change: &Change,
    item: &dyn Fn(usize) -> Option<Item>,
) -> Vec<usize> {
    let both = change.before.min(change.after);
    let either = change.before.max(change.after);
    let mut changed = Vec::new();
    if a < both {
        let (runs, written) = trace_back(a, b.min(both - 1), change.edits);
        // An item that moved is another item than the one that was there.
        for (f, len, then) in runs {
            if f != then {
                changed.extend(f..f + len);
            }
        }
        // A written position may hold what it held before (an update undone in a batch).
        for p in written {
            let same = match (item_before(p, change, item), item(p)) {
                (Some(old), Some(new)) => old.same(&new),
                _ => false,
            };
            if !same {
                changed.push(p);
            }
        }
        changed.sort_unstable();
    }
    // Positions held before or after the edits, not both.
    if either > 0 {
        changed.extend(a.max(both)..=b.min(either - 1));
    }
    changed
}
