//! The follow graph at Bluesky's scale, core only (no BEAM):
//! `GRAPH_EDGES=164000000 cargo run --release --example graph_scale`.
//!
//! A Bluesky-like graph: ~58 follows a user on average, heavy-tailed both ways (how many a
//! user follows: a Pareto-like draw; whom: followee ids skewed toward a few very popular
//! accounts). Prints the bulk load time, `memory()` (which tests check against a counting
//! allocator), `follows?`, `known_followers` and `mutuals` latencies (p50 / p99 over random
//! users, pages of 100), the snapshot's encode and decode (recovery) times, and the peak RSS.
use std::time::Instant;

use strata_core::persist::Persist;
use strata_core::FollowerMap;

/// A field of /proc/self/status, in bytes.
fn status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn percentiles(mut ns: Vec<u64>) -> String {
    ns.sort_unstable();
    let at = |p: usize| ns[(ns.len() * p / 100).min(ns.len() - 1)];
    format!("{} / {} ns", at(50), at(99))
}

fn main() {
    let edges: u64 = std::env::var("GRAPH_EDGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(164_000_000);
    let users = (edges / 58).max(10) as u32;
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut unit = move || (next() >> 11) as f64 / (1u64 << 53) as f64;
    let t = Instant::now();
    // Popular accounts draw repeats: a sixth more pairs than edges wanted.
    let wanted = edges + edges / 6;
    let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(wanted as usize);
    let mut follower = 0u32;
    while (pairs.len() as u64) < wanted {
        // Follows of this user: Pareto-like, mean ~58 (many follow a few, some thousands).
        let n = ((12.0 / (1.0 - unit()).powf(0.8)) as u64).min(20_000);
        for _ in 0..n {
            let b = (f64::from(users) * unit().powi(5)) as u32;
            if b != follower {
                pairs.push((follower, b));
            }
        }
        follower = (follower + 1) % users;
    }
    pairs.truncate(wanted as usize);
    println!(
        "generated {} pairs over {users} users in {:?}",
        pairs.len(),
        t.elapsed()
    );

    let mut graph = FollowerMap::new();
    let t = Instant::now();
    graph.follow_many(&mut pairs).unwrap();
    let build = t.elapsed();
    let probe: Vec<(u32, u32)> = (0..100_000)
        .map(|i| pairs[i * pairs.len() / 100_000])
        .collect();
    drop(pairs);
    let e = graph.edges();
    println!(
        "bulk load {build:?}: {e} edges, {} users; memory() {} MB = {:.1} bytes/edge \
         (both directions)",
        graph.users(),
        graph.memory() >> 20,
        graph.memory() as f64 / e as f64,
    );

    let time = |f: &mut dyn FnMut(usize)| -> Vec<u64> {
        (0..20_000)
            .map(|i| {
                let t = Instant::now();
                f(i);
                t.elapsed().as_nanos() as u64
            })
            .collect()
    };
    let mut r = 1u64;
    let mut rand = move |n: u32| {
        r = r
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((r >> 33) % u64::from(n)) as u32
    };
    let follows = time(&mut |i| {
        let (a, b) = probe[i % probe.len()];
        std::hint::black_box(graph.follows(a, b));
    });
    println!("follows? (present edges): {}", percentiles(follows));
    // Viewers are followers from the edge list; targets popular and not.
    let known = time(&mut |i| {
        let viewer = probe[i % probe.len()].0;
        let target = if i % 2 == 0 { rand(100) } else { rand(users) };
        std::hint::black_box(graph.known_followers(viewer, target, None, 100));
    });
    println!("known_followers (page of 100): {}", percentiles(known));
    let mutuals = time(&mut |i| {
        let user = if i % 2 == 0 {
            rand(1000)
        } else {
            probe[i % probe.len()].0
        };
        std::hint::black_box(graph.mutuals(user, None, 100));
    });
    println!("mutuals (page of 100): {}", percentiles(mutuals));

    let t = Instant::now();
    let bytes = graph.dump();
    println!(
        "snapshot encode {:?}, {} MB",
        t.elapsed(),
        bytes.len() >> 20
    );
    drop(graph);
    let t = Instant::now();
    let back = FollowerMap::load(&bytes).unwrap();
    println!(
        "snapshot decode (recovery) {:?}, {} edges",
        t.elapsed(),
        back.edges()
    );
    println!(
        "peak RSS {} MB (edge list, graph, snapshot bytes and the decoded copy at once)",
        status("VmHWM:") >> 20
    );
}
