//! Where each member goes in the rendered list: the groups (hoisted roles by position, then
//! online, then offline), the members as the list holds them, and their keys.
//!
//! A member's key is `(sort, folded name, id, exact id)`: `sort` is its group (the index of
//! its highest hoisted role in display order, [`ONLINE`] or [`OFFLINE`]), `folded` its name
//! in lower case; ids compare in term order, and ids equal there but not exactly (`1` and
//! `1.0`) in map-key order (integers first), so that no two members ever share a key. The
//! sort value is kept beside the member, not in it, so that a change of groups re-keys a
//! member without touching the member itself.

use std::cmp::Ordering;
use std::fmt;
use std::mem::size_of;
use std::sync::Arc;

use crate::sorted_set::Item;
use crate::term::{compare_exact, Term};

/// The sort value of a member that is not offline and has no hoisted role.
pub const ONLINE: u32 = u32::MAX - 1;
/// The sort value of an offline member.
pub const OFFLINE: u32 = u32::MAX;
/// Most hoisted roles a list takes (Discord allows 250 roles in all).
pub const MAX_ROLES: usize = 1000;

/// Why a member or a group definition was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutError {
    /// Not `%{id: term, name: binary, roles: list, status: atom}`.
    BadMember,
    /// A group is not `%{id: role_id, position: non_neg_integer}`, or names `:online` or
    /// `:offline`.
    BadGroup,
    /// Two groups share an id or a position.
    NotUnique,
    /// More than [`MAX_ROLES`] groups.
    TooMany,
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LayoutError::BadMember => {
                "expected %{id: term, name: binary, roles: list, status: atom}"
            }
            LayoutError::BadGroup => {
                "expected %{id: role_id, position: non_neg_integer} (ids other than :online and :offline)"
            }
            LayoutError::NotUnique => "role ids and positions must be unique",
            LayoutError::TooMany => "at most 1000 hoisted roles",
        })
    }
}

fn is_atom(term: &Term, name: &str) -> bool {
    matches!(term, Term::Atom(a) if a.name() == name)
}

/// A member as the list holds it: its map, and what is read from it.
#[derive(Clone)]
pub struct Member {
    term: Term,
    /// Indices of the `:id` and `:roles` pairs in the map.
    id_at: usize,
    roles_at: usize,
    offline: bool,
    /// The name in lower case (Unicode lower case; a name that is not UTF-8 is lowered byte
    /// by byte in ASCII).
    folded: Box<[u8]>,
    /// What [`Member::heap_bytes`] reports, counted once (the set asks on every change).
    heap: usize,
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.term)
    }
}

impl Member {
    /// Reads a member map: at least `:id`, `:name` (a binary), `:roles` (a proper list) and
    /// `:status` (an atom; `:offline` or any other).
    pub fn parse(term: Term) -> Result<Member, LayoutError> {
        let Term::Map(_, pairs) = &term else {
            return Err(LayoutError::BadMember);
        };
        let find = |name: &str| pairs.iter().position(|(k, _)| is_atom(k, name));
        let (Some(id_at), Some(name_at), Some(roles_at), Some(status_at)) =
            (find("id"), find("name"), find("roles"), find("status"))
        else {
            return Err(LayoutError::BadMember);
        };
        let Some(name) = pairs[name_at].1.as_binary() else {
            return Err(LayoutError::BadMember);
        };
        if !matches!(pairs[roles_at].1, Term::List(..)) {
            return Err(LayoutError::BadMember);
        }
        let Term::Atom(status) = pairs[status_at].1 else {
            return Err(LayoutError::BadMember);
        };
        let folded = fold(name);
        let offline = status.name() == "offline";
        // The member's `Arc`, its folded name and what its map owns (allocator chunks).
        let heap =
            crate::heap::arc::<Member>() + crate::heap::chunk(folded.len()) + term.heap_bytes();
        Ok(Member {
            term,
            id_at,
            roles_at,
            offline,
            folded,
            heap,
        })
    }

