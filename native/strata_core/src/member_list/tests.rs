//! The engine against a plain model: random mutations, batches and subscriptions; after
//! each, the list equals the model rebuilt from the members alone, and every client that
//! applied exactly the ops it was sent shows what the list shows in each of its ranges, with
//! at most one op per changed position (or one SYNC per range).

use std::collections::{BTreeMap, HashMap};

use std::borrow::Cow;

use proptest::prelude::*;

use super::*;
use crate::op::{Encode, ListOp};
use crate::persist::Persist;

const NAMES: [&str; 10] = [
    "amy", "Amy", "bob", "BOB", "cy", "dee", "eve", "Eve", "fin", "gus",
];
const ROLES: [&str; 4] = ["r1", "r2", "r3", "r4"];
const STATUSES: [&str; 5] = ["online", "idle", "dnd", "offline", "offline"];

#[derive(Debug, Clone, PartialEq)]
struct M {
    id: i64,
    name: String,
    roles: Vec<usize>,
    status: usize,
}

fn term_of(m: &M) -> Term {
    let roles: Vec<Term> = m.roles.iter().map(|&r| Term::atom(ROLES[r])).collect();
    Term::map(vec![
        (Term::atom("id"), Term::Int(m.id)),
        (Term::atom("name"), Term::binary(m.name.as_bytes())),
        (Term::atom("roles"), Term::list(roles)),
        (Term::atom("status"), Term::atom(STATUSES[m.status])),
    ])
    .unwrap()
}

fn member(m: &M) -> Member {
    Member::parse(term_of(m)).unwrap()
}

fn layout(groups: &[(usize, u64)]) -> Layout {
    Layout::new(
        groups
            .iter()
            .map(|&(r, p)| (Term::atom(ROLES[r]), p))
            .collect(),
    )
    .unwrap()
}

/// What a client sees: a header or a member's map, comparable.
#[derive(Debug, Clone, PartialEq)]
enum Shown {
    Header(String, usize),
    Member(String),
}

fn shown(item: &Item) -> Shown {
    match item {
        Item::Header(id, c) => Shown::Header(format!("{id:?}"), *c),
        Item::Member(m) => Shown::Member(format!("{:?}", m.term())),
    }
}

/// The whole rendered list, from the members alone.
fn model_list(members: &BTreeMap<i64, M>, groups: &[(usize, u64)]) -> Vec<Shown> {
    let mut hoisted = groups.to_vec();
    hoisted.sort_by_key(|g| std::cmp::Reverse(g.1));
    let hoisted: Vec<usize> = hoisted.into_iter().map(|(r, _)| r).collect();
    let group_of = |m: &M| -> usize {
        if STATUSES[m.status] == "offline" {
            return hoisted.len() + 1;
        }
        hoisted
            .iter()
            .position(|r| m.roles.contains(r))
            .unwrap_or(hoisted.len())
    };
    let mut out = Vec::new();
    for g in 0..hoisted.len() + 2 {
        let mut ms: Vec<&M> = members.values().filter(|m| group_of(m) == g).collect();
        if ms.is_empty() {
            continue;
        }
        ms.sort_by_key(|m| (m.name.to_lowercase(), m.id));
        let id = if g < hoisted.len() {
            format!("{:?}", Term::atom(ROLES[hoisted[g]]))
        } else if g == hoisted.len() {
            format!("{:?}", Term::atom("online"))
        } else {
            format!("{:?}", Term::atom("offline"))
        };
        out.push(Shown::Header(id, ms.len()));
        out.extend(
            ms.into_iter()
                .map(|m| Shown::Member(format!("{:?}", term_of(m)))),
        );
    }
    out
}

/// A client: the positions it holds inside its ranges.
#[derive(Debug, Clone, Default)]
struct Client {
    spans: Vec<Span>,
    items: BTreeMap<usize, Shown>,
}

