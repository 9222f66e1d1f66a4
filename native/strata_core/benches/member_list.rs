//! Core-only costs of the member-list engine (no NIF, no term conversion) at 1M members:
//! `cargo bench -p strata_core --bench member_list`.
//!
//! A guild of 1M members (10 hoisted roles, ~12% online); 1,000 views of `[0, 99]` plus a
//! 100-row range near the top. Measured: one presence flip with no views and with them, a
//! batch of 100 flips, and subscribing with two 100-row SYNCs.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use strata_core::member_list::{Layout, Member, Mutation};
use strata_core::{MemberList, Term};

const N: i64 = 1_000_000;
const STATUSES: [&str; 3] = ["online", "idle", "offline"];

fn hash(id: i64) -> u64 {
    (id as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(29)
}

fn member(id: i64, status: Option<&str>) -> Member {
    let h = hash(id);
    let len = 4 + (h % 9) as usize;
    let name: Vec<u8> = (0..len)
        .map(|i| b'a' + ((h >> (i * 5)) % 26) as u8)
        .collect();
    let roles = if h.is_multiple_of(4) {
        vec![Term::atom(&format!("role{}", (h / 5) % 10 + 1))]
    } else {
        vec![]
    };
    let status = status.unwrap_or(if (h / 11) % 25 < 3 {
        "online"
    } else {
        "offline"
    });
    Member::parse(
        Term::map(vec![
            (Term::atom("id"), Term::Int(id)),
            (Term::atom("name"), Term::binary(&name)),
            (Term::atom("roles"), Term::list(roles)),
            (Term::atom("status"), Term::atom(status)),
        ])
        .unwrap(),
    )
    .unwrap()
}

/// A cheap deterministic sequence in 0..n.
fn lcg(state: &mut u64, n: u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*state >> 33) % n
}

fn flip(state: &mut u64) -> Member {
    let id = lcg(state, N as u64) as i64 + 1;
    member(id, Some(STATUSES[lcg(state, 3) as usize]))
}

fn guild() -> MemberList {
    let roles = (1..=10)
        .map(|i| (Term::atom(&format!("role{i}")), 100 - i as u64))
        .collect();
    let members = (1..=N).map(|id| member(id, None)).collect();
    MemberList::build(Layout::new(roles).unwrap(), 512, members).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut list = guild();
    let mut state = 1u64;
    c.bench_function("member_list/upsert flip, no views, 1M", |b| {
        b.iter(|| black_box(list.upsert(flip(&mut state))))
    });
    for sub in 0..1000u64 {
        let k = lcg(&mut state, 20) as usize;
        list.subscribe(sub, vec![(0, 99), (100 * (k + 1), 100 * (k + 1) + 99)]);
    }
    c.bench_function("member_list/upsert flip, 1000 subscribers, 1M", |b| {
        b.iter(|| black_box(list.upsert(flip(&mut state))))
    });
    c.bench_function(
        "member_list/batch of 100 flips, 1000 subscribers, 1M",
        |b| {
            b.iter(|| {
                let flips = (0..100)
                    .map(|_| Mutation::Upsert(flip(&mut state)))
                    .collect();
                black_box(list.batch(flips))
            })
        },
    );
    c.bench_function("member_list/subscribe_once two 100-row ranges, 1M", |b| {
        b.iter(|| {
            let k = lcg(&mut state, 20) as usize;
            black_box(list.subscribe_once(vec![(0, 99), (100 * (k + 1), 100 * (k + 1) + 99)]))
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