    /// The member's map.
    pub fn term(&self) -> &Term {
        &self.term
    }

    pub fn id(&self) -> &Term {
        match &self.term {
            Term::Map(_, pairs) => &pairs[self.id_at].1,
            _ => &self.term, // unreachable: `parse` takes maps only
        }
    }

    pub fn roles(&self) -> &[Term] {
        match &self.term {
            Term::Map(_, pairs) => match &pairs[self.roles_at].1 {
                Term::List(_, items) => items,
                _ => &[],
            },
            _ => &[],
        }
    }

    pub fn offline(&self) -> bool {
        self.offline
    }

    /// Whether two members are the same map exactly (`===`).
    pub fn same(&self, other: &Member) -> bool {
        compare_exact(&self.term, &other.term) == Ordering::Equal
    }

    /// Heap bytes held for this member (its allocation and what its terms own).
    pub fn heap_bytes(&self) -> usize {
        self.heap
    }
}

/// A name in lower case, for ordering within a group.
fn fold(name: &[u8]) -> Box<[u8]> {
    match std::str::from_utf8(name) {
        Ok(s) if s.is_ascii() => s.to_ascii_lowercase().into_bytes().into(),
        Ok(s) => s.to_lowercase().into_bytes().into(),
        Err(_) => name.to_ascii_lowercase().into(),
    }
}

/// Orders ids: term order, then map-key order (`1` before `1.0`).
pub fn compare_ids(a: &Term, b: &Term) -> Ordering {
    a.cmp(b).then_with(|| compare_exact(a, b))
}

/// An item of the list's sorted set: a member and its group's sort value.
///
/// The first 8 bytes of the folded name are kept inline: a search of a 1M-member set
/// compares ~40 items, and most are told apart without following the member's pointer (a
/// cache miss each, which made an upsert ~13 µs).
#[derive(Clone)]
pub struct Keyed {
    pub sort: u32,
    /// The folded name's first 8 bytes, big-endian, zero-padded: when two prefixes differ
    /// they order the names (a name that ends early pads with 0, the least byte, and is a
    /// prefix of the other up to there); when equal, the names are compared whole.
    prefix: u64,
    pub member: Arc<Member>,
}

impl Keyed {
    pub fn new(sort: u32, member: Arc<Member>) -> Keyed {
        let mut head = [0u8; 8];
        let n = member.folded.len().min(8);
        head[..n].copy_from_slice(&member.folded[..n]);
        Keyed {
            sort,
            prefix: u64::from_be_bytes(head),
            member,
        }
    }
}

impl fmt::Debug for Keyed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {:?})", self.sort, self.member)
    }
}

impl PartialEq for Keyed {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Keyed {}

impl PartialOrd for Keyed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Keyed {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sort
            .cmp(&other.sort)
            .then_with(|| self.prefix.cmp(&other.prefix))
            .then_with(|| self.member.folded.cmp(&other.member.folded))
            .then_with(|| compare_ids(self.member.id(), other.member.id()))
    }
}

impl Item for Keyed {
    /// The member is shared by the set, its index and a bucket's first-item copy; the set
    /// counts it once per slot (the few first-item copies are counted twice).
    fn heap_bytes(&self) -> usize {
        self.member.heap_bytes()
    }
}

/// An id as a map key: ordered exactly (`1` and `1.0` are two ids).
#[derive(Debug, Clone)]
pub struct IdKey(pub Term);

impl PartialEq for IdKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for IdKey {}

impl PartialOrd for IdKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for IdKey {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        // Integer ids (snowflakes) are the common case: compared inline.
        if let (Term::Int(a), Term::Int(b)) = (&self.0, &other.0) {
            return a.cmp(b);
        }
        compare_exact(&self.0, &other.0)
    }
}

