//! Core-only costs (no NIF, no term conversion) at 1M items:
//! `cargo bench -p strata_core --bench sorted_set`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use strata_core::{SortedSet, Term};

const N: i64 = 1_000_000;

fn member(id: i64) -> Term {
    let name = format!("user_{:x}", id * 104_729);
    Term::tuple(thin_vec::thin_vec![
        Term::Int(id * 7919 % 10),
        Term::binary(name.as_bytes()),
        Term::Int(id)
    ])
}

/// A cheap deterministic sequence of indices in 0..N.
fn lcg(state: &mut u64) -> i64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*state >> 33) % N as u64) as i64
}

fn bench_kind(c: &mut Criterion, kind: &str, make: fn(i64) -> Term, fresh: fn(i64) -> Term) {
    let mut set = SortedSet::from_unsorted((0..N).map(make).collect(), 512);
    let mut state = 1u64;
    c.bench_function(&format!("{kind}/insert+remove 1M"), |b| {
        b.iter(|| {
            let item = fresh(lcg(&mut state));
            let probe = item.clone();
            black_box(set.insert(item));
            black_box(set.remove(&probe));
        })
    });
    c.bench_function(&format!("{kind}/find_index 1M"), |b| {
        b.iter(|| black_box(set.find_index(&make(lcg(&mut state)))))
    });
    c.bench_function(&format!("{kind}/at 1M"), |b| {
        b.iter(|| black_box(set.at(lcg(&mut state) as usize)))
    });
    c.bench_function(&format!("{kind}/slice(25) 1M"), |b| {
        b.iter(|| black_box(set.slice(lcg(&mut state) as usize, 25).count()))
    });
}

fn benches(c: &mut Criterion) {
    bench_kind(
        c,
        "integers",
        |i| Term::Int(i * 2),
        |i| Term::Int(i * 2 + 1),
    );
    bench_kind(c, "member tuples", member, |i| member(i + N));
}

criterion_group! {
    name = sorted_set;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2));
    targets = benches
}
criterion_main!(sorted_set);