impl Client {
    fn apply(&mut self, op: &Op) {
        match op {
            Op::Sync((a, b), items) => {
                self.items.retain(|p, _| p < a || p > b);
                for (k, item) in items.iter().enumerate() {
                    self.items.insert(a + k, shown(item));
                }
            }
            Op::Insert(i, item) => {
                let moved: BTreeMap<usize, Shown> = std::mem::take(&mut self.items)
                    .into_iter()
                    .map(|(p, x)| if p >= *i { (p + 1, x) } else { (p, x) })
                    .collect();
                self.items = moved;
                self.items.insert(*i, shown(item));
            }
            Op::Delete(i) => {
                self.items.remove(i);
                let moved: BTreeMap<usize, Shown> = std::mem::take(&mut self.items)
                    .into_iter()
                    .map(|(p, x)| if p > *i { (p - 1, x) } else { (p, x) })
                    .collect();
                self.items = moved;
            }
            Op::Update(i, item) => {
                self.items.insert(*i, shown(item));
            }
        }
        let spans = self.spans.clone();
        self.items
            .retain(|p, _| spans.iter().any(|&(a, b)| a <= *p && *p <= b));
    }

    fn window(&self, (a, b): Span) -> Vec<Shown> {
        self.items.range(a..=b).map(|(_, x)| x.clone()).collect()
    }
}

#[derive(Debug, Clone)]
enum Cmd {
    Upsert(M),
    Remove(i64),
    Groups(Vec<(usize, u64)>),
    Batch(Vec<Cmd>),
    Subscribe(u64, Vec<Span>),
    Unsubscribe(u64),
}

fn m_strategy() -> impl Strategy<Value = M> {
    (
        1..25i64,
        0..NAMES.len(),
        prop::sample::subsequence((0..4).collect::<Vec<usize>>(), 0..3),
        0..STATUSES.len(),
    )
        .prop_map(|(id, n, roles, status)| M {
            id,
            name: NAMES[n].to_string(),
            roles,
            status,
        })
}

fn groups_strategy() -> impl Strategy<Value = Vec<(usize, u64)>> {
    (
        prop::sample::subsequence((0..4).collect::<Vec<usize>>(), 0..4),
        1..20u64,
    )
        .prop_map(|(roles, p)| {
            roles
                .into_iter()
                .enumerate()
                .map(|(k, r)| (r, p + 7 * k as u64))
                .collect()
        })
}

fn spans_strategy() -> impl Strategy<Value = Vec<Span>> {
    prop::collection::vec(
        (
            prop::sample::select(vec![0usize, 0, 3, 10, 20, 35]),
            prop::sample::select(vec![0usize, 2, 5, 9]),
        ),
        0..3,
    )
    .prop_map(|pairs| {
        let mut spans: Vec<Span> = Vec::new();
        let mut pairs = pairs;
        pairs.sort();
        pairs.dedup_by_key(|p| p.0);
        for (s, w) in pairs {
            if spans.last().is_none_or(|l| s > l.1) {
                spans.push((s, s + w));
            }
        }
        spans
    })
}

fn single() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        6 => m_strategy().prop_map(Cmd::Upsert),
        2 => (1..25i64).prop_map(Cmd::Remove),
        1 => groups_strategy().prop_map(Cmd::Groups),
        1 => ((0..6u64), spans_strategy()).prop_map(|(s, spans)| Cmd::Subscribe(s, spans)),
        1 => (0..6u64).prop_map(Cmd::Unsubscribe),
    ]
}

fn cmd() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        8 => single(),
        2 => prop::collection::vec(
            prop_oneof![
                6 => m_strategy().prop_map(Cmd::Upsert),
                2 => (1..25i64).prop_map(Cmd::Remove),
                1 => groups_strategy().prop_map(Cmd::Groups),
            ],
            1..12
        )
        .prop_map(Cmd::Batch),
    ]
}