/// The groups of a list: its hoisted roles in display order, then online and offline.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// `(role id, position)`, highest position first.
    roles: Vec<(Term, u64)>,
    /// Indices into `roles`, ordered by role id in map-key order (for lookups).
    lookup: Vec<u32>,
}

impl Layout {
    /// The layout of hoisted roles `(id, position)`, given in any order.
    pub fn new(mut roles: Vec<(Term, u64)>) -> Result<Layout, LayoutError> {
        if roles.len() > MAX_ROLES {
            return Err(LayoutError::TooMany);
        }
        if roles
            .iter()
            .any(|(id, _)| is_atom(id, "online") || is_atom(id, "offline"))
        {
            return Err(LayoutError::BadGroup);
        }
        roles.sort_by_key(|r| std::cmp::Reverse(r.1));
        if roles.windows(2).any(|w| w[0].1 == w[1].1) {
            return Err(LayoutError::NotUnique);
        }
        let mut lookup: Vec<u32> = (0..roles.len() as u32).collect();
        lookup.sort_by(|&a, &b| compare_exact(&roles[a as usize].0, &roles[b as usize].0));
        if lookup.windows(2).any(|w| {
            compare_exact(&roles[w[0] as usize].0, &roles[w[1] as usize].0) == Ordering::Equal
        }) {
            return Err(LayoutError::NotUnique);
        }
        Ok(Layout { roles, lookup })
    }

    /// The hoisted roles, highest position first.
    pub fn roles(&self) -> &[(Term, u64)] {
        &self.roles
    }

    /// Groups in all: the hoisted roles, online and offline.
    pub fn groups(&self) -> usize {
        self.roles.len() + 2
    }

    /// The id of group `g` (in display order).
    pub fn group_id(&self, g: usize) -> Term {
        match self.roles.get(g) {
            Some((id, _)) => id.clone(),
            None if g == self.roles.len() => Term::atom("online"),
            None => Term::atom("offline"),
        }
    }

    /// The display index of the group of sort value `sort`.
    pub fn group_of(&self, sort: u32) -> usize {
        match sort {
            ONLINE => self.roles.len(),
            OFFLINE => self.roles.len() + 1,
            s => s as usize,
        }
    }

    /// The sort value of `member` here: its highest hoisted role, else online or offline.
    pub fn sort_of(&self, member: &Member) -> u32 {
        if member.offline() {
            return OFFLINE;
        }
        member
            .roles()
            .iter()
            .filter_map(|role| self.index_of(role))
            .min()
            .unwrap_or(ONLINE)
    }

    fn index_of(&self, role: &Term) -> Option<u32> {
        self.lookup
            .binary_search_by(|&i| compare_exact(&self.roles[i as usize].0, role))
            .ok()
            .map(|at| self.lookup[at])
    }

    /// The first display index whose group differs between the two layouts (`None` when
    /// they show the same groups in the same order).
    pub fn first_difference(&self, other: &Layout) -> Option<usize> {
        let n = self.groups().max(other.groups());
        (0..n).find(|&g| {
            let (a, b) = (self.id_or_end(g), other.id_or_end(g));
            match (a, b) {
                (Some(a), Some(b)) => compare_exact(&a, &b) != Ordering::Equal,
                _ => true,
            }
        })
    }

    /// The same roles at the same positions.
    pub fn same(&self, other: &Layout) -> bool {
        self.roles.len() == other.roles.len()
            && self
                .roles
                .iter()
                .zip(&other.roles)
                .all(|(a, b)| a.1 == b.1 && compare_exact(&a.0, &b.0) == Ordering::Equal)
    }

    fn id_or_end(&self, g: usize) -> Option<Term> {
        (g < self.groups()).then(|| self.group_id(g))
    }

