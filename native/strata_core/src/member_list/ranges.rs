//! The index of watched ranges. Subscribers that watch the same ranges share one *view*:
//! a change computes its ops once per view it reaches, whatever the number of subscribers
//! watching it (most clients watch `[0, 99]`). Views are indexed by the last position of
//! each of their ranges, so that the views a change can reach are found without looking at
//! the others; subscribers with no ranges (passive sessions) are in no view at all.

use std::collections::{BTreeSet, HashMap};

/// A subscriber, as the caller numbers them.
pub type SubId = u64;

/// A watched range `first..=last`.
pub type Span = (usize, usize);

/// Most ranges one subscriber watches.
pub const MAX_RANGES: usize = 8;
/// Longest range, in positions.
pub const MAX_RANGE_LEN: usize = 1000;

/// Where a subscriber's view is when it has none.
const PASSIVE: usize = usize::MAX;

/// Why ranges were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeError {
    TooMany,
    TooLong,
    Overlap,
}

impl std::fmt::Display for RangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RangeError::TooMany => "at most 8 ranges",
            RangeError::TooLong => "ranges of at most 1000 positions",
            RangeError::Overlap => "ranges overlap",
        })
    }
}

/// Sorts ranges and checks them: at most [`MAX_RANGES`], each at most [`MAX_RANGE_LEN`]
/// positions long, disjoint.
pub fn normalize(mut spans: Vec<Span>) -> Result<Vec<Span>, RangeError> {
    if spans.len() > MAX_RANGES {
        return Err(RangeError::TooMany);
    }
    if spans.iter().any(|&(a, b)| b < a || b - a >= MAX_RANGE_LEN) {
        return Err(RangeError::TooLong);
    }
    spans.sort_unstable();
    if spans.windows(2).any(|w| w[1].0 <= w[0].1) {
        return Err(RangeError::Overlap);
    }
    Ok(spans)
}

/// Subscribers watching the same ranges.
#[derive(Debug, Clone)]
pub struct View {
    pub spans: Vec<Span>,
    pub subs: Vec<SubId>,
}

impl View {
    /// Where the last range ends.
    pub fn last(&self) -> usize {
        self.spans.last().map_or(0, |s| s.1)
    }

    /// Positions watched in all.
    pub fn width(&self) -> usize {
        self.spans.iter().map(|(a, b)| b - a + 1).sum()
    }
}

/// Which views a change can reach (see [`Views::reached`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// Views with a range ending at or after this position.
    From(usize),
    /// Views with a range meeting `lo..=hi`.
    Between(usize, usize),
}

/// Every subscriber and view of a list.
#[derive(Debug, Clone, Default)]
pub struct Views {
    views: Vec<Option<View>>,
    free: Vec<usize>,
    by_spans: HashMap<Vec<Span>, usize>,
    /// `(last position of a range, view)` for every range of every view.
    ends: BTreeSet<(usize, usize)>,
    /// Each subscriber's view (or `PASSIVE`) and its slot in the view's `subs`.
    subs: HashMap<SubId, (usize, usize)>,
}

impl Views {
    /// Subscribers in all, passive ones included.
    pub fn subscribers(&self) -> usize {
        self.subs.len()
    }

    /// Views in use.
    pub fn views(&self) -> usize {
        self.by_spans.len()
    }

    /// View `v`, if live.
    pub fn get(&self, v: usize) -> Option<&View> {
        self.views.get(v).and_then(Option::as_ref)
    }

    /// The ranges `sub` watches (`None` when it is not subscribed).
    pub fn spans_of(&self, sub: SubId) -> Option<&[Span]> {
        let &(v, _) = self.subs.get(&sub)?;
        Some(if v == PASSIVE {
            &[]
        } else {
            self.get(v).map_or(&[][..], |view| &view.spans)
        })
    }