struct World {
    list: MemberList,
    /// Each change's journal record.
    records: Vec<Vec<u8>>,
    members: BTreeMap<i64, M>,
    groups: Vec<(usize, u64)>,
    clients: HashMap<u64, Client>,
}

impl World {
    fn apply_model(&mut self, c: &Cmd) {
        match c {
            Cmd::Upsert(m) => {
                self.members.insert(m.id, m.clone());
            }
            Cmd::Remove(id) => {
                self.members.remove(id);
            }
            Cmd::Groups(g) => self.groups = g.clone(),
            Cmd::Batch(cs) => cs.iter().for_each(|c| self.apply_model(c)),
            _ => {}
        }
    }

    fn mutation(c: &Cmd) -> Mutation {
        match c {
            Cmd::Upsert(m) => Mutation::Upsert(member(m)),
            Cmd::Remove(id) => Mutation::Remove(Term::Int(*id)),
            Cmd::Groups(g) => Mutation::DefineGroups(layout(g)),
            _ => unreachable!(),
        }
    }

    fn windows(&self) -> HashMap<u64, Vec<Vec<Shown>>> {
        self.clients
            .iter()
            .map(|(s, c)| {
                let w = c
                    .spans
                    .iter()
                    .map(|&(a, b)| self.list.slice(a, b).iter().map(shown).collect())
                    .collect();
                (*s, w)
            })
            .collect()
    }

    fn step(&mut self, c: &Cmd) -> Result<(), TestCaseError> {
        let before = self.windows();
        let changes = match c {
            Cmd::Subscribe(s, spans) => {
                let got = self.list.subscribe(*s, spans.clone());
                let client = self.clients.entry(*s).or_default();
                client.spans = spans.clone();
                for (a, b) in got.invalidate {
                    client.items.retain(|p, _| *p < a || *p > b);
                }
                for (span, items) in got.syncs {
                    client.apply(&Op::Sync(span, items));
                }
                return self.check_clients();
            }
            Cmd::Unsubscribe(s) => {
                self.list.unsubscribe(*s);
                self.clients.remove(s);
                return Ok(());
            }
            Cmd::Upsert(m) => self.list.upsert(member(m)),
            Cmd::Remove(id) => self.list.remove(&Term::Int(*id)),
            Cmd::Groups(g) => self.list.define_groups(layout(g)),
            Cmd::Batch(cs) => self.list.batch(cs.iter().map(World::mutation).collect()),
        };
        let mutations: Vec<Mutation> = match c {
            Cmd::Batch(cs) => cs.iter().map(World::mutation).collect(),
            c => vec![World::mutation(c)],
        };
        let mut record = Vec::new();
        ListOp(Cow::Owned(mutations)).encode(&mut record);
        self.records.push(record);
        self.apply_model(c);
        let expected = model_list(&self.members, &self.groups);
        let all: Vec<Shown> = self.list.slice(0, 10_000).iter().map(shown).collect();
        prop_assert_eq!(&all, &expected);
        prop_assert_eq!(self.list.size(), expected.len());

        let mut seen = std::collections::HashSet::new();
        for (v, ops) in &changes.views {
            prop_assert!(!ops.is_empty());
            for sub in &self.list.views().get(*v).unwrap().subs {
                prop_assert!(seen.insert(*sub), "subscriber {} reached twice", sub);
                let client = self.clients.get_mut(sub).unwrap();
                for op in ops {
                    client.apply(op);
                }
                // Minimality against what the client's windows were and are.
                let old = &before[sub];
                let new: Vec<Vec<Shown>> = client
                    .spans
                    .iter()
                    .map(|&(a, b)| self.list.slice(a, b).iter().map(shown).collect())
                    .collect();
                prop_assert!(old != &new, "ops without a change for {}: {:?}", sub, ops);
                let changed: usize = old
                    .iter()
                    .zip(&new)
                    .map(|(o, n)| {
                        (0..o.len().max(n.len()))
                            .filter(|&k| o.get(k) != n.get(k))
                            .count()
                    })
                    .sum();
                let syncs = ops.iter().filter(|o| matches!(o, Op::Sync(..))).count();
                let moves = ops.len() - syncs;
                prop_assert!(
                    (moves == 0 || syncs == 0) && syncs <= client.spans.len() && moves <= changed,
                    "not minimal for {}: {} changed, ops {:?}",
                    sub,
                    changed,
                    ops
                );
            }
        }
        self.check_clients()
    }