    pub fn heap_bytes(&self) -> usize {
        self.roles.capacity() * size_of::<(Term, u64)>()
            + self
                .roles
                .iter()
                .map(|(t, _)| t.heap_bytes())
                .sum::<usize>()
            + self.lookup.capacity() * size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: i64, name: &str, roles: &[&str], status: &str) -> Member {
        let roles: Vec<Term> = roles.iter().map(|r| Term::atom(r)).collect();
        let map = Term::map(vec![
            (Term::atom("id"), Term::Int(id)),
            (Term::atom("name"), Term::binary(name.as_bytes())),
            (Term::atom("roles"), Term::list(roles)),
            (Term::atom("status"), Term::atom(status)),
        ])
        .unwrap();
        Member::parse(map).unwrap()
    }

    #[test]
    fn members_go_under_their_highest_hoisted_role() {
        let layout = Layout::new(vec![(Term::atom("a"), 1), (Term::atom("b"), 5)]).unwrap();
        assert_eq!(layout.group_id(0), Term::atom("b"));
        assert_eq!(layout.sort_of(&member(1, "x", &["a", "b"], "online")), 0);
        assert_eq!(layout.sort_of(&member(1, "x", &["a"], "idle")), 1);
        assert_eq!(layout.sort_of(&member(1, "x", &["c"], "dnd")), ONLINE);
        assert_eq!(layout.sort_of(&member(1, "x", &["a"], "offline")), OFFLINE);
        assert_eq!(layout.group_of(ONLINE), 2);
        assert_eq!(layout.group_of(OFFLINE), 3);
    }

    #[test]
    fn bad_layouts_and_members_are_refused() {
        let dup = Layout::new(vec![(Term::atom("a"), 1), (Term::atom("a"), 2)]);
        assert_eq!(dup.unwrap_err(), LayoutError::NotUnique);
        let same_position = Layout::new(vec![(Term::atom("a"), 1), (Term::atom("b"), 1)]);
        assert_eq!(same_position.unwrap_err(), LayoutError::NotUnique);
        let reserved = Layout::new(vec![(Term::atom("online"), 1)]);
        assert_eq!(reserved.unwrap_err(), LayoutError::BadGroup);
        assert!(Layout::new(vec![(Term::Int(1), 1), (Term::Float(1.0), 2)]).is_ok());
        assert_eq!(
            Member::parse(Term::Int(1)).unwrap_err(),
            LayoutError::BadMember
        );
    }

    #[test]
    fn keys_order_by_group_name_then_exact_id() {
        let key = |id: Term, name: &str| {
            let map = Term::map(vec![
                (Term::atom("id"), id),
                (Term::atom("name"), Term::binary(name.as_bytes())),
                (Term::atom("roles"), Term::list(vec![])),
                (Term::atom("status"), Term::atom("online")),
            ])
            .unwrap();
            Keyed::new(ONLINE, Arc::new(Member::parse(map).unwrap()))
        };
        // Names told apart by the inline prefix, and past it (8 bytes), with NUL bytes.
        let names = [
            "",
            "\0",
            "\0\0",
            "a",
            "a\0",
            "a\0\0b",
            "ab",
            "abcdefg",
            "abcdefg\0",
            "abcdefgh",
            "abcdefgh\0",
            "abcdefgha",
            "abcdefghb",
            "abcdefgi",
            "b",
        ];
        for (i, a) in names.iter().enumerate() {
            for (j, b) in names.iter().enumerate() {
                let (ka, kb) = (key(Term::Int(1), a), key(Term::Int(1), b));
                assert_eq!(ka.cmp(&kb), i.cmp(&j), "{a:?} vs {b:?}");
            }
        }
        assert!(key(Term::Int(2), "Amy") < key(Term::Int(1), "bob"));
        assert!(key(Term::Int(1), "amy") < key(Term::Int(2), "AMY"));
        assert!(key(Term::Int(1), "x") < key(Term::Float(1.0), "x"));
        assert_ne!(key(Term::Int(1), "x"), key(Term::Float(1.0), "x"));
        assert_eq!(&*fold("ÉCOLE".as_bytes()), "école".as_bytes());
    }
}