    /// Every live view.
    pub fn all(&self) -> impl Iterator<Item = (usize, &View)> + '_ {
        self.views
            .iter()
            .enumerate()
            .filter_map(|(v, view)| view.as_ref().map(|view| (v, view)))
    }

    /// Makes `sub` watch `spans` (normalized; none for a passive subscriber), replacing what
    /// it watched; returns what it watched before (`None`: it was not subscribed).
    pub fn set(&mut self, sub: SubId, spans: Vec<Span>) -> Option<Vec<Span>> {
        let old = self.remove(sub);
        if spans.is_empty() {
            self.subs.insert(sub, (PASSIVE, 0));
            return old;
        }
        let v = match self.by_spans.get(&spans) {
            Some(&v) => v,
            None => {
                let view = View {
                    spans: spans.clone(),
                    subs: Vec::new(),
                };
                let v = match self.free.pop() {
                    Some(v) => {
                        self.views[v] = Some(view);
                        v
                    }
                    None => {
                        self.views.push(Some(view));
                        self.views.len() - 1
                    }
                };
                for &(_, b) in &spans {
                    self.ends.insert((b, v));
                }
                self.by_spans.insert(spans, v);
                v
            }
        };
        // The view was found in the index or just made: it is live.
        if let Some(view) = self.views.get_mut(v).and_then(Option::as_mut) {
            view.subs.push(sub);
            self.subs.insert(sub, (v, view.subs.len() - 1));
        }
        old
    }

    /// Ends `sub`'s subscription; returns what it watched.
    pub fn remove(&mut self, sub: SubId) -> Option<Vec<Span>> {
        let (v, slot) = self.subs.remove(&sub)?;
        if v == PASSIVE {
            return Some(Vec::new());
        }
        let Some(view) = self.views.get_mut(v).and_then(Option::as_mut) else {
            return Some(Vec::new()); // unreachable: a subscriber's view is live
        };
        view.subs.swap_remove(slot);
        if let Some(&moved) = view.subs.get(slot) {
            self.subs.insert(moved, (v, slot));
        }
        let spans = view.spans.clone();
        if view.subs.is_empty() {
            for &(_, b) in &spans {
                self.ends.remove(&(b, v));
            }
            self.by_spans.remove(&spans);
            self.views[v] = None;
            self.free.push(v);
        }
        Some(spans)
    }

    /// The views a change in `region` can reach, each once, ascending.
    pub fn reached(&self, region: Region) -> Vec<usize> {
        let mut found = Vec::new();
        match region {
            Region::From(lo) => {
                // Each view once: met at its last range.
                for &(b, v) in self.ends.range((lo, 0)..) {
                    if self.get(v).is_some_and(|view| view.last() == b) {
                        found.push(v);
                    }
                }
            }
            Region::Between(lo, hi) => {
                let stop = hi.saturating_add(MAX_RANGE_LEN);
                for &(b, v) in self.ends.range((lo, 0)..(stop, 0)) {
                    let spans = self.get(v).map_or(&[][..], |view| &view.spans);
                    if spans.iter().any(|&(a, e)| e == b && a <= hi) {
                        found.push(v);
                    }
                }
                found.sort_unstable();
                found.dedup();
            }
        }
        found
    }

    /// Bytes held, estimated in `O(1)` from the counts: each subscriber's entries (its
    /// slot in a view and in the map), each view's ranges and index entries.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        const SPANS: usize = 2 * size_of::<Span>(); // a view's ranges, kept twice
        self.subs.capacity() * (size_of::<(SubId, (usize, usize))>() + 1)
            + self.subs.len() * size_of::<SubId>() * 3 / 2
            + self.views.capacity() * size_of::<Option<View>>()
            + self.by_spans.capacity() * (size_of::<(Vec<Span>, usize)>() + 1)
            + self.ends.len() * (SPANS + size_of::<(usize, usize)>() * 3 / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_of_the_same_ranges_share_a_view() {
        let mut views = Views::default();
        views.set(1, vec![(0, 99)]);
        views.set(2, vec![(0, 99)]);
        views.set(3, vec![(0, 99), (200, 299)]);
        views.set(4, vec![]);
        assert_eq!(views.views(), 2);
        assert_eq!(views.subscribers(), 4);
        assert_eq!(views.reached(Region::From(150)).len(), 1);
        assert_eq!(views.reached(Region::From(0)).len(), 2);
        assert_eq!(
            views.reached(Region::Between(150, 160)),
            Vec::<usize>::new()
        );
        assert_eq!(views.reached(Region::Between(99, 99)).len(), 2);
        assert_eq!(views.remove(1), Some(vec![(0, 99)]));
        assert_eq!(
            views
                .get(views.reached(Region::Between(5, 5))[0])
                .unwrap()
                .subs
                .len(),
            1
        );
        assert_eq!(views.remove(4), Some(vec![]));
        assert_eq!(views.set(2, vec![(5, 9)]), Some(vec![(0, 99)]));
        assert_eq!(views.views(), 2);
        views.remove(2);
        views.remove(3);
        assert_eq!((views.views(), views.subscribers()), (0, 0));
        assert!(views.ends.is_empty());
    }

    #[test]
    fn ranges_are_checked() {
        assert_eq!(normalize(vec![(5, 9), (0, 2)]), Ok(vec![(0, 2), (5, 9)]));
        assert_eq!(normalize(vec![(0, 5), (5, 9)]), Err(RangeError::Overlap));
        assert_eq!(normalize(vec![(0, 1000)]), Err(RangeError::TooLong));
        assert_eq!(normalize(vec![(0, 0); 9]), Err(RangeError::TooMany));
    }
}