    fn check_clients(&self) -> Result<(), TestCaseError> {
        for (s, c) in &self.clients {
            for &(a, b) in &c.spans {
                let server: Vec<Shown> = self.list.slice(a, b).iter().map(shown).collect();
                prop_assert_eq!(
                    c.window((a, b)),
                    server.clone(),
                    "client {} range {:?}",
                    s,
                    (a, b)
                );
                let positions: Vec<usize> = c.items.range(a..=b).map(|(p, _)| *p).collect();
                let expected: Vec<usize> = (a..a + server.len()).collect();
                prop_assert_eq!(positions, expected);
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn clients_follow_the_list_with_minimal_ops(
        groups in groups_strategy(),
        subs in prop::collection::vec(spans_strategy(), 1..7),
        cmds in prop::collection::vec(cmd(), 1..40),
    ) {
        let mut world = World {
            list: MemberList::new(layout(&groups), 4),
            records: Vec::new(),
            members: BTreeMap::new(),
            groups,
            clients: HashMap::new(),
        };
        for (s, spans) in subs.into_iter().enumerate() {
            world.step(&Cmd::Subscribe(s as u64, spans))?;
        }
        let start = world.list.dump();
        for c in &cmds {
            world.step(c)?;
        }
        prop_assert!(world.list.members.set.check_invariants().is_ok());
        // The journal replays onto the first snapshot, and a snapshot reloads, to the same
        // list.
        let all = |l: &MemberList| -> Vec<Shown> { l.slice(0, 10_000).iter().map(shown).collect() };
        let mut replayed = MemberList::load(&start).unwrap();
        for r in &world.records {
            replayed.replay(r).unwrap();
        }
        prop_assert_eq!(all(&replayed), all(&world.list));
        let reloaded = MemberList::load(&world.list.dump()).unwrap();
        prop_assert_eq!(all(&reloaded), all(&world.list));
        prop_assert_eq!(reloaded.dump(), world.list.dump());
    }
}

#[test]
fn a_view_is_computed_once_for_all_its_subscribers() {
    let mut list = MemberList::new(Layout::default(), 8);
    for s in 0..100 {
        list.subscribe(s, vec![(0, 9)]);
    }
    list.subscribe(100, vec![]);
    let m = M {
        id: 1,
        name: "a".into(),
        roles: vec![],
        status: 0,
    };
    let changes = list.upsert(member(&m));
    assert_eq!(changes.views.len(), 1);
    assert_eq!(
        list.views().get(changes.views[0].0).unwrap().subs.len(),
        100
    );
    assert_eq!(list.views().views(), 1);
    assert_eq!(list.views().subscribers(), 101);
}

#[test]
fn ids_equal_but_not_exactly_are_two_members() {
    let mut list = MemberList::default();
    let with_id = |id: Term| {
        Member::parse(
            Term::map(vec![
                (Term::atom("id"), id),
                (Term::atom("name"), Term::binary(b"same")),
                (Term::atom("roles"), Term::list(vec![])),
                (Term::atom("status"), Term::atom("online")),
            ])
            .unwrap(),
        )
        .unwrap()
    };
    list.upsert(with_id(Term::Int(1)));
    list.upsert(with_id(Term::Float(1.0)));
    assert_eq!(list.size(), 3);
    assert_eq!(list.index_of(&Term::Int(1)), Some(1));
    assert_eq!(list.index_of(&Term::Float(1.0)), Some(2));
    list.remove(&Term::Float(1.0));
    assert_eq!(list.size(), 2);
}
