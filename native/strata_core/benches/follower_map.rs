//! The follow graph's core operations against a sorted-vector adjacency map (what Crimeline
//! keeps: per user, a sorted `Vec` of ids, both directions), on warm data, for a followee
//! with 100 and with 100,000 followers: `cargo bench -p strata_core --bench follower_map`.

use std::collections::HashMap;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use strata_core::FollowerMap;

/// The baseline: both directions as sorted vectors in hash maps.
#[derive(Default)]
struct SortedVecs {
    followers: HashMap<u32, Vec<u32>>,
    following: HashMap<u32, Vec<u32>>,
}

fn add(map: &mut HashMap<u32, Vec<u32>>, key: u32, id: u32) -> bool {
    let v = map.entry(key).or_default();
    match v.binary_search(&id) {
        Ok(_) => false,
        Err(at) => {
            v.insert(at, id);
            true
        }
    }
}

fn drop_id(map: &mut HashMap<u32, Vec<u32>>, key: u32, id: u32) -> bool {
    let Some(v) = map.get_mut(&key) else {
        return false;
    };
    match v.binary_search(&id) {
        Ok(at) => {
            v.remove(at);
            true
        }
        Err(_) => false,
    }
}

impl SortedVecs {
    fn follow(&mut self, a: u32, b: u32) -> bool {
        add(&mut self.following, a, b) && add(&mut self.followers, b, a)
    }

    fn unfollow(&mut self, a: u32, b: u32) -> bool {
        drop_id(&mut self.following, a, b) && drop_id(&mut self.followers, b, a)
    }

    fn follows(&self, a: u32, b: u32) -> bool {
        self.following
            .get(&a)
            .is_some_and(|v| v.binary_search(&b).is_ok())
    }
}

fn lcg(state: &mut u64) -> u32 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*state >> 33) as u32
}

fn bench(c: &mut Criterion) {
    for n in [100u32, 100_000] {
        // Followee 0 has `n` followers (ids spread over 40M), each following 20 others.
        let mut state = 7u64;
        let mut edges = Vec::new();
        for i in 0..n {
            let f = 1 + i * (40_000_000 / n);
            edges.push((f, 0));
            for _ in 0..20 {
                edges.push((f, 1 + lcg(&mut state) % 40_000_000));
            }
        }
        edges.retain(|(a, b)| a != b);
        let mut graph = FollowerMap::new();
        let mut base = SortedVecs::default();
        for &(a, b) in &edges {
            graph.follow(a, b).unwrap();
            base.follow(a, b);
        }
        let present: Vec<(u32, u32)> = (0..1024).map(|i| edges[i * edges.len() / 1024]).collect();
        let mut k = 0usize;
        c.bench_function(&format!("follows?/strata/{n}"), |b| {
            b.iter(|| {
                k = (k + 1) % 1024;
                black_box(graph.follows(present[k].0, present[k].1))
            })
        });
        c.bench_function(&format!("follows?/sorted vecs/{n}"), |b| {
            b.iter(|| {
                k = (k + 1) % 1024;
                black_box(base.follows(present[k].0, present[k].1))
            })
        });
        // A new follower of 0 and back (add then remove, both directions), at a random
        // place among the followers (odd ids: the followers' are 1 + multiples of an even
        // step, so never one of them).
        c.bench_function(&format!("follow+unfollow/strata/{n}"), |b| {
            b.iter(|| {
                let f = (lcg(&mut state) % 20_000_000) * 2 + 2;
                black_box(graph.follow(f, 0).unwrap());
                black_box(graph.unfollow(f, 0));
            })
        });
        c.bench_function(&format!("follow+unfollow/sorted vecs/{n}"), |b| {
            b.iter(|| {
                let f = (lcg(&mut state) % 20_000_000) * 2 + 2;
                black_box(base.follow(f, 0));
                black_box(base.unfollow(f, 0));
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
